package dev.rwkvflink.engine.model;

import dev.rwkvflink.engine.backend.Backend;
import dev.rwkvflink.engine.tensor.Tensor;

/**
 * RWKV-7 "Goose" time mix (BlinkDL RWKV-LM {@code RWKV-v7/rwkv_v7_demo_rnn.py}): a generalised delta rule.
 * Each head keeps {@code S[value i][key j]}; with {@code sx = prev - xx} and {@code x_c = xx + sx * mu_c}:
 * <pre>
 *   r = W_r x_r,  k = W_k x_k,  v = W_v x_v
 *   w = exp(-e^{-1/2} sigmoid(w0 + W2 tanh(W1 x_w)))             decay in (e^{-0.6065}, 1), fp32
 *   a = sigmoid(a0 + A2 A1 x_a)                                  in-context learning rate
 *   g = G2 sigmoid(G1 x_g)                                       output gate
 *   kk = normalize_per_head(k * k_k);   k = k * (1 + (a - 1) * k_a)
 *   v = v + (v_first - v) * sigmoid(v0 + V2 V1 x_v)              layers > 0; layer 0 sets v_first = v
 *   S <- S diag(w) - (S kk) (kk * a)^T + v k^T
 *   out = GroupNorm_H(S r) + (sum_j r_j k_j r_k_j) v              per head
 *   y = W_o(out * g)
 * </pre>
 */
final class Rwkv7Block extends RwkvBlock {
    /** e^{-1/2}: the decay is exp(-e^{-1/2} sigmoid(.)), i.e. exp(-exp(-softplus(-z) - 1/2)). */
    private static final double DECAY_SCALE = Math.exp(-0.5);
    /** F.normalize's floor on the norm. */
    private static final float NORM_EPS = 1e-12f;

    /** Token-shift mixes, rows r, w, k, v, a, g of C values each. */
    private final float[] mix;

    private final float[] w0;
    private final float[] a0;
    private final float[] v0;
    private final float[] kk;
    private final float[] ka;
    private final float[] rk;
    private final float[] lnxW;
    private final float[] lnxB;
    private final Tensor w1;
    private final Tensor w2;
    private final Tensor a1;
    private final Tensor a2;
    private final Tensor v1;
    private final Tensor v2;
    private final Tensor g1;
    private final Tensor g2;
    private final Tensor key;
    private final Tensor value;
    private final Tensor receptance;
    private final Tensor output;

    Rwkv7Block(RwkvConfig c, LayerWeights w, int layer) {
        super(c, w, layer);
        int C = c.embd();
        mix = w.vec("att.x_rwkvag", 6 * C);
        w0 = w.vec("att.w0", C);
        a0 = w.vec("att.a0", C);
        kk = w.vec("att.k_k", C);
        ka = w.vec("att.k_a", C);
        rk = w.vec("att.r_k", C);
        lnxW = w.vec("att.ln_x.weight", C);
        lnxB = w.vec("att.ln_x.bias", C);
        w1 = w.lora("att.w1", C);
        w2 = w.mat("att.w2", C, w1.rows());
        a1 = w.lora("att.a1", C);
        a2 = w.mat("att.a2", C, a1.rows());
        g1 = w.lora("att.g1", C);
        g2 = w.mat("att.g2", C, g1.rows());
        if (layer > 0) {
            v0 = w.vec("att.v0", C);
            v1 = w.lora("att.v1", C);
            v2 = w.mat("att.v2", C, v1.rows());
        } else {
            v0 = null;
            v1 = null;
            v2 = null;
        }
        key = w.mat("att.key.weight", C, C);
        value = w.mat("att.value.weight", C, C);
        receptance = w.mat("att.receptance.weight", C, C);
        output = w.mat("att.output.weight", C, C);
    }

    @Override
    float[] timeMix(float[] xx, float[] prev, RowSpans spans, Backend backend, Pass pass) {
        int C = config.embd();
        int H = config.heads();
        int N = config.headSize();
        int rows = spans.rows();
        float[] xr = Ops.shiftMix(xx, prev, mix, 0, rows, C);
        float[] xw = Ops.shiftMix(xx, prev, mix, C, rows, C);
        float[] xk = Ops.shiftMix(xx, prev, mix, 2 * C, rows, C);
        float[] xv = Ops.shiftMix(xx, prev, mix, 3 * C, rows, C);
        float[] xa = Ops.shiftMix(xx, prev, mix, 4 * C, rows, C);
        float[] xg = Ops.shiftMix(xx, prev, mix, 5 * C, rows, C);

        float[] r = project(backend, receptance, xr, rows);
        float[] k = project(backend, key, xk, rows);
        float[] v = project(backend, value, xv, rows);

        float[] w = project(backend, w2, tanh(project(backend, w1, xw, rows)), rows);
        float[] a = project(backend, a2, project(backend, a1, xa, rows), rows);
        float[] g = project(backend, g2, sigmoid(project(backend, g1, xg, rows)), rows);
        // row-wise work goes over the backend's threads (each row's arithmetic is the same whoever runs it)
        backend.forRows(rows, 16 * C, (from, to) -> {
            for (int t = from; t < to; t++) {
                for (int i = 0; i < C; i++) {
                    int j = t * C + i;
                    w[j] = (float) Math.exp(-DECAY_SCALE * Ops.sigmoid(w0[i] + w[j]));
                    a[j] = Ops.sigmoid(a0[i] + a[j]);
                }
            }
        });

        if (layer == 0) {
            pass.firstValues = v.clone();
        } else {
            float[] vg = project(backend, v2, project(backend, v1, xv, rows), rows);
            float[] first = pass.firstValues;
            backend.forRows(rows, 8 * C, (from, to) -> {
                for (int t = from; t < to; t++) {
                    for (int i = 0; i < C; i++) {
                        int j = t * C + i;
                        v[j] = v[j] + (first[j] - v[j]) * Ops.sigmoid(v0[i] + vg[j]);
                    }
                }
            });
        }

        // kk = normalize(k * k_k) per head; then k = k * (1 + (a - 1) * k_a)
        float[] kkUnit = Activations.floats(rows * C);
        backend.forRows(rows, 4 * C, (from, to) -> {
            for (int t = from; t < to; t++) {
                int row = t * C;
                for (int h = 0; h < H; h++) {
                    int hc = row + h * N;
                    double norm = 0;
                    for (int j = 0; j < N; j++) {
                        float e = k[hc + j] * kk[h * N + j];
                        kkUnit[hc + j] = e;
                        norm += (double) e * e;
                    }
                    float inv = 1f / Math.max((float) Math.sqrt(norm), NORM_EPS);
                    for (int j = 0; j < N; j++) {
                        kkUnit[hc + j] *= inv;
                    }
                }
                for (int i = 0; i < C; i++) {
                    k[row + i] = k[row + i] * (1 + (a[row + i] - 1) * ka[i]);
                }
            }
        });

        // S <- S diag(w) - (S kk) (kk * a)^T + v k^T;  out = S r   (per head, on the backend), stream by stream
        float[] out = Activations.floats(rows * C);
        for (RowSpans.Span span : spans) {
            float[] s = span.state().data();
            int wkv = span.state().wkvOffset(layer);
            for (int t = span.first(); t < span.end(); t++) {
                backend.wkv7(s, wkv, H, N, r, w, k, v, kkUnit, a, t * C, out);
            }
        }

        // GroupNorm; out += (sum_j r_j k_j r_k_j) v, per head; then the gate
        float eps = config.groupNormEps();
        backend.forRows(rows, 8 * C, (from, to) -> {
            for (int t = from; t < to; t++) {
                int row = t * C;
                Ops.groupNorm(out, row, H, N, lnxW, lnxB, eps);
                for (int h = 0; h < H; h++) {
                    int hc = row + h * N;
                    float bonus = 0;
                    for (int j = 0; j < N; j++) {
                        bonus += r[hc + j] * k[hc + j] * rk[h * N + j];
                    }
                    for (int i = 0; i < N; i++) {
                        out[hc + i] = (out[hc + i] + bonus * v[hc + i]) * g[hc + i];
                    }
                }
            }
        });
        return project(backend, output, out, rows);
    }

    private static float[] tanh(float[] x) {
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) Math.tanh(x[i]);
        }
        return x;
    }

    private static float[] sigmoid(float[] x) {
        for (int i = 0; i < x.length; i++) {
            x[i] = Ops.sigmoid(x[i]);
        }
        return x;
    }
}
