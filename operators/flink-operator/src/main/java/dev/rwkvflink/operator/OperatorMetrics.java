package dev.rwkvflink.operator;

import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.metrics.MeterView;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.metrics.SimpleCounter;
import org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram;

/**
 * The operator's Flink metrics, under the group {@code rwkv}: batchKeys, batchTokens and batchLatencyMs
 * (histograms), tokens and tokensPerSecond, statesHeld and stateBytes, bufferedChunks (out of order), duplicates,
 * deadLetters, embeddings, and backend (a gauge with the engine backend's name).
 */
final class OperatorMetrics {
    private static final int WINDOW = 1024;

    final Counter tokens;
    final Counter states = new SimpleCounter();
    final Counter buffered;
    final Counter duplicates;
    final Counter deadLetters;
    final Counter emitted;
    private final Histogram batchKeys;
    private final Histogram batchTokens;
    private final Histogram batchLatencyMs;

    OperatorMetrics(MetricGroup group, String backend, long bytesPerState, long statesAtStart) {
        tokens = group.counter("tokens");
        group.meter("tokensPerSecond", new MeterView(tokens));
        states.inc(statesAtStart);
        group.gauge("statesHeld", (Gauge<Long>) states::getCount);
        group.gauge("stateBytes", (Gauge<Long>) () -> states.getCount() * bytesPerState);
        buffered = group.counter("bufferedChunks");
        duplicates = group.counter("duplicates");
        deadLetters = group.counter("deadLetters");
        emitted = group.counter("embeddings");
        group.gauge("backend", (Gauge<String>) () -> backend);
        batchKeys = group.histogram("batchKeys", new DescriptiveStatisticsHistogram(WINDOW));
        batchTokens = group.histogram("batchTokens", new DescriptiveStatisticsHistogram(WINDOW));
        batchLatencyMs = group.histogram("batchLatencyMs", new DescriptiveStatisticsHistogram(WINDOW));
    }

    void batch(int keys, long tokenCount, long nanos) {
        batchKeys.update(keys);
        batchTokens.update(tokenCount);
        batchLatencyMs.update(nanos / 1_000_000);
        tokens.inc(tokenCount);
    }
}
