package dev.rwkvflink.engine.model;

import dev.rwkvflink.engine.backend.Backend;
import dev.rwkvflink.engine.tensor.Tensor;

/**
 * RWKV-6 "Finch" time mix (BlinkDL {@code RWKV_v6_demo.py}): the token shift and the decay depend on the data
 * through small low-rank projections; the recurrence is v5.2's with a per-token decay.
 * <pre>
 *   sx = prev - xx
 *   (m_w, m_k, m_v, m_r, m_g) = W2_i tanh(W1 (xx + sx * maa_x))      i = 0..4, rank D
 *   x_* = xx + sx * (maa_* + m_*)
 *   r, k, v = W_r x_r, W_k x_k, W_v x_v;   g = silu(W_g x_g)
 *   w = exp(-exp(time_decay + Wd2 tanh(Wd1 x_w)))
 *   out_j = sum_i r_i (u_i k_i v_j + S_ij),   S_ij <- k_i v_j + w_i S_ij     (u = time_faaaa)
 *   y = W_o(GroupNorm_H(out) * g)
 * </pre>
 */
final class Rwkv6Block extends RwkvBlock {
    private final float[] maaX;
    /** maa_w, maa_k, maa_v, maa_r, maa_g, one row of C each, in that order. */
    private final float[] maa;

    private final Tensor maaW1;
    private final Tensor[] maaW2;
    private final float[] decayBase;
    private final Tensor decayW1;
    private final Tensor decayW2;
    private final float[] first;
    private final float[] lnxW;
    private final float[] lnxB;
    private final Tensor key;
    private final Tensor value;
    private final Tensor receptance;
    private final Tensor gate;
    private final Tensor output;

    Rwkv6Block(RwkvConfig c, LayerWeights w, int layer) {
        super(c, w, layer);
        int C = c.embd();
        maaX = w.vec("att.time_maa_x", C);
        maa = new float[5 * C];
        String[] names = {"w", "k", "v", "r", "g"};
        for (int i = 0; i < 5; i++) {
            System.arraycopy(w.vec("att.time_maa_" + names[i], C), 0, maa, i * C, C);
        }
        maaW1 = w.lora("att.time_maa_w1", C);
        int rank = maaW1.rows() / 5;
        if (maaW1.cols() != C || rank * 5 != maaW1.rows()) {
            throw new IllegalArgumentException(maaW1 + " is not (5 x rank) x " + C);
        }
        Tensor w2 = w.mat("att.time_maa_w2", 5 * C, rank); // (5, C, rank), read as 5C rows
        maaW2 = new Tensor[5];
        for (int i = 0; i < 5; i++) {
            maaW2[i] = w2.rowSlice(i * C, C);
        }
        decayBase = w.vec("att.time_decay", C);
        decayW1 = w.lora("att.time_decay_w1", C);
        decayW2 = w.mat("att.time_decay_w2", C, decayW1.rows());
        first = w.vec("att.time_faaaa", C);
        lnxW = w.vec("att.ln_x.weight", C);
        lnxB = w.vec("att.ln_x.bias", C);
        key = w.mat("att.key.weight", C, C);
        value = w.mat("att.value.weight", C, C);
        receptance = w.mat("att.receptance.weight", C, C);
        gate = w.mat("att.gate.weight", C, C);
        output = w.mat("att.output.weight", C, C);
    }

    @Override
    float[] timeMix(float[] xx, float[] prev, RowSpans spans, Backend backend, Pass pass) {
        int C = config.embd();
        int rows = spans.rows();
        int rank = maaW1.rows() / 5;

        float[] m = project(backend, maaW1, Ops.shiftMix(xx, prev, maaX, 0, rows, C), rows);
        for (int i = 0; i < m.length; i++) {
            m[i] = (float) Math.tanh(m[i]);
        }
        float[][] mixed = new float[5][];
        float[] part = new float[rows * rank];
        for (int p = 0; p < 5; p++) {
            for (int t = 0; t < rows; t++) {
                System.arraycopy(m, t * 5 * rank + p * rank, part, t * rank, rank);
            }
            float[] delta = project(backend, maaW2[p], part, rows);
            float[] xp = new float[rows * C];
            for (int t = 0; t < rows; t++) {
                for (int i = 0; i < C; i++) {
                    int j = t * C + i;
                    xp[j] = xx[j] + (prev[j] - xx[j]) * (maa[p * C + i] + delta[j]);
                }
            }
            mixed[p] = xp;
        }
        float[] xw = mixed[0];
        float[] r = project(backend, receptance, mixed[3], rows);
        float[] k = project(backend, key, mixed[1], rows);
        float[] v = project(backend, value, mixed[2], rows);
        float[] g = project(backend, gate, mixed[4], rows);

        float[] d = project(backend, decayW1, xw, rows);
        for (int i = 0; i < d.length; i++) {
            d[i] = (float) Math.tanh(d[i]);
        }
        float[] w = project(backend, decayW2, d, rows);
        for (int t = 0; t < rows; t++) {
            for (int i = 0; i < C; i++) {
                int j = t * C + i;
                w[j] = (float) Math.exp(-Math.exp(decayBase[i] + w[j]));
            }
        }

        float[] out = new float[rows * C];
        for (RowSpans.Span span : spans) {
            MatrixWkv.scanDecayBonus(
                    r,
                    k,
                    v,
                    w,
                    first,
                    span.state().data(),
                    span.state().wkvOffset(layer),
                    out,
                    span.first(),
                    span.rows(),
                    config.heads(),
                    config.headSize());
        }
        for (int t = 0; t < rows; t++) {
            Ops.groupNorm(out, t * C, config.heads(), config.headSize(), lnxW, lnxB, config.groupNormEps());
        }
        for (int i = 0; i < out.length; i++) {
            out[i] *= Ops.silu(g[i]);
        }
        return project(backend, output, out, rows);
    }
}
