package dev.rwkvflink.engine.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.tensor.Quantizer;
import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class VectorBackendTest {
    /** |vector - scalar| <= TOL * max(1, sum_c |w_rc x_c|): both sum the same float products, in another order. */
    private static final double TOL = 1e-5;

    private static final ScalarBackend SCALAR = new ScalarBackend();
    private static final VectorBackend SINGLE = new VectorBackend(1);
    private static final VectorBackend MULTI = new VectorBackend(3);

    @AfterAll
    static void stopPools() {
        SINGLE.close();
        MULTI.close();
    }

    /**
     * Every type against the scalar reference, for 1, 7 and 64 tokens. Shapes: for the float types cols that are
     * not multiples of the vector length (scalar tails) and for all types rows that are not multiples of the row
     * tile or the thread chunk; the larger ones take the multi-threaded path.
     */
    @ParameterizedTest
    @EnumSource(WeightType.class)
    void matchesScalarBackend(WeightType type) {
        int[][] shapes = type.isQuantized()
                ? new int[][] {{1, 32}, {5, 96}, {67, 256}, {130, 800}, {515, 544}}
                : new int[][] {{1, 3}, {5, 37}, {67, 100}, {130, 771}, {515, 547}, {9, 16}};
        Random rnd = new Random(42 + type.ordinal());
        double worst = 0;
        for (int[] shape : shapes) {
            int rows = shape[0];
            int cols = shape[1];
            Tensor w = randomWeights(rnd, rows, cols, type);
            for (int tokens : new int[] {1, 7, 64}) {
                float[] x = gaussian(rnd, tokens * cols, 1.0);
                float[] expected = new float[tokens * rows];
                float[] actual = new float[tokens * rows];
                SCALAR.matmul(w, x, tokens, expected);
                MULTI.matmul(w, x, tokens, actual);
                double[] scale = absProductSums(w, x, tokens);
                for (int i = 0; i < actual.length; i++) {
                    double err = Math.abs((double) actual[i] - expected[i]);
                    double bound = TOL * Math.max(1, scale[i]);
                    assertTrue(
                            err <= bound,
                            type + " " + rows + "x" + cols + ", " + tokens + " tokens, output "
                                    + i + ": vector " + actual[i] + " vs scalar " + expected[i] + " (error " + err
                                    + " > " + bound + ")");
                    worst = Math.max(worst, err / Math.max(1, scale[i]));
                }
            }
        }
        System.out.printf(
                "VectorBackend vs ScalarBackend %-4s: max |a-b| / max(1, sum|w*x|) = %.3g (tolerance %.0e),"
                        + " %d float lanes%n",
                type, worst, TOL, VectorBackend.vectorLanes());
        assertTrue(worst > 0 || type == WeightType.F32, "expected some rounding difference, got none");
    }

    /** The same call on 1 and on 3 threads gives bit-identical results (work split on row-tile borders). */
    @ParameterizedTest
    @EnumSource(WeightType.class)
    void multiThreadedEqualsSingleThreadedExactly(WeightType type) {
        Random rnd = new Random(7 + type.ordinal());
        int rows = 515; // not a multiple of the tile (4) nor of the chunk
        int cols = type.isQuantized() ? 544 : 547;
        assertTrue((long) rows * cols >= VectorBackend.PARALLEL_MIN_MACS, "must take the multi-threaded path");
        Tensor w = randomWeights(rnd, rows, cols, type);
        for (int tokens : new int[] {1, 7, 64}) {
            float[] x = gaussian(rnd, tokens * cols, 1.0);
            float[] one = new float[tokens * rows];
            float[] many = new float[tokens * rows];
            SINGLE.matmul(w, x, tokens, one);
            MULTI.matmul(w, x, tokens, many);
            assertArrayEquals(one, many, type + ", " + tokens + " tokens");
            // and the same twice in a row (no state leaking through the scratch)
            MULTI.matmul(w, x, tokens, many);
            assertArrayEquals(one, many, type + ", " + tokens + " tokens, second call");
        }
    }

    /**
     * The arithmetic of an output never depends on the other tokens of the call: token t of a T-token call is
     * bit-identical to a one-token call with that token alone, at any position (odd and even, the last of an
     * odd count), for every weight type and for rows in the last partial tile. This is what lets a text split
     * into chunks, or batched with other texts, give the same bits as the text in one call.
     */
    @ParameterizedTest
    @EnumSource(WeightType.class)
    void eachTokenIsComputedAsIfAlone(WeightType type) {
        Random rnd = new Random(11 + type.ordinal());
        int rows = 70; // 17 full tiles and a partial one
        // narrow rows: all tokens in one block; wide rows: blocks of 6 tokens (odd counts cross block borders)
        for (int cols : type.isQuantized() ? new int[] {96, 4128} : new int[] {101, 4133}) {
            assertTrue(cols < 1000 || TileKernels.tokenBlock(cols) == 6, "wide rows must split 13 tokens");
            eachTokenIsComputedAsIfAlone(type, rnd, rows, cols);
        }
    }

    /**
     * The register tiles of the several-token kernel (4, 3 or 2 tokens; which one runs depends on the vector width)
     * give every output the same bits, at this machine's width: 13 tokens cross every tile's border and the odd
     * token kernel. Seeded.
     */
    @ParameterizedTest
    @EnumSource(WeightType.class)
    void everyTokenTileGivesTheSameBits(WeightType type) {
        Random rnd = new Random(19);
        int rows = 12;
        int cols = type.isQuantized() ? 96 : 37; // scalar tails for the float types
        Tensor w = randomWeights(rnd, rows, cols, type);
        for (int tokens : new int[] {1, 2, 3, 5, 13}) {
            float[] x = gaussian(rnd, tokens * cols, 1.0);
            float[] four = new float[tokens * rows];
            TileKernels.tileRows(w, null, x, tokens, four, 0, rows, 4);
            for (int tile : new int[] {3, 2}) {
                float[] other = new float[tokens * rows];
                TileKernels.tileRows(w, null, x, tokens, other, 0, rows, tile);
                assertArrayEquals(four, other, type + ", " + tokens + " tokens, tiles of " + tile + " vs 4");
            }
        }
    }

    private static void eachTokenIsComputedAsIfAlone(WeightType type, Random rnd, int rows, int cols) {
        Tensor w = randomWeights(rnd, rows, cols, type);
        for (VectorBackend backend : new VectorBackend[] {SINGLE, MULTI}) {
            for (int tokens : new int[] {2, 5, 9, 13}) {
                float[] x = gaussian(rnd, tokens * cols, 1.0);
                float[] all = new float[tokens * rows];
                backend.matmul(w, x, tokens, all);
                for (int t = 0; t < tokens; t++) {
                    float[] alone = new float[rows];
                    backend.matmul(w, Arrays.copyOfRange(x, t * cols, (t + 1) * cols), 1, alone);
                    assertArrayEquals(
                            alone,
                            Arrays.copyOfRange(all, t * rows, (t + 1) * rows),
                            0f,
                            type + ": token " + t + " of " + tokens);
                }
            }
        }
    }

    /**
     * RWKV-7's WKV step: the vector kernel against the scalar reference (the interface default) within a
     * tolerance, over several tokens so errors in the state would compound; and token by token it is
     * deterministic (the same inputs and state give the same bits).
     */
    @Test
    void wkv7MatchesScalarReference() {
        Random rnd = new Random(5);
        for (int n : new int[] {64, 32, 24}) { // 24: not a multiple of 16 lanes, takes the scalar loop
            int heads = 3;
            int c = heads * n;
            float[] sScalar = gaussian(rnd, heads * n * n + 5, 0.5);
            float[] sVector = sScalar.clone();
            float[] sAgain = sScalar.clone();
            for (int token = 0; token < 6; token++) {
                int row = c; // inputs sit in the second row of a 2-token activation array
                float[] r = gaussian(rnd, 2 * c, 1.0);
                float[] k = gaussian(rnd, 2 * c, 1.0);
                float[] v = gaussian(rnd, 2 * c, 1.0);
                float[] w = new float[2 * c];
                float[] a = new float[2 * c];
                for (int i = 0; i < w.length; i++) {
                    w[i] = 0.5f + 0.5f * rnd.nextFloat();
                    a[i] = rnd.nextFloat();
                }
                float[] kk = gaussian(rnd, 2 * c, 1.0 / n);
                float[] expected = new float[2 * c];
                float[] actual = new float[2 * c];
                float[] again = new float[2 * c];
                SCALAR.wkv7(sScalar, 5, heads, n, r, w, k, v, kk, a, row, expected);
                MULTI.wkv7(sVector, 5, heads, n, r, w, k, v, kk, a, row, actual);
                SINGLE.wkv7(sAgain, 5, heads, n, r, w, k, v, kk, a, row, again);
                assertArrayEquals(actual, again, 0f, "n " + n + ", token " + token + ": not deterministic");
                assertArrayEquals(sVector, sAgain, 0f, "n " + n + ", token " + token + ": state not deterministic");
                for (int i = 0; i < 2 * c; i++) {
                    assertEquals(
                            expected[i],
                            actual[i],
                            1e-4 * Math.max(1, Math.abs(expected[i])),
                            "n " + n + ", token " + token + ", output " + i);
                }
                for (int i = 0; i < sScalar.length; i++) {
                    assertEquals(
                            sScalar[i],
                            sVector[i],
                            1e-4 * Math.max(1, Math.abs(sScalar[i])),
                            "n " + n + ", token " + token + ", state " + i);
                }
            }
        }
    }

    /** Several caller threads sharing one backend get the same answers as one caller. */
    @Test
    void concurrentCallersAgree() throws InterruptedException {
        Random rnd = new Random(11);
        Tensor w = randomWeights(rnd, 300, 512, WeightType.Q5_1);
        float[] x = gaussian(rnd, 7 * 512, 1.0);
        float[] expected = new float[7 * 300];
        SINGLE.matmul(w, x, 7, expected);
        float[][] results = new float[4][7 * 300];
        Thread[] callers = new Thread[4];
        for (int i = 0; i < callers.length; i++) {
            int k = i;
            callers[i] = new Thread(() -> {
                for (int rep = 0; rep < 20; rep++) {
                    MULTI.matmul(w, x, 7, results[k]);
                }
            });
            callers[i].start();
        }
        for (Thread t : callers) {
            t.join();
        }
        for (float[] r : results) {
            assertArrayEquals(expected, r);
        }
    }

    /** Decoding a row in registers gives exactly {@link Tensor#readRow}'s floats, for every type. */
    @ParameterizedTest
    @EnumSource(WeightType.class)
    void decodeRowEqualsReadRow(WeightType type) {
        Random rnd = new Random(3);
        int cols = type.isQuantized() ? 320 : 333;
        Tensor w = randomWeights(rnd, 6, cols, type);
        float[] ours = new float[cols + 5];
        float[] ref = new float[cols + 5];
        for (int r = 0; r < 6; r++) {
            RowDecoder.decodeRow(type, w.data(), r * w.rowBytes(), cols, ours, 5);
            w.readRow(r, ref, 5);
            for (int c = 0; c < ours.length; c++) { // == : the same numbers, +0.0 and -0.0 alike
                assertTrue(ours[c] == ref[c], type + " row " + r + " col " + c + ": " + ours[c] + " vs " + ref[c]);
            }
        }
    }

    /** All 65536 fp16 and bf16 bit patterns widen exactly as Float.float16ToFloat / (h << 16) do. */
    @Test
    void halfWideningIsExactForAllBitPatterns() {
        MemorySegment seg = Arena.ofAuto().allocate(2 * 65536);
        for (int h = 0; h < 65536; h++) {
            seg.set(ValueLayout.JAVA_SHORT_UNALIGNED, 2L * h, (short) h);
        }
        float[] f16 = new float[65536];
        float[] bf16 = new float[65536];
        RowDecoder.decodeRow(WeightType.F16, seg, 0, 65536, f16, 0);
        RowDecoder.decodeRow(WeightType.BF16, seg, 0, 65536, bf16, 0);
        int subnormals = 0;
        for (int h = 0; h < 65536; h++) {
            float f = Float.float16ToFloat((short) h);
            if (Float.isNaN(f)) {
                assertTrue(Float.isNaN(f16[h]), "fp16 0x" + Integer.toHexString(h) + " should be NaN");
            } else {
                assertEquals(
                        Float.floatToRawIntBits(f),
                        Float.floatToRawIntBits(f16[h]),
                        "fp16 0x" + Integer.toHexString(h));
            }
            if ((h & 0x7C00) == 0 && (h & 0x3FF) != 0) {
                subnormals++;
            }
            assertEquals(h << 16, Float.floatToRawIntBits(bf16[h]), "bf16 0x" + Integer.toHexString(h));
        }
        assertEquals(2 * 1023, subnormals);
        // the in-register loads of the one-token kernels (bit arithmetic, not F16C): every pattern, bit for bit,
        // read back by a dot product with x = (1, 0, ..., 0) (which turns -0.0 into +0.0: w * 1 + 0)
        int lanes = VectorBackend.vectorLanes();
        float[] first = new float[lanes];
        first[0] = 1;
        for (int h = 0; h + lanes <= 65536; h++) {
            float expected = Float.float16ToFloat((short) h) + 0f;
            if (Float.isNaN(expected)) {
                assertTrue(
                        Float.isNaN(RowKernels.dotF16(seg, 2L * h, lanes, first)), "fp16 0x" + Integer.toHexString(h));
                continue;
            }
            boolean finite = (h & 0x7C00) != 0x7C00;
            for (boolean fast : finite ? new boolean[] {false, true} : new boolean[] {false}) {
                float got = fast
                        ? RowKernels.dotFiniteF16(seg, 2L * h, lanes, first)
                        : RowKernels.dotF16(seg, 2L * h, lanes, first);
                // a later lane holding Inf makes 0 * Inf = NaN: only patterns whose whole vector is finite count
                if (!Float.isNaN(got)) {
                    assertEquals(
                            Float.floatToRawIntBits(expected),
                            Float.floatToRawIntBits(got),
                            (fast ? "finite" : "general") + " fp16 load 0x" + Integer.toHexString(h));
                }
            }
        }
        // and the kernel: a row of 35 subnormals of both signs (sum ~1e-5), then with -65504 and -Inf
        MemorySegment row = Arena.ofAuto().allocate(2 * 35);
        double sum = 0;
        for (int j = 0; j < 35; j++) {
            short h = (short) (j % 2 == 0 ? 40 * j + 1 : 0x8000 | (3 * j));
            row.set(ValueLayout.JAVA_SHORT_UNALIGNED, 2L * j, h);
            sum += Float.float16ToFloat(h);
        }
        float[] ones = new float[35];
        Arrays.fill(ones, 1f);
        float[] out = new float[1];
        // (a tensor's bytes are immutable once used: it scans them for Inf/NaN once, so each variant is a new one)
        try (VectorBackend vb = new VectorBackend(1)) {
            vb.matmul(Tensor.of("row", WeightType.F16, new long[] {1, 35}, row), ones, 1, out);
            assertEquals(sum, out[0], 1e-6 * Math.abs(sum));
            row.set(ValueLayout.JAVA_SHORT_UNALIGNED, 2L * 34, (short) 0xFBFF); // the tail element (35 % 16 != 0)
            vb.matmul(Tensor.of("row", WeightType.F16, new long[] {1, 35}, row), ones, 1, out);
            assertEquals(-65504f, out[0], 0.01);
            row.set(ValueLayout.JAVA_SHORT_UNALIGNED, 2L * 20, (short) 0xFC00);
            Tensor withInf = Tensor.of("row", WeightType.F16, new long[] {1, 35}, row);
            assertFalse(withInf.halvesFinite());
            vb.matmul(withInf, ones, 1, out);
            assertEquals(Float.NEGATIVE_INFINITY, out[0]);
            float[] two = new float[2];
            vb.matmul(withInf, new float[70], 2, two); // the tile path too: Inf * 0 = NaN
            assertTrue(Float.isNaN(two[0]) && Float.isNaN(two[1]));
        }
    }

    /**
     * 4- and 5-bit matrices are multiplied in their bytewise form (Bytewise): one-hot inputs read
     * every weight back through both product paths (one token and several), and each equals the original block's
     * decoding (decodeRow, the same unpacking as Tensor.readRow) exactly.
     */
    @ParameterizedTest
    @EnumSource(
            value = WeightType.class,
            names = {"Q4_0", "Q4_1", "Q5_0", "Q5_1"})
    void bytewiseFormHasTheSameWeights(WeightType type) {
        Random rnd = new Random(17 + type.ordinal());
        int rows = 37;
        int cols = 96;
        Tensor w = randomWeights(rnd, rows, cols, type);
        float[] expected = new float[rows * cols];
        for (int r = 0; r < rows; r++) {
            RowDecoder.decodeRow(type, w.data(), r * w.rowBytes(), cols, expected, r * cols);
        }
        for (int c = 0; c < cols; c++) {
            float[] one = new float[cols];
            one[c] = 1;
            float[] two = new float[2 * cols];
            two[c] = 1;
            two[cols + c] = 1;
            float[] y1 = new float[rows];
            float[] y2 = new float[2 * rows];
            SINGLE.matmul(w, one, 1, y1);
            SINGLE.matmul(w, two, 2, y2);
            for (int r = 0; r < rows; r++) {
                float e = expected[r * cols + c];
                assertEquals(e, y1[r], 0f, type + " w[" + r + "][" + c + "], one token");
                assertEquals(e, y2[r], 0f, type + " w[" + r + "][" + c + "], token 0 of 2");
                assertEquals(e, y2[rows + r], 0f, type + " w[" + r + "][" + c + "], token 1 of 2");
            }
        }
        assertSame(Bytewise.of(w), Bytewise.of(w), "repacked once");
    }

    /** Only F16 tensors without an Inf or NaN element take the finite-halves path; the scan finds one anywhere. */
    @Test
    void halvesFiniteFindsInfAndNaNAnywhere() {
        Random rnd = new Random(5);
        Tensor finite = randomWeights(rnd, 37, 96, WeightType.F16);
        assertTrue(finite.halvesFinite());
        for (short bad : new short[] {(short) 0x7C00, (short) 0xFC00, (short) 0x7E00, (short) 0xFFFF}) {
            for (long at : new long[] {0, 37 * 96 / 2, 37 * 96 - 1}) {
                MemorySegment copy = Arena.ofAuto().allocate(finite.data().byteSize());
                copy.copyFrom(finite.data());
                copy.set(ValueLayout.JAVA_SHORT_UNALIGNED, 2 * at, bad);
                assertFalse(
                        Tensor.of("w", WeightType.F16, finite.shape(), copy).halvesFinite(),
                        Integer.toHexString(bad & 0xFFFF) + " at " + at);
            }
        }
        assertFalse(randomWeights(rnd, 4, 32, WeightType.BF16).halvesFinite());
        assertFalse(randomWeights(rnd, 4, 32, WeightType.F32).halvesFinite());
    }

    /** rwkv.cpp tensors start at arbitrary byte offsets: an odd-offset copy multiplies exactly like the original. */
    @ParameterizedTest
    @EnumSource(WeightType.class)
    void unalignedWeightsGiveIdenticalResults(WeightType type) {
        Random rnd = new Random(9);
        int rows = 70;
        int cols = type.isQuantized() ? 128 : 131;
        Tensor w = randomWeights(rnd, rows, cols, type);
        MemorySegment odd = Arena.ofAuto()
                .allocate(w.data().byteSize() + 3, 64)
                .asSlice(3, w.data().byteSize());
        odd.copyFrom(w.data());
        Tensor shifted = Tensor.of("odd", type, new long[] {rows, cols}, odd);
        for (int tokens : new int[] {1, 5}) {
            float[] x = gaussian(rnd, tokens * cols, 1.0);
            float[] a = new float[tokens * rows];
            float[] b = new float[tokens * rows];
            MULTI.matmul(w, x, tokens, a);
            MULTI.matmul(shifted, x, tokens, b);
            assertArrayEquals(a, b, type + " " + tokens + " tokens");
        }
    }

    @Test
    void rejectsShortArrays() {
        Tensor w = Tensor.ofFloats("w", new float[12], 3, 4);
        assertThrows(IllegalArgumentException.class, () -> MULTI.matmul(w, new float[7], 2, new float[6]));
        assertThrows(IllegalArgumentException.class, () -> MULTI.matmul(w, new float[8], 2, new float[5]));
        assertThrows(IllegalArgumentException.class, () -> new VectorBackend(0));
        float[] y = new float[6];
        MULTI.matmul(
                Tensor.ofFloats("w", new float[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 3, 4),
                new float[] {1, 0, 0, 1, 0, 1, 1, 0},
                2,
                y);
        assertArrayEquals(new float[] {5, 13, 21, 5, 13, 21}, y); // row sums of columns {0,3} and {1,2}
    }

    @Test
    void backendsByName() {
        assertEquals("scalar", Backends.byName("scalar").name());
        assertEquals("vector", Backends.byName(" Vector ").name());
        assertSame(Backends.byName("vector"), Backends.byName("vector"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Backends.byName("gpu"));
        assertTrue(e.getMessage().contains("scalar") && e.getMessage().contains("vector"), e.getMessage());
        assertTrue(Backends.vectorUnavailableReason().isEmpty(), "the build adds jdk.incubator.vector");

        String before = System.getProperty(Backends.PROPERTY);
        try {
            System.clearProperty(Backends.PROPERTY);
            assertEquals("vector", Backends.defaultBackend().name());
            System.setProperty(Backends.PROPERTY, "scalar");
            assertEquals("scalar", Backends.defaultBackend().name());
            System.setProperty(Backends.PROPERTY, "nope");
            assertThrows(IllegalArgumentException.class, Backends::defaultBackend);
        } finally {
            if (before == null) {
                System.clearProperty(Backends.PROPERTY);
            } else {
                System.setProperty(Backends.PROPERTY, before);
            }
        }
    }

    /**
     * Without {@code --add-modules jdk.incubator.vector} the default backend falls back to scalar with a logged
     * reason, and asking for "vector" by name fails clearly. Checked in a child JVM started without the module.
     */
    @Test
    void fallsBackToScalarWithoutTheVectorModule() throws Exception {
        Process p = new ProcessBuilder(
                        Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                        "-cp",
                        System.getProperty("java.class.path"),
                        NoVectorModule.class.getName())
                .redirectErrorStream(true)
                .start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "child JVM did not finish");
        assertEquals(0, p.exitValue(), out);
        assertTrue(out.contains("default=scalar"), out);
        assertTrue(out.contains("byName(vector)=IllegalStateException"), out);
        assertTrue(
                out.contains("vector backend unavailable") && out.contains("--add-modules jdk.incubator.vector"),
                "the fallback reason is logged: " + out);
    }

    /** Entry point of the child JVM above (must not touch the Vector API itself). */
    public static final class NoVectorModule {
        public static void main(String[] args) {
            System.out.println("default=" + Backends.defaultBackend().name());
            try {
                Backends.byName("vector");
                System.out.println("byName(vector)=ok");
            } catch (IllegalStateException e) {
                System.out.println("byName(vector)=IllegalStateException " + e.getMessage());
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------

    static Tensor randomWeights(Random rnd, int rows, int cols, WeightType type) {
        float[] v = gaussian(rnd, rows * cols, 0.1);
        for (int r = 0; r < rows; r += 4) { // some rows off-centre, some with an outlier
            v[r * cols] += 0.5f;
            v[r * cols + cols / 2] = -1.5f;
        }
        return Quantizer.quantize("w", v, new long[] {rows, cols}, type);
    }

    static float[] gaussian(Random rnd, int n, double sigma) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (sigma * rnd.nextGaussian());
        }
        return v;
    }

    /** sum_c |w_rc x_tc| per output, in double, from the exactly decoded weights. */
    private static double[] absProductSums(Tensor w, float[] x, int tokens) {
        int rows = w.rows();
        int cols = w.cols();
        double[] wd = w.toDoubleArray();
        double[] s = new double[tokens * rows];
        for (int t = 0; t < tokens; t++) {
            for (int r = 0; r < rows; r++) {
                double acc = 0;
                for (int c = 0; c < cols; c++) {
                    acc += Math.abs(wd[r * cols + c] * x[t * cols + c]);
                }
                s[t * rows + r] = acc;
            }
        }
        return s;
    }

    /**
     * A one-token product gives the same bits on either path, streamed ({@code streamRows}) or from decoded row
     * tiles ({@code tileRows}), so the per-lane-count choice between them ({@code ONE_TOKEN_TILES}) cannot change a
     * result: every type, seeded random weights (seed 20261207), 771 or 768 columns (a scalar tail where the type
     * allows one), 4 x 16 + 3 rows (a partial last tile), at this run's vector width; fp16 also with an Inf.
     */
    @ParameterizedTest
    @EnumSource(WeightType.class)
    void oneTokenGivesTheSameBitsStreamedOrTiled(WeightType type) {
        Random rnd = new Random(20261207L + type.ordinal());
        int cols = type.isQuantized() ? 768 : 771;
        int rows = 67;
        Tensor w = randomWeights(rnd, rows, cols, type);
        float[] x = gaussian(rnd, cols, 1);
        Bytewise b = Bytewise.of(w);
        Tensor q = b == null ? w : b.q8();
        float[] mins = b == null ? null : b.mins();
        float[] streamed = new float[rows];
        float[] tiled = new float[rows];
        RowKernels.streamRows(q, mins, x, streamed, 0, rows);
        TileKernels.tileRows(q, mins, x, 1, tiled, 0, rows);
        for (int r = 0; r < rows; r++) {
            assertEquals(Float.floatToRawIntBits(streamed[r]), Float.floatToRawIntBits(tiled[r]), type + " row " + r);
        }
        if (type == WeightType.F16) { // a tensor with an Inf takes the general fp16 loads when streamed
            MemorySegment copy = Arena.ofAuto().allocate(w.data().byteSize(), 64);
            copy.copyFrom(w.data());
            copy.set(ValueLayout.JAVA_SHORT_UNALIGNED, 2L * (5 * cols + 7), (short) 0x7C00);
            Tensor withInf = Tensor.of("w", type, w.shape(), copy);
            assertFalse(withInf.halvesFinite());
            RowKernels.streamRows(withInf, null, x, streamed, 0, rows);
            TileKernels.tileRows(withInf, null, x, 1, tiled, 0, rows);
            for (int r = 0; r < rows; r++) {
                assertEquals(Float.floatToRawIntBits(streamed[r]), Float.floatToRawIntBits(tiled[r]), "Inf, row " + r);
            }
            assertTrue(Float.isInfinite(tiled[5]) || Float.isNaN(tiled[5]), "row 5 holds the Inf: " + tiled[5]);
        }
    }

    /** The per-lane-count choice and its override. */
    @Test
    void oneTokenTilesAreChosenByLaneCount() {
        Set<WeightType> byWidth = TileKernels.oneTokenTiles(null);
        if (VectorBackend.vectorLanes() <= 8) {
            assertEquals(EnumSet.of(WeightType.F32, WeightType.F16), byWidth);
        } else {
            assertTrue(byWidth.isEmpty(), byWidth.toString());
        }
        assertEquals(EnumSet.of(WeightType.F16, WeightType.Q8_0), TileKernels.oneTokenTiles("F16, Q8_0"));
        assertTrue(TileKernels.oneTokenTiles("none").isEmpty());
        assertThrows(IllegalArgumentException.class, () -> TileKernels.oneTokenTiles("F17"));
    }

    /** The surefire execution "vector-256" runs these tests at 8 float lanes: checked, so it cannot silently not. */
    @Test
    void theVectorWidthIsTheOneThisRunAsksFor() {
        int lanes = FloatVector.SPECIES_PREFERRED.length();
        assertEquals(Integer.getInteger("rwkv.test.lanes", lanes), lanes, "float lanes of this JVM");
    }
}
