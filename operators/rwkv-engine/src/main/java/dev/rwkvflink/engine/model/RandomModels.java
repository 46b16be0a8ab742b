package dev.rwkvflink.engine.model;

import dev.rwkvflink.engine.backend.Backend;
import dev.rwkvflink.engine.format.WeightFile;
import dev.rwkvflink.engine.tensor.Quantizer;
import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * RWKV-7 models with random weights of a real shape, from a fixed seed: for benchmarks and demos. Their outputs
 * carry no learned meaning. Projections are drawn N(0, 1/in) so activations keep unit scale through the layers;
 * decays, learning rates and mixes sit in the ranges trained models use, so the state keeps a long memory.
 *
 * <p>How long the state remembers is set by the decay and learning-rate biases ({@link Memory}): benchmark models
 * use {@link Memory#DEFAULT}; the {@link #demo} model biases both towards a long memory.
 */
public final class RandomModels {

    /** The shape of an RWKV-7 model, LoRA ranks included. */
    public record Rwkv7Shape(
            int layers, int embd, int headSize, int vocab, int ffn, int decayRank, int aRank, int vRank, int gateRank) {
        /** RWKV-7 "0.1B" (World vocabulary): L12, D768, 12 heads of 64. */
        public static final Rwkv7Shape RWKV7_0_1B = new Rwkv7Shape(12, 768, 64, 65536, 3072, 64, 64, 32, 128);
        /** RWKV-7 "1.5B" (World vocabulary): L24, D2048, 32 heads of 64, FFN 8192. */
        public static final Rwkv7Shape RWKV7_1_5B = new Rwkv7Shape(24, 2048, 64, 65536, 8192, 96, 96, 64, 256);
        /**
         * The {@link #demo} model: byte-level (256 tokens), L4, D32, one head of 32, FFN 128, LoRA ranks 8. Tiny
         * on purpose: on the CPU engine the cost per token and layer is dominated by fixed work (the sequential
         * WKV scan, per-channel exponentials, small matrix products), so a 100 KB text in one engine call takes
         * about 6 s on two cores with this shape, 11 s with D64 and over a minute with D256.
         */
        public static final Rwkv7Shape DEMO_BYTES = new Rwkv7Shape(4, 32, 32, 256, 128, 8, 8, 8, 8);

        /** The configuration of a model of this shape with {@code matrixType} matrices (GroupNorm eps 64e-5). */
        public RwkvConfig config(WeightType matrixType) {
            return new RwkvConfig(
                    RwkvVersion.V7, layers, embd, embd / headSize, headSize, vocab, ffn, 64e-5f, matrixType);
        }
    }

    /**
     * Ranges of the per-channel biases that set how long an RWKV-7 state remembers; each channel's value is drawn
     * uniformly from its range.
     * <ul>
     *   <li>{@code w0}, the decay base: the decay per token is {@code exp(-e^{-1/2} sigmoid(w0 + lora))}, so lower
     *       values keep more of the state (w0 = -2: 0.93 per token, w0 = -6: 0.9985, w0 = -9: 0.99993);</li>
     *   <li>{@code a0}, the in-context learning rate base: each token also erases the state along its own key
     *       direction by {@code a = sigmoid(a0 + lora)} (the delta rule), so lower values erase less.</li>
     * </ul>
     */
    public record Memory(double w0Min, double w0Max, double a0Min, double a0Max) {
        /** The ranges of the original benchmark models: w0 in [-2, 2], a0 in [-1, 1]. */
        public static final Memory DEFAULT = new Memory(-2, 2, -1, 1);

        public Memory {
            if (!(w0Min <= w0Max) || !(a0Min <= a0Max)) {
                throw new IllegalArgumentException(
                        "empty range: w0 [" + w0Min + ", " + w0Max + "], a0 [" + a0Min + ", " + a0Max + "]");
            }
        }
    }

    /** Seed of the {@link #demo} model's weights. */
    public static final long DEMO_SEED = 20250101L;
    /**
     * The demo model's memory: w0 in [-12, -6] (decays 0.9985 to 0.999996 per token, half-lives of 460 to 190,000
     * tokens) and a0 in [-12, -6] (erasing at most about 0.25 % per token), so the whole text shapes the final
     * state.
     */
    public static final Memory DEMO_MEMORY = new Memory(-12, -6, -12, -6);

    /**
     * <b>The demo model. Its embeddings carry NO learned meaning:</b> its weights are random numbers (seed
     * {@link #DEMO_SEED}), never trained on any text, so similar texts do not get similar vectors in any useful
     * sense. It exists so that the pipeline (tokenizer, state, embedder, Flink operator) can be run and tested end
     * to end without downloading a model. Shape {@link Rwkv7Shape#DEMO_BYTES} (byte-level, no vocabulary file
     * needed), fp32, with {@link #DEMO_MEMORY} so that its final state depends on the whole text, not only on
     * its last few hundred bytes.
     */
    public static RwkvModel demo(Backend backend) {
        return RwkvModel.of(rwkv7(Rwkv7Shape.DEMO_BYTES, DEMO_SEED, WeightType.F32, DEMO_MEMORY), backend);
    }

    /** A random RWKV-7, matrices stored as {@code matrixType}, small tensors fp32, with {@link Memory#DEFAULT}. */
    public static WeightFile rwkv7(Rwkv7Shape s, long seed, WeightType matrixType) {
        return rwkv7(s, seed, matrixType, Memory.DEFAULT);
    }

    /**
     * A random RWKV-7 with projection matrices stored as {@code matrixType} (small tensors stay fp32) and the
     * decay and learning-rate bases drawn from {@code memory}'s ranges. The weights depend only on the arguments.
     */
    public static WeightFile rwkv7(Rwkv7Shape s, long seed, WeightType matrixType, Memory memory) {
        return rwkv7(s, seed, matrixType, memory, false);
    }

    /**
     * A random RWKV-7 whose matrices are drawn uniformly with the variance {@link #rwkv7} gives them (instead of
     * normally): about 20 times faster to draw, for benchmark models of billions of weights (a 1.5B shape draws in
     * seconds, not minutes). Other tensors as {@link #rwkv7}.
     */
    public static WeightFile rwkv7Uniform(Rwkv7Shape s, long seed, WeightType matrixType) {
        return rwkv7(s, seed, matrixType, Memory.DEFAULT, true);
    }

    private static WeightFile rwkv7(Rwkv7Shape s, long seed, WeightType matrixType, Memory memory, boolean uniform) {
        SplittableRandom rnd = new SplittableRandom(seed);
        MatrixDraw matrix = uniform ? RandomModels::uniformMatrix : RandomModels::matrix;
        Map<String, Tensor> t = new LinkedHashMap<>();
        int C = s.embd();
        t.put("emb.weight", matrix.draw("emb.weight", s.vocab(), C, 1.0, rnd, matrixType));
        t.put("blocks.0.ln0.weight", constant("blocks.0.ln0.weight", C, 1f));
        t.put("blocks.0.ln0.bias", constant("blocks.0.ln0.bias", C, 0f));
        for (int l = 0; l < s.layers(); l++) {
            String p = "blocks." + l + ".";
            for (String ln : new String[] {"ln1", "ln2", "att.ln_x"}) {
                t.put(p + ln + ".weight", constant(p + ln + ".weight", C, 1f));
                t.put(p + ln + ".bias", constant(p + ln + ".bias", C, 0f));
            }
            t.put(p + "att.x_rwkvag", uniform(p + "att.x_rwkvag", 6 * C, 0.0, 1.0, rnd, 6, C));
            t.put(p + "att.w0", uniform(p + "att.w0", C, memory.w0Min(), memory.w0Max(), rnd, C));
            t.put(p + "att.a0", uniform(p + "att.a0", C, memory.a0Min(), memory.a0Max(), rnd, C));
            t.put(p + "att.v0", uniform(p + "att.v0", C, -1.0, 1.0, rnd, C));
            t.put(p + "att.k_k", uniform(p + "att.k_k", C, 0.7, 1.0, rnd, C));
            t.put(p + "att.k_a", uniform(p + "att.k_a", C, 0.8, 1.2, rnd, C));
            t.put(p + "att.r_k", uniform(p + "att.r_k", C, -0.5, 0.5, rnd, C / s.headSize(), s.headSize()));
            lora(t, p + "att.w", C, s.decayRank(), rnd, matrixType, matrix);
            lora(t, p + "att.a", C, s.aRank(), rnd, matrixType, matrix);
            lora(t, p + "att.v", C, s.vRank(), rnd, matrixType, matrix);
            lora(t, p + "att.g", C, s.gateRank(), rnd, matrixType, matrix);
            for (String m : new String[] {"key", "value", "receptance", "output"}) {
                t.put(
                        p + "att." + m + ".weight",
                        matrix.draw(p + "att." + m + ".weight", C, C, 1.0 / C, rnd, matrixType));
            }
            t.put(p + "ffn.x_k", uniform(p + "ffn.x_k", C, 0.0, 1.0, rnd, C));
            t.put(p + "ffn.key.weight", matrix.draw(p + "ffn.key.weight", s.ffn(), C, 1.0 / C, rnd, matrixType));
            t.put(
                    p + "ffn.value.weight",
                    matrix.draw(p + "ffn.value.weight", C, s.ffn(), 1.0 / s.ffn(), rnd, matrixType));
        }
        t.put("ln_out.weight", constant("ln_out.weight", C, 1f));
        t.put("ln_out.bias", constant("ln_out.bias", C, 0f));
        t.put("head.weight", matrix.draw("head.weight", s.vocab(), C, 1.0 / C, rnd, matrixType));
        return new WeightFile(null, "random(seed " + seed + ")", WeightFile.Origin.BLINKDL, t, null);
    }

    /** {@code p1} (rank x C) and {@code p2} (C x rank), both "out x in". */
    private static void lora(
            Map<String, Tensor> t,
            String p,
            int C,
            int rank,
            SplittableRandom rnd,
            WeightType type,
            MatrixDraw matrix) {
        t.put(p + "1", matrix.draw(p + "1", rank, C, 1.0 / C, rnd, type));
        t.put(p + "2", matrix.draw(p + "2", C, rank, 1.0 / rank, rnd, type));
    }

    /** How a weight matrix is drawn: rows x cols values of the given variance, stored as {@code type}. */
    @FunctionalInterface
    private interface MatrixDraw {
        Tensor draw(String name, int rows, int cols, double variance, SplittableRandom rnd, WeightType type);
    }

    /** Uniform on [-a, a] with a = sqrt(3 variance): the variance of {@link #matrix}, drawn without logarithms. */
    private static Tensor uniformMatrix(
            String name, int rows, int cols, double variance, SplittableRandom rnd, WeightType type) {
        float[] v = new float[Math.multiplyExact(rows, cols)];
        double a = StrictMath.sqrt(3 * variance);
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (a * (2 * rnd.nextDouble() - 1));
        }
        return store(name, v, rows, cols, type);
    }

    private static Tensor matrix(
            String name, int rows, int cols, double variance, SplittableRandom rnd, WeightType type) {
        float[] v = new float[rows * cols];
        double sd = StrictMath.sqrt(variance);
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (gaussian(rnd) * sd);
        }
        return store(name, v, rows, cols, type);
    }

    private static Tensor store(String name, float[] v, int rows, int cols, WeightType type) {
        WeightType stored = type.isQuantized() && cols % type.blockSize != 0 ? WeightType.F32 : type;
        return Quantizer.quantize(name, v, new long[] {rows, cols}, stored);
    }

    private static Tensor uniform(String name, int n, double lo, double hi, SplittableRandom rnd, long... shape) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (lo + (hi - lo) * rnd.nextDouble());
        }
        return Tensor.ofFloats(name, v, shape);
    }

    private static Tensor constant(String name, int n, float value) {
        float[] v = new float[n];
        Arrays.fill(v, value);
        return Tensor.ofFloats(name, v, n);
    }

    /**
     * Box-Muller: a standard normal deviate from two uniforms (SplittableRandom has no nextGaussian here). Uses
     * {@link StrictMath}, whose results are the same on every JVM and CPU ({@code Math.log} and {@code Math.cos}
     * may differ in the last bit between intrinsics), so a seed gives bit-identical weights, and the same model
     * fingerprint, everywhere.
     */
    private static double gaussian(SplittableRandom rnd) {
        double u = 1.0 - rnd.nextDouble();
        return StrictMath.sqrt(-2 * StrictMath.log(u)) * StrictMath.cos(2 * Math.PI * rnd.nextDouble());
    }
}
