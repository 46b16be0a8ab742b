package dev.rwkvflink.engine.state;

import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.model.RwkvVersion;
import java.util.Arrays;

/**
 * The whole past of one text: for every layer, the two token-shift vectors and the WKV state, in fp32.
 * Its size depends only on the model, never on how much text has been read.
 *
 * <pre>
 * layer l, at l * layerFloats:
 *   [0, C)        time-mix token shift: the ln1-normalised input of the previous token
 *   [C, 2C)       channel-mix token shift: the ln2-normalised input of the previous token
 *   [2C, ...)     WKV state
 *                   v4:     aa[C], bb[C], pp[C]          (pp starts at -1e30)
 *                   v5, v6: [head][key][value]  H x N x N
 *                   v7:     [head][value][key]  H x N x N
 * </pre>
 */
public final class RwkvState {
    /** v4's initial running maximum of the exponent: "minus infinity" that stays finite. */
    public static final float V4_PP_INIT = -1e30f;

    private final RwkvConfig config;
    private final float[] data;

    private RwkvState(RwkvConfig config, float[] data) {
        this.config = config;
        this.data = data;
    }

    /** The state before any token: zeros (and v4's pp = -1e30). */
    public static RwkvState initial(RwkvConfig config) {
        RwkvState s = new RwkvState(config, new float[Math.toIntExact(floats(config))]);
        if (config.version() == RwkvVersion.V4) {
            for (int l = 0; l < config.layers(); l++) {
                int pp = s.wkvOffset(l) + 2 * config.embd();
                Arrays.fill(s.data, pp, pp + config.embd(), V4_PP_INIT);
            }
        }
        return s;
    }

    /** Wraps existing values (length must be {@link #floats(RwkvConfig)}); used by the binary codec. */
    public static RwkvState of(RwkvConfig config, float[] data) {
        if (data.length != floats(config)) {
            throw new IllegalArgumentException("state of " + data.length + " floats, model needs " + floats(config));
        }
        return new RwkvState(config, data);
    }

    /** Floats of WKV state per layer. */
    public static int wkvFloats(RwkvConfig c) {
        return c.version() == RwkvVersion.V4 ? 3 * c.embd() : c.heads() * c.headSize() * c.headSize();
    }

    public static int layerFloats(RwkvConfig c) {
        return 2 * c.embd() + wkvFloats(c);
    }

    /** Total floats of one state. */
    public static long floats(RwkvConfig c) {
        return (long) c.layers() * layerFloats(c);
    }

    public RwkvConfig config() {
        return config;
    }

    /** The backing array (mutated in place by the model). */
    public float[] data() {
        return data;
    }

    public int attShiftOffset(int layer) {
        return layer * layerFloats(config);
    }

    public int ffnShiftOffset(int layer) {
        return attShiftOffset(layer) + config.embd();
    }

    public int wkvOffset(int layer) {
        return attShiftOffset(layer) + 2 * config.embd();
    }

    public RwkvState copy() {
        return new RwkvState(config, data.clone());
    }

    /** Overwrites this state with {@code other}'s values (same model shape). */
    public void copyFrom(RwkvState other) {
        if (other.data.length != data.length) {
            throw new IllegalArgumentException("state shapes differ");
        }
        System.arraycopy(other.data, 0, data, 0, data.length);
    }

    /** Bit-exact equality of the values (NaN payloads included). */
    public boolean sameBits(RwkvState other) {
        if (other.data.length != data.length) {
            return false;
        }
        for (int i = 0; i < data.length; i++) {
            if (Float.floatToRawIntBits(data[i]) != Float.floatToRawIntBits(other.data[i])) {
                return false;
            }
        }
        return true;
    }
}
