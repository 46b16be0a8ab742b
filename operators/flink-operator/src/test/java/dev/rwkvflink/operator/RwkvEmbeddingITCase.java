package dev.rwkvflink.operator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.connector.source.lib.NumberSequenceSource;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * End to end on Flink's MiniCluster (2 slots, real checkpoints to a file system, heap and RocksDB state
 * backends): 2,000 documents of random text, split at random places, interleaved across keys, locally shuffled,
 * some chunks duplicated; a failure is injected once after the first completed checkpoint, so the job restarts
 * from real checkpointed RWKV states. Every final embedding must equal, bit for bit, the one-shot engine embedding
 * of its document, and every document must get one.
 *
 * <p>The injected failure is an exception thrown by a map function: the one fault here that cannot be caused
 * otherwise inside a test JVM.
 */
class RwkvEmbeddingITCase {
    private static final int DOCUMENTS = 2000;
    static final String[] WORDS = {
        "stream",
        "state",
        "token",
        "flink",
        "kafka",
        "rwkv",
        "recurrent",
        "model",
        "checkpoint",
        "embedding",
        "the",
        "a",
        "of",
        "and",
        "to",
        "in",
        "is",
        "for",
        "with",
        "données",
        "状態",
        "🙂"
    };

    @RegisterExtension
    static final MiniClusterExtension CLUSTER = new MiniClusterExtension(new MiniClusterResourceConfiguration.Builder()
            .setNumberTaskManagers(1)
            .setNumberSlotsPerTaskManager(2)
            .build());

    static final ConcurrentLinkedQueue<EmbeddingRecord> RESULTS = QueueSink.queue("results");
    static final ConcurrentLinkedQueue<RejectedChunk> REJECTED = QueueSink.queue("rejected");
    static final AtomicBoolean FAILED = new AtomicBoolean();
    static final AtomicLong CHECKPOINTS = new AtomicLong();

    private static OneShot reference;
    private static Map<String, String> texts;
    private static TextChunk[] input;
    private static final Map<String, float[]> expected = new HashMap<>();

    @BeforeAll
    static void prepare() throws Exception {
        reference = new OneShot(OneShot.tinyModel("FP32"), "hidden");
        Random rnd = new Random(2026);
        texts = new HashMap<>();
        List<List<TextChunk>> blocks = new ArrayList<>();
        for (int d = 0; d < DOCUMENTS; d++) {
            StringBuilder sb = new StringBuilder();
            int words = 3 + rnd.nextInt(12);
            for (int w = 0; w < words; w++) {
                sb.append(WORDS[rnd.nextInt(WORDS.length)]).append(rnd.nextInt(8) == 0 ? ".\n" : " ");
            }
            String key = "doc-" + d;
            texts.put(key, sb.toString());
            if (d % 50 == 0) {
                blocks.add(new ArrayList<>());
            }
            blocks.getLast().addAll(RwkvEmbeddingOperatorTest.chunks(key, sb.toString(), rnd, 12));
        }
        List<TextChunk> all = new ArrayList<>();
        for (List<TextChunk> block : blocks) { // 50 documents in flight at a time, interleaved and out of order
            List<TextChunk> dups = new ArrayList<>();
            for (int i = 0; i < block.size() / 20; i++) {
                dups.add(block.get(rnd.nextInt(block.size())));
            }
            block.addAll(dups);
            Collections.shuffle(block, rnd);
            all.addAll(block);
        }
        input = all.toArray(TextChunk[]::new);
    }

    @AfterAll
    static void close() {
        reference.close();
    }

    @ParameterizedTest
    @ValueSource(strings = {"hashmap", "rocksdb"})
    void everyDocumentEmbedsAsInOneCallDespiteAFailure(String stateBackend, @TempDir Path checkpoints)
            throws Exception {
        RESULTS.clear();
        REJECTED.clear();
        FAILED.set(false);
        CHECKPOINTS.set(0);
        Configuration conf = checkpointsAndRestarts(stateBackend, checkpoints, Duration.ofMillis(200));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);
        env.setMaxParallelism(128);

        TextChunk[] chunks = input;
        DataStream<TextChunk> source = env.fromSource(
                        new NumberSequenceSource(0, chunks.length - 1), WatermarkStrategy.noWatermarks(), "chunks")
                .map(new ThrottledFailOnce(chunks))
                .name("chunks (fails once)");
        RwkvOperatorConfig config = new RwkvOperatorConfig()
                .model(OneShot.tinyModel("FP32"))
                .batch(128, 8192, 20)
                .idleTimeout(0);
        SingleOutputStreamOperator<EmbeddingRecord> embeddings = RwkvStreams.embed(source, config);
        embeddings.sinkTo(new QueueSink<>("results"));
        embeddings.getSideOutput(RwkvStreams.REJECTED).sinkTo(new QueueSink<>("rejected"));
        env.execute("rwkv ITCase " + stateBackend);

        assertTrue(FAILED.get(), "the failure was injected (checkpoints completed: " + CHECKPOINTS.get() + ")");
        assertTrue(REJECTED.isEmpty(), "rejected: " + REJECTED);
        Map<String, Integer> seen = new HashMap<>();
        for (EmbeddingRecord r : RESULTS) {
            assertEquals(EmbeddingRecord.Reason.LAST, r.reason);
            assertArrayEquals(expected.computeIfAbsent(r.key, k -> reference.embed(texts.get(k))), r.vector, 0f, r.key);
            seen.merge(r.key, 1, Integer::sum);
        }
        assertEquals(DOCUMENTS, seen.size(), "every document embedded");
        long replayed = seen.values().stream().filter(n -> n > 1).count();
        System.out.printf(
                "%s: %d embeddings for %d documents (%d re-emitted after the restart), %d checkpoints%n",
                stateBackend, RESULTS.size(), seen.size(), replayed, CHECKPOINTS.get());
    }

    /** Checkpoints every {@code interval} to {@code directory} on {@code stateBackend}; 3 restarts 200 ms apart. */
    static Configuration checkpointsAndRestarts(String stateBackend, Path directory, Duration interval) {
        Configuration conf = new Configuration();
        conf.set(StateBackendOptions.STATE_BACKEND, stateBackend);
        conf.set(CheckpointingOptions.CHECKPOINT_STORAGE, "filesystem");
        conf.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, directory.toUri().toString());
        conf.set(CheckpointingOptions.CHECKPOINTING_INTERVAL, interval);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 3);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ofMillis(200));
        return conf;
    }

    /** Maps a sequence number to its chunk, slowly enough for checkpoints to complete, and fails once. */
    static final class ThrottledFailOnce extends RichMapFunction<Long, TextChunk> implements CheckpointListener {
        private final TextChunk[] chunks;
        private boolean armed;

        ThrottledFailOnce(TextChunk[] chunks) {
            this.chunks = chunks;
        }

        @Override
        public TextChunk map(Long i) throws Exception {
            if (i % 3 != 0) {
                Thread.sleep(1);
            }
            if (armed && !FAILED.getAndSet(true)) {
                throw new IllegalStateException("injected failure after a completed checkpoint");
            }
            return chunks[(int) (long) i];
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            CHECKPOINTS.incrementAndGet();
            if (checkpointId >= 1) {
                armed = true;
            }
        }
    }
}
