package dev.rwkvflink.engine.backend.cuda;

import dev.rwkvflink.cuda.CudaDevice;
import dev.rwkvflink.cuda.CudaStream;
import dev.rwkvflink.cuda.DeviceMemory;
import dev.rwkvflink.engine.format.WeightFile;
import dev.rwkvflink.engine.model.RandomModels.Rwkv7Shape;
import dev.rwkvflink.engine.model.RwkvConfig;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * An RWKV-7 model's weights in device memory, uploaded once: per-channel vectors in fp32, projection matrices in
 * the {@link Precision}'s type (row-major "out x in", as the engine's canonical form), the embedding table in fp32.
 *
 * <p>Two layout changes from the canonical form, both for fewer launches: the six token-shift mixes
 * {@code x_rwkvag} are stored in the order r, k, v, w, a, g (so r, k, v are adjacent), and the r, k, v matrices are
 * one {@code 3 x C x C} block (one strided-batched product computes all three).
 */
final class Rwkv7Weights implements AutoCloseable {
    /** Rows of {@code x_rwkvag} (r, w, k, v, a, g) in device order r, k, v, w, a, g. */
    static final int[] MIX_ORDER = {0, 2, 3, 1, 4, 5};

    final int layers;
    final int embd;
    final int vocab;
    final int ffn;
    final int decayRank;
    final int aRank;
    final int vRank;
    final int gateRank;
    final Precision precision;

    DeviceMemory emb;
    DeviceMemory ln0w;
    DeviceMemory ln0b;
    DeviceMemory lnOutW;
    DeviceMemory lnOutB;
    DeviceMemory head;
    final Layer[] layer;

    private final List<DeviceMemory> owned = new ArrayList<>();

    /** One layer's tensors. {@code v0, v1, v2} are null in layer 0 (it sets the value residual). */
    static final class Layer {
        DeviceMemory ln1w, ln1b, ln2w, ln2b, mix, w0, a0, v0, kk, ka, rk, lnxw, lnxb, ffnMix;
        DeviceMemory rkv, output, w1, w2, a1, a2, v1, v2, g1, g2, ffnKey, ffnValue;
    }

    private Rwkv7Weights(
            int layers,
            int embd,
            int vocab,
            int ffn,
            int decayRank,
            int aRank,
            int vRank,
            int gateRank,
            Precision precision) {
        this.layers = layers;
        this.embd = embd;
        this.vocab = vocab;
        this.ffn = ffn;
        this.decayRank = decayRank;
        this.aRank = aRank;
        this.vRank = vRank;
        this.gateRank = gateRank;
        this.precision = precision;
        this.layer = new Layer[layers];
        for (int l = 0; l < layers; l++) {
            layer[l] = new Layer();
        }
    }

    /** Uploads the weights of an RWKV-7 model file (any weight type: quantized matrices are dequantized first). */
    static Rwkv7Weights upload(
            WeightFile f, RwkvConfig c, Precision p, CudaDevice device, CudaStream stream, Rwkv7Kernels k) {
        String b0 = "blocks.0.att.";
        Rwkv7Weights w = new Rwkv7Weights(
                c.layers(),
                c.embd(),
                c.vocab(),
                c.ffn(),
                f.get(b0 + "w1").rows(),
                f.get(b0 + "a1").rows(),
                c.layers() > 1 ? f.get("blocks.1.att.v1").rows() : 0,
                f.get(b0 + "g1").rows(),
                p);
        try (WeightUploader u = new WeightUploader(device, stream, k, p, w.owned, 0)) {
            int C = c.embd();
            w.emb = u.vector(f.get("emb.weight").toFloatArray());
            w.ln0w = u.vector(f.get("blocks.0.ln0.weight").toFloatArray());
            w.ln0b = u.vector(f.get("blocks.0.ln0.bias").toFloatArray());
            w.lnOutW = u.vector(f.get("ln_out.weight").toFloatArray());
            w.lnOutB = u.vector(f.get("ln_out.bias").toFloatArray());
            w.head = u.matrix(f.get("head.weight").toFloatArray());
            for (int l = 0; l < c.layers(); l++) {
                String p0 = "blocks." + l + ".";
                String a = p0 + "att.";
                Layer y = w.layer[l];
                y.ln1w = u.vector(f.get(p0 + "ln1.weight").toFloatArray());
                y.ln1b = u.vector(f.get(p0 + "ln1.bias").toFloatArray());
                y.ln2w = u.vector(f.get(p0 + "ln2.weight").toFloatArray());
                y.ln2b = u.vector(f.get(p0 + "ln2.bias").toFloatArray());
                float[] mix = f.get(a + "x_rwkvag").toFloatArray();
                float[] ordered = new float[6 * C];
                for (int m = 0; m < 6; m++) {
                    System.arraycopy(mix, MIX_ORDER[m] * C, ordered, m * C, C);
                }
                y.mix = u.vector(ordered);
                y.w0 = u.vector(f.get(a + "w0").toFloatArray());
                y.a0 = u.vector(f.get(a + "a0").toFloatArray());
                y.kk = u.vector(f.get(a + "k_k").toFloatArray());
                y.ka = u.vector(f.get(a + "k_a").toFloatArray());
                y.rk = u.vector(f.get(a + "r_k").toFloatArray());
                y.lnxw = u.vector(f.get(a + "ln_x.weight").toFloatArray());
                y.lnxb = u.vector(f.get(a + "ln_x.bias").toFloatArray());
                y.ffnMix = u.vector(f.get(p0 + "ffn.x_k").toFloatArray());
                float[] rkv = new float[3 * C * C];
                System.arraycopy(f.get(a + "receptance.weight").toFloatArray(), 0, rkv, 0, C * C);
                System.arraycopy(f.get(a + "key.weight").toFloatArray(), 0, rkv, C * C, C * C);
                System.arraycopy(f.get(a + "value.weight").toFloatArray(), 0, rkv, 2 * C * C, C * C);
                y.rkv = u.matrix(rkv);
                y.output = u.matrix(f.get(a + "output.weight").toFloatArray());
                y.w1 = u.matrix(f.get(a + "w1").toFloatArray());
                y.w2 = u.matrix(f.get(a + "w2").toFloatArray());
                y.a1 = u.matrix(f.get(a + "a1").toFloatArray());
                y.a2 = u.matrix(f.get(a + "a2").toFloatArray());
                y.g1 = u.matrix(f.get(a + "g1").toFloatArray());
                y.g2 = u.matrix(f.get(a + "g2").toFloatArray());
                if (l > 0) {
                    y.v0 = u.vector(f.get(a + "v0").toFloatArray());
                    y.v1 = u.matrix(f.get(a + "v1").toFloatArray());
                    y.v2 = u.matrix(f.get(a + "v2").toFloatArray());
                }
                y.ffnKey = u.matrix(f.get(p0 + "ffn.key.weight").toFloatArray());
                y.ffnValue = u.matrix(f.get(p0 + "ffn.value.weight").toFloatArray());
            }
        } catch (RuntimeException e) {
            w.close();
            throw e;
        }
        return w;
    }

    /**
     * Random weights of a real shape drawn on the device (for benchmarks of shapes too big to generate on the
     * host quickly): the same distributions as {@link dev.rwkvflink.engine.model.RandomModels} (projections
     * N(0, 1/in), decay and learning-rate bases in [-2, 2] and [-1, 1]), other values.
     */
    static Rwkv7Weights random(
            Rwkv7Shape s, long seed, Precision p, CudaDevice device, CudaStream stream, Rwkv7Kernels k) {
        Rwkv7Weights w = new Rwkv7Weights(
                s.layers(), s.embd(), s.vocab(), s.ffn(), s.decayRank(), s.aRank(), s.vRank(), s.gateRank(), p);
        int C = s.embd();
        try (WeightUploader u = new WeightUploader(device, stream, k, p, w.owned, seed)) {
            w.emb = u.randomVector((long) s.vocab() * C, 0, 1, 0);
            w.ln0w = u.vector(filled(C, 1f));
            w.ln0b = u.vector(filled(C, 0f));
            w.lnOutW = u.vector(filled(C, 1f));
            w.lnOutB = u.vector(filled(C, 0f));
            w.head = u.randomMatrix(s.vocab(), C);
            for (int l = 0; l < s.layers(); l++) {
                Layer y = w.layer[l];
                y.ln1w = u.vector(filled(C, 1f));
                y.ln1b = u.vector(filled(C, 0f));
                y.ln2w = u.vector(filled(C, 1f));
                y.ln2b = u.vector(filled(C, 0f));
                y.lnxw = u.vector(filled(C, 1f));
                y.lnxb = u.vector(filled(C, 0f));
                y.mix = u.randomVector(6L * C, 1, 0, 1);
                y.w0 = u.randomVector(C, 1, -2, 2);
                y.a0 = u.randomVector(C, 1, -1, 1);
                y.kk = u.randomVector(C, 1, 0.7f, 1);
                y.ka = u.randomVector(C, 1, 0.8f, 1.2f);
                y.rk = u.randomVector(C, 1, -0.5f, 0.5f);
                y.ffnMix = u.randomVector(C, 1, 0, 1);
                y.rkv = u.randomMatrix(3 * C, C);
                y.output = u.randomMatrix(C, C);
                y.w1 = u.randomMatrix(s.decayRank(), C);
                y.w2 = u.randomMatrix(C, s.decayRank());
                y.a1 = u.randomMatrix(s.aRank(), C);
                y.a2 = u.randomMatrix(C, s.aRank());
                y.g1 = u.randomMatrix(s.gateRank(), C);
                y.g2 = u.randomMatrix(C, s.gateRank());
                if (l > 0) {
                    y.v0 = u.randomVector(C, 1, -1, 1);
                    y.v1 = u.randomMatrix(s.vRank(), C);
                    y.v2 = u.randomMatrix(C, s.vRank());
                }
                y.ffnKey = u.randomMatrix(s.ffn(), C);
                y.ffnValue = u.randomMatrix(C, s.ffn());
            }
        } catch (RuntimeException e) {
            w.close();
            throw e;
        }
        return w;
    }

    /** Parameters in the layers (all but embedding and head): the "body" that MFU figures count. */
    long bodyParameters() {
        long C = embd;
        long perLayer = 4 * C * C + 2 * C * ffn + 2 * C * ((long) decayRank + aRank + gateRank) + 12 * C + C;
        long total = layers * perLayer + (layers - 1) * (2 * C * vRank + C);
        return total;
    }

    /** Bytes of device memory the weights take. */
    long deviceBytes() {
        long n = 0;
        for (DeviceMemory m : owned) {
            n += m.bytes();
        }
        return n;
    }

    private static float[] filled(int n, float v) {
        float[] a = new float[n];
        Arrays.fill(a, v);
        return a;
    }

    @Override
    public void close() {
        for (DeviceMemory m : owned) {
            m.close();
        }
        owned.clear();
    }
}
