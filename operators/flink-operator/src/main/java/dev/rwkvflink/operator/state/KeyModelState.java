package dev.rwkvflink.operator.state;

import dev.rwkvflink.engine.state.RwkvState;

/**
 * What a key holds in Flink state besides its progress: the RWKV state after every token applied so far, the
 * last token's hidden vector (so an embedding can be emitted without re-running anything) and the token count.
 * Mutable; written once per batch.
 */
public final class KeyModelState {
    public RwkvState state;
    /** {@code ln_out(x)} of the last token applied; null before the first token. */
    public float[] hidden;

    public long tokens;

    public KeyModelState(RwkvState state, float[] hidden, long tokens) {
        this.state = state;
        this.hidden = hidden;
        this.tokens = tokens;
    }

    public KeyModelState copy() {
        return new KeyModelState(state.copy(), hidden == null ? null : hidden.clone(), tokens);
    }
}
