package dev.rwkvflink.engine.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Expected ids come from Hugging Face {@code tokenizers} runs published by others (sources on each test), since
 * this build has no Python tokenizers package. Pythia uses the GPT-NeoX-20B tokenizer unchanged.
 */
class NeoxBpeTokenizerTest {

    private static NeoxBpeTokenizer neox;

    private static synchronized NeoxBpeTokenizer neox() throws IOException {
        Path json = ReferenceData.require(ReferenceData.NEOX_TOKENIZER);
        if (neox == null) {
            neox = NeoxBpeTokenizer.load(json);
        }
        return neox;
    }

    /**
     * Source: huggingface/transformers {@code tests/models/gpt_neox/test_tokenization_gpt_neox.py} at commit
     * 796319cdf3aa8c560d185c4a9f73de7c8b1eb034, {@code integration_expected_token_ids} for
     * {@code from_pretrained_id = "EleutherAI/gpt-neox-20b"}; the input is the test's
     * {@code integration_expected_decoded_text} (the common input string of {@code test_tokenization_common.py}).
     * It covers an emoji, é, Chinese, Thai, runs of 2 and 3 spaces (added tokens 50276, 50275), "\n\n \n"
     * (one whitespace pre-token 'ĊĊĠĊ') and "&lt;s&gt;" as plain text.
     */
    @Test
    void matchesTransformersIntegrationVector() throws IOException {
        String text = "This is a test 😊\nI was born in 92000, and this is falsé.\n生活的真谛是\nHi  Hello\nHi   Hello\n\n \n"
                + "  \n Hello\n<s>\nhi<s>there\nThe following string should be properly encoded: Hello.\n"
                + "But ird and ปี   ird   ด\nHey how are you doing";
        int[] expected = {
            1552, 310, 247, 1071, 49042, 221, 187, 42, 369, 5686, 275, 898, 6914, 13, 285, 436, 310, 21649, 860, 15,
            187, 20025, 46549, 5225, 48561, 33656, 238, 12105, 187, 12764, 50276, 12092, 187, 12764, 50275, 12092,
            46603, 50276, 187, 24387, 187, 29, 84, 31, 187, 5801, 29, 84, 31, 9088, 187, 510, 1563, 2876, 943, 320,
            6283, 16202, 27, 24387, 15, 187, 1989, 209, 1817, 285, 209, 2869, 238, 26863, 50275, 1817, 50275, 35071,
            187, 8262, 849, 403, 368, 2509
        };
        assertArrayEquals(expected, neox().encode(text));
        assertEquals(text, neox().decode(expected));
    }

    /**
     * Source: h2oai/h2o-llmstudio {@code tests/src/datasets/test_text_utils.py} at commit
     * 9da63862ac6e71b0e53a5f2a3435710c9726f984, {@code EXPECTED_TOKEN_IDS["EleutherAI/pythia-70m"]}
     * ("Token ids produced by Transformers 4.56.1", add_special_tokens=False).
     */
    @Test
    void matchesPythiaVectorsFromH2oLlmStudio() throws IOException {
        assertArrayEquals(new int[] {29, 93, 43274, 49651}, neox().encode("<|prompt|>"));
        assertArrayEquals(new int[] {66}, neox().encode("a"));
        assertArrayEquals(new int[] {12092, 1533}, neox().encode("Hello world"));
        assertArrayEquals(new int[] {4283, 2317}, neox().encode(" leading space"));
        assertArrayEquals(new int[] {22495, 187, 1282, 186, 1156}, neox().encode("Multi\nline\ttext"));
    }

    /**
     * Source: dtch1997/repepo {@code tests/data/test_utils.py} at commit 373f501cb3fdd9ffaa87e2bdf8b8b1d688692aed,
     * {@code test_tokenize}: the Pythia tokenizer's {@code input_ids} for "Hello world" are [12092, 1533].
     */
    @Test
    void matchesHelloWorldFromRepepo() throws IOException {
        assertArrayEquals(new int[] {12092, 1533}, neox().encode("Hello world"));
        assertEquals("Hello world", neox().decode(new int[] {12092, 1533}));
    }

    @Test
    void specialTokensAreMatchedInRawTextAndDecodeToNothing() throws IOException {
        // ids of 'a' and 'b' in model.vocab: 66 and 67
        assertArrayEquals(new int[] {66, 0, 67}, neox().encode("a<|endoftext|>b"));
        assertArrayEquals(new int[] {0, 1}, neox().encode("<|endoftext|><|padding|>"));
        assertEquals("ab", neox().decode(new int[] {66, 0, 67, 1}));
    }

    @Test
    void longSpaceRunsSplitLeftmostLongest() throws IOException {
        // 25 spaces: the 24-space added token (50254), then " y" as one pre-token ('Ġy' = 340 in model.vocab)
        assertArrayEquals(new int[] {89, 50254, 340}, neox().encode("x" + " ".repeat(25) + "y"));
        assertEquals("x" + " ".repeat(25) + "y", neox().decode(new int[] {89, 50254, 340}));
    }

    @Test
    void normalizesToNfc() throws IOException {
        // "e" + combining acute becomes "é" before tokenisation
        assertArrayEquals(neox().encode("fals\u00e9"), neox().encode("false\u0301"));
        assertArrayEquals(new int[] {21649, 860}, neox().encode(" false\u0301"));
    }

    @Test
    void roundTripsNfcText() throws IOException {
        String[] texts = {
            "",
            " ",
            "\n\n\n",
            "tab\tnew\nline\r\n",
            "émoji 👋🏽 🇺🇳 👨‍👩‍👧 done",
            "日本語のテキスト、中文文本，한국어",
            "x".repeat(5000),
            "1234567890 3.14159 -42",
            "def f(x):\n        return x ** 2  # comment\n",
            "it's we're THEY'LL I'd",
            "\u00a0nbsp\u2003em"
        };
        for (String text : texts) {
            assertEquals(text, neox().decode(neox().encode(text)), text);
        }
    }

    @Test
    void vocabularyAndUnknownIds() throws IOException {
        assertEquals(50277, neox().vocabSize());
        assertEquals("gpt-neox-bpe", neox().name());
        assertEquals("  ", neox().decode(new int[] {50276}));
        assertEquals(" ".repeat(24), neox().decode(new int[] {50254}));
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> neox().decode(new int[] {50277}));
        assertTrue(e.getMessage().contains("50277"), e.getMessage());
    }

    @Test
    void encodesALargeTextQuickly() throws IOException {
        String paragraph =
                "The quick brown fox jumps over the lazy dog. Numbers 12345, symbols #@!, " + "déjà vu, 敏捷的棕色狐狸。\n";
        String text = paragraph.repeat(20_000);
        neox().encode(text);
        long start = System.nanoTime();
        int[] ids = neox().encode(text);
        double seconds = (System.nanoTime() - start) / 1e9;
        assertEquals(text, neox().decode(ids));
        System.out.printf(
                "NeoX: %d bytes -> %d tokens in %.3f s%n",
                text.getBytes(StandardCharsets.UTF_8).length, ids.length, seconds);
        assertTrue(seconds < 10, "encoding took " + seconds + " s");
    }

    // ---- a tiny hand-made tokenizer: BPE merge order ----

    @TempDir
    Path tmp;

    @Test
    void mergesByRankLeftmostFirst() throws IOException {
        // vocab: a=0 b=1 aa=2 ab=3 aab=4; merges by rank: "a a" (0), "a b" (1), "aa b" (2)
        Path file = tmp.resolve("tiny.json");
        Files.writeString(file, """
                {"normalizer": null, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
                 "added_tokens": [],
                 "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "aa": 2, "ab": 3, "aab": 4},
                           "merges": ["a a", "a b", "aa b"]}}
                """);
        NeoxBpeTokenizer tiny = NeoxBpeTokenizer.load(file);
        assertArrayEquals(new int[] {2, 0}, tiny.encode("aaa")); // "aa a": leftmost of equal ranks
        assertArrayEquals(new int[] {4}, tiny.encode("aab")); // "a a" before "a b", then "aa b"
        assertArrayEquals(new int[] {2, 3}, tiny.encode("aaab")); // "aa" + "ab" ("a a" at 0, then "a b")
        assertEquals(5, tiny.vocabSize());
    }

    @Test
    void unsupportedSettingsAreRejected() throws IOException {
        Path file = tmp.resolve("prefix.json");
        Files.writeString(file, """
                {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": true},
                 "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}
                """);
        VocabFormatException e = assertThrows(VocabFormatException.class, () -> NeoxBpeTokenizer.load(file));
        assertTrue(e.getMessage().contains("add_prefix_space"), e.getMessage());

        Path wordPiece = tmp.resolve("wordpiece.json");
        Files.writeString(wordPiece, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}");
        VocabFormatException notBpe = assertThrows(VocabFormatException.class, () -> NeoxBpeTokenizer.load(wordPiece));
        assertTrue(notBpe.getMessage().contains("BPE"), notBpe.getMessage());
    }
}
