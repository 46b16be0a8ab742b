package dev.rwkvflink.engine.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HexFormat;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The {@link ChunkTokenizer} contract, as property tests: for many random texts and random ways to cut them
 * (inside multi-byte characters, into empty pieces, into whitespace-only pieces), the tokens of all steps equal
 * {@code encodeBytes} of the whole text, and the carry stays within each tokenizer's stated bound.
 */
class ChunkTokenizerTest {

    private static WorldTokenizer world;
    private static NeoxBpeTokenizer neox;

    private static synchronized WorldTokenizer world() throws IOException {
        if (world == null) {
            world = WorldTokenizer.load(ReferenceData.require(ReferenceData.WORLD_VOCAB));
        }
        return world;
    }

    private static synchronized NeoxBpeTokenizer neox() throws IOException {
        if (neox == null) {
            neox = NeoxBpeTokenizer.load(ReferenceData.require(ReferenceData.NEOX_TOKENIZER));
        }
        return neox;
    }

    /** Feeds {@code text} cut at {@code cuts}, checks the tokens against the whole text and returns the result. */
    private static ChunkFeeding.Result assertChunkedEqualsWhole(Tokenizer tokenizer, byte[] text, int[] cuts) {
        ChunkFeeding.Result result = ChunkFeeding.feed(tokenizer.chunked(), text, cuts);
        assertArrayEquals(
                tokenizer.encodeBytes(text),
                result.tokens(),
                () -> tokenizer.name() + ": chunked != whole for " + ChunkFeeding.describe(text, cuts));
        return result;
    }

    // ---------------------------------------------------------------- byte

    @Test
    void byteTokenizerEmitsEveryByteAtOnceAndCarriesNothing() {
        ByteTokenizer bytes = new ByteTokenizer();
        Random rnd = new Random(1);
        for (int trial = 0; trial < 500; trial++) {
            byte[] text = new byte[rnd.nextInt(200)];
            rnd.nextBytes(text); // arbitrary bytes, mostly invalid UTF-8
            ChunkFeeding.Result result =
                    assertChunkedEqualsWhole(bytes, text, ChunkFeeding.randomCuts(rnd, text.length, 8));
            assertEquals(0, result.maxCarry());
        }
        ChunkTokenizer.Step step = bytes.chunked().feed(new byte[0], new byte[] {(byte) 0xE2, (byte) 0x82}, false);
        assertArrayEquals(new int[] {0xE2, 0x82}, step.tokens(), "half a character is emitted byte by byte");
        assertEquals(0, step.carry().length);
    }

    // ---------------------------------------------------------------- World

    @Test
    void worldChunkedEqualsWholeForRandomTextsAndCuts() throws IOException {
        WorldTokenizer w = world();
        Random rnd = new Random(2);
        int maxCarry = 0;
        for (int trial = 0; trial < 1500; trial++) {
            byte[] text = trial % 3 == 0
                    ? ChunkFeeding.randomInvalidUtf8(rnd, 1 + rnd.nextInt(80))
                    : ChunkFeeding.randomText(rnd, 1 + rnd.nextInt(80)).getBytes(StandardCharsets.UTF_8);
            int[] cuts = ChunkFeeding.randomCuts(rnd, text.length, 12);
            maxCarry =
                    Math.max(maxCarry, assertChunkedEqualsWhole(w, text, cuts).maxCarry());
        }
        assertEquals(128, w.maxTokenLength());
        assertTrue(maxCarry < w.maxTokenLength(), "carry " + maxCarry + " must stay below 128 bytes");
    }

    /** The longest World tokens (128 bytes) are runs of spaces, '=' and so on: cut one at every position. */
    @Test
    void worldLongestTokenSurvivesEveryCut() throws IOException {
        WorldTokenizer w = world();
        int longest = -1;
        for (int id = 1; id < w.vocabSize(); id++) {
            if (w.bytesOf(id).length == w.maxTokenLength()) {
                longest = id;
                break;
            }
        }
        byte[] token = w.bytesOf(longest);
        byte[] text = ("x" + new String(token, StandardCharsets.UTF_8) + "y").getBytes(StandardCharsets.UTF_8);
        for (int[] cut : ChunkFeeding.everySingleCut(text.length)) {
            assertChunkedEqualsWhole(w, text, cut);
        }
        int[] whole = w.encodeBytes(text);
        assertTrue(Arrays.stream(whole).anyMatch(id -> w.bytesOf(id).length == 128), "the 128-byte token is used");
    }

    @Test
    void worldCarryHoldsBackOnlyTheLastMaxTokenLengthBytes() throws IOException {
        WorldTokenizer w = world();
        byte[] text = "Hello world, this is a streaming test. ".repeat(20).getBytes(StandardCharsets.UTF_8);
        ChunkTokenizer.Step step = w.chunked().feed(new byte[0], text, false);
        assertTrue(step.carry().length < 128);
        assertTrue(step.tokens().length > 100);
        byte[] emitted = w.decodeBytes(step.tokens());
        assertArrayEquals(text, concat(emitted, step.carry()), "emitted tokens + carry = input");
    }

    // ---------------------------------------------------------------- NeoX

    @Test
    void neoxChunkedEqualsWholeForRandomTextsAndCuts() throws IOException {
        NeoxBpeTokenizer n = neox();
        Random rnd = new Random(3);
        for (int trial = 0; trial < 1500; trial++) {
            byte[] text = ChunkFeeding.randomText(rnd, 1 + rnd.nextInt(120)).getBytes(StandardCharsets.UTF_8);
            ChunkFeeding.Result result =
                    assertChunkedEqualsWhole(n, text, ChunkFeeding.randomCuts(rnd, text.length, 12));
            assertTrue(result.maxCarry() <= NeoxChunkTokenizer.CARRY_CAP_BYTES);
        }
    }

    /** Invalid UTF-8 becomes U+FFFD in the whole text; chunked encoding gives the same, wherever it is cut. */
    @Test
    void neoxChunkedEqualsWholeForInvalidUtf8() throws IOException {
        NeoxBpeTokenizer n = neox();
        Random rnd = new Random(4);
        for (int trial = 0; trial < 1000; trial++) {
            byte[] text = ChunkFeeding.randomInvalidUtf8(rnd, 1 + rnd.nextInt(60));
            assertChunkedEqualsWhole(n, text, ChunkFeeding.randomCuts(rnd, text.length, 12));
        }
    }

    /** Short texts where one stage or another depends on what follows, cut at every byte and every pair of bytes. */
    @Test
    void neoxTrickyTextsSurviveEveryCut() throws IOException {
        String[] tricky = {
            "Hi  Hello world and more words here to fill the look-ahead", // 2 spaces: an added token
            "a" + " ".repeat(30) + "b c d e f g h i j k l m n o p q r s t u v w x y z",
            "words <|endoftext|> more <|padding|> and <|endof text that goes on and on and on",
            "cafe\u0301 and cafe\u0301\u0323 then the same é again, ǖ a\u0308\u0304, \u212B, to be long enough",
            "they're we'll I've it's don't 'sun' ''s '' 're end of the text to be long enough to cut",
            "a \nb  \n c\t\td \u00A0e \u3000 f\n\n\n g with more words after the whitespace runs end",
            "\u1100\u1161\u11A8 \u1100\u1161 \u11A8 한국어 jamo and syllables 한 국 어 plus padding words here",
            "emoji 😊👍🏽 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and 生活的真谛是。以下は、 words words words words words",
            "numbers 3.14159 2025 1,000,000 and symbols !!! ??? --- ... to be long enough for cuts",
        };
        NeoxBpeTokenizer n = neox();
        for (String s : tricky) {
            byte[] text = s.getBytes(StandardCharsets.UTF_8);
            for (int[] cut : ChunkFeeding.everySingleCut(text.length)) {
                assertChunkedEqualsWhole(n, text, cut);
            }
            Random rnd = new Random(s.hashCode());
            for (int trial = 0; trial < 300; trial++) {
                int a = rnd.nextInt(text.length + 1);
                int b = rnd.nextInt(text.length + 1);
                assertChunkedEqualsWhole(n, text, new int[] {Math.min(a, b), Math.max(a, b)});
            }
        }
    }

    /** Pieces that are only whitespace, or empty, between words. */
    @Test
    void neoxWhitespaceOnlyAndEmptyPieces() throws IOException {
        NeoxBpeTokenizer n = neox();
        String[] pieces = {"Hello", " ", "", "  ", "\n", "", "world", "   ", "\t \n", "", " again", " ", "", "!"};
        byte[] text = String.join("", pieces).getBytes(StandardCharsets.UTF_8);
        int[] cuts = new int[pieces.length - 1];
        int offset = 0;
        for (int i = 0; i < cuts.length; i++) {
            offset += pieces[i].getBytes(StandardCharsets.UTF_8).length;
            cuts[i] = offset;
        }
        assertChunkedEqualsWhole(n, text, cuts);
        assertChunkedEqualsWhole(world(), text, cuts);
        assertChunkedEqualsWhole(new ByteTokenizer(), text, cuts);
    }

    /** In ordinary prose the carry is the last pre-tokens plus about 41 chars of look-ahead. */
    @Test
    void neoxCarryIsSmallForProse() throws IOException {
        NeoxBpeTokenizer n = neox();
        byte[] text = ("The quick brown fox jumps over the lazy dog, and then it runs away into the forest. "
                        + "Nobody knows where it went; some say it's still there!\n\n")
                .repeat(40)
                .getBytes(StandardCharsets.UTF_8);
        Random rnd = new Random(5);
        for (int trial = 0; trial < 50; trial++) {
            ChunkFeeding.Result result =
                    assertChunkedEqualsWhole(n, text, ChunkFeeding.randomCuts(rnd, text.length, 60));
            assertTrue(result.maxCarry() <= 120, "carry " + result.maxCarry() + " bytes");
        }
        ChunkTokenizer.Step step = n.chunked().feed(new byte[0], text, false);
        // the last pre-tokens and about 41 chars of look-ahead: 44 bytes
        assertEquals(
                " where it went; some say it's still there!\n\n", new String(step.carry(), StandardCharsets.UTF_8));
    }

    /** A word under the 64 KiB cap is still exact, however it is cut. */
    @Test
    void neoxLongWordBelowTheCapIsExact() throws IOException {
        byte[] text = ("start " + "a".repeat(60_000) + " end of the text").getBytes(StandardCharsets.UTF_8);
        int[] cuts = new int[15];
        for (int i = 0; i < cuts.length; i++) {
            cuts[i] = (i + 1) * 4_000 + i;
        }
        ChunkFeeding.Result result = assertChunkedEqualsWhole(neox(), text, cuts);
        assertTrue(result.maxCarry() > 50_000 && result.maxCarry() <= NeoxChunkTokenizer.CARRY_CAP_BYTES);
    }

    /** 100 KB of short whitespace pieces (spaces and newlines: runs of spaces are added tokens) stays exact. */
    @Test
    void neoxLongWhitespaceTextIsExact() throws IOException {
        byte[] text = ("x" + "  \n".repeat(35_000) + "y").getBytes(StandardCharsets.UTF_8);
        int[] cuts = new int[25];
        for (int i = 0; i < cuts.length; i++) {
            cuts[i] = (i + 1) * 4_000 + i;
        }
        ChunkFeeding.Result result = assertChunkedEqualsWhole(neox(), text, cuts);
        assertTrue(result.maxCarry() < 200, "carry " + result.maxCarry());
    }

    /**
     * The documented exception: a single pre-token longer than the 64 KiB cap is cut at the cap, so the tokens
     * differ from the whole text's there (and only there); the text itself is kept exactly and the carry never
     * exceeds the cap.
     */
    @Test
    void neoxWordLongerThanTheCapIsCutAndTheCarryStaysBounded() throws IOException {
        NeoxBpeTokenizer n = neox();
        String word = "a".repeat(100_000);
        String text = "start " + word + " end of the text.";
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        int[] cuts = new int[40];
        for (int i = 0; i < cuts.length; i++) {
            cuts[i] = (i + 1) * 2_500;
        }
        ChunkFeeding.Result result = ChunkFeeding.feed(n.chunked(), bytes, cuts);
        assertTrue(result.maxCarry() <= NeoxChunkTokenizer.CARRY_CAP_BYTES, "carry " + result.maxCarry());
        assertEquals(text, n.decode(result.tokens()), "the text is kept exactly");
        int[] whole = n.encodeBytes(bytes);
        assertFalse(Arrays.equals(whole, result.tokens()), "the giant word is cut, so its tokens differ");
        int[] tailWhole = n.encode(" end of the text.");
        int[] tailChunked =
                Arrays.copyOfRange(result.tokens(), result.tokens().length - tailWhole.length, result.tokens().length);
        assertArrayEquals(tailWhole, tailChunked, "the text after the giant word is tokenized as in the whole text");
    }

    /**
     * A byte-level BPE without normalizer and without added tokens (built here): the chunker's paths for "no NFC"
     * and "no raw added tokens", including a word longer than the cap.
     */
    @Test
    void neoxWithoutNormalizerOrAddedTokens(@TempDir Path tmp) throws IOException {
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = json.createObjectNode();
        root.putNull("normalizer");
        root.putObject("pre_tokenizer").put("type", "ByteLevel").put("add_prefix_space", false);
        root.putArray("added_tokens");
        ObjectNode model = root.putObject("model").put("type", "BPE");
        ObjectNode vocab = model.putObject("vocab");
        for (int b = 0; b < 256; b++) {
            vocab.put(String.valueOf(ByteLevelAlphabet.charOf(b)), b);
        }
        String space = String.valueOf(ByteLevelAlphabet.charOf(' '));
        String[][] merges = {{"t", "h"}, {"th", "e"}, {space, "t"}, {space + "t", "he"}, {"h", "e"}, {space, space}};
        int id = 256;
        var mergeList = model.putArray("merges");
        for (String[] m : merges) {
            if (!vocab.has(m[0] + m[1])) {
                vocab.put(m[0] + m[1], id++);
            }
            mergeList.add(m[0] + " " + m[1]);
        }
        Path file = tmp.resolve("plain-bpe.json");
        json.writeValue(file.toFile(), root);
        NeoxBpeTokenizer plain = NeoxBpeTokenizer.load(file);
        assertArrayEquals(
                new int[] {vocab.get("the").asInt(), ' ', vocab.get("the").asInt()},
                plain.encode("the the"),
                "merges apply: t+h, th+e; the space stays alone (no merge of it with \"the\")");

        Random rnd = new Random(7);
        for (int trial = 0; trial < 800; trial++) {
            byte[] text = trial % 4 == 0
                    ? ChunkFeeding.randomInvalidUtf8(rnd, 1 + rnd.nextInt(80))
                    : ChunkFeeding.randomText(rnd, 1 + rnd.nextInt(80)).getBytes(StandardCharsets.UTF_8);
            assertChunkedEqualsWhole(plain, text, ChunkFeeding.randomCuts(rnd, text.length, 12));
        }
        byte[] giant = ("x " + "b".repeat(80_000) + " the end").getBytes(StandardCharsets.UTF_8);
        ChunkFeeding.Result result = ChunkFeeding.feed(plain.chunked(), giant, new int[] {30_000, 60_000, 79_000});
        assertTrue(result.maxCarry() <= NeoxChunkTokenizer.CARRY_CAP_BYTES);
        assertArrayEquals(giant, plain.decodeBytes(result.tokens()));
    }

    // ---------------------------------------------------------------- helpers' own properties

    /** NFC splits exactly before the code points {@link NfcBoundary} calls safe, checked on all of Unicode. */
    @Test
    void nfcBoundaryIsSafeForEveryCodePoint() {
        BitSet composesBackwards = new BitSet();
        for (int cp = 0; cp <= Character.MAX_CODE_POINT; cp++) {
            if (cp >= 0xD800 && cp <= 0xDFFF) {
                continue;
            }
            int[] nfd = Normalizer.normalize(Character.toString(cp), Normalizer.Form.NFD)
                    .codePoints()
                    .toArray();
            for (int i = 1; i < nfd.length; i++) {
                composesBackwards.set(nfd[i]);
            }
        }
        int safe = 0;
        for (int cp = 0; cp <= Character.MAX_CODE_POINT; cp++) {
            if ((cp >= 0xD800 && cp <= 0xDFFF) || !NfcBoundary.isSafeBefore(cp)) {
                continue;
            }
            safe++;
            String c = Character.toString(cp);
            String name = String.format("U+%04X", cp);
            assertFalse(composesBackwards.get(cp), () -> name + " composes with what precedes it");
            // A mark of class 240 (U+0345) before a character of class 1..239 would be reordered after it.
            String nfd = Normalizer.normalize("\u0345" + c, Normalizer.Form.NFD);
            assertTrue(nfd.startsWith("\u0345"), () -> name + " is not a starter");
        }
        assertTrue(safe > 1_000_000);
        assertFalse(NfcBoundary.isSafeBefore(0x0301));
        assertFalse(NfcBoundary.isSafeBefore(0x1161), "Hangul vowel jamo compose with a leading consonant");
        assertTrue(NfcBoundary.isSafeBefore('e'));
        assertTrue(NfcBoundary.isSafeBefore(0xAC00));
    }

    /** Decoding splits exactly at the tail {@link Utf8Tail} finds, for awkward byte strings. */
    @Test
    void utf8TailSplitsDecodingExactly() {
        int[] alphabet = {
            0x41, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5,
            0xFF
        };
        Random rnd = new Random(6);
        for (int trial = 0; trial < 300_000; trial++) {
            byte[] x = new byte[rnd.nextInt(6)];
            byte[] y = new byte[rnd.nextInt(6)];
            for (int i = 0; i < x.length; i++) {
                x[i] = (byte) alphabet[rnd.nextInt(alphabet.length)];
            }
            for (int i = 0; i < y.length; i++) {
                y[i] = (byte) alphabet[rnd.nextInt(alphabet.length)];
            }
            int tail = Utf8Tail.incompleteTailStart(x);
            assertTrue(x.length - tail <= 3);
            String whole = new String(concat(x, y), StandardCharsets.UTF_8);
            String split = new String(x, 0, tail, StandardCharsets.UTF_8)
                    + new String(concat(Arrays.copyOfRange(x, tail, x.length), y), StandardCharsets.UTF_8);
            assertEquals(
                    whole,
                    split,
                    () -> HexFormat.of().formatHex(x) + " | " + HexFormat.of().formatHex(y));
        }
        assertEquals(1, Utf8Tail.incompleteTailStart(new byte[] {'a', (byte) 0xF0, (byte) 0x9F, (byte) 0x98}));
        assertEquals(4, Utf8Tail.incompleteTailStart(new byte[] {(byte) 0xF0, (byte) 0x9F, (byte) 0x98, (byte) 0x8A}));
        assertEquals(3, Utf8Tail.incompleteTailStart(new byte[] {'a', (byte) 0xE0, (byte) 0x80}), "E0 80 is malformed");
    }

    private static byte[] concat(byte[] a, byte[] b) {
        return ByteArrays.concat(a, b);
    }
}
