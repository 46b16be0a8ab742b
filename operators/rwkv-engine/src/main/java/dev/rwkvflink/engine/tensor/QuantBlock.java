package dev.rwkvflink.engine.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Decodes one ggml quantization block of 32 elements into integer quants {@code q[0..31]}, a scale {@code d} and
 * a minimum {@code m}, so that element {@code j} is exactly {@code d * q[j] + m}. One place for the bit layouts
 * (ggml's {@code block_q4_0} ... {@code block_q8_0}, all little-endian):
 *
 * <pre>
 * Q4_0: fp16 d | u8 qs[16]            q[j] = (qs[j] &amp; 15) - 8,  q[j+16] = (qs[j] &gt;&gt; 4) - 8
 * Q4_1: fp16 d | fp16 m | u8 qs[16]   q[j] =  qs[j] &amp; 15,      q[j+16] =  qs[j] &gt;&gt; 4
 * Q5_0: fp16 d | u32 qh | u8 qs[16]   q[j] = ((qs[j] &amp; 15) | bit j of qh &lt;&lt; 4) - 16,
 *                                      q[j+16] = ((qs[j] &gt;&gt; 4) | bit (j+16) of qh &lt;&lt; 4) - 16
 * Q5_1: fp16 d | fp16 m | u32 qh | u8 qs[16]   as Q5_0 without the -16
 * Q8_0: fp16 d | i8 qs[32]            q[j] = qs[j]
 * </pre>
 */
public final class QuantBlock {
    public static final int SIZE = 32;

    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED;

    private QuantBlock() {}

    /** Scale d of the block at {@code off}. */
    public static float scale(MemorySegment seg, long off) {
        return Float.float16ToFloat(seg.get(U16, off));
    }

    /** Minimum m of the block at {@code off} (0 for the symmetric types). */
    public static float min(WeightType type, MemorySegment seg, long off) {
        return switch (type) {
            case Q4_1, Q5_1 -> Float.float16ToFloat(seg.get(U16, off + 2));
            default -> 0f;
        };
    }

    /** Fills {@code q[0..31]} with the block's integer quants (offsets such as -8 already applied). */
    public static void quants(WeightType type, MemorySegment seg, long off, int[] q) {
        switch (type) {
            case Q4_0 -> nibbles(seg, off + 2, q, -8);
            case Q4_1 -> nibbles(seg, off + 4, q, 0);
            case Q5_0 -> fiveBits(seg, off + 2, q, -16);
            case Q5_1 -> fiveBits(seg, off + 4, q, 0);
            case Q8_0 -> {
                for (int j = 0; j < SIZE; j++) {
                    q[j] = seg.get(ValueLayout.JAVA_BYTE, off + 2 + j);
                }
            }
            default -> throw new IllegalArgumentException(type + " is not a block type");
        }
    }

    private static void nibbles(MemorySegment seg, long qs, int[] q, int bias) {
        for (int j = 0; j < SIZE / 2; j++) {
            int b = seg.get(ValueLayout.JAVA_BYTE, qs + j) & 0xFF;
            q[j] = (b & 0x0F) + bias;
            q[j + SIZE / 2] = (b >>> 4) + bias;
        }
    }

    /** {@code qhOff} points at the u32 of high bits, followed by 16 bytes of low nibbles. */
    private static void fiveBits(MemorySegment seg, long qhOff, int[] q, int bias) {
        int qh = seg.get(U32, qhOff);
        long qs = qhOff + 4;
        for (int j = 0; j < SIZE / 2; j++) {
            int b = seg.get(ValueLayout.JAVA_BYTE, qs + j) & 0xFF;
            int hi0 = (qh >>> j) & 1;
            int hi1 = (qh >>> (j + SIZE / 2)) & 1;
            q[j] = ((b & 0x0F) | (hi0 << 4)) + bias;
            q[j + SIZE / 2] = ((b >>> 4) | (hi1 << 4)) + bias;
        }
    }
}
