package dev.rwkvflink.jobs;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.embed.Embedder;
import dev.rwkvflink.engine.embed.Pooling;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tokenizer.Tokenizer;
import dev.rwkvflink.engine.tokenizer.Tokenizers;
import dev.rwkvflink.kafka.AvroCodec;
import dev.rwkvflink.kafka.AvroDecodingException;
import dev.rwkvflink.kafka.DeadLetters;
import dev.rwkvflink.kafka.local.EmbeddedKafka;
import dev.rwkvflink.schema.DeadLetter;
import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.Embedding;
import dev.rwkvflink.schema.EmitReason;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.JobStatus;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.runtime.executiongraph.AccessExecutionGraph;
import org.apache.flink.runtime.executiongraph.AccessExecutionVertex;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.InjectMiniCluster;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Poison input (issue 7, item 3): {@link EmbedJob} on a MiniCluster and a real broker gets good documents mixed
 * with every kind of bad record, and must give each a defined outcome without ever restarting (the restart
 * strategy is off, so any failure would end the job):
 * <ul>
 *   <li><b>decoded to dead letters</b> (ChunkDeserializer, error class {@link AvroDecodingException}): garbage bytes,
 *       a truncated record, invalid UTF-8 in the text, an empty value, a null value (tombstone);</li>
 *   <li><b>rejected by the operator to dead letters</b> (error class {@code RejectedChunk}, reason in the letter): a
 *       10 MB chunk (over the 4 MiB chunk limit; its 10 MB value is left out of the dead letter so that the letter
 *       fits the dead-letter topic's default 1 MB limit), an oversized key (20,000 bytes; also left out of the
 *       letter), no key, a negative seq, token ids outside the vocabulary, text and tokens both, a document whose
 *       only text is empty, a chunk after the document's last, a seq too far ahead, chunks beyond the per-document
 *       buffer bound, buffered chunks whose gap never fills (rejected at the idle timeout);</li>
 *   <li><b>dropped and counted</b> as duplicates: repeated chunks, and seq regressions (an already applied seq with
 *       other text);</li>
 *   <li><b>processed</b>: good documents (out of order, interleaved, one chunk empty, one with a null Kafka key)
 *       each give one LAST embedding bit for bit equal to the engine's one-shot embedding of the text; documents
 *       with a gap that never fills give one IDLE embedding of the text before the gap, also equal to one-shot.</li>
 * </ul>
 * Gaps are bounded in size ({@code max-buffered-chunks} 5, {@code max-seq-ahead} 100) and time (idle timeout 10 s,
 * long enough that no good document's chunks are ever that far apart, even on a loaded 2-core machine).
 */
class PoisonInputITCase {

    @RegisterExtension
    static final MiniClusterExtension FLINK = new MiniClusterExtension(new MiniClusterResourceConfiguration.Builder()
            .setNumberTaskManagers(1)
            .setNumberSlotsPerTaskManager(2)
            .build());

    private static final int TEN_MB = 10 * 1024 * 1024;
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

    private static final AvroCodec<DocumentChunk> CODEC = AvroCodec.of(DocumentChunk.class);
    private static final String TOPIC = "poison-chunks";

    private static DocumentChunk chunk(String key, long seq, String text, boolean last) {
        return DocumentChunk.newBuilder()
                .setKey(key)
                .setSeq(seq)
                .setText(text)
                .setLast(last)
                .setEventTime(Instant.ofEpochMilli(1_700_000_000_000L + seq))
                .build();
    }

    private static ProducerRecord<byte[], byte[]> record(DocumentChunk c) {
        return new ProducerRecord<>(TOPIC, c.getKey().getBytes(StandardCharsets.UTF_8), CODEC.encodeSingleObject(c));
    }

    private static ProducerRecord<byte[], byte[]> raw(String key, byte[] value) {
        return new ProducerRecord<>(TOPIC, key == null ? null : key.getBytes(StandardCharsets.UTF_8), value);
    }

    @Test
    void everyPoisonRecordHasADefinedOutcomeAndTheJobNeverRestarts(@InjectMiniCluster MiniCluster cluster)
            throws Exception {
        Path model = EmbedJobITCase.tinyModel();
        String embeddingsTopic = "poison-embeddings";
        String deadLettersTopic = "poison-dead-letters";
        try (Admin admin = Admin.create(kafka.adminProperties())) {
            // the chunks topic takes records up to 16 MB; the output topics keep Kafka's default (about 1 MB)
            admin.createTopics(List.of(
                            new NewTopic(TOPIC, 2, (short) 1).configs(Map.of("max.message.bytes", "16777216")),
                            new NewTopic(embeddingsTopic, 2, (short) 1),
                            new NewTopic(deadLettersTopic, 1, (short) 1)))
                    .all()
                    .get(30, TimeUnit.SECONDS);
        }

        Random random = new Random(2026);
        Map<String, String> whole = new LinkedHashMap<>(); // key -> text whose LAST embedding is expected
        Map<String, String> idle = new LinkedHashMap<>(); // key -> text before a gap: an IDLE embedding
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        Map<String, String> docs = EmbedJobITCase.documents();
        int g = 0;
        for (var doc : docs.entrySet()) {
            if (g++ >= 10) {
                break;
            }
            String key = "good-" + doc.getKey();
            whole.put(key, doc.getValue());
            List<DocumentChunk> pieces = EmbedJobITCase.chunks(key, doc.getValue(), random).stream()
                    .map(c -> chunk(key, c.getSeq(), c.getText(), c.getLast()))
                    .toList();
            for (DocumentChunk c : pieces) {
                records.add(record(c));
            }
            records.add(record(pieces.get(random.nextInt(pieces.size())))); // a duplicate
        }
        // a good document with an empty middle chunk, and one whose chunk has no Kafka key
        whole.put("good-empty-middle", "Hello world");
        records.add(record(chunk("good-empty-middle", 0, "Hello", false)));
        records.add(record(chunk("good-empty-middle", 1, "", false)));
        records.add(record(chunk("good-empty-middle", 2, " world", true)));
        whole.put("good-null-kafka-key", "no Kafka key, but a chunk key");
        records.add(raw(
                null,
                CODEC.encodeSingleObject(chunk("good-null-kafka-key", 0, "no Kafka key, but a chunk key", true))));
        // sent in order once the first records are through (after the after-last and regress-finished embeddings)
        List<ProducerRecord<byte[], byte[]>> late = new ArrayList<>();
        // seq regressions: an applied seq again with other text, before and after the document's end
        whole.put("regress-open", "one two three");
        late.add(record(chunk("regress-open", 0, "one ", false)));
        late.add(record(chunk("regress-open", 1, "two ", false)));
        late.add(record(chunk("regress-open", 0, "REGRESSED ", false)));
        late.add(record(chunk("regress-open", 2, "three", true)));
        whole.put("regress-finished", "alpha beta");
        records.add(record(chunk("regress-finished", 0, "alpha ", false)));
        records.add(record(chunk("regress-finished", 1, "beta", true)));
        late.add(record(chunk("regress-finished", 1, "gamma", true)));
        // a chunk after the last one
        whole.put("after-last", "the end");
        records.add(record(chunk("after-last", 0, "the end", true)));
        late.add(record(chunk("after-last", 1, " and more", false)));

        // gaps: never filled (buffered, rejected at the idle timeout), too far ahead, too many buffered
        idle.put("gap-never-filled", "first second ");
        records.add(record(chunk("gap-never-filled", 0, "first ", false)));
        records.add(record(chunk("gap-never-filled", 1, "second ", false)));
        records.add(record(chunk("gap-never-filled", 3, "fourth ", false)));
        records.add(record(chunk("gap-never-filled", 4, "fifth", true)));
        idle.put("gap-too-far", "start ");
        records.add(record(chunk("gap-too-far", 0, "start ", false)));
        records.add(record(chunk("gap-too-far", 500, "far away", true)));
        for (int s = 1; s <= 8; s++) { // seq 0 never comes: 5 buffered, 3 over the bound
            records.add(record(chunk("gap-flood", s, "x" + s, s == 8)));
        }

        // rejected by the operator
        records.add(record(chunk("huge", 0, "a".repeat(TEN_MB), true)));
        String bigKey = "k".repeat(20_000);
        records.add(record(chunk(bigKey, 0, "a chunk under an oversized key", true)));
        records.add(record(chunk("", 0, "no key", true)));
        records.add(record(chunk("negative-seq", -1, "before the start", false)));
        records.add(record(chunk("empty-document", 0, "", true)));
        DocumentChunk vocab = DocumentChunk.newBuilder(chunk("bad-token", 0, null, true))
                .setTokens(List.of(65, 300))
                .build();
        records.add(record(vocab));
        DocumentChunk both = DocumentChunk.newBuilder(chunk("text-and-tokens", 0, "text", true))
                .setTokens(List.of(65))
                .build();
        records.add(record(both));

        // not decodable
        records.add(raw("bad-garbage", "not an avro record".getBytes(StandardCharsets.UTF_8)));
        byte[] full = CODEC.encodeSingleObject(chunk("bad-truncated", 0, "a record cut in half", true));
        records.add(raw("bad-truncated", Arrays.copyOf(full, full.length / 2)));
        byte[] utf8 = CODEC.encodeSingleObject(chunk("bad-utf8", 0, "caf\u00e9 au lait", true));
        int at = indexOf(utf8, new byte[] {(byte) 0xC3, (byte) 0xA9});
        utf8[at + 1] = 0x28; // 0xC3 0x28: a lead byte without its continuation
        records.add(raw("bad-utf8", utf8));
        records.add(raw("bad-empty", new byte[0]));
        records.add(raw("bad-null", null));

        Collections.shuffle(records, new Random(7));
        send(records);

        Configuration conf = new Configuration();
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "none"); // any failure ends the job
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        Settings settings = Settings.builder()
                .bootstrapServers(kafka.bootstrapServers())
                .chunksTopic(TOPIC)
                .embeddingsTopic(embeddingsTopic)
                .deadLettersTopic(deadLettersTopic)
                .groupId("it-poison")
                .startingOffsets("earliest")
                .model(model.toString())
                .checkpointIntervalMillis(300)
                .parallelism(2)
                .maxWaitMillis(5)
                .idleTimeoutMillis(10_000)
                .maxBufferedChunks(5)
                .maxSeqAhead(100)
                .build();
        EmbedJob.build(env, settings);
        long start = System.nanoTime();
        JobClient job = env.executeAsync(EmbedJob.jobName(settings));
        JobID id = job.getJobID();
        int expectedEmbeddings = whole.size() + idle.size();
        Map<String, Integer> expectedLetters = new TreeMap<>(Map.ofEntries(
                Map.entry("decode: not Avro / truncated / invalid UTF-8 / empty / null", 5),
                Map.entry("oversized chunk", 1),
                Map.entry("oversized key", 1),
                Map.entry("no key", 1),
                Map.entry("negative seq", 1),
                Map.entry("no tokens", 2), // empty-document; gap-flood (nothing applied before its idle timeout)
                Map.entry("token outside vocabulary", 1),
                Map.entry("text and tokens", 1),
                Map.entry("after the document's end", 1),
                Map.entry("seq too far ahead", 1),
                Map.entry("buffer full", 3),
                Map.entry("gap never filled (idle timeout)", 2 + 5)));
        int letterCount =
                expectedLetters.values().stream().mapToInt(Integer::intValue).sum();
        List<ConsumerRecord<byte[], byte[]>> embeddings;
        List<ConsumerRecord<byte[], byte[]>> letters;
        try {
            KafkaTopics.readCommittedUntil(
                    kafka,
                    embeddingsTopic,
                    r -> r.stream()
                                    .map(c -> new String(c.key(), StandardCharsets.UTF_8))
                                    .filter(k -> k.equals("after-last") || k.equals("regress-finished"))
                                    .count()
                            == 2,
                    Duration.ofSeconds(90));
            send(late); // regressions and the after-last chunk, once the documents they follow are through
            embeddings = KafkaTopics.readCommittedUntil(
                    kafka, embeddingsTopic, r -> r.size() >= expectedEmbeddings, Duration.ofSeconds(120));
            letters = KafkaTopics.readCommittedUntil(
                    kafka, deadLettersTopic, r -> r.size() >= letterCount, Duration.ofSeconds(120));
            EmbedJobITCase.awaitCompletedCheckpoints(cluster, id, checkpoints(cluster, id) + 2);
            embeddings = KafkaTopics.readCommitted(kafka, embeddingsTopic);
            letters = KafkaTopics.readCommitted(kafka, deadLettersTopic);
            assertEquals(JobStatus.RUNNING, job.getJobStatus().get(), "the job runs on");
            AccessExecutionGraph graph = cluster.getExecutionGraph(id).get(30, TimeUnit.SECONDS);
            assertEquals(0, graph.getStatusTimestamp(JobStatus.RESTARTING), "the job never restarted");
            for (var vertex : graph.getAllExecutionVertices()) {
                assertEquals(
                        0,
                        ((AccessExecutionVertex) vertex)
                                .getCurrentExecutionAttempt()
                                .getAttemptNumber(),
                        "first attempt of " + vertex.getTaskNameWithSubtaskIndex());
            }
        } finally {
            job.cancel().get();
        }
        double seconds = (System.nanoTime() - start) / 1e9;

        // dead letters by reason
        AvroCodec<DeadLetter> deadCodec = AvroCodec.of(DeadLetter.class);
        Map<String, Integer> byReason = new TreeMap<>();
        for (ConsumerRecord<byte[], byte[]> r : letters) {
            DeadLetter letter = deadCodec.decodeSingleObject(r.value());
            String category = category(letter);
            byReason.merge(category, 1, Integer::sum);
            if (category.equals("oversized chunk")) {
                assertNull(letter.getValue(), "the 10 MB chunk is left out of its dead letter");
                assertTrue(letter.getReason().contains("bytes left out"), letter.getReason());
                assertTrue(r.serializedValueSize() < DeadLetters.MAX_VALUE_BYTES, "the letter is small");
            }
            if (category.equals("oversized key")) {
                assertNull(letter.getKey(), "the 20,000-byte key is left out of its dead letter");
            }
        }
        System.out.printf(
                "poison input: %d records in, %d embeddings out, dead letters by reason %s, %.1f s%n",
                records.size() + late.size(), embeddings.size(), byReason, seconds);
        assertEquals(expectedLetters, byReason, "dead letters by reason");

        // embeddings: one per document, bit for bit the one-shot embedding of what was applied
        AvroCodec<Embedding> embeddingCodec = AvroCodec.of(Embedding.class);
        Map<String, Embedding> byKey = new TreeMap<>();
        for (ConsumerRecord<byte[], byte[]> r : embeddings) {
            Embedding e = embeddingCodec.decodeSingleObject(r.value());
            assertNull(byKey.put(e.getKey(), e), "one embedding per document: " + e.getKey());
        }
        Map<String, String> expectedText = new TreeMap<>(whole);
        expectedText.putAll(idle);
        assertEquals(expectedText.keySet(), byKey.keySet(), "documents embedded");
        try (RwkvModel m = RwkvModel.load(model, Backends.defaultBackend())) {
            Tokenizer tokenizer = Tokenizers.forModel(m.config().vocab(), null);
            Embedder embedder = new Embedder(m.config(), Pooling.parse("hidden"), null);
            for (var doc : expectedText.entrySet()) {
                Embedding e = byKey.get(doc.getKey());
                assertEquals(
                        idle.containsKey(doc.getKey()) ? EmitReason.IDLE : EmitReason.LAST,
                        e.getReason(),
                        doc.getKey());
                int[] tokens = tokenizer.encodeBytes(doc.getValue().getBytes(StandardCharsets.UTF_8));
                RwkvState state = m.newState();
                float[] expected = embedder.embed(m.hidden(state, tokens), state);
                float[] actual = new float[e.getDim()];
                for (int i = 0; i < actual.length; i++) {
                    actual[i] = e.getVector().get(i);
                }
                assertArrayEquals(expected, actual, "bit for bit the one-shot embedding of " + doc.getKey());
                assertEquals(tokens.length, e.getTokens(), doc.getKey());
            }
        }
    }

    /** The outcome class of a dead letter, from its error class and reason. */
    private static String category(DeadLetter d) {
        String r = d.getReason();
        if (d.getErrorClass().equals(AvroDecodingException.class.getName()) || d.getPartition() >= 0) {
            return "decode: not Avro / truncated / invalid UTF-8 / empty / null";
        }
        if (r.startsWith("chunk text of")) {
            return "oversized chunk";
        }
        if (r.startsWith("key of")) {
            return "oversized key";
        }
        if (r.equals("chunk has no key")) {
            return "no key";
        }
        if (r.startsWith("negative seq")) {
            return "negative seq";
        }
        if (r.contains("has no tokens")) {
            return "no tokens";
        }
        if (r.startsWith("token id")) {
            return "token outside vocabulary";
        }
        if (r.contains("both text and tokens")) {
            return "text and tokens";
        }
        if (r.contains("already ended")) {
            return "after the document's end";
        }
        if (r.contains("ahead of the next expected seq")) {
            return "seq too far ahead";
        }
        if (r.contains("chunks already wait")) {
            return "buffer full";
        }
        if (r.startsWith("idle timeout")) {
            return "gap never filled (idle timeout)";
        }
        return "other: " + r;
    }

    private static long checkpoints(MiniCluster cluster, JobID id) throws Exception {
        return cluster.getExecutionGraph(id)
                .get(30, TimeUnit.SECONDS)
                .getCheckpointStatsSnapshot()
                .getCounts()
                .getNumberOfCompletedCheckpoints();
    }

    /** Sends through a producer allowed 16 MB requests (the 10 MB chunk), in order, and waits for the acks. */
    private static void send(List<ProducerRecord<byte[], byte[]>> records) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, Integer.toString(16 << 20));
        p.put(ProducerConfig.BUFFER_MEMORY_CONFIG, Long.toString(64L << 20));
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
            var pending = new ArrayList<Future<?>>();
            records.forEach(r -> pending.add(producer.send(r)));
            producer.flush();
            for (var f : pending) {
                f.get(60, TimeUnit.SECONDS);
            }
        }
    }

    private static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = 0; i <= hay.length - needle.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (hay[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        throw new IllegalArgumentException("not found");
    }
}
