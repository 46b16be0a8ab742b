package dev.rwkvflink.engine.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokenizersTest {

    @TempDir
    Path tmp;

    @Test
    void recognisesTheWorldVocabularyByContent() throws IOException {
        Path vocab = ReferenceData.require(ReferenceData.WORLD_VOCAB);
        Path renamed = Files.copy(vocab, tmp.resolve("vocab.json.bak")); // the name must not matter
        Tokenizer tokenizer = Tokenizers.load(renamed);
        assertInstanceOf(WorldTokenizer.class, tokenizer);
        assertArrayEquals(new int[] {11, 994, 2098, 29435, 21800}, tokenizer.encode("\nElon Musk has"));
    }

    @Test
    void recognisesTheNeoxJsonByContent() throws IOException {
        Path json = ReferenceData.require(ReferenceData.NEOX_TOKENIZER);
        Tokenizer tokenizer = Tokenizers.load(json);
        assertInstanceOf(NeoxBpeTokenizer.class, tokenizer);
        assertArrayEquals(new int[] {12092, 1533}, tokenizer.encode("Hello world"));
    }

    @Test
    void recognisesASmallWorldVocabulary() throws IOException {
        Path small = tmp.resolve("small.txt");
        Files.writeString(small, "1 'a' 1\n2 b'\\xff' 1\n3 \"it's\" 4\n");
        Tokenizer tokenizer = Tokenizers.load(small);
        assertInstanceOf(WorldTokenizer.class, tokenizer);
        assertArrayEquals(
                new int[] {3, 1, 2}, tokenizer.encodeBytes(new byte[] {'i', 't', '\'', 's', 'a', (byte) 0xFF}));
    }

    @Test
    void rejectsUnknownFormats() throws IOException {
        Path text = tmp.resolve("notes.txt");
        Files.writeString(text, "hello\nworld\n");
        VocabFormatException e = assertThrows(VocabFormatException.class, () -> Tokenizers.load(text));
        assertTrue(e.getMessage().contains("unrecognised vocabulary format"), e.getMessage());

        Path json = tmp.resolve("config.json");
        Files.writeString(json, "{\"model\": {\"type\": \"Unigram\"}}");
        VocabFormatException notBpe = assertThrows(VocabFormatException.class, () -> Tokenizers.load(json));
        assertTrue(notBpe.getMessage().contains("BPE"), notBpe.getMessage());
    }

    @Test
    void byteModelsNeedNoVocabulary() throws IOException {
        assertInstanceOf(ByteTokenizer.class, Tokenizers.forModel(256, null));
    }

    @Test
    void otherModelsWithoutVocabularyAreRejected() {
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> Tokenizers.forModel(65536, null));
        assertTrue(e.getMessage().contains("--vocab") && e.getMessage().contains("65536"), e.getMessage());
    }

    @Test
    void vocabularyMustFitTheModel() throws IOException {
        Path vocab = ReferenceData.require(ReferenceData.WORLD_VOCAB);
        Tokenizer world = Tokenizers.forModel(65536, vocab);
        assertEquals(65530, world.vocabSize());
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> Tokenizers.forModel(50277, vocab));
        assertTrue(e.getMessage().contains("65529") && e.getMessage().contains("50277"), e.getMessage());
    }

    @Test
    void neoxFitsRwkv4PileModels() throws IOException {
        Path json = ReferenceData.require(ReferenceData.NEOX_TOKENIZER);
        assertEquals(50277, Tokenizers.forModel(50277, json).vocabSize());
        assertThrows(IllegalArgumentException.class, () -> Tokenizers.forModel(256, json));
    }
}
