package dev.rwkvflink.engine.backend.cuda;

import static dev.rwkvflink.engine.backend.cuda.GpuParity.randomTokens;
import static dev.rwkvflink.engine.backend.cuda.GpuParity.relErr;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.cuda.Cuda;
import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.format.WeightFile;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.reference.Float64Rwkv;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.testing.SharedData;
import dev.rwkvflink.engine.testing.TestSeeds;
import java.util.Locale;
import java.util.Random;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * RWKV-4, RWKV-5 and RWKV-6 on the GPU ({@link Rwkv456Cuda}) against rwkv.cpp's tiny test models: 4v0, 5v1
 * (BlinkDL 5.0, no gate, per-head decay), 5v2 (5.2: gate, per-channel decay) in FP32 with rwkv.cpp's expected
 * logits, and 6v0 in
 * Q5_1 (its FP32 file is not in ../shared) against the float64 evaluation of the same dequantized weights and the
 * CPU engine. Skips itself without CUDA.
 *
 * <p>Tolerances: fp32 matrices 1e-4 per logit (as the CPU parity test; measured <= 3.8e-6), 1e-5 relative on
 * multi-stream hidden vectors and states (measured <= 7.9e-7); bf16 matrices {@link GpuParity#TINY_V456_LOGITS}
 * per logit (fixed inputs; {@link CudaToleranceSurvey} prints them). The multi-stream inputs are drawn from a seed
 * that is printed and named in every failure message ({@link TestSeeds}; {@code -Drwkv.test.seed=N} replays one).
 */
class CudaRwkv456Test {

    private static void assumeCuda() {
        Assumptions.assumeTrue(
                Cuda.availability().available(),
                "skipped: " + Cuda.availability().reason());
    }

    private static String file(String model) {
        return model.startsWith("6v0") ? "Q5_1" : "FP32";
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"4v0-660K", "5v1-730K", "5v2-730K", "6v0-3m"})
    void logitsMatchTheReferences(String model) throws Exception {
        assumeCuda();
        double[] exact;
        try (WeightFile f = WeightFile.open(SharedData.tinyModel(model, file(model)))) {
            exact = Float64Rwkv.load(f).logitsAfter(SharedData.PROMPT);
        }
        float[] expected = file(model).equals("FP32") ? SharedData.expectedLogits(model) : null;
        for (Precision p : Precision.values()) {
            String name = "cuda:" + p.name().toLowerCase(Locale.ROOT);
            try (RwkvModel m = RwkvModel.load(SharedData.tinyModel(model, file(model)), Backends.byName(name))) {
                assertInstanceOf(
                        Rwkv456Cuda.class,
                        m.runner(),
                        "the GPU runs " + m.config().version());
                GpuParity.Tiny e = GpuParity.tiny(m, SharedData.PROMPT, exact, expected);
                System.out.printf(
                        "tiny %s %s %s: max|gpu - float64| %.3g, max|gpu - rwkv.cpp| %s, rnn vs seq %.3g%n",
                        model,
                        file(model),
                        name,
                        e.vsExact(),
                        expected == null ? "n/a (quantized file)" : String.format("%.3g", e.vsExpected()),
                        e.rnnVsSeq());
                double tol = GpuParity.TINY_V456_LOGITS.of(p);
                assertTrue(e.vsExact() <= tol, name + " vs float64: " + e.vsExact());
                assertTrue(expected == null || e.vsExpected() <= tol, name + " vs rwkv.cpp: " + e.vsExpected());
                assertTrue(e.rnnVsSeq() <= tol, name + " rnn vs seq: " + e.rnnVsSeq());
            }
        }
    }

    /** 7 streams of 1..60 tokens through passes of 32 rows and 4 slots (split streams), fp32, against the CPU. */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"4v0-660K", "5v2-730K", "6v0-3m"})
    void raggedMultiStreamStepsEqualTheCpuEngine(String model) throws Exception {
        assumeCuda();
        TestSeeds.Seed seed = TestSeeds.seed();
        Random rnd = seed.random();
        try (RwkvModel cpu = RwkvModel.load(SharedData.tinyModel(model, file(model)), Backends.byName("cpu"));
                Rwkv456Cuda gpu = Rwkv456Cuda.open(
                        Cuda.device(0),
                        cpu.weights(),
                        cpu.config(),
                        Precision.F32,
                        new CudaModelRunner.Limits(32, 4))) {
            int B = 7;
            int[][] tokens = new int[B][];
            RwkvState[] gs = new RwkvState[B];
            RwkvState[] cs = new RwkvState[B];
            for (int i = 0; i < B; i++) {
                tokens[i] = randomTokens(rnd, 1 + rnd.nextInt(60), cpu.config().vocab());
                cs[i] = cpu.newState();
                cpu.hidden(cs[i], randomTokens(rnd, 3, cpu.config().vocab()));
                gs[i] = cs[i].copy();
            }
            gpu.poisonBuffers();
            float[][] hidden = gpu.advance(gs, tokens);
            for (int i = 0; i < B; i++) {
                float[] want = cpu.hidden(cs[i], tokens[i]);
                double e = relErr(hidden[i], want);
                double es = relErr(gs[i].data(), cs[i].data());
                System.out.printf(
                        "%s stream %d (%d tokens): hidden %.3g, state %.3g%n", model, i, tokens[i].length, e, es);
                assertTrue(e <= 1e-5, model + " stream " + i + " hidden: " + e + ", " + seed);
                assertTrue(es <= 1e-5, model + " stream " + i + " state: " + es + ", " + seed);
            }
        }
    }
}
