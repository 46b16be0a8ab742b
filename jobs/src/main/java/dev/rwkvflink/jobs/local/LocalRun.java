package dev.rwkvflink.jobs.local;

import dev.rwkvflink.jobs.EmbedJob;
import dev.rwkvflink.jobs.Settings;
import dev.rwkvflink.kafka.AvroCodec;
import dev.rwkvflink.kafka.RecordFormat;
import dev.rwkvflink.kafka.local.EmbeddedKafka;
import dev.rwkvflink.kafka.local.EmbeddedSchemaRegistry;
import dev.rwkvflink.schema.Classification;
import dev.rwkvflink.schema.DeadLetter;
import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.Embedding;
import dev.rwkvflink.schema.EmitReason;
import java.io.IOException;
import java.io.PrintStream;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.JobStatus;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestOptions;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.runtime.jobgraph.JobGraph;
import org.apache.flink.runtime.jobmaster.JobResult;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.minicluster.MiniClusterConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.graph.StreamGraph;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * A whole rwkv-flink pipeline on one machine: an embedded Kafka broker, a Flink MiniCluster with its web UI, the
 * {@link EmbedJob}; documents are fed as chunks and every committed embedding is printed as it appears.
 * {@link #run()} returns once every document has its final embedding (or a dead letter); {@link #close()} stops
 * everything.
 */
public final class LocalRun implements AutoCloseable {

    /** What to run. */
    public record Options(
            Map<String, String> documents,
            String model,
            String vocab,
            String pooling,
            String head,
            String stats,
            String backend,
            int chunkBytes,
            int uiPort,
            int metricsPort,
            int parallelism,
            long checkpointMillis,
            Duration timeout,
            int dims,
            boolean shuffleChunks,
            double duplicates,
            long seed,
            long hotStateBytes,
            long snapshotTokens,
            RecordFormat format,
            String schemaRegistryUrl) {}

    /** Flink's Prometheus reporter, the metrics endpoint of {@code local}. */
    static final String PROMETHEUS_FACTORY = "org.apache.flink.metrics.prometheus.PrometheusReporterFactory";

    static final String CHUNKS = "chunks";
    static final String EMBEDDINGS = "embeddings";
    static final String DEAD_LETTERS = "chunks-dead-letters";
    static final String CLASSIFICATIONS = "classifications";

    private final Options options;
    private final PrintStream out;
    private EmbeddedKafka kafka;
    /** Started for the confluent format when no registry URL is given; else null. */
    private EmbeddedSchemaRegistry registry;

    private String registryUrl;
    private MiniCluster flink;
    private JobID job;
    private URI webUi;
    private URI metrics;

    public LocalRun(Options options, PrintStream out) {
        this.options = options;
        this.out = out;
    }

    /** The web UI's address once the cluster runs. */
    public URI webUi() {
        return webUi;
    }

    /** The Prometheus endpoint once the cluster runs (null when {@code metricsPort} is -1). */
    public URI metrics() {
        return metrics;
    }

    /**
     * Starts the broker and the cluster, submits the job, feeds the documents and prints embeddings until every
     * document is done.
     *
     * @return the final embeddings, by document
     */
    public Map<String, Embedding> run() throws Exception {
        long start = System.nanoTime();
        int documents = options.documents().size();
        out.printf("Starting Kafka (embedded, single node)...%n");
        kafka = EmbeddedKafka.builder().start();
        boolean classify = options.head() != null;
        kafka.createTopics(options.parallelism(), CHUNKS, EMBEDDINGS);
        kafka.createTopics(DEAD_LETTERS);
        if (classify) {
            kafka.createTopics(CLASSIFICATIONS);
        }
        out.printf(
                "  Kafka at %s (%.1f s): topics %s -> %s%s, dead letters %s%n",
                kafka.bootstrapServers(),
                seconds(start),
                CHUNKS,
                EMBEDDINGS,
                classify ? " + " + CLASSIFICATIONS : "",
                DEAD_LETTERS);

        registryUrl = options.schemaRegistryUrl();
        if (options.format() == RecordFormat.CONFLUENT && registryUrl == null) {
            long registryStart = System.nanoTime();
            out.printf("Starting a schema registry (embedded Apicurio Registry, in memory)...%n");
            registry = EmbeddedSchemaRegistry.start();
            registryUrl = registry.url();
            out.printf("  schema registry at %s (%.1f s)%n", registryUrl, seconds(registryStart));
        }

        startFlink();
        out.printf("  Flink web UI: %s%n", webUi);
        if (metrics != null) {
            out.printf(
                    "  Prometheus metrics: %s (the operator's under flink_taskmanager_job_task_operator_rwkv_*)%n",
                    metrics);
        }

        Settings settings = Settings.builder()
                .bootstrapServers(kafka.bootstrapServers())
                .chunksTopic(CHUNKS)
                .embeddingsTopic(EMBEDDINGS)
                .deadLettersTopic(DEAD_LETTERS)
                .classificationsTopic(CLASSIFICATIONS)
                .groupId("rwkv-local")
                .startingOffsets("earliest")
                .model(options.model())
                .vocab(options.vocab())
                .pooling(options.pooling())
                .head(options.head())
                .stats(options.stats())
                .backend(options.backend())
                .maxWaitMillis(20)
                .checkpointIntervalMillis(options.checkpointMillis())
                .parallelism(options.parallelism())
                .hotStateBytes(options.hotStateBytes())
                .snapshotTokens(options.snapshotTokens())
                .format(options.format())
                .schemaRegistryUrl(registryUrl)
                .build();
        job = submit(settings);
        out.printf("  job %s submitted: %s%n", job, EmbedJob.jobName(settings));

        int chunks = feed(options.documents());
        out.printf(
                "Fed %d documents as %d chunks of at most %d bytes; embeddings appear at checkpoints (every %d ms):%n",
                documents, chunks, options.chunkBytes(), options.checkpointMillis());
        Map<String, Embedding> finals = follow(classify, start);
        out.printf("Done: %d/%d documents embedded in %.1f s.%n", finals.size(), documents, seconds(start));
        return finals;
    }

    /** Blocks until the job ends (e.g. cancelled in the web UI) or this thread is interrupted. */
    public void awaitJob() throws Exception {
        flink.requestJobResult(job).get();
    }

    private void startFlink() throws Exception {
        Configuration conf = new Configuration();
        conf.set(RestOptions.ADDRESS, "127.0.0.1");
        conf.set(RestOptions.BIND_ADDRESS, "127.0.0.1");
        conf.set(RestOptions.PORT, options.uiPort());
        conf.set(RestOptions.BIND_PORT, Integer.toString(options.uiPort()));
        if (options.metricsPort() >= 0) {
            int port = freeMetricsPort(options.metricsPort());
            conf.setString("metrics.reporter.prom.factory.class", PROMETHEUS_FACTORY);
            conf.setString("metrics.reporter.prom.port", Integer.toString(port));
            metrics = URI.create("http://127.0.0.1:" + port + "/metrics");
        }
        flink = new MiniCluster(new MiniClusterConfiguration.Builder()
                .setConfiguration(conf)
                .setNumTaskManagers(1)
                .setNumSlotsPerTaskManager(options.parallelism())
                .build());
        try {
            flink.start();
        } catch (Exception e) {
            throw new IllegalStateException(
                    "could not start Flink with its web UI on port " + options.uiPort()
                            + " (in use? pick another with --ui-port, 0 for any free port): " + rootMessage(e),
                    e);
        }
        webUi = flink.getRestAddress().get(30, TimeUnit.SECONDS);
    }

    /**
     * A port for the metrics endpoint that is free now: {@code port}, or any free one for 0 (the reporter binds it a
     * moment later; another process taking it first is unlikely). A taken port is refused with a clear message:
     * Flink's reporter would only log that it could not bind, and the URL printed would lead to whatever holds it.
     */
    private static int freeMetricsPort(int port) {
        try (ServerSocket socket = new ServerSocket(port)) {
            return socket.getLocalPort();
        } catch (IOException e) {
            throw new IllegalStateException(
                    "the Prometheus port " + port + " is in use (pick another with "
                            + "--metrics-port, 0 for any free port, -1 for none): " + e.getMessage(),
                    e);
        }
    }

    private JobID submit(Settings settings) throws Exception {
        Configuration jobConf = new Configuration();
        // A broken model or vocabulary should fail the run, not restart forever.
        jobConf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        jobConf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 2);
        jobConf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ofSeconds(1));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(jobConf);
        EmbedJob.build(env, settings);
        StreamGraph graph = env.getStreamGraph();
        graph.setJobName(EmbedJob.jobName(settings));
        JobGraph jobGraph = graph.getJobGraph(LocalRun.class.getClassLoader(), new JobID());
        return flink.submitJob(jobGraph).get(60, TimeUnit.SECONDS).getJobID();
    }

    /**
     * Sends every document's chunks: documents interleaved (chunk 0 of each, then chunk 1, ...), or with
     * {@code shuffleChunks} all chunks in a seeded random order; {@code duplicates} re-sends that fraction of the
     * chunks a second time (the operator drops repeats).
     */
    private int feed(Map<String, String> documents) throws Exception {
        Instant now = Instant.now();
        List<List<DocumentChunk>> perDocument = new ArrayList<>();
        documents.forEach((key, text) -> perDocument.add(Documents.chunks(key, text, options.chunkBytes(), now)));
        List<DocumentChunk> order = new ArrayList<>();
        for (int seq = 0; ; seq++) {
            boolean any = false;
            for (List<DocumentChunk> chunks : perDocument) {
                if (seq < chunks.size()) {
                    order.add(chunks.get(seq));
                    any = true;
                }
            }
            if (!any) {
                break;
            }
        }
        Random rnd = new Random(options.seed());
        int repeats = (int) Math.round(order.size() * options.duplicates());
        for (int i = 0; i < repeats; i++) {
            order.add(order.get(rnd.nextInt(order.size())));
        }
        if (options.shuffleChunks()) {
            Collections.shuffle(order, rnd);
        }
        AvroCodec<DocumentChunk> codec = AvroCodec.forTopic(DocumentChunk.class, CHUNKS, options.format(), registryUrl);
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
            for (DocumentChunk c : order) {
                producer.send(new ProducerRecord<>(
                        CHUNKS, c.getKey().getBytes(StandardCharsets.UTF_8), codec.encode(c, options.format())));
            }
            producer.flush();
        }
        return order.size();
    }

    /** Prints committed output until every document has a final embedding or a dead letter. */
    private Map<String, Embedding> follow(boolean classify, long start) throws Exception {
        RecordFormat format = options.format();
        AvroCodec<Embedding> embeddings = AvroCodec.forTopic(Embedding.class, EMBEDDINGS, format, registryUrl);
        AvroCodec<DeadLetter> deadLetters = AvroCodec.of(DeadLetter.class); // always single-object
        AvroCodec<Classification> classes =
                AvroCodec.forTopic(Classification.class, CLASSIFICATIONS, format, registryUrl);
        Set<String> expected = options.documents().keySet();
        Map<String, Embedding> finals = new LinkedHashMap<>();
        Set<String> rejected = new HashSet<>();
        Set<String> classified = new HashSet<>();
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        long deadline = System.nanoTime() + options.timeout().toNanos();
        try (KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (String topic :
                    classify ? List.of(EMBEDDINGS, DEAD_LETTERS, CLASSIFICATIONS) : List.of(EMBEDDINGS, DEAD_LETTERS)) {
                consumer.partitionsFor(topic, Duration.ofSeconds(30))
                        .forEach(info -> partitions.add(new TopicPartition(topic, info.partition())));
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            // With a head, a document is done once its class is read too (a different topic: it may come later).
            while (finals.size() + rejected.size() < expected.size()
                    || (classify && !classified.containsAll(finals.keySet()))) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException(
                            "timed out after " + options.timeout().toSeconds() + " s with " + finals.size() + "/"
                                    + expected.size() + " documents embedded (see " + webUi + ")");
                }
                checkJobRunning();
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    switch (record.topic()) {
                        case EMBEDDINGS -> {
                            Embedding e = embeddings.decode(record.value(), format);
                            boolean last = e.getReason() != EmitReason.PROGRESS;
                            if (last && expected.contains(e.getKey())) {
                                finals.put(e.getKey(), e);
                            }
                            out.printf(
                                    "[%2d/%d] %-12s %-5s tokens %5d  %s  (%.1f s)%n",
                                    finals.size(),
                                    expected.size(),
                                    e.getKey(),
                                    e.getReason(),
                                    e.getTokens(),
                                    head(e.getVector()),
                                    seconds(start));
                        }
                        case CLASSIFICATIONS -> {
                            Classification c = classes.decode(record.value(), format);
                            int best = c.getLabels().indexOf(c.getLabel());
                            classified.add(c.getKey());
                            out.printf(
                                    "        %-12s class %s (p %.3f)%n",
                                    c.getKey(),
                                    c.getLabel(),
                                    best < 0 ? Float.NaN : c.getProbabilities().get(best));
                        }
                        default -> {
                            DeadLetter d = deadLetters.decodeSingleObject(record.value());
                            String key = d.getKey() == null ? "?" : utf8(d.getKey());
                            if (expected.contains(key)) {
                                rejected.add(key);
                            }
                            out.printf("  dead letter %s: %s%n", key, d.getReason());
                        }
                    }
                }
            }
        }
        if (!rejected.isEmpty()) {
            out.printf("  %d document(s) went to dead letters: %s%n", rejected.size(), rejected);
        }
        return finals;
    }

    private void checkJobRunning() throws Exception {
        JobStatus status = flink.getJobStatus(job).get(10, TimeUnit.SECONDS);
        if (status.isGloballyTerminalState()) {
            JobResult result = flink.requestJobResult(job).get(10, TimeUnit.SECONDS);
            String cause = result.getSerializedThrowable()
                    .map(t -> rootMessage(t.deserializeError(getClass().getClassLoader())))
                    .orElse("no error");
            throw new IllegalStateException("the job ended " + status + ": " + cause);
        }
    }

    private String head(List<Float> vector) {
        StringBuilder s = new StringBuilder("dim ").append(vector.size()).append(" [");
        int n = Math.min(options.dims(), vector.size());
        for (int i = 0; i < n; i++) {
            s.append(i == 0 ? "" : ", ").append(String.format(Locale.ROOT, "%+.4f", vector.get(i)));
        }
        return s.append(n < vector.size() ? ", ...]" : "]").toString();
    }

    private static String utf8(ByteBuffer buffer) {
        ByteBuffer view = buffer.duplicate();
        byte[] bytes = new byte[view.remaining()];
        view.get(bytes);
        return new String(bytes, StandardCharsets.UTF_8);
    }

    private static double seconds(long startNanos) {
        return (System.nanoTime() - startNanos) / 1e9;
    }

    static String rootMessage(Throwable t) {
        Throwable root = t;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        return root.getMessage() == null ? root.toString() : root.getMessage();
    }

    /** Cancels the job, stops the cluster and the broker. Safe to call more than once. */
    @Override
    public synchronized void close() {
        if (flink != null) {
            try {
                if (job != null
                        && !flink.getJobStatus(job).get(10, TimeUnit.SECONDS).isGloballyTerminalState()) {
                    flink.cancelJob(job).get(30, TimeUnit.SECONDS);
                }
                flink.requestJobResult(job).get(30, TimeUnit.SECONDS); // cancelled before the cluster goes down
            } catch (Exception ignored) {
                // the cluster goes down next anyway
            }
            try {
                flink.closeAsync().get(60, TimeUnit.SECONDS);
            } catch (Exception e) {
                out.println("warning: Flink did not stop cleanly: " + rootMessage(e));
            }
            flink = null;
        }
        if (kafka != null) {
            kafka.close();
            kafka = null;
        }
        if (registry != null) {
            registry.close();
            registry = null;
        }
    }
}
