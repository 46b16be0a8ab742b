package dev.rwkvflink.jobs.bench;

import dev.rwkvflink.jobs.EmbedJob;
import dev.rwkvflink.jobs.Settings;
import dev.rwkvflink.jobs.SettingsBuilder;
import dev.rwkvflink.kafka.AvroCodec;
import dev.rwkvflink.kafka.KafkaJobs;
import dev.rwkvflink.kafka.local.EmbeddedKafka;
import dev.rwkvflink.operator.RwkvStreams;
import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.Embedding;
import dev.rwkvflink.schema.Schemas;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.SplittableRandom;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.StreamSupport;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.JobStatus;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.runtime.checkpoint.AbstractCheckpointStats;
import org.apache.flink.runtime.checkpoint.CompletedCheckpointStats;
import org.apache.flink.runtime.execution.ExecutionState;
import org.apache.flink.runtime.jobgraph.JobGraph;
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
 * The whole Kafka -> Flink -> engine -> Kafka job ({@link EmbedJob}) measured end to end: an embedded KRaft broker,
 * a Flink MiniCluster (one TaskManager with as many slots as the run's parallelism), the real sources, operator,
 * state backend, checkpoints and sinks. Not a unit test: {@code native-bindings/gpu-check.sh --main
 * dev.rwkvflink.jobs.bench.PipelineBench ...} on the GPU machine, or on the CPU with the test classpath.
 *
 * <p>Each run (documents D, checkpoint interval, parallelism, delivery, and the sinks: in a task of their own,
 * "separate", the default, or "chained" to the operator, as EmbedJob's --separate-sinks):
 * <ol>
 *   <li><b>sustained throughput</b>: D open documents, each sent as R chunks of T random token ids (a backlog,
 *       produced as fast as the broker takes it while the job runs); every chunk yields an embedding (progress
 *       embeddings on every chunk). Reported: the operator's tokens/s while it had work (its own counter, from
 *       10% to 90% of the tokens), tokens/s from the first chunk produced to the last embedding committed, chunks
 *       (= embeddings) per second and D*R*T-token documents per second; the checkpoints completed meanwhile
 *       (duration, bytes); and where the operator's time went (engine, replays of cold keys, state reads,
 *       write-back to Flink state, emission including Avro and the Kafka producer, the whole barrier), as shares of
 *       wall time;
 *       the GPU's utilisation (nvidia-smi, sampled every 200 ms, when present).</li>
 *   <li><b>latency</b>: then chunks at a fixed rate (a fraction of the measured chunk rate) for some seconds, each
 *       stamped with its produce time; latency is the time from produce to the moment a read_committed consumer
 *       sees its embedding (for exactly-once: after the checkpoint that commits it).</li>
 * </ol>
 *
 * Options: {@code --model random:0.1b:BF16 --vocab FILE --backend cuda --runs D:CHECKPOINT_MS:PARALLELISM:DELIVERY[:SINKS],...
 * --chunk-tokens 64 --chunks 8 --state hashmap|rocksdb --latency-seconds 15 --latency-load 0.5 --max-batch-keys 1024
 * --partitions 4 --phase-timeout-s 120 --token-range 65536 (token ids drawn below this) --hot-state-bytes 64GiB
 * --snapshot-tokens -1 (the token-log budget K; 0: a whole state at every write-back)}. Random inputs from a fixed
 * seed (1).
 */
public final class PipelineBench {

    private record Run(int documents, long checkpointMs, int parallelism, String delivery, String sinks) {
        static Run parse(String s) {
            String[] p = s.strip().split(":");
            String sinks = p.length > 4 ? p[4] : "separate";
            if (!sinks.equals("separate") && !sinks.equals("chained")) {
                throw new IllegalArgumentException("sinks are 'separate' or 'chained', got '" + sinks + "'");
            }
            return new Run(
                    Integer.parseInt(p[0]),
                    Long.parseLong(p[1]),
                    Integer.parseInt(p[2]),
                    p.length > 3 ? p[3] : "exactly-once",
                    sinks);
        }
    }

    /** An embedding as seen by the consumer: its seq, event (= produce) time, and when it became visible. */
    private record Seen(long seq, long eventMillis, long seenMillis) {}

    private final Map<String, String> options = new LinkedHashMap<>();
    private final List<String> rows = new ArrayList<>();
    private EmbeddedKafka kafka;
    private final GpuUtilisation gpu = GpuUtilisation.start();

    public static void main(String[] args) throws Exception {
        Schemas.trustGeneratedClasses();
        PipelineBench bench = new PipelineBench();
        for (int i = 0; i + 1 < args.length; i += 2) {
            bench.options.put(args[i].replaceFirst("^--", ""), args[i + 1]);
        }
        try {
            bench.runAll();
        } finally {
            bench.gpu.close();
        }
        System.exit(0); // the broker's and Flink's threads
    }

    private String opt(String name, String fallback) {
        return options.getOrDefault(name, fallback);
    }

    private void runAll() throws Exception {
        String model = opt("model", "random:0.1b:BF16");
        String backend = opt("backend", "cuda");
        List<Run> runs = Arrays.stream(opt("runs", "1000:1000:1:exactly-once").split(","))
                .map(Run::parse)
                .toList();
        int maxDocuments = runs.stream().mapToInt(Run::documents).max().orElse(1);
        if (backend.startsWith("cuda") && System.getProperty("rwkv.cuda.slots") == null) {
            // every open document hot on the GPU: its share of the pool per operator instance, with room for skew
            System.setProperty("rwkv.cuda.slots", Integer.toString(Math.max(256, maxDocuments * 5 / 4)));
        }
        System.out.printf(
                "PipelineBench: model %s, backend %s, runs %s, %s chunks x %s tokens per document, state %s,"
                        + " rwkv.cuda.slots %s%n",
                model,
                backend,
                runs,
                opt("chunks", "8"),
                opt("chunk-tokens", "64"),
                opt("state", "hashmap"),
                System.getProperty("rwkv.cuda.slots"));
        kafka = EmbeddedKafka.builder().start();
        Settings probe = settings(runs.getFirst(), 0);
        long loadStart = System.nanoTime();
        try (AutoCloseable loaded = RwkvStreams.keepLoaded(probe.operatorConfig())) {
            System.out.printf(
                    "model loaded in %.1f s (kept loaded across the runs)%n", (System.nanoTime() - loadStart) / 1e9);
            for (int i = 0; i < runs.size(); i++) {
                run(runs.get(i), i);
            }
        } finally {
            kafka.close();
        }
        System.out.println();
        System.out.println("| documents | checkpoint | p | delivery | sinks | operator tok/s | end-to-end tok/s"
                + " | chunks/s | docs/s | latency p50 / p99 ms | checkpoints: n, median / max ms, median MB | engine"
                + " | replay | read | write-back | emit | emit us / embedding | barrier | GPU util |");
        System.out.println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        rows.forEach(System.out::println);
    }

    private Settings settings(Run run, int index) {
        int chunkTokens = Integer.parseInt(opt("chunk-tokens", "64"));
        int maxKeys = Integer.parseInt(opt("max-batch-keys", "1024"));
        SettingsBuilder b = Settings.builder()
                .bootstrapServers(kafka.bootstrapServers())
                .chunksTopic("chunks-" + index)
                .embeddingsTopic("embeddings-" + index)
                .deadLettersTopic("dead-" + index)
                .groupId("bench-" + index)
                .startingOffsets("earliest")
                .model(opt("model", "random:0.1b:BF16"))
                .vocab(options.get("vocab"))
                .backend(opt("backend", "cuda"))
                .checkpointIntervalMillis(run.checkpointMs())
                .parallelism(run.parallelism())
                .maxBatchKeys(maxKeys)
                .maxBatchTokens(maxKeys * chunkTokens * 2)
                .maxWaitMillis(Long.parseLong(opt("max-wait-ms", "20")))
                .idleTimeoutMillis(0)
                .emitEveryChunk(true)
                .delivery(KafkaJobs.delivery(run.delivery()))
                .separateSinks(run.sinks().equals("separate"))
                .hotStateBytes(Long.parseLong(opt("hot-state-bytes", Long.toString(64L << 30))))
                .snapshotTokens(Long.parseLong(opt("snapshot-tokens", "-1")))
                .kafkaProperty("transaction.timeout.ms=600000");
        return b.build();
    }

    private void run(Run run, int index) throws Exception {
        int chunks = Integer.parseInt(opt("chunks", "8"));
        int chunkTokens = Integer.parseInt(opt("chunk-tokens", "64"));
        int partitions = Integer.parseInt(opt("partitions", "4"));
        long phaseTimeout = TimeUnit.SECONDS.toMillis(Long.parseLong(opt("phase-timeout-s", "120")));
        Settings settings = settings(run, index);
        kafka.createTopics(partitions, settings.chunksTopic(), settings.embeddingsTopic());
        kafka.createTopics(settings.deadLettersTopic());
        System.out.printf("%n== run %d: %s, %d chunks of %d tokens per document%n", index, run, chunks, chunkTokens);

        Path checkpoints = Files.createTempDirectory("rwkv-bench-ckpt");
        Configuration clusterConf = new Configuration();
        clusterConf.setString(CapturedMetrics.CONFIG_KEY, CapturedMetrics.Factory.class.getName());
        CapturedMetrics.clear();
        try (MiniCluster flink = new MiniCluster(new MiniClusterConfiguration.Builder()
                .setConfiguration(clusterConf)
                .setNumTaskManagers(1)
                .setNumSlotsPerTaskManager(run.parallelism())
                .build())) {
            flink.start();
            Configuration jobConf = new Configuration();
            jobConf.set(CheckpointingOptions.CHECKPOINT_STORAGE, "filesystem");
            jobConf.set(
                    CheckpointingOptions.CHECKPOINTS_DIRECTORY,
                    checkpoints.toUri().toString());
            jobConf.set(StateBackendOptions.STATE_BACKEND, opt("state", "hashmap"));
            jobConf.set(CheckpointingOptions.INCREMENTAL_CHECKPOINTS, true);
            jobConf.set(RestartStrategyOptions.RESTART_STRATEGY, "none");
            StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(jobConf);
            EmbedJob.build(env, settings);
            StreamGraph graph = env.getStreamGraph();
            graph.setJobName("bench " + index);
            JobGraph jobGraph = graph.getJobGraph(PipelineBench.class.getClassLoader(), new JobID());
            JobID job = flink.submitJob(jobGraph).get(60, TimeUnit.SECONDS).getJobID();
            awaitRunning(flink, job);

            Consumer consumer = new Consumer(settings.embeddingsTopic());
            consumer.start();
            MetricSampler sampler = new MetricSampler();
            sampler.start();
            try {
                // 1. sustained throughput from a backlog
                SplittableRandom rnd = new SplittableRandom(1);
                int vocab = Integer.parseInt(opt("token-range", "65536"));
                long total = (long) run.documents() * chunks;
                long produceStart = System.currentTimeMillis();
                produce(settings.chunksTopic(), run.documents(), 0, chunks, chunkTokens, vocab, rnd, 0);
                long produced = System.currentTimeMillis();
                boolean complete = consumer.await(total, produceStart + phaseTimeout);
                long lastSeen = consumer.lastSeenMillis();
                long tokens = total * chunkTokens;
                MetricSampler.Window w = sampler.window(0.1 * tokens, 0.9 * tokens);
                double e2e = complete ? tokens / ((lastSeen - produceStart) / 1e3) : Double.NaN;
                double chunkRate =
                        complete ? total / ((lastSeen - produceStart) / 1e3) : w.tokensPerSecond() / chunkTokens;
                System.out.printf(
                        "backlog of %d chunks produced in %.1f s; %s; operator %.0f tok/s (window %.1f s),"
                                + " end to end %.0f tok/s%n",
                        total,
                        (produced - produceStart) / 1e3,
                        complete
                                ? "all embeddings committed after " + (lastSeen - produceStart) + " ms"
                                : "INCOMPLETE: " + consumer.count() + " of " + total + " embeddings in time",
                        w.tokensPerSecond(),
                        w.seconds(),
                        e2e);
                String checkpointsText = checkpoints(flink, job, produceStart, lastSeen);
                double utilisation = gpu.mean(w.startMillis(), w.endMillis());

                // 2. latency at a fixed load
                double rate = Double.parseDouble(opt("latency-load", "0.5")) * chunkRate;
                int seconds = Integer.parseInt(opt("latency-seconds", "15"));
                String latency = "-";
                if (complete && rate > 0 && seconds > 0) {
                    long n = Math.max(1, (long) (rate * seconds));
                    int rounds = (int) Math.min(Integer.MAX_VALUE, (n + run.documents() - 1) / run.documents());
                    long sendStart = System.currentTimeMillis();
                    long sent = produce(
                            settings.chunksTopic(), run.documents(), chunks, rounds, chunkTokens, vocab, rnd, rate);
                    boolean all = consumer.await(total + sent, System.currentTimeMillis() + phaseTimeout);
                    long[] lat = consumer.latencies(chunks);
                    latency = lat.length == 0
                            ? "none"
                            : String.format(
                                    Locale.ROOT,
                                    "%d / %d%s",
                                    percentile(lat, 50),
                                    percentile(lat, 99),
                                    all ? "" : " (incomplete)");
                    System.out.printf(
                            "latency: %d chunks at %.0f/s over %.1f s: p50 %d ms, p90 %d ms, p99 %d ms, max"
                                    + " %d ms%s%n",
                            sent,
                            rate,
                            (System.currentTimeMillis() - sendStart) / 1e3,
                            percentile(lat, 50),
                            percentile(lat, 90),
                            percentile(lat, 99),
                            percentile(lat, 100),
                            all ? "" : " (not all arrived in time)");
                }
                rows.add(String.format(
                        Locale.ROOT,
                        "| %d | %d ms | %d | %s | %s | %.0f | %.0f | %.0f | %.1f | %s | %s |"
                                + " %.0f%% | %.0f%% | %.0f%% | %.0f%% | %.0f%% | %.1f | %.0f%% | %s |",
                        run.documents(),
                        run.checkpointMs(),
                        run.parallelism(),
                        run.delivery(),
                        run.sinks(),
                        w.tokensPerSecond(),
                        e2e,
                        chunkRate,
                        chunkRate / chunks,
                        latency,
                        checkpointsText,
                        100 * w.share("engineNanos"),
                        100 * w.share("replayNanos"),
                        100 * w.share("stateReadNanos"),
                        100 * w.share("stateWriteNanos"),
                        100 * w.share("emitNanos"),
                        w.microsPer("emitNanos", "embeddings"),
                        100 * w.share("barrierNanos"),
                        Double.isNaN(utilisation) ? "n/a" : String.format(Locale.ROOT, "%.0f%%", utilisation)));
                System.out.println(rows.getLast());
            } finally {
                sampler.stop();
                consumer.stop();
                flink.cancelJob(job).get(60, TimeUnit.SECONDS);
            }
        } finally {
            deleteQuietly(checkpoints);
        }
    }

    private static void awaitRunning(MiniCluster flink, JobID job) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (true) {
            var graph = flink.getExecutionGraph(job).get(30, TimeUnit.SECONDS);
            boolean running = graph.getState() == JobStatus.RUNNING
                    && StreamSupport.stream(graph.getAllExecutionVertices().spliterator(), false)
                            .allMatch(v -> v.getExecutionState() == ExecutionState.RUNNING);
            if (running) {
                return;
            }
            if (graph.getState().isGloballyTerminalState() || System.nanoTime() > deadline) {
                throw new IllegalStateException("job not running: " + graph.getState()
                        + (graph.getFailureInfo() == null
                                ? ""
                                : ": " + graph.getFailureInfo().getExceptionAsString()));
            }
            Thread.sleep(100);
        }
    }

    /** Completed checkpoints between two times: count, median / max duration, median bytes. */
    private static String checkpoints(MiniCluster flink, JobID job, long from, long to) throws Exception {
        List<Long> durations = new ArrayList<>();
        List<Long> sizes = new ArrayList<>();
        for (AbstractCheckpointStats c : flink.getExecutionGraph(job)
                .get(30, TimeUnit.SECONDS)
                .getCheckpointStatsSnapshot()
                .getHistory()
                .getCheckpoints()) {
            if (c instanceof CompletedCheckpointStats done
                    && c.getTriggerTimestamp() >= from
                    && c.getTriggerTimestamp() <= to) {
                durations.add(done.getEndToEndDuration());
                sizes.add(done.getCheckpointedSize());
            }
        }
        if (durations.isEmpty()) {
            return "0";
        }
        long[] d = durations.stream().mapToLong(Long::longValue).toArray();
        long[] s = sizes.stream().mapToLong(Long::longValue).toArray();
        String text = String.format(
                Locale.ROOT,
                "%d, %d / %d ms, %.0f MB",
                d.length,
                percentile(d, 50),
                percentile(d, 100),
                percentile(s, 50) / 1e6);
        System.out.println("checkpoints during the backlog: " + text);
        return text;
    }

    /**
     * Sends {@code rounds} chunks per document (seq {@code firstSeq} on), documents interleaved; {@code rate} > 0
     * paces them (chunks per second) and stamps each with its send time; returns how many were sent.
     */
    private long produce(
            String topic,
            int documents,
            int firstSeq,
            int rounds,
            int chunkTokens,
            int vocab,
            SplittableRandom rnd,
            double rate)
            throws Exception {
        AvroCodec<DocumentChunk> codec = AvroCodec.of(DocumentChunk.class);
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        p.put(ProducerConfig.LINGER_MS_CONFIG, rate > 0 ? "0" : "5");
        p.put(ProducerConfig.BATCH_SIZE_CONFIG, Integer.toString(1 << 20));
        p.put(ProducerConfig.ACKS_CONFIG, "1");
        long sent = 0;
        long start = System.nanoTime();
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
            for (int r = 0; r < rounds; r++) {
                for (int d = 0; d < documents; d++) {
                    if (rate > 0) {
                        long due = start + (long) (sent * 1e9 / rate);
                        long wait = due - System.nanoTime();
                        if (wait > 0) {
                            TimeUnit.NANOSECONDS.sleep(wait);
                        }
                    }
                    List<Integer> tokens = new ArrayList<>(chunkTokens);
                    for (int t = 0; t < chunkTokens; t++) {
                        tokens.add(rnd.nextInt(vocab));
                    }
                    String key = "doc-" + d;
                    DocumentChunk chunk = DocumentChunk.newBuilder()
                            .setKey(key)
                            .setSeq(firstSeq + r)
                            .setTokens(tokens)
                            .setLast(false)
                            .setEventTime(Instant.ofEpochMilli(System.currentTimeMillis()))
                            .build();
                    producer.send(new ProducerRecord<>(
                            topic, key.getBytes(StandardCharsets.UTF_8), codec.encodeSingleObject(chunk)));
                    sent++;
                }
            }
            producer.flush();
        }
        return sent;
    }

    static long percentile(long[] values, double p) {
        if (values.length == 0) {
            return -1;
        }
        long[] s = values.clone();
        Arrays.sort(s);
        int i = (int) Math.ceil(p / 100 * s.length) - 1;
        return s[Math.max(0, Math.min(s.length - 1, i))];
    }

    private static void deleteQuietly(Path dir) {
        try (var files = Files.walk(dir)) {
            files.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
        } catch (Exception ignored) {
            // a temporary directory
        }
    }

    /** Reads the embeddings topic (read_committed) from the beginning in its own thread. */
    private final class Consumer {
        private final String topic;
        private final List<Seen> seen = new CopyOnWriteArrayList<>();
        private final AtomicBoolean stop = new AtomicBoolean();
        private Thread thread;

        Consumer(String topic) {
            this.topic = topic;
        }

        void start() {
            thread = new Thread(this::loop, "bench-consumer");
            thread.setDaemon(true);
            thread.start();
        }

        private void loop() {
            Properties p = new Properties();
            p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
            p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
            p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "5000");
            AvroCodec<Embedding> codec = AvroCodec.of(Embedding.class);
            try (KafkaConsumer<byte[], byte[]> consumer =
                    new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
                List<TopicPartition> parts = consumer.partitionsFor(topic, Duration.ofSeconds(30)).stream()
                        .map(i -> new TopicPartition(topic, i.partition()))
                        .toList();
                consumer.assign(parts);
                consumer.seekToBeginning(parts);
                while (!stop.get()) {
                    var records = consumer.poll(Duration.ofMillis(20));
                    long now = System.currentTimeMillis();
                    List<Seen> batch = new ArrayList<>(records.count());
                    for (ConsumerRecord<byte[], byte[]> r : records) {
                        Embedding e = codec.decodeSingleObject(r.value());
                        batch.add(new Seen(e.getSeq(), e.getEventTime().toEpochMilli(), now));
                    }
                    seen.addAll(batch);
                }
            }
        }

        long count() {
            return seen.size();
        }

        boolean await(long count, long deadlineMillis) throws InterruptedException {
            while (seen.size() < count && System.currentTimeMillis() < deadlineMillis) {
                Thread.sleep(20);
            }
            return seen.size() >= count;
        }

        long lastSeenMillis() {
            return seen.stream().mapToLong(Seen::seenMillis).max().orElse(-1);
        }

        /** Produce-to-visible times of the embeddings of chunks with seq >= {@code fromSeq}. */
        long[] latencies(long fromSeq) {
            return seen.stream()
                    .filter(s -> s.seq() >= fromSeq)
                    .mapToLong(s -> s.seenMillis() - s.eventMillis())
                    .toArray();
        }

        void stop() throws InterruptedException {
            stop.set(true);
            thread.join(10_000);
        }
    }

    /** Samples the operator's counters every 100 ms. */
    private static final class MetricSampler {
        private static final String[] NAMES = {
            "tokens",
            "engineNanos",
            "replayNanos",
            "stateReadNanos",
            "stateWriteNanos",
            "emitNanos",
            "barrierNanos",
            "embeddings"
        };
        private final List<long[]> samples = new CopyOnWriteArrayList<>(); // millis, then the counters
        private final AtomicBoolean stop = new AtomicBoolean();
        private Thread thread;

        void start() {
            thread = new Thread(
                    () -> {
                        while (!stop.get()) {
                            long[] s = new long[NAMES.length + 1];
                            s[0] = System.currentTimeMillis();
                            for (int i = 0; i < NAMES.length; i++) {
                                s[i + 1] = CapturedMetrics.sum(NAMES[i]);
                            }
                            samples.add(s);
                            try {
                                Thread.sleep(100);
                            } catch (InterruptedException e) {
                                return;
                            }
                        }
                    },
                    "bench-metrics");
            thread.setDaemon(true);
            thread.start();
        }

        void stop() throws InterruptedException {
            stop.set(true);
            thread.join(5_000);
        }

        /** The samples from where the token counter first reached {@code fromTokens} to {@code toTokens}. */
        Window window(double fromTokens, double toTokens) {
            long[] a = null;
            long[] b = null;
            for (long[] s : samples) {
                if (a == null && s[1] >= fromTokens) {
                    a = s;
                }
                if (b == null && s[1] >= toTokens) {
                    b = s;
                }
            }
            if (a == null) {
                a = samples.getFirst();
            }
            if (b == null || b == a) {
                b = samples.getLast();
            }
            return new Window(a, b);
        }

        record Window(long[] a, long[] b) {
            double seconds() {
                return Math.max(1e-3, (b[0] - a[0]) / 1e3);
            }

            double tokensPerSecond() {
                return (b[1] - a[1]) / seconds();
            }

            /** Share of wall time spent in counter {@code name} (nanoseconds), summed over subtasks. */
            double share(String name) {
                int i = Arrays.asList(NAMES).indexOf(name) + 1;
                return (b[i] - a[i]) / 1e9 / seconds();
            }

            /** Microseconds of counter {@code nanos} per increment of counter {@code count} in the window. */
            double microsPer(String nanos, String count) {
                int i = Arrays.asList(NAMES).indexOf(nanos) + 1;
                int j = Arrays.asList(NAMES).indexOf(count) + 1;
                return (b[i] - a[i]) / 1e3 / Math.max(1, b[j] - a[j]);
            }

            long startMillis() {
                return a[0];
            }

            long endMillis() {
                return b[0];
            }
        }
    }

    /** nvidia-smi's GPU utilisation, sampled every 200 ms in the background (absent: NaN). */
    private static final class GpuUtilisation implements AutoCloseable {
        private final Process process;
        private final List<long[]> samples = new CopyOnWriteArrayList<>(); // millis, percent

        private GpuUtilisation(Process process) {
            this.process = process;
            if (process != null) {
                Thread reader = new Thread(
                        () -> {
                            try (var lines = process.inputReader().lines()) {
                                lines.forEach(line -> {
                                    try {
                                        samples.add(new long[] {
                                            System.currentTimeMillis(),
                                            Long.parseLong(
                                                    line.strip().split(",")[0].strip())
                                        });
                                    } catch (NumberFormatException ignored) {
                                        // a header or a message
                                    }
                                });
                            }
                        },
                        "nvidia-smi");
                reader.setDaemon(true);
                reader.start();
            }
        }

        static GpuUtilisation start() {
            try {
                return new GpuUtilisation(new ProcessBuilder(
                                "nvidia-smi",
                                "--query-gpu=utilization.gpu",
                                "--format=csv,noheader,nounits",
                                "-lms",
                                "200")
                        .redirectErrorStream(true)
                        .start());
            } catch (Exception e) {
                return new GpuUtilisation(null);
            }
        }

        double mean(long from, long to) {
            return samples.stream()
                    .filter(s -> s[0] >= from && s[0] <= to)
                    .mapToLong(s -> s[1])
                    .average()
                    .orElse(Double.NaN);
        }

        @Override
        public void close() {
            if (process != null) {
                process.destroy();
            }
        }
    }
}
