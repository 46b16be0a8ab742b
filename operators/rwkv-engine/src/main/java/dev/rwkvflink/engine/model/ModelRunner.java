package dev.rwkvflink.engine.model;

import dev.rwkvflink.engine.state.RwkvState;

/**
 * Runs a whole model somewhere other than the Java heap (a GPU): advances many states at once, each by its own
 * tokens, and returns each one's hidden vector {@code ln_out(x_last)}. Whatever it computes must agree with the CPU
 * path ({@link RwkvModel#hidden}) within the precision it states.
 */
public interface ModelRunner extends AutoCloseable {

    /** Where and how it runs, for logs ("cuda NVIDIA H100 80GB HBM3, bf16 weights"). */
    String describe();

    /**
     * Advances {@code states[i]} by {@code tokens[i]} (in place) and returns the hidden vectors; an empty token
     * array leaves its state alone and yields null.
     */
    float[][] advance(RwkvState[] states, int[][] tokens);

    /** As {@link #advance}, but returns each stream's logits (vocabulary-wide) instead of its hidden vector. */
    float[][] advanceToLogits(RwkvState[] states, int[][] tokens);

    /** State slots of the runner's pool, shared by every {@link #reserve} and the host-state calls. */
    int slots();

    /**
     * Reserves up to {@code slots} state slots where the runner runs (at least one), for one owner until it closes
     * them; throws {@link IllegalStateException} when none is free.
     */
    ResidentStates reserve(int slots);

    @Override
    void close();
}
