package dev.rwkvflink.engine.model;

import dev.rwkvflink.engine.backend.Backend;
import dev.rwkvflink.engine.state.RwkvState;

/**
 * One layer, the same skeleton in every version:
 * <pre>
 *   x = x + timeMix(ln1(x), shifted ln1(x))       -- the attention-like half, with the WKV recurrence
 *   x = x + channelMix(ln2(x), shifted ln2(x))    -- the FFN half
 * </pre>
 * applied to T tokens of one state at once. Projections run on the {@link Backend} as (T x in) times
 * (in x out) products; the recurrence is scanned token by token, so one call with T tokens computes what T calls
 * with one token compute.
 */
abstract sealed class RwkvBlock permits Rwkv4Block, Rwkv5Block, Rwkv6Block, Rwkv7Block {
    protected final RwkvConfig config;
    protected final int layer;
    private final float[] ln1w;
    private final float[] ln1b;
    private final float[] ln2w;
    private final float[] ln2b;
    private final ChannelMix channelMix;

    RwkvBlock(RwkvConfig config, LayerWeights w, int layer) {
        this.config = config;
        this.layer = layer;
        int C = config.embd();
        ln1w = w.vec("ln1.weight", C);
        ln1b = w.vec("ln1.bias", C);
        ln2w = w.vec("ln2.weight", C);
        ln2b = w.vec("ln2.bias", C);
        channelMix = ChannelMix.of(config, w);
    }

    static RwkvBlock of(RwkvConfig c, LayerWeights w, int layer) {
        return switch (c.version()) {
            case V4 -> new Rwkv4Block(c, w, layer);
            case V5_0, V5_1, V5_2 -> new Rwkv5Block(c, w, layer);
            case V6 -> new Rwkv6Block(c, w, layer);
            case V7 -> new Rwkv7Block(c, w, layer);
        };
    }

    /** Advances {@code state} through this layer, updating the residual stream {@code x} (tokens x C) in place. */
    final void forward(float[] x, int tokens, RwkvState state, Backend backend, Pass pass) {
        int C = config.embd();
        float[] s = state.data();

        float[] xx = new float[tokens * C];
        Ops.layerNormRows(x, ln1w, ln1b, RwkvConfig.LAYER_NORM_EPS, xx, tokens, C);
        float[] prev = Ops.shiftRows(xx, tokens, C, s, state.attShiftOffset(layer));
        Ops.addInPlace(x, timeMix(xx, prev, tokens, s, state.wkvOffset(layer), backend, pass));

        Ops.layerNormRows(x, ln2w, ln2b, RwkvConfig.LAYER_NORM_EPS, xx, tokens, C);
        prev = Ops.shiftRows(xx, tokens, C, s, state.ffnShiftOffset(layer));
        Ops.addInPlace(x, channelMix.apply(xx, prev, tokens, C, backend));
    }

    /**
     * The time-mix output (tokens x C) for normalised input {@code xx} and its shifted rows {@code prev};
     * advances the WKV state held in {@code s} from {@code wkv}.
     */
    abstract float[] timeMix(float[] xx, float[] prev, int tokens, float[] s, int wkv, Backend backend, Pass pass);

    /** y = W x for T rows. */
    static float[] project(Backend backend, dev.rwkvflink.engine.tensor.Tensor w, float[] x, int tokens) {
        float[] y = new float[tokens * w.rows()];
        backend.matmul(w, x, tokens, y);
        return y;
    }

    /** What one forward pass carries from layer to layer besides the residual stream. */
    static final class Pass {
        /** RWKV-7's value residual: layer 0's values (tokens x C), mixed into every later layer's values. */
        float[] firstValues;
    }
}
