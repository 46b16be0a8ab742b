package dev.rwkvflink.engine.tokenizer;

import java.nio.charset.StandardCharsets;

/**
 * The trivial tokenizer of rwkv.cpp's tiny test models: each token is one byte of the UTF-8 text, its id the
 * byte's value (0..255). Every byte string is encodable (raw bytes are taken as they are, valid UTF-8 or not),
 * and decoding is exact.
 *
 * <p>{@link #chunked()}: every byte is final the moment it arrives, so a step emits all its bytes and the carry is
 * always empty.
 */
public final class ByteTokenizer implements Tokenizer {

    public static final int VOCAB_SIZE = 256;

    @Override
    public int[] encode(String text) {
        return encodeBytes(text.getBytes(StandardCharsets.UTF_8));
    }

    /** One token per byte, whatever the bytes are (no UTF-8 decoding). */
    @Override
    public int[] encodeBytes(byte[] bytes) {
        int[] ids = new int[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            ids[i] = bytes[i] & 0xFF;
        }
        return ids;
    }

    /** Carry: always empty (0 bytes). */
    @Override
    public ChunkTokenizer chunked() {
        return (carry, piece, last) ->
                new ChunkTokenizer.Step(encodeBytes(ByteArrays.concat(carry, piece)), ByteArrays.EMPTY);
    }

    @Override
    public byte[] decodeBytes(int[] ids) {
        byte[] out = new byte[ids.length];
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= VOCAB_SIZE) {
                throw new IllegalArgumentException(
                        "unknown token id " + ids[i] + " (the byte vocabulary has ids 0..255)");
            }
            out[i] = (byte) ids[i];
        }
        return out;
    }

    @Override
    public int vocabSize() {
        return VOCAB_SIZE;
    }

    @Override
    public String name() {
        return "byte";
    }
}
