package dev.rwkvflink.engine.model;

import dev.rwkvflink.engine.format.WeightFile;
import dev.rwkvflink.engine.tensor.Quantizer;
import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * RWKV-7 models with random weights of a real shape, from a fixed seed: for benchmarks and demos. Their outputs
 * carry no learned meaning. Projections are drawn N(0, 1/in) so activations keep unit scale through the layers;
 * decays, learning rates and mixes sit in the ranges trained models use, so the state keeps a long memory.
 */
public final class RandomModels {

    /** The shape of an RWKV-7 model, LoRA ranks included. */
    public record Rwkv7Shape(int layers, int embd, int headSize, int vocab, int ffn,
                             int decayRank, int aRank, int vRank, int gateRank) {
        /** RWKV-7 "0.1B" (World vocabulary): L12, D768, 12 heads of 64. */
        public static final Rwkv7Shape RWKV7_0_1B = new Rwkv7Shape(12, 768, 64, 65536, 3072, 64, 64, 32, 128);
    }

    private RandomModels() {
    }

    /** A random RWKV-7 with projection matrices stored as {@code matrixType}; small tensors stay fp32. */
    public static WeightFile rwkv7(Rwkv7Shape s, long seed, WeightType matrixType) {
        SplittableRandom rnd = new SplittableRandom(seed);
        Map<String, Tensor> t = new LinkedHashMap<>();
        int C = s.embd();
        t.put("emb.weight", matrix("emb.weight", s.vocab(), C, 1.0, rnd, matrixType));
        t.put("blocks.0.ln0.weight", constant("blocks.0.ln0.weight", C, 1f));
        t.put("blocks.0.ln0.bias", constant("blocks.0.ln0.bias", C, 0f));
        for (int l = 0; l < s.layers(); l++) {
            String p = "blocks." + l + ".";
            for (String ln : new String[] {"ln1", "ln2", "att.ln_x"}) {
                t.put(p + ln + ".weight", constant(p + ln + ".weight", C, 1f));
                t.put(p + ln + ".bias", constant(p + ln + ".bias", C, 0f));
            }
            t.put(p + "att.x_rwkvag", uniform(p + "att.x_rwkvag", 6 * C, 0.0, 1.0, rnd, 6, C));
            t.put(p + "att.w0", uniform(p + "att.w0", C, -2.0, 2.0, rnd, C));
            t.put(p + "att.a0", uniform(p + "att.a0", C, -1.0, 1.0, rnd, C));
            t.put(p + "att.v0", uniform(p + "att.v0", C, -1.0, 1.0, rnd, C));
            t.put(p + "att.k_k", uniform(p + "att.k_k", C, 0.7, 1.0, rnd, C));
            t.put(p + "att.k_a", uniform(p + "att.k_a", C, 0.8, 1.2, rnd, C));
            t.put(p + "att.r_k", uniform(p + "att.r_k", C, -0.5, 0.5, rnd, C / s.headSize(), s.headSize()));
            lora(t, p + "att.w", C, s.decayRank(), rnd, matrixType);
            lora(t, p + "att.a", C, s.aRank(), rnd, matrixType);
            lora(t, p + "att.v", C, s.vRank(), rnd, matrixType);
            lora(t, p + "att.g", C, s.gateRank(), rnd, matrixType);
            for (String m : new String[] {"key", "value", "receptance", "output"}) {
                t.put(p + "att." + m + ".weight", matrix(p + "att." + m + ".weight", C, C, 1.0 / C, rnd, matrixType));
            }
            t.put(p + "ffn.x_k", uniform(p + "ffn.x_k", C, 0.0, 1.0, rnd, C));
            t.put(p + "ffn.key.weight", matrix(p + "ffn.key.weight", s.ffn(), C, 1.0 / C, rnd, matrixType));
            t.put(p + "ffn.value.weight", matrix(p + "ffn.value.weight", C, s.ffn(), 1.0 / s.ffn(), rnd, matrixType));
        }
        t.put("ln_out.weight", constant("ln_out.weight", C, 1f));
        t.put("ln_out.bias", constant("ln_out.bias", C, 0f));
        t.put("head.weight", matrix("head.weight", s.vocab(), C, 1.0 / C, rnd, matrixType));
        return new WeightFile(null, "random(seed " + seed + ")", WeightFile.Origin.BLINKDL, t, null);
    }

    /** {@code p1} (rank x C) and {@code p2} (C x rank), both "out x in". */
    private static void lora(Map<String, Tensor> t, String p, int C, int rank, SplittableRandom rnd, WeightType type) {
        t.put(p + "1", matrix(p + "1", rank, C, 1.0 / C, rnd, type));
        t.put(p + "2", matrix(p + "2", C, rank, 1.0 / rank, rnd, type));
    }

    private static Tensor matrix(String name, int rows, int cols, double variance, SplittableRandom rnd, WeightType type) {
        float[] v = new float[rows * cols];
        double sd = Math.sqrt(variance);
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (gaussian(rnd) * sd);
        }
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
        java.util.Arrays.fill(v, value);
        return Tensor.ofFloats(name, v, n);
    }

    /** Box-Muller: a standard normal deviate from two uniforms (SplittableRandom has no nextGaussian here). */
    private static double gaussian(SplittableRandom rnd) {
        double u = 1.0 - rnd.nextDouble();
        return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd.nextDouble());
    }
}
