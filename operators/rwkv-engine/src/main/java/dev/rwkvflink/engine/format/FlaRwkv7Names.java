package dev.rwkvflink.engine.format;

import dev.rwkvflink.engine.tensor.Tensor;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Maps RWKV-7 checkpoints in the naming of flash-linear-attention ("fla", the {@code fla-hub/rwkv7-*} models on
 * Hugging Face) to BlinkDL's raw state-dict names and shapes, so that {@link BlinkDlCanonicalizer} can take over.
 *
 * <p>Verified against {@code fla-org/flash-linear-attention} at commit {@code bc3b101d}:
 * {@code utils/convert_from_rwkv7.py} (BlinkDL -&gt; fla), {@code fla/layers/rwkv7.py} ({@code RWKV7Attention}),
 * {@code fla/layers/rwkv6.py} ({@code LoRA} = {@code Sequential(Linear(in, r, bias=False), act, Linear(r, out,
 * bias))}) and {@code fla/models/rwkv7/modeling_rwkv7.py}. {@code nn.Linear} weights are (out, in), BlinkDL's LoRA
 * matrices are (in, out), hence the transposes. C = hidden size, D = LoRA rank, H x N = heads x head size.
 *
 * <pre>
 * fla name (model.layers.L. prefix omitted)  fla shape   BlinkDL name (blocks.L. omitted)  BlinkDL shape
 * model.embeddings.weight                     (V, C)      emb.weight                        (V, C)
 * model.norm.weight / .bias                   (C)         ln_out.weight / .bias             (C)
 * lm_head.weight                              (V, C)      head.weight                       (V, C)
 *     (absent when tie_word_embeddings: then head.weight = emb.weight)
 * pre_norm.weight / .bias   (layer 0 only)    (C)         ln0.weight / .bias                (C)
 * attn_norm.weight / .bias                    (C)         ln1.weight / .bias                (C)
 * ffn_norm.weight / .bias                     (C)         ln2.weight / .bias                (C)
 * attn.x_r x_w x_k x_v x_a x_g                (1, 1, C)   att.x_r ... att.x_g               (1, 1, C)
 * attn.x_x  (fla 2025-01 .. 2025-04-09, rows r,w,k,v,a,g)  (6, C)  the six att.x_*          (1, 1, C) each
 * attn.k_k, attn.k_a                          (C)         att.k_k, att.k_a                  (1, 1, C)
 * attn.r_k                                    (H, N)      att.r_k                           (H, N)
 * attn.r_proj / k_proj / v_proj / o_proj .weight  (C, C)  att.receptance / key / value / output .weight
 * attn.w_lora.lora.0.weight                   (D, C)      att.w1 (transposed)               (C, D)
 * attn.w_lora.lora.2.weight                   (C, D)      att.w2 (transposed)               (D, C)
 * attn.w_lora.lora.2.bias                     (C)         att.w0                            (1, 1, C)
 * attn.a_lora..., attn.v_lora... (not in layer 0)  as w   att.a1 a2 a0, att.v1 v2 v0        as w
 * attn.g_lora.lora.0.weight / lora.2.weight   as w        att.g1 / att.g2 (no bias, no g0)  as w
 * attn.g_norm.weight / .bias                  (C)         att.ln_x.weight / .bias           (C)
 * ffn.x_k                                     (C)         ffn.x_k                           (1, 1, C)
 * ffn.key.weight / ffn.value.weight           (F, C) / (C, F)  ffn.key.weight / ffn.value.weight  same
 * </pre>
 * No value changes: fla's decay {@code -0.6065306597 * sigmoid(w_lora(x))} is BlinkDL's
 * {@code -exp(-softplus(-(w0 + tanh(x w1) w2)) - 0.5)} with the same parameters, and fla's GroupNorm eps
 * (head_dim * 1e-5) is BlinkDL's 64e-5 for 64-wide heads. Transposed tensors become float32 copies; the others
 * keep their element type and memory.
 */
public final class FlaRwkv7Names {
    private static final Pattern LAYER = Pattern.compile("model\\.layers\\.(\\d+)\\.(.+)");
    private static final Pattern LORA =
            Pattern.compile("attn\\.([wavg])_lora\\.lora\\.(0\\.weight|2\\.weight|2\\.bias)");
    private static final Pattern MIX = Pattern.compile("attn\\.(x_[rwkvag])");

    private static final Map<String, String> TOP = Map.of(
            "model.embeddings.weight", "emb.weight",
            "model.norm.weight", "ln_out.weight",
            "model.norm.bias", "ln_out.bias",
            "lm_head.weight", "head.weight");

    /** Layer-local names that only change their name (fla -&gt; BlinkDL, without the layer prefixes). */
    private static final Map<String, String> RENAMED = Map.ofEntries(
            Map.entry("pre_norm.weight", "ln0.weight"),
            Map.entry("pre_norm.bias", "ln0.bias"),
            Map.entry("attn_norm.weight", "ln1.weight"),
            Map.entry("attn_norm.bias", "ln1.bias"),
            Map.entry("ffn_norm.weight", "ln2.weight"),
            Map.entry("ffn_norm.bias", "ln2.bias"),
            Map.entry("attn.r_k", "att.r_k"),
            Map.entry("attn.r_proj.weight", "att.receptance.weight"),
            Map.entry("attn.k_proj.weight", "att.key.weight"),
            Map.entry("attn.v_proj.weight", "att.value.weight"),
            Map.entry("attn.o_proj.weight", "att.output.weight"),
            Map.entry("attn.g_norm.weight", "att.ln_x.weight"),
            Map.entry("attn.g_norm.bias", "att.ln_x.bias"),
            Map.entry("ffn.key.weight", "ffn.key.weight"),
            Map.entry("ffn.value.weight", "ffn.value.weight"));

    /** Vectors that fla keeps as (C) and BlinkDL as (1, 1, C). */
    private static final Map<String, String> VECTORS = Map.of(
            "attn.k_k", "att.k_k",
            "attn.k_a", "att.k_a",
            "ffn.x_k", "ffn.x_k");

    private FlaRwkv7Names() {}

    /** True if the names look like an fla RWKV-7 checkpoint ({@code model.layers.N...}, {@code model.embeddings}). */
    public static boolean isFla(Collection<String> names) {
        for (String n : names) {
            if (n.startsWith("model.layers.") || n.equals("model.embeddings.weight")) {
                return true;
            }
        }
        return false;
    }

    /**
     * The same tensors under BlinkDL's raw names and shapes (see the class comment for the table).
     *
     * @throws IllegalArgumentException for a name the table does not know (for example the attention layers of an
     *                                  fla hybrid model) or two fla tensors that map to the same BlinkDL name
     */
    public static Map<String, Tensor> toBlinkDl(Map<String, Tensor> fla) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : fla.entrySet()) {
            String name = e.getKey();
            Tensor t = e.getValue();
            String top = TOP.get(name);
            if (top != null) {
                put(out, name, top, t);
                continue;
            }
            Matcher m = LAYER.matcher(name);
            if (!m.matches()) {
                throw unknown(name);
            }
            mapLayerTensor(out, name, "blocks." + m.group(1) + ".", m.group(2), t);
        }
        if (!out.containsKey("head.weight") && out.containsKey("emb.weight")) {
            out.put("head.weight", out.get("emb.weight").rename("head.weight")); // tied embeddings
        }
        return out;
    }

    private static void mapLayerTensor(Map<String, Tensor> out, String flaName, String prefix, String local, Tensor t) {
        String renamed = RENAMED.get(local);
        if (renamed != null) {
            put(out, flaName, prefix + renamed, t);
            return;
        }
        String vector = VECTORS.get(local);
        if (vector != null) {
            put(out, flaName, prefix + vector, asBlinkDlVector(t));
            return;
        }
        Matcher mix = MIX.matcher(local);
        if (mix.matches()) {
            put(out, flaName, prefix + "att." + mix.group(1), asBlinkDlVector(t));
            return;
        }
        if (local.equals("attn.x_x")) {
            if (t.rank() != 2 || t.dim(0) != BlinkDlCanonicalizer.V7_MIX.size()) {
                throw new IllegalArgumentException(flaName + ": expected (6, C), got " + t);
            }
            for (int i = 0; i < BlinkDlCanonicalizer.V7_MIX.size(); i++) {
                put(
                        out,
                        flaName,
                        prefix + "att." + BlinkDlCanonicalizer.V7_MIX.get(i),
                        asBlinkDlVector(t.rowSlice(i, 1)));
            }
            return;
        }
        Matcher lora = LORA.matcher(local);
        if (lora.matches()) {
            String kind = lora.group(1);
            switch (lora.group(2)) {
                case "0.weight" -> put(out, flaName, prefix + "att." + kind + "1", transpose(flaName, t));
                case "2.weight" -> put(out, flaName, prefix + "att." + kind + "2", transpose(flaName, t));
                default -> put(out, flaName, prefix + "att." + kind + "0", asBlinkDlVector(t));
            }
            return;
        }
        throw unknown(flaName);
    }

    private static void put(Map<String, Tensor> out, String flaName, String blinkDlName, Tensor t) {
        if (out.containsKey(blinkDlName)) {
            throw new IllegalArgumentException(
                    flaName + " maps to " + blinkDlName + ", which another tensor " + "already provides");
        }
        out.put(blinkDlName, t.rename(blinkDlName));
    }

    private static Tensor asBlinkDlVector(Tensor t) {
        return t.reshape(1, 1, t.size());
    }

    private static Tensor transpose(String flaName, Tensor t) {
        if (t.rank() != 2) {
            throw new IllegalArgumentException(flaName + ": a LoRA matrix must be 2-D, got " + t);
        }
        return t.transposed();
    }

    private static IllegalArgumentException unknown(String name) {
        return new IllegalArgumentException("unknown fla RWKV-7 tensor name '" + name
                + "' (only pure RWKV-7 models are supported; see FlaRwkv7Names)");
    }
}
