package dev.rwkvflink.engine.model;

import dev.rwkvflink.engine.format.WeightFile;
import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;

/**
 * The shape of a model, detected from the tensors present in its file (no side-channel metadata needed).
 *
 * @param headSize     N, channels per head (v4: the whole width, one "head")
 * @param ffn          hidden width of the channel-mix (FFN) block
 * @param groupNormEps epsilon of the per-head GroupNorm ({@code ln_x}) of v5 and later: 64e-5 in BlinkDL's
 *                     reference code, 1e-5 for v5 in rwkv.cpp files (each file follows its own convention)
 * @param matrixType   storage type of the big projection matrices ({@code att.key.weight})
 */
public record RwkvConfig(RwkvVersion version, int layers, int embd, int heads, int headSize, int vocab, int ffn,
                         float groupNormEps, WeightType matrixType)
        implements java.io.Serializable {

    /** LayerNorm epsilon of ln0, ln1, ln2 and ln_out in every version (PyTorch's default). */
    public static final float LAYER_NORM_EPS = 1e-5f;

    public static RwkvConfig detect(WeightFile f) {
        Tensor emb = f.get("emb.weight");
        if (emb.rank() != 2) {
            throw new IllegalArgumentException(f.path() + ": emb.weight must be 2-D, is " + emb);
        }
        int vocab = Math.toIntExact(emb.dim(0));
        int embd = Math.toIntExact(emb.dim(1));
        int layers = 0;
        while (f.has("blocks." + layers + ".ln1.weight")) {
            layers++;
        }
        if (layers == 0) {
            throw new IllegalArgumentException(f.path() + ": no blocks.0.ln1.weight: not an RWKV model");
        }
        String a0 = "blocks.0.att.";
        RwkvVersion version;
        int heads;
        if (f.has(a0 + "k_k")) {
            version = RwkvVersion.V7;
            heads = Math.toIntExact(f.get(a0 + "r_k").dim(0));
        } else if (f.has(a0 + "time_maa_x")) {
            version = RwkvVersion.V6;
            heads = Math.toIntExact(f.get(a0 + "time_faaaa").dim(0));
        } else if (f.has(a0 + "ln_x.weight")) {
            Tensor decay = f.get(a0 + "time_decay");
            heads = Math.toIntExact(decay.dim(0));
            if (!f.has(a0 + "gate.weight")) {
                version = RwkvVersion.V5_0;
            } else {
                version = decay.size() == heads ? RwkvVersion.V5_1 : RwkvVersion.V5_2;
            }
        } else {
            version = RwkvVersion.V4;
            heads = 1;
        }
        if (heads <= 0 || embd % heads != 0) {
            throw new IllegalArgumentException(f.path() + ": width " + embd + " is not divisible by " + heads + " heads");
        }
        int ffn = f.get("blocks.0.ffn.key.weight").rows();
        float gnEps = version.hasMatrixState() && version.compareTo(RwkvVersion.V6) < 0
                && f.origin() == WeightFile.Origin.RWKV_CPP ? 1e-5f : 64e-5f;
        WeightType matrixType = f.get(a0 + "key.weight").type();
        return new RwkvConfig(version, layers, embd, heads, embd / heads, vocab, ffn, gnEps, matrixType);
    }

    /**
     * Per-channel values from a tensor stored per head (H values, each spread over its head's N channels, as v5.0
     * and v5.1 store decay and bonus) or already per channel (H*N values, returned as they are).
     */
    public float[] perChannel(float[] v) {
        int H = heads;
        int N = headSize;
        if (v.length == H * N) {
            return v;
        }
        if (v.length != H) {
            throw new IllegalArgumentException("expected " + H + " or " + H * N + " values, got " + v.length);
        }
        float[] out = new float[H * N];
        for (int h = 0; h < H; h++) {
            java.util.Arrays.fill(out, h * N, (h + 1) * N, v[h]);
        }
        return out;
    }
}
