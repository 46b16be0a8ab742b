package dev.rwkvflink.engine.tensor;

/**
 * How the elements of a weight tensor are stored.
 *
 * <p>Float types store one element per {@code blockBytes}. The ggml block types store 32 elements per block
 * as small integers {@code q} with an fp16 scale {@code d} (and for the "_1" types an fp16 minimum {@code m}):
 * the element value is {@code d * q + m}. See {@link QuantBlock} for the exact bit layouts.
 */
public enum WeightType {
    F32(0, 1, 4),
    F16(1, 1, 2),
    BF16(-1, 1, 2),
    /** d (fp16), 16 bytes of 4-bit quants; value = d * (q - 8). */
    Q4_0(2, 32, 18),
    /** d, m (fp16), 16 bytes of 4-bit quants; value = d * q + m. */
    Q4_1(3, 32, 20),
    /** d (fp16), 32 high bits, 16 bytes of low nibbles; value = d * (q - 16). */
    Q5_0(7, 32, 22),
    /** d, m (fp16), 32 high bits, 16 bytes of low nibbles; value = d * q + m. */
    Q5_1(8, 32, 24),
    /** d (fp16), 32 signed bytes; value = d * q. */
    Q8_0(9, 32, 34);

    /** The ggml / rwkv.cpp type id, or -1 where rwkv.cpp has none. */
    public final int ggmlId;
    /** Elements per block (1 for float types). */
    public final int blockSize;
    /** Bytes per block. */
    public final int blockBytes;

    WeightType(int ggmlId, int blockSize, int blockBytes) {
        this.ggmlId = ggmlId;
        this.blockSize = blockSize;
        this.blockBytes = blockBytes;
    }

    public boolean isQuantized() {
        return blockSize > 1;
    }

    /** Bytes taken by {@code elements} elements; {@code elements} must be a multiple of the block size. */
    public long bytesFor(long elements) {
        if (elements % blockSize != 0) {
            throw new IllegalArgumentException(
                    this + " needs a multiple of " + blockSize + " elements, got " + elements);
        }
        return elements / blockSize * blockBytes;
    }

    public static WeightType fromGgmlId(int id) {
        for (WeightType t : values()) {
            if (t.ggmlId == id && id >= 0) {
                return t;
            }
        }
        throw new IllegalArgumentException("unsupported ggml data type " + id
                + " (known: 0 FP32, 1 FP16, 2 Q4_0, 3 Q4_1, 7 Q5_0, 8 Q5_1, 9 Q8_0)");
    }
}
