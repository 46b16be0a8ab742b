package dev.rwkvflink.engine.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Random;

/**
 * Test helpers for {@link ChunkTokenizer}: random texts that exercise every stage of the tokenizers, random ways
 * to cut them into pieces, and feeding the pieces one step at a time.
 */
final class ChunkFeeding {

    private ChunkFeeding() {}

    /** What feeding all pieces produced: the tokens of all steps, and the longest carry seen. */
    record Result(int[] tokens, int maxCarry) {}

    /**
     * Feeds {@code text} cut at {@code cuts} (sorted byte offsets; repeated offsets make empty pieces), the last
     * piece with {@code last = true}.
     */
    static Result feed(ChunkTokenizer chunker, byte[] text, int[] cuts) {
        IntList tokens = new IntList(16);
        byte[] carry = new byte[0];
        int maxCarry = 0;
        int from = 0;
        for (int i = 0; i <= cuts.length; i++) {
            int to = i < cuts.length ? cuts[i] : text.length;
            ChunkTokenizer.Step step = chunker.feed(carry, Arrays.copyOfRange(text, from, to), i == cuts.length);
            tokens.addAll(step.tokens());
            carry = step.carry();
            maxCarry = Math.max(maxCarry, carry.length);
            from = to;
        }
        if (carry.length != 0) {
            throw new AssertionError("the last step left a carry of " + carry.length + " bytes");
        }
        return new Result(tokens.toArray(), maxCarry);
    }

    /** 0 to {@code maxCuts} sorted cut offsets in [0, length], repeats allowed (empty pieces). */
    static int[] randomCuts(Random rnd, int length, int maxCuts) {
        int[] cuts = new int[rnd.nextInt(maxCuts + 1)];
        for (int i = 0; i < cuts.length; i++) {
            cuts[i] = rnd.nextInt(length + 1);
        }
        Arrays.sort(cuts);
        return cuts;
    }

    /** Every single cut offset {@code c} in [0, length]. */
    static int[][] everySingleCut(int length) {
        int[][] all = new int[length + 1][];
        for (int c = 0; c <= length; c++) {
            all[c] = new int[] {c};
        }
        return all;
    }

    /**
     * Text fragments that stress the tokenizers: words and contractions, runs of spaces (NeoX's added tokens
     * for 2 to 24 spaces), other whitespace (the pre-tokenizer's {@code \s+(?!\S)}), added tokens whole and cut,
     * characters that NFC composes (a letter and its combining accent, Hangul jamo), an NFC singleton, multi-byte
     * and supplementary characters.
     */
    private static final String[] FRAGMENTS = {
        "the",
        "quick",
        "brown",
        "fox",
        "Hello",
        "world",
        "tokenizer",
        "streaming",
        "a",
        "I",
        " ",
        " ",
        " ",
        " ",
        "  ",
        "   ",
        "\n",
        "\n\n",
        "\t",
        " \n ",
        "\r\n",
        "\u00A0",
        "\u3000",
        "                          ",
        ",",
        ".",
        "!",
        "?",
        "...",
        "--",
        "(",
        ")",
        "\"",
        "'",
        "'s",
        "'re",
        "'ll",
        "'ve",
        "'t",
        "'d",
        "'m",
        "n't",
        "0",
        "42",
        "2025",
        "3.14",
        "é",
        "e\u0301",
        "\u0301",
        "\u0301\u0323",
        "a\u0308\u0304",
        "Å",
        "\u212B",
        "ﬁ",
        "\u1100\u1161",
        "\u1100\u1161\u11A8",
        "\u11A8",
        "\u1161",
        "한국어",
        "以下は",
        "生活的真谛是",
        "。",
        "，",
        "блабла",
        "ปี",
        "عربى",
        "😊",
        "👍🏽",
        "𝔘𝔫𝔦",
        "\u200D",
        "<|endoftext|>",
        "<|padding|>",
        "<|endof",
        "<|",
        "|>",
        "<s>",
    };

    /** A random text of about {@code fragments} fragments. */
    static String randomText(Random rnd, int fragments) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < fragments; i++) {
            sb.append(FRAGMENTS[rnd.nextInt(FRAGMENTS.length)]);
            if (rnd.nextInt(3) == 0) {
                sb.append(' ');
            }
        }
        return sb.toString();
    }

    /** The UTF-8 of a random text, with some random bytes overwritten by arbitrary (often invalid) bytes. */
    static byte[] randomInvalidUtf8(Random rnd, int fragments) {
        byte[] bytes = randomText(rnd, fragments).getBytes(StandardCharsets.UTF_8);
        int[] awkward = {0x80, 0xBF, 0xC0, 0xC3, 0xE0, 0xE2, 0xED, 0xA0, 0xF0, 0xF4, 0x90, 0xFF, 0x9F};
        int corruptions = 1 + rnd.nextInt(6);
        for (int i = 0; i < corruptions && bytes.length > 0; i++) {
            bytes[rnd.nextInt(bytes.length)] = (byte) awkward[rnd.nextInt(awkward.length)];
        }
        return bytes;
    }

    /** A readable description of a failing case. */
    static String describe(byte[] text, int[] cuts) {
        return "text " + HexFormat.of().formatHex(text) + " (\""
                + new String(text, StandardCharsets.UTF_8).replace("\n", "\\n") + "\") cut at " + Arrays.toString(cuts);
    }
}
