package dev.rwkvflink.operator;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;

/**
 * Collects a job's records into a named queue of this JVM (the MiniCluster runs in the test JVM), for tests and
 * benchmarks that read them after, or while, the job runs.
 */
final class QueueSink<T> implements Sink<T> {
    private static final Map<String, ConcurrentLinkedQueue<Object>> QUEUES = new ConcurrentHashMap<>();

    private final String name;

    QueueSink(String name) {
        this.name = name;
    }

    /** The queue called {@code name} (created empty on first use). */
    @SuppressWarnings("unchecked")
    static <T> ConcurrentLinkedQueue<T> queue(String name) {
        return (ConcurrentLinkedQueue<T>) QUEUES.computeIfAbsent(name, n -> new ConcurrentLinkedQueue<>());
    }

    @Override
    public SinkWriter<T> createWriter(WriterInitContext context) {
        ConcurrentLinkedQueue<T> target = queue(name);
        return new SinkWriter<>() {
            @Override
            public void write(T element, Context ctx) {
                target.add(element);
            }

            @Override
            public void flush(boolean endOfInput) {}

            @Override
            public void close() {}
        };
    }
}
