package dev.rwkvflink.jobs;

import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.embed.Pooling;
import dev.rwkvflink.kafka.KafkaJobs;
import dev.rwkvflink.kafka.RecordFormat;
import dev.rwkvflink.operator.RwkvOperatorConfig;
import java.io.Serial;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import org.apache.flink.connector.base.DeliveryGuarantee;

/**
 * Everything an {@link EmbedJob} needs: where Kafka is, which topics, the model, and how the job runs.
 * Built with {@link #builder()} or read from {@code --name value} arguments ({@link #fromArgs}).
 *
 * <p>With a {@link Builder#head head}, the job also classifies: each embedding with a label goes to
 * {@link #classificationsTopic()} as well.
 *
 * <p>{@link Builder#kafkaProperty Kafka properties} (security, timeouts, client tuning) are passed to the source
 * and to every sink as they are; the few the job sets itself ({@link #RESERVED_KAFKA_PROPERTIES}) are refused.
 */
public final class Settings implements Serializable {

    @Serial
    private static final long serialVersionUID = 1L;

    private final String bootstrapServers;
    private final String chunksTopic;
    private final String embeddingsTopic;
    private final String deadLettersTopic;
    private final String classificationsTopic;
    private final String groupId;
    private final String startingOffsets;
    private final RecordFormat format;
    private final String transactionalIdPrefix;
    private final String model;
    private final String vocab;
    private final String pooling;
    private final String head;
    private final String stats;
    private final String backend;
    private final long maxWaitMillis;
    private final long idleTimeoutMillis;
    private final long maxSeqAhead;
    private final int maxBufferedChunks;
    private final int maxChunkBytes;
    private final long hotStateBytes;
    private final long snapshotTokens;
    private final int maxBatchKeys;
    private final int maxBatchTokens;
    private final boolean emitEveryChunk;
    private final boolean separateSinks;
    private final int cudaDevice;
    private final DeliveryGuarantee delivery;
    private final long checkpointIntervalMillis;
    private final int parallelism;
    private final LinkedHashMap<String, String> kafkaProperties;

    /**
     * Kafka client properties the job sets itself (from its own settings or because exactly-once needs them), so
     * they cannot be given as {@code --kafka-property}: the servers and group have their own settings, the
     * (de)serializers, isolation level and transactional ids are the job's.
     */
    public static final Set<String> RESERVED_KAFKA_PROPERTIES = Set.of("bootstrap.servers", "group.id",
            "key.deserializer", "value.deserializer", "key.serializer", "value.serializer", "isolation.level",
            "transactional.id", "enable.auto.commit");

    private Settings(Builder b) {
        bootstrapServers = require(b.bootstrapServers, "bootstrap servers");
        chunksTopic = require(b.chunksTopic, "chunks topic");
        embeddingsTopic = require(b.embeddingsTopic, "embeddings topic");
        deadLettersTopic = require(b.deadLettersTopic, "dead-letters topic");
        groupId = require(b.groupId, "group id");
        startingOffsets = require(b.startingOffsets, "starting offsets");
        format = Objects.requireNonNull(b.format, "format");
        transactionalIdPrefix = b.transactionalIdPrefix != null ? b.transactionalIdPrefix : groupId;
        model = b.model;
        vocab = b.vocab;
        pooling = require(b.pooling, "pooling");
        head = b.head;
        stats = b.stats;
        backend = require(b.backend, "backend");
        checkNames(backend, pooling, "");
        classificationsTopic = b.classificationsTopic;
        if (head != null && (classificationsTopic == null || classificationsTopic.isBlank())) {
            throw new IllegalArgumentException("a classification head is set (" + head
                    + ") but no classifications topic: set one to write the classes to");
        }
        if (b.maxWaitMillis < 0) {
            throw new IllegalArgumentException("max wait must be >= 0 ms, got " + b.maxWaitMillis);
        }
        maxWaitMillis = b.maxWaitMillis;
        idleTimeoutMillis = b.idleTimeoutMillis;
        maxSeqAhead = b.maxSeqAhead;
        maxBufferedChunks = b.maxBufferedChunks;
        maxChunkBytes = b.maxChunkBytes;
        hotStateBytes = b.hotStateBytes;
        snapshotTokens = b.snapshotTokens;
        maxBatchKeys = b.maxBatchKeys;
        maxBatchTokens = b.maxBatchTokens;
        emitEveryChunk = b.emitEveryChunk;
        separateSinks = b.separateSinks;
        cudaDevice = b.cudaDevice;
        delivery = Objects.requireNonNull(b.delivery, "delivery");
        if (b.checkpointIntervalMillis < 10) {
            throw new IllegalArgumentException("checkpoint interval must be >= 10 ms (exactly-once output appears "
                    + "at checkpoints), got " + b.checkpointIntervalMillis);
        }
        checkpointIntervalMillis = b.checkpointIntervalMillis;
        if (b.parallelism < 0) {
            throw new IllegalArgumentException("parallelism must be >= 1 (or 0 for the environment's default), got "
                    + b.parallelism);
        }
        parallelism = b.parallelism;
        kafkaProperties = new LinkedHashMap<>(b.kafkaProperties);
    }

    /**
     * Refuses an unknown backend or pooling name where the job is built (the client), not when the operator opens
     * on a TaskManager, where the job would restart in a loop; the message names the option ({@code prefix}
     * "--" for command-line flags) and the allowed values.
     */
    public static void checkNames(String backend, String pooling, String prefix) {
        try {
            Backends.checkName(backend);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(prefix + "backend: " + e.getMessage(), e);
        }
        try {
            Pooling.parse(pooling);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(prefix + "pooling: " + e.getMessage(), e);
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    /**
     * Settings from {@code --name value} pairs, e.g. {@code --bootstrap-servers 127.0.0.1:9092 --model m.bin}.
     * Names: bootstrap-servers, chunks-topic, embeddings-topic, dead-letters-topic, classifications-topic, group-id,
     * starting-offsets, format, transactional-id-prefix, model, vocab, pooling, head, stats, backend, max-wait-ms,
     * idle-timeout-ms, max-seq-ahead, max-buffered-chunks, max-chunk-bytes, hot-state-bytes, snapshot-tokens, max-batch-keys,
     * max-batch-tokens, emit-every-chunk, separate-sinks, cuda-device, delivery, checkpoint-interval-ms, parallelism, and
     * kafka-property {@code key=value} (repeatable).
     */
    public static Settings fromArgs(String... args) {
        Map<String, String> values = new LinkedHashMap<>();
        Builder b = builder();
        for (int i = 0; i < args.length; i += 2) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                throw new IllegalArgumentException("expected --name value pairs, got '" + args[i] + "'"
                        + (i + 1 >= args.length ? " without a value" : ""));
            }
            if (args[i].equals("--kafka-property")) {
                b.kafkaProperty(args[i + 1]);
            } else {
                values.put(args[i].substring(2), args[i + 1]);
            }
        }
        List<String> unknown = new ArrayList<>();
        values.forEach((name, value) -> {
            switch (name) {
                case "bootstrap-servers" -> b.bootstrapServers(value);
                case "chunks-topic" -> b.chunksTopic(value);
                case "embeddings-topic" -> b.embeddingsTopic(value);
                case "dead-letters-topic" -> b.deadLettersTopic(value);
                case "classifications-topic" -> b.classificationsTopic(value);
                case "group-id" -> b.groupId(value);
                case "starting-offsets" -> b.startingOffsets(value);
                case "format" -> b.format(RecordFormat.parse(value));
                case "transactional-id-prefix" -> b.transactionalIdPrefix(value);
                case "model" -> b.model(value);
                case "vocab" -> b.vocab(value);
                case "pooling" -> b.pooling(value);
                case "head" -> b.head(value);
                case "stats" -> b.stats(value);
                case "backend" -> b.backend(value);
                case "max-wait-ms" -> b.maxWaitMillis(Long.parseLong(value));
                case "idle-timeout-ms" -> b.idleTimeoutMillis(Long.parseLong(value));
                case "max-seq-ahead" -> b.maxSeqAhead(Long.parseLong(value));
                case "max-buffered-chunks" -> b.maxBufferedChunks(Integer.parseInt(value));
                case "max-chunk-bytes" -> b.maxChunkBytes(Integer.parseInt(value));
                case "hot-state-bytes" -> b.hotStateBytes(Long.parseLong(value));
                case "snapshot-tokens" -> b.snapshotTokens(Long.parseLong(value));
                case "max-batch-keys" -> b.maxBatchKeys(Integer.parseInt(value));
                case "max-batch-tokens" -> b.maxBatchTokens(Integer.parseInt(value));
                case "emit-every-chunk" -> b.emitEveryChunk(parseBoolean(name, value));
                case "separate-sinks" -> b.separateSinks(parseBoolean(name, value));
                case "cuda-device" -> b.cudaDevice(Integer.parseInt(value));
                case "delivery" -> b.delivery(KafkaJobs.delivery(value));
                case "checkpoint-interval-ms" -> b.checkpointIntervalMillis(Long.parseLong(value));
                case "parallelism" -> b.parallelism(Integer.parseInt(value));
                default -> unknown.add("--" + name);
            }
        });
        if (!unknown.isEmpty()) {
            throw new IllegalArgumentException("unknown settings " + unknown);
        }
        return b.build();
    }

    /**
     * The operator's settings: model, vocabulary, pooling, statistics, head, backend, batching wait, idle timeout
     * the limits on out-of-order buffering and chunk size, and the hot-state memory.
     */
    public RwkvOperatorConfig operatorConfig() {
        RwkvOperatorConfig config = new RwkvOperatorConfig().model(model).vocab(vocab).pooling(pooling).stats(stats)
                .head(head).backend(backend).idleTimeout(idleTimeoutMillis)
                .limits(maxSeqAhead, maxBufferedChunks, maxChunkBytes).hotStateBytes(hotStateBytes)
                .snapshotTokens(snapshotTokens).batch(maxBatchKeys, maxBatchTokens, maxWaitMillis).emitEveryChunk(emitEveryChunk)
                .cudaDevice(cudaDevice);
        return config.validate();
    }

    public String bootstrapServers() { return bootstrapServers; }
    public String chunksTopic() { return chunksTopic; }
    public String embeddingsTopic() { return embeddingsTopic; }
    public String deadLettersTopic() { return deadLettersTopic; }
    /** Null unless the job classifies. */
    public String classificationsTopic() { return classificationsTopic; }
    public String groupId() { return groupId; }
    public String startingOffsets() { return startingOffsets; }
    public RecordFormat format() { return format; }
    public String transactionalIdPrefix() { return transactionalIdPrefix; }
    /** Model file, or null / "demo" for the built-in demo model. */
    public String model() { return model; }
    public String vocab() { return vocab; }
    public String pooling() { return pooling; }
    /** Classification head file, or null. */
    public String head() { return head; }
    /** Normalisation statistics file (from {@code fit --stats-out}), or null. */
    public String stats() { return stats; }
    /** Extra Kafka client properties for the source and the sinks, in the order given (unmodifiable). */
    public Map<String, String> kafkaProperties() { return Collections.unmodifiableMap(kafkaProperties); }
    public String backend() { return backend; }
    public long maxWaitMillis() { return maxWaitMillis; }
    /** A document without a new chunk for this long gets its final (IDLE) embedding; buffered chunks are rejected. */
    public long idleTimeoutMillis() { return idleTimeoutMillis; }
    public long maxSeqAhead() { return maxSeqAhead; }
    public int maxBufferedChunks() { return maxBufferedChunks; }
    public long hotStateBytes() { return hotStateBytes; }
    public long snapshotTokens() { return snapshotTokens; }
    public int maxBatchKeys() { return maxBatchKeys; }
    public int maxBatchTokens() { return maxBatchTokens; }
    public boolean emitEveryChunk() { return emitEveryChunk; }
    /** Whether the output conversions and Kafka sinks run in a task of their own (see {@link Builder#separateSinks}). */
    public boolean separateSinks() { return separateSinks; }
    /** -1: automatic (Flink's gpu external resource, else rwkv.cuda.device). */
    public int cudaDevice() { return cudaDevice; }
    /** How the sinks deliver: exactly once (at checkpoints, the default) or at least once (at once). */
    public DeliveryGuarantee delivery() { return delivery; }
    public int maxChunkBytes() { return maxChunkBytes; }
    public long checkpointIntervalMillis() { return checkpointIntervalMillis; }
    /** 0: the environment's default. */
    public int parallelism() { return parallelism; }
    public boolean classifies() { return head != null; }

    @Override
    public String toString() {
        return "Settings{kafka " + bootstrapServers + ", " + chunksTopic + " -> " + embeddingsTopic
                + (classifies() ? " + " + classificationsTopic : "") + " (dead letters " + deadLettersTopic
                + "), group " + groupId + ", model " + (model == null ? "demo" : model) + ", pooling " + pooling
                + (stats != null ? ", stats " + stats : "") + (classifies() ? ", head " + head : "")
                + (kafkaProperties.isEmpty() ? "" : ", kafka properties " + kafkaProperties.keySet())
                + ", checkpoints every " + checkpointIntervalMillis + " ms"
                + (delivery == DeliveryGuarantee.EXACTLY_ONCE ? "" : ", delivery " + delivery) + "}";
    }

    private static boolean parseBoolean(String name, String value) {
        return switch (value.strip().toLowerCase(java.util.Locale.ROOT)) {
            case "true" -> true;
            case "false" -> false;
            default -> throw new IllegalArgumentException("--" + name + " is true or false, got '" + value + "'");
        };
    }

    private static String require(String value, String what) {
        if (value == null || value.isBlank()) {
            throw new IllegalArgumentException("missing setting: " + what);
        }
        return value.strip();
    }

    /**
     * A {@code key=value} Kafka client property, checked: a key, an equals sign, not one the job sets itself.
     *
     * @return the key and the value (which may be empty or contain '=')
     */
    public static Map.Entry<String, String> kafkaProperty(String keyEqualsValue) {
        int eq = keyEqualsValue == null ? -1 : keyEqualsValue.indexOf('=');
        if (eq <= 0 || keyEqualsValue.substring(0, eq).isBlank()) {
            throw new IllegalArgumentException("a Kafka property is key=value (e.g. security.protocol=SASL_SSL), got '"
                    + keyEqualsValue + "'");
        }
        return kafkaProperty(keyEqualsValue.substring(0, eq), keyEqualsValue.substring(eq + 1));
    }

    /** A Kafka client property, checked: a non-blank key, a value, not one the job sets itself. */
    public static Map.Entry<String, String> kafkaProperty(String key, String value) {
        String k = key == null ? "" : key.strip();
        if (k.isEmpty() || value == null) {
            throw new IllegalArgumentException("a Kafka property needs a key and a value, got " + key + "=" + value);
        }
        if (RESERVED_KAFKA_PROPERTIES.contains(k)) {
            throw new IllegalArgumentException("Kafka property " + k + " is set by the job itself"
                    + (k.equals("bootstrap.servers") ? " (use --bootstrap-servers)"
                    : k.equals("group.id") ? " (use --group-id)" : "")
                    + "; reserved: " + new TreeSet<>(RESERVED_KAFKA_PROPERTIES));
        }
        return Map.entry(k, value);
    }

    /** Defaults: topics chunks / embeddings / chunks-dead-letters / classifications, group rwkv-embed. */
    public static final class Builder {
        private String bootstrapServers;
        private String chunksTopic = "chunks";
        private String embeddingsTopic = "embeddings";
        private String deadLettersTopic = "chunks-dead-letters";
        private String classificationsTopic = "classifications";
        private String groupId = "rwkv-embed";
        private String startingOffsets = "committed";
        private RecordFormat format = RecordFormat.SINGLE_OBJECT;
        private String transactionalIdPrefix;
        private String model;
        private String vocab;
        private String pooling = "hidden";
        private String head;
        private String stats;
        private String backend = "cpu";
        private long maxWaitMillis = 50;
        private long idleTimeoutMillis = new RwkvOperatorConfig().idleTimeoutMillis;
        private long maxSeqAhead = new RwkvOperatorConfig().maxSeqAhead;
        private int maxBufferedChunks = new RwkvOperatorConfig().maxBufferedChunks;
        private int maxChunkBytes = new RwkvOperatorConfig().maxChunkBytes;
        private long hotStateBytes = new RwkvOperatorConfig().hotStateBytes;
        private long snapshotTokens = new RwkvOperatorConfig().snapshotTokens;
        private int maxBatchKeys = new RwkvOperatorConfig().maxBatchKeys;
        private int maxBatchTokens = new RwkvOperatorConfig().maxBatchTokens;
        private boolean emitEveryChunk;
        private boolean separateSinks = true;
        private int cudaDevice = -1;
        private DeliveryGuarantee delivery = DeliveryGuarantee.EXACTLY_ONCE;
        private long checkpointIntervalMillis = 10_000;
        private int parallelism;
        private final LinkedHashMap<String, String> kafkaProperties = new LinkedHashMap<>();

        private Builder() {}

        public Builder bootstrapServers(String v) { bootstrapServers = v; return this; }
        public Builder chunksTopic(String v) { chunksTopic = v; return this; }
        public Builder embeddingsTopic(String v) { embeddingsTopic = v; return this; }
        public Builder deadLettersTopic(String v) { deadLettersTopic = v; return this; }
        public Builder classificationsTopic(String v) { classificationsTopic = v; return this; }
        public Builder groupId(String v) { groupId = v; return this; }
        /** earliest, latest or committed (default; earliest where the group has no offset yet). */
        public Builder startingOffsets(String v) { startingOffsets = v; return this; }
        public Builder format(RecordFormat v) { format = v; return this; }
        /** Prefix of the sinks' transactional ids, unique per job on the cluster; default: the group id. */
        public Builder transactionalIdPrefix(String v) { transactionalIdPrefix = v; return this; }
        public Builder model(String v) { model = v; return this; }
        public Builder vocab(String v) { vocab = v; return this; }
        public Builder pooling(String v) { pooling = v; return this; }
        public Builder head(String v) { head = v; return this; }
        /** Normalisation statistics (from {@code fit --stats-out}); a head from {@code fit} needs them too. */
        public Builder stats(String v) { stats = v; return this; }
        public Builder backend(String v) { backend = v; return this; }
        public Builder maxWaitMillis(long v) { maxWaitMillis = v; return this; }
        /** Idle timeout per document (default 1 h; 0: none). */
        public Builder idleTimeoutMillis(long v) { idleTimeoutMillis = v; return this; }
        /** A chunk more than this many seqs ahead of the next expected one is rejected (default 10,000). */
        public Builder maxSeqAhead(long v) { maxSeqAhead = v; return this; }
        /** Chunks held per document while waiting for a gap to fill; more are rejected (default 1,000). */
        public Builder maxBufferedChunks(int v) { maxBufferedChunks = v; return this; }
        /** Longest chunk accepted, in UTF-8 bytes (text) or tokens (default 4 MiB); longer ones are rejected. */
        public Builder maxChunkBytes(int v) { maxChunkBytes = v; return this; }
        /** Memory for states kept where the model runs between batches (default 256 MiB; 0: none). */
        public Builder hotStateBytes(long v) { hotStateBytes = v; return this; }
        /** Token-log budget K: a key writes a whole-state snapshot once per K tokens (default -1: automatic). */
        public Builder snapshotTokens(long v) { snapshotTokens = v; return this; }
        /** Most keys advanced in one engine call (default 256; a GPU runs more at once). */
        public Builder maxBatchKeys(int v) { maxBatchKeys = v; return this; }
        /** Most tokens in one batch over all keys (default 16,384). */
        public Builder maxBatchTokens(int v) { maxBatchTokens = v; return this; }
        /** Also emit an embedding (reason PROGRESS) after every chunk, not only at a document's end. */
        public Builder emitEveryChunk(boolean v) { emitEveryChunk = v; return this; }
        /**
         * Run the Avro conversion and the Kafka sinks of embeddings and classes in a task (thread) of their own
         * (default true), so that serialising and sending a batch's embeddings overlaps the model's next batch;
         * false chains them to the operator (one thread, no hand-over between tasks).
         */
        public Builder separateSinks(boolean v) { separateSinks = v; return this; }
        /** CUDA device for the GPU backends; -1 (default): Flink's gpu external resource, else rwkv.cuda.device. */
        public Builder cudaDevice(int v) { cudaDevice = v; return this; }
        /** EXACTLY_ONCE (default) or AT_LEAST_ONCE; see {@link KafkaJobs#avroSinkBuilder}. */
        public Builder delivery(DeliveryGuarantee v) { delivery = v; return this; }
        public Builder checkpointIntervalMillis(long v) { checkpointIntervalMillis = v; return this; }
        public Builder parallelism(int v) { parallelism = v; return this; }
        /** A Kafka client property for the source and all sinks, {@code key=value}; a later one replaces an earlier. */
        public Builder kafkaProperty(String keyEqualsValue) {
            Map.Entry<String, String> e = Settings.kafkaProperty(keyEqualsValue);
            kafkaProperties.put(e.getKey(), e.getValue());
            return this;
        }
        /** A Kafka client property for the source and all sinks; a later one replaces an earlier. */
        public Builder kafkaProperty(String key, String value) {
            Map.Entry<String, String> e = Settings.kafkaProperty(key, value);
            kafkaProperties.put(e.getKey(), e.getValue());
            return this;
        }

        public Settings build() {
            return new Settings(this);
        }
    }
}
