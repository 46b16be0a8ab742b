package dev.rwkvflink.operator;

import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.model.RwkvVersion;
import dev.rwkvflink.engine.state.RwkvState;

/**
 * The default of the token log's budget K ({@link RwkvOperatorConfig#snapshotTokens}): the number of tokens whose
 * replay costs about what reading one state snapshot from Flink state costs, so that rebuilding a cold key (read
 * the snapshot, replay at most K tokens) costs at most about two snapshot reads, while a key writes a whole state
 * only once per K tokens.
 *
 * <p>Both costs scale with the model: a snapshot read with the state's bytes (4 per float: decode and copy), a
 * replayed token with the multiply-adds of one token (about one per weight of the projection matrices; the
 * embedding table is a lookup). So K = {@code bytesPerMac} x state bytes / (multiply-adds per token), where
 * {@code bytesPerMac} is the measured ratio of the engine's replay rate (multiply-adds per second, batched
 * over cold keys) to the snapshot read rate (bytes per second), one figure per backend kind (bench: {@code
 * bin/bench-operator}, "replay vs snapshot read" in docs/benchmarks.md). K is at least {@link #MIN_TOKENS}: a
 * document that short never writes a state.
 */
final class SnapshotBudget {
    /** Floor of the automatic K: documents up to this many tokens never write a snapshot. */
    static final long MIN_TOKENS = 256;
    /** Cap of the automatic K: bounds a cold key's replay (and its tokens held in Flink state). */
    static final long MAX_TOKENS = 1 << 16;
    /** CPU backends: replay multiply-adds per snapshot byte read, measured (docs/benchmarks.md). */
    static final double CPU_MACS_PER_BYTE = 40;
    /** CUDA backend: the same ratio, measured on the H100 (docs/benchmarks.md). */
    static final double GPU_MACS_PER_BYTE = 40_000;

    private SnapshotBudget() {
    }

    /** K for a model of this shape on a GPU ({@code gpu}) or the CPU. */
    static long defaultTokens(RwkvConfig c, boolean gpu) {
        double stateBytes = 4.0 * RwkvState.floats(c);
        double k = (gpu ? GPU_MACS_PER_BYTE : CPU_MACS_PER_BYTE) * stateBytes / macsPerToken(c);
        return Math.max(MIN_TOKENS, Math.min(MAX_TOKENS, Math.round(k)));
    }

    /**
     * Multiply-adds of one token through the blocks' projection matrices: per layer the time mix's r, k, v and
     * output (4 C^2) and the channel mix's key and value (2 C F; RWKV-4 to 6 also a receptance, C^2); the small
     * LoRA and token-shift terms are left out.
     */
    static double macsPerToken(RwkvConfig c) {
        double cc = (double) c.embd() * c.embd();
        double channelMix = 2.0 * c.embd() * c.ffn() + (c.version() == RwkvVersion.V7 ? 0 : cc);
        return c.layers() * (4 * cc + channelMix);
    }
}
