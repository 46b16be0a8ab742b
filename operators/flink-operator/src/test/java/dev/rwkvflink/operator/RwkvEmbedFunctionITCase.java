package dev.rwkvflink.operator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.lib.NumberSequenceSource;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.metrics.Counter;
import org.apache.flink.runtime.testutils.InMemoryReporter;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.Schema;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.apache.flink.util.CloseableIterator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The SQL entry on Flink's MiniCluster: {@code RWKV_EMBED(input => TABLE chunks PARTITION BY doc)} over documents
 * of random text (seed 2027), split at random places, shuffled across and within documents, some chunks repeated,
 * with a failure injected behind the function after the first completed checkpoint (in front of it, the source
 * would be done before then: the function's input queues take all chunks). Every document's final embedding must equal, bit
 * for bit, the one-shot engine embedding of its whole text, and every document must get exactly one (the collect
 * sink delivers what the restored checkpoint acknowledged once). States are forced out of memory between rows (one
 * live state per instance) and snapshot every 16 tokens, so rows are served by rebuilds from snapshot + token log.
 */
class RwkvEmbedFunctionITCase {
    private static final int DOCUMENTS = 400;

    /** Keeps the jobs' metrics (the function's rwkv group) for the tests to read after the job. */
    private static final InMemoryReporter METRICS = InMemoryReporter.createWithRetainedMetrics();

    @RegisterExtension
    static final MiniClusterExtension CLUSTER = new MiniClusterExtension(new MiniClusterResourceConfiguration.Builder()
            .setConfiguration(METRICS.addToConfiguration(new Configuration()))
            .setNumberTaskManagers(1)
            .setNumberSlotsPerTaskManager(2)
            .build());

    private static OneShot reference;
    private static final Map<String, String> texts = new HashMap<>();
    private static TextChunk[] input;

    @BeforeAll
    static void prepare() throws Exception {
        reference = new OneShot(OneShot.tinyModel("FP32"), "hidden");
        Random rnd = new Random(2027);
        List<TextChunk> all = new ArrayList<>();
        List<TextChunk> block = new ArrayList<>();
        for (int d = 0; d < DOCUMENTS; d++) {
            StringBuilder sb = new StringBuilder();
            int words = 3 + rnd.nextInt(12);
            for (int w = 0; w < words; w++) {
                sb.append(RwkvEmbeddingITCase.WORDS[rnd.nextInt(RwkvEmbeddingITCase.WORDS.length)])
                        .append(rnd.nextInt(8) == 0 ? ".\n" : " ");
            }
            texts.put("doc-" + d, sb.toString());
            block.addAll(RwkvEmbeddingOperatorTest.chunks("doc-" + d, sb.toString(), rnd, 12));
            if (d % 30 == 29
                    || d == DOCUMENTS - 1) { // 30 documents in flight at a time, interleaved, out of order, 5% repeated
                for (int i = 0, n = block.size() / 20; i < n; i++) {
                    block.add(block.get(rnd.nextInt(block.size())));
                }
                Collections.shuffle(block, rnd);
                all.addAll(block);
                block.clear();
            }
        }
        input = all.toArray(TextChunk[]::new);
    }

    @ParameterizedTest
    @ValueSource(strings = {"hashmap", "rocksdb"})
    void everyDocumentEmbedsAsInOneCallDespiteAFailure(String stateBackend, @TempDir Path checkpoints)
            throws Exception {
        RwkvEmbeddingITCase.FAILED.set(false);
        RwkvEmbeddingITCase.CHECKPOINTS.set(0);
        Configuration conf =
                RwkvEmbeddingITCase.checkpointsAndRestarts(stateBackend, checkpoints, Duration.ofMillis(100));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);
        StreamTableEnvironment tEnv = StreamTableEnvironment.create(env);

        TextChunk[] chunks = input;
        DataStream<Row> rows = env.fromSource(
                        new NumberSequenceSource(0, chunks.length - 1), WatermarkStrategy.noWatermarks(), "chunks")
                .map(i -> {
                    Thread.sleep(2); // slow enough for checkpoints to complete while chunks flow
                    TextChunk c = chunks[(int) (long) i];
                    return Row.of(c.key, c.seq, c.text, c.last);
                })
                .returns(Types.ROW_NAMED(
                        new String[] {"doc", "seq", "text", "last"},
                        Types.STRING,
                        Types.LONG,
                        Types.STRING,
                        Types.BOOLEAN));
        tEnv.createTemporaryView("chunks", tEnv.fromDataStream(rows));
        RwkvOperatorConfig config = new RwkvOperatorConfig()
                .model(OneShot.tinyModel("FP32"))
                .hotStateBytes(1)
                .snapshotTokens(16);
        tEnv.createTemporarySystemFunction("RWKV_EMBED", new RwkvEmbedFunction(config));

        Map<String, Integer> seen = new HashMap<>();
        DataStream<Row> embeddings =
                tEnv.toDataStream(tEnv.sqlQuery("SELECT * FROM RWKV_EMBED(input => TABLE chunks PARTITION BY doc)"));
        try (CloseableIterator<Row> out =
                embeddings.map(new FailOnce()).returns(embeddings.getType()).executeAndCollect()) {
            while (out.hasNext()) {
                Row r = out.next();
                String doc = (String) r.getField("doc");
                assertNull(r.getField("error"), doc + ": " + r);
                assertEquals("LAST", r.getField("reason"), r.toString());
                assertArrayEquals(reference.embed(texts.get(doc)), unboxed((Float[]) r.getField("embedding")), 0f, doc);
                seen.merge(doc, 1, Integer::sum);
            }
        }
        assertTrue(
                RwkvEmbeddingITCase.FAILED.get(),
                "the failure was injected (checkpoints completed: " + RwkvEmbeddingITCase.CHECKPOINTS.get() + ")");
        assertEquals(DOCUMENTS, seen.size(), "every document embedded");
        assertEquals(
                List.of(),
                seen.entrySet().stream().filter(e -> e.getValue() != 1).toList(),
                "exactly once");
    }

    /**
     * From SQL alone, as the SQL client would run it: the function created from its class name, the model from the
     * job parameters; chunks that cannot be applied come out as REJECTED rows with the reason, and an empty
     * document as a REJECTED row too, next to a normal embedding.
     */
    @Test
    void fromSqlWithDeadLettersAsRows() throws Exception {
        TableEnvironment tEnv = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        tEnv.getConfig()
                .set(
                        PipelineOptions.GLOBAL_JOB_PARAMETERS,
                        Map.of(
                                RwkvOptions.MODEL.key(),
                                OneShot.tinyModel("FP32"),
                                RwkvOptions.POOLING.key(),
                                "hidden"));
        tEnv.executeSql("CREATE TEMPORARY FUNCTION RWKV_EMBED AS '" + RwkvEmbedFunction.class.getName() + "'");
        tEnv.executeSql("CREATE TEMPORARY VIEW chunks AS SELECT * FROM (VALUES "
                + "('a', CAST(1 AS BIGINT), 'world', TRUE), "
                + "('a', CAST(0 AS BIGINT), 'hello ', FALSE), "
                + "('a', CAST(0 AS BIGINT), 'hello ', FALSE), " // a repeat: dropped
                + "('a', CAST(2 AS BIGINT), '!', FALSE), " // after the end
                + "('b', CAST(-1 AS BIGINT), 'x', FALSE), " // invalid seq
                + "('c', CAST(0 AS BIGINT), '', TRUE)" // nothing to embed
                + ") AS t(doc, seq, text, last)");
        List<Row> rows = new ArrayList<>();
        TableResult result = tEnv.executeSql(
                "SELECT doc, seq, tokens, embedding, reason, error FROM RWKV_EMBED(input => TABLE chunks PARTITION BY doc)");
        try (CloseableIterator<Row> it = result.collect()) {
            it.forEachRemaining(rows::add);
        }
        JobID job = result.getJobClient().orElseThrow().getJobID();
        assertEquals(1, counter(job, "embeddings"), "metric embeddings");
        assertEquals(3, counter(job, "deadLetters"), "metric deadLetters: after the end, seq -1, no tokens");
        assertEquals(1, counter(job, "duplicates"), "metric duplicates");
        assertEquals(11, counter(job, "tokens"), "metric tokens: 'hello world', a byte a token");
        rows.sort((x, y) -> x.toString().compareTo(y.toString()));
        assertEquals(4, rows.size(), rows.toString());
        Row a = rows.get(0);
        assertEquals("LAST", a.getField(4));
        assertEquals(1L, a.getField(1));
        assertArrayEquals(reference.embed("hello world"), unboxed((Float[]) a.getField(3)), 0f);
        assertEquals((long) reference.tokenizer.encodeBytes("hello world".getBytes()).length, a.getField(2));
        assertEquals(
                Row.of(
                        "a",
                        2L,
                        null,
                        null,
                        "REJECTED",
                        "document 'a' already ended before chunk 2 (its last chunk was 1)"),
                rows.get(1));
        assertEquals(Row.of("b", -1L, null, null, "REJECTED", "negative seq -1"), rows.get(2));
        assertEquals(
                Row.of("c", 0L, 0L, null, "REJECTED", "document 'c' has no tokens: nothing to embed"), rows.get(3));
    }

    /**
     * With event time ({@code on_time}): when the watermark passes a document's newest chunk by the idle timeout,
     * the document ends with what it has (an IDLE embedding), and chunks still waiting for a predecessor are dead
     * letters; at the end of a bounded input the watermark passes everything.
     */
    @Test
    void withEventTimeAnIdleDocumentEndsWithWhatItHas() throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        StreamTableEnvironment tEnv = StreamTableEnvironment.create(env);
        DataStream<Row> rows = env.fromData(
                        List.of(
                                Row.of("a", 0L, "hello ", false, 1_000L),
                                Row.of("b", 0L, "x y", false, 1_500L),
                                Row.of("a", 1L, "world", false, 2_000L), // a never gets a last chunk
                                Row.of("b", 1L, "z", true, 2_500L),
                                Row.of("c", 1L, "late", false, 3_000L)), // c's chunk 0 never comes
                        Types.ROW_NAMED(
                                new String[] {"doc", "seq", "text", "last", "ts"},
                                Types.STRING,
                                Types.LONG,
                                Types.STRING,
                                Types.BOOLEAN,
                                Types.LONG))
                .assignTimestampsAndWatermarks(WatermarkStrategy.<Row>forMonotonousTimestamps()
                        .withTimestampAssigner((r, t) -> (Long) r.getField("ts")));
        tEnv.createTemporaryView(
                "chunks",
                tEnv.fromDataStream(
                        rows,
                        Schema.newBuilder()
                                .columnByMetadata("rowtime", "TIMESTAMP_LTZ(3)")
                                .watermark("rowtime", "SOURCE_WATERMARK()")
                                .build()));
        tEnv.createTemporarySystemFunction(
                "RWKV_EMBED",
                new RwkvEmbedFunction(new RwkvOperatorConfig()
                        .model(OneShot.tinyModel("FP32"))
                        .idleTimeout(10_000)));
        List<Row> out = new ArrayList<>();
        try (CloseableIterator<Row> it = tEnv.executeSql("SELECT doc, seq, tokens, embedding, reason, error "
                        + "FROM RWKV_EMBED(input => TABLE chunks PARTITION BY doc, on_time => DESCRIPTOR(rowtime))")
                .collect()) {
            it.forEachRemaining(out::add);
        }
        out.sort((x, y) -> x.toString().compareTo(y.toString()));
        assertEquals(4, out.size(), out.toString());
        assertEquals("IDLE", out.get(0).getField(4), out.get(0).toString());
        assertEquals(1L, out.get(0).getField(1));
        assertArrayEquals(
                reference.embed("hello world"), unboxed((Float[]) out.get(0).getField(3)), 0f);
        assertEquals("LAST", out.get(1).getField(4));
        assertArrayEquals(reference.embed("x yz"), unboxed((Float[]) out.get(1).getField(3)), 0f);
        assertEquals(
                Row.of("c", -1L, 0L, null, "REJECTED", "document 'c' has no tokens: nothing to embed"), out.get(2));
        assertEquals(
                Row.of(
                        "c",
                        1L,
                        null,
                        null,
                        "REJECTED",
                        "idle timeout: chunk 0 never arrived, so chunk 1 could not be applied"),
                out.get(3));
    }

    /** Passes rows through; throws once, at the first row after a checkpoint completed. */
    static final class FailOnce extends RichMapFunction<Row, Row> implements CheckpointListener {
        private boolean armed;

        @Override
        public Row map(Row r) {
            if (armed && !RwkvEmbeddingITCase.FAILED.getAndSet(true)) {
                throw new IllegalStateException("injected failure after a completed checkpoint");
            }
            return r;
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            RwkvEmbeddingITCase.CHECKPOINTS.incrementAndGet();
            armed = true;
        }
    }

    /** The sum of counter {@code rwkv.<name>} over the job's subtasks. */
    private static long counter(JobID job, String name) {
        long sum = 0;
        for (var e : METRICS.findMetrics(job, "rwkv." + name).entrySet()) {
            if (e.getKey().endsWith(".rwkv." + name) && e.getValue() instanceof Counter c) {
                sum += c.getCount();
            }
        }
        return sum;
    }

    private static float[] unboxed(Float[] v) {
        float[] f = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            f[i] = v[i];
        }
        return f;
    }

    @AfterAll
    static void close() {
        reference.close();
    }
}
