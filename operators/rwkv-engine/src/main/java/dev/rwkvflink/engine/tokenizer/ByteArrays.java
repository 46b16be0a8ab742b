package dev.rwkvflink.engine.tokenizer;

import java.util.Arrays;
import java.util.Objects;

/** Small byte-array helpers shared by the chunk tokenizers. */
final class ByteArrays {

    static final byte[] EMPTY = new byte[0];

    private ByteArrays() {}

    /** {@code a} followed by {@code b}, as a new array. */
    static byte[] concat(byte[] a, byte[] b) {
        Objects.requireNonNull(a, "carry");
        Objects.requireNonNull(b, "piece");
        byte[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
