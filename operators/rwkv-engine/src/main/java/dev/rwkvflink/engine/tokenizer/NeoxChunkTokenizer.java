package dev.rwkvflink.engine.tokenizer;

import java.nio.charset.StandardCharsets;
import java.text.Normalizer;
import java.util.Arrays;
import java.util.List;

/**
 * {@link NeoxBpeTokenizer} over a text that arrives in pieces: the tokens of all steps, concatenated, equal
 * {@code encodeBytes} of the whole text.
 *
 * <p>Every stage of the NeoX pipeline can depend on text that has not arrived yet: a piece may end inside a
 * UTF-8 sequence, inside {@code <|endoftext|>}, before a combining accent that NFC would merge into the last
 * letter, inside a run of spaces (runs of 2 to 24 spaces are added tokens), or inside a word; and the
 * pre-tokenizer's {@code \s+(?!\S)} gives a run of whitespace back its last space only once it sees the word
 * after it. So each step looks for the last <em>safe cut</em> in the text it holds, encodes the text before the
 * cut (exactly as {@link NeoxBpeTokenizer#encode} does) and carries the rest.
 *
 * <h2>The safe cut</h2>
 * Let {@code T} be the carried text plus the piece, decoded up to a trailing incomplete UTF-8 sequence
 * ({@link Utf8Tail}; those bytes are carried as they are). A cut at char {@code k} is safe when encoding
 * {@code T[0, k)} alone gives the first tokens of every text that starts with {@code T}, and encoding what
 * follows {@code k} alone gives the rest. Stage by stage:
 * <ol>
 *   <li><b>Raw added tokens</b> ({@code <|endoftext|>}, longest {@code R} = 13 chars). Whether one starts at
 *       position {@code p} depends on {@code T[p, p + R)}, so positions below {@code decided = |T| - R + 1} are
 *       settled. The end of an added token that starts there is always a safe cut: the pipeline starts afresh
 *       after it. Otherwise the cut lies inside the plain text segment that reaches {@code decided}.</li>
 *   <li><b>NFC</b>: the cut must be before a code point where normalization may be split
 *       ({@link NfcBoundary}: a starter that never composes backwards, such as any letter, digit, space or
 *       punctuation mark below U+0300, and most others). The segment is cut into such "units"; the NFC text
 *       {@code S} of all units but the last is final, since the last may still absorb combining marks.</li>
 *   <li><b>Normalized added tokens</b> (runs of spaces, longest {@code A} = 24 chars) and <b>pre-tokens</b>
 *       (GPT-2's regular expression) are computed on {@code S}. A pre-token ending at {@code k'} is settled by
 *       the chars up to {@code k' + 1} (code points; the expression's look-ahead and its contractions peek one
 *       char past a match), and which added tokens surround it by {@code A} more chars; so cut positions
 *       {@code k'} must leave {@code A + 4} chars of {@code S} after them.</li>
 *   <li>{@code k'} must be the end of a piece (added token or pre-token) of {@code S}, and the pieces of
 *       {@code S[0, k')} computed alone must equal the pieces of {@code S} before {@code k'}. This is checked
 *       directly. It fails, for example, for a cut between {@code "\n\n"} and a word: the text before the cut
 *       ends in one whitespace pre-token, but in the whole text {@code \s+(?!\S)} leaves the last whitespace
 *       char before the word to a pre-token of its own (or to the word, if it is a space). The search then moves
 *       left.</li>
 * </ol>
 * After a safe cut every stage restarts cleanly: no added token spans it, normalization splits there, and the
 * regular expression has no look-behind. The largest safe cut is used.
 *
 * <h2>Carry bound</h2>
 * Normally the carry is the last pre-tokens plus about {@code (R - 1) + A + 4} = 40 chars of look-ahead and at
 * most 3 bytes of an unfinished character (44 bytes at the end of an English sentence, for example). It never
 * exceeds {@link #CARRY_CAP_BYTES} (64 KiB): when a text holds no safe cut for that long, the cut is forced near
 * the end of the settled text, before an NFC-safe code point where there is one. <b>This is the only case where
 * chunked tokens differ from those of the whole text</b>, and it happens only inside a single pre-token longer
 * than 64 KiB (a "word" of letters without a space, a run of digits, symbols or whitespace); that pre-token is
 * then encoded as two pre-tokens.
 *
 * <h2>Invalid UTF-8</h2>
 * Malformed bytes become U+FFFD, as in {@link NeoxBpeTokenizer#encodeBytes}. Decoding is piecewise-exact at the
 * boundaries {@link Utf8Tail} picks, and carried text that holds U+FFFD is carried as its UTF-8 (which decodes
 * back to U+FFFD), so chunked encoding equals whole-text encoding for invalid UTF-8 as well.
 */
final class NeoxChunkTokenizer implements ChunkTokenizer {

    /** The most bytes a step carries. */
    static final int CARRY_CAP_BYTES = 64 * 1024;

    /** Chars of look-ahead the pre-tokenizer needs after a cut: 2 code points, each up to 2 chars. */
    private static final int PRE_TOKENIZER_LOOKAHEAD = 4;

    /** Candidate cuts whose check fails before the search gives up on a segment (it rarely fails twice). */
    private static final int MAX_FAILED_CHECKS = 16;

    /** How far back from the forced cut position an NFC-safe code point is looked for. */
    private static final int FORCED_CUT_NFC_SEARCH = 32;

    private final NeoxBpeTokenizer tokenizer;
    private final int rawLookahead;
    private final int pieceLookahead;

    NeoxChunkTokenizer(NeoxBpeTokenizer tokenizer) {
        this.tokenizer = tokenizer;
        this.rawLookahead = Math.max(1, tokenizer.rawAddedTokens().maxLength());
        this.pieceLookahead = tokenizer.maxNormalizedAddedTokenLength() + PRE_TOKENIZER_LOOKAHEAD;
    }

    @Override
    public Step feed(byte[] carry, byte[] piece, boolean last) {
        byte[] input = ByteArrays.concat(carry, piece);
        if (last) {
            return new Step(tokenizer.encodeBytes(input), ByteArrays.EMPTY);
        }
        int tail = Utf8Tail.incompleteTailStart(input);
        String text = new String(input, 0, tail, StandardCharsets.UTF_8);
        byte[] unfinished = Arrays.copyOfRange(input, tail, input.length);

        int cut = safeCut(text);
        byte[] carried = ByteArrays.concat(text.substring(cut).getBytes(StandardCharsets.UTF_8), unfinished);
        if (carried.length > CARRY_CAP_BYTES) {
            cut = forcedCut(text);
            carried = ByteArrays.concat(text.substring(cut).getBytes(StandardCharsets.UTF_8), unfinished);
        }
        int[] tokens = cut == 0 ? new int[0] : tokenizer.encode(text.substring(0, cut));
        return new Step(tokens, carried);
    }

    /** The largest safe cut in {@code text} (a char index; 0 if there is none). */
    int safeCut(String text) {
        int decided = text.length() - rawLookahead + 1;
        int best = 0;
        int start = 0;
        for (AddedTokenSplitter.Piece raw : tokenizer.rawAddedTokens().split(text)) {
            if (start >= decided) {
                break;
            }
            int end = start + raw.text().length();
            if (raw.isToken()) {
                best = end;
            } else if (end >= decided) {
                int inner = cutInsideSegment(text.substring(start, decided));
                if (inner > 0) {
                    best = start + inner;
                }
            }
            start = end;
        }
        return best;
    }

    /**
     * The largest safe cut inside a plain segment (text between raw added tokens), given its settled part
     * {@code known}; 0 if there is none.
     */
    private int cutInsideSegment(String known) {
        Units units = Units.of(known, tokenizer.normalizesNfc() ? tokenizer : null);
        String s = units.normalized();
        List<AddedTokenSplitter.Piece> pieces = tokenizer.preTokens(s);
        boolean[] pieceEnd = new boolean[s.length() + 1];
        int[] piecesBefore = new int[s.length() + 1];
        int position = 0;
        for (int i = 0; i < pieces.size(); i++) {
            position += pieces.get(i).text().length();
            pieceEnd[position] = true;
            piecesBefore[position] = i + 1;
        }
        int failedChecks = 0;
        for (int u = units.count() - 1; u >= 1 && failedChecks < MAX_FAILED_CHECKS; u--) {
            int k = units.normalizedStart(u);
            if (k > s.length() - pieceLookahead || !pieceEnd[k]) {
                continue;
            }
            if (tokenizer.preTokens(s.substring(0, k)).equals(pieces.subList(0, piecesBefore[k]))) {
                return units.rawStart(u);
            }
            failedChecks++;
        }
        return 0;
    }

    /**
     * The cut used when no safe cut keeps the carry under the cap: the end of the settled text, moved back to
     * an NFC-safe code point if one is near. Only a single pre-token longer than the cap leads here.
     */
    private int forcedCut(String text) {
        // the last settled char (see safeCut), so that the cut has a code point after it to check
        int end = Math.max(0, Math.min(text.length() - rawLookahead + 1, text.length() - 1));
        if (end > 0 && Character.isLowSurrogate(text.charAt(end))) {
            end--;
        }
        for (int k = end; k > 0 && k > end - FORCED_CUT_NFC_SEARCH; k = text.offsetByCodePoints(k, -1)) {
            if (NfcBoundary.isSafeBefore(text.codePointAt(k))) {
                return k;
            }
        }
        return end;
    }

    /**
     * A plain segment cut into NFC units: each unit starts at a code point where NFC may be split
     * ({@link NfcBoundary}), so the NFC of the segment is the concatenation of the units' NFC. The last unit is
     * left out, as text still to come may change its normalization.
     */
    private record Units(String normalized, int[] rawStarts, int[] normalizedStarts) {

        /** @param normalizer the tokenizer whose NFC to apply, or {@code null} when the tokenizer does not normalize */
        static Units of(String known, NeoxBpeTokenizer normalizer) {
            IntList starts = new IntList(known.length() + 1);
            starts.add(0);
            for (int i = 0; i < known.length(); i = known.offsetByCodePoints(i, 1)) {
                if (i > 0 && NfcBoundary.isSafeBefore(known.codePointAt(i))) {
                    starts.add(i);
                }
            }
            int[] rawStarts = starts.toArray();
            int stableEnd = rawStarts[rawStarts.length - 1]; // start of the last unit
            String stable = known.substring(0, stableEnd);
            if (normalizer == null || Normalizer.isNormalized(stable, Normalizer.Form.NFC)) {
                // Every unit of an NFC text is NFC itself, so positions do not move.
                return new Units(stable, rawStarts, rawStarts);
            }
            StringBuilder out = new StringBuilder(stable.length());
            int[] normalizedStarts = new int[rawStarts.length];
            for (int u = 0; u + 1 < rawStarts.length; u++) {
                normalizedStarts[u] = out.length();
                out.append(normalizer.normalize(stable.substring(rawStarts[u], rawStarts[u + 1])));
            }
            normalizedStarts[rawStarts.length - 1] = out.length();
            return new Units(out.toString(), rawStarts, normalizedStarts);
        }

        /** Units whose start is a candidate cut; the last one's start is where the stable text ends. */
        int count() {
            return rawStarts.length;
        }

        int rawStart(int unit) {
            return rawStarts[unit];
        }

        int normalizedStart(int unit) {
            return normalizedStarts[unit];
        }
    }
}
