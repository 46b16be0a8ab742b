package dev.rwkvflink.engine.backend.cuda;

import static dev.rwkvflink.engine.backend.cuda.GpuParity.SMALL;
import static dev.rwkvflink.engine.backend.cuda.GpuParity.randomTokens;
import static dev.rwkvflink.engine.backend.cuda.GpuParity.relErr;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.cuda.Cuda;
import dev.rwkvflink.engine.backend.Backend;
import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.format.WeightFile;
import dev.rwkvflink.engine.model.RandomModels;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.reference.Float64Rwkv;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tensor.WeightType;
import dev.rwkvflink.engine.testing.SharedData;
import dev.rwkvflink.engine.testing.TestSeeds;
import java.util.Arrays;
import java.util.Locale;
import java.util.Random;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * The GPU runner against the CPU engine (itself checked against rwkv.cpp and a float64 evaluation). Skips itself
 * when CUDA is absent, except for {@link #withoutCudaTheCudaBackendFallsBackToTheCpu}. Random models have fixed
 * seeds; the inputs are drawn fresh each run from a seed that is printed and named in every failure message
 * ({@link TestSeeds}; {@code -Drwkv.test.seed=N} replays one). The runner's activation buffers are poisoned with
 * NaN before each check, so an element a kernel fails to write shows up.
 *
 * <p>The comparisons and their limits (relative L2 error ||gpu - ref|| / ||ref||; fp32 matrices about 1e-5, the
 * arithmetic being fp32 on both sides in another order) are in {@link GpuParity}, shared with
 * {@link CudaToleranceSurvey}, which measures their distributions over many seeds.
 */
class CudaRwkv7Test {

    private static void assumeCuda() {
        Assumptions.assumeTrue(
                Cuda.availability().available(),
                "skipped: " + Cuda.availability().reason());
    }

    @Test
    void withoutCudaTheCudaBackendFallsBackToTheCpu() {
        Backend b = Backends.byName("cuda");
        if (Cuda.availability().available()) {
            assertInstanceOf(CudaBackend.class, b);
        } else {
            assertNotEquals(
                    "cuda",
                    b.name(),
                    "without CUDA the CPU backend answers: "
                            + Cuda.availability().reason());
            assertTrue(b.name().equals("vector") || b.name().equals("scalar"), b.name());
        }
    }

    @Test
    void tinyRwkvCppModelMatchesItsExpectedLogitsInFp32() throws Exception {
        assumeCuda();
        float[] expected = SharedData.expectedLogits("7v0-834K");
        double[] exact;
        try (WeightFile f = WeightFile.open(SharedData.tinyModel("7v0-834K", "FP32"))) {
            exact = Float64Rwkv.load(f).logitsAfter(SharedData.PROMPT);
        }
        for (Precision p : Precision.values()) {
            String name = "cuda:" + p.name().toLowerCase(Locale.ROOT);
            try (RwkvModel m = RwkvModel.load(SharedData.tinyModel("7v0-834K", "FP32"), Backends.byName(name))) {
                assertNotNull(m.runner(), "the GPU runs RWKV-7");
                GpuParity.Tiny e = GpuParity.tiny(m, SharedData.PROMPT, exact, expected);
                System.out.printf(
                        "tiny 7v0 %s: max|gpu - rwkv.cpp| %.3g, max|gpu - float64| %.3g, rnn vs seq %.3g%n",
                        name, e.vsExpected(), e.vsExact(), e.rnnVsSeq());
                double tol = GpuParity.TINY_V7_LOGITS.of(p);
                assertTrue(e.vsExpected() <= tol, name + " vs rwkv.cpp expected logits: " + e.vsExpected());
                assertTrue(e.vsExact() <= tol, name + " vs float64: " + e.vsExact());
                assertTrue(e.rnnVsSeq() <= tol, name + " rnn vs seq: " + e.rnnVsSeq());
            }
        }
    }

    /**
     * Ragged multi-stream steps ({@link GpuParity#ragged}: 11 streams of 1..90 tokens through passes of 64 rows and
     * 8 slots), hidden vectors and states against the CPU engine stream by stream, then each stream alone against
     * its batched result. Limits: {@link GpuParity#RAGGED_HIDDEN}, {@link GpuParity#RAGGED_STATE},
     * {@link GpuParity#RAGGED_ALONE_VS_BATCHED}.
     */
    @Test
    void raggedMultiStreamStepsEqualTheCpuEngineStreamByStream() throws Exception {
        assumeCuda();
        TestSeeds.Seed seed = TestSeeds.seed();
        for (Precision p : Precision.values()) {
            try (GpuParity.Fixture f = GpuParity.Fixture.ragged(p)) {
                GpuParity.Ragged r = GpuParity.ragged(f, seed.random());
                for (int i = 0; i < r.hidden().length; i++) {
                    System.out.printf(
                            "%s stream %2d (%2d tokens): hidden rel err %.3g, state rel err %.3g, alone vs"
                                    + " batched %.3g%n",
                            p, i, r.lengths()[i], r.hidden()[i], r.state()[i], r.aloneVsBatched()[i]);
                }
                for (int i = 0; i < r.hidden().length; i++) {
                    String what = p + " stream " + i + " (" + r.lengths()[i] + " tokens), " + seed;
                    assertTrue(r.hidden()[i] <= GpuParity.RAGGED_HIDDEN.of(p), what + ": hidden " + r.hidden()[i]);
                    assertTrue(r.state()[i] <= GpuParity.RAGGED_STATE.of(p), what + ": state " + r.state()[i]);
                    assertTrue(
                            r.aloneVsBatched()[i] <= GpuParity.RAGGED_ALONE_VS_BATCHED.of(p),
                            what + ": alone vs batched " + r.aloneVsBatched()[i]);
                }
            }
        }
    }

    /**
     * Decode-sized steps ({@link GpuParity#decode}: 5 streams x 1 token, 12 steps: the small-batch products, the
     * in-kernel shift commit and the captured graph) against the CPU engine, hidden vectors and logits; the median
     * and the worst of the 60 vectors, and the states at the end. Limits: {@link GpuParity#DECODE_MEDIAN},
     * {@link GpuParity#DECODE_WORST} (where the bf16 outliers come from), {@link GpuParity#DECODE_STATE}.
     */
    @Test
    void decodeStepsOfSeveralStreamsEqualTheCpuEngine() throws Exception {
        assumeCuda();
        TestSeeds.Seed seed = TestSeeds.seed();
        for (Precision p : Precision.values()) {
            try (GpuParity.Fixture f = GpuParity.Fixture.decode(p)) {
                GpuParity.Decode d = GpuParity.decode(f, seed.random());
                int b = GpuParity.Decode.STREAMS;
                for (int step = 0; step < GpuParity.Decode.STEPS; step++) {
                    StringBuilder line = new StringBuilder(p + " step " + step + ":");
                    for (int i = 0; i < b; i++) {
                        line.append(String.format(" %.2g", d.errors()[step * b + i]));
                    }
                    System.out.println(line);
                }
                System.out.printf(
                        "%s decode 5 streams x 12 steps: median rel err %.3g, worst %.3g (%s)%n",
                        p, d.median(), d.worst(), seed);
                assertTrue(d.median() <= GpuParity.DECODE_MEDIAN.of(p), p + " median " + d.median() + ", " + seed);
                assertTrue(d.worst() <= GpuParity.DECODE_WORST.of(p), p + " worst " + d.worst() + ", " + seed);
                for (int i = 0; i < b; i++) {
                    assertTrue(
                            d.state()[i] <= GpuParity.DECODE_STATE.of(p),
                            p + " state " + i + ": " + d.state()[i] + ", " + seed);
                }
            }
        }
    }

    /**
     * Few long streams ({@link GpuParity#chunked}: 3 streams of 100, 37 and 250 tokens in one step) take the
     * chunked recurrence (chunks of 32, partial last chunks): hidden vectors and states against the CPU engine.
     * Limits: {@link GpuParity#CHUNKED_HIDDEN}, {@link GpuParity#CHUNKED_STATE}.
     */
    @Test
    void longStreamsThroughTheChunkedRecurrenceEqualTheCpuEngine() throws Exception {
        assumeCuda();
        TestSeeds.Seed seed = TestSeeds.seed();
        for (Precision p : Precision.values()) {
            try (GpuParity.Fixture f = GpuParity.Fixture.chunked(p)) {
                assertTrue(
                        f.gpu().chunked(GpuParity.Chunked.ROWS, GpuParity.Chunked.LENGTHS.length),
                        "this step takes the chunked recurrence");
                GpuParity.Chunked c = GpuParity.chunked(f, seed.random());
                for (int i = 0; i < c.hidden().length; i++) {
                    System.out.printf(
                            "chunked %s stream %d (%d tokens): hidden %.3g, state %.3g%n",
                            p, i, c.lengths()[i], c.hidden()[i], c.state()[i]);
                }
                for (int i = 0; i < c.hidden().length; i++) {
                    String what = p + " stream " + i + " (" + c.lengths()[i] + " tokens), " + seed;
                    assertTrue(c.hidden()[i] <= GpuParity.CHUNKED_HIDDEN.of(p), what + ": hidden " + c.hidden()[i]);
                    assertTrue(c.state()[i] <= GpuParity.CHUNKED_STATE.of(p), what + ": state " + c.state()[i]);
                }
            }
        }
    }

    /** bf16 logits after a random prompt of 200 tokens ({@link GpuParity#logits}); limit {@link GpuParity#LOGITS}. */
    @Test
    void logitsAndHeadAgreeWithTheCpuEngine() throws Exception {
        assumeCuda();
        TestSeeds.Seed seed = TestSeeds.seed();
        try (GpuParity.Fixture f = GpuParity.Fixture.logits()) {
            GpuParity.Logits l = GpuParity.logits(f, seed.random());
            System.out.printf("bf16 logits after 200 tokens: rel err %.3g (%s)%n", l.error(), seed);
            assertEquals(SMALL.vocab(), l.length(), seed.toString());
            assertTrue(l.error() <= GpuParity.LOGITS.of(Precision.BF16), "bf16 logits: " + l.error() + ", " + seed);
        }
    }

    /**
     * Resident states (slots of the device pool reserved for one owner) advanced over several calls equal the same
     * states advanced on the host API of the same runner (within the fp32 tolerance 1e-5: the host API here runs in
     * two passes, which may take the other time-mix path, chunked or per-token, and other product kernels),
     * and the CPU engine within the fp32 tolerance; the pool is shared: reservations never overlap, the host API
     * uses only unreserved slots (resident contents survive it), an exhausted pool is refused with the reason.
     */
    @Test
    void residentStatesEqualHostStatesAndShareThePool() throws Exception {
        assumeCuda();
        TestSeeds.Seed seed = TestSeeds.seed();
        Random rnd = seed.random();
        try (WeightFile cpuWeights = RandomModels.rwkv7(SMALL, 17, WeightType.F32);
                RwkvModel cpu = RwkvModel.of(cpuWeights, Backends.byName("cpu"));
                Rwkv7Cuda gpu = Rwkv7Cuda.open(
                        Cuda.device(0), cpu.weights(), cpu.config(), Precision.F32, new Rwkv7Cuda.Limits(256, 8))) {
            var a = gpu.reserve(5);
            var b = gpu.reserve(5);
            assertEquals(5, a.capacity());
            assertEquals(3, b.capacity(), "the second owner gets what is left of 8 slots");
            IllegalStateException full = Assertions.assertThrows(IllegalStateException.class, () -> gpu.reserve(1));
            assertTrue(full.getMessage().contains("rwkv.cuda.slots"), full.getMessage());
            b.close();
            var c = gpu.reserve(2);
            assertEquals(2, c.capacity());

            int B = 5;
            RwkvState[] host = new RwkvState[B];
            RwkvState[] ref = new RwkvState[B];
            for (int i = 0; i < B; i++) {
                host[i] = cpu.newState();
                cpu.hidden(host[i], randomTokens(rnd, 3 + i, SMALL.vocab()));
                ref[i] = host[i].copy();
                if (i % 2 == 0) {
                    a.load(i, host[i]);
                } else {
                    a.reset(i);
                    host[i] = cpu.newState();
                    ref[i] = cpu.newState();
                }
            }
            c.reset(0);
            c.reset(1);
            for (int call = 0; call < 4; call++) {
                int[] slots = {4, 0, 3, 1, 2};
                int[][] tokens = new int[B][];
                RwkvState[] hostOrdered = new RwkvState[B];
                for (int j = 0; j < B; j++) {
                    tokens[j] =
                            j == 2 && call == 1 ? new int[0] : randomTokens(rnd, 1 + rnd.nextInt(40), SMALL.vocab());
                    hostOrdered[j] = host[slots[j]];
                }
                gpu.poisonBuffers();
                float[][] res = a.advance(slots, tokens);
                float[][] hostRes = gpu.advance(hostOrdered, tokens); // 3 unreserved slots: two passes
                for (int j = 0; j < B; j++) {
                    if (tokens[j].length == 0) {
                        assertEquals(null, res[j], "an empty token list yields null, " + seed);
                        continue;
                    }
                    float[] want = cpu.hidden(ref[slots[j]], tokens[j]);
                    assertTrue(
                            relErr(res[j], want) <= 1e-5,
                            "call " + call + " slot " + slots[j] + ": " + relErr(res[j], want) + ", " + seed);
                    double vsHost = relErr(res[j], hostRes[j]);
                    assertTrue(
                            vsHost <= 1e-5,
                            "resident vs host API, call " + call + " slot " + slots[j] + ": " + vsHost + ", " + seed);
                }
            }
            for (int i = 0; i < B; i++) {
                RwkvState out = cpu.newState();
                a.store(i, out);
                double e = relErr(out.data(), ref[i].data());
                assertTrue(e <= 1e-5, "stored state " + i + ": " + e + ", " + seed);
                assertTrue(relErr(out.data(), host[i].data()) <= 1e-5, "resident vs host state " + i + ", " + seed);
            }
            RwkvState untouched = cpu.newState();
            c.store(1, untouched);
            assertTrue(
                    Arrays.equals(untouched.data(), cpu.newState().data()),
                    "the host API never wrote into another owner's slot, " + seed);
            a.close();
            c.close();
            assertEquals(8, gpu.reserve(100).capacity(), "closed reservations are given back");
        }
    }
}
