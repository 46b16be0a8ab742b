package dev.rwkvflink.jobs;

import dev.rwkvflink.kafka.KafkaJobs;
import dev.rwkvflink.kafka.RecordFormat;
import dev.rwkvflink.operator.RwkvOptions;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.CoreOptions;
import org.apache.flink.configuration.MemorySize;
import org.apache.flink.connector.base.DeliveryGuarantee;

/** Settings in code; defaults as the options say ({@link JobOptions}, {@code RwkvOptions}). */
public final class SettingsBuilder {
    private final Configuration conf = new Configuration();
    private final LinkedHashMap<String, String> kafkaProperties = new LinkedHashMap<>();

    SettingsBuilder() {}

    /** Sets an option; null unsets it (a text option with a default becomes empty: "none"). */
    private <T> SettingsBuilder set(ConfigOption<T> option, T value) {
        if (value == null && option.hasDefaultValue()) {
            conf.setString(option.key(), "");
        } else if (value == null) {
            conf.removeConfig(option);
        } else {
            conf.set(option, value);
        }
        return this;
    }

    public SettingsBuilder bootstrapServers(String v) {
        return set(JobOptions.BOOTSTRAP_SERVERS, v);
    }

    public SettingsBuilder chunksTopic(String v) {
        return set(JobOptions.CHUNKS_TOPIC, v);
    }

    public SettingsBuilder embeddingsTopic(String v) {
        return set(JobOptions.EMBEDDINGS_TOPIC, v);
    }

    public SettingsBuilder deadLettersTopic(String v) {
        return set(JobOptions.DEAD_LETTERS_TOPIC, v);
    }

    public SettingsBuilder classificationsTopic(String v) {
        return set(JobOptions.CLASSIFICATIONS_TOPIC, v);
    }

    public SettingsBuilder groupId(String v) {
        return set(JobOptions.GROUP_ID, v);
    }
    /** earliest, latest or committed (default; earliest where the group has no offset yet). */
    public SettingsBuilder startingOffsets(String v) {
        return set(JobOptions.STARTING_OFFSETS, v);
    }

    public SettingsBuilder format(RecordFormat v) {
        return set(JobOptions.FORMAT, v.toString());
    }

    public SettingsBuilder schemaRegistryUrl(String v) {
        return set(JobOptions.SCHEMA_REGISTRY_URL, v);
    }
    /** Prefix of the sinks' transactional ids, unique per job on the cluster; default: the group id. */
    public SettingsBuilder transactionalIdPrefix(String v) {
        return set(JobOptions.TRANSACTIONAL_ID_PREFIX, v);
    }

    public SettingsBuilder model(String v) {
        return set(RwkvOptions.MODEL, v);
    }

    public SettingsBuilder vocab(String v) {
        return set(RwkvOptions.VOCAB, v);
    }

    public SettingsBuilder pooling(String v) {
        return set(RwkvOptions.POOLING, v);
    }

    public SettingsBuilder head(String v) {
        return set(RwkvOptions.HEAD, v);
    }
    /** Normalisation statistics (from {@code fit --stats-out}); a head from {@code fit} needs them too. */
    public SettingsBuilder stats(String v) {
        return set(RwkvOptions.STATS, v);
    }

    public SettingsBuilder backend(String v) {
        return set(RwkvOptions.BACKEND, v);
    }

    public SettingsBuilder maxWaitMillis(long v) {
        return set(RwkvOptions.BATCH_MAX_WAIT, Duration.ofMillis(v));
    }

    public SettingsBuilder idleTimeoutMillis(long v) {
        return set(RwkvOptions.IDLE_TIMEOUT, Duration.ofMillis(v));
    }

    public SettingsBuilder maxSeqAhead(long v) {
        return set(RwkvOptions.MAX_SEQ_AHEAD, v);
    }

    public SettingsBuilder maxBufferedChunks(int v) {
        return set(RwkvOptions.MAX_BUFFERED_CHUNKS, v);
    }

    public SettingsBuilder maxChunkBytes(int v) {
        return set(RwkvOptions.MAX_CHUNK_BYTES, v);
    }

    public SettingsBuilder hotStateBytes(long v) {
        return set(RwkvOptions.HOT_STATES_SIZE, new MemorySize(v));
    }

    public SettingsBuilder snapshotTokens(long v) {
        return set(RwkvOptions.SNAPSHOT_TOKENS, v);
    }

    public SettingsBuilder maxBatchKeys(int v) {
        return set(RwkvOptions.BATCH_MAX_KEYS, v);
    }

    public SettingsBuilder maxBatchTokens(int v) {
        return set(RwkvOptions.BATCH_MAX_TOKENS, v);
    }

    public SettingsBuilder emitEveryChunk(boolean v) {
        return set(RwkvOptions.EMIT_EVERY_CHUNK, v);
    }
    /** See {@link JobOptions#SEPARATE_SINKS}. */
    public SettingsBuilder separateSinks(boolean v) {
        return set(JobOptions.SEPARATE_SINKS, v);
    }

    public SettingsBuilder cudaDevice(int v) {
        return set(RwkvOptions.CUDA_DEVICE, v);
    }
    /** EXACTLY_ONCE (default) or AT_LEAST_ONCE; see {@link KafkaJobs#avroSinkBuilder}. */
    public SettingsBuilder delivery(DeliveryGuarantee v) {
        return set(JobOptions.DELIVERY, v == DeliveryGuarantee.EXACTLY_ONCE ? "exactly-once" : "at-least-once");
    }

    public SettingsBuilder checkpointIntervalMillis(long v) {
        return set(CheckpointingOptions.CHECKPOINTING_INTERVAL, Duration.ofMillis(v));
    }
    /** 0: the environment's default. */
    public SettingsBuilder parallelism(int v) {
        if (v == 0) {
            conf.removeConfig(CoreOptions.DEFAULT_PARALLELISM);
            return this;
        }
        return set(CoreOptions.DEFAULT_PARALLELISM, v);
    }
    /** A Kafka client property for the source and all sinks, {@code key=value}; a later one replaces an earlier. */
    public SettingsBuilder kafkaProperty(String keyEqualsValue) {
        Map.Entry<String, String> e = Settings.kafkaProperty(keyEqualsValue);
        kafkaProperties.put(e.getKey(), e.getValue());
        return this;
    }
    /** A Kafka client property for the source and all sinks; a later one replaces an earlier. */
    public SettingsBuilder kafkaProperty(String key, String value) {
        Map.Entry<String, String> e = Settings.kafkaProperty(key, value);
        kafkaProperties.put(e.getKey(), e.getValue());
        return this;
    }

    public Settings build() {
        return new Settings(Settings.copy(conf), kafkaProperties);
    }
}
