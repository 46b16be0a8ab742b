package dev.rwkvflink.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/** bfloat16 and half conversions against known bit patterns. Runs on every machine. */
class HalfFloatTest {

    private static short bf16(float f) {
        return HalfFloat.BF16.fromFloat(f);
    }

    private static float bits(int b) {
        return Float.intBitsToFloat(b);
    }

    @Test
    void exactValuesKeepTheirBits() {
        assertEquals((short) 0x3F80, bf16(1.0f));
        assertEquals((short) 0xC000, bf16(-2.0f));
        assertEquals((short) 0x0000, bf16(0.0f));
        assertEquals((short) 0x8000, bf16(-0.0f));
        assertEquals((short) 0x7F80, bf16(Float.POSITIVE_INFINITY));
        assertEquals((short) 0xFF80, bf16(Float.NEGATIVE_INFINITY));
        assertEquals((short) 0x7F7F, bf16(bits(0x7F7F0000))); // largest finite bfloat16
    }

    @Test
    void roundsToNearest() {
        assertEquals((short) 0x4049, bf16((float) Math.PI)); // 0x40490FDB: low half below the midpoint
        assertEquals((short) 0x3EAB, bf16(1.0f / 3)); // 0x3EAAAAAB: above the midpoint, up
        assertEquals((short) 0x3F81, bf16(bits(0x3F808001))); // just above a tie: up
        assertEquals((short) 0x3F80, bf16(bits(0x3F807FFF))); // just below a tie: down
        assertEquals((short) 0xBF81, bf16(bits(0xBF808001))); // negative values round by magnitude
    }

    @Test
    void tiesGoToEven() {
        assertEquals((short) 0x3F80, bf16(bits(0x3F808000))); // 1.00390625: between 0x3F80 and 0x3F81
        assertEquals((short) 0x3F82, bf16(bits(0x3F818000))); // between 0x3F81 and 0x3F82
        assertEquals((short) 0x0000, bf16(bits(0x00008000))); // subnormal tie, down to even zero
        assertEquals((short) 0x0002, bf16(bits(0x00018000))); // subnormal tie, up to even
        assertEquals((short) 0xBF80, bf16(bits(0xBF808000)));
    }

    @Test
    void overflowBecomesInfinity() {
        assertEquals((short) 0x7F80, bf16(Float.MAX_VALUE)); // 0x7F7FFFFF rounds past the largest bfloat16
        assertEquals((short) 0xFF80, bf16(-Float.MAX_VALUE));
        assertEquals((short) 0x7F7F, bf16(bits(0x7F7F7FFF))); // below the midpoint: stays finite
    }

    @Test
    void nanStaysNanEvenWhenRoundingWouldCarryIntoInfinity() {
        assertTrue(Float.isNaN(HalfFloat.BF16.toFloat(bf16(Float.NaN))));
        assertEquals((short) 0x7FC0, bf16(Float.NaN));
        assertEquals((short) 0x7FC0, bf16(bits(0x7F800001))); // signalling NaN with only low bits set
        assertEquals((short) 0xFFC0, bf16(bits(0xFF800001))); // sign kept
        assertEquals((short) 0x7FFF, bf16(bits(0x7FFFFFFF))); // no carry out of the exponent
    }

    @Test
    void everyBfloat16SurvivesARoundTrip() {
        for (int b = 0; b < 0x10000; b++) {
            float f = HalfFloat.BF16.toFloat((short) b);
            if (Float.isNaN(f)) {
                assertTrue(Float.isNaN(HalfFloat.BF16.toFloat(bf16(f))));
            } else {
                assertEquals((short) b, bf16(f), "bits " + Integer.toHexString(b));
            }
        }
    }

    @Test
    void bulkWritesAndReadsAreLittleEndianPairs() {
        float[] values = {1.0f, -2.5f, 3.140625f};
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment segment = arena.allocate(8);
            HalfFloat.BF16.write(values, segment, 2);
            assertEquals((byte) 0x80, segment.get(ValueLayout.JAVA_BYTE, 2));
            assertEquals((byte) 0x3F, segment.get(ValueLayout.JAVA_BYTE, 3));
            assertArrayEquals(values, HalfFloat.BF16.read(segment, 2, 3));
        }
    }

    @Test
    void halfPrecisionRoundsToNearestEven() {
        assertEquals((short) 0x3C00, HalfFloat.FP16.fromFloat(1.0f));
        assertEquals((short) 0x3C00, HalfFloat.FP16.fromFloat(1.0f + 0x1p-11f)); // tie: to even
        assertEquals((short) 0x3C02, HalfFloat.FP16.fromFloat(1.0f + 3 * 0x1p-11f)); // tie: to even (up)
        assertEquals((short) 0x7C00, HalfFloat.FP16.fromFloat(65520f)); // overflow to infinity
        assertEquals(65504f, HalfFloat.FP16.round(65504f));
        assertTrue(Float.isNaN(HalfFloat.FP16.toFloat(HalfFloat.FP16.fromFloat(Float.NaN))));
    }
}
