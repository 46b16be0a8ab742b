package dev.rwkvflink.operator;

import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.metrics.MeterView;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram;

/**
 * The operator's Flink metrics, under the group {@code rwkv}: batchKeys, batchTokens and batchLatencyMs
 * (histograms), tokens and tokensPerSecond, statesHeld and stateBytes, bufferedChunks (out of order), duplicates,
 * deadLetters, embeddings, backend (a gauge with the engine backend's name), hotStates (keys whose state stays
 * where the model runs); the token log: snapshotsRead and snapshotsWritten (whole RWKV states moved from and to
 * Flink state), logTokens (token ids appended to token logs instead), statesReplayed and replayTokens (cold keys
 * rebuilt from snapshot + log, and the tokens that took); state I/O in bytes (the RWKV states' entries, snapshots and
 * token-log runs, as serialized; progress records of tens of bytes are not counted): stateBytesRead and
 * stateBytesWritten (cumulative counters), checkpointStateBytesRead and checkpointStateBytesWritten (gauges: the
 * bytes between the last two checkpoint barriers, i.e. what the last checkpoint's increment carried); and where the time goes (cumulative nanoseconds,
 * counters): engineNanos (the engine advancing keys by their new tokens), replayNanos (the engine rebuilding cold
 * keys), stateReadNanos (snapshots and logs read from Flink state into the engine), stateWriteNanos (write-backs
 * to Flink state: at barriers and on eviction), emitNanos (pooling, heads and handing records on), barrierNanos
 * (the whole pre-barrier flush and write-back); latency, as histograms of each emitted embedding:
 * arrivalToEmitMs (from when the operator queued the tokens of the chunk that completed it, to its emission:
 * batching and the engine; a chunk that waited for a missing predecessor counts from when the gap filled) and
 * eventTimeToEmitMs (from the newest event time it includes, the producer's stamp, to
 * its emission; on the operator's processing-time clock, so skew between the machines counts; negative values are
 * counted as 0). Under exactly-once, consumers see an embedding after the next checkpoint on top of this.
 */
final class OperatorMetrics {
    private static final int WINDOW = 1024;

    final Counter tokens;
    /** Open documents and buffered chunks (statesHeld, bufferedChunks), per key group. */
    final DocumentCounts documents;

    final Counter duplicates;
    final Counter deadLetters;
    final Counter emitted;
    final Counter snapshotsRead;
    final Counter snapshotsWritten;
    final Counter logTokens;
    final Counter stateBytesRead;
    final Counter stateBytesWritten;
    private volatile long checkpointBytesRead;
    private volatile long checkpointBytesWritten;
    private long bytesReadAtBarrier;
    private long bytesWrittenAtBarrier;
    final Counter statesReplayed;
    final Counter replayTokens;
    final Counter engineNanos;
    final Counter replayNanos;
    final Counter stateReadNanos;
    final Counter stateWriteNanos;
    final Counter emitNanos;
    final Counter barrierNanos;
    private final Histogram batchKeys;
    private final Histogram batchTokens;
    private final Histogram batchLatencyMs;
    private final Histogram arrivalToEmitMs;
    private final Histogram eventTimeToEmitMs;

    private final MetricGroup group;

    OperatorMetrics(MetricGroup group, String backend, long bytesPerState, DocumentCounts documents) {
        this.group = group;
        this.documents = documents;
        tokens = group.counter("tokens");
        group.meter("tokensPerSecond", new MeterView(tokens));
        group.gauge("statesHeld", (Gauge<Long>) documents::openDocuments);
        group.gauge("stateBytes", (Gauge<Long>) () -> documents.openDocuments() * bytesPerState);
        group.gauge("bufferedChunks", (Gauge<Long>) documents::bufferedChunks);
        duplicates = group.counter("duplicates");
        deadLetters = group.counter("deadLetters");
        emitted = group.counter("embeddings");
        group.gauge("backend", (Gauge<String>) () -> backend);
        snapshotsRead = group.counter("snapshotsRead");
        snapshotsWritten = group.counter("snapshotsWritten");
        logTokens = group.counter("logTokens");
        stateBytesRead = group.counter("stateBytesRead");
        stateBytesWritten = group.counter("stateBytesWritten");
        group.gauge("checkpointStateBytesRead", (Gauge<Long>) () -> checkpointBytesRead);
        group.gauge("checkpointStateBytesWritten", (Gauge<Long>) () -> checkpointBytesWritten);
        statesReplayed = group.counter("statesReplayed");
        replayTokens = group.counter("replayTokens");
        engineNanos = group.counter("engineNanos");
        replayNanos = group.counter("replayNanos");
        stateReadNanos = group.counter("stateReadNanos");
        stateWriteNanos = group.counter("stateWriteNanos");
        emitNanos = group.counter("emitNanos");
        barrierNanos = group.counter("barrierNanos");
        batchKeys = group.histogram("batchKeys", new DescriptiveStatisticsHistogram(WINDOW));
        batchTokens = group.histogram("batchTokens", new DescriptiveStatisticsHistogram(WINDOW));
        batchLatencyMs = group.histogram("batchLatencyMs", new DescriptiveStatisticsHistogram(WINDOW));
        arrivalToEmitMs = group.histogram("arrivalToEmitMs", new DescriptiveStatisticsHistogram(WINDOW));
        eventTimeToEmitMs = group.histogram("eventTimeToEmitMs", new DescriptiveStatisticsHistogram(WINDOW));
    }

    /** An embedding emitted at processing time {@code now}: its chunk arrived at {@code arrival}. */
    void recordEmission(long now, long arrival, long eventTime) {
        emitted.inc();
        arrivalToEmitMs.update(Math.max(0, now - arrival));
        if (eventTime > 0) {
            eventTimeToEmitMs.update(Math.max(0, now - eventTime));
        }
    }

    /**
     * A checkpoint barrier: the RWKV-state bytes read and written since the previous one become the
     * checkpointStateBytes gauges (what the checkpoint's increment carries, and what building it cost in reads).
     */
    void checkpoint() {
        checkpointBytesRead = stateBytesRead.getCount() - bytesReadAtBarrier;
        checkpointBytesWritten = stateBytesWritten.getCount() - bytesWrittenAtBarrier;
        bytesReadAtBarrier = stateBytesRead.getCount();
        bytesWrittenAtBarrier = stateBytesWritten.getCount();
    }

    /** RWKV-state bytes read and written between the last two barriers (for tests). */
    long[] checkpointStateBytes() {
        return new long[] {checkpointBytesRead, checkpointBytesWritten};
    }

    /** The latency histograms (for tests). */
    Histogram arrivalToEmitMs() {
        return arrivalToEmitMs;
    }

    Histogram eventTimeToEmitMs() {
        return eventTimeToEmitMs;
    }

    void hotStates(Gauge<Integer> held) {
        // registered once the hot states exist (after the model is loaded)
        this.group.gauge("hotStates", held);
    }

    /** Batches run so far (engine calls of whole batches). */
    long batches() {
        return batchKeys.getCount();
    }

    void batch(int keys, long tokenCount, long nanos) {
        batchKeys.update(keys);
        batchTokens.update(tokenCount);
        batchLatencyMs.update(nanos / 1_000_000);
        tokens.inc(tokenCount);
    }
}
