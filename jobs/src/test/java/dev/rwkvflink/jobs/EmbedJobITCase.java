package dev.rwkvflink.jobs;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
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
import dev.rwkvflink.kafka.EmbeddedKafka;
import dev.rwkvflink.schema.Classification;
import dev.rwkvflink.schema.DeadLetter;
import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.EmitReason;
import dev.rwkvflink.schema.Embedding;
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
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
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
 * dead-letter topic exactly the 2 malformed records.
 */
class EmbedJobITCase {

    private static final int DOCUMENTS = 20;

    @RegisterExtension
    static final MiniClusterExtension FLINK = new MiniClusterExtension(new MiniClusterResourceConfiguration.Builder()
            .setNumberTaskManagers(1).setNumberSlotsPerTaskManager(2).build());

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
        Path p = Path.of(System.getProperty("rwkv.shared.dir", "../../shared"), "reference", "rwkv-cpp-tests",
                "tiny-rwkv-7v0-834K-FP32.bin");
        Assumptions.assumeTrue(Files.isRegularFile(p), "reference model absent, skipping: " + p);
        return p;
    }

    /** Deterministic texts of different lengths, some with non-ASCII characters. */
    static Map<String, String> documents() {
        String[] words = {"river", "stone", "lantern", "quiet", "harbour", "north", "wind", "café", "ember", "field",
                "Ωmega", "salt", "bridge", "morning", "ink"};
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
            int end = last ? text.length() : Math.max(start, Math.min(text.length(),
                    start + random.nextInt(Math.max(1, 2 * text.length() / pieces))));
            out.add(DocumentChunk.newBuilder().setKey(key).setSeq(i).setText(text.substring(start, end))
                    .setLast(last).setEventTime(Instant.ofEpochMilli(1_700_000_000_000L + i)).build());
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

        Settings settings = Settings.builder().bootstrapServers(kafka.bootstrapServers()).chunksTopic(chunksTopic)
                .embeddingsTopic(embeddingsTopic).deadLettersTopic(deadLettersTopic).groupId("it-embed")
                .startingOffsets("earliest").model(model.toString()).checkpointIntervalMillis(300).parallelism(2)
                .maxWaitMillis(5).build();
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        EmbedJob.build(env, settings);
        JobClient job = env.executeAsync(EmbedJob.jobName(settings));
        try {
            KafkaTopics.readCommittedUntil(kafka, embeddingsTopic, read -> read.size() >= DOCUMENTS,
                    Duration.ofSeconds(90));
            KafkaTopics.readCommittedUntil(kafka, deadLettersTopic, read -> read.size() >= 2, Duration.ofSeconds(30));
            Thread.sleep(1_000); // one more checkpoint: anything extra would be committed by now
        } finally {
            job.cancel().get();
        }

        AvroCodec<Embedding> embeddingCodec = AvroCodec.of(Embedding.class);
        Map<String, Embedding> byKey = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> record : KafkaTopics.readCommitted(kafka, embeddingsTopic)) {
            Embedding e = embeddingCodec.decodeSingleObject(record.value());
            assertEquals(e.getKey(), new String(record.key(), StandardCharsets.UTF_8), "Kafka key is the document");
            assertEquals(EmitReason.LAST, e.getReason());
            assertEquals(null, byKey.put(e.getKey(), e), "one embedding per document: " + e.getKey());
        }
        assertEquals(docs.keySet(), byKey.keySet());

        try (RwkvModel m = RwkvModel.load(model, Backends.defaultBackend())) {
            Tokenizer tokenizer = Tokenizers.forModel(m.config().vocab(), null);
            Embedder embedder = new Embedder(m.config(), Pooling.parse("hidden"), null);
            for (var doc : docs.entrySet()) {
                int[] tokens = tokenizer.encodeBytes(doc.getValue().getBytes(StandardCharsets.UTF_8));
                RwkvState state = m.newState();
                float[] expected = embedder.embed(m.hidden(state, tokens), state);
                Embedding e = byKey.get(doc.getKey());
                float[] actual = new float[e.getVector().size()];
                for (int i = 0; i < actual.length; i++) {
                    actual[i] = e.getVector().get(i);
                }
                assertArrayEquals(expected, actual, "bit for bit the one-shot embedding of " + doc.getKey());
                assertEquals(expected.length, e.getDim());
                assertEquals(tokens.length, e.getTokens(), "tokens of " + doc.getKey());
                assertEquals(m.fingerprint().hex(), e.getModel());
                assertEquals("hidden", e.getPooling());
                assertTrue(e.getSeq() >= 0);
            }
        }

        AvroCodec<DeadLetter> deadCodec = AvroCodec.of(DeadLetter.class);
        List<ConsumerRecord<byte[], byte[]>> dead = KafkaTopics.readCommitted(kafka, deadLettersTopic);
        assertEquals(2, dead.size(), "exactly the malformed records are dead letters");
        Map<String, DeadLetter> letters = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> record : dead) {
            DeadLetter letter = deadCodec.decodeSingleObject(record.value());
            letters.put(new String(bytes(letter.getKey()), StandardCharsets.UTF_8), letter);
        }
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

        Settings settings = Settings.builder().bootstrapServers(kafka.bootstrapServers()).chunksTopic(chunksTopic)
                .embeddingsTopic(embeddingsTopic).deadLettersTopic(deadLettersTopic).classificationsTopic(classesTopic)
                .groupId("it-classify").startingOffsets("earliest").model(model.toString()).head(headFile.toString())
                .checkpointIntervalMillis(300).parallelism(2).maxWaitMillis(5).build();
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        EmbedJob.build(env, settings);
        JobClient job = env.executeAsync(EmbedJob.jobName(settings));
        try {
            KafkaTopics.readCommittedUntil(kafka, classesTopic, read -> read.size() >= docs.size(),
                    Duration.ofSeconds(90));
            KafkaTopics.readCommittedUntil(kafka, embeddingsTopic, read -> read.size() >= docs.size(),
                    Duration.ofSeconds(30));
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
