package dev.rwkvflink.engine.format;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.format.BlinkDlCanonicalizer.Version;
import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The transforms of rwkv.cpp's converter, on small hand-made state dicts with hand-computed results. */
class BlinkDlCanonicalizerTest {

    private static Tensor t(String name, float[] values, long... shape) {
        return Tensor.ofFloats(name, values, shape);
    }

    /** values 0, 1, 2, ... n-1 (+ start). */
    private static float[] seq(int n, float start) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = start + i;
        }
        return v;
    }

    private static Tensor bf16(String name, float[] values, long... shape) {
        MemorySegment seg = Arena.ofAuto().allocate(values.length * 2L);
        for (int i = 0; i < values.length; i++) {
            seg.set(ValueLayout.JAVA_SHORT_UNALIGNED, 2L * i, (short) (Float.floatToIntBits(values[i]) >>> 16));
        }
        return Tensor.of(name, WeightType.BF16, shape, seg);
    }

    private static void put(Map<String, Tensor> m, Tensor t) {
        m.put(t.name(), t);
    }

    @Test
    void v4DecayIsMinusExpAndTimeVectorsAreSqueezedInPlace() {
        Map<String, Tensor> sd = new LinkedHashMap<>();
        put(sd, t("blocks.0.att.time_decay", new float[] {0f, (float) Math.log(2), (float) Math.log(0.5)}, 3));
        put(sd, t("blocks.0.att.time_first", new float[] {0.5f, -1f, 2f}, 3));
        put(sd, t("blocks.0.att.time_mix_k", new float[] {0.1f, 0.2f, 0.3f}, 1, 1, 3));
        put(sd, t("blocks.0.ffn.time_mix_r", new float[] {0.4f, 0.5f, 0.6f}, 1, 1, 3));
        Tensor key = bf16("blocks.0.att.key.weight", seq(9, -4), 3, 3);
        put(sd, key);

        assertEquals(Version.V4, BlinkDlCanonicalizer.detect(sd));
        Map<String, Tensor> c = BlinkDlCanonicalizer.canonicalize(sd);

        assertArrayEquals(
                new float[] {-1f, -2f, -0.5f}, c.get("blocks.0.att.time_decay").toFloatArray(), 1e-7f);
        assertEquals(WeightType.F32, c.get("blocks.0.att.time_decay").type());
        assertArrayEquals(
                new float[] {0.5f, -1f, 2f}, c.get("blocks.0.att.time_first").toFloatArray());
        Tensor mix = c.get("blocks.0.att.time_mix_k");
        assertArrayEquals(new long[] {3}, mix.shape());
        assertEquals(
                sd.get("blocks.0.att.time_mix_k").data().address(), mix.data().address(), "a reshape, no copy");
        assertArrayEquals(new long[] {3}, c.get("blocks.0.ffn.time_mix_r").shape());
        assertSame(key, c.get("blocks.0.att.key.weight"), "big matrices pass through untouched");
        assertEquals(List.copyOf(sd.keySet()), List.copyOf(c.keySet()));
    }

    @Test
    void v5DecayAndFirstPerHead() {
        Map<String, Tensor> sd = new LinkedHashMap<>();
        put(sd, t("blocks.0.att.time_decay", new float[] {0f, (float) Math.log(2)}, 2));
        put(sd, t("blocks.0.att.time_first", new float[] {0f, 1f}, 2));
        put(sd, t("blocks.0.att.time_mix_k", seq(4, 0), 1, 1, 4));
        put(sd, t("blocks.0.att.ln_x.weight", seq(4, 1), 4));

        assertEquals(Version.V5_0, BlinkDlCanonicalizer.detect(sd));
        Map<String, Tensor> c = BlinkDlCanonicalizer.canonicalize(sd);

        Tensor decay = c.get("blocks.0.att.time_decay");
        assertArrayEquals(new long[] {2, 1, 1}, decay.shape());
        assertArrayEquals(new float[] {(float) Math.exp(-1), (float) Math.exp(-2)}, decay.toFloatArray(), 1e-7f);
        Tensor first = c.get("blocks.0.att.time_first");
        assertArrayEquals(new long[] {2, 1, 1}, first.shape());
        assertArrayEquals(new float[] {1f, (float) Math.E}, first.toFloatArray(), 1e-6f);
        assertArrayEquals(new long[] {4}, c.get("blocks.0.att.time_mix_k").shape());
    }

    @Test
    void v5VariantsAreToldApartByGateAndDecayShape() {
        Map<String, Tensor> sd = new LinkedHashMap<>();
        put(sd, t("blocks.0.att.ln_x.weight", seq(4, 1), 4));
        put(sd, t("blocks.0.att.gate.weight", seq(16, 0), 4, 4));
        put(sd, t("blocks.0.att.time_decay", new float[] {0f, 0f}, 2));
        assertEquals(Version.V5_1, BlinkDlCanonicalizer.detect(sd));

        sd.put("blocks.0.att.time_decay", t("blocks.0.att.time_decay", new float[] {0f, 1f, -1f, 0.5f}, 2, 2));
        put(sd, t("blocks.0.att.time_faaaa", new float[] {0.25f, 0.5f, 0.75f, 1f}, 2, 2));
        assertEquals(Version.V5_2, BlinkDlCanonicalizer.detect(sd));
        Map<String, Tensor> c = BlinkDlCanonicalizer.canonicalize(sd);

        Tensor decay = c.get("blocks.0.att.time_decay");
        assertArrayEquals(new long[] {2, 2, 1}, decay.shape());
        float[] expected = new float[4];
        float[] w = {0f, 1f, -1f, 0.5f};
        for (int i = 0; i < 4; i++) {
            expected[i] = (float) Math.exp(-Math.exp(w[i]));
        }
        assertArrayEquals(expected, decay.toFloatArray());
        Tensor faaaa = c.get("blocks.0.att.time_faaaa");
        assertArrayEquals(new long[] {2, 2, 1}, faaaa.shape());
        assertArrayEquals(new float[] {0.25f, 0.5f, 0.75f, 1f}, faaaa.toFloatArray(), "u is kept as is");
    }

    @Test
    void v6TransposesTheLoraMatricesAndShapesDecayPerHead() {
        int c = 4;
        int d = 2;
        Map<String, Tensor> sd = new LinkedHashMap<>();
        put(sd, t("blocks.0.att.time_maa_x", seq(c, 0), 1, 1, c));
        put(sd, t("blocks.0.att.time_maa_w1", seq(c * 5 * d, 0), c, 5 * d));
        put(sd, t("blocks.0.att.time_maa_w2", seq(5 * d * c, 100), 5, d, c));
        put(sd, t("blocks.0.att.time_decay", seq(c, -3), 1, 1, c));
        put(sd, t("blocks.0.att.time_decay_w1", seq(c * d, 0), c, d));
        put(sd, t("blocks.0.att.time_decay_w2", seq(d * c, 50), d, c));
        put(sd, t("blocks.0.att.time_faaaa", seq(c, 7), 2, 2));
        put(sd, t("blocks.0.ffn.time_maa_k", seq(c, 0), 1, 1, c));

        assertEquals(Version.V6, BlinkDlCanonicalizer.detect(sd));
        Map<String, Tensor> out = BlinkDlCanonicalizer.canonicalize(sd);

        Tensor w1 = out.get("blocks.0.att.time_maa_w1");
        assertArrayEquals(new long[] {5 * d, c}, w1.shape());
        // w1'[i][j] = w1[j][i] = j * 10 + i
        assertEquals(2 * 10 + 3, w1.getFloat(3L * c + 2));
        Tensor w2 = out.get("blocks.0.att.time_maa_w2");
        assertArrayEquals(new long[] {5, c, d}, w2.shape());
        // w2'[k][j][i] = w2[k][i][j] = 100 + k*d*c + i*c + j; check k=3, j=2, i=1
        assertEquals(100 + 3 * d * c + c + 2, w2.getFloat(3L * c * d + 2L * d + 1));
        Tensor dw1 = out.get("blocks.0.att.time_decay_w1");
        assertArrayEquals(new long[] {d, c}, dw1.shape());
        assertEquals(3 * d + 1, dw1.getFloat(c + 3)); // dw1'[1][3] = dw1[3][1]
        Tensor dw2 = out.get("blocks.0.att.time_decay_w2");
        assertArrayEquals(new long[] {c, d}, dw2.shape());
        assertEquals(50 + c + 2, dw2.getFloat(2L * d + 1)); // dw2'[2][1] = dw2[1][2]
        Tensor decay = out.get("blocks.0.att.time_decay");
        assertArrayEquals(new long[] {2, 2, 1}, decay.shape());
        assertArrayEquals(seq(c, -3), decay.toFloatArray(), "v6 decay values are kept");
        assertArrayEquals(
                new long[] {2, 2, 1}, out.get("blocks.0.att.time_faaaa").shape());
        assertArrayEquals(new long[] {c}, out.get("blocks.0.att.time_maa_x").shape());
        assertArrayEquals(new long[] {c}, out.get("blocks.0.ffn.time_maa_k").shape());
    }

    @Test
    void v7PacksTheMixVectorsAndTransposesLora() {
        int c = 3;
        Map<String, Tensor> sd = new LinkedHashMap<>();
        put(sd, t("emb.weight", seq(6, 0), 2, c));
        String[] mix = {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"};
        for (int i = 0; i < mix.length; i++) {
            put(sd, t("blocks.0.att." + mix[i], seq(c, 10 * i), 1, 1, c));
        }
        put(sd, t("blocks.0.att.w0", seq(c, 0), 1, 1, c));
        put(sd, t("blocks.0.att.w1", seq(c * 2, 0), c, 2));
        put(sd, t("blocks.0.att.g2", seq(2 * c, 0), 2, c));
        put(sd, t("blocks.0.att.k_k", seq(c, 0), 1, 1, c));
        Tensor value = bf16("blocks.0.att.value.weight", seq(9, 0), 3, 3);
        put(sd, value);
        put(sd, t("blocks.0.ffn.x_k", seq(c, 5), 1, 1, c));
        put(sd, t("blocks.0.extra.thing", seq(2, 0), 2));

        assertEquals(Version.V7, BlinkDlCanonicalizer.detect(sd));
        Map<String, Tensor> out = BlinkDlCanonicalizer.canonicalize(sd);

        assertEquals(
                List.of(
                        "emb.weight",
                        "blocks.0.att.x_rwkvag",
                        "blocks.0.att.w0",
                        "blocks.0.att.w1",
                        "blocks.0.att.g2",
                        "blocks.0.att.k_k",
                        "blocks.0.att.value.weight",
                        "blocks.0.ffn.x_k",
                        "blocks.0.extra.thing"),
                List.copyOf(out.keySet()));
        Tensor packed = out.get("blocks.0.att.x_rwkvag");
        assertArrayEquals(new long[] {6, c}, packed.shape());
        assertArrayEquals(
                new float[] {0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51, 52},
                packed.toFloatArray());
        Tensor w1 = out.get("blocks.0.att.w1");
        assertArrayEquals(new long[] {2, c}, w1.shape());
        assertArrayEquals(new float[] {0, 2, 4, 1, 3, 5}, w1.toFloatArray());
        assertArrayEquals(
                new float[] {0, 3, 1, 4, 2, 5}, out.get("blocks.0.att.g2").toFloatArray());
        assertArrayEquals(new long[] {1, 1, c}, out.get("blocks.0.att.w0").shape(), "w0 keeps its file shape");
        assertSame(value, out.get("blocks.0.att.value.weight"));
        assertEquals(WeightType.BF16, out.get("blocks.0.att.value.weight").type());
        assertTrue(out.containsKey("blocks.0.extra.thing"), "unknown tensors are kept");
        assertFalse(out.containsKey("blocks.0.att.x_r"));
    }

    @Test
    void v7WithAMissingMixVectorIsAClearError() {
        Map<String, Tensor> sd = new LinkedHashMap<>();
        put(sd, t("blocks.0.att.k_k", seq(2, 0), 1, 1, 2));
        for (String m : List.of("x_r", "x_w", "x_k", "x_v", "x_a")) {
            put(sd, t("blocks.0.att." + m, seq(2, 0), 1, 1, 2));
        }
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> BlinkDlCanonicalizer.canonicalize(sd));
        assertTrue(e.getMessage().contains("blocks.0.att.x_g"), e.getMessage());
    }
}
