package dev.rwkvflink.jobs.bench;

import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Metric;
import org.apache.flink.metrics.MetricConfig;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.metrics.reporter.MetricReporter;
import org.apache.flink.metrics.reporter.MetricReporterFactory;

/**
 * A Flink metric reporter that keeps the RWKV operator's metrics (group {@code rwkv}) of the jobs running in this
 * JVM in memory, for a benchmark that runs its jobs on a MiniCluster in the same JVM: configured as
 * {@code metrics.reporter.capture.factory.class: dev.rwkvflink.jobs.bench.CapturedMetrics$Factory} (found through
 * META-INF/services). {@link #sum} adds a counter up over the operator's subtasks.
 */
public final class CapturedMetrics implements MetricReporter {
    /** The reporter's configuration key prefix to put into a Flink configuration. */
    public static final String CONFIG_KEY = "metrics.reporter.capture.factory.class";

    private static final Map<String, Metric> METRICS = new ConcurrentHashMap<>();

    /** Sum of the counters called {@code name} in group {@code rwkv} over all subtasks now registered. */
    public static long sum(String name) {
        long total = 0;
        for (Map.Entry<String, Metric> e : METRICS.entrySet()) {
            if (e.getKey().endsWith(".rwkv." + name) && e.getValue() instanceof Counter c) {
                total += c.getCount();
            }
        }
        return total;
    }

    /** Forgets everything (between jobs). */
    public static void clear() {
        METRICS.clear();
    }

    @Override
    public void open(MetricConfig config) {}

    @Override
    public void close() {}

    @Override
    public void notifyOfAddedMetric(Metric metric, String name, MetricGroup group) {
        String id = group.getMetricIdentifier(name);
        if (id.contains(".rwkv.")) {
            METRICS.put(id, metric);
        }
    }

    @Override
    public void notifyOfRemovedMetric(Metric metric, String name, MetricGroup group) {
        // kept: a benchmark reads the totals after the job's tasks ended
    }

    /** Creates the reporter (Flink instantiates it from the configuration). */
    public static final class Factory implements MetricReporterFactory {
        @Override
        public MetricReporter createMetricReporter(Properties properties) {
            return new CapturedMetrics();
        }
    }
}
