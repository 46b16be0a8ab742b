package dev.rwkvflink.operator;

import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.model.RwkvVersion;
import dev.rwkvflink.engine.state.RwkvState;

/**
 * The default of the token log's budget K ({@link RwkvOperatorConfig#snapshotTokens}): the number of tokens whose
 * replay costs about what reading one state snapshot from Flink state costs, so that rebuilding a cold key (read
 * the snapshot, replay fewer than K tokens) costs at most about two snapshot reads, while a key writes a whole
 * state only once per K tokens; but never below {@link #MIN_TOKENS}.
 *
 * <p>Both costs scale with the model: a snapshot read with the state's bytes (decode, copy into the engine), a
 * replayed token with the multiply-adds of one token (about one per weight of the projection matrices; the
 * embedding table is a lookup). So K = {@code macsPerByte} x state bytes / (multiply-adds per token), where
 * {@code macsPerByte} is the measured ratio of the engine's replay rate (multiply-adds per second, batched over
 * cold keys) to the snapshot read rate (bytes per second), one figure per backend kind
 * ({@code bin/bench-operator budget}; docs/benchmarks.md, "The token log's budget").
 *
 * <p>On the GPU the measured balance is about the same number of tokens at every size ({@link #GPU_TOKENS}): a
 * replayed token there does not cost in proportion to its multiply-adds (small models leave the device
 * underused), so K is that measured token count rather than the formula. On the
 * CPU a dense model's token costs about what its whole state costs to read (K of 1 to 2), so the balance alone
 * would write a snapshot at nearly every checkpoint, as before the token log; the floor keeps documents of up to
 * {@link #MIN_TOKENS} tokens free of state writes and the checkpoints small, at the price of a longer rebuild of a
 * cold key (at most MIN_TOKENS tokens of replay). A CPU job whose open documents do not fit in its hot states
 * (keys rebuilt again and again: the {@code statesReplayed} metric grows with every batch) should lower
 * {@code snapshotTokens} or raise {@code hotStateBytes}.
 */
final class SnapshotBudget {
    /** Floor of the automatic K: documents up to this many tokens never write a snapshot. */
    static final long MIN_TOKENS = 256;
    /** Cap of the automatic K: bounds a cold key's replay (and its tokens held in Flink state). */
    static final long MAX_TOKENS = 1 << 16;
    /**
     * CPU backends: replay multiply-adds per snapshot byte read. Measured (2-core EPYC, vector backend, 0.1B shape
     * fp32, 64 keys x 64 tokens): 24 (snapshot read 1.64 ms per key, replay 2.40 ms per token).
     */
    static final double CPU_MACS_PER_BYTE = 24;
    /**
     * CUDA backend, bf16: K in tokens. Measured on an H100 (2026-12-07, {@code native-bindings/gpu-bench.sh
     * budget}: 256 keys x 64 tokens, random RWKV-7 weights): 0.1B snapshot read 1.239 ms per key, replay 1.34 us
     * per token, K = 922 (32,193 multiply-adds per snapshot byte); 1.5B 6.263 ms and 7.39 us, K = 847 (78,863 per
     * byte). The per-byte ratio differs 2.4x between the shapes while K differs 8%, so the GPU's K is a token
     * count: 900.
     */
    static final long GPU_TOKENS = 900;

    private SnapshotBudget() {}

    /** K for a model of this shape on a GPU ({@code gpu}) or the CPU. */
    static long defaultTokens(RwkvConfig c, boolean gpu) {
        double stateBytes = 4.0 * RwkvState.floats(c);
        double k = gpu ? GPU_TOKENS : CPU_MACS_PER_BYTE * stateBytes / macsPerToken(c);
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
