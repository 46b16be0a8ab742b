package dev.rwkvflink.operator;

import dev.rwkvflink.engine.model.ResidentStates;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.operator.state.KeyModelState;
import dev.rwkvflink.operator.state.KeyModelStateSerializer;
import dev.rwkvflink.operator.state.TokenRunSerializer;
import java.util.List;
import java.util.function.Consumer;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ValueState;

/**
 * A key's RWKV state in Flink state, in the token-log layout: a snapshot ({@code rwkv-model-state}: the state, the
 * hidden vector of its last token, its token count; absent = the model's initial state) and the token ids applied
 * since it ({@code rwkv-token-log}, one run per write-back). Moves states between that layout and the hot slots:
 * {@link #load} a cold key's snapshot into its slot (its log to replay), {@link #replay} logs for many keys in one
 * engine call, {@link #writeBack} a hot key's new tokens (or a new snapshot once they reach K), {@link #clear} an
 * ended key. The keyed states act on the current key, which {@code keys} sets (the operator's setCurrentKey).
 */
final class KeyStateStore {
    private final ValueState<KeyModelState> modelState;
    private final ListState<int[]> tokenLog;
    /** K: tokens since a key's snapshot after which a write-back writes a new snapshot. */
    private final long snapshotTokens;

    private final RwkvModel model;
    private final ResidentStates pool;
    private final OperatorMetrics metrics;
    private final Consumer<String> currentKey;
    /** The serialized size of a snapshot, for the state I/O metrics. */
    private final KeyModelStateSerializer snapshotBytes;

    KeyStateStore(
            ValueState<KeyModelState> modelState,
            ListState<int[]> tokenLog,
            long snapshotTokens,
            RwkvModel model,
            ResidentStates slots,
            OperatorMetrics metrics,
            Consumer<String> keys) {
        this.modelState = modelState;
        this.tokenLog = tokenLog;
        this.snapshotTokens = snapshotTokens;
        this.model = model;
        this.pool = slots;
        this.metrics = metrics;
        this.currentKey = keys;
        this.snapshotBytes = new KeyModelStateSerializer(model.config(), model.fingerprint());
    }

    long snapshotTokens() {
        return snapshotTokens;
    }

    /**
     * Fills a freshly admitted slot from the key's Flink state: its snapshot, or the initial state when it has none.
     * Returns the key's token log (the tokens to replay on top, in order; empty when none).
     */
    int[] load(HotStates.Entry e) throws Exception {
        currentKey.accept(e.key);
        long readStart = System.nanoTime();
        KeyModelState s = modelState.value();
        if (s == null) {
            pool.reset(e.slot);
        } else {
            pool.load(e.slot, s.state);
            e.hidden = s.hidden;
            e.tokens = s.tokens;
            e.snapshotTokens = s.tokens;
            metrics.snapshotsRead.inc();
            metrics.stateBytesRead.inc(snapshotBytes.serializedBytes(s.hidden));
        }
        Iterable<int[]> runs = tokenLog.get();
        int[] log = concat(runs);
        metrics.stateBytesRead.inc(serializedBytes(runs));
        metrics.stateReadNanos.inc(System.nanoTime() - readStart);
        return log;
    }

    /** The runs of a token log in order, as one array (a list state gives null or nothing for an empty log). */
    static int[] concat(Iterable<int[]> runs) {
        if (runs == null) {
            return new int[0];
        }
        int n = 0;
        for (int[] r : runs) {
            n += r.length;
        }
        int[] all = new int[n];
        int at = 0;
        for (int[] r : runs) {
            System.arraycopy(r, 0, all, at, r.length);
            at += r.length;
        }
        return all;
    }

    /** The bytes the token log's runs take in Flink state, for the state I/O metrics. */
    private static long serializedBytes(Iterable<int[]> runs) {
        long bytes = 0;
        if (runs != null) {
            for (int[] r : runs) {
                bytes += TokenRunSerializer.serializedBytes(r);
            }
        }
        return bytes;
    }

    /**
     * Rebuilds cold keys: advances each one's snapshot (already in its slot) by its token log, all keys in one
     * engine call. Their Flink state already holds these tokens, so they are not dirty afterwards.
     */
    void replay(List<HotStates.Entry> keys, List<int[]> logs) {
        if (keys.isEmpty()) {
            return;
        }
        long start = System.nanoTime();
        int[] slots = new int[keys.size()];
        long tokens = 0;
        for (int i = 0; i < slots.length; i++) {
            slots[i] = keys.get(i).slot;
            tokens += logs.get(i).length;
        }
        float[][] hidden = pool.advance(slots, logs.toArray(int[][]::new));
        for (int i = 0; i < slots.length; i++) {
            HotStates.Entry e = keys.get(i);
            e.hidden = hidden[i];
            e.tokens += logs.get(i).length;
        }
        metrics.statesReplayed.inc(keys.size());
        metrics.replayTokens.inc(tokens);
        metrics.replayNanos.inc(System.nanoTime() - start);
    }

    /**
     * Brings the key's Flink state up to its hot slot: a new snapshot (a fresh state object: the heap backend keeps
     * what it is given) replacing snapshot and log, once the tokens since the last snapshot reach K; else only the
     * tail appended to the log.
     */
    void writeBack(HotStates.Entry e) throws Exception {
        long start = System.nanoTime();
        currentKey.accept(e.key);
        if (e.sinceSnapshot() >= snapshotTokens) {
            RwkvState state = model.newState();
            pool.store(e.slot, state);
            modelState.update(new KeyModelState(state, e.hidden, e.tokens));
            metrics.stateBytesWritten.inc(snapshotBytes.serializedBytes(e.hidden));
            tokenLog.clear();
            e.snapshotted();
            metrics.snapshotsWritten.inc();
        } else {
            int[] tail = e.takeTail();
            if (tail.length > 0) {
                tokenLog.add(tail);
                metrics.logTokens.inc(tail.length);
                metrics.stateBytesWritten.inc(TokenRunSerializer.serializedBytes(tail));
            }
        }
        metrics.stateWriteNanos.inc(System.nanoTime() - start);
    }

    /** Removes an ended key's snapshot and log. */
    void clear(String key) {
        currentKey.accept(key);
        modelState.clear();
        tokenLog.clear();
    }
}
