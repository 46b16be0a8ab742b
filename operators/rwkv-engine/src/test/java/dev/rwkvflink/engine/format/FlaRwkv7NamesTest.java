package dev.rwkvflink.engine.format;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.tensor.Tensor;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** fla -&gt; BlinkDL renaming on hand-made tensors; the full-model comparison is in {@link SafetensorsFileTest}. */
class FlaRwkv7NamesTest {
    private static final int C = 4;

    private static Tensor t(String name, float start, long... shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        float[] v = new float[(int) n];
        for (int i = 0; i < v.length; i++) {
            v[i] = start + i;
        }
        return Tensor.ofFloats(name, v, shape);
    }

    private static Map<String, Tensor> of(Tensor... tensors) {
        Map<String, Tensor> m = new LinkedHashMap<>();
        for (Tensor x : tensors) {
            m.put(x.name(), x);
        }
        return m;
    }

    @Test
    void recognisesFlaNames() {
        assertTrue(FlaRwkv7Names.isFla(Set.of("model.layers.0.attn.r_proj.weight")));
        assertTrue(FlaRwkv7Names.isFla(Set.of("model.embeddings.weight")));
        assertFalse(FlaRwkv7Names.isFla(Set.of("emb.weight", "blocks.0.att.key.weight")));
    }

    @Test
    void mapsNamesShapesAndTransposes() {
        Map<String, Tensor> out = FlaRwkv7Names.toBlinkDl(of(
                t("model.embeddings.weight", 0, 3, C),
                t("model.layers.0.pre_norm.weight", 0, C),
                t("model.layers.0.attn_norm.bias", 0, C),
                t("model.layers.0.ffn_norm.weight", 0, C),
                t("model.layers.0.attn.x_w", 0, 1, 1, C),
                t("model.layers.0.attn.k_k", 9, C),
                t("model.layers.0.attn.r_k", 0, 2, 2),
                t("model.layers.0.attn.o_proj.weight", 0, C, C),
                t("model.layers.0.attn.w_lora.lora.0.weight", 0, 2, C),
                t("model.layers.0.attn.w_lora.lora.2.weight", 0, C, 2),
                t("model.layers.0.attn.w_lora.lora.2.bias", 5, C),
                t("model.layers.1.attn.v_lora.lora.2.bias", 6, C),
                t("model.layers.0.attn.g_lora.lora.0.weight", 0, 2, C),
                t("model.layers.0.attn.g_norm.weight", 0, C),
                t("model.layers.0.ffn.x_k", 3, C),
                t("model.layers.0.ffn.value.weight", 0, C, 8),
                t("model.norm.bias", 0, C),
                t("lm_head.weight", 100, 3, C)));

        assertEquals(
                List.of(
                        "emb.weight",
                        "blocks.0.ln0.weight",
                        "blocks.0.ln1.bias",
                        "blocks.0.ln2.weight",
                        "blocks.0.att.x_w",
                        "blocks.0.att.k_k",
                        "blocks.0.att.r_k",
                        "blocks.0.att.output.weight",
                        "blocks.0.att.w1",
                        "blocks.0.att.w2",
                        "blocks.0.att.w0",
                        "blocks.1.att.v0",
                        "blocks.0.att.g1",
                        "blocks.0.att.ln_x.weight",
                        "blocks.0.ffn.x_k",
                        "blocks.0.ffn.value.weight",
                        "ln_out.bias",
                        "head.weight"),
                List.copyOf(out.keySet()));
        for (Map.Entry<String, Tensor> e : out.entrySet()) {
            assertEquals(e.getKey(), e.getValue().name(), "tensors carry their new name");
        }
        assertArrayEquals(new long[] {1, 1, C}, out.get("blocks.0.att.k_k").shape());
        assertArrayEquals(
                new float[] {9, 10, 11, 12}, out.get("blocks.0.att.k_k").toFloatArray());
        assertArrayEquals(new long[] {1, 1, C}, out.get("blocks.0.att.w0").shape());
        assertArrayEquals(new float[] {5, 6, 7, 8}, out.get("blocks.0.att.w0").toFloatArray());
        assertArrayEquals(new long[] {1, 1, C}, out.get("blocks.1.att.v0").shape());
        assertArrayEquals(new long[] {1, 1, C}, out.get("blocks.0.ffn.x_k").shape());
        Tensor w1 = out.get("blocks.0.att.w1"); // lora.0.weight (2, C) transposed
        assertArrayEquals(new long[] {C, 2}, w1.shape());
        assertArrayEquals(new float[] {0, 4, 1, 5, 2, 6, 3, 7}, w1.toFloatArray());
        Tensor w2 = out.get("blocks.0.att.w2"); // lora.2.weight (C, 2) transposed
        assertArrayEquals(new long[] {2, C}, w2.shape());
        assertArrayEquals(new float[] {0, 2, 4, 6, 1, 3, 5, 7}, w2.toFloatArray());
        assertArrayEquals(new long[] {C, 2}, out.get("blocks.0.att.g1").shape());
        assertArrayEquals(
                new float[] {100, 101, 102},
                Arrays.copyOf(out.get("head.weight").toFloatArray(), 3));
    }

    @Test
    void splitsTheOldPackedXx() {
        Map<String, Tensor> out = FlaRwkv7Names.toBlinkDl(of(t("model.layers.2.attn.x_x", 0, 6, C)));
        String[] mix = {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"};
        assertEquals(6, out.size());
        for (int i = 0; i < mix.length; i++) {
            Tensor x = out.get("blocks.2.att." + mix[i]);
            assertArrayEquals(new long[] {1, 1, C}, x.shape());
            assertArrayEquals(new float[] {4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3}, x.toFloatArray());
        }
    }

    @Test
    void tiedEmbeddingsProvideTheHead() {
        Map<String, Tensor> out = FlaRwkv7Names.toBlinkDl(of(t("model.embeddings.weight", 1, 2, C)));
        assertArrayEquals(
                new float[] {1, 2, 3, 4, 5, 6, 7, 8}, out.get("head.weight").toFloatArray());
        assertEquals("head.weight", out.get("head.weight").name());
    }

    @Test
    void unknownAndDuplicateNamesAreErrors() {
        IllegalArgumentException unknown = assertThrows(
                IllegalArgumentException.class,
                () -> FlaRwkv7Names.toBlinkDl(of(t("model.layers.0.attn.q_proj.weight", 0, C, C))));
        assertTrue(unknown.getMessage().contains("model.layers.0.attn.q_proj.weight"), unknown.getMessage());
        IllegalArgumentException dup = assertThrows(
                IllegalArgumentException.class,
                () -> FlaRwkv7Names.toBlinkDl(
                        of(t("model.layers.0.attn.x_x", 0, 6, C), t("model.layers.0.attn.x_r", 0, 1, 1, C))));
        assertTrue(dup.getMessage().contains("blocks.0.att.x_r"), dup.getMessage());
    }
}
