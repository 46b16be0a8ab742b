package dev.rwkvflink.engine.model;

import dev.rwkvflink.engine.backend.Backend;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tensor.Tensor;

/**
 * One layer, the same skeleton in every version:
 * <pre>
 *   x = x + timeMix(ln1(x), shifted ln1(x))       -- the attention-like half, with the WKV recurrence
 *   x = x + channelMix(ln2(x), shifted ln2(x))    -- the FFN half
 * </pre>
 * applied to the R rows of one pass ({@link RowSpans}: the tokens of one or several streams, each stream a span
 * of rows with its own state). Row-wise work runs over all R rows at once, so every projection is one
 * (R x in) times (in x out) product on the {@link Backend}; the token shift and the recurrence run span by span,
 * token by token, on each stream's state. Every row's arithmetic is independent of the other rows of the pass, so
 * one call with T tokens computes what T calls with one token compute, and a stream batched with others gets the
 * bits it gets alone.
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

    /**
     * Advances every stream of {@code spans} through this layer, updating the residual stream {@code x}
     * (R rows x C) in place.
     */
    final void forward(float[] x, RowSpans spans, Backend backend, Pass pass) {
        int C = config.embd();
        int rows = spans.rows();

        Activations.startLayer();
        float[] xx = Activations.floats(rows * C);
        Ops.layerNormRows(x, ln1w, ln1b, RwkvConfig.LAYER_NORM_EPS, xx, rows, C);
        float[] prev = shiftRows(xx, spans, false);
        Ops.addInPlace(x, timeMix(xx, prev, spans, backend, pass));

        Ops.layerNormRows(x, ln2w, ln2b, RwkvConfig.LAYER_NORM_EPS, xx, rows, C);
        prev = shiftRows(xx, spans, true);
        Ops.addInPlace(x, channelMix.apply(xx, prev, rows, C, backend));
    }

    /**
     * The token shift of every stream ({@link Ops#shiftRows}): each span's first row of {@code prev} comes from its
     * own state (the att or ffn shift of this layer), which then keeps the span's last row.
     */
    private float[] shiftRows(float[] xx, RowSpans spans, boolean ffn) {
        int C = config.embd();
        float[] prev = Activations.floats(spans.rows() * C);
        for (RowSpans.Span span : spans) {
            RwkvState state = span.state();
            int shift = ffn ? state.ffnShiftOffset(layer) : state.attShiftOffset(layer);
            Ops.shiftRows(xx, prev, span.first(), span.rows(), C, state.data(), shift);
        }
        return prev;
    }

    /**
     * The time-mix output (R rows x C) for normalised input {@code xx} and its shifted rows {@code prev}; advances
     * each span's WKV state (in its {@link RwkvState} from {@code wkvOffset(layer)}) by the span's rows.
     */
    abstract float[] timeMix(float[] xx, float[] prev, RowSpans spans, Backend backend, Pass pass);

    /** y = W x for R rows: one (R x in) times (in x out) product, into a layer-scoped array (Activations). */
    static float[] project(Backend backend, Tensor w, float[] x, int rows) {
        float[] y = Activations.floats(rows * w.rows());
        backend.matmul(w, x, rows, y);
        return y;
    }

    /** What one forward pass carries from layer to layer besides the residual stream. */
    static final class Pass {
        /**
         * RWKV-7's value residual: layer 0's values (R rows x C), mixed into every later layer's values. Row r
         * belongs to the same stream and token in every layer, so it needs no per-stream handling.
         */
        float[] firstValues;
    }
}
