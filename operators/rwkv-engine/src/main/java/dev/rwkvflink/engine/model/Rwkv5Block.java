package dev.rwkvflink.engine.model;

import dev.rwkvflink.engine.backend.Backend;
import dev.rwkvflink.engine.tensor.Tensor;

/**
 * RWKV-5 "Eagle" time mix (BlinkDL {@code RWKV_v5_demo.py}). Each head h keeps an N x N matrix state
 * {@code S[key i][value j]}; with decay {@code w = exp(-exp(time_decay))} and bonus {@code u} (both stored so in
 * canonical form; per head in 5.0/5.1, per key channel in 5.2):
 * <pre>
 *   out_j = sum_i r_i (u_i k_i v_j + S_ij)        S_ij <- k_i v_j + w_i S_ij
 *   y = W_o( GroupNorm_H(out) [* silu(W_g xg) from 5.1] )
 * </pre>
 */
final class Rwkv5Block extends RwkvBlock {
    private final float[] mixK;
    private final float[] mixV;
    private final float[] mixR;
    private final float[] mixG;
    /** Decay and bonus per key channel (per-head values repeated over the head's N channels). */
    private final float[] decay;

    private final float[] first;
    private final float[] lnxW;
    private final float[] lnxB;
    private final Tensor key;
    private final Tensor value;
    private final Tensor receptance;
    private final Tensor gate;
    private final Tensor output;

    Rwkv5Block(RwkvConfig c, LayerWeights w, int layer) {
        super(c, w, layer);
        int C = c.embd();
        mixK = w.vec("att.time_mix_k", C);
        mixV = w.vec("att.time_mix_v", C);
        mixR = w.vec("att.time_mix_r", C);
        decay = c.perChannel(w.vec("att.time_decay"));
        first = c.perChannel(w.vec(w.has("att.time_faaaa") ? "att.time_faaaa" : "att.time_first"));
        lnxW = w.vec("att.ln_x.weight", C);
        lnxB = w.vec("att.ln_x.bias", C);
        key = w.mat("att.key.weight", C, C);
        value = w.mat("att.value.weight", C, C);
        receptance = w.mat("att.receptance.weight", C, C);
        output = w.mat("att.output.weight", C, C);
        boolean gated = c.version() != RwkvVersion.V5_0;
        mixG = gated ? w.vec("att.time_mix_g", C) : null;
        gate = gated ? w.mat("att.gate.weight", C, C) : null;
    }

    @Override
    float[] timeMix(float[] xx, float[] prev, RowSpans spans, Backend backend, Pass pass) {
        int C = config.embd();
        int rows = spans.rows();
        float[] r = project(backend, receptance, Ops.lerp(xx, prev, mixR, rows, C), rows);
        float[] k = project(backend, key, Ops.lerp(xx, prev, mixK, rows, C), rows);
        float[] v = project(backend, value, Ops.lerp(xx, prev, mixV, rows, C), rows);
        float[] out = new float[rows * C];
        for (RowSpans.Span span : spans) {
            MatrixWkv.scanDecayBonus(
                    r,
                    k,
                    v,
                    decay,
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
        if (gate != null) {
            float[] g = project(backend, gate, Ops.lerp(xx, prev, mixG, rows, C), rows);
            for (int i = 0; i < out.length; i++) {
                out[i] *= Ops.silu(g[i]);
            }
        }
        return project(backend, output, out, rows);
    }
}
