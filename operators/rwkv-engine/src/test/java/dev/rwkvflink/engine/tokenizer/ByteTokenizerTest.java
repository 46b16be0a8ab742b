package dev.rwkvflink.engine.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class ByteTokenizerTest {

    private final ByteTokenizer tokenizer = new ByteTokenizer();

    @Test
    void tokensAreUtf8ByteValues() {
        assertArrayEquals(new int[] {72, 105, 32, 0xC3, 0xA9}, tokenizer.encode("Hi é"));
        assertEquals("Hi é", tokenizer.decode(new int[] {72, 105, 32, 0xC3, 0xA9}));
        assertEquals(256, tokenizer.vocabSize());
        assertEquals("byte", tokenizer.name());
    }

    @Test
    void rawBytesRoundTrip() {
        byte[] bytes = {(byte) 0xFF, 0, (byte) 0x80, 'x'};
        assertArrayEquals(new int[] {255, 0, 128, 120}, tokenizer.encodeBytes(bytes));
        assertArrayEquals(bytes, tokenizer.decodeBytes(new int[] {255, 0, 128, 120}));
        assertEquals("\uFFFD", tokenizer.decode(new int[] {0xFF}));
    }

    @Test
    void idsOutsideAByteAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> tokenizer.decodeBytes(new int[] {256}));
        assertThrows(IllegalArgumentException.class, () -> tokenizer.decodeBytes(new int[] {-1}));
    }
}
