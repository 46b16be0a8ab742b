package dev.rwkvflink.cuda;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * IEEE half precision ({@code __half}): 1 sign, 5 exponent, 10 mantissa bits, carried as {@code short} bit
 * patterns. The conversions are the JDK's ({@link Float#floatToFloat16}, round to nearest even).
 */
public final class Fp16 {
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;

    private Fp16() {
    }

    /** The nearest half, ties to even; overflow gives infinity, NaN stays NaN. */
    public static short fromFloat(float value) {
        return Float.floatToFloat16(value);
    }

    /** The float with the same value (exact). */
    public static float toFloat(short fp16) {
        return Float.float16ToFloat(fp16);
    }

    /** {@code value} rounded to half and back. */
    public static float round(float value) {
        return toFloat(fromFloat(value));
    }

    /** Writes {@code values} as halves to {@code dst} from byte {@code offset}, 2 bytes each, native order. */
    public static void write(float[] values, MemorySegment dst, long offset) {
        for (int i = 0; i < values.length; i++) {
            dst.set(SHORT, offset + 2L * i, fromFloat(values[i]));
        }
    }

    /** Reads {@code count} halves from {@code src} at byte {@code offset} as floats. */
    public static float[] read(MemorySegment src, long offset, int count) {
        float[] out = new float[count];
        for (int i = 0; i < count; i++) {
            out[i] = toFloat(src.get(SHORT, offset + 2L * i));
        }
        return out;
    }
}
