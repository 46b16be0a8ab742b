package dev.rwkvflink.operator;

import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.model.RwkvVersion;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tensor.WeightType;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

class SnapshotBudgetTest {
    private static final RwkvConfig V7_0_1B =
            new RwkvConfig(RwkvVersion.V7, 12, 768, 12, 64, 65_536, 3_072, 64e-5f, WeightType.BF16);
    private static final RwkvConfig V7_1_5B =
            new RwkvConfig(RwkvVersion.V7, 24, 2_048, 32, 64, 65_536, 8_192, 64e-5f, WeightType.BF16);

    @Test
    void multiplyAddsPerTokenAreTheProjectionWeights() {
        // RWKV-7 0.1B: 12 x (4 x 768^2 + 2 x 768 x 3072) = 84,934,656
        assertEquals(84_934_656, SnapshotBudget.macsPerToken(V7_0_1B), 0);
        RwkvConfig v6 = new RwkvConfig(RwkvVersion.V6, 12, 768, 12, 64, 65_536, 2_688, 64e-5f, WeightType.BF16);
        assertEquals(12 * (5.0 * 768 * 768 + 2.0 * 768 * 2_688), SnapshotBudget.macsPerToken(v6), 0,
                "RWKV-4 to 6 have a channel-mix receptance too");
    }

    @Test
    void theGpuBalancesReplayAgainstReadAndTheCpuStaysAtTheFloor() {
        // K = macs/byte x state bytes / macs per token
        double k01 = SnapshotBudget.GPU_MACS_PER_BYTE * 4.0 * RwkvState.floats(V7_0_1B)
                / SnapshotBudget.macsPerToken(V7_0_1B);
        assertEquals(Math.round(k01), SnapshotBudget.defaultTokens(V7_0_1B, true));
        assertEquals(1_289, SnapshotBudget.defaultTokens(V7_0_1B, true), 1, "0.1B on the GPU: about 1,300");
        assertEquals(SnapshotBudget.MIN_TOKENS, SnapshotBudget.defaultTokens(V7_0_1B, false),
                "the CPU's balance (about 1 token) is below the floor");
        assertEquals(SnapshotBudget.MIN_TOKENS, SnapshotBudget.defaultTokens(V7_1_5B, false));
        long k15 = SnapshotBudget.defaultTokens(V7_1_5B, true);
        assertEquals(Math.round(SnapshotBudget.GPU_MACS_PER_BYTE * 4.0 * RwkvState.floats(V7_1_5B)
                / SnapshotBudget.macsPerToken(V7_1_5B)), k15);
    }
}
