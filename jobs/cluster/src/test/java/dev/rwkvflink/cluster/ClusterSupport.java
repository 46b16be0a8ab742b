package dev.rwkvflink.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.embed.Embedder;
import dev.rwkvflink.engine.embed.Pooling;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tokenizer.Tokenizer;
import dev.rwkvflink.engine.tokenizer.Tokenizers;
import dev.rwkvflink.kafka.AvroCodec;
import dev.rwkvflink.kafka.local.EmbeddedKafka;
import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.Embedding;
import dev.rwkvflink.schema.EmitReason;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.Assumptions;

/**
 * What the standalone-cluster tests share: the document stream (deterministic texts, random chunks, duplicates),
 * producing and reading topics, the cluster's REST API and its scripts.
 */
final class ClusterSupport {
    static final ObjectMapper JSON = new ObjectMapper();
    private static final String[] WORDS = {
        "river", "stone", "lantern", "quiet", "harbour", "north", "wind", "café", "ember", "field", "Ωmega", "salt",
        "bridge", "morning", "ink", "über", "naïve", "déjà", "vu", "zero"
    };

    /**
     * log4j lines for {@code RWKV_CLUSTER_LOG_EXTRA}: the operator's trace (every embedding with the checkpoint
     * after which it was emitted) and the Kafka sink's transactions, for {@link #diagnoseMissing}.
     */
    static final String TRACE_LOGGING = String.join(
            "\n",
            "logger.rwkv.name = dev.rwkvflink.operator",
            "logger.rwkv.level = DEBUG",
            "logger.sink.name = org.apache.flink.connector.kafka.sink",
            "logger.sink.level = DEBUG");

    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private final String rest;

    /** @param rest the REST endpoint, e.g. http://127.0.0.1:8081 */
    ClusterSupport(String rest) {
        this.rest = rest;
    }

    // ------------------------------------------------------------------ the stream

    /** Deterministic texts of 4 to 30 words, some with non-ASCII characters. */
    static Map<String, String> documents(int n) {
        Random random = new Random(17);
        Map<String, String> docs = new LinkedHashMap<>();
        for (int d = 0; d < n; d++) {
            StringBuilder text = new StringBuilder("Doc " + d + ":");
            int words = 4 + random.nextInt(27);
            for (int i = 0; i < words; i++) {
                text.append(' ').append(WORDS[random.nextInt(WORDS.length)]);
            }
            docs.put(String.format("doc-%05d", d), text.append('.').toString());
        }
        return docs;
    }

    /** Every document in 1 to 6 chunks cut at random characters; all chunks shuffled; about 3% sent twice. */
    static List<ProducerRecord<byte[], byte[]>> records(Map<String, String> docs, Random random) {
        AvroCodec<DocumentChunk> codec = AvroCodec.of(DocumentChunk.class);
        List<ProducerRecord<byte[], byte[]>> out = new ArrayList<>();
        for (var doc : docs.entrySet()) {
            String text = doc.getValue();
            int pieces = 1 + random.nextInt(6);
            int start = 0;
            for (int i = 0; i < pieces; i++) {
                boolean last = i == pieces - 1;
                int end = last ? text.length() : start + random.nextInt(text.length() - start + 1);
                DocumentChunk chunk = DocumentChunk.newBuilder()
                        .setKey(doc.getKey())
                        .setSeq(i)
                        .setText(text.substring(start, end))
                        .setLast(last)
                        .setEventTime(Instant.ofEpochMilli(1_700_000_000_000L + i))
                        .build();
                out.add(new ProducerRecord<>(
                        "chunks", doc.getKey().getBytes(StandardCharsets.UTF_8), codec.encodeSingleObject(chunk)));
                start = end;
            }
        }
        Collections.shuffle(out, random);
        int duplicates = Math.max(1, out.size() * 3 / 100);
        for (int i = 0; i < duplicates; i++) {
            int from = random.nextInt(out.size());
            out.add(from + random.nextInt(out.size() - from + 1), out.get(from));
        }
        return out;
    }

    /**
     * The embedded broker for a cluster test; {@code -Drwkv.kafka.transaction.version=N} formats it with that
     * transaction protocol version (default: the broker's, 2 for Kafka 4.x). Prints the finalized level.
     */
    static EmbeddedKafka broker() throws Exception {
        EmbeddedKafka.Builder b = EmbeddedKafka.builder();
        Integer tv = Integer.getInteger("rwkv.kafka.transaction.version");
        if (tv != null) {
            b.feature("transaction.version", tv);
        }
        EmbeddedKafka kafka = b.start();
        try (Admin admin = Admin.create(kafka.adminProperties())) {
            var level = admin.describeFeatures()
                    .featureMetadata()
                    .get()
                    .finalizedFeatures()
                    .get("transaction.version");
            System.out.println("broker transaction.version: " + (level == null ? "none" : level.maxVersionLevel()));
        }
        return kafka;
    }

    /**
     * For documents without a committed embedding: how many of their chunks the chunks topic holds, and whether an
     * embedding of theirs was written but never committed (read_uncommitted). Printed, for the report.
     */
    static void diagnoseMissing(
            EmbeddedKafka kafka, Map<String, String> docs, List<ConsumerRecord<byte[], byte[]>> embeddings, Path logs)
            throws Exception {
        Set<String> have = new HashSet<>();
        embeddings.forEach(r -> have.add(new String(r.key(), StandardCharsets.UTF_8)));
        List<String> missing =
                docs.keySet().stream().filter(k -> !have.contains(k)).toList();
        if (missing.isEmpty()) {
            return;
        }
        AvroCodec<DocumentChunk> chunkCodec = AvroCodec.of(DocumentChunk.class);
        Map<String, List<String>> chunks = new TreeMap<>();
        for (ConsumerRecord<byte[], byte[]> r :
                ClusterSupport.read(kafka, "chunks", Integer.MAX_VALUE, Duration.ZERO, "read_uncommitted")) {
            String key = new String(r.key(), StandardCharsets.UTF_8);
            if (missing.contains(key)) {
                DocumentChunk c = chunkCodec.decodeSingleObject(r.value());
                chunks.computeIfAbsent(key, k -> new ArrayList<>())
                        .add(c.getSeq() + (c.getLast() ? "L" : "") + "@" + r.partition() + ":" + r.offset());
            }
        }
        Map<String, Integer> uncommitted = new TreeMap<>();
        for (ConsumerRecord<byte[], byte[]> r :
                ClusterSupport.read(kafka, "embeddings", Integer.MAX_VALUE, Duration.ZERO, "read_uncommitted")) {
            String key = new String(r.key(), StandardCharsets.UTF_8);
            if (missing.contains(key)) {
                uncommitted.merge(key + "@" + r.partition() + ":" + r.offset(), 1, Integer::sum);
            }
        }
        System.out.println("MISSING " + missing.size() + " documents " + missing + "; their chunks in the topic: "
                + chunks + "; their embeddings written but not committed: " + uncommitted);
        // the operator's DEBUG trace of each missing document, from every TaskManager log
        try (var files = Files.list(logs)) {
            for (Path f : files.filter(f -> f.getFileName().toString().matches("taskmanager-\\d+\\.log"))
                    .toList()) {
                for (String line : Files.readAllLines(f)) {
                    for (String key : missing) {
                        if (line.contains("key=" + key + " ")) {
                            System.out.println("TRACE " + f.getFileName() + ": " + line);
                        }
                    }
                }
            }
        }
        // the broker's view of every transactional id the sinks used: anything not committed is printed
        try (Admin admin = Admin.create(kafka.adminProperties())) {
            List<String> ids = admin.listTransactions().all().get().stream()
                    .map(TransactionListing::transactionalId)
                    .sorted()
                    .toList();
            var described = admin.describeTransactions(ids).all().get();
            Map<String, Integer> byState = new TreeMap<>();
            for (String id : ids) {
                var d = described.get(id);
                byState.merge(d.state().toString(), 1, Integer::sum);
                if (d.state() != TransactionState.COMPLETE_COMMIT && d.state() != TransactionState.EMPTY) {
                    System.out.println("TXN " + id + " " + d.state() + " producerId=" + d.producerId() + " epoch="
                            + d.producerEpoch());
                }
            }
            System.out.println("TXN states of " + ids.size() + " transactional ids: " + byState);
        }
    }

    /** Committed LAST embeddings against the documents: counts of duplicated, missing and not bit-identical. */
    record Outcome(int duplicated, int missing, int mismatched) {}

    /**
     * Decodes the embeddings (all must be LAST) and compares each document's with the engine's one-shot embedding
     * of the whole text on the CPU backend (hidden pooling), bit for bit, token count included.
     */
    static Outcome compare(List<ConsumerRecord<byte[], byte[]>> embeddings, Map<String, String> docs, Path model)
            throws IOException {
        return compare(embeddings, docs, model, null);
    }

    /** As above, with the model's vocabulary file (null: the byte tokenizer of a 256-token model). */
    static Outcome compare(
            List<ConsumerRecord<byte[], byte[]>> embeddings, Map<String, String> docs, Path model, Path vocab)
            throws IOException {
        AvroCodec<Embedding> codec = AvroCodec.of(Embedding.class);
        Map<String, Emitted> byKey = new HashMap<>();
        int duplicates = 0;
        for (ConsumerRecord<byte[], byte[]> r : embeddings) {
            Embedding e = codec.decodeSingleObject(r.value());
            assertEquals(EmitReason.LAST, e.getReason(), "only LAST embeddings: " + e.getKey());
            float[] vector = new float[e.getDim()];
            for (int i = 0; i < vector.length; i++) {
                vector[i] = e.getVector().get(i);
            }
            if (byKey.put(e.getKey(), new Emitted(vector, e.getTokens())) != null) {
                duplicates++;
            }
        }
        return compare(byKey, duplicates, docs, model, vocab);
    }

    /** A final embedding as some output carried it: the vector and the document's token count. */
    record Emitted(float[] vector, long tokens) {}

    /** {@link #compare} of final embeddings already read, {@code duplicates} of them dropped. */
    static Outcome compare(Map<String, Emitted> byKey, int duplicates, Map<String, String> docs, Path model, Path vocab)
            throws IOException {
        int missing =
                (int) docs.keySet().stream().filter(k -> !byKey.containsKey(k)).count();
        int mismatched = 0;
        try (RwkvModel m = RwkvModel.load(model, Backends.byName("cpu"))) {
            Tokenizer tokenizer = Tokenizers.forModel(m.config().vocab(), vocab);
            Embedder embedder = new Embedder(m.config(), Pooling.parse("hidden"), null);
            for (var doc : docs.entrySet()) {
                Emitted e = byKey.get(doc.getKey());
                if (e == null) {
                    continue;
                }
                int[] tokens = tokenizer.encodeBytes(doc.getValue().getBytes(StandardCharsets.UTF_8));
                RwkvState state = m.newState();
                float[] expected = embedder.embed(m.hidden(state, tokens), state);
                if (!Arrays.equals(expected, e.vector()) || e.tokens() != tokens.length) {
                    mismatched++;
                }
            }
        }
        return new Outcome(duplicates, missing, mismatched);
    }

    /** Distinct records (a duplicate is the same ProducerRecord object sent twice). */
    static int chunkCount(List<ProducerRecord<byte[], byte[]>> records) {
        return (int) records.stream().distinct().count();
    }

    /** Sends the records in order, paced evenly over {@code millis}. */
    static void produce(
            EmbeddedKafka kafka, List<ProducerRecord<byte[], byte[]>> records, long millis, AtomicInteger sent)
            throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
            long start = System.nanoTime();
            List<Future<?>> acks = new ArrayList<>();
            for (int i = 0; i < records.size(); i++) {
                long due = start + TimeUnit.MILLISECONDS.toNanos(millis * i / records.size());
                long wait = due - System.nanoTime();
                if (wait > 0) {
                    TimeUnit.NANOSECONDS.sleep(wait);
                }
                acks.add(producer.send(records.get(i)));
                sent.incrementAndGet();
            }
            producer.flush();
            for (var ack : acks) {
                ack.get(120, TimeUnit.SECONDS); // every chunk is in the topic, or the test fails here
            }
        }
    }

    /**
     * Waits until the topic holds {@code count} committed records, as long as their number keeps growing: gives up
     * (returns what there is) only when no new record arrived for {@code stall}. A job that is slow on a loaded
     * machine is waited for; one that stopped producing output is not.
     */
    static void awaitCommittedWhileProgressing(EmbeddedKafka kafka, String topic, int count, Duration stall) {
        try (KafkaConsumer<byte[], byte[]> consumer = fromBeginning(kafka, topic, "read_committed")) {
            long seen = 0;
            long lastProgress = System.nanoTime();
            while (seen < count && System.nanoTime() - lastProgress < stall.toNanos()) {
                int n = consumer.poll(Duration.ofMillis(500)).count();
                if (n > 0) {
                    seen += n;
                    lastProgress = System.nanoTime();
                }
            }
            System.out.printf(
                    "%s: %d of %d committed records%s%n",
                    topic, seen, count, seen < count ? " (no new record for " + stall + ")" : "");
        }
    }

    /** A consumer assigned every partition of {@code topic}, positioned at the beginning. */
    private static KafkaConsumer<byte[], byte[]> fromBeginning(EmbeddedKafka kafka, String topic, String isolation) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
        List<TopicPartition> partitions = consumer.partitionsFor(topic, Duration.ofSeconds(30)).stream()
                .map(info -> new TopicPartition(topic, info.partition()))
                .toList();
        consumer.assign(partitions);
        consumer.seekToBeginning(partitions);
        return consumer;
    }

    static List<ConsumerRecord<byte[], byte[]>> readCommittedUntil(
            EmbeddedKafka kafka, String topic, int count, Duration timeout) {
        return read(kafka, topic, count, timeout, "read_committed");
    }

    /** Reads from the beginning until {@code count} records or the timeout, then to the end offsets. */
    static List<ConsumerRecord<byte[], byte[]>> read(
            EmbeddedKafka kafka, String topic, int count, Duration timeout, String isolation) {
        try (KafkaConsumer<byte[], byte[]> consumer = fromBeginning(kafka, topic, isolation)) {
            List<TopicPartition> partitions = List.copyOf(consumer.assignment());
            List<ConsumerRecord<byte[], byte[]>> read = new ArrayList<>();
            long deadline = System.nanoTime() + timeout.toNanos();
            while (read.size() < count && System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(200)).forEach(read::add);
            }
            var end = consumer.endOffsets(partitions);
            long drain = System.nanoTime() + TimeUnit.SECONDS.toNanos(300);
            while (partitions.stream().anyMatch(tp -> consumer.position(tp) < end.get(tp))
                    && System.nanoTime() < drain) {
                consumer.poll(Duration.ofMillis(200)).forEach(read::add);
            }
            assertTrue(
                    partitions.stream().allMatch(tp -> consumer.position(tp) >= end.get(tp)),
                    "read " + topic + " to its end offsets " + end);
            return read;
        }
    }

    // ------------------------------------------------------------------ the REST API

    JsonNode get(String path) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(
                HttpRequest.newBuilder(URI.create(rest + path))
                        .timeout(Duration.ofSeconds(10))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() / 100 != 2) {
            throw new IOException("GET " + path + " answered " + r.statusCode() + ": " + r.body());
        }
        return JSON.readTree(r.body());
    }

    /**
     * What every standalone-cluster test starts from: the scripts, the tiny reference model, a work directory
     * {@code target/<workName>}, free ports, the REST client and the scripts' environment ({@code extraEnv} added).
     * Skips the test (an assumption) when bash, curl, the job jar, the Flink classpath or the model is missing.
     */
    record Setup(Path bin, Path model, Path work, ClusterSupport rest, Map<String, String> env) {
        /** The job's topics on the broker: chunks (4 partitions), embeddings (2), dead-letters (1). */
        static void createTopics(EmbeddedKafka kafka) throws Exception {
            kafka.createTopics(4, "chunks");
            kafka.createTopics(2, "embeddings");
            kafka.createTopics("dead-letters");
        }

        /** Starts the cluster with 2 TaskManagers (this run's logs only: diagnoseMissing reads them). */
        void startCluster() throws Exception {
            clearLogs(work);
            run(bin.resolve("cluster.sh"), env, Duration.ofSeconds(60), "start", "2");
            rest.waitForTaskManagers(2, Duration.ofSeconds(60));
        }

        static Setup of(String workName, Map<String, String> extraEnv) throws IOException {
            Assumptions.assumeTrue(onPath("bash") && onPath("curl"), "bash or curl missing: skipping the cluster test");
            Path module = Path.of(System.getProperty("rwkv.cluster.module", "."));
            Path jobJar = Path.of(System.getProperty("rwkv.cluster.job.jar", "target/rwkv-flink-job.jar"));
            Path libClasspath = Path.of(System.getProperty("rwkv.cluster.lib.classpath", "target/flink-lib.classpath"));
            Assumptions.assumeTrue(
                    Files.isRegularFile(jobJar) && Files.isRegularFile(libClasspath),
                    "job jar or flink-lib.classpath not built (run in the integration-test phase): " + jobJar);
            Path model = Path.of(
                            System.getProperty("rwkv.shared.dir", "../../../shared"),
                            "reference",
                            "rwkv-cpp-tests",
                            "tiny-rwkv-7v0-834K-FP32.bin")
                    .toAbsolutePath()
                    .normalize();
            Assumptions.assumeTrue(Files.isRegularFile(model), "reference model absent, skipping: " + model);
            Path work = Path.of(System.getProperty("rwkv.cluster.work.dir", "target/it-cluster"))
                    .toAbsolutePath()
                    .resolveSibling(workName);
            int restPort = freePort();
            Map<String, String> env = new HashMap<>(Map.of(
                    "RWKV_CLUSTER_DIR",
                    work.toString(),
                    "RWKV_CLUSTER_REST_PORT",
                    Integer.toString(restPort),
                    "RWKV_CLUSTER_RPC_PORT",
                    Integer.toString(freePort()),
                    "RWKV_CLUSTER_SLOTS",
                    "2",
                    "RWKV_FLINK_LIB_CLASSPATH",
                    libClasspath.toAbsolutePath().toString(),
                    "RWKV_JOB_JAR",
                    jobJar.toAbsolutePath().toString()));
            env.putAll(extraEnv);
            return new Setup(
                    module.resolve("bin"),
                    model,
                    work,
                    new ClusterSupport("http://127.0.0.1:" + restPort),
                    Map.copyOf(env));
        }
    }

    /** POSTs a JSON body; returns the answer. */
    JsonNode post(String path, String json) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(
                HttpRequest.newBuilder(URI.create(rest + path))
                        .timeout(Duration.ofSeconds(10))
                        .header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(json))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() / 100 != 2) {
            throw new IOException("POST " + path + " answered " + r.statusCode() + ": " + r.body());
        }
        return JSON.readTree(r.body());
    }

    /**
     * Stops the job with a savepoint into {@code dir} (REST {@code /jobs/:id/stop}, no drain: the sources stop,
     * every operator snapshots, the sinks commit, the job ends FINISHED) and returns the savepoint's location.
     */
    String stopWithSavepoint(String jobId, Path dir, Duration timeout) throws Exception {
        String trigger = post(
                        "/jobs/" + jobId + "/stop",
                        JSON.createObjectNode()
                                .put("targetDirectory", dir.toUri().toString())
                                .put("drain", false)
                                .toString())
                .path("request-id")
                .asText();
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            JsonNode status = get("/jobs/" + jobId + "/savepoints/" + trigger);
            if (status.path("status").path("id").asText().equals("COMPLETED")) {
                JsonNode op = status.path("operation");
                assertTrue(
                        op.path("failure-cause").isMissingNode()
                                || op.path("failure-cause").isNull(),
                        "stop with savepoint failed: " + op);
                return op.path("location").asText();
            }
            assertTrue(System.nanoTime() < deadline, "no savepoint within " + timeout + ": " + status);
            Thread.sleep(200);
        }
    }

    /** Waits until the job has ended in {@code state} (e.g. FINISHED). */
    void awaitJobState(String jobId, String state, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        String now;
        while (!(now = get("/jobs/" + jobId).path("state").asText()).equals(state)) {
            assertTrue(
                    System.nanoTime() < deadline,
                    "job " + jobId + " is " + now + ", not " + state + " within " + timeout);
            Thread.sleep(100);
        }
    }

    boolean allTasksRunning(String jobId) throws Exception {
        JsonNode job = get("/jobs/" + jobId);
        if (!job.path("state").asText().equals("RUNNING")) {
            return false;
        }
        for (JsonNode v : job.path("vertices")) {
            if (!v.path("status").asText().equals("RUNNING")) {
                return false;
            }
        }
        return true;
    }

    void awaitRunning(String jobId, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!allTasksRunning(jobId)) {
            assertTrue(System.nanoTime() < deadline, "job " + jobId + " not running within " + timeout);
            Thread.sleep(100);
        }
    }

    /** TaskManagers (resource ids, e.g. taskmanager-1) running tasks of the job's RWKV vertex, busiest first. */
    List<String> busyTaskManagers(String jobId) throws Exception {
        for (JsonNode v : get("/jobs/" + jobId).path("vertices")) {
            if (v.path("name").asText().contains("RWKV")
                    || v.path("name").asText().contains("rwkv")) {
                List<String> out = new ArrayList<>();
                for (JsonNode tm : get("/jobs/" + jobId + "/vertices/"
                                + v.path("id").asText() + "/taskmanagers")
                        .path("taskmanagers")) {
                    out.add(tm.path("taskmanager-id").asText());
                }
                assertTrue(!out.isEmpty(), "the RWKV vertex runs somewhere");
                return out;
            }
        }
        throw new AssertionError("no RWKV vertex in job " + jobId + ": " + get("/jobs/" + jobId));
    }

    /** Parallelism of the job's RWKV vertex. */
    int rwkvParallelism(String jobId) throws Exception {
        for (JsonNode v : get("/jobs/" + jobId).path("vertices")) {
            if (v.path("name").asText().toLowerCase(Locale.ROOT).contains("rwkv")) {
                return v.path("parallelism").asInt();
            }
        }
        throw new AssertionError("no RWKV vertex in job " + jobId);
    }

    JsonNode checkpointCounts(String jobId) throws Exception {
        return get("/jobs/" + jobId + "/checkpoints").path("counts");
    }

    long latestCompletedTrigger(String jobId) throws Exception {
        return get("/jobs/" + jobId + "/checkpoints")
                .path("latest")
                .path("completed")
                .path("trigger_timestamp")
                .asLong(0);
    }

    long restoredCheckpoint(String jobId) throws Exception {
        JsonNode restored =
                get("/jobs/" + jobId + "/checkpoints").path("latest").path("restored");
        return restored.isMissingNode() || restored.isNull()
                ? -1
                : restored.path("id").asLong(-1);
    }

    /** When the job last switched to RUNNING (epoch millis; after a restart, the restart's). */
    long runningSince(String jobId) throws Exception {
        return get("/jobs/" + jobId).path("timestamps").path("RUNNING").asLong(0);
    }

    void awaitCheckpoints(String jobId, long completed, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (checkpointCounts(jobId).path("completed").asLong() < completed) {
            assertTrue(System.nanoTime() < deadline, "no " + completed + " checkpoints within " + timeout);
            Thread.sleep(100);
        }
    }

    /** Checkpoint counts and the latest completed checkpoint's size and duration, for the report. */
    String checkpointSummary(String jobId) throws Exception {
        JsonNode all = get("/jobs/" + jobId + "/checkpoints");
        JsonNode latest = all.path("latest").path("completed");
        return String.format(
                "checkpoints %s, latest: full state %d B, incremental %d B, %d ms",
                all.path("counts"),
                latest.path("state_size").asLong(),
                latest.path("checkpointed_size").asLong(),
                latest.path("end_to_end_duration").asLong());
    }

    void waitForTaskManagers(int n, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        String body = "";
        while (System.nanoTime() < deadline) {
            try {
                JsonNode overview = get("/overview");
                body = overview.toString();
                if (overview.path("taskmanagers").asInt() >= n) {
                    return;
                }
            } catch (IOException notYet) {
                body = notYet.toString();
            }
            Thread.sleep(250);
        }
        throw new AssertionError("fewer than " + n + " TaskManagers registered within " + timeout + ": " + body);
    }

    void cancel(String jobId) {
        try {
            http.send(
                    HttpRequest.newBuilder(URI.create(rest + "/jobs/" + jobId + "?mode=cancel"))
                            .method("PATCH", HttpRequest.BodyPublishers.noBody())
                            .build(),
                    HttpResponse.BodyHandlers.ofString());
        } catch (IOException | InterruptedException e) {
            System.err.println("cancel of " + jobId + " failed: " + e);
        }
    }

    // ------------------------------------------------------------------ processes

    /**
     * submit.sh's arguments for the cluster tests' topics ({@code chunks}, {@code embeddings}, {@code dead-letters})
     * on {@code kafka} with consumer group {@code groupId}, then {@code more}.
     */
    static List<String> submitArgs(EmbeddedKafka kafka, String groupId, String... more) {
        List<String> args = new ArrayList<>(List.of(
                "--bootstrap-servers",
                kafka.bootstrapServers(),
                "--chunks-topic",
                "chunks",
                "--embeddings-topic",
                "embeddings",
                "--dead-letters-topic",
                "dead-letters",
                "--group-id",
                groupId));
        args.addAll(List.of(more));
        return args;
    }

    /** Runs submit.sh with {@link #submitArgs} (60 s at most); returns its output. */
    static String submit(Path bin, Map<String, String> env, EmbeddedKafka kafka, String groupId, String... more)
            throws IOException, InterruptedException {
        return run(
                bin.resolve("submit.sh"),
                env,
                Duration.ofSeconds(60),
                submitArgs(kafka, groupId, more).toArray(String[]::new));
    }

    static String run(Path script, Map<String, String> env, Duration timeout, String... args)
            throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of("bash", script.toString()));
        command.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
        pb.environment().putAll(env);
        Path output = Files.createTempFile("cluster-script", ".out");
        pb.redirectOutput(output.toFile());
        Process process = pb.start();
        boolean finished = process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS);
        String out = Files.readString(output);
        Files.deleteIfExists(output);
        if (!finished) {
            process.destroyForcibly();
            throw new AssertionError(
                    script.getFileName() + " " + String.join(" ", args) + " ran past " + timeout + ":\n" + out);
        }
        if (process.exitValue() != 0) {
            throw new AssertionError(script.getFileName() + " " + String.join(" ", args) + " exited "
                    + process.exitValue() + ":\n" + out);
        }
        System.out.print(out);
        return out;
    }

    static boolean onPath(String tool) {
        try {
            return new ProcessBuilder("sh", "-c", "command -v " + tool).start().waitFor() == 0;
        } catch (IOException | InterruptedException e) {
            return false;
        }
    }

    static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }

    /** Deletes the cluster's earlier logs (log4j appends to them across starts). */
    static void clearLogs(Path work) throws IOException {
        Path logs = work.resolve("log");
        if (Files.isDirectory(logs)) {
            try (Stream<Path> files = Files.list(logs)) {
                for (Path f : files.toList()) {
                    if (Files.isRegularFile(f)) {
                        Files.delete(f);
                    }
                }
            }
        }
    }

    static String logTails(Path work) {
        StringBuilder sb = new StringBuilder();
        try (Stream<Path> logs = Files.list(work.resolve("log"))) {
            for (Path log : logs.sorted().toList()) {
                List<String> lines = Files.readAllLines(log);
                sb.append("==== ").append(log).append('\n');
                lines.subList(Math.max(0, lines.size() - 40), lines.size())
                        .forEach(l -> sb.append(l).append('\n'));
            }
        } catch (IOException e) {
            sb.append("no logs: ").append(e);
        }
        return sb.toString();
    }
}
