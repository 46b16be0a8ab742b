package dev.rwkvflink.jobs.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.embed.Embedder;
import dev.rwkvflink.engine.embed.EmbeddingStats;
import dev.rwkvflink.engine.embed.LinearHead;
import dev.rwkvflink.engine.embed.Pooling;
import dev.rwkvflink.engine.model.ModelSources;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.jobs.EmbedJob;
import dev.rwkvflink.jobs.KafkaTopics;
import dev.rwkvflink.jobs.Settings;
import dev.rwkvflink.kafka.AvroCodec;
import dev.rwkvflink.kafka.local.EmbeddedKafka;
import dev.rwkvflink.schema.Classification;
import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.Schemas;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * {@code fit} and the classify job on a labelled set the project ships: language identification over 160 short
 * everyday sentences, 40 each in English, German, French and Spanish ({@code language-id.jsonl}: the same 40
 * sentences in each language, so only the language tells them apart), with the built-in demo model (RWKV-7, 4 layers,
 * width 32, byte vocabulary, random weights from a fixed seed: no learned meaning at all).
 *
 * <p>Pooling: the demo model's WKV state of all four layers ({@code state:0,1,2,3}, 4 x 32 x 32 = 4,096 floats), a
 * fixed random recurrent feature map of the text's bytes. Held-out accuracy measured with {@code fit --holdout 0.25
 * --seed 1} (120 training, 40 held out): {@code hidden} 0.575, {@code state} (last layer) 0.875, {@code both} 0.875,
 * {@code state:0,1,2,3} 0.950 (seeds 2 and 3: 0.950, 0.975). Chance is 0.25.
 */
class FitAndClassifyITCase {

    static final String POOLING = "state:0,1,2,3";
    static final double CHANCE = 0.25;

    @RegisterExtension
    static final MiniClusterExtension FLINK = new MiniClusterExtension(new MiniClusterResourceConfiguration.Builder()
            .setNumberTaskManagers(1)
            .setNumberSlotsPerTaskManager(2)
            .build());

    private static EmbeddedKafka kafka;

    @BeforeAll
    static void startKafka() {
        Schemas.trustGeneratedClasses();
        kafka = EmbeddedKafka.builder().start();
    }

    @AfterAll
    static void stopKafka() {
        if (kafka != null) {
            kafka.close();
        }
    }

    static Path languageId() throws URISyntaxException {
        return Path.of(
                FitAndClassifyITCase.class.getResource("language-id.jsonl").toURI());
    }

    /** Output and exit code of one CLI run. */
    record Run(int exitCode, String out, String err) {}

    static Run cli(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = RwkvFlinkCli.commandLine();
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int rc = cl.execute(args);
        return new Run(rc, out.toString(), err.toString());
    }

    static String heldOutAccuracy(Run fit) {
        Matcher m = Pattern.compile("held-out accuracy (\\d\\.\\d{3})").matcher(fit.out());
        assertTrue(m.find(), "fit reports a held-out accuracy: " + fit.out() + fit.err());
        return m.group(1);
    }

    /**
     * fit on 120 sentences, then the 40 held-out sentences through the classify job (EmbedJob with the head and its
     * statistics, demo model, chunks out of order with a duplicate, on the embedded broker and the MiniCluster; the
     * Classification records read read_committed). Every class must equal the engine's (bit-identical
     * probabilities), the job's accuracy must equal what fit reported for the same held-out split, and it must be
     * well above chance: measured 0.950 (38 of 40), chance 0.25.
     */
    @Test
    void languageIdentificationWithTheDemoModelThroughTheClassifyJob(@TempDir Path dir) throws Exception {
        Path data = languageId();
        List<FitCommand.Example> examples = FitCommand.read(data);
        assertEquals(160, examples.size());
        Path head = dir.resolve("language-head.json");
        Path stats = dir.resolve("language-stats.json");
        long start = System.nanoTime();
        Run fit = cli(
                "fit",
                "--data",
                data.toString(),
                "--pooling",
                POOLING,
                "--holdout",
                "0.25",
                "--seed",
                "1",
                "--out",
                head.toString(),
                "--stats-out",
                stats.toString());
        assertEquals(0, fit.exitCode(), fit.err());
        String reported = heldOutAccuracy(fit);
        double fitSeconds = (System.nanoTime() - start) / 1e9;

        boolean[] heldOut = FitCommand.split(examples.size(), 0.25, 1);
        Map<String, FitCommand.Example> test = new HashMap<>();
        for (int i = 0; i < examples.size(); i++) {
            if (heldOut[i]) {
                test.put(String.format(Locale.ROOT, "held-out-%03d", i), examples.get(i));
            }
        }
        assertEquals(40, test.size());

        String chunksTopic = "lid-chunks";
        String classesTopic = "lid-classes";
        kafka.createTopics(2, chunksTopic, "lid-embeddings", classesTopic);
        kafka.createTopics("lid-dead-letters");
        AvroCodec<DocumentChunk> codec = AvroCodec.of(DocumentChunk.class);
        Random random = new Random(5);
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (var e : test.entrySet()) {
            for (DocumentChunk c : chunks(e.getKey(), e.getValue().text(), random)) {
                records.add(new ProducerRecord<>(chunksTopic, utf8(c.getKey()), codec.encodeSingleObject(c)));
            }
        }
        Collections.shuffle(records, random);
        records.add(records.get(7)); // a duplicate
        KafkaTopics.send(kafka, records);

        Settings settings = Settings.builder()
                .bootstrapServers(kafka.bootstrapServers())
                .chunksTopic(chunksTopic)
                .embeddingsTopic("lid-embeddings")
                .deadLettersTopic("lid-dead-letters")
                .classificationsTopic(classesTopic)
                .groupId("it-language")
                .startingOffsets("earliest")
                .model(ModelSources.DEMO)
                .pooling(POOLING)
                .head(head.toString())
                .stats(stats.toString())
                .checkpointIntervalMillis(300)
                .parallelism(2)
                .maxWaitMillis(5)
                .build();
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        EmbedJob.build(env, settings);
        long jobStart = System.nanoTime();
        JobClient job = env.executeAsync(EmbedJob.jobName(settings));
        try {
            KafkaTopics.readCommittedUntil(
                    kafka, classesTopic, read -> read.size() >= test.size(), Duration.ofSeconds(90));
        } finally {
            job.cancel().get();
        }
        double jobSeconds = (System.nanoTime() - jobStart) / 1e9;

        AvroCodec<Classification> classCodec = AvroCodec.of(Classification.class);
        Map<String, Classification> classes = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> record : KafkaTopics.readCommitted(kafka, classesTopic)) {
            Classification c = classCodec.decodeSingleObject(record.value());
            assertEquals(null, classes.put(c.getKey(), c), "one class per document: " + c.getKey());
        }
        assertEquals(test.keySet(), classes.keySet());

        int right = 0;
        try (RwkvModel m = ModelSources.open(ModelSources.DEMO, Backends.defaultBackend())) {
            Pooling pooling = Pooling.parse(POOLING);
            LinearHead h = LinearHead.load(head, m.fingerprint(), pooling);
            assertEquals(List.of("de", "en", "es", "fr"), h.labels());
            Embedder embedder = new Embedder(m.config(), pooling, EmbeddingStats.load(stats, m.fingerprint(), pooling));
            for (var e : test.entrySet()) {
                Classification c = classes.get(e.getKey());
                RwkvState state = m.newState();
                float[] expected = h.probabilities(
                        embedder.embed(m.hidden(state, bytes(e.getValue().text())), state));
                float[] actual = new float[c.getProbabilities().size()];
                for (int i = 0; i < actual.length; i++) {
                    actual[i] = c.getProbabilities().get(i);
                }
                assertArrayEquals(expected, actual, "the job's probabilities are the engine's for " + e.getKey());
                assertEquals(h.label(expected), c.getLabel());
                if (c.getLabel().equals(e.getValue().label())) {
                    right++;
                }
            }
        }
        double accuracy = (double) right / test.size();
        System.out.printf(
                Locale.ROOT,
                "language id, demo model, %s pooling: fit reported held-out %s, classify job "
                        + "%d/%d = %.3f (chance %.2f); fit %.1f s, job %.1f s%n",
                POOLING,
                reported,
                right,
                test.size(),
                accuracy,
                CHANCE,
                fitSeconds,
                jobSeconds);
        assertEquals(
                reported,
                String.format(Locale.ROOT, "%.3f", accuracy),
                "the classify job's held-out accuracy is what fit reported");
        assertTrue(
                accuracy >= 0.85,
                "held-out accuracy " + accuracy + " (measured 0.950, chance " + CHANCE
                        + ") must stay well above chance");
    }

    /**
     * {@code fit --topic}: the same 160 labelled sentences as DocumentChunk records (2 to 4 chunks each, every 10th
     * document as token ids instead of text, the label attribute on a random non-empty subset of each document's
     * chunks), shuffled over 3 partitions with 16 duplicates, and mixed with what fit must skip: an undecodable
     * record, an incomplete document, an unlabelled one, one whose chunks disagree on the label, and a labelled
     * document in an aborted transaction (invisible to read_committed). Keys sort in file order, so fit must write
     * byte for byte the head and statistics that {@code fit --data} writes from the JSONL file, and name every
     * skipped document on stderr.
     */
    @Test
    void fitFromATopicEqualsFitFromTheFile(@TempDir Path dir) throws Exception {
        Path data = languageId();
        List<FitCommand.Example> examples = FitCommand.read(data);
        String topic = "lid-train";
        kafka.createTopics(3, topic);
        AvroCodec<DocumentChunk> codec = AvroCodec.of(DocumentChunk.class);
        Random random = new Random(17);
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < examples.size(); i++) {
            List<DocumentChunk> chunks = chunks(
                    String.format(Locale.ROOT, "doc-%03d", i), examples.get(i).text(), random);
            boolean tokens = i % 10 == 3;
            boolean labelled = false;
            for (int c = 0; c < chunks.size(); c++) {
                DocumentChunk chunk = chunks.get(c);
                if (tokens) {
                    chunk.setTokens(toList(bytes(chunk.getText())));
                    chunk.setText(null);
                }
                if (random.nextBoolean() || (!labelled && c == chunks.size() - 1)) {
                    chunk.setAttributes(Map.of("label", examples.get(i).label(), "source", "test"));
                    labelled = true;
                }
                records.add(new ProducerRecord<>(topic, utf8(chunk.getKey()), codec.encodeSingleObject(chunk)));
            }
        }
        Collections.shuffle(records, random);
        int duplicates = records.size() / 20;
        for (int i = 0; i < duplicates; i++) {
            records.add(random.nextInt(records.size()), records.get(random.nextInt(records.size())));
        }
        DocumentChunk gap0 = chunk("zz-incomplete", 0, "Hello ", false, "en");
        DocumentChunk gap2 = chunk("zz-incomplete", 2, "world.", true, "en");
        DocumentChunk unlabelled = chunk("zz-unlabelled", 0, "Nobody said which language.", true, null);
        DocumentChunk conflict0 = chunk("zz-conflict", 0, "Guten ", false, "de");
        DocumentChunk conflict1 = chunk("zz-conflict", 1, "morning.", true, "en");
        for (DocumentChunk c : List.of(gap0, gap2, unlabelled, conflict0, conflict1)) {
            records.add(
                    random.nextInt(records.size()),
                    new ProducerRecord<>(topic, utf8(c.getKey()), codec.encodeSingleObject(c)));
        }
        records.add(random.nextInt(records.size()), new ProducerRecord<>(topic, utf8("garbage"), utf8("not avro")));
        KafkaTopics.send(kafka, records);
        sendAborted(new ProducerRecord<>(
                topic,
                utf8("doc-000"),
                codec.encodeSingleObject(chunk("aborted", 0, "This was never committed.", true, "en"))));

        Path topicHead = dir.resolve("topic-head.json");
        Path topicStats = dir.resolve("topic-stats.json");
        long start = System.nanoTime();
        Run fromTopic = cli(
                "fit",
                "--bootstrap-servers",
                kafka.bootstrapServers(),
                "--topic",
                topic,
                "--kafka-property",
                "client.id=fit-test",
                "--pooling",
                POOLING,
                "--holdout",
                "0.25",
                "--out",
                topicHead.toString(),
                "--stats-out",
                topicStats.toString());
        double topicSeconds = (System.nanoTime() - start) / 1e9;
        assertEquals(0, fromTopic.exitCode(), fromTopic.err());
        Path fileHead = dir.resolve("file-head.json");
        Path fileStats = dir.resolve("file-stats.json");
        Run fromFile = cli(
                "fit",
                "--data",
                data.toString(),
                "--pooling",
                POOLING,
                "--holdout",
                "0.25",
                "--out",
                fileHead.toString(),
                "--stats-out",
                fileStats.toString());
        assertEquals(0, fromFile.exitCode(), fromFile.err());
        System.out.printf(
                Locale.ROOT,
                "fit --topic: %.1f s, held-out accuracy %s%n%s",
                topicSeconds,
                heldOutAccuracy(fromTopic),
                fromTopic.err());

        assertArrayEquals(Files.readAllBytes(fileStats), Files.readAllBytes(topicStats), "the same statistics");
        assertArrayEquals(Files.readAllBytes(fileHead), Files.readAllBytes(topicHead), "the same head");
        assertEquals(heldOutAccuracy(fromFile), heldOutAccuracy(fromTopic));
        String err = fromTopic.err();
        assertTrue(err.contains("160 complete labelled documents; " + duplicates + " duplicate chunks dropped"), err);
        assertTrue(err.contains("1 undecodable records skipped: partition "), err);
        assertTrue(err.contains("1 incomplete documents skipped: zz-incomplete (missing seq [1])"), err);
        assertTrue(err.contains("1 documents without a 'label' attribute skipped: zz-unlabelled"), err);
        assertTrue(
                err.contains(
                        "1 inconsistent documents skipped: zz-conflict (chunks disagree on the label: " + "[de, en])"),
                err);
        assertTrue(!err.contains("aborted"), "records of an aborted transaction are not read: " + err);
    }

    @Test
    void fitFromATopicFailsClearly() throws Exception {
        kafka.createTopics("lid-unlabelled");
        KafkaTopics.send(
                kafka,
                List.of(new ProducerRecord<>(
                        "lid-unlabelled",
                        utf8("a"),
                        AvroCodec.of(DocumentChunk.class)
                                .encodeSingleObject(chunk("a", 0, "no label here", true, null)))));
        Run none = cli(
                "fit",
                "--bootstrap-servers",
                kafka.bootstrapServers(),
                "--topic",
                "lid-unlabelled",
                "--label-attribute",
                "lang",
                "--out",
                "/nonexistent/h.json");
        assertEquals(1, none.exitCode());
        assertTrue(none.err().contains("1 documents without a 'lang' attribute skipped: a"), none.err());
        assertTrue(
                none.err()
                        .contains("error: topic lid-unlabelled holds no complete document labelled by the 'lang' "
                                + "attribute (1 records read)"),
                none.err());

        Run missing = cli(
                "fit",
                "--bootstrap-servers",
                kafka.bootstrapServers(),
                "--topic",
                "no-such-topic",
                "--read-timeout",
                "3",
                "--out",
                "/nonexistent/h.json");
        assertEquals(1, missing.exitCode());
        assertTrue(
                missing.err().contains("error: topic no-such-topic does not exist on " + kafka.bootstrapServers()),
                missing.err());
    }

    /** Writes a record in a transaction and aborts it. */
    static void sendAborted(ProducerRecord<byte[], byte[]> record) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "fit-test-aborted");
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
            producer.initTransactions();
            producer.beginTransaction();
            producer.send(record).get();
            producer.abortTransaction();
        }
    }

    static DocumentChunk chunk(String key, long seq, String text, boolean last, String label) {
        return DocumentChunk.newBuilder()
                .setKey(key)
                .setSeq(seq)
                .setText(text)
                .setLast(last)
                .setEventTime(Instant.ofEpochMilli(1_700_000_000_000L))
                .setAttributes(label == null ? Map.of() : Map.of("label", label))
                .build();
    }

    /** Splits a text into 2 to 4 chunks at character boundaries (the sentences have no surrogate pairs). */
    static List<DocumentChunk> chunks(String key, String text, Random random) {
        int pieces = 2 + random.nextInt(3);
        List<Integer> cuts = new ArrayList<>();
        for (int i = 1; i < pieces; i++) {
            cuts.add(random.nextInt(text.length() + 1));
        }
        Collections.sort(cuts);
        cuts.add(text.length());
        List<DocumentChunk> out = new ArrayList<>();
        int from = 0;
        for (int i = 0; i < pieces; i++) {
            int to = cuts.get(i);
            out.add(chunk(key, i, text.substring(from, to), i == pieces - 1, null));
            from = to;
        }
        return out;
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** The byte vocabulary's tokens of a text: its UTF-8 bytes. */
    static int[] bytes(String text) {
        byte[] b = utf8(text);
        int[] t = new int[b.length];
        for (int i = 0; i < b.length; i++) {
            t[i] = b[i] & 0xFF;
        }
        return t;
    }

    static List<Integer> toList(int[] values) {
        List<Integer> out = new ArrayList<>(values.length);
        for (int v : values) {
            out.add(v);
        }
        return out;
    }
}
