package dev.rwkvflink.engine.model;

/**
 * RWKV generations, numbered as BlinkDL numbers them. rwkv.cpp's names differ for v5: its "5.1" files (ln_x,
 * no gate) are BlinkDL's 5.0 and its "5.2" files (with gate) are 5.1 or 5.2 depending on the decay's shape.
 */
public enum RwkvVersion {
    /** Pile models (2022): exponential-decay WKV with (aa, bb, pp) state per channel. */
    V4("4"),
    /** Eagle 5.0: multi-head matrix state, per-head decay and bonus, GroupNorm (ln_x), no gate. */
    V5_0("5.0"),
    /** Eagle 5.1: adds the SiLU output gate. */
    V5_1("5.1"),
    /** Eagle 5.2: per-channel decay and bonus ({@code time_faaaa}). */
    V5_2("5.2"),
    /** Finch: data-dependent token shift and decay through small LoRA-style projections. */
    V6("6.0"),
    /** Goose: generalised delta rule with in-context learning rate {@code a}, value residual. */
    V7("7.0");

    private final String label;

    RwkvVersion(String label) {
        this.label = label;
    }

    public String label() {
        return label;
    }

    /** Whether the WKV state is one N x N matrix per head (v5 and later) rather than v4's three vectors. */
    public boolean hasMatrixState() {
        return this != V4;
    }

    public static RwkvVersion fromLabel(String label) {
        for (RwkvVersion v : values()) {
            if (v.label.equals(label)) {
                return v;
            }
        }
        throw new IllegalArgumentException("unknown RWKV version " + label);
    }
}
