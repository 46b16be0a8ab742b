package dev.rwkvflink.engine.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class WorldTokenizerTest {

    private static WorldTokenizer world;

    private static synchronized WorldTokenizer world() throws IOException {
        Path vocab = ReferenceData.require(ReferenceData.WORLD_VOCAB);
        if (world == null) {
            world = WorldTokenizer.load(vocab);
        }
        return world;
    }

    /** rwkv.cpp {@code python/rwkv_cpp/rwkv_world_tokenizer.test.py}; re-verified in shared/reference/SOURCES.md. */
    @Test
    void encodesTheRwkvCppTestVector() throws IOException {
        String text = "I'll 'd test блабла 以下は、]) -> <|endoftext|><|padding|> int";
        int[] expected = {
            74, 5229, 274, 101, 32223, 5092, 27980, 2795, 27980, 33, 10399, 10258, 10139, 10079, 1682, 3463, 295, 125,
            25258, 7588, 2318, 125, 790, 125, 49520, 125, 63, 21888
        };
        assertArrayEquals(expected, world().encode(text));
        assertEquals(text, world().decode(expected));
    }

    @Test
    void encodesElonMusk() throws IOException {
        assertArrayEquals(new int[] {11, 994, 2098, 29435, 21800}, world().encode("\nElon Musk has"));
    }

    /**
     * Source: cahya-wirawan/rwkv-tokenizer {@code README.md} at commit 2015425298a5e3e294f048636f3f01b68247e44d
     * (its Rust World tokenizer, checked there against BlinkDL's reference tokenizer).
     */
    @Test
    void encodesTheRustRwkvTokenizerReadmeExample() throws IOException {
        int[] expected = {
            33520, 4600, 332, 59219, 21509, 47, 33, 10381, 11639, 13091, 15597, 11685, 14734, 10250, 11639, 10080
        };
        assertArrayEquals(expected, world().encode("Today is a beautiful day. 今天是美好的一天。"));
    }

    @Test
    void vocabularyHasIdsZeroTo65529() throws IOException {
        assertEquals(65530, world().vocabSize());
        assertEquals("rwkv-world", world().name());
        assertArrayEquals(new byte[0], world().bytesOf(WorldTokenizer.END_OF_TEXT));
        // line 262 of the file: 262 '\n ' 2; line 2412: 2412 b'\x82\xac' 2
        assertArrayEquals(new byte[] {'\n', ' '}, world().bytesOf(262));
        assertArrayEquals(new byte[] {(byte) 0x82, (byte) 0xAC}, world().bytesOf(2412));
        // line 1661: 1661 '\\$' 2 (a str literal with an escaped backslash)
        assertArrayEquals(new byte[] {'\\', '$'}, world().bytesOf(1661));
    }

    @Test
    void everyByteIsItsOwnTokenWithIdBytePlusOne() throws IOException {
        for (int b = 0; b < 256; b++) {
            byte[] one = {(byte) b};
            assertArrayEquals(new int[] {b + 1}, world().encodeBytes(one), "byte " + b);
            assertArrayEquals(one, world().decodeBytes(new int[] {b + 1}), "byte " + b);
        }
    }

    @Test
    void roundTripsVariedText() throws IOException {
        String[] texts = {
            "",
            "a",
            "Hello, world!",
            "   leading and trailing   ",
            "tab\tnew\nline\r\n",
            "émoji 👋🏽 🇺🇳 👨‍👩‍👧",
            "日本語のテキスト、中文文本，한국어",
            "<|endoftext|>",
            "\u0000\u0001\u007f",
            "x".repeat(1000),
            "def f(x):\n    return x ** 2  # comment\n",
        };
        for (String text : texts) {
            int[] ids = world().encode(text);
            assertEquals(text, world().decode(ids), text);
            assertArrayEquals(text.getBytes(StandardCharsets.UTF_8), world().decodeBytes(ids), text);
        }
    }

    @Test
    void roundTripsInvalidUtf8Bytes() throws IOException {
        byte[] bytes = {(byte) 0xFF, (byte) 0xFE, 'a', (byte) 0x80, (byte) 0xC3, 'b', (byte) 0xE4, (byte) 0xB8};
        int[] ids = world().encodeBytes(bytes);
        assertArrayEquals(bytes, world().decodeBytes(ids));

        Random random = new Random(42);
        for (int round = 0; round < 200; round++) {
            byte[] noise = new byte[random.nextInt(64)];
            random.nextBytes(noise);
            assertArrayEquals(noise, world().decodeBytes(world().encodeBytes(noise)));
        }
    }

    @Test
    void decodingEndOfTextGivesNoBytesAndMalformedUtf8IsReplaced() throws IOException {
        assertEquals("", world().decode(new int[] {0}));
        assertEquals("\nElon Musk has", world().decode(new int[] {0, 11, 994, 2098, 29435, 21800, 0}));
        assertEquals("\uFFFD", world().decode(new int[] {0xFF + 1}));
    }

    @Test
    void unknownIdsAreRejectedByName() throws IOException {
        IllegalArgumentException high =
                assertThrows(IllegalArgumentException.class, () -> world().decodeBytes(new int[] {74, 65530}));
        assertTrue(high.getMessage().contains("65530"), high.getMessage());
        IllegalArgumentException negative =
                assertThrows(IllegalArgumentException.class, () -> world().decode(new int[] {-1}));
        assertTrue(negative.getMessage().contains("-1"), negative.getMessage());
    }

    @Test
    void encodesALargeTextQuickly() throws IOException {
        String paragraph = "The quick brown fox jumps over the lazy dog. 敏捷的棕色狐狸跳过了懒狗。 Быстрая лиса. 🦊\n";
        String text = paragraph.repeat(20_000); // about 2.4 MB
        WorldTokenizer tokenizer = world();
        tokenizer.encode(text); // warm-up
        long start = System.nanoTime();
        int[] ids = tokenizer.encode(text);
        double seconds = (System.nanoTime() - start) / 1e9;
        assertEquals(text, tokenizer.decode(ids));
        System.out.printf(
                "World: %d bytes -> %d tokens in %.3f s (%.1f MB/s)%n",
                text.getBytes(StandardCharsets.UTF_8).length,
                ids.length,
                seconds,
                text.getBytes(StandardCharsets.UTF_8).length / seconds / 1e6);
        assertTrue(seconds < 5, "encoding took " + seconds + " s");
    }

    // ---- small hand-made vocabularies ----

    @TempDir
    Path tmp;

    private Path vocab(String... lines) throws IOException {
        Path file = tmp.resolve("vocab.txt");
        Files.writeString(file, String.join("\n", lines) + "\n", StandardCharsets.UTF_8);
        return file;
    }

    @Test
    void takesTheLongestMatchLeftToRight() throws IOException {
        WorldTokenizer small = WorldTokenizer.load(
                vocab("1 'a' 1", "2 'b' 1", "3 'c' 1", "4 'ab' 2", "5 'bc' 2", "6 'abc' 3", "7 'abca' 4"));
        assertArrayEquals(new int[] {7, 5}, small.encode("abcabc")); // "abca" wins over "abc" at the start
        assertArrayEquals(new int[] {4, 4}, small.encode("abab"));
        assertArrayEquals(new int[] {6, 2}, small.encode("abcb"));
        assertEquals(8, small.vocabSize());
        IllegalArgumentException noToken = assertThrows(IllegalArgumentException.class, () -> small.encode("abd"));
        assertTrue(
                noToken.getMessage().contains("0x64") && noToken.getMessage().contains("offset 2"),
                noToken.getMessage());
    }

    @Test
    void malformedLineIsReportedWithItsLineNumber() throws IOException {
        Path file = vocab("1 'a' 1", "2 'b' 1", "3 'c 1");
        VocabFormatException e = assertThrows(VocabFormatException.class, () -> WorldTokenizer.load(file));
        assertTrue(e.getMessage().contains("line 3"), e.getMessage());
        assertTrue(e.getMessage().contains("no closing"), e.getMessage());
    }

    @Test
    void wrongByteLengthIsReportedWithItsLineNumber() throws IOException {
        Path file = vocab("1 'a' 1", "2 '\\xe9' 1");
        VocabFormatException e = assertThrows(VocabFormatException.class, () -> WorldTokenizer.load(file));
        assertTrue(
                e.getMessage().contains("line 2") && e.getMessage().contains("2 bytes long but the line says 1"),
                e.getMessage());
    }

    @Test
    void duplicateIdsAndBytesAreRejected() throws IOException {
        VocabFormatException id = assertThrows(
                VocabFormatException.class, () -> WorldTokenizer.load(vocab("1 'a' 1", "2 'b' 1", "1 'c' 1")));
        assertTrue(
                id.getMessage().contains("line 3") && id.getMessage().contains("already defined on line 1"),
                id.getMessage());
        VocabFormatException bytes =
                assertThrows(VocabFormatException.class, () -> WorldTokenizer.load(vocab("1 'a' 1", "2 b'a' 1")));
        assertTrue(
                bytes.getMessage().contains("line 2") && bytes.getMessage().contains("same bytes as token 1"),
                bytes.getMessage());
    }

    /** Hostile vocabularies (issue 18): a sparse id would size the decoding table by itself; non-files block. */
    @Test
    void aSparseIdOrANonFileIsRefusedBeforeAllocating() throws IOException {
        assertEquals(
                65_536,
                WorldTokenizer.load(vocab("1 'a' 1", "65535 'b' 1")).vocabSize(),
                "ids up to 65,535 are always fine");
        assertLoadFails(vocab("1 'a' 1", "999999999 'b' 1"), "line 2", "token id 999999999 is far beyond");
        assertLoadFails(vocab("1 'a' 1", "70000 'b' 1"), "line 2", "ids must be dense");
        VocabFormatException dir = assertThrows(VocabFormatException.class, () -> WorldTokenizer.load(tmp));
        assertTrue(
                dir.getMessage().contains("not a regular file")
                        && dir.getMessage().contains("directory"),
                dir.getMessage());
        Path zero = Path.of("/dev/zero");
        if (Files.exists(zero)) {
            VocabFormatException device = assertThrows(VocabFormatException.class, () -> WorldTokenizer.load(zero));
            assertTrue(device.getMessage().contains("device or pipe"), device.getMessage());
        }
    }

    @Test
    void structuralErrorsNameTheLine() throws IOException {
        assertLoadFails(vocab("0 'a' 1"), "line 1", "reserved");
        assertLoadFails(vocab("1 'a' 1", "x 'b' 1"), "line 2", "bad token id 'x'");
        assertLoadFails(vocab("1 'a' 1", "2 'b'"), "line 2", "expected '<id> <python literal> <byte length>'");
        assertLoadFails(vocab("1 'a' one"), "line 1", "bad byte length 'one'");
        assertLoadFails(vocab("1 '' 0"), "line 1", "empty");
    }

    @Test
    void invalidUtf8InTheFileNamesTheLine() throws IOException {
        Path file = tmp.resolve("bad-utf8.txt");
        Files.write(file, new byte[] {
            '1', ' ', '\'', 'a', '\'', ' ', '1', '\n', '2', ' ', '\'', (byte) 0xFF, '\'', ' ', '1', '\n'
        });
        assertLoadFails(file, "line 2", "not valid UTF-8");
    }

    private static void assertLoadFails(Path file, String... expectedInMessage) {
        VocabFormatException e = assertThrows(VocabFormatException.class, () -> WorldTokenizer.load(file));
        for (String expected : expectedInMessage) {
            assertTrue(e.getMessage().contains(expected), e.getMessage());
        }
    }
}
