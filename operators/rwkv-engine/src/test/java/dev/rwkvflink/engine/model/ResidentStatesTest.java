package dev.rwkvflink.engine.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.format.WeightFile;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tensor.WeightType;
import dev.rwkvflink.engine.testing.SharedData;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Resident states on the CPU (the heap implementation behind {@link RwkvModel#residentStates}): advancing states
 * held in slots over several calls gives the same bits as advancing state objects with {@link RwkvModel#advance},
 * and load/store/reset copy exactly.
 */
class ResidentStatesTest {

    @Test
    void residentStatesAdvanceBitForBitAsStateObjects() throws Exception {
        Random rnd = new Random(11);
        for (String model : new String[] {"7v0-834K", "4v0-660K", "5v2-730K"}) {
            try (RwkvModel m = RwkvModel.load(SharedData.tinyModel(model, "FP32"), Backends.byName("cpu"));
                    ResidentStates slots = m.residentStates(4)) {
                assertEquals(4, slots.capacity());
                int vocab = m.config().vocab();
                RwkvState[] objects = new RwkvState[4];
                for (int i = 0; i < 4; i++) {
                    objects[i] = m.newState();
                    if (i % 2 == 0) {
                        m.hidden(objects[i], tokens(rnd, 5, vocab));
                        slots.load(i, objects[i]);
                    } else {
                        slots.reset(i);
                    }
                }
                for (int call = 0; call < 5; call++) {
                    int[] order = {2, 0, 3, 1};
                    int[][] tokens = new int[4][];
                    RwkvState[] ordered = new RwkvState[4];
                    for (int j = 0; j < 4; j++) {
                        tokens[j] = call == 2 && j == 1 ? new int[0] : tokens(rnd, 1 + rnd.nextInt(20), vocab);
                        ordered[j] = objects[order[j]];
                    }
                    float[][] got = slots.advance(order, tokens);
                    float[][] want = m.advance(ordered, tokens);
                    for (int j = 0; j < 4; j++) {
                        if (tokens[j].length == 0) {
                            assertNull(got[j]);
                        } else {
                            assertArrayEquals(want[j], got[j], model + " call " + call + " slot " + order[j]);
                        }
                    }
                }
                for (int i = 0; i < 4; i++) {
                    RwkvState out = m.newState();
                    slots.store(i, out);
                    assertArrayEquals(objects[i].data(), out.data(), model + " state " + i);
                }
                slots.reset(0);
                RwkvState zero = m.newState();
                slots.store(0, zero);
                assertArrayEquals(m.newState().data(), zero.data(), "reset gives the initial state");
            }
        }
    }

    @Test
    void capacityMustBePositive() throws Exception {
        try (WeightFile f = RandomModels.rwkv7(
                        new RandomModels.Rwkv7Shape(1, 64, 64, 128, 64, 16, 16, 16, 16), 1, WeightType.F32);
                RwkvModel m = RwkvModel.of(f, Backends.byName("cpu"))) {
            assertThrows(IllegalArgumentException.class, () -> m.residentStates(0));
        }
    }

    /** On the CPU path states live on the heap: no accelerator, no pool limit, and a heap pool of any size. */
    @Test
    void theCpuPathHasNoStatePoolLimit() throws Exception {
        try (WeightFile f = RandomModels.rwkv7(
                        new RandomModels.Rwkv7Shape(1, 64, 64, 128, 64, 16, 16, 16, 16), 1, WeightType.F32);
                RwkvModel m = RwkvModel.of(f, Backends.byName("cpu"))) {
            assertFalse(m.onAccelerator());
            assertEquals(0, m.residentStateLimit());
            try (ResidentStates s = m.residentStates(3)) {
                assertEquals(3, s.capacity());
            }
        }
    }

    private static int[] tokens(Random rnd, int n, int vocab) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = rnd.nextInt(vocab);
        }
        return t;
    }
}
