package dev.rwkvflink.engine.tokenizer;

/**
 * Finds the UTF-8 sequence that a piece of text may end in the middle of, so that a chunk tokenizer can hold
 * those bytes back until the rest of the character arrives.
 *
 * <p>Decoding is piecewise-exact at the start of such a trailing sequence: if {@code tail} is the position this
 * class returns, {@code decode(x ++ y) == decode(x[0, tail)) + decode(x[tail, ..) ++ y)} for every
 * continuation {@code y}, with Java's UTF-8 decoder (malformed input becomes U+FFFD). The bytes before the tail
 * are then complete characters or malformed input that no later byte can repair.
 *
 * <p>A trailing sequence is "incomplete" if it is a proper prefix of a well-formed sequence (Unicode table 3-7):
 * <pre>
 *   lead C2..DF: 1 more byte 80..BF            lead E0: A0..BF, then 80..BF
 *   lead E1..EF: 80..BF, 80..BF                lead F0: 90..BF, then 2 x 80..BF
 *   lead F1..F3: 3 x 80..BF                    lead F4: 80..8F, then 2 x 80..BF
 * </pre>
 * with one deviation that follows Java's decoder: after ED, any continuation byte 80..BF is accepted (strictly
 * ED A0..BF starts an encoded surrogate, which Java reports as malformed only once the third byte is there).
 */
final class Utf8Tail {

    private Utf8Tail() {}

    /**
     * The start of the incomplete UTF-8 sequence at the end of {@code bytes}, or {@code bytes.length} if the
     * bytes do not end inside one. The tail is at most 3 bytes long.
     */
    static int incompleteTailStart(byte[] bytes) {
        int end = bytes.length;
        for (int start = end - 1; start >= Math.max(0, end - 3); start--) {
            int b = bytes[start] & 0xFF;
            if (isContinuation(b)) {
                continue;
            }
            int length = sequenceLength(b);
            if (length <= end - start) {
                return end; // an ASCII byte, an invalid lead byte, or a sequence with all its bytes present
            }
            for (int i = start + 1; i < end; i++) {
                if (!continues(b, i - start, bytes[i] & 0xFF)) {
                    return end; // already malformed: nothing later can repair it
                }
            }
            return start;
        }
        return end;
    }

    private static boolean isContinuation(int b) {
        return (b & 0xC0) == 0x80;
    }

    /** Bytes in a sequence starting with lead byte {@code b}; 1 for ASCII and for bytes that cannot lead. */
    private static int sequenceLength(int b) {
        if (b >= 0xC2 && b <= 0xDF) {
            return 2;
        }
        if (b >= 0xE0 && b <= 0xEF) {
            return 3;
        }
        if (b >= 0xF0 && b <= 0xF4) {
            return 4;
        }
        return 1;
    }

    /** Whether {@code b} may be byte number {@code index} (1, 2 or 3) of a sequence led by {@code lead}. */
    private static boolean continues(int lead, int index, int b) {
        if (index == 1) {
            switch (lead) {
                case 0xE0 -> {
                    return b >= 0xA0 && b <= 0xBF;
                }
                case 0xF0 -> {
                    return b >= 0x90 && b <= 0xBF;
                }
                case 0xF4 -> {
                    return b >= 0x80 && b <= 0x8F;
                }
                default -> {
                    // ED included: see the class comment
                }
            }
        }
        return isContinuation(b);
    }
}
