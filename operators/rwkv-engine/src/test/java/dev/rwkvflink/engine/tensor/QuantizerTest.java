package dev.rwkvflink.engine.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.cuda.HalfFloat;
import dev.rwkvflink.engine.format.RwkvCppFile;
import dev.rwkvflink.engine.format.WeightFile;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class QuantizerTest {
    private static final int QK = QuantBlock.SIZE;

    // ---------------------------------------------------------------------------------------------------------
    // Float types

    @Test
    void f32IsExact() {
        float[] v = randomValues(new Random(1), 4 * 96);
        v[0] = Float.NaN;
        v[1] = Float.NEGATIVE_INFINITY;
        v[2] = Float.MIN_VALUE;
        v[3] = -0f;
        Tensor t = Quantizer.quantize("w", v, new long[] {4, 96}, WeightType.F32);
        assertEquals(WeightType.F32, t.type());
        float[] back = t.toFloatArray();
        for (int i = 0; i < v.length; i++) {
            assertEquals(Float.floatToRawIntBits(v[i]), Float.floatToRawIntBits(back[i]), "element " + i);
        }
    }

    /**
     * fp16 keeps 11 significant bits, so round-to-nearest is off by at most half an ulp: 2^-11 relative for normal
     * values (|x| >= 2^-14); below that the spacing is 2^-24, so at most 2^-25 absolute.
     */
    @Test
    void f16RoundTripWithinHalfUlp() {
        Random rnd = new Random(2);
        float[] v = new float[5000];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) ((rnd.nextBoolean() ? 1 : -1) * Math.pow(10, -7 + 11.5 * rnd.nextDouble())); // to 3e4
        }
        float[] back = Quantizer.quantize("w", v, new long[] {v.length}, WeightType.F16)
                .toFloatArray();
        double maxRel = 0;
        for (int i = 0; i < v.length; i++) {
            double err = Math.abs((double) v[i] - back[i]);
            double bound = Math.abs(v[i]) >= 0x1p-14 ? 0x1p-11 * Math.abs(v[i]) : 0x1p-25;
            assertTrue(err <= bound, "element " + i + ": " + v[i] + " -> " + back[i]);
            if (Math.abs(v[i]) >= 0x1p-14) {
                maxRel = Math.max(maxRel, err / Math.abs(v[i]));
            }
        }
        System.out.printf("F16 round trip: max relative error %.3g (bound 2^-11 = %.3g)%n", maxRel, 0x1p-11);
        // Ties go to even: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
        assertEquals(1f, roundTrip(1f + 0x1p-11f, WeightType.F16));
        assertEquals(1f + 0x1p-9f, roundTrip(1f + 3 * 0x1p-11f, WeightType.F16));
        assertEquals(Float.POSITIVE_INFINITY, roundTrip(70000f, WeightType.F16));
    }

    /** bf16 keeps 8 significant bits: half an ulp is 2^-8 relative, for every finite value in its range. */
    @Test
    void bf16RoundTripWithinHalfUlp() {
        Random rnd = new Random(3);
        float[] v = new float[5000];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) ((rnd.nextBoolean() ? 1 : -1) * Math.pow(10, -30 + 60 * rnd.nextDouble()));
        }
        float[] back = Quantizer.quantize("w", v, new long[] {v.length}, WeightType.BF16)
                .toFloatArray();
        double maxRel = 0;
        for (int i = 0; i < v.length; i++) {
            double rel = Math.abs((double) v[i] - back[i]) / Math.abs(v[i]);
            assertTrue(rel <= 0x1p-8, "element " + i + ": " + v[i] + " -> " + back[i]);
            maxRel = Math.max(maxRel, rel);
        }
        System.out.printf("BF16 round trip: max relative error %.3g (bound 2^-8 = %.3g)%n", maxRel, 0x1p-8);
        // Round to nearest, ties to even (the kept part's last bit is 2^-7 at 1.0).
        assertEquals(1f, roundTrip(1f + 0x1p-8f, WeightType.BF16)); // tie, 1.0 is even
        assertEquals(1f + 0x1p-6f, roundTrip(1f + 3 * 0x1p-8f, WeightType.BF16)); // tie, 1 + 2^-6 is even
        assertEquals(1f + 0x1p-7f, roundTrip(1f + 0x1p-8f + 0x1p-20f, WeightType.BF16)); // above the tie
        assertEquals(-1f - 0x1p-7f, roundTrip(-1f - 0x1p-8f - 0x1p-20f, WeightType.BF16));
        assertEquals(Float.POSITIVE_INFINITY, roundTrip(Float.MAX_VALUE, WeightType.BF16));
        assertEquals(Float.NEGATIVE_INFINITY, roundTrip(Float.NEGATIVE_INFINITY, WeightType.BF16));
        // NaN stays NaN, also a NaN whose payload sits only in the low bits (naive rounding would make it Inf).
        assertTrue(Float.isNaN(roundTrip(Float.intBitsToFloat(0x7F800001), WeightType.BF16)));
        assertTrue(Float.isNaN(roundTrip(Float.intBitsToFloat(0x7FFFFFFF), WeightType.BF16)));
        assertEquals((short) 0xFFC0, HalfFloat.BF16.fromFloat(Float.intBitsToFloat(0xFF800001)));
    }

    @Test
    void floatTypesAreExactForRepresentableValues() {
        Random rnd = new Random(4);
        float[] half = new float[256];
        float[] brain = new float[256];
        for (int i = 0; i < half.length; i++) {
            // 11 significant bits, exponent well inside fp16's normal range
            half[i] = (float) Math.scalb((rnd.nextInt(2048) - 1024) / 1024.0, rnd.nextInt(20) - 10);
            // 8 significant bits, any fp32 exponent
            brain[i] = (float) Math.scalb((rnd.nextInt(256) - 128) / 128.0, rnd.nextInt(200) - 100);
        }
        assertArrayEquals(
                half,
                Quantizer.quantize("h", half, new long[] {256}, WeightType.F16).toFloatArray());
        assertArrayEquals(
                brain,
                Quantizer.quantize("b", brain, new long[] {256}, WeightType.BF16)
                        .toFloatArray());
    }

    // ---------------------------------------------------------------------------------------------------------
    // Block types

    /**
     * Error bound of the ggml block quantizers, derived per element. Let d be the float32 scale the quantizer
     * computes from the block (amax/127, max/-8, max/-16, (hi-lo)/15, (hi-lo)/31), d16 the fp16 value stored and
     * m16 the stored fp16 minimum. The quantizer picks q by rounding x/d (or (x-lo)/d) to the nearest integer, so
     * |x - (d*q + lo)| <= d/2, except at the clamped top code of Q4_0/Q5_0 (x/d may reach +8/+16 but q stops at
     * 7/15), where it is <= d. Storing d and lo in fp16 adds |q| * |d - d16| + |lo - m16|. Float32 rounding of
     * x * (1/d) adds at most a few 2^-24 relative to 31 or 127, covered by 1e-4 * d. In total:
     * <pre>  |x - (d16*q + m16)| <= c*d + 1e-4*d + |q| * |d - d16| + |lo - m16|,   c = 1/2 (1 at the clamped code)</pre>
     */
    @ParameterizedTest
    @EnumSource(
            value = WeightType.class,
            names = {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"})
    void blockRoundTripWithinDerivedBound(WeightType type) {
        Random rnd = new Random(5 + type.ordinal());
        int rows = 40;
        int cols = 256;
        float[] v = new float[rows * cols];
        for (int r = 0; r < rows; r++) {
            double scale = Math.pow(10, -3 + 4 * rnd.nextDouble()); // 1e-3 .. 10
            double shift = r % 4 == 0 ? scale * (rnd.nextDouble() * 4 - 2) : 0; // some rows off-centre (_1 types)
            for (int c = 0; c < cols; c++) {
                v[r * cols + c] = (float) (shift + scale * rnd.nextGaussian());
            }
        }
        // special blocks: all zero, constant, a single outlier, the two extremes of equal size and opposite sign
        for (int j = 0; j < QK; j++) {
            v[j] = 0f;
            v[QK + j] = 0.75f;
            v[2 * QK + j] = j == 5 ? -100f : 0.001f * j;
            v[3 * QK + j] = j == 0 ? 3f : j == 1 ? -3f : 0.1f * (j - 16);
        }
        Tensor t = Quantizer.quantize("w", v, new long[] {rows, cols}, type);
        assertEquals(type, t.type());
        assertEquals(type.bytesFor(v.length), t.data().byteSize());
        double[] back = t.toDoubleArray();

        int qmax = switch (type) {
            case Q4_0, Q4_1 -> 15;
            case Q5_0, Q5_1 -> 31;
            default -> 127;
        };
        boolean symmetric = type == WeightType.Q4_0 || type == WeightType.Q5_0;
        int[] q = new int[QK];
        double maxErrOverD = 0;
        int clamped = 0;
        for (int b = 0; b < v.length / QK; b++) {
            int x0 = b * QK;
            long off = (long) b * type.blockBytes;
            float lo = Float.MAX_VALUE;
            float hi = -Float.MAX_VALUE;
            float amax = 0f;
            float max = 0f;
            for (int j = 0; j < QK; j++) {
                float x = v[x0 + j];
                lo = Math.min(lo, x);
                hi = Math.max(hi, x);
                if (amax < Math.abs(x)) {
                    amax = Math.abs(x);
                    max = x;
                }
            }
            float d = switch (type) {
                case Q4_0 -> max / -8f;
                case Q5_0 -> max / -16f;
                case Q4_1 -> (hi - lo) / 15f;
                case Q5_1 -> (hi - lo) / 31f;
                default -> amax / 127f;
            };
            boolean hasMin = type == WeightType.Q4_1 || type == WeightType.Q5_1;
            double d16 = QuantBlock.scale(t.data(), off);
            double m16 = QuantBlock.min(type, t.data(), off);
            QuantBlock.quants(type, t.data(), off, q);
            double fp16Err = Math.abs(d - d16);
            double minErr = hasMin ? Math.abs(lo - m16) : 0;
            for (int j = 0; j < QK; j++) {
                double err = Math.abs(v[x0 + j] - back[x0 + j]);
                boolean top = symmetric && q[j] == qmax / 2; // the clamped code 7 / 15
                double c = top ? 1.0 : 0.5;
                double bound = (c + 1e-4) * Math.abs(d) + Math.abs(q[j]) * fp16Err + minErr;
                assertTrue(
                        err <= bound,
                        type + " block " + b + " element " + j + ": " + v[x0 + j] + " -> " + back[x0 + j] + ", error "
                                + err + " > bound " + bound + " (d " + d + ")");
                if (d != 0 && !top) {
                    maxErrOverD = Math.max(maxErrOverD, err / Math.abs(d));
                }
                if (top && Math.abs(v[x0 + j] - back[x0 + j]) > 0.5 * Math.abs(d) + q[j] * fp16Err) {
                    clamped++;
                }
            }
        }
        // the special blocks
        for (int j = 0; j < QK; j++) {
            assertEquals(0.0, back[j], "all-zero block decodes to zeros");
        }
        if (hasMinType(type)) {
            assertEquals(0.75, back[QK + 5], 0.0, "a constant block is d = 0, m = the constant");
        }
        assertEquals(-100.0, back[2 * QK + 5], 100 * 0x1p-11, "the outlier keeps its value");
        System.out.printf(
                "%s round trip: max |err|/d %.4f over unclamped elements (bound 0.5 + fp16 scale error),"
                        + " %d clamped-top elements beyond d/2%n",
                type, maxErrOverD, clamped);
    }

    /**
     * Values that the format represents exactly come back exactly: q*d with d a power of two (exact in fp16 and
     * in the quantizer's float32 division), an extreme that pins d, and for the _1 types a minimum exact in fp16.
     */
    @ParameterizedTest
    @EnumSource(
            value = WeightType.class,
            names = {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"})
    void blockTypesAreExactForRepresentableValues(WeightType type) {
        Random rnd = new Random(6);
        int blocks = 64;
        float[] v = new float[blocks * QK];
        for (int b = 0; b < blocks; b++) {
            float d = (float) Math.scalb(1.0, rnd.nextInt(16) - 10);
            float m = Math.scalb((float) (rnd.nextInt(2048) - 1024), -8); // -4 .. 4, 11 bits: exact in fp16
            for (int j = 0; j < QK; j++) {
                int i = b * QK + j;
                v[i] = switch (type) {
                    // the signed extreme -8d / -16d must be the largest magnitude, so it sets d = max / -8 exactly
                    case Q4_0 -> j == 3 ? -8 * d : d * (rnd.nextInt(15) - 7);
                    case Q5_0 -> j == 3 ? -16 * d : d * (rnd.nextInt(31) - 15);
                    // lo = m and hi = m + 15d (31d) are both present, so d = (hi - lo)/15 exactly
                    case Q4_1 -> m + d * (j == 0 ? 0 : j == 1 ? 15 : rnd.nextInt(16));
                    case Q5_1 -> m + d * (j == 0 ? 0 : j == 1 ? 31 : rnd.nextInt(32));
                    // amax = 127d gives d exactly; every q in -127..127 is exact
                    default -> d * (j == 0 ? 127 : j == 1 ? -127 : rnd.nextInt(255) - 127);
                };
            }
        }
        Tensor t = Quantizer.quantize("w", v, new long[] {2, blocks / 2 * QK}, type);
        float[] back = t.toFloatArray();
        assertArrayEquals(v, back, type + " should be exact for values on its grid");
    }

    /** Q8_0 rounds halves away from zero like C's roundf (Math.round would send -2.5 to -2). */
    @Test
    void q8RoundsHalvesAwayFromZero() {
        float[] v = new float[QK];
        v[0] = 127f; // d = 1, id = 1
        v[1] = -2.5f;
        v[2] = 2.5f;
        v[3] = -0.5f;
        v[4] = 0.49999997f;
        v[5] = -126.5f;
        float[] back =
                Quantizer.quantize("w", v, new long[] {QK}, WeightType.Q8_0).toFloatArray();
        assertEquals(-3f, back[1]);
        assertEquals(3f, back[2]);
        assertEquals(-1f, back[3]);
        assertEquals(0f, back[4]);
        assertEquals(-127f, back[5]);
    }

    /** A hand-worked Q5_0 block, byte for byte. */
    @Test
    void q5_0BlockLayoutByHand() {
        float[] v = new float[QK];
        for (int j = 0; j < QK; j++) {
            v[j] = j - 16; // -16 .. 15: max = -16 (first with |x| = 16), d = 1, q = x + 16 = j
        }
        MemorySegment s =
                Quantizer.quantize("w", v, new long[] {QK}, WeightType.Q5_0).data();
        assertEquals(Float.floatToFloat16(1f), s.get(ValueLayout.JAVA_SHORT_UNALIGNED, 0));
        assertEquals(0xFFFF0000, s.get(ValueLayout.JAVA_INT_UNALIGNED, 2), "q >= 16 exactly for j >= 16");
        for (int j = 0; j < 16; j++) {
            int b = s.get(ValueLayout.JAVA_BYTE, 6 + j) & 0xFF;
            assertEquals(j, b & 15, "low nibble = element j");
            assertEquals(j, b >>> 4, "high nibble = low 4 bits of element j + 16 (q = 16 + j)");
        }
    }

    @Test
    void rejectsBadShapes() {
        assertThrows(
                IllegalArgumentException.class,
                () -> Quantizer.quantize("w", new float[48], new long[] {48}, WeightType.Q8_0));
        assertThrows(
                IllegalArgumentException.class,
                () -> Quantizer.quantize("w", new float[64], new long[] {2, 16}, WeightType.F32));
        assertThrows(
                IllegalArgumentException.class,
                () -> Quantizer.quantize("w", new float[64], new long[] {2, 32, 1}, WeightType.Q4_0));
    }

    // ---------------------------------------------------------------------------------------------------------
    // Against real rwkv.cpp files

    /**
     * rwkv.cpp's committed test models come as FP32, FP16, Q5_0 and Q5_1 files of the same weights. Its
     * {@code rwkv_quantize_model_file} runs ggml's reference quantizer over each 2-D matrix (except emb, head and
     * the small LoRA matrices), from an FP32 or an FP16 file (SOURCES.md does not say which one was used for the
     * committed files). Quantizing the FP32 file's matrices with our quantizer reproduces every block of every Q5
     * file byte for byte, so that is asserted. Starting from the FP16 file instead gives different blocks for the
     * v4/v5 models (their FP32 weights are not fp16-exact, and one fp16 rounding moves some codes), which shows
     * the committed files were made from FP32; for v7 both sources agree (all but 295 of its FP32 matrix values are
     * fp16-exact, and those few do not change a code). The FP16 counts are printed for information only.
     */
    @ParameterizedTest
    @EnumSource(
            value = WeightType.class,
            names = {"Q5_0", "Q5_1"})
    void reproducesRwkvCppQuantizedFiles(WeightType type) throws IOException {
        Path dir = Path.of(System.getProperty("rwkv.shared.dir", "../shared"), "reference", "rwkv-cpp-tests");
        String[] models = {"4v0-660K", "5v1-730K", "5v2-730K", "7v0-834K"};
        int checkedModels = 0;
        for (String model : models) {
            Path fp32 = dir.resolve("tiny-rwkv-" + model + "-FP32.bin");
            Path fp16 = dir.resolve("tiny-rwkv-" + model + "-FP16.bin");
            Path quant = dir.resolve("tiny-rwkv-" + model + "-" + type + ".bin");
            if (!Files.isReadable(fp32) || !Files.isReadable(quant)) {
                continue;
            }
            checkedModels++;
            try (WeightFile q = RwkvCppFile.read(quant);
                    WeightFile f32 = RwkvCppFile.read(fp32);
                    WeightFile f16 = Files.isReadable(fp16) ? RwkvCppFile.read(fp16) : null) {
                long[] fromF32 = compareBlocks("FP32", type, q.tensors(), f32.tensors());
                long[] fromF16 = f16 == null ? null : compareBlocks("FP16", type, q.tensors(), f16.tensors());
                System.out.printf(
                        "rwkv.cpp %s %s: %d matrices, %d blocks (%d FP32 values not fp16-exact);"
                                + " blocks differing when quantized from FP32: %d, from FP16: %s%n",
                        model,
                        type,
                        fromF32[2],
                        fromF32[0],
                        fromF32[3],
                        fromF32[1],
                        fromF16 == null ? "n/a" : Long.toString(fromF16[1]));
                assertTrue(fromF32[2] > 0, model + ": no " + type + " matrices found");
                assertEquals(
                        0,
                        fromF32[1],
                        model + " " + type + ": " + fromF32[1] + " of " + fromF32[0]
                                + " blocks differ from rwkv.cpp's file");
            }
        }
        Assumptions.assumeTrue(checkedModels > 0, "rwkv.cpp reference files not found in " + dir);
    }

    /** Returns {blocks compared, blocks differing, matrices compared, source values that are not fp16-exact}. */
    private static long[] compareBlocks(
            String from, WeightType type, Map<String, Tensor> quantized, Map<String, Tensor> source) {
        long blocks = 0;
        long differing = 0;
        long matrices = 0;
        long notHalfExact = 0;
        List<String> worst = new ArrayList<>();
        for (Tensor expected : quantized.values()) {
            if (expected.type() != type) {
                continue;
            }
            Tensor src = source.get(expected.name());
            assertTrue(src != null, "source file lacks " + expected.name());
            float[] values = src.toFloatArray();
            for (float x : values) {
                if (Float.float16ToFloat(Float.floatToFloat16(x)) != x) {
                    notHalfExact++;
                }
            }
            Tensor ours = Quantizer.quantize(expected.name(), values, src.shape(), type);
            assertArrayEquals(expected.shape(), ours.shape());
            matrices++;
            long n = expected.size() / QK;
            long diffHere = 0;
            for (long b = 0; b < n; b++) {
                long off = b * type.blockBytes;
                if (MemorySegment.mismatch(
                                expected.data(), off, off + type.blockBytes, ours.data(), off, off + type.blockBytes)
                        >= 0) {
                    diffHere++;
                }
            }
            blocks += n;
            differing += diffHere;
            if (diffHere > 0 && worst.size() < 3) {
                worst.add(expected.name() + " " + diffHere + "/" + n);
            }
        }
        if (!worst.isEmpty()) {
            System.out.println("  quantized from " + from + ", differing blocks e.g. " + worst);
        }
        return new long[] {blocks, differing, matrices, notHalfExact};
    }

    // ---------------------------------------------------------------------------------------------------------

    private static boolean hasMinType(WeightType t) {
        return t == WeightType.Q4_1 || t == WeightType.Q5_1;
    }

    private static float roundTrip(float x, WeightType type) {
        return Quantizer.quantize("x", new float[] {x}, new long[] {1}, type).toFloatArray()[0];
    }

    private static float[] randomValues(Random rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }
}
