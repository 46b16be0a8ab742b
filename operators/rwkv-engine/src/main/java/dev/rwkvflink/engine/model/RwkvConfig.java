package dev.rwkvflink.engine.model;

import dev.rwkvflink.engine.format.WeightFile;
import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * The shape of a model, detected from the tensors present in its file (no side-channel metadata needed).
 *
 * @param headSize     N, channels per head (v4: the whole width, one "head")
 * @param ffn          hidden width of the channel-mix (FFN) block
 * @param groupNormEps epsilon of the per-head GroupNorm ({@code ln_x}) of v5 and later: 64e-5 in BlinkDL's
 *                     reference code, 1e-5 for v5 in rwkv.cpp files (each file follows its own convention)
 * @param matrixType   storage type of the big projection matrices ({@code att.key.weight})
 */
public record RwkvConfig(
        RwkvVersion version,
        int layers,
        int embd,
        int heads,
        int headSize,
        int vocab,
        int ffn,
        float groupNormEps,
        WeightType matrixType)
        implements Serializable {

    /** LayerNorm epsilon of ln0, ln1, ln2 and ln_out in every version (PyTorch's default). */
    public static final float LAYER_NORM_EPS = 1e-5f;

    /** Block tensors only layer 0 has: the LayerNorm of the embeddings. */
    private static final Set<String> LAYER0_ONLY = Set.of("ln0.weight", "ln0.bias");
    /** Block tensors layer 0 may lack: RWKV-7's value residual (layer 0's values are the residual). */
    private static final Set<String> LATER_LAYERS_ONLY = Set.of("att.v0", "att.v1", "att.v2");

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
        checkLayers(f, layers);
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
            throw new IllegalArgumentException(
                    f.path() + ": width " + embd + " is not divisible by " + heads + " heads");
        }
        int ffn = f.get("blocks.0.ffn.key.weight").rows();
        float gnEps = version.hasMatrixState()
                        && version.compareTo(RwkvVersion.V6) < 0
                        && f.origin() == WeightFile.Origin.RWKV_CPP
                ? 1e-5f
                : 64e-5f;
        WeightType matrixType = f.get(a0 + "key.weight").type();
        return new RwkvConfig(version, layers, embd, heads, embd / heads, vocab, ffn, gnEps, matrixType);
    }

    /**
     * Every layer 0..L-1 is whole and like the others: no block tensor beyond the L counted (a gap, e.g. a missing
     * {@code blocks.N.ln1.weight}, would silently cut the model to N layers), and each layer has exactly layer 1's
     * tensors with the same shapes (RWKV's layers are alike; types may differ, as in mixed quantizations; layer 0
     * also has {@code ln0} and may lack RWKV-7's value residual), naming every missing, unexpected or misshapen
     * tensor.
     */
    static void checkLayers(WeightFile f, int layers) {
        Map<String, Tensor> first = new TreeMap<>();
        List<String> problems = new ArrayList<>();
        Map<Integer, Map<String, Tensor>> byLayer = new TreeMap<>();
        TreeSet<Integer> beyond = new TreeSet<>();
        for (var e : f.tensors().entrySet()) {
            String name = e.getKey();
            if (!name.startsWith("blocks.")) {
                continue;
            }
            int dot = name.indexOf('.', 7);
            int layer;
            try {
                layer = dot < 0 ? -1 : Integer.parseInt(name.substring(7, dot));
            } catch (NumberFormatException ex) {
                layer = -1;
            }
            if (layer < 0) {
                problems.add("unexpected tensor " + name);
                continue;
            }
            if (layer >= layers) {
                beyond.add(layer);
                continue;
            }
            byLayer.computeIfAbsent(layer, k -> new TreeMap<>()).put(name.substring(dot + 1), e.getValue());
        }
        if (!beyond.isEmpty()) {
            problems.add("blocks." + layers + ".ln1.weight is missing, yet layers " + beyond + " have tensors (layers "
                    + "must be 0.." + (beyond.last()) + " without gaps; read as it is, the model would stop after "
                    + layers + " layers)");
        }
        // the reference layer: layer 1 (layer 0 alone has ln0, and RWKV-7's layer 0 has no value residual)
        int ref = layers > 1 ? 1 : 0;
        first.putAll(byLayer.getOrDefault(ref, Map.of()));
        for (int l = 0; l < layers; l++) {
            if (l == ref) {
                continue;
            }
            Map<String, Tensor> mine = byLayer.getOrDefault(l, Map.of());
            for (var e : first.entrySet()) {
                Tensor t = mine.get(e.getKey());
                String name = "blocks." + l + "." + e.getKey();
                if (t == null && !(l == 0 && LATER_LAYERS_ONLY.contains(e.getKey()))) {
                    problems.add("missing " + name + " (layer " + ref + " has it)");
                } else if (t == null) {
                    continue;
                } else if (!Arrays.equals(t.shape(), e.getValue().shape())) {
                    problems.add(name + " has shape " + Arrays.toString(t.shape()) + ", layer " + ref + "'s "
                            + Arrays.toString(e.getValue().shape()));
                }
            }
            for (String suffix : mine.keySet()) {
                if (!first.containsKey(suffix) && !(l == 0 && LAYER0_ONLY.contains(suffix))) {
                    problems.add(
                            "unexpected blocks." + l + "." + suffix + " (layer " + ref + " has no " + suffix + ")");
                }
            }
        }
        if (!problems.isEmpty()) {
            int shown = Math.min(problems.size(), 8);
            throw new IllegalArgumentException(f.path() + ": the model's layers are not whole: "
                    + String.join("; ", problems.subList(0, shown))
                    + (problems.size() > shown ? "; and " + (problems.size() - shown) + " more" : ""));
        }
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
            Arrays.fill(out, h * N, (h + 1) * N, v[h]);
        }
        return out;
    }
}
