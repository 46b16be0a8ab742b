package dev.rwkvflink.jobs;

import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.embed.Pooling;
import dev.rwkvflink.kafka.AvroCodec;
import dev.rwkvflink.kafka.KafkaJobs;
import dev.rwkvflink.kafka.RecordFormat;
import dev.rwkvflink.operator.RwkvOperatorConfig;
import dev.rwkvflink.operator.RwkvOptions;
import java.io.Serial;
import java.io.Serializable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.apache.avro.specific.SpecificRecord;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.CoreOptions;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.connector.base.DeliveryGuarantee;

/**
 * Everything an {@link EmbedJob} needs: where Kafka is, which topics, the model, and how the job runs. Every
 * setting is a Flink option ({@link JobOptions}, {@code RwkvOptions}, two of Flink's own); built with
 * {@link #builder()}, read from a Flink configuration ({@link #from}: {@code config.yaml}, {@code -D} on
 * {@code flink run}), or from {@code --name value} flags over one ({@link #fromArgs(ReadableConfig, String...)}).
 *
 * <p>With a {@link SettingsBuilder#head head}, the job also classifies: each embedding with a label goes to
 * {@link #classificationsTopic()} as well.
 *
 * <p>{@link SettingsBuilder#kafkaProperty Kafka properties} (security, timeouts, client tuning) are passed to the source
 * and to every sink as they are; the few the job sets itself ({@link #RESERVED_KAFKA_PROPERTIES}) are refused.
 */
public final class Settings implements Serializable {

    @Serial
    private static final long serialVersionUID = 2L;

    /** The checkpoint interval when neither a flag nor Flink's configuration sets one. */
    public static final Duration DEFAULT_CHECKPOINT_INTERVAL = Duration.ofSeconds(10);

    /** A command-line flag ({@code --name value}) and the option it sets. */
    public record Flag(String name, ConfigOption<?> option) {}

    /**
     * EmbedJob's flags, each setting one option: the job's ({@link JobOptions}), the operator's
     * ({@code RwkvOptions}) and Flink's checkpoint interval and default parallelism. Durations without a unit are
     * milliseconds and sizes without one bytes (Flink's parsing), so {@code --max-wait-ms 50} reads as before.
     * Options without a flag (e.g. {@code rwkv.emit.every-tokens}) are set in Flink's configuration.
     */
    public static final List<Flag> FLAGS = List.of(
            new Flag("bootstrap-servers", JobOptions.BOOTSTRAP_SERVERS),
            new Flag("chunks-topic", JobOptions.CHUNKS_TOPIC),
            new Flag("embeddings-topic", JobOptions.EMBEDDINGS_TOPIC),
            new Flag("dead-letters-topic", JobOptions.DEAD_LETTERS_TOPIC),
            new Flag("classifications-topic", JobOptions.CLASSIFICATIONS_TOPIC),
            new Flag("group-id", JobOptions.GROUP_ID),
            new Flag("starting-offsets", JobOptions.STARTING_OFFSETS),
            new Flag("format", JobOptions.FORMAT),
            new Flag("schema-registry-url", JobOptions.SCHEMA_REGISTRY_URL),
            new Flag("transactional-id-prefix", JobOptions.TRANSACTIONAL_ID_PREFIX),
            new Flag("model", RwkvOptions.MODEL),
            new Flag("vocab", RwkvOptions.VOCAB),
            new Flag("pooling", RwkvOptions.POOLING),
            new Flag("head", RwkvOptions.HEAD),
            new Flag("stats", RwkvOptions.STATS),
            new Flag("backend", RwkvOptions.BACKEND),
            new Flag("max-wait-ms", RwkvOptions.BATCH_MAX_WAIT),
            new Flag("idle-timeout-ms", RwkvOptions.IDLE_TIMEOUT),
            new Flag("max-seq-ahead", RwkvOptions.MAX_SEQ_AHEAD),
            new Flag("max-buffered-chunks", RwkvOptions.MAX_BUFFERED_CHUNKS),
            new Flag("max-chunk-bytes", RwkvOptions.MAX_CHUNK_BYTES),
            new Flag("hot-state-bytes", RwkvOptions.HOT_STATES_SIZE),
            new Flag("snapshot-tokens", RwkvOptions.SNAPSHOT_TOKENS),
            new Flag("max-batch-keys", RwkvOptions.BATCH_MAX_KEYS),
            new Flag("max-batch-tokens", RwkvOptions.BATCH_MAX_TOKENS),
            new Flag("emit-every-chunk", RwkvOptions.EMIT_EVERY_CHUNK),
            new Flag("emit-every-tokens", RwkvOptions.EMIT_EVERY_TOKENS),
            new Flag("separate-sinks", JobOptions.SEPARATE_SINKS),
            new Flag("cuda-device", RwkvOptions.CUDA_DEVICE),
            new Flag("threads", RwkvOptions.THREADS),
            new Flag("cuda-slots", RwkvOptions.CUDA_SLOTS),
            new Flag("delivery", JobOptions.DELIVERY),
            new Flag("checkpoint-interval-ms", CheckpointingOptions.CHECKPOINTING_INTERVAL),
            new Flag("parallelism", CoreOptions.DEFAULT_PARALLELISM));

    /** Every option the job reads, its own and the operator's (the configuration reference lists these). */
    public static final List<ConfigOption<?>> OPTIONS =
            Stream.concat(JobOptions.ALL.stream(), RwkvOptions.ALL.stream()).toList();

    /** What the job was given: every option set, by key (Flink's configuration, then the flags over it). */
    private final Configuration conf;

    private final RwkvOperatorConfig operatorConfig;
    private final LinkedHashMap<String, String> kafkaProperties;

    /**
     * Kafka client properties the job sets itself (from its own settings or because exactly-once needs them), so
     * they cannot be given as {@code --kafka-property}: the servers and group have their own settings, the
     * (de)serializers, isolation level and transactional ids are the job's.
     */
    public static final Set<String> RESERVED_KAFKA_PROPERTIES = Set.of(
            "bootstrap.servers",
            "group.id",
            "key.deserializer",
            "value.deserializer",
            "key.serializer",
            "value.serializer",
            "isolation.level",
            "transactional.id",
            "enable.auto.commit");

    Settings(Configuration conf, Map<String, String> kafkaProperties) {
        this.conf = conf;
        require(conf.getOptional(JobOptions.BOOTSTRAP_SERVERS).orElse(null), "bootstrap servers");
        for (ConfigOption<String> o : List.of(
                JobOptions.CHUNKS_TOPIC,
                JobOptions.EMBEDDINGS_TOPIC,
                JobOptions.DEAD_LETTERS_TOPIC,
                JobOptions.GROUP_ID,
                JobOptions.STARTING_OFFSETS,
                RwkvOptions.POOLING,
                RwkvOptions.BACKEND)) {
            require(conf.get(o), o.key());
        }
        RecordFormat format = RecordFormat.parse(conf.get(JobOptions.FORMAT)); // refuses an unknown name
        if (format == RecordFormat.CONFLUENT && schemaRegistryUrl() == null) {
            throw new IllegalArgumentException("the confluent format needs a schema registry: set "
                    + JobOptions.SCHEMA_REGISTRY_URL.key() + " (--schema-registry-url)");
        }
        KafkaJobs.delivery(conf.get(JobOptions.DELIVERY));
        checkNames(text(RwkvOptions.BACKEND), text(RwkvOptions.POOLING), "");
        this.operatorConfig = RwkvOperatorConfig.from(conf); // validated: the operator's own limits
        if (head() != null
                && (classificationsTopic() == null || classificationsTopic().isBlank())) {
            throw new IllegalArgumentException("a classification head is set (" + head()
                    + ") but no classifications topic: set one to write the classes to");
        }
        if (checkpointIntervalMillis() < 10) {
            throw new IllegalArgumentException("checkpoint interval must be >= 10 ms (exactly-once output appears "
                    + "at checkpoints), got " + checkpointIntervalMillis());
        }
        if (parallelism() < 0) {
            throw new IllegalArgumentException(
                    "parallelism must be >= 1 (or 0 for the environment's default), got " + parallelism());
        }
        this.kafkaProperties = new LinkedHashMap<>(kafkaProperties);
    }

    /** The job's settings from a Flink configuration (e.g. {@code config.yaml} and {@code -D} of {@code flink run}). */
    public static Settings from(ReadableConfig flinkConfiguration) {
        return new Settings(copy(flinkConfiguration), Map.of());
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

    public static SettingsBuilder builder() {
        return new SettingsBuilder();
    }

    /** Settings from {@code --name value} pairs alone (no Flink configuration under them): see {@link #fromArgs(ReadableConfig, String...)}. */
    public static Settings fromArgs(String... args) {
        return fromArgs(new Configuration(), args);
    }

    /**
     * Settings from {@code --name value} pairs over a Flink configuration: a flag ({@link #FLAGS}, e.g.
     * {@code --bootstrap-servers 127.0.0.1:9092 --model m.bin}) wins over its option in {@code base}; options
     * without a flag come from {@code base} (e.g. {@code -Drwkv.emit.every-tokens=512} on {@code flink run}), the
     * rest are defaults. {@code --kafka-property key=value} is repeatable. An unknown flag or a value that does not
     * parse is refused naming the flag.
     */
    public static Settings fromArgs(ReadableConfig base, String... args) {
        Configuration conf = copy(base);
        Map<String, Flag> byName = new LinkedHashMap<>();
        FLAGS.forEach(f -> byName.put(f.name(), f));
        LinkedHashMap<String, String> kafka = new LinkedHashMap<>();
        List<String> unknown = new ArrayList<>();
        for (int i = 0; i < args.length; i += 2) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                throw new IllegalArgumentException("expected --name value pairs, got '" + args[i] + "'"
                        + (i + 1 >= args.length ? " without a value" : ""));
            }
            String name = args[i].substring(2);
            String value = args[i + 1];
            if (name.equals("kafka-property")) {
                Map.Entry<String, String> e = kafkaProperty(value);
                kafka.put(e.getKey(), e.getValue());
                continue;
            }
            Flag flag = byName.get(name);
            if (flag == null) {
                unknown.add(args[i]);
                continue;
            }
            conf.setString(flag.option().key(), value);
            try {
                conf.get(flag.option());
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(
                        "--" + name + " (" + flag.option().key() + "): '" + value + "' is not a valid value: "
                                + rootMessage(e),
                        e);
            }
        }
        if (!unknown.isEmpty()) {
            throw new IllegalArgumentException("unknown settings " + unknown + "; known: --"
                    + String.join(", --", byName.keySet()) + ", --kafka-property");
        }
        return new Settings(conf, kafka);
    }

    /** The operator's settings (every {@code RwkvOptions} option), validated. */
    public RwkvOperatorConfig operatorConfig() {
        return operatorConfig;
    }

    public String bootstrapServers() {
        return text(JobOptions.BOOTSTRAP_SERVERS);
    }

    public String chunksTopic() {
        return text(JobOptions.CHUNKS_TOPIC);
    }

    public String embeddingsTopic() {
        return text(JobOptions.EMBEDDINGS_TOPIC);
    }

    public String deadLettersTopic() {
        return text(JobOptions.DEAD_LETTERS_TOPIC);
    }
    /** Where classes go (used only when the job classifies). */
    public String classificationsTopic() {
        return conf.get(JobOptions.CLASSIFICATIONS_TOPIC);
    }

    public String groupId() {
        return text(JobOptions.GROUP_ID);
    }

    public String startingOffsets() {
        return text(JobOptions.STARTING_OFFSETS);
    }

    public RecordFormat format() {
        return RecordFormat.parse(conf.get(JobOptions.FORMAT));
    }
    /** The schema registry of the confluent format, or null. */
    public String schemaRegistryUrl() {
        return conf.getOptional(JobOptions.SCHEMA_REGISTRY_URL).orElse(null);
    }
    /** The codec of {@code type} records on {@code topic} in this job's format (with its registry when confluent). */
    public <T extends SpecificRecord> AvroCodec<T> codec(Class<T> type, String topic) {
        return AvroCodec.forTopic(type, topic, format(), schemaRegistryUrl());
    }

    public String transactionalIdPrefix() {
        return conf.getOptional(JobOptions.TRANSACTIONAL_ID_PREFIX).orElse(groupId());
    }
    /** Model file, or null / "demo" for the built-in demo model. */
    public String model() {
        return operatorConfig.modelPath;
    }

    public String vocab() {
        return operatorConfig.vocabPath;
    }

    public String pooling() {
        return operatorConfig.pooling;
    }
    /** Classification head file, or null. */
    public String head() {
        return operatorConfig.headPath;
    }
    /** Normalisation statistics file (from {@code fit --stats-out}), or null. */
    public String stats() {
        return operatorConfig.statsPath;
    }
    /** Extra Kafka client properties for the source and the sinks, in the order given (unmodifiable). */
    public Map<String, String> kafkaProperties() {
        return Collections.unmodifiableMap(kafkaProperties);
    }

    public String backend() {
        return operatorConfig.backend;
    }

    public long maxWaitMillis() {
        return operatorConfig.maxWaitMillis;
    }
    /** A document without a new chunk for this long gets its final (IDLE) embedding; buffered chunks are rejected. */
    public long idleTimeoutMillis() {
        return operatorConfig.idleTimeoutMillis;
    }

    public long maxSeqAhead() {
        return operatorConfig.maxSeqAhead;
    }

    public int maxBufferedChunks() {
        return operatorConfig.maxBufferedChunks;
    }

    public long hotStateBytes() {
        return operatorConfig.hotStateBytes;
    }

    public long snapshotTokens() {
        return operatorConfig.snapshotTokens;
    }

    public int maxBatchKeys() {
        return operatorConfig.maxBatchKeys;
    }

    public int maxBatchTokens() {
        return operatorConfig.maxBatchTokens;
    }

    public boolean emitEveryChunk() {
        return operatorConfig.emitEveryChunk;
    }
    /** Whether the output conversions and Kafka sinks run in a task of their own ({@link JobOptions#SEPARATE_SINKS}). */
    public boolean separateSinks() {
        return conf.get(JobOptions.SEPARATE_SINKS);
    }
    /** -1: automatic (Flink's gpu external resource, else rwkv.cuda.device). */
    public int cudaDevice() {
        return operatorConfig.cudaDevice;
    }
    /** How the sinks deliver: exactly once (at checkpoints, the default) or at least once (at once). */
    public DeliveryGuarantee delivery() {
        return KafkaJobs.delivery(conf.get(JobOptions.DELIVERY));
    }

    public int maxChunkBytes() {
        return operatorConfig.maxChunkBytes;
    }

    public long checkpointIntervalMillis() {
        return conf.getOptional(CheckpointingOptions.CHECKPOINTING_INTERVAL)
                .orElse(DEFAULT_CHECKPOINT_INTERVAL)
                .toMillis();
    }
    /** 0: the environment's default. */
    public int parallelism() {
        return conf.getOptional(CoreOptions.DEFAULT_PARALLELISM).orElse(0);
    }

    public boolean classifies() {
        return head() != null;
    }

    @Override
    public String toString() {
        return "Settings{kafka " + bootstrapServers() + ", " + chunksTopic() + " -> " + embeddingsTopic()
                + (classifies() ? " + " + classificationsTopic() : "") + " (dead letters " + deadLettersTopic()
                + "), group " + groupId() + ", model " + (model() == null ? "demo" : model()) + ", pooling "
                + pooling() + (stats() != null ? ", stats " + stats() : "") + (classifies() ? ", head " + head() : "")
                + (kafkaProperties.isEmpty() ? "" : ", kafka properties " + kafkaProperties.keySet())
                + ", checkpoints every " + checkpointIntervalMillis() + " ms"
                + (delivery() == DeliveryGuarantee.EXACTLY_ONCE ? "" : ", delivery " + delivery()) + "}";
    }

    /** A required text setting, without surrounding blanks (checked present in the constructor). */
    private String text(ConfigOption<String> option) {
        return conf.get(option).strip();
    }

    /** A mutable copy of {@code config}: every key it sets, as text, so that flags can be laid over it. */
    static Configuration copy(ReadableConfig config) {
        return Configuration.fromMap(config.toMap());
    }

    private static String rootMessage(Throwable t) {
        Throwable root = t;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        return root == t ? t.getMessage() : t.getMessage() + " (" + root.getMessage() + ")";
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
            throw new IllegalArgumentException(
                    "a Kafka property is key=value (e.g. security.protocol=SASL_SSL), got '" + keyEqualsValue + "'");
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
                    + (k.equals("bootstrap.servers")
                            ? " (use --bootstrap-servers)"
                            : k.equals("group.id") ? " (use --group-id)" : "")
                    + "; reserved: " + new TreeSet<>(RESERVED_KAFKA_PROPERTIES));
        }
        return Map.entry(k, value);
    }
}
