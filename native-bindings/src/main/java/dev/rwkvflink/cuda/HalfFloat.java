package dev.rwkvflink.cuda;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The 16-bit float formats the GPU kernels and cuBLAS read and write, carried as {@code short} bit patterns: the one
 * place their conversions live (the CPU engine's bf16 tensors use them too).
 */
public enum HalfFloat {
    /**
     * bfloat16: the top 16 bits of a float (sign, 8 exponent bits, 7 mantissa bits), as {@code __nv_bfloat16}
     * stores it. From a float: the nearest, ties to even (as {@code __float2bfloat16_rn}), by adding 0x7FFF plus the
     * lowest kept bit and truncating; a NaN keeps its sign and top payload bits and gets the quiet bit (0x0040);
     * values beyond the largest become infinity. To a float: exact.
     */
    BF16 {
        @Override
        public short fromFloat(float value) {
            int bits = Float.floatToRawIntBits(value);
            if ((bits & 0x7FFF_FFFF) > 0x7F80_0000) {
                return (short) ((bits >>> 16) | 0x0040);
            }
            return (short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16);
        }

        @Override
        public float toFloat(short bits) {
            return Float.intBitsToFloat((bits & 0xFFFF) << 16);
        }
    },

    /**
     * IEEE half precision ({@code __half}): 1 sign, 5 exponent, 10 mantissa bits; the JDK's conversions
     * ({@link Float#floatToFloat16}: nearest, ties to even, overflow to infinity, NaN stays NaN).
     */
    FP16 {
        @Override
        public short fromFloat(float value) {
            return Float.floatToFloat16(value);
        }

        @Override
        public float toFloat(short bits) {
            return Float.float16ToFloat(bits);
        }
    };

    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;

    /** The nearest value of this format to {@code value}, as bits. */
    public abstract short fromFloat(float value);

    /** The float with the same value (exact: every value of both formats is a float). */
    public abstract float toFloat(short bits);

    /** {@code value} rounded to this format and back: what a device sees after uploading it so. */
    public float round(float value) {
        return toFloat(fromFloat(value));
    }

    /** Writes {@code values} in this format to {@code dst} from byte {@code offset}, 2 bytes each, native order. */
    public void write(float[] values, MemorySegment dst, long offset) {
        for (int i = 0; i < values.length; i++) {
            dst.set(SHORT, offset + 2L * i, fromFloat(values[i]));
        }
    }

    /** Reads {@code count} values of this format from {@code src} at byte {@code offset} as floats. */
    public float[] read(MemorySegment src, long offset, int count) {
        float[] out = new float[count];
        for (int i = 0; i < count; i++) {
            out[i] = toFloat(src.get(SHORT, offset + 2L * i));
        }
        return out;
    }
}
