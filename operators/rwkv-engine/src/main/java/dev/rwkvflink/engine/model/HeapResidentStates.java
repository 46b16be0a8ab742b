package dev.rwkvflink.engine.model;

import dev.rwkvflink.engine.state.RwkvState;
import java.util.Arrays;

/** {@link ResidentStates} on the Java heap, for models that run on the CPU: slot i is a state object. */
final class HeapResidentStates implements ResidentStates {
    private final RwkvModel model;
    private final RwkvState[] slots;

    HeapResidentStates(RwkvModel model, int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("capacity must be >= 1, got " + capacity);
        }
        this.model = model;
        this.slots = new RwkvState[capacity];
    }

    @Override
    public int capacity() {
        return slots.length;
    }

    /** The slot's state object, allocated on first use (a slot never used costs nothing). */
    private RwkvState slot(int slot) {
        RwkvState s = slots[slot];
        if (s == null) {
            s = model.newState();
            slots[slot] = s;
        }
        return s;
    }

    @Override
    public void load(int slot, RwkvState state) {
        float[] from = state.data();
        System.arraycopy(from, 0, slot(slot).data(), 0, from.length);
    }

    @Override
    public void store(int slot, RwkvState state) {
        float[] from = slot(slot).data();
        System.arraycopy(from, 0, state.data(), 0, from.length);
    }

    @Override
    public void reset(int slot) {
        load(slot, model.newState());
    }

    @Override
    public float[][] advance(int[] slotIds, int[][] tokens) {
        RwkvState[] states = new RwkvState[slotIds.length];
        for (int i = 0; i < slotIds.length; i++) {
            states[i] = slot(slotIds[i]);
        }
        return model.advance(states, tokens);
    }

    @Override
    public void close() {
        Arrays.fill(slots, null);
    }
}
