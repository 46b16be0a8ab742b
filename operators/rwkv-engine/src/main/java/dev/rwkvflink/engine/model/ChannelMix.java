package dev.rwkvflink.engine.model;

import dev.rwkvflink.engine.backend.Backend;
import dev.rwkvflink.engine.tensor.Tensor;

/**
 * The channel-mix (FFN) half of a layer, on {@code xx = ln2(x)} and the shifted rows {@code prev}:
 * <pre>
 *   xk = mix(xx, prev, mu_k),  xr = mix(xx, prev, mu_r)
 *   k  = relu(W_key xk)^2                       (squared ReLU)
 *   out = sigmoid(W_receptance xr) * (W_value k)  (v4, v5, v6: receptance-gated)
 *   out = W_value k                              (v7: no receptance)
 * </pre>
 * {@code mix} is {@code xx * mu + prev * (1 - mu)} in v4/v5 ({@code time_mix_*}) and
 * {@code xx + (prev - xx) * mu} in v6/v7 ({@code time_maa_*}, {@code x_k}) — the same interpolation, written
 * as each reference writes it.
 */
final class ChannelMix {
    private final boolean maaForm;
    private final float[] muK;
    private final float[] muR;
    private final Tensor key;
    private final Tensor value;
    private final Tensor receptance;

    private ChannelMix(boolean maaForm, float[] muK, float[] muR, Tensor key, Tensor value, Tensor receptance) {
        this.maaForm = maaForm;
        this.muK = muK;
        this.muR = muR;
        this.key = key;
        this.value = value;
        this.receptance = receptance;
    }

    static ChannelMix of(RwkvConfig c, LayerWeights w) {
        int C = c.embd();
        int F = c.ffn();
        Tensor key = w.mat("ffn.key.weight", F, C);
        Tensor value = w.mat("ffn.value.weight", C, F);
        return switch (c.version()) {
            case V4, V5_0, V5_1, V5_2 ->
                new ChannelMix(
                        false,
                        w.vec("ffn.time_mix_k", C),
                        w.vec("ffn.time_mix_r", C),
                        key,
                        value,
                        w.mat("ffn.receptance.weight", C, C));
            case V6 ->
                new ChannelMix(
                        true,
                        w.vec("ffn.time_maa_k", C),
                        w.vec("ffn.time_maa_r", C),
                        key,
                        value,
                        w.mat("ffn.receptance.weight", C, C));
            case V7 -> new ChannelMix(true, w.vec("ffn.x_k", C), null, key, value, null);
        };
    }

    /**
     * Returns the channel-mix output (rows x C) for normalised input {@code xx} and shifted rows {@code prev}:
     * row-wise work only (the token shift is done), so the rows may belong to any number of streams.
     */
    float[] apply(float[] xx, float[] prev, int rows, int C, Backend backend) {
        int F = key.rows();
        float[] xk = mix(xx, prev, muK, rows, C);
        float[] k = Activations.floats(rows * F);
        backend.matmul(key, xk, rows, k);
        for (int i = 0; i < k.length; i++) {
            k[i] = Ops.reluSquared(k[i]);
        }
        float[] out = Activations.floats(rows * C);
        backend.matmul(value, k, rows, out);
        if (receptance != null) {
            float[] r = Activations.floats(rows * C);
            backend.matmul(receptance, mix(xx, prev, muR, rows, C), rows, r);
            for (int i = 0; i < out.length; i++) {
                out[i] *= Ops.sigmoid(r[i]);
            }
        }
        return out;
    }

    private float[] mix(float[] xx, float[] prev, float[] mu, int rows, int C) {
        return maaForm ? Ops.shiftMix(xx, prev, mu, 0, rows, C) : Ops.lerp(xx, prev, mu, rows, C);
    }
}
