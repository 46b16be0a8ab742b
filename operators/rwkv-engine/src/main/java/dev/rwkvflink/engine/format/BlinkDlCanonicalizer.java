package dev.rwkvflink.engine.format;

import dev.rwkvflink.engine.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.DoubleUnaryOperator;

/**
 * Turns a raw BlinkDL state dict (as {@code torch.save}d by BlinkDL's training code) into the canonical form of
 * {@link WeightFile}: the same load-time transforms that rwkv.cpp's {@code python/convert_pytorch_to_ggml.py}
 * applies, so that a {@code .pth} / safetensors file and the rwkv.cpp file converted from it give the same tensors.
 *
 * <p>Version detection (as the converter does it, from layer 0):
 * <pre>
 * v7  blocks.0.att.k_k present
 * v6  blocks.0.att.time_maa_x present
 * v5  blocks.0.att.ln_x.weight present: 5.0 without att.gate; with a gate 5.1 (time_decay per head, (H))
 *     or 5.2 (time_decay per channel, (H, N))
 * v4  otherwise
 * </pre>
 *
 * <p>Transforms ({@code x} = raw value; every transformed tensor becomes a float32 heap copy, computed in double and
 * rounded once to float32, which is within one ulp of the converter's float32 torch math):
 * <pre>
 * all   *.time_*            squeezed: size-1 dimensions dropped (a reshape; bytes and type kept)
 * v4    att.time_decay      -exp(x)
 * v5    att.time_decay      exp(-exp(x)), shaped (H, numel/H, 1) with H = the raw shape's first dimension
 *       att.time_first      exp(x), shaped (H, 1, 1)                 (5.0 and 5.1)
 *       att.time_faaaa      x, shaped (H, N, 1)                      (5.2)
 * v6    att.time_maa_w1     (C, 5*D) -&gt; transposed (5*D, C)
 *       att.time_maa_w2     (5, D, C) -&gt; each slice transposed, (5, C, D)
 *       att.time_decay_w1   (C, D) -&gt; (D, C);   att.time_decay_w2 (D, C) -&gt; (C, D)
 *       att.time_decay      x, shaped (H, N, 1) with H = att.time_faaaa's first dimension
 *       att.time_faaaa      x, shaped (H, N, 1)
 * v7    att.x_r, x_w, x_k, x_v, x_a, x_g (1, 1, C) each -&gt; packed into att.x_rwkvag (6, C), rows in that order
 *       att.w1 a1 v1 g1 (C, D) and att.w2 a2 v2 g2 (D, C) -&gt; transposed ("out x in")
 * </pre>
 * Everything else (the big matrices, layer norms, v7 w0/a0/v0/k_k/k_a/r_k, unknown extra tensors) is passed through
 * untouched: same shape, element type and memory. The only shape differences from rwkv.cpp files are harmless
 * singleton dimensions: rwkv.cpp stores x_rwkvag as (6, 1, C), and for v5.1 per-head decay (H, 1) instead of
 * (H, 1, 1).
 */
public final class BlinkDlCanonicalizer {

    /** The RWKV architecture generations the canonical form distinguishes. */
    public enum Version {
        V4,
        V5_0,
        V5_1,
        V5_2,
        V6,
        V7;

        /** The major version: 4, 5, 6 or 7. */
        public int major() {
            return switch (this) {
                case V4 -> 4;
                case V5_0, V5_1, V5_2 -> 5;
                case V6 -> 6;
                case V7 -> 7;
            };
        }
    }

    /** The v7 token-shift mixing vectors packed into {@code att.x_rwkvag}, in packing order. */
    static final List<String> V7_MIX = List.of("x_r", "x_w", "x_k", "x_v", "x_a", "x_g");

    /** The v7 LoRA matrices that are stored "in x out" and get transposed. */
    private static final List<String> V7_LORA = List.of("w1", "w2", "a1", "a2", "v1", "v2", "g1", "g2");

    private BlinkDlCanonicalizer() {}

    /** Detects the architecture version from the raw BlinkDL tensor names (and, for v5, the decay's shape). */
    public static Version detect(Map<String, Tensor> blinkDl) {
        if (blinkDl.containsKey("blocks.0.att.k_k")) {
            return Version.V7;
        }
        if (blinkDl.containsKey("blocks.0.att.time_maa_x")) {
            return Version.V6;
        }
        if (blinkDl.containsKey("blocks.0.att.ln_x.weight")) {
            if (!blinkDl.containsKey("blocks.0.att.gate.weight")) {
                return Version.V5_0;
            }
            Tensor decay = blinkDl.get("blocks.0.att.time_decay");
            boolean perChannel = decay != null && decay.rank() >= 2 && decay.dim(1) > 1;
            return perChannel ? Version.V5_2 : Version.V5_1;
        }
        return Version.V4;
    }

    /** {@link #canonicalize(Map)} for the file at {@code path}, a problem reported as an IOException naming it. */
    static Map<String, Tensor> canonicalize(Path path, Map<String, Tensor> blinkDl) throws IOException {
        try {
            return canonicalize(blinkDl);
        } catch (IllegalArgumentException e) {
            throw new IOException(path + ": " + e.getMessage(), e);
        }
    }

    /**
     * Returns the canonical tensors for a raw BlinkDL state dict, in the input's order (v7's packed
     * {@code att.x_rwkvag} takes the place of the layer's first mixing vector).
     *
     * @throws IllegalArgumentException naming the tensor, when a tensor the transforms need is missing or misshapen
     */
    public static Map<String, Tensor> canonicalize(Map<String, Tensor> blinkDl) {
        Version version = detect(blinkDl);
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : blinkDl.entrySet()) {
            String name = e.getKey();
            Tensor t = e.getValue().name().equals(name)
                    ? e.getValue()
                    : e.getValue().rename(name);
            if (version == Version.V7 && isV7Mix(name)) {
                String packed = layerPrefix(name) + "att.x_rwkvag";
                if (!out.containsKey(packed)) {
                    out.put(packed, packV7Mix(blinkDl, layerPrefix(name)));
                }
                continue;
            }
            out.put(name, transform(version, name, t, blinkDl));
        }
        return out;
    }

    private static Tensor transform(Version version, String name, Tensor t, Map<String, Tensor> all) {
        String leaf = name.substring(name.lastIndexOf('.') + 1);
        if (!name.contains(".att.")) {
            return name.contains(".time_") ? squeeze(t) : t; // ffn.time_mix_*, ffn.time_maa_*
        }
        return switch (version.major()) {
            case 4 -> v4(leaf, t);
            case 5 -> v5(leaf, t);
            case 6 -> v6(name, leaf, t, all);
            default -> V7_LORA.contains(leaf) ? requireRank(t, 2).transposed() : t;
        };
    }

    private static Tensor v4(String leaf, Tensor t) {
        if (!leaf.startsWith("time_")) {
            return t;
        }
        Tensor sq = squeeze(t);
        return leaf.equals("time_decay") ? map(sq, x -> -Math.exp(x), sq.shape()) : sq;
    }

    private static Tensor v5(String leaf, Tensor t) {
        return switch (leaf) {
            case "time_decay" -> map(t, x -> Math.exp(-Math.exp(x)), headShape(t, headsOf(t)));
            case "time_first" -> map(t, Math::exp, headShape(t, headsOf(t)));
            case "time_faaaa" -> t.reshape(headShape(t, headsOf(t)));
            default -> leaf.startsWith("time_") ? squeeze(t) : t;
        };
    }

    private static Tensor v6(String name, String leaf, Tensor t, Map<String, Tensor> all) {
        return switch (leaf) {
            case "time_maa_w1", "time_decay_w1", "time_decay_w2" ->
                requireRank(squeeze(t), 2).transposed();
            case "time_maa_w2" -> transposeLastTwo(requireRank(squeeze(t), 3));
            case "time_faaaa" -> t.reshape(headShape(t, headsOf(t)));
            case "time_decay" -> {
                String faaaa = name.substring(0, name.length() - leaf.length()) + "time_faaaa";
                Tensor bonus = all.get(faaaa);
                if (bonus == null) {
                    throw new IllegalArgumentException(name + ": v6 needs " + faaaa + " to know the head count");
                }
                yield t.reshape(headShape(t, headsOf(bonus)));
            }
            default -> leaf.startsWith("time_") ? squeeze(t) : t;
        };
    }

    private static boolean isV7Mix(String name) {
        int att = name.lastIndexOf(".att.");
        return name.startsWith("blocks.") && att > 0 && V7_MIX.contains(name.substring(att + 5));
    }

    /** "blocks.N." of a per-layer tensor name. */
    private static String layerPrefix(String name) {
        int second = name.indexOf('.', "blocks.".length());
        return name.substring(0, second + 1);
    }

    private static Tensor packV7Mix(Map<String, Tensor> all, String prefix) {
        float[] packed = null;
        int c = 0;
        for (int i = 0; i < V7_MIX.size(); i++) {
            String name = prefix + "att." + V7_MIX.get(i);
            Tensor t = all.get(name);
            if (t == null) {
                throw new IllegalArgumentException(
                        "v7 layer " + prefix + " lacks " + name + " (needs all of " + V7_MIX + ")");
            }
            if (packed == null) {
                c = Math.toIntExact(t.size());
                packed = new float[V7_MIX.size() * c];
            } else if (t.size() != c) {
                throw new IllegalArgumentException(
                        name + " has " + t.size() + " elements, " + prefix + "att." + V7_MIX.get(0) + " has " + c);
            }
            float[] v = t.toFloatArray();
            System.arraycopy(v, 0, packed, i * c, c);
        }
        return Tensor.ofFloats(prefix + "att.x_rwkvag", packed, 6, c);
    }

    /** The raw tensor's first dimension: BlinkDL stores per-head parameters as (H) or (H, N). */
    private static long headsOf(Tensor raw) {
        return raw.rank() == 0 ? 1 : raw.dim(0);
    }

    private static long[] headShape(Tensor t, long heads) {
        long n = t.size();
        if (heads <= 0 || n % heads != 0) {
            throw new IllegalArgumentException(t.name() + ": " + n + " elements do not split into " + heads + " heads");
        }
        return new long[] {heads, n / heads, 1};
    }

    /** Drops every size-1 dimension (torch's {@code squeeze()}); shares the bytes. */
    static Tensor squeeze(Tensor t) {
        long[] kept = Arrays.stream(t.shape()).filter(d -> d != 1).toArray();
        return kept.length == t.rank() ? t : t.reshape(kept);
    }

    private static Tensor requireRank(Tensor t, int rank) {
        if (t.rank() != rank) {
            throw new IllegalArgumentException(
                    t.name() + ": expected " + rank + " dimensions, got " + Arrays.toString(t.shape()));
        }
        return t;
    }

    /** (B, R, C) -&gt; (B, C, R) as a float32 copy. */
    private static Tensor transposeLastTwo(Tensor t) {
        int b = Math.toIntExact(t.dim(0));
        int r = Math.toIntExact(t.dim(1));
        int c = Math.toIntExact(t.dim(2));
        float[] src = t.toFloatArray();
        float[] dst = new float[src.length];
        for (int k = 0; k < b; k++) {
            int base = k * r * c;
            for (int i = 0; i < r; i++) {
                for (int j = 0; j < c; j++) {
                    dst[base + j * r + i] = src[base + i * c + j];
                }
            }
        }
        return Tensor.ofFloats(t.name(), dst, b, c, r);
    }

    /** Element-wise {@code op} in double, rounded to a float32 tensor of {@code shape}. */
    private static Tensor map(Tensor t, DoubleUnaryOperator op, long[] shape) {
        float[] v = t.toFloatArray();
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) op.applyAsDouble(v[i]);
        }
        return Tensor.ofFloats(t.name(), v, shape);
    }
}
