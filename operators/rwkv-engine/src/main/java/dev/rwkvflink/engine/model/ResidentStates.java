package dev.rwkvflink.engine.model;

import dev.rwkvflink.engine.state.RwkvState;

/**
 * States kept where the model runs, between calls: a fixed number of slots, each holding one stream's state,
 * advanced in place. On a GPU the slots are device memory, so a stream that is advanced again and again moves no
 * state across the bus; on the CPU they are states on the Java heap. {@link #load} and {@link #store} copy a
 * state in (a stream's first use) and out (to persist it or to free its slot).
 *
 * <p>Obtained from {@link RwkvModel#residentStates(int)}; advancing gives the same results as
 * {@link RwkvModel#advance} on the same states (bit for bit: both go through the same computation). One owner at a
 * time (not thread-safe); {@link #close} gives the slots back.
 */
public interface ResidentStates extends AutoCloseable {

    /** Number of slots, {@code [0, capacity())}. */
    int capacity();

    /** Copies {@code state} into slot {@code slot}. */
    void load(int slot, RwkvState state);

    /** Copies slot {@code slot} into {@code state}. */
    void store(int slot, RwkvState state);

    /** Sets slot {@code slot} to the initial state (as {@link RwkvModel#newState()}). */
    void reset(int slot);

    /**
     * Advances the state in slot {@code slots[i]} by {@code tokens[i]} (slots distinct) and returns each one's
     * hidden vector {@code ln_out(x_last)}; an empty token array leaves its slot alone and yields null.
     */
    float[][] advance(int[] slots, int[][] tokens);

    /** Gives the slots back; their contents are gone. */
    @Override
    void close();
}
