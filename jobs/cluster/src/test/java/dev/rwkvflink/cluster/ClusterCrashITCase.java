package dev.rwkvflink.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
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
import dev.rwkvflink.kafka.EmbeddedKafka;
import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.EmitReason;
import dev.rwkvflink.schema.Embedding;
import dev.rwkvflink.schema.Schemas;
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
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
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
import org.junit.jupiter.api.Test;

/**
 * Crash (issue 7, item 1): the standalone cluster of {@code bin/cluster.sh} (a JobManager and 2 TaskManagers, each
 * its own JVM; RocksDB state, incremental unaligned checkpoints every second) runs {@code EmbedJob} from the job jar while a
 * producer feeds documents in random chunks, interleaved, with about 3% duplicate chunks. The test kills a
 * TaskManager that runs tasks of the job with {@code kill -9} several times (the first kill while a checkpoint is
 * in progress, the others at random moments) and, like a process supervisor, starts it again once the job has
 * recovered. Nobody touches the job: Flink restarts it from the latest completed checkpoint on its own.
 *
 * <p>The committed output (read_committed) must hold exactly one LAST embedding per document, none missing, none
 * duplicated, each bit for bit the engine's one-shot embedding of the whole document on the CPU backend (which is
 * what an uninterrupted run gives, bit for bit: {@code EmbedJobITCase}); the dead-letter topic must be empty.
 * Recovery times are measured per kill: from the kill to the job's RUNNING state with every task running again, and
 * to the first checkpoint completed after the kill (REST API).
 *
 * <p>Reduced form (CI, the default): 500 documents, 2 kills. Full form: {@code -Drwkv.crash.documents=10000
 * -Drwkv.crash.kills=5} (see docs/reliability.md).
 */
class ClusterCrashITCase {

    private static final Pattern JOB_ID = Pattern.compile("JobID ([0-9a-f]{32})");
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String[] WORDS = {"river", "stone", "lantern", "quiet", "harbour", "north", "wind", "café",
            "ember", "field", "Ωmega", "salt", "bridge", "morning", "ink", "über", "naïve", "déjà", "vu", "zero"};

    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private String rest;

    /** One kill and what followed it. */
    record Kill(String taskManager, boolean duringCheckpoint, long runningMillis, long checkpointMillis,
                long restoredCheckpoint) {
    }

    @Test
    void killingTaskManagersLosesAndDuplicatesNothing() throws Exception {
        int documents = Integer.getInteger("rwkv.crash.documents", 500);
        int kills = Integer.getInteger("rwkv.crash.kills", 2);
        Assumptions.assumeTrue(onPath("bash") && onPath("curl"), "bash or curl missing: skipping the cluster test");
        Path module = Path.of(System.getProperty("rwkv.cluster.module", "."));
        Path jobJar = Path.of(System.getProperty("rwkv.cluster.job.jar", "target/rwkv-flink-job.jar"));
        Path libClasspath = Path.of(System.getProperty("rwkv.cluster.lib.classpath", "target/flink-lib.classpath"));
        Assumptions.assumeTrue(Files.isRegularFile(jobJar) && Files.isRegularFile(libClasspath),
                "job jar or flink-lib.classpath not built (run in the integration-test phase): " + jobJar);
        Path model = Path.of(System.getProperty("rwkv.shared.dir", "../../../shared"), "reference", "rwkv-cpp-tests",
                "tiny-rwkv-7v0-834K-FP32.bin").toAbsolutePath().normalize();
        Assumptions.assumeTrue(Files.isRegularFile(model), "reference model absent, skipping: " + model);
        Path work = Path.of(System.getProperty("rwkv.cluster.work.dir", "target/it-cluster")).toAbsolutePath()
                .resolveSibling("it-crash");
        int restPort = freePort();
        rest = "http://127.0.0.1:" + restPort;
        Map<String, String> env = Map.of("RWKV_CLUSTER_DIR", work.toString(),
                "RWKV_CLUSTER_REST_PORT", Integer.toString(restPort),
                "RWKV_CLUSTER_RPC_PORT", Integer.toString(freePort()),
                "RWKV_CLUSTER_SLOTS", "2",
                "RWKV_FLINK_LIB_CLASSPATH", libClasspath.toAbsolutePath().toString(),
                "RWKV_JOB_JAR", jobJar.toAbsolutePath().toString(),
                // a lost TaskManager is noticed within seconds; one task per TaskManager while both are there;
                // barriers overtake the backlog a restored job replays (unaligned checkpoints, debloated buffers)
                "RWKV_CLUSTER_CONF_EXTRA", String.join("\n", "heartbeat.interval: 1000", "heartbeat.timeout: 5000",
                        "restart-strategy.type: fixed-delay", "restart-strategy.fixed-delay.attempts: 1000",
                        "restart-strategy.fixed-delay.delay: 500 ms", "taskmanager.load-balance.mode: SLOTS",
                        "execution.checkpointing.unaligned.enabled: true",
                        "taskmanager.network.memory.buffer-debloat.enabled: true"),
                // the operator's trace (every embedding with the checkpoint after which it was emitted) and the
                // sink's commits, for diagnoseMissing
                "RWKV_CLUSTER_LOG_EXTRA", String.join("\n", "logger.rwkv.name = dev.rwkvflink.operator",
                        "logger.rwkv.level = DEBUG", "logger.committer.name = org.apache.flink.connector.kafka.sink",
                        "logger.committer.level = DEBUG"));
        Path bin = module.resolve("bin");

        Schemas.trustGeneratedClasses();
        Map<String, String> docs = documents(documents);
        List<ProducerRecord<byte[], byte[]>> records = records(docs, new Random(2027));
        long started = System.nanoTime();
        List<Kill> done = new ArrayList<>();
        List<ConsumerRecord<byte[], byte[]>> embeddings;
        List<ConsumerRecord<byte[], byte[]>> deadLetters;
        String summary;
        try (EmbeddedKafka kafka = EmbeddedKafka.builder().start()) {
            kafka.createTopics(4, "chunks");
            kafka.createTopics(2, "embeddings");
            kafka.createTopics("dead-letters");
            String jobId = null;
            Thread producer = null;
            AtomicReference<Throwable> producerFailure = new AtomicReference<>();
            AtomicInteger sent = new AtomicInteger();
            try {
                run(bin.resolve("cluster.sh"), env, Duration.ofSeconds(60), "start", "2");
                waitForTaskManagers(2, Duration.ofSeconds(60));
                String out = run(bin.resolve("submit.sh"), env, Duration.ofSeconds(60),
                        "--bootstrap-servers", kafka.bootstrapServers(), "--chunks-topic", "chunks",
                        "--embeddings-topic", "embeddings", "--dead-letters-topic", "dead-letters",
                        "--group-id", "crash-it", "--starting-offsets", "earliest", "--model", model.toString(),
                        "--checkpoint-interval-ms", "1000", "--max-wait-ms", "20", "--parallelism", "2");
                Matcher m = JOB_ID.matcher(out);
                assertTrue(m.find(), "submit.sh prints the JobID: " + out);
                jobId = m.group(1);
                awaitRunning(jobId, Duration.ofSeconds(60));

                // the stream: all records spread over about 8 s per kill, so that every kill hits a busy job
                long produceMillis = 8_000L * Math.max(1, kills);
                producer = Thread.ofPlatform().name("crash-producer").start(() -> {
                    try {
                        produce(kafka, records, produceMillis, sent);
                    } catch (Throwable t) {
                        producerFailure.set(t);
                    }
                });

                Random random = new Random(31);
                for (int k = 0; k < kills; k++) {
                    Thread.sleep(1_500 + random.nextInt(3_000));
                    done.add(killAndRecover(jobId, k % 2 == 0, bin, env));
                    System.out.printf("kill %d: %s%n", k + 1, done.getLast());
                }
                producer.join(TimeUnit.MINUTES.toMillis(10));
                assertEquals(null, producerFailure.get(), "the producer ran through");
                embeddings = readCommittedUntil(kafka, "embeddings", documents,
                        Duration.ofSeconds(Math.max(120, documents / 10)));
                long completed = checkpointCounts(jobId).path("completed").asLong();
                awaitCheckpoints(jobId, completed + 2, Duration.ofSeconds(60)); // anything extra would be visible now
                embeddings = readCommittedUntil(kafka, "embeddings", Integer.MAX_VALUE, Duration.ZERO);
                deadLetters = readCommittedUntil(kafka, "dead-letters", Integer.MAX_VALUE, Duration.ZERO);
                summary = checkpointSummary(jobId);
                diagnoseMissing(kafka, docs, embeddings, work.resolve("log"));
            } catch (Throwable t) {
                System.err.println(logTails(work));
                throw t;
            } finally {
                if (producer != null) {
                    producer.interrupt();
                }
                if (jobId != null) {
                    cancel(jobId);
                }
                run(bin.resolve("cluster.sh"), env, Duration.ofSeconds(60), "stop");
            }
        }
        double seconds = (System.nanoTime() - started) / 1e9;

        AvroCodec<Embedding> codec = AvroCodec.of(Embedding.class);
        Map<String, Embedding> byKey = new HashMap<>();
        int duplicates = 0;
        for (ConsumerRecord<byte[], byte[]> r : embeddings) {
            Embedding e = codec.decodeSingleObject(r.value());
            assertEquals(EmitReason.LAST, e.getReason(), "only LAST embeddings: " + e.getKey());
            if (byKey.put(e.getKey(), e) != null) {
                duplicates++;
            }
        }
        int missing = (int) docs.keySet().stream().filter(k -> !byKey.containsKey(k)).count();
        int mismatched = 0;
        try (RwkvModel m = RwkvModel.load(model, Backends.byName("cpu"))) {
            Tokenizer tokenizer = Tokenizers.forModel(m.config().vocab(), null);
            Embedder embedder = new Embedder(m.config(), Pooling.parse("hidden"), null);
            for (var doc : docs.entrySet()) {
                Embedding e = byKey.get(doc.getKey());
                if (e == null) {
                    continue;
                }
                int[] tokens = tokenizer.encodeBytes(doc.getValue().getBytes(StandardCharsets.UTF_8));
                RwkvState state = m.newState();
                float[] expected = embedder.embed(m.hidden(state, tokens), state);
                float[] actual = new float[e.getDim()];
                for (int i = 0; i < actual.length; i++) {
                    actual[i] = e.getVector().get(i);
                }
                if (!java.util.Arrays.equals(expected, actual) || e.getTokens() != tokens.length) {
                    mismatched++;
                }
            }
        }
        System.out.printf("crash test: %d documents, %d chunk records in (%d duplicates), %d embeddings out, "
                        + "%d duplicated, %d missing, %d not bit-identical, %d dead letters; kills %s; %s; %.1f s%n",
                documents, records.size(), records.size() - chunkCount(records), embeddings.size(), duplicates,
                missing, mismatched, deadLetters.size(), done, summary, seconds);
        assertEquals(kills, done.size(), "kills");
        assertEquals(0, duplicates, "duplicated documents");
        assertEquals(0, missing, "missing documents");
        assertEquals(0, mismatched, "embeddings not bit for bit the one-shot embedding");
        assertEquals(documents, embeddings.size(), "one embedding per document");
        assertEquals(0, deadLetters.size(), "no dead letters");
        for (Kill k : done) {
            assertTrue(k.restoredCheckpoint() > 0 || k.restoredCheckpoint() == -1,
                    "restored from a checkpoint: " + k);
        }
    }

    /**
     * For documents without a committed embedding: how many of their chunks the chunks topic holds, and whether an
     * embedding of theirs was written but never committed (read_uncommitted). Printed, for the report.
     */
    private static void diagnoseMissing(EmbeddedKafka kafka, Map<String, String> docs,
            List<ConsumerRecord<byte[], byte[]>> embeddings, Path logs) throws Exception {
        java.util.Set<String> have = new java.util.HashSet<>();
        embeddings.forEach(r -> have.add(new String(r.key(), StandardCharsets.UTF_8)));
        List<String> missing = docs.keySet().stream().filter(k -> !have.contains(k)).toList();
        if (missing.isEmpty()) {
            return;
        }
        AvroCodec<DocumentChunk> chunkCodec = AvroCodec.of(DocumentChunk.class);
        Map<String, List<String>> chunks = new TreeMap<>();
        for (ConsumerRecord<byte[], byte[]> r : read(kafka, "chunks", Integer.MAX_VALUE, Duration.ZERO,
                "read_uncommitted")) {
            String key = new String(r.key(), StandardCharsets.UTF_8);
            if (missing.contains(key)) {
                DocumentChunk c = chunkCodec.decodeSingleObject(r.value());
                chunks.computeIfAbsent(key, k -> new ArrayList<>()).add(c.getSeq() + (c.getLast() ? "L" : "")
                        + "@" + r.partition() + ":" + r.offset());
            }
        }
        Map<String, Integer> uncommitted = new TreeMap<>();
        for (ConsumerRecord<byte[], byte[]> r : read(kafka, "embeddings", Integer.MAX_VALUE, Duration.ZERO,
                "read_uncommitted")) {
            String key = new String(r.key(), StandardCharsets.UTF_8);
            if (missing.contains(key)) {
                uncommitted.merge(key + "@" + r.partition() + ":" + r.offset(), 1, Integer::sum);
            }
        }
        System.out.println("MISSING " + missing.size() + " documents " + missing + "; their chunks in the topic: "
                + chunks + "; their embeddings written but not committed: " + uncommitted);
        // the operator's DEBUG trace of each missing document, from every TaskManager log
        try (var files = Files.list(logs)) {
            for (Path f : files.filter(f -> f.getFileName().toString().matches("taskmanager-\\d+\\.log")).toList()) {
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
        try (org.apache.kafka.clients.admin.Admin admin =
                org.apache.kafka.clients.admin.Admin.create(kafka.adminProperties())) {
            List<String> ids = admin.listTransactions().all().get().stream()
                    .map(org.apache.kafka.clients.admin.TransactionListing::transactionalId).sorted().toList();
            var described = admin.describeTransactions(ids).all().get();
            Map<String, Integer> byState = new TreeMap<>();
            for (String id : ids) {
                var d = described.get(id);
                byState.merge(d.state().toString(), 1, Integer::sum);
                if (d.state() != org.apache.kafka.clients.admin.TransactionState.COMPLETE_COMMIT) {
                    System.out.println("TXN " + id + " " + d.state() + " producerId=" + d.producerId() + " epoch="
                            + d.producerEpoch());
                }
            }
            System.out.println("TXN states of " + ids.size() + " transactional ids: " + byState);
        }
    }

    /** Kills (-9) a TaskManager that runs tasks of the job, waits for recovery, starts the TaskManager again. */
    private Kill killAndRecover(String jobId, boolean duringCheckpoint, Path bin, Map<String, String> env)
            throws Exception {
        String victim = busyTaskManagers(jobId).getFirst();
        Path pidFile = Path.of(env.get("RWKV_CLUSTER_DIR"), "pid", victim + ".pid");
        long pid = Long.parseLong(Files.readString(pidFile).strip());
        long restoredBefore = restoredCheckpoint(jobId);
        boolean inCheckpoint = false;
        if (duringCheckpoint) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
            while (!inCheckpoint && System.nanoTime() < deadline) {
                inCheckpoint = checkpointCounts(jobId).path("in_progress").asInt() > 0;
                if (!inCheckpoint) {
                    Thread.sleep(10);
                }
            }
            assertTrue(inCheckpoint, "a checkpoint in progress to kill into");
        }
        long killedAt = System.currentTimeMillis();
        ProcessHandle.of(pid).orElseThrow(() -> new AssertionError(victim + " (pid " + pid + ") is not running"))
                .destroyForcibly();
        // the job goes down (the restarts counter moves) and comes back: RUNNING with every task running
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        long restarts = numRestarts(jobId);
        while (System.nanoTime() < deadline && (numRestarts(jobId) == restarts && restoredCheckpoint(jobId)
                == restoredBefore || !allTasksRunning(jobId))) {
            Thread.sleep(50);
        }
        assertTrue(allTasksRunning(jobId), "the job recovered within 120 s of killing " + victim);
        long runningMillis = System.currentTimeMillis() - killedAt;
        deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(300);
        while (System.nanoTime() < deadline && latestCompletedTrigger(jobId) <= killedAt) {
            Thread.sleep(50);
        }
        assertTrue(latestCompletedTrigger(jobId) > killedAt, "a checkpoint completed within 300 s after the kill");
        long checkpointMillis = System.currentTimeMillis() - killedAt;
        long restored = restoredCheckpoint(jobId);
        run(bin.resolve("cluster.sh"), env, Duration.ofSeconds(60), "start-taskmanager",
                victim.substring("taskmanager-".length()));
        waitForTaskManagers(2, Duration.ofSeconds(60));
        return new Kill(victim, inCheckpoint, runningMillis, checkpointMillis, restored);
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
                DocumentChunk chunk = DocumentChunk.newBuilder().setKey(doc.getKey()).setSeq(i)
                        .setText(text.substring(start, end)).setLast(last)
                        .setEventTime(Instant.ofEpochMilli(1_700_000_000_000L + i)).build();
                out.add(new ProducerRecord<>("chunks", doc.getKey().getBytes(StandardCharsets.UTF_8),
                        codec.encodeSingleObject(chunk)));
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

    /** Distinct records (a duplicate is the same ProducerRecord object sent twice). */
    private static int chunkCount(List<ProducerRecord<byte[], byte[]>> records) {
        return (int) records.stream().distinct().count();
    }

    /** Sends the records in order, paced evenly over {@code millis}. */
    private static void produce(EmbeddedKafka kafka, List<ProducerRecord<byte[], byte[]>> records, long millis,
            AtomicInteger sent) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
            long start = System.nanoTime();
            List<java.util.concurrent.Future<?>> acks = new ArrayList<>();
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

    private static List<ConsumerRecord<byte[], byte[]>> readCommittedUntil(EmbeddedKafka kafka, String topic,
            int count, Duration timeout) {
        return read(kafka, topic, count, timeout, "read_committed");
    }

    /** Reads from the beginning until {@code count} records or the timeout, then to the end offsets. */
    private static List<ConsumerRecord<byte[], byte[]>> read(EmbeddedKafka kafka, String topic, int count,
            Duration timeout, String isolation) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        try (KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> partitions = consumer.partitionsFor(topic, Duration.ofSeconds(30)).stream()
                    .map(info -> new TopicPartition(topic, info.partition())).toList();
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
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
            assertTrue(partitions.stream().allMatch(tp -> consumer.position(tp) >= end.get(tp)),
                    "read " + topic + " to its end offsets " + end);
            return read;
        }
    }

    // ------------------------------------------------------------------ the REST API

    private JsonNode get(String path) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(rest + path))
                .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() / 100 != 2) {
            throw new IOException("GET " + path + " answered " + r.statusCode() + ": " + r.body());
        }
        return JSON.readTree(r.body());
    }

    private boolean allTasksRunning(String jobId) throws Exception {
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

    private void awaitRunning(String jobId, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!allTasksRunning(jobId)) {
            assertTrue(System.nanoTime() < deadline, "job " + jobId + " not running within " + timeout);
            Thread.sleep(100);
        }
    }

    /** TaskManagers (resource ids, e.g. taskmanager-1) running tasks of the job's RWKV vertex, busiest first. */
    private List<String> busyTaskManagers(String jobId) throws Exception {
        for (JsonNode v : get("/jobs/" + jobId).path("vertices")) {
            if (v.path("name").asText().contains("RWKV") || v.path("name").asText().contains("rwkv")) {
                List<String> out = new ArrayList<>();
                for (JsonNode tm : get("/jobs/" + jobId + "/vertices/" + v.path("id").asText() + "/taskmanagers")
                        .path("taskmanagers")) {
                    out.add(tm.path("taskmanager-id").asText());
                }
                assertTrue(!out.isEmpty(), "the RWKV vertex runs somewhere");
                return out;
            }
        }
        throw new AssertionError("no RWKV vertex in job " + jobId + ": " + get("/jobs/" + jobId));
    }

    private JsonNode checkpointCounts(String jobId) throws Exception {
        return get("/jobs/" + jobId + "/checkpoints").path("counts");
    }

    private long latestCompletedTrigger(String jobId) throws Exception {
        return get("/jobs/" + jobId + "/checkpoints").path("latest").path("completed").path("trigger_timestamp")
                .asLong(0);
    }

    private long restoredCheckpoint(String jobId) throws Exception {
        JsonNode restored = get("/jobs/" + jobId + "/checkpoints").path("latest").path("restored");
        return restored.isMissingNode() || restored.isNull() ? -1 : restored.path("id").asLong(-1);
    }

    private long numRestarts(String jobId) throws Exception {
        for (JsonNode metric : get("/jobs/" + jobId + "/metrics?get=numRestarts")) {
            return metric.path("value").asLong();
        }
        return 0;
    }

    private void awaitCheckpoints(String jobId, long completed, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (checkpointCounts(jobId).path("completed").asLong() < completed) {
            assertTrue(System.nanoTime() < deadline, "no " + completed + " checkpoints within " + timeout);
            Thread.sleep(100);
        }
    }

    /** Checkpoint counts and the latest completed checkpoint's size and duration, for the report. */
    private String checkpointSummary(String jobId) throws Exception {
        JsonNode all = get("/jobs/" + jobId + "/checkpoints");
        JsonNode latest = all.path("latest").path("completed");
        return String.format("checkpoints %s, latest: full state %d B, incremental %d B, %d ms",
                all.path("counts"), latest.path("state_size").asLong(), latest.path("checkpointed_size").asLong(),
                latest.path("end_to_end_duration").asLong());
    }

    private void waitForTaskManagers(int n, Duration timeout) throws Exception {
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

    private void cancel(String jobId) {
        try {
            http.send(HttpRequest.newBuilder(URI.create(rest + "/jobs/" + jobId + "?mode=cancel"))
                    .method("PATCH", HttpRequest.BodyPublishers.noBody()).build(), HttpResponse.BodyHandlers.ofString());
        } catch (IOException | InterruptedException e) {
            System.err.println("cancel of " + jobId + " failed: " + e);
        }
    }

    // ------------------------------------------------------------------ processes

    private static String run(Path script, Map<String, String> env, Duration timeout, String... args)
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
            throw new AssertionError(script.getFileName() + " " + String.join(" ", args) + " ran past " + timeout
                    + ":\n" + out);
        }
        if (process.exitValue() != 0) {
            throw new AssertionError(script.getFileName() + " " + String.join(" ", args) + " exited "
                    + process.exitValue() + ":\n" + out);
        }
        System.out.print(out);
        return out;
    }

    private static boolean onPath(String tool) {
        try {
            return new ProcessBuilder("sh", "-c", "command -v " + tool).start().waitFor() == 0;
        } catch (IOException | InterruptedException e) {
            return false;
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }

    private static String logTails(Path work) {
        StringBuilder sb = new StringBuilder();
        try (Stream<Path> logs = Files.list(work.resolve("log"))) {
            for (Path log : logs.sorted().toList()) {
                List<String> lines = Files.readAllLines(log);
                sb.append("==== ").append(log).append('\n');
                lines.subList(Math.max(0, lines.size() - 40), lines.size()).forEach(l -> sb.append(l).append('\n'));
            }
        } catch (IOException e) {
            sb.append("no logs: ").append(e);
        }
        return sb.toString();
    }
}
