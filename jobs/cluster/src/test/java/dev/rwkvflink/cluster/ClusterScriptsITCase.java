package dev.rwkvflink.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.cuda.Cuda;
import dev.rwkvflink.kafka.AvroCodec;
import dev.rwkvflink.kafka.local.EmbeddedKafka;
import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.Embedding;
import dev.rwkvflink.schema.EmitReason;
import dev.rwkvflink.schema.Schemas;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
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
import org.junit.jupiter.api.Test;

/**
 * The scripts end to end: {@code bin/cluster.sh start 1} (a JobManager and a TaskManager JVM on
 * flink-lib.classpath), an embedded Kafka broker, {@code bin/submit.sh} with the shaded job jar, one committed
 * LAST embedding per document, then REST cancel and {@code cluster.sh stop} (always). The job asks for
 * {@code --backend cuda}: where CUDA is absent (CI) the operator runs on the CPU, and the reason is in the
 * TaskManager's log file (the engine logs through SLF4J, so it lands where Flink's logs do); where CUDA is present,
 * the log names the device the subtask runs on.
 */
class ClusterScriptsITCase {

    private static final Pattern JOB_ID = Pattern.compile("JobID ([0-9a-f]{32})");
    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @Test
    void startsClusterSubmitsJobJarAndEmbedsEveryDocument() throws Exception {
        ClusterSupport.Setup setup = ClusterSupport.Setup.of("it-cluster", Map.of());
        Map<String, String> env = setup.env();
        Path bin = setup.bin();
        Path model = setup.model();
        Path work = setup.work();
        String rest = "http://127.0.0.1:" + env.get("RWKV_CLUSTER_REST_PORT");

        Schemas.trustGeneratedClasses();
        Map<String, String> docs = new TreeMap<>();
        for (int d = 0; d < 5; d++) {
            docs.put("doc-" + d, "Document " + d + ": the river runs north past the stone bridge " + "ink ".repeat(d));
        }
        long started = System.nanoTime();
        try (EmbeddedKafka kafka = EmbeddedKafka.builder().start()) {
            kafka.createTopics(2, "chunks", "embeddings");
            kafka.createTopics("dead-letters");
            produce(kafka, docs);
            String jobId = null;
            try {
                ClusterSupport.run(bin.resolve("cluster.sh"), env, Duration.ofSeconds(60), "start", "1");
                waitForTaskManager(rest, Duration.ofSeconds(60));
                String out = ClusterSupport.submit(
                        bin,
                        env,
                        kafka,
                        "cluster-it",
                        "--starting-offsets",
                        "earliest",
                        "--model",
                        model.toString(),
                        "--checkpoint-interval-ms",
                        "500",
                        "--max-wait-ms",
                        "5",
                        "--parallelism",
                        "2",
                        "--backend",
                        "cuda");
                Matcher m = JOB_ID.matcher(out);
                assertTrue(m.find(), "submit.sh prints the JobID: " + out);
                jobId = m.group(1);

                Map<String, Embedding> last = readLastEmbeddings(kafka, docs.size(), Duration.ofSeconds(60));
                assertEquals(docs.keySet(), last.keySet(), "one LAST embedding per document");
                for (Embedding e : last.values()) {
                    assertTrue(e.getDim() > 0 && e.getVector().size() == e.getDim(), "vector of " + e.getKey());
                }
                String tmLogs = taskManagerLogs(work);
                String expected = Cuda.availability().available()
                        ? "runs on cuda"
                        : "rwkv: CUDA backend unavailable (unavailable: ";
                assertTrue(
                        tmLogs.contains(expected)
                                && (Cuda.availability().available() || tmLogs.contains("); using the CPU backend")),
                        "the TaskManager's log file says where the operator runs and why: " + expected);

                // the Prometheus endpoint of the TaskManager, as `cluster.sh status` names it, serves the rwkv metrics
                String status = ClusterSupport.run(bin.resolve("cluster.sh"), env, Duration.ofSeconds(30), "status");
                Matcher url = Pattern.compile("taskmanager-1: running \\(pid \\d+, metrics (http://\\S+/metrics)\\)")
                        .matcher(status);
                assertTrue(url.find(), "cluster.sh status names the TaskManager's metrics endpoint: " + status);
                String page = HttpClient.newHttpClient()
                        .send(
                                HttpRequest.newBuilder(URI.create(url.group(1)))
                                        .timeout(Duration.ofSeconds(10))
                                        .build(),
                                HttpResponse.BodyHandlers.ofString())
                        .body();
                Matcher embeddings = Pattern.compile(
                                "(?m)^flink_taskmanager_job_task_operator_rwkv_embeddings\\{[^}]*\\} ([0-9.eE+]+)$")
                        .matcher(page);
                double emitted = 0;
                while (embeddings.find()) {
                    emitted += Double.parseDouble(embeddings.group(1));
                }
                assertEquals(docs.size(), emitted, 0.0, "the rwkv embeddings counter over both subtasks");
            } catch (Throwable t) {
                System.err.println(ClusterSupport.logTails(work));
                throw t;
            } finally {
                if (jobId != null) {
                    cancel(rest, jobId);
                }
                ClusterSupport.run(bin.resolve("cluster.sh"), env, Duration.ofSeconds(30), "stop");
            }
        }
        System.out.printf("cluster test took %.1f s%n", (System.nanoTime() - started) / 1e9);
    }

    /** The TaskManagers' log files ({@code log/taskmanager-*.log} of the cluster's work directory), concatenated. */
    private static String taskManagerLogs(Path work) throws IOException {
        StringBuilder sb = new StringBuilder();
        try (Stream<Path> logs = Files.list(work.resolve("log"))) {
            for (Path log : logs.filter(f -> f.getFileName().toString().matches("taskmanager.*\\.log"))
                    .sorted()
                    .toList()) {
                sb.append(Files.readString(log));
            }
        }
        return sb.toString();
    }

    private static void produce(EmbeddedKafka kafka, Map<String, String> docs) throws Exception {
        AvroCodec<DocumentChunk> codec = AvroCodec.of(DocumentChunk.class);
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
            for (var doc : docs.entrySet()) {
                String text = doc.getValue();
                int cut = text.length() / 2;
                List<String> pieces = List.of(text.substring(0, cut), text.substring(cut));
                for (int seq = 0; seq < pieces.size(); seq++) {
                    DocumentChunk chunk = DocumentChunk.newBuilder()
                            .setKey(doc.getKey())
                            .setSeq(seq)
                            .setText(pieces.get(seq))
                            .setLast(seq == pieces.size() - 1)
                            .setEventTime(Instant.ofEpochMilli(1_700_000_000_000L + seq))
                            .build();
                    producer.send(new ProducerRecord<>(
                                    "chunks",
                                    doc.getKey().getBytes(StandardCharsets.UTF_8),
                                    codec.encodeSingleObject(chunk)))
                            .get(30, TimeUnit.SECONDS);
                }
            }
        }
    }

    /** Committed (read_committed) LAST embeddings by document, read until every document has one or time is up. */
    private static Map<String, Embedding> readLastEmbeddings(EmbeddedKafka kafka, int documents, Duration timeout) {
        AvroCodec<Embedding> codec = AvroCodec.of(Embedding.class);
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        Map<String, Embedding> last = new TreeMap<>();
        try (KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> partitions = consumer.partitionsFor("embeddings", Duration.ofSeconds(30)).stream()
                    .map(info -> new TopicPartition("embeddings", info.partition()))
                    .toList();
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            long deadline = System.nanoTime() + timeout.toNanos();
            while (last.size() < documents && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    Embedding e = codec.decodeSingleObject(record.value());
                    if (e.getReason() == EmitReason.LAST) {
                        assertEquals(null, last.put(e.getKey(), e), "a second LAST embedding of " + e.getKey());
                    }
                }
            }
        }
        return last;
    }

    private void waitForTaskManager(String rest, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        String body = "";
        while (System.nanoTime() < deadline) {
            try {
                body = http.send(
                                HttpRequest.newBuilder(URI.create(rest + "/overview"))
                                        .build(),
                                HttpResponse.BodyHandlers.ofString())
                        .body();
                if (body.matches("(?s).*\"taskmanagers\"\\s*:\\s*[1-9].*")) {
                    return;
                }
            } catch (IOException notYet) {
                body = notYet.toString();
            }
            Thread.sleep(250);
        }
        throw new AssertionError("no TaskManager registered within " + timeout + ": " + body);
    }

    private void cancel(String rest, String jobId) {
        try {
            HttpResponse<String> r = http.send(
                    HttpRequest.newBuilder(URI.create(rest + "/jobs/" + jobId + "?mode=cancel"))
                            .method("PATCH", HttpRequest.BodyPublishers.noBody())
                            .build(),
                    HttpResponse.BodyHandlers.ofString());
            assertTrue(r.statusCode() / 100 == 2, "cancel answered " + r.statusCode() + ": " + r.body());
        } catch (IOException | InterruptedException e) {
            System.err.println("cancel of " + jobId + " failed: " + e);
        }
    }
}
