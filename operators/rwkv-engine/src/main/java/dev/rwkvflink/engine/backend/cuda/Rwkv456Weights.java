package dev.rwkvflink.engine.backend.cuda;

import dev.rwkvflink.cuda.CudaDevice;
import dev.rwkvflink.cuda.CudaStream;
import dev.rwkvflink.cuda.DeviceMemory;
import dev.rwkvflink.engine.format.WeightFile;
import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.model.RwkvVersion;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * An RWKV-4, RWKV-5 (5.0, 5.1, 5.2) or RWKV-6 model's weights in device memory, uploaded once from the canonical form:
 * per-channel vectors fp32, projection matrices in the {@link Precision}'s type.
 *
 * <p>Layout changes for fewer launches: the time-mix projections are one block in the order k, v, r[, g] (one
 * strided-batched product), and the token-shift mixes are stored in the form {@code xx + (prev - xx) * m}: v5's
 * {@code time_mix} {@code mu} (written {@code xx mu + prev (1 - mu)}) becomes {@code m = 1 - mu}; v6's
 * {@code time_maa} already has that form (v4 is v5's form). Per-head decays and bonuses (5.0, 5.1) are spread over
 * their channels.
 */
final class Rwkv456Weights implements AutoCloseable {
    final Precision precision;
    final boolean v4;
    final boolean v6;
    final boolean gated;
    /** v6: rank of the data-dependent mix (time_maa_w1 is 5 rank x C) and of the decay LoRA. */
    final int maaRank;

    final int decayRank;

    DeviceMemory emb;
    DeviceMemory ln0w;
    DeviceMemory ln0b;
    DeviceMemory lnOutW;
    DeviceMemory lnOutB;
    DeviceMemory head;
    final Layer[] layer;
    private final List<DeviceMemory> owned = new ArrayList<>();

    /** One layer's tensors. v5: {@code mix} rows k, v, r[, g]; v6: {@code maaX} then {@code mix} rows w, k, v, r, g. */
    static final class Layer {
        DeviceMemory ln1w, ln1b, ln2w, ln2b, mix, maaX, decay, first, lnxw, lnxb, ffnMix;
        DeviceMemory kvrg, output, maaW1, maaW2, decayW1, decayW2, ffnKey, ffnValue, ffnReceptance;
    }

    private Rwkv456Weights(RwkvConfig c, Precision p, int maaRank, int decayRank) {
        this.precision = p;
        this.v4 = c.version() == RwkvVersion.V4;
        this.v6 = c.version() == RwkvVersion.V6;
        this.gated = c.version() != RwkvVersion.V5_0 && !v4;
        this.maaRank = maaRank;
        this.decayRank = decayRank;
        this.layer = new Layer[c.layers()];
        for (int l = 0; l < layer.length; l++) {
            layer[l] = new Layer();
        }
    }

    static Rwkv456Weights upload(
            WeightFile f, RwkvConfig c, Precision p, CudaDevice device, CudaStream stream, CommonKernels k) {
        boolean v6 = c.version() == RwkvVersion.V6;
        String a0 = "blocks.0.att.";
        Rwkv456Weights w = new Rwkv456Weights(
                c,
                p,
                v6 ? f.get(a0 + "time_maa_w1").rows() / 5 : 0,
                v6 ? f.get(a0 + "time_decay_w1").rows() : 0);
        int C = c.embd();
        try (WeightUploader u = new WeightUploader(device, stream, k, p, w.owned, 0)) {
            w.emb = u.vector(f.get("emb.weight").toFloatArray());
            w.ln0w = u.vector(f.get("blocks.0.ln0.weight").toFloatArray());
            w.ln0b = u.vector(f.get("blocks.0.ln0.bias").toFloatArray());
            w.lnOutW = u.vector(f.get("ln_out.weight").toFloatArray());
            w.lnOutB = u.vector(f.get("ln_out.bias").toFloatArray());
            w.head = u.matrix(f.get("head.weight").toFloatArray());
            for (int l = 0; l < c.layers(); l++) {
                String b = "blocks." + l + ".";
                String at = b + "att.";
                Layer y = w.layer[l];
                y.ln1w = u.vector(f.get(b + "ln1.weight").toFloatArray());
                y.ln1b = u.vector(f.get(b + "ln1.bias").toFloatArray());
                y.ln2w = u.vector(f.get(b + "ln2.weight").toFloatArray());
                y.ln2b = u.vector(f.get(b + "ln2.bias").toFloatArray());
                if (!w.v4) {
                    y.lnxw = u.vector(f.get(at + "ln_x.weight").toFloatArray());
                    y.lnxb = u.vector(f.get(at + "ln_x.bias").toFloatArray());
                }
                y.first = u.vector(c.perChannel(f.get(at + (f.has(at + "time_faaaa") ? "time_faaaa" : "time_first"))
                        .toFloatArray()));
                y.decay = u.vector(c.perChannel(f.get(at + "time_decay").toFloatArray()));
                String[] proj = w.gated
                        ? new String[] {"key", "value", "receptance", "gate"}
                        : new String[] {"key", "value", "receptance"};
                float[] kvrg = new float[proj.length * C * C];
                for (int i = 0; i < proj.length; i++) {
                    System.arraycopy(f.get(at + proj[i] + ".weight").toFloatArray(), 0, kvrg, i * C * C, C * C);
                }
                y.kvrg = u.matrix(kvrg);
                y.output = u.matrix(f.get(at + "output.weight").toFloatArray());
                if (v6) {
                    y.maaX = u.vector(f.get(at + "time_maa_x").toFloatArray());
                    String[] names = {"w", "k", "v", "r", "g"};
                    float[] mix = new float[5 * C];
                    for (int i = 0; i < 5; i++) {
                        System.arraycopy(f.get(at + "time_maa_" + names[i]).toFloatArray(), 0, mix, i * C, C);
                    }
                    y.mix = u.vector(mix);
                    y.maaW1 = u.matrix(f.get(at + "time_maa_w1").toFloatArray());
                    y.maaW2 = u.matrix(f.get(at + "time_maa_w2").toFloatArray());
                    y.decayW1 = u.matrix(f.get(at + "time_decay_w1").toFloatArray());
                    y.decayW2 = u.matrix(f.get(at + "time_decay_w2").toFloatArray());
                    y.ffnMix = u.vector(concat(
                            f.get(b + "ffn.time_maa_k").toFloatArray(),
                            f.get(b + "ffn.time_maa_r").toFloatArray()));
                } else {
                    String[] names = w.gated ? new String[] {"k", "v", "r", "g"} : new String[] {"k", "v", "r"};
                    float[] mix = new float[names.length * C];
                    for (int i = 0; i < names.length; i++) {
                        System.arraycopy(
                                oneMinus(f.get(at + "time_mix_" + names[i]).toFloatArray()), 0, mix, i * C, C);
                    }
                    y.mix = u.vector(mix);
                    y.ffnMix = u.vector(concat(
                            oneMinus(f.get(b + "ffn.time_mix_k").toFloatArray()),
                            oneMinus(f.get(b + "ffn.time_mix_r").toFloatArray())));
                }
                y.ffnKey = u.matrix(f.get(b + "ffn.key.weight").toFloatArray());
                y.ffnValue = u.matrix(f.get(b + "ffn.value.weight").toFloatArray());
                y.ffnReceptance = u.matrix(f.get(b + "ffn.receptance.weight").toFloatArray());
            }
        } catch (RuntimeException e) {
            w.close();
            throw e;
        }
        return w;
    }

    private static float[] oneMinus(float[] mu) {
        float[] m = new float[mu.length];
        for (int i = 0; i < mu.length; i++) {
            m[i] = 1f - mu[i];
        }
        return m;
    }

    private static float[] concat(float[] a, float[] b) {
        float[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    long bodyParameters(RwkvConfig c) {
        long C = c.embd();
        long perLayer = (gated ? 5 : 4) * C * C + 2 * C * c.ffn() + C * C; // k v r [g] o; ffn key, value, receptance
        if (v6) {
            perLayer += 2 * 5L * maaRank * C + 2L * decayRank * C;
        }
        return c.layers() * perLayer;
    }

    long deviceBytes() {
        long n = 0;
        for (DeviceMemory m : owned) {
            n += m.bytes();
        }
        return n;
    }

    @Override
    public void close() {
        for (DeviceMemory m : owned) {
            m.close();
        }
        owned.clear();
    }
}
