package dev.rwkvflink.operator;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** How many hot states an operator instance asks for, given where they live (HotStates.capacity). */
class HotStatesCapacityTest {

    private static final long MIB = 1L << 20;
    /** RWKV-7 0.1B: 2.4 MB of state per key (as the operator counts it, plus the hidden vector). */
    private static final long STATE_0_1B = 4L * (12 * (2 * 768 + 12 * 64 * 64)) + 4L * 768;

    @Test
    void theAskedBytesWhenTheHeapHasRoom() {
        // 256 MiB asked, 8 GiB heap, 2 slots: a quarter of the heap per TaskManager is 2 GiB, 1 GiB per slot
        assertEquals(256 * MIB / STATE_0_1B, HotStates.capacity(256 * MIB, STATE_0_1B, 64, 2, 0, 8192 * MIB));
    }

    @Test
    void aSlotsShareOfAQuarterOfTheHeapOnTheCpu() {
        // the full crash run's TaskManager: 512 MiB heap, 2 slots, a 37 KB state; 256 MiB asked per instance
        // overran the heap; now each instance holds at most 64 MiB of states
        long state = 37_000;
        int capacity = HotStates.capacity(256 * MIB, state, 64, 2, 0, 512 * MIB);
        assertEquals(512 * MIB / 4 / 2 / state, capacity);
        assertEquals(64 * MIB, capacity * state, (double) state);
    }

    @Test
    void neverBelowOneBatchOnTheCpu() {
        // a heap too small for even one batch's states by the quarter rule still runs batches (as before hot states)
        assertEquals(64, HotStates.capacity(256 * MIB, STATE_0_1B, 64, 4, 0, 256 * MIB));
        assertEquals(64, HotStates.capacity(0, STATE_0_1B, 64, 1, 0, 8192 * MIB));
    }

    @Test
    void theGpuPoolIsSharedByTheTaskManagersSlots() {
        // 4,096 device slots over 4 task slots: 1,024 each, whatever the heap
        assertEquals(1024, HotStates.capacity(16384 * MIB, STATE_0_1B, 64, 4, 4096, 64 * MIB));
        // asked for fewer than the share: what was asked
        assertEquals(100, HotStates.capacity(100 * STATE_0_1B, STATE_0_1B, 64, 4, 4096, 64 * MIB));
    }

    @Test
    void atMost65536Slots() {
        assertEquals(1 << 16, HotStates.capacity(1L << 40, 1024, 64, 1, 0, 1L << 42));
    }
}
