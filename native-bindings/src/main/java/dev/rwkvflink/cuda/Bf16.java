package dev.rwkvflink.cuda;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * bfloat16: the top 16 bits of a float (sign, 8 exponent bits, 7 mantissa bits), as {@code __nv_bfloat16}
 * stores it. Values are carried as {@code short} bit patterns.
 */
public final class Bf16 {
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;

    private Bf16() {
    }

    /**
     * The nearest bfloat16, ties to even (as {@code __float2bfloat16_rn}); NaN stays NaN (made quiet, sign
     * kept); values beyond the largest bfloat16 become infinity.
     */
    public static short fromFloat(float value) {
        int bits = Float.floatToRawIntBits(value);
        if ((bits & 0x7FFF_FFFF) > 0x7F80_0000) { // NaN: keep the top bits, force the quiet bit
            return (short) ((bits >>> 16) | 0x0040);
        }
        int roundingBias = 0x7FFF + ((bits >>> 16) & 1);
        return (short) ((bits + roundingBias) >>> 16);
    }

    /** The float with the same value (exact: every bfloat16 is a float). */
    public static float toFloat(short bf16) {
        return Float.intBitsToFloat((bf16 & 0xFFFF) << 16);
    }

    /** {@code value} rounded to bfloat16 and back: what a device sees after uploading it as bfloat16. */
    public static float round(float value) {
        return toFloat(fromFloat(value));
    }

    /** Writes {@code values} as bfloat16 to {@code dst} from byte {@code offset}, 2 bytes each, native order. */
    public static void write(float[] values, MemorySegment dst, long offset) {
        for (int i = 0; i < values.length; i++) {
            dst.set(SHORT, offset + 2L * i, fromFloat(values[i]));
        }
    }

    /** Reads {@code count} bfloat16 values from {@code src} at byte {@code offset} as floats. */
    public static float[] read(MemorySegment src, long offset, int count) {
        float[] out = new float[count];
        for (int i = 0; i < count; i++) {
            out[i] = toFloat(src.get(SHORT, offset + 2L * i));
        }
        return out;
    }
}
