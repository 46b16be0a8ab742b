package dev.rwkvflink.engine.tokenizer;

import java.text.Normalizer;
import java.util.BitSet;

/**
 * Where Unicode normalization form C may be applied piecewise: {@code NFC(x + y) == NFC(x) + NFC(y)} whenever
 * {@code y} starts with a code point for which {@link #isSafeBefore} holds, whatever {@code x} and the rest of
 * {@code y} are.
 *
 * <p>NFC decomposes, reorders combining marks by their combining class, and recomposes each "starter" (a
 * character of combining class 0) with the marks and characters that follow it. A boundary before {@code c} is
 * therefore safe when {@code c}
 * <ol>
 *   <li>is a starter, so no mark after it is ever reordered across it; Java has no API for combining classes,
 *       but every character of non-zero class is a mark (general category Mn, Mc or Me), so non-marks are
 *       starters; and</li>
 *   <li>never composes with what precedes it, i.e. is not the second element of any canonical composition. Those
 *       second elements are the code points that appear after the first position in the canonical decomposition
 *       (NFD) of some character, such as U+0301 in {@code NFD("é")} or the vowel and final jamo of a Hangul
 *       syllable; that set (142 code points in Unicode 16, nearly all of them marks) is computed once from the
 *       JDK's own normalization data.</li>
 * </ol>
 * Everything below U+0300 (ASCII and Latin-1 and its extensions) is safe, which is checked without the table.
 */
final class NfcBoundary {

    private NfcBoundary() {}

    /** Whether NFC may be applied separately to the text before and the text from code point {@code cp} on. */
    static boolean isSafeBefore(int cp) {
        if (cp < 0x300) {
            return true;
        }
        int type = Character.getType(cp);
        if (type == Character.NON_SPACING_MARK
                || type == Character.COMBINING_SPACING_MARK
                || type == Character.ENCLOSING_MARK) {
            return false;
        }
        return !SecondElements.SET.get(cp);
    }

    /** Computed on first use (about 50 ms): code points that can compose with a character before them. */
    private static final class SecondElements {
        static final BitSet SET = compute();

        private static BitSet compute() {
            BitSet set = new BitSet();
            // Canonical decompositions exist only below U+30000 (the CJK compatibility ideographs end at U+2FA1D).
            for (int cp = 0; cp < 0x30000; cp++) {
                if (Character.isSurrogate((char) cp) && cp <= 0xFFFF) {
                    continue;
                }
                String c = Character.toString(cp);
                if (Normalizer.isNormalized(c, Normalizer.Form.NFD)) {
                    continue;
                }
                int[] decomposition = Normalizer.normalize(c, Normalizer.Form.NFD)
                        .codePoints()
                        .toArray();
                for (int i = 1; i < decomposition.length; i++) {
                    set.set(decomposition[i]);
                }
            }
            return set;
        }
    }
}
