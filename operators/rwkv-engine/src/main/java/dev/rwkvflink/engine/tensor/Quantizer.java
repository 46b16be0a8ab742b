package dev.rwkvflink.engine.tensor;

import dev.rwkvflink.cuda.HalfFloat;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * Converts float32 values to every {@link WeightType}, producing a heap {@link Tensor}.
 *
 * <p>The block types follow ggml's reference quantizers ({@code quantize_row_q4_0_ref} ...
 * {@code quantize_row_q8_0_ref} in {@code ggml-quants.c}, which is what {@code ggml_quantize_chunk} runs when no
 * importance matrix is given, i.e. what rwkv.cpp's {@code rwkv_quantize_model_file} writes), re-derived here step by
 * step with the same float32 arithmetic so that the bytes come out identical. The values are cut into consecutive
 * blocks of 32 (rows must therefore be a multiple of 32 long) and each block is quantized on its own:
 *
 * <pre>
 * Q4_0: amax = max |x|, "max" = the first x with |x| = amax (sign kept)
 *       d = max / -8,  q = min(15, trunc(x/d + 8.5))          stored q in 0..15, value d*(q-8)
 * Q5_0: d = max / -16, q = min(31, trunc(x/d + 16.5))         stored q in 0..31, value d*(q-16)
 * Q4_1: lo = min x, hi = max x, d = (hi - lo) / 15, m = lo
 *       q = min(15, trunc((x - lo)/d + 0.5))                   value d*q + m
 * Q5_1: d = (hi - lo) / 31,  q = trunc((x - lo)/d + 0.5)       value d*q + m
 * Q8_0: d = amax / 127, q = roundf(x/d) (half away from zero)  value d*q
 * </pre>
 * "x/d" is computed as {@code x * id} with {@code id = 1/d} (0 when d is 0) in float32, where d is the float32
 * scale <em>before</em> it is rounded to the fp16 that is stored, exactly as ggml does. Choosing d from the
 * signed extreme ("max / -8") makes that extreme land exactly on q = 0 (value -8d), so the asymmetric 4-bit range
 * -8..7 covers the larger side; the opposite extreme, if equally large, is clipped to q = 7.
 *
 * <p>F16 uses IEEE round-to-nearest-even ({@link Float#floatToFloat16}); BF16 keeps the top 16 bits of the fp32
 * pattern after round-to-nearest-even, and turns any NaN into a quiet NaN (rounding could otherwise carry a NaN's
 * payload into the exponent and make it infinite).
 */
public final class Quantizer {
    private static final int QK = QuantBlock.SIZE;

    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private Quantizer() {}

    /**
     * A heap tensor of {@code type} holding {@code values} (row-major, {@code values.length} must equal the product
     * of {@code shape}; for block types the last dimension must be a multiple of 32).
     */
    public static Tensor quantize(String name, float[] values, long[] shape, WeightType type) {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        if (n != values.length) {
            throw new IllegalArgumentException(name + ": shape " + Arrays.toString(shape) + " has " + n
                    + " elements, got " + values.length + " values");
        }
        if (type.isQuantized() && shape.length > 0 && shape[shape.length - 1] % QK != 0) {
            throw new IllegalArgumentException(name + ": " + type + " rows must be a multiple of " + QK
                    + " elements, shape " + Arrays.toString(shape));
        }
        MemorySegment seg = Arena.ofAuto().allocate(type.bytesFor(values.length), 64);
        encode(type, values, 0, values.length, seg, 0);
        return Tensor.of(name, type, shape, seg);
    }

    /** A 2-D tensor of {@code rows x cols}; convenience for {@link #quantize(String, float[], long[], WeightType)}. */
    public static Tensor quantize(String name, float[] values, int rows, int cols, WeightType type) {
        return quantize(name, values, new long[] {rows, cols}, type);
    }

    /**
     * Encodes {@code src[from .. from + count)} as {@code type} into {@code dst} at byte {@code dstOff}
     * ({@code type.bytesFor(count)} bytes; for block types {@code count} must be a multiple of 32).
     */
    public static void encode(WeightType type, float[] src, int from, int count, MemorySegment dst, long dstOff) {
        switch (type) {
            case F32 -> MemorySegment.copy(src, from, dst, F32, dstOff, count);
            case F16 -> {
                for (int i = 0; i < count; i++) {
                    dst.set(U16, dstOff + 2L * i, Float.floatToFloat16(src[from + i]));
                }
            }
            case BF16 -> {
                for (int i = 0; i < count; i++) {
                    dst.set(U16, dstOff + 2L * i, HalfFloat.BF16.fromFloat(src[from + i]));
                }
            }
            default -> {
                if (count % QK != 0) {
                    throw new IllegalArgumentException(type + " needs a multiple of " + QK + " values, got " + count);
                }
                for (int b = 0; b < count / QK; b++) {
                    long off = dstOff + (long) b * type.blockBytes;
                    int x = from + b * QK;
                    switch (type) {
                        case Q4_0 -> blockQ4_0(src, x, dst, off);
                        case Q4_1 -> blockQ4_1(src, x, dst, off);
                        case Q5_0 -> blockQ5_0(src, x, dst, off);
                        case Q5_1 -> blockQ5_1(src, x, dst, off);
                        case Q8_0 -> blockQ8_0(src, x, dst, off);
                        default -> throw new AssertionError(type);
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // The block quantizers. Each reads x[xo .. xo + 32) and writes one block at dst[off].

    /** Q4_0: fp16 d | 16 bytes, element j in the low nibble of byte j, element j+16 in its high nibble. */
    private static void blockQ4_0(float[] x, int xo, MemorySegment dst, long off) {
        float max = signedAbsMax(x, xo);
        float d = max / -8f;
        float id = d != 0f ? 1f / d : 0f;
        dst.set(U16, off, Float.floatToFloat16(d));
        for (int j = 0; j < QK / 2; j++) {
            int q0 = Math.min(15, truncToByte(x[xo + j] * id + 8.5f));
            int q1 = Math.min(15, truncToByte(x[xo + QK / 2 + j] * id + 8.5f));
            dst.set(ValueLayout.JAVA_BYTE, off + 2 + j, (byte) (q0 | q1 << 4));
        }
    }

    /** Smallest of the block's 32 values (the "_1" types' minimum m). */
    private static float blockMin(float[] x, int xo) {
        float lo = Float.MAX_VALUE;
        for (int j = 0; j < QK; j++) {
            if (x[xo + j] < lo) { // strict compare, as ggml: keeps the first of -0.0 and 0.0
                lo = x[xo + j];
            }
        }
        return lo;
    }

    /** Largest of the block's 32 values. */
    private static float blockMax(float[] x, int xo) {
        float hi = -Float.MAX_VALUE;
        for (int j = 0; j < QK; j++) {
            if (x[xo + j] > hi) {
                hi = x[xo + j];
            }
        }
        return hi;
    }

    /** Q4_1: fp16 d | fp16 m | 16 bytes of nibbles as in Q4_0. */
    private static void blockQ4_1(float[] x, int xo, MemorySegment dst, long off) {
        float lo = blockMin(x, xo);
        float d = (blockMax(x, xo) - lo) / 15f;
        float id = d != 0f ? 1f / d : 0f;
        dst.set(U16, off, Float.floatToFloat16(d));
        dst.set(U16, off + 2, Float.floatToFloat16(lo));
        for (int j = 0; j < QK / 2; j++) {
            int q0 = Math.min(15, truncToByte((x[xo + j] - lo) * id + 0.5f));
            int q1 = Math.min(15, truncToByte((x[xo + QK / 2 + j] - lo) * id + 0.5f));
            dst.set(ValueLayout.JAVA_BYTE, off + 4 + j, (byte) (q0 | q1 << 4));
        }
    }

    /**
     * Q5_0: fp16 d | u32 qh | 16 bytes. The low 4 bits of each 5-bit q go into the nibbles as in Q4_0; the 5th bit
     * of element j goes to bit j of qh.
     */
    private static void blockQ5_0(float[] x, int xo, MemorySegment dst, long off) {
        float max = signedAbsMax(x, xo);
        float d = max / -16f;
        float id = d != 0f ? 1f / d : 0f;
        dst.set(U16, off, Float.floatToFloat16(d));
        int qh = 0;
        for (int j = 0; j < QK / 2; j++) {
            int q0 = Math.min(31, truncToByte(x[xo + j] * id + 16.5f));
            int q1 = Math.min(31, truncToByte(x[xo + QK / 2 + j] * id + 16.5f));
            dst.set(ValueLayout.JAVA_BYTE, off + 6 + j, (byte) ((q0 & 0x0F) | (q1 & 0x0F) << 4));
            qh |= ((q0 >>> 4) & 1) << j;
            qh |= ((q1 >>> 4) & 1) << (j + QK / 2);
        }
        dst.set(U32, off + 2, qh);
    }

    /** Q5_1: fp16 d | fp16 m | u32 qh | 16 bytes, bits placed as in Q5_0. */
    private static void blockQ5_1(float[] x, int xo, MemorySegment dst, long off) {
        float lo = blockMin(x, xo);
        float d = (blockMax(x, xo) - lo) / 31f;
        float id = d != 0f ? 1f / d : 0f;
        dst.set(U16, off, Float.floatToFloat16(d));
        dst.set(U16, off + 2, Float.floatToFloat16(lo));
        int qh = 0;
        for (int j = 0; j < QK / 2; j++) {
            // ggml has no clamp here: (x - lo) * id is at most 31 (plus rounding), so q <= 31.
            int q0 = truncToByte((x[xo + j] - lo) * id + 0.5f);
            int q1 = truncToByte((x[xo + QK / 2 + j] - lo) * id + 0.5f);
            dst.set(ValueLayout.JAVA_BYTE, off + 8 + j, (byte) ((q0 & 0x0F) | (q1 & 0x0F) << 4));
            qh |= ((q0 >>> 4) & 1) << j;
            qh |= ((q1 >>> 4) & 1) << (j + QK / 2);
        }
        dst.set(U32, off + 4, qh);
    }

    /** Q8_0: fp16 d | 32 signed bytes. */
    private static void blockQ8_0(float[] x, int xo, MemorySegment dst, long off) {
        float amax = 0f;
        for (int j = 0; j < QK; j++) {
            amax = Math.max(amax, Math.abs(x[xo + j]));
        }
        float d = amax / 127f;
        float id = d != 0f ? 1f / d : 0f;
        dst.set(U16, off, Float.floatToFloat16(d));
        for (int j = 0; j < QK; j++) {
            dst.set(ValueLayout.JAVA_BYTE, off + 2 + j, (byte) roundHalfAway(x[xo + j] * id));
        }
    }

    /** The element of largest magnitude, sign kept; the first one wins a tie (ggml's strict "amax &lt; |v|"). */
    private static float signedAbsMax(float[] x, int xo) {
        float amax = 0f;
        float max = 0f;
        for (int j = 0; j < QK; j++) {
            float v = x[xo + j];
            if (amax < Math.abs(v)) {
                amax = Math.abs(v);
                max = v;
            }
        }
        return max;
    }

    /**
     * C's float-to-small-integer conversion as used by ggml ({@code (int8_t) f} / {@code (uint8_t) f}): truncation
     * toward zero. The arguments are always in 0 .. 32 here, so the result fits; the low 8 bits are kept as C would.
     */
    private static int truncToByte(float f) {
        return ((int) f) & 0xFF;
    }

    /** C's {@code roundf}: nearest integer, halves away from zero (unlike {@link Math#round}, which rounds up). */
    private static int roundHalfAway(float f) {
        float a = Math.abs(f);
        float r = (float) Math.floor(a);
        if (a - r >= 0.5f) { // exact: a and r share the exponent range, a - r is representable
            r += 1f;
        }
        return (int) Math.copySign(r, f);
    }
}
