package dev.rwkvflink.operator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.model.RwkvVersion;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tensor.WeightType;
import org.junit.jupiter.api.Test;

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
        assertEquals(
                12 * (5.0 * 768 * 768 + 2.0 * 768 * 2_688),
                SnapshotBudget.macsPerToken(v6),
                0,
                "RWKV-4 to 6 have a channel-mix receptance too");
    }

    @Test
    void theGpuUsesItsMeasuredTokenCountAndTheCpuStaysAtTheFloor() {
        assertEquals(900, SnapshotBudget.defaultTokens(V7_0_1B, true), "0.1B on the GPU: measured 922 on an H100");
        assertEquals(900, SnapshotBudget.defaultTokens(V7_1_5B, true), "1.5B on the GPU: measured 847 on an H100");
        // the CPU: K = macs/byte x state bytes / macs per token, about 1 token, below the floor
        double k01 = SnapshotBudget.CPU_MACS_PER_BYTE
                * 4.0
                * RwkvState.floats(V7_0_1B)
                / SnapshotBudget.macsPerToken(V7_0_1B);
        assertTrue(k01 < 2, "the CPU's balance at 0.1B: " + k01);
        assertEquals(
                SnapshotBudget.MIN_TOKENS,
                SnapshotBudget.defaultTokens(V7_0_1B, false),
                "the CPU's balance (about 1 token) is below the floor");
        assertEquals(SnapshotBudget.MIN_TOKENS, SnapshotBudget.defaultTokens(V7_1_5B, false));
    }
}
