package dev.rwkvflink.engine.format;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/** The ceiling on what a loader allocates beyond the file: 8 x file size + 256 MiB. */
class LoadBudgetTest {

    @Test
    void theLimitIsEightTimesTheFileSizePlus256MiB() {
        assertEquals(256L << 20, LoadBudget.limitFor(0));
        assertEquals(8L * 1_000_000 + (256L << 20), LoadBudget.limitFor(1_000_000));
        assertEquals(Long.MAX_VALUE, LoadBudget.limitFor(Long.MAX_VALUE / 4), "no overflow");
    }

    @Test
    void allocationsAreCountedAndTheFirstPastTheLimitIsRefusedByName() {
        try (Arena arena = Arena.ofConfined()) {
            LoadBudget budget = new LoadBudget(arena, "pth file", 0);
            budget.allocate(200L << 20, 64);
            budget.allocate(56L << 20, 64);
            assertEquals(256L << 20, budget.used());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> budget.allocate(1, 1));
            assertEquals(
                    "loading needs 1 bytes of memory beyond the file, 268435456 already taken: more than the "
                            + "268435456 a pth file of this size may take (8 x its size + 256 MiB); the file is corrupt or "
                            + "hostile",
                    e.getMessage());
            assertEquals(256L << 20, budget.used(), "a refused allocation is not counted");
        }
    }

    @Test
    void copiesOfStridedViewsAreChargedAndRefusedNamingTheTensor() throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            // a 1024 x 1024 fp32 storage (4 MiB) viewed transposed: each view is a 4 MiB copy
            MemorySegment storage = arena.allocate(4L << 20, 64);
            for (int i = 0; i < 1024 * 1024; i++) {
                storage.setAtIndex(ValueLayout.JAVA_FLOAT, i, i);
            }
            LoadBudget budget = new LoadBudget(arena, "pth file", storage.byteSize());
            long[] shape = {1024, 1024};
            long[] transposed = {1, 1024};
            Tensor t = PthFile.view("m.pth: tensor 'v0'", "v0", WeightType.F32, storage, 0, shape, transposed, budget);
            assertEquals(1024f, t.data().getAtIndex(ValueLayout.JAVA_FLOAT, 1), "element (0, 1) of the transpose");
            int copies = 1;
            IOException refused = null;
            while (refused == null && copies < 1000) {
                try {
                    PthFile.view(
                            "m.pth: tensor 'v" + copies + "'",
                            "v" + copies,
                            WeightType.F32,
                            storage,
                            0,
                            shape,
                            transposed,
                            budget);
                    copies++;
                } catch (IOException e) {
                    refused = e;
                }
            }
            // limit = 8 x 4 MiB + 256 MiB = 288 MiB = 72 copies of 4 MiB
            assertEquals(72, copies);
            assertTrue(
                    refused.getMessage()
                            .startsWith(
                                    "m.pth: tensor 'v72': copying its strided view: loading needs " + "4194304 bytes"),
                    refused.getMessage());
        }
    }
}
