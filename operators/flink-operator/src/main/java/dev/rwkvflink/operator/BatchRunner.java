package dev.rwkvflink.operator;

import dev.rwkvflink.engine.state.RwkvState;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Runs one group of a batch's keys (at most the hot capacity) through the engine: admits each key to a hot slot
 * (rebuilding a cold key from its snapshot and token log, all such keys in one engine call), advances the keys
 * round by round (round r: segment r of every key that has one, in one engine call), makes each due emission (an
 * embedding, or a dead letter for a document with no tokens), and retires keys whose document ended. The operator
 * owns the batch, its timing and the key context; this class owns what happens to the states.
 */
final class BatchRunner {
    /** Where a run's results go: the operator's output, side output and clock. */
    interface Emissions {
        void embedding(EmbeddingRecord r);

        void rejected(TextChunk chunk, String reason);

        /** Processing time now (milliseconds). */
        long now();
    }

    private final HotStates hot;
    private final KeyStateStore store;
    private final OperatorMetrics metrics;
    private final SharedModels.LoadedModel loaded;
    private final String pooling;
    private final String fingerprintHex;
    private final Emissions out;
    /** Receives a hot state for pooling that reads the state (allocated on first use). */
    private RwkvState poolingScratch;

    BatchRunner(
            HotStates hot,
            KeyStateStore store,
            OperatorMetrics metrics,
            SharedModels.LoadedModel loaded,
            String pooling,
            Emissions out) {
        this.hot = hot;
        this.store = store;
        this.metrics = metrics;
        this.loaded = loaded;
        this.pooling = pooling;
        this.fingerprintHex = loaded.model().fingerprint().hex();
        this.out = out;
    }

    /** One group of keys (at most the hot capacity): admit, advance round by round, emit, retire ended keys. */
    long run(List<Batch.KeyWork> works) throws Exception {
        Set<String> pinned = new HashSet<>();
        for (Batch.KeyWork w : works) {
            pinned.add(w.key);
        }
        List<HotStates.Entry> rebuilt = new ArrayList<>();
        List<int[]> replays = new ArrayList<>();
        for (Batch.KeyWork w : works) {
            HotStates.Entry e = hot.get(w.key);
            if (e == null) {
                e = hot.admit(w.key, pinned, store::writeBack);
                int[] log = store.load(e);
                if (log.length > 0) {
                    rebuilt.add(e);
                    replays.add(log);
                }
            }
            w.hot = e;
        }
        store.replay(rebuilt, replays);
        long tokens = 0;
        for (int round = 0; ; round++) {
            List<Batch.KeyWork> active = new ArrayList<>();
            for (Batch.KeyWork w : works) {
                if (round < w.segments.size()) {
                    active.add(w);
                }
            }
            if (active.isEmpty()) {
                break;
            }
            long engineStart = System.nanoTime();
            tokens += advance(active, round);
            long emitStart = System.nanoTime();
            metrics.engineNanos.inc(emitStart - engineStart);
            for (Batch.KeyWork w : active) {
                Batch.Segment seg = w.segments.get(round);
                if (seg.emit != null) {
                    emit(w, seg);
                }
            }
            metrics.emitNanos.inc(System.nanoTime() - emitStart);
        }
        for (Batch.KeyWork w : works) {
            if (w.finishes()) {
                hot.drop(w.key);
                store.clear(w.key);
                metrics.documents.documentEnded(w.key);
            }
        }
        return tokens;
    }

    /** One engine call for segment {@code round} of every active key. */
    private long advance(List<Batch.KeyWork> active, int round) {
        List<int[]> tokens = new ArrayList<>();
        List<Batch.KeyWork> owners = new ArrayList<>();
        long count = 0;
        for (Batch.KeyWork w : active) {
            Batch.Segment seg = w.segments.get(round);
            if (seg.tokens > 0) {
                tokens.add(seg.tokenArray());
                owners.add(w);
                count += seg.tokens;
            }
        }
        if (!owners.isEmpty()) {
            int[] slots = new int[owners.size()];
            for (int i = 0; i < slots.length; i++) {
                slots[i] = owners.get(i).hot.slot;
            }
            float[][] hidden = hot.slots().advance(slots, tokens.toArray(int[][]::new));
            for (int i = 0; i < owners.size(); i++) {
                HotStates.Entry e = owners.get(i).hot;
                e.hidden = hidden[i];
                e.applied(tokens.get(i));
            }
        }
        return count;
    }

    private void emit(Batch.KeyWork w, Batch.Segment seg) {
        HotStates.Entry s = w.hot;
        if (s.hidden == null) {
            if (seg.emit != EmbeddingRecord.Reason.PROGRESS) {
                TextChunk last =
                        w.lastChunk != null ? w.lastChunk : new TextChunk(w.key, seg.seq, "", true, seg.eventTime);
                out.rejected(last, "document '" + w.key + "' has no tokens: nothing to embed");
            }
            return;
        }
        EmbeddingRecord r = new EmbeddingRecord();
        r.key = w.key;
        r.seq = seg.seq;
        r.tokens = s.tokens;
        if (poolingScratch == null) {
            poolingScratch = loaded.model().newState();
        }
        if (loaded.embedder().pooling().usesState()) {
            hot.slots().store(s.slot, poolingScratch);
        }
        r.vector = loaded.embedder().embed(s.hidden, poolingScratch);
        r.pooling = pooling;
        r.reason = seg.emit;
        r.model = fingerprintHex;
        r.eventTime = seg.eventTime;
        if (loaded.head() != null) {
            r.probabilities = loaded.head().probabilities(r.vector);
            r.label = loaded.head().label(r.probabilities);
        }
        out.embedding(r);
        metrics.recordEmission(out.now(), seg.queuedAt, seg.eventTime);
    }
}
