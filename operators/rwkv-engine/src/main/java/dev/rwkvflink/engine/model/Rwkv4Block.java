package dev.rwkvflink.engine.model;

import dev.rwkvflink.engine.backend.Backend;
import dev.rwkvflink.engine.tensor.Tensor;

/**
 * RWKV-4 time mix (BlinkDL "RWKV in 150 lines"). Per channel, with decay {@code w = -exp(time_decay)} (stored so
 * in canonical form) and bonus {@code u = time_first}, the WKV is a ratio of exponentially decayed sums kept
 * numerically stable by a running maximum exponent {@code pp}:
 * <pre>
 *   wkv_t = (e^{pp-p} aa + e^{u+k_t-p} v_t) / (e^{pp-p} bb + e^{u+k_t-p}),  p = max(pp, u + k_t)
 *   aa <- e^{w+pp-q} aa + e^{k_t-q} v_t,  bb <- e^{w+pp-q} bb + e^{k_t-q},  pp <- q = max(w + pp, k_t)
 *   out = W_o (sigmoid(W_r xr) * wkv)
 * </pre>
 */
final class Rwkv4Block extends RwkvBlock {
    private final float[] mixK;
    private final float[] mixV;
    private final float[] mixR;
    private final float[] decay;
    private final float[] first;
    private final Tensor key;
    private final Tensor value;
    private final Tensor receptance;
    private final Tensor output;

    Rwkv4Block(RwkvConfig c, LayerWeights w, int layer) {
        super(c, w, layer);
        int C = c.embd();
        mixK = w.vec("att.time_mix_k", C);
        mixV = w.vec("att.time_mix_v", C);
        mixR = w.vec("att.time_mix_r", C);
        decay = w.vec("att.time_decay", C);
        first = w.vec("att.time_first", C);
        key = w.mat("att.key.weight", C, C);
        value = w.mat("att.value.weight", C, C);
        receptance = w.mat("att.receptance.weight", C, C);
        output = w.mat("att.output.weight", C, C);
    }

    @Override
    float[] timeMix(float[] xx, float[] prev, RowSpans spans, Backend backend, Pass pass) {
        int C = config.embd();
        int rows = spans.rows();
        float[] k = project(backend, key, Ops.lerp(xx, prev, mixK, rows, C), rows);
        float[] v = project(backend, value, Ops.lerp(xx, prev, mixV, rows, C), rows);
        float[] r = project(backend, receptance, Ops.lerp(xx, prev, mixR, rows, C), rows);
        float[] rwkv = new float[rows * C];
        for (RowSpans.Span span : spans) {
            scan(
                    k,
                    v,
                    r,
                    span.first(),
                    span.end(),
                    span.state().data(),
                    span.state().wkvOffset(layer),
                    rwkv);
        }
        return project(backend, output, rwkv, rows);
    }

    /** The WKV recurrence over one stream's rows {@code [from, to)}, its state aa, bb, pp at {@code s[wkv ..]}. */
    private void scan(float[] k, float[] v, float[] r, int from, int to, float[] s, int wkv, float[] rwkv) {
        int C = config.embd();
        int aa = wkv;
        int bb = wkv + C;
        int pp = wkv + 2 * C;
        for (int t = from; t < to; t++) {
            for (int i = 0; i < C; i++) {
                int j = t * C + i;
                float kt = k[j];
                float vt = v[j];
                float ww = first[i] + kt;
                float p = Math.max(s[pp + i], ww);
                float e1 = (float) Math.exp(s[pp + i] - p);
                float e2 = (float) Math.exp(ww - p);
                float out = (e1 * s[aa + i] + e2 * vt) / (e1 * s[bb + i] + e2);

                ww = decay[i] + s[pp + i];
                p = Math.max(ww, kt);
                e1 = (float) Math.exp(ww - p);
                e2 = (float) Math.exp(kt - p);
                s[aa + i] = e1 * s[aa + i] + e2 * vt;
                s[bb + i] = e1 * s[bb + i] + e2;
                s[pp + i] = p;
                rwkv[j] = Ops.sigmoid(r[j]) * out;
            }
        }
    }
}
