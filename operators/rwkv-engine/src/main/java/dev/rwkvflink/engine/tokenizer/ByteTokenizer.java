package dev.rwkvflink.engine.tokenizer;

import java.nio.charset.StandardCharsets;

/**
 * The trivial tokenizer of rwkv.cpp's tiny test models: each token is one byte of the UTF-8 text, its id the
 * byte's value (0..255). Every byte string is encodable, and decoding is exact.
 */
public final class ByteTokenizer implements Tokenizer {

    public static final int VOCAB_SIZE = 256;

    @Override
    public int[] encode(String text) {
        return encodeBytes(text.getBytes(StandardCharsets.UTF_8));
    }

    @Override
    public int[] encodeBytes(byte[] utf8) {
        int[] ids = new int[utf8.length];
        for (int i = 0; i < utf8.length; i++) {
            ids[i] = utf8[i] & 0xFF;
        }
        return ids;
    }

    @Override
    public byte[] decodeBytes(int[] ids) {
        byte[] out = new byte[ids.length];
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= VOCAB_SIZE) {
                throw new IllegalArgumentException("unknown token id " + ids[i] + " (the byte vocabulary has ids 0..255)");
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
