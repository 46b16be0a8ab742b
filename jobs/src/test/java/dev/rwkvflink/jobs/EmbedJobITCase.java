package dev.rwkvflink.jobs;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.embed.Embedder;
import dev.rwkvflink.engine.embed.LinearHead;
import dev.rwkvflink.engine.embed.Pooling;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tokenizer.Tokenizer;
import dev.rwkvflink.engine.tokenizer.Tokenizers;
import dev.rwkvflink.kafka.AvroCodec;
import dev.rwkvflink.kafka.AvroDecodingException;
import dev.rwkvflink.kafka.local.EmbeddedKafka;
import dev.rwkvflink.operator.TextChunk;
import dev.rwkvflink.schema.Classification;
import dev.rwkvflink.schema.DeadLetter;
import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.Embedding;
import dev.rwkvflink.schema.EmitReason;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.JobStatus;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.runtime.checkpoint.CheckpointStatsSnapshot;
import org.apache.flink.runtime.checkpoint.CompletedCheckpointStats;
import org.apache.flink.runtime.checkpoint.RestoredCheckpointStats;
import org.apache.flink.runtime.executiongraph.AccessExecutionGraph;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.InjectMiniCluster;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link EmbedJob} end to end on a Flink MiniCluster and a real broker: 20 documents in several chunks each,
 * produced out of order with one duplicate, plus 2 malformed records. The embeddings topic (read_committed) must
 * hold exactly one LAST embedding per document, bit for bit the engine's one-shot embedding of the whole text; the
 * dead-letter topic exactly the 2 malformed records. The same holds when the job fails once after completed
 * checkpoints and restarts from the latest one ({@link #aFailureAfterCompletedCheckpointsChangesNothing}).
 */
class EmbedJobITCase {

    private static final int DOCUMENTS = 20;

    @RegisterExtension
    static final MiniClusterExtension FLINK = new MiniClusterExtension(new MiniClusterResourceConfiguration.Builder()
            .setNumberTaskManagers(1)
            .setNumberSlotsPerTaskManager(2)
            .build());

    private static EmbeddedKafka kafka;

    @BeforeAll
    static void startKafka() {
        kafka = EmbeddedKafka.builder().start();
    }

    @AfterAll
    static void stopKafka() {
        if (kafka != null) {
            kafka.close();
        }
    }

    static Path tinyModel() {
        Path p = Path.of(
                System.getProperty("rwkv.shared.dir", "../../shared"),
                "reference",
                "rwkv-cpp-tests",
                "tiny-rwkv-7v0-834K-FP32.bin");
        Assumptions.assumeTrue(Files.isRegularFile(p), "reference model absent, skipping: " + p);
        return p;
    }

    /** Deterministic texts of different lengths, some with non-ASCII characters. */
    static Map<String, String> documents() {
        String[] words = {
            "river", "stone", "lantern", "quiet", "harbour", "north", "wind", "café", "ember", "field", "Ωmega", "salt",
            "bridge", "morning", "ink"
        };
        Random random = new Random(7);
        Map<String, String> docs = new LinkedHashMap<>();
        for (int d = 0; d < DOCUMENTS; d++) {
            StringBuilder text = new StringBuilder("Document " + d + ":");
            int n = 5 + random.nextInt(40);
            for (int i = 0; i < n; i++) {
                text.append(' ').append(words[random.nextInt(words.length)]);
            }
            docs.put("doc-" + d, text.append('.').toString());
        }
        return docs;
    }

    /** Splits a text into 1 to 4 chunks on character boundaries (never inside a surrogate pair). */
    static List<DocumentChunk> chunks(String key, String text, Random random) {
        int pieces = 1 + random.nextInt(4);
        List<DocumentChunk> out = new ArrayList<>();
        int start = 0;
        for (int i = 0; i < pieces; i++) {
            boolean last = i == pieces - 1;
            int end = last
                    ? text.length()
                    : Math.max(
                            start,
                            Math.min(text.length(), start + random.nextInt(Math.max(1, 2 * text.length() / pieces))));
            out.add(DocumentChunk.newBuilder()
                    .setKey(key)
                    .setSeq(i)
                    .setText(text.substring(start, end))
                    .setLast(last)
                    .setEventTime(Instant.ofEpochMilli(1_700_000_000_000L + i))
                    .build());
            start = end;
        }
        return out;
    }

    @Test
    void embedsEveryDocumentOnceExactlyAsOneShotAndDeadLettersMalformedRecords() throws Exception {
        Path model = tinyModel();
        String chunksTopic = "it-chunks";
        String embeddingsTopic = "it-embeddings";
        String deadLettersTopic = "it-dead-letters";
        kafka.createTopics(2, chunksTopic, embeddingsTopic);
        kafka.createTopics(deadLettersTopic);

        AvroCodec<DocumentChunk> codec = AvroCodec.of(DocumentChunk.class);
        Map<String, String> docs = documents();
        Random random = new Random(42);
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        int chunkCount = 0;
        for (var doc : docs.entrySet()) {
            List<DocumentChunk> pieces = chunks(doc.getKey(), doc.getValue(), random);
            chunkCount += pieces.size();
            Collections.reverse(pieces); // out of order: the last chunk arrives first
            for (DocumentChunk chunk : pieces) {
                records.add(new ProducerRecord<>(chunksTopic, utf8(chunk.getKey()), codec.encodeSingleObject(chunk)));
            }
        }
        Collections.shuffle(records, random); // documents interleaved (each key still lands in one partition)
        records.add(records.size() / 2, records.get(3)); // one duplicate
        records.add(new ProducerRecord<>(chunksTopic, utf8("bad-garbage"), utf8("not an avro record")));
        records.add(new ProducerRecord<>(chunksTopic, utf8("bad-empty"), new byte[0]));
        assertTrue(chunkCount > DOCUMENTS, "documents come in several chunks: " + chunkCount);
        KafkaTopics.send(kafka, records);

        Settings settings = Settings.builder()
                .bootstrapServers(kafka.bootstrapServers())
                .chunksTopic(chunksTopic)
                .embeddingsTopic(embeddingsTopic)
                .deadLettersTopic(deadLettersTopic)
                .groupId("it-embed")
                .startingOffsets("earliest")
                .model(model.toString())
                .checkpointIntervalMillis(300)
                .parallelism(2)
                .maxWaitMillis(5)
                .build();
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        EmbedJob.build(env, settings);
        JobClient job = env.executeAsync(EmbedJob.jobName(settings));
        try {
            KafkaTopics.readCommittedUntil(
                    kafka, embeddingsTopic, read -> read.size() >= DOCUMENTS, Duration.ofSeconds(240));
            KafkaTopics.readCommittedUntil(kafka, deadLettersTopic, read -> read.size() >= 2, Duration.ofSeconds(30));
            Thread.sleep(1_000); // one more checkpoint: anything extra would be committed by now
        } finally {
            job.cancel().get();
        }

        assertOneShotEmbeddings(kafka, model, docs, embeddingsTopic);
        Map<String, DeadLetter> letters = deadLettersByKey(kafka, deadLettersTopic, 2);
        assertMalformed(letters, chunksTopic);
    }

    /**
     * {@code --delivery at-least-once}: embeddings leave without waiting for a checkpoint to commit them. The sinks
     * open no Kafka transactions (the broker lists none for the job's prefix), so a read_committed consumer sees
     * every document's embedding as soon as it is sent, bit for bit the one-shot embedding.
     */
    @Test
    void atLeastOnceDeliveryEmitsBeforeAnyCheckpoint(@InjectMiniCluster MiniCluster cluster) throws Exception {
        Path model = tinyModel();
        String chunksTopic = "alo-chunks";
        String embeddingsTopic = "alo-embeddings";
        kafka.createTopics(2, chunksTopic, embeddingsTopic);
        kafka.createTopics("alo-dead-letters");
        AvroCodec<DocumentChunk> codec = AvroCodec.of(DocumentChunk.class);
        Map<String, String> docs = new LinkedHashMap<>();
        documents().entrySet().stream().limit(5).forEach(e -> docs.put(e.getKey(), e.getValue()));
        Random random = new Random(11);
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        docs.forEach((key, text) -> chunks(key, text, random)
                .forEach(chunk ->
                        records.add(new ProducerRecord<>(chunksTopic, utf8(key), codec.encodeSingleObject(chunk)))));
        KafkaTopics.send(kafka, records);
        Settings settings = Settings.builder()
                .bootstrapServers(kafka.bootstrapServers())
                .chunksTopic(chunksTopic)
                .embeddingsTopic(embeddingsTopic)
                .deadLettersTopic("alo-dead-letters")
                .groupId("it-alo")
                .startingOffsets("earliest")
                .model(model.toString())
                .checkpointIntervalMillis(600_000)
                .parallelism(1)
                .maxWaitMillis(5)
                .delivery(DeliveryGuarantee.AT_LEAST_ONCE)
                .build();
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        EmbedJob.build(env, settings);
        JobClient job = env.executeAsync(EmbedJob.jobName(settings));
        try {
            List<ConsumerRecord<byte[], byte[]>> read = KafkaTopics.readCommittedUntil(
                    kafka, embeddingsTopic, r -> r.size() >= docs.size(), Duration.ofSeconds(120));
            assertEquals(docs.size(), read.size(), "every document's embedding");
            long checkpoints = cluster.getExecutionGraph(job.getJobID())
                    .get(30, TimeUnit.SECONDS)
                    .getCheckpointStatsSnapshot()
                    .getCounts()
                    .getNumberOfCompletedCheckpoints();
            System.out.println("at-least-once: all " + read.size() + " embeddings visible after " + checkpoints
                    + " completed checkpoints");
            try (Admin admin = Admin.create(kafka.adminProperties())) {
                assertEquals(
                        List.of(),
                        admin.listTransactions().all().get(30, TimeUnit.SECONDS).stream()
                                .map(TransactionListing::transactionalId)
                                .filter(id -> id.startsWith("it-alo"))
                                .toList(),
                        "at-least-once sinks write outside transactions");
            }
        } finally {
            job.cancel().get();
        }
        assertOneShotEmbeddings(kafka, model, docs, embeddingsTopic);
    }

    /**
     * The job fails once after real checkpoints and restarts from the latest: nothing in the committed output
     * changes. Phase 1 sends some documents whole and the others in part (chunks out of order, so some wait in the
     * operator's buffer state), a duplicate and a malformed record; once the whole documents' embeddings are
     * committed and at least two checkpoints have completed (read from the MiniCluster's checkpoint statistics),
     * the test arms a map in front of the RWKV operator, which throws on the next chunk it sees, and sends phase 2:
     * the remaining chunks, duplicates of chunks of both phases and a second malformed record. Flink restarts the
     * job (fixed-delay) from the latest completed checkpoint: RWKV states, buffered chunks, source offsets; the
     * sinks' open transactions are aborted. The committed embeddings must still be exactly one per document, bit
     * for bit the one-shot engine embedding; the dead letters exactly the 2 malformed records, once each. The restart
     * is asserted (a restored checkpoint in the statistics, a RESTARTING time, a task attempt above 0), so the test
     * cannot pass without one. The sinks' Kafka producers also carry a {@code transaction.timeout.ms} given as a
     * Kafka property: the broker's transaction list shows it.
     *
     * <p>Measured on the 2-core build machine (checkpoints every 300 ms): 7 to 9 checkpoints completed before the
     * failure, the job restored from the latest one completed before the failure or the next (8 to 11), task attempt
     * 1, 6-9 s for the test.
     */
    @Test
    void aFailureAfterCompletedCheckpointsChangesNothing(
            @InjectMiniCluster MiniCluster cluster, @TempDir Path checkpoints) throws Exception {
        failureAfterCompletedCheckpoints(cluster, kafka, checkpoints, "cpu", "ft", 0);
    }

    /**
     * The body of {@link #aFailureAfterCompletedCheckpointsChangesNothing} for any backend (the GPU tests run it on
     * {@code cuda} and {@code cuda:f32}): topics and transactional ids named after {@code prefix}; embeddings
     * compared with the one-shot embedding on the same backend, bit for bit when {@code tolerance} is 0, else
     * within that relative L2 error.
     */
    static void failureAfterCompletedCheckpoints(
            MiniCluster cluster, EmbeddedKafka kafka, Path checkpoints, String backend, String prefix, double tolerance)
            throws Exception {
        Path model = tinyModel();
        String chunksTopic = prefix + "-chunks";
        String embeddingsTopic = prefix + "-embeddings";
        String deadLettersTopic = prefix + "-dead-letters";
        kafka.createTopics(2, chunksTopic, embeddingsTopic);
        kafka.createTopics(deadLettersTopic);

        Map<String, String> docs = documents();
        Random random = new Random(99);
        TwoPhases phases = twoPhases(chunksTopic, docs, 4, random);
        List<ProducerRecord<byte[], byte[]>> before = phases.before();
        List<ProducerRecord<byte[], byte[]>> after = phases.after();
        Set<String> wholeBefore = phases.wholeBefore();
        assertTrue(
                !wholeBefore.isEmpty() && wholeBefore.size() < DOCUMENTS, "documents whole in phase 1: " + wholeBefore);
        assertTrue(after.size() >= DOCUMENTS / 2, "chunks left for phase 2: " + after.size());
        Collections.shuffle(before, random);
        Collections.shuffle(after, random);
        after.add(before.get(0)); // duplicates of phase-1 chunks, after the restart point
        after.add(before.get(before.size() - 1));
        after.add(after.get(1)); // a duplicate within phase 2
        before.add(before.size() / 2, before.get(2)); // a duplicate within phase 1
        before.add(new ProducerRecord<>(chunksTopic, utf8("bad-garbage"), utf8("not an avro record")));
        after.add(after.size() / 2, new ProducerRecord<>(chunksTopic, utf8("bad-empty"), new byte[0]));

        FailOnceWhenArmed.reset();
        Configuration conf = restartingJob(checkpoints, 3, Duration.ofMillis(200));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        Settings settings = Settings.builder()
                .bootstrapServers(kafka.bootstrapServers())
                .chunksTopic(chunksTopic)
                .embeddingsTopic(embeddingsTopic)
                .deadLettersTopic(deadLettersTopic)
                .groupId(prefix + "-it-failure")
                .startingOffsets("earliest")
                .model(model.toString())
                .backend(backend)
                .checkpointIntervalMillis(300)
                .parallelism(2)
                .maxWaitMillis(5)
                .kafkaProperty("transaction.timeout.ms=120000")
                .build();
        EmbedJob.build(
                env,
                settings,
                chunks -> chunks.map(new FailOnceWhenArmed())
                        .returns(TypeInformation.of(TextChunk.class))
                        .name("fails once when armed"));
        long start = System.nanoTime();
        KafkaTopics.send(kafka, before);
        JobClient job = env.executeAsync(EmbedJob.jobName(settings));
        JobID id = job.getJobID();
        long checkpointsAtFailure;
        long latestAtFailure;
        RestoredCheckpointStats restored;
        AccessExecutionGraph graph;
        try {
            // generous timeouts: on a loaded 2-core machine the first checkpoints can take a minute
            KafkaTopics.readCommittedUntil(
                    kafka, embeddingsTopic, read -> keys(read).containsAll(wholeBefore), Duration.ofSeconds(240));
            KafkaTopics.readCommittedUntil(kafka, deadLettersTopic, read -> !read.isEmpty(), Duration.ofSeconds(30));
            CheckpointStatsSnapshot atFailure = awaitCompletedCheckpoints(cluster, id, 2);
            checkpointsAtFailure = atFailure.getCounts().getNumberOfCompletedCheckpoints();
            latestAtFailure =
                    atFailure.getHistory().getLatestCompletedCheckpoint().getCheckpointId();
            assertEquals(
                    wholeBefore,
                    keys(KafkaTopics.readCommitted(kafka, embeddingsTopic)),
                    "before the failure: exactly the documents sent whole are embedded");

            FailOnceWhenArmed.ARMED.set(true);
            KafkaTopics.send(kafka, after);
            KafkaTopics.readCommittedUntil(
                    kafka, embeddingsTopic, read -> read.size() >= DOCUMENTS, Duration.ofSeconds(240));
            KafkaTopics.readCommittedUntil(kafka, deadLettersTopic, read -> read.size() >= 2, Duration.ofSeconds(30));
            assertTrue(FailOnceWhenArmed.FAILED.get(), "the failure was injected");
            graph = cluster.getExecutionGraph(id).get(30, TimeUnit.SECONDS);
            restored = graph.getCheckpointStatsSnapshot().getLatestRestoredCheckpoint();
            // two more checkpoints: anything extra (a replayed embedding, a dead letter twice) would be committed now
            awaitCompletedCheckpoints(
                    cluster, id, graph.getCheckpointStatsSnapshot().getCounts().getNumberOfCompletedCheckpoints() + 2);
            assertEquals(JobStatus.RUNNING, job.getJobStatus().get(), "the job runs on after its restart");
        } finally {
            job.cancel().get();
        }
        System.out.printf(
                "failure test (" + backend
                        + "): %d checkpoints completed before the failure (latest %d), restored from %s, "
                        + "task attempt %d, %.1f s%n",
                checkpointsAtFailure,
                latestAtFailure,
                restored == null ? "none" : restored.getCheckpointId(),
                FailOnceWhenArmed.MAX_ATTEMPT.get(),
                (System.nanoTime() - start) / 1e9);

        assertTrue(checkpointsAtFailure >= 2, "checkpoints before the failure: " + checkpointsAtFailure);
        assertNotNull(restored, "the job was restored from a checkpoint");
        assertTrue(
                restored.getCheckpointId() >= latestAtFailure,
                "restored from checkpoint " + restored.getCheckpointId() + ", completed before the failure: "
                        + latestAtFailure);
        assertTrue(graph.getStatusTimestamp(JobStatus.RESTARTING) > 0, "the job went through RESTARTING");
        assertTrue(FailOnceWhenArmed.MAX_ATTEMPT.get() >= 1, "tasks ran again after the failure");

        assertOneShotEmbeddings(kafka, model, docs, embeddingsTopic, backend, tolerance);
        assertMalformed(deadLettersByKey(kafka, deadLettersTopic, 2), chunksTopic);
        assertEquals(
                Set.of(120_000L),
                transactionTimeouts(kafka, prefix + "-it-failure-"),
                "the sinks' producers use the transaction.timeout.ms given as a Kafka property");
    }

    /** A stream in two phases: chunk records before and after an event, and the documents complete before it. */
    record TwoPhases(
            List<ProducerRecord<byte[], byte[]>> before,
            List<ProducerRecord<byte[], byte[]>> after,
            Set<String> wholeBefore) {}

    /**
     * Every {@code wholeEvery}-th document whole in the first phase, the others with the first half of their
     * shuffled chunks in the first phase and the rest in the second (both phases in document order; shuffle them).
     */
    static TwoPhases twoPhases(String topic, Map<String, String> docs, int wholeEvery, Random random) {
        AvroCodec<DocumentChunk> codec = AvroCodec.of(DocumentChunk.class);
        List<ProducerRecord<byte[], byte[]>> before = new ArrayList<>();
        List<ProducerRecord<byte[], byte[]>> after = new ArrayList<>();
        Set<String> wholeBefore = new TreeSet<>();
        int d = 0;
        for (var doc : docs.entrySet()) {
            List<DocumentChunk> pieces = chunks(doc.getKey(), doc.getValue(), random);
            Collections.shuffle(pieces, random);
            int firstPhase = d++ % wholeEvery == 0 ? pieces.size() : pieces.size() / 2;
            if (firstPhase == pieces.size()) {
                wholeBefore.add(doc.getKey());
            }
            for (int i = 0; i < pieces.size(); i++) {
                DocumentChunk chunk = pieces.get(i);
                (i < firstPhase ? before : after)
                        .add(new ProducerRecord<>(topic, utf8(chunk.getKey()), codec.encodeSingleObject(chunk)));
            }
        }
        return new TwoPhases(before, after, wholeBefore);
    }

    /** Passes chunks on unchanged; throws once, on the first chunk after {@link #ARMED} is set. */
    static final class FailOnceWhenArmed extends RichMapFunction<TextChunk, TextChunk> {
        static final AtomicBoolean ARMED = new AtomicBoolean();
        static final AtomicBoolean FAILED = new AtomicBoolean();
        static final AtomicInteger MAX_ATTEMPT = new AtomicInteger();

        static void reset() {
            ARMED.set(false);
            FAILED.set(false);
            MAX_ATTEMPT.set(0);
        }

        @Override
        public void open(OpenContext context) {
            MAX_ATTEMPT.accumulateAndGet(getRuntimeContext().getTaskInfo().getAttemptNumber(), Math::max);
        }

        @Override
        public TextChunk map(TextChunk chunk) {
            if (ARMED.get() && !FAILED.getAndSet(true)) {
                throw new IllegalStateException("injected failure after completed checkpoints");
            }
            return chunk;
        }
    }

    /** A fault test's job configuration: checkpoints in {@code dir}, fixed-delay restarts (500 ms, 1000 attempts). */
    static Configuration restartingJob(Path dir) {
        return restartingJob(dir, 1000, Duration.ofMillis(500));
    }

    static Configuration restartingJob(Path dir, int attempts, Duration delay) {
        Configuration conf = new Configuration();
        conf.set(CheckpointingOptions.CHECKPOINT_STORAGE, "filesystem");
        conf.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, dir.toUri().toString());
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, attempts);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, delay);
        return conf;
    }

    /** Waits until the job has completed at least {@code count} checkpoints; returns the statistics then. */
    static CheckpointStatsSnapshot awaitCompletedCheckpoints(MiniCluster cluster, JobID job, long count)
            throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (true) {
            CheckpointStatsSnapshot stats =
                    cluster.getExecutionGraph(job).get(30, TimeUnit.SECONDS).getCheckpointStatsSnapshot();
            CompletedCheckpointStats latest = stats.getHistory().getLatestCompletedCheckpoint();
            if (stats.getCounts().getNumberOfCompletedCheckpoints() >= count && latest != null) {
                return stats;
            }
            assertTrue(
                    System.nanoTime() < deadline,
                    "no " + count + " completed checkpoints within 60 s: "
                            + stats.getCounts().getNumberOfCompletedCheckpoints());
            Thread.sleep(50);
        }
    }

    /** The transaction timeouts of the broker's transactional producers whose id starts with the prefix. */
    static Set<Long> transactionTimeouts(EmbeddedKafka kafka, String prefix) throws Exception {
        try (Admin admin = Admin.create(kafka.adminProperties())) {
            List<String> ids = admin.listTransactions().all().get(30, TimeUnit.SECONDS).stream()
                    .map(TransactionListing::transactionalId)
                    .filter(tid -> tid.startsWith(prefix))
                    .toList();
            assertTrue(!ids.isEmpty(), "transactional producers with prefix " + prefix);
            Set<Long> timeouts = new TreeSet<>();
            for (TransactionDescription t : admin.describeTransactions(ids)
                    .all()
                    .get(30, TimeUnit.SECONDS)
                    .values()) {
                timeouts.add(t.transactionTimeoutMs());
            }
            return timeouts;
        }
    }

    static Set<String> keys(List<ConsumerRecord<byte[], byte[]>> records) {
        Set<String> out = new TreeSet<>();
        records.forEach(r -> out.add(new String(r.key(), StandardCharsets.UTF_8)));
        return out;
    }

    /**
     * The committed embeddings: exactly one, reason LAST, per document, each bit for bit the engine's one-shot
     * embedding of the document's whole text.
     */
    static void assertOneShotEmbeddings(
            EmbeddedKafka kafka, Path model, Map<String, String> docs, String embeddingsTopic) throws Exception {
        assertOneShotEmbeddings(kafka, model, docs, embeddingsTopic, "cpu", 0);
    }

    /**
     * {@link #assertOneShotEmbeddings(EmbeddedKafka, Path, Map, String)} with the one-shot embedding computed on
     * {@code backend}: bit for bit when {@code tolerance} is 0, else within that relative L2 error (the GPU backends
     * are not bit-identical across batchings).
     */
    static void assertOneShotEmbeddings(
            EmbeddedKafka kafka,
            Path model,
            Map<String, String> docs,
            String embeddingsTopic,
            String backend,
            double tolerance)
            throws Exception {
        AvroCodec<Embedding> embeddingCodec = AvroCodec.of(Embedding.class);
        Map<String, Embedding> byKey = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> record : KafkaTopics.readCommitted(kafka, embeddingsTopic)) {
            Embedding e = embeddingCodec.decodeSingleObject(record.value());
            assertEquals(e.getKey(), new String(record.key(), StandardCharsets.UTF_8), "Kafka key is the document");
            assertEquals(EmitReason.LAST, e.getReason());
            assertEquals(null, byKey.put(e.getKey(), e), "one embedding per document: " + e.getKey());
        }
        assertEquals(docs.keySet(), byKey.keySet());

        double worst = 0;
        Map<String, OneShot> oneShot = oneShot(model, backend, docs);
        for (var doc : docs.entrySet()) {
            OneShot expected = oneShot.get(doc.getKey());
            Embedding e = byKey.get(doc.getKey());
            float[] actual = new float[e.getVector().size()];
            for (int i = 0; i < actual.length; i++) {
                actual[i] = e.getVector().get(i);
            }
            if (tolerance == 0) {
                assertArrayEquals(expected.vector(), actual, "bit for bit the one-shot embedding of " + doc.getKey());
            } else {
                double err = relativeError(actual, expected.vector());
                worst = Math.max(worst, err);
                assertTrue(
                        err <= tolerance,
                        doc.getKey() + ": relative error " + err + " to the one-shot " + backend + " embedding, limit "
                                + tolerance);
            }
            assertEquals(expected.vector().length, e.getDim());
            assertEquals(expected.tokens(), e.getTokens(), "tokens of " + doc.getKey());
            assertEquals(expected.model(), e.getModel());
            assertEquals("hidden", e.getPooling());
            assertTrue(e.getSeq() >= 0);
        }
        if (tolerance > 0) {
            System.out.printf(
                    "%d embeddings on %s: worst relative error %.3g to the one-shot embedding (limit %.3g)%n",
                    docs.size(), backend, worst, tolerance);
        }
    }

    /** A document's embedding computed in one engine call from a fresh state, its token count, the model's id. */
    record OneShot(float[] vector, int tokens, String model) {}

    /** Each document's {@link OneShot} embedding ("hidden" pooling) on {@code backend}. */
    static Map<String, OneShot> oneShot(Path model, String backend, Map<String, String> docs) throws Exception {
        Map<String, OneShot> out = new HashMap<>();
        try (RwkvModel m = RwkvModel.load(model, Backends.byName(backend))) {
            Tokenizer tokenizer = Tokenizers.forModel(m.config().vocab(), null);
            Embedder embedder = new Embedder(m.config(), Pooling.parse("hidden"), null);
            for (var doc : docs.entrySet()) {
                int[] tokens = tokenizer.encodeBytes(doc.getValue().getBytes(StandardCharsets.UTF_8));
                RwkvState state = m.newState();
                out.put(
                        doc.getKey(),
                        new OneShot(
                                embedder.embed(m.hidden(state, tokens), state),
                                tokens.length,
                                m.fingerprint().hex()));
            }
        }
        return out;
    }

    /** ||actual - expected|| / ||expected|| (L2). */
    static double relativeError(float[] actual, float[] expected) {
        assertEquals(expected.length, actual.length, "dimension");
        double diff = 0;
        double norm = 0;
        for (int i = 0; i < expected.length; i++) {
            double d = (double) actual[i] - expected[i];
            diff += d * d;
            norm += (double) expected[i] * expected[i];
        }
        return Math.sqrt(diff / norm);
    }

    /** The committed dead letters by original key; there must be exactly {@code count}, with distinct keys. */
    static Map<String, DeadLetter> deadLettersByKey(EmbeddedKafka kafka, String deadLettersTopic, int count) {
        AvroCodec<DeadLetter> deadCodec = AvroCodec.of(DeadLetter.class);
        List<ConsumerRecord<byte[], byte[]>> dead = KafkaTopics.readCommitted(kafka, deadLettersTopic);
        assertEquals(count, dead.size(), "exactly the malformed records are dead letters");
        Map<String, DeadLetter> letters = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> record : dead) {
            DeadLetter letter = deadCodec.decodeSingleObject(record.value());
            assertEquals(
                    null,
                    letters.put(new String(bytes(letter.getKey()), StandardCharsets.UTF_8), letter),
                    "each malformed record once");
        }
        return letters;
    }

    /** The two malformed records (keys bad-garbage, bad-empty) with their bytes, error class and reason. */
    static void assertMalformed(Map<String, DeadLetter> letters, String chunksTopic) {
        assertEquals(Set.of("bad-garbage", "bad-empty"), letters.keySet());
        DeadLetter garbage = letters.get("bad-garbage");
        assertArrayEquals(utf8("not an avro record"), bytes(garbage.getValue()));
        assertEquals(AvroDecodingException.class.getName(), garbage.getErrorClass());
        assertEquals(chunksTopic, garbage.getSourceTopic());
        assertTrue(!garbage.getReason().isBlank(), "a reason");
        DeadLetter empty = letters.get("bad-empty");
        assertEquals(AvroDecodingException.class.getName(), empty.getErrorClass());
        assertTrue(empty.getReason().contains("empty") || empty.getReason().contains("no bytes"), empty.getReason());
    }

    @Test
    void classifiesWithAHead(@TempDir Path dir) throws Exception {
        Path model = tinyModel();
        String chunksTopic = "cls-chunks";
        String embeddingsTopic = "cls-embeddings";
        String classesTopic = "cls-classes";
        String deadLettersTopic = "cls-dead-letters";
        kafka.createTopics(2, chunksTopic, embeddingsTopic, classesTopic);
        kafka.createTopics(deadLettersTopic);

        Path headFile = dir.resolve("weather-head.json");
        List<String> labelNames = List.of("calm", "storm", "fog");
        LinearHead head;
        try (RwkvModel m = RwkvModel.load(model, Backends.defaultBackend())) {
            int dim = new Embedder(m.config(), Pooling.parse("hidden"), null).dimension();
            Random random = new Random(3);
            float[][] weights = new float[labelNames.size()][dim];
            for (float[] row : weights) {
                for (int i = 0; i < dim; i++) {
                    row[i] = (float) random.nextGaussian() * 4;
                }
            }
            new LinearHead(m.fingerprint(), Pooling.parse("hidden"), labelNames, weights, new float[] {0.1f, 0f, -0.1f})
                    .save(headFile);
            head = LinearHead.load(headFile, m.fingerprint(), Pooling.parse("hidden"));
        }

        AvroCodec<DocumentChunk> codec = AvroCodec.of(DocumentChunk.class);
        Map<String, String> docs = new LinkedHashMap<>();
        documents().entrySet().stream().limit(6).forEach(e -> docs.put(e.getKey(), e.getValue()));
        Random random = new Random(11);
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (var doc : docs.entrySet()) {
            for (DocumentChunk chunk : chunks(doc.getKey(), doc.getValue(), random)) {
                records.add(new ProducerRecord<>(chunksTopic, utf8(chunk.getKey()), codec.encodeSingleObject(chunk)));
            }
        }
        KafkaTopics.send(kafka, records);

        Settings settings = Settings.builder()
                .bootstrapServers(kafka.bootstrapServers())
                .chunksTopic(chunksTopic)
                .embeddingsTopic(embeddingsTopic)
                .deadLettersTopic(deadLettersTopic)
                .classificationsTopic(classesTopic)
                .groupId("it-classify")
                .startingOffsets("earliest")
                .model(model.toString())
                .head(headFile.toString())
                .checkpointIntervalMillis(300)
                .parallelism(2)
                .maxWaitMillis(5)
                .build();
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        EmbedJob.build(env, settings);
        JobClient job = env.executeAsync(EmbedJob.jobName(settings));
        try {
            KafkaTopics.readCommittedUntil(
                    kafka, classesTopic, read -> read.size() >= docs.size(), Duration.ofSeconds(90));
            KafkaTopics.readCommittedUntil(
                    kafka, embeddingsTopic, read -> read.size() >= docs.size(), Duration.ofSeconds(30));
        } finally {
            job.cancel().get();
        }

        AvroCodec<Embedding> embeddingCodec = AvroCodec.of(Embedding.class);
        Map<String, float[]> vectors = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> record : KafkaTopics.readCommitted(kafka, embeddingsTopic)) {
            Embedding e = embeddingCodec.decodeSingleObject(record.value());
            float[] v = new float[e.getDim()];
            for (int i = 0; i < v.length; i++) {
                v[i] = e.getVector().get(i);
            }
            assertEquals(null, vectors.put(e.getKey(), v), "one embedding per document");
        }
        AvroCodec<Classification> classCodec = AvroCodec.of(Classification.class);
        List<ConsumerRecord<byte[], byte[]>> classes = KafkaTopics.readCommitted(kafka, classesTopic);
        assertEquals(docs.size(), classes.size(), "one class per document");
        for (ConsumerRecord<byte[], byte[]> record : classes) {
            Classification c = classCodec.decodeSingleObject(record.value());
            float[] expected = head.probabilities(vectors.get(c.getKey()));
            float[] actual = new float[c.getProbabilities().size()];
            for (int i = 0; i < actual.length; i++) {
                actual[i] = c.getProbabilities().get(i);
            }
            assertArrayEquals(expected, actual, "probabilities of " + c.getKey());
            assertEquals(head.label(expected), c.getLabel());
            assertEquals(labelNames, c.getLabels());
            assertEquals("weather-head.json", c.getHead());
            assertEquals(c.getKey(), new String(record.key(), StandardCharsets.UTF_8));
        }
        assertEquals(0, KafkaTopics.readCommitted(kafka, deadLettersTopic).size());
    }

    static byte[] utf8(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    static byte[] bytes(ByteBuffer buffer) {
        ByteBuffer view = buffer.duplicate();
        byte[] out = new byte[view.remaining()];
        view.get(out);
        return out;
    }
}
