package dev.rwkvflink.jobs;

import java.util.List;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;

/**
 * The {@link EmbedJob}'s own settings (Kafka, topics, delivery, the sinks' task) as Flink {@link ConfigOption}s,
 * next to the operator's ({@code RwkvOptions}) and two of Flink's own (the checkpoint interval, the default
 * parallelism). {@link Settings#from} reads them from a Flink configuration; {@link Settings#FLAGS} names the
 * command-line flag of each. The one place of each setting's key, default and description.
 */
public final class JobOptions {

    private JobOptions() {}

    public static final ConfigOption<String> BOOTSTRAP_SERVERS = ConfigOptions.key("rwkv.kafka.bootstrap-servers")
            .stringType()
            .noDefaultValue()
            .withDescription("Kafka bootstrap servers of the source and the sinks (required).");

    public static final ConfigOption<String> CHUNKS_TOPIC = ConfigOptions.key("rwkv.kafka.chunks-topic")
            .stringType()
            .defaultValue("chunks")
            .withDescription("Topic of the DocumentChunk records to embed.");

    public static final ConfigOption<String> EMBEDDINGS_TOPIC = ConfigOptions.key("rwkv.kafka.embeddings-topic")
            .stringType()
            .defaultValue("embeddings")
            .withDescription("Topic the Embedding records go to.");

    public static final ConfigOption<String> DEAD_LETTERS_TOPIC = ConfigOptions.key("rwkv.kafka.dead-letters-topic")
            .stringType()
            .defaultValue("chunks-dead-letters")
            .withDescription("Topic of the DeadLetter records: input that could not be used, with the reason.");

    public static final ConfigOption<String> CLASSIFICATIONS_TOPIC = ConfigOptions.key(
                    "rwkv.kafka.classifications-topic")
            .stringType()
            .defaultValue("classifications")
            .withDescription("Topic the Classification records go to when a head is set.");

    public static final ConfigOption<String> GROUP_ID = ConfigOptions.key("rwkv.kafka.group-id")
            .stringType()
            .defaultValue("rwkv-embed")
            .withDescription("Consumer group of the source (offsets are committed at checkpoints).");

    public static final ConfigOption<String> STARTING_OFFSETS = ConfigOptions.key("rwkv.kafka.starting-offsets")
            .stringType()
            .defaultValue("committed")
            .withDescription("Where the source starts without restored state: earliest, latest, or committed "
                    + "(earliest where the group has none); ignored when restoring.");

    /** The text of {@link #FORMAT} (and of the CLI's --format). */
    public static final String FORMAT_DESCRIPTION = "Layout of the Avro records of chunks in and embeddings and "
            + "classes out: single-object (marker, schema fingerprint, record), binary (the record alone) or "
            + "confluent (zero byte, schema id in the schema registry of rwkv.kafka.schema-registry-url, record; "
            + "writers register under <topic>-value, readers resolve older schema versions); dead letters are "
            + "always single-object.";

    public static final ConfigOption<String> FORMAT = ConfigOptions.key("rwkv.kafka.format")
            .stringType()
            .defaultValue("single-object")
            .withDescription(FORMAT_DESCRIPTION);

    /** The text of {@link #SCHEMA_REGISTRY_URL} (and of the CLI's --schema-registry-url). */
    public static final String SCHEMA_REGISTRY_URL_DESCRIPTION = "Base URL of the Confluent Schema Registry API "
            + "that the confluent format uses, e.g. http://registry:8081 (Confluent, Karapace, Redpanda) or "
            + "http://host:8080/apis/ccompat/v7 (Apicurio Registry); local starts one when the format is confluent "
            + "and none is given.";

    public static final ConfigOption<String> SCHEMA_REGISTRY_URL = ConfigOptions.key("rwkv.kafka.schema-registry-url")
            .stringType()
            .noDefaultValue()
            .withDescription(SCHEMA_REGISTRY_URL_DESCRIPTION);

    public static final ConfigOption<String> TRANSACTIONAL_ID_PREFIX = ConfigOptions.key(
                    "rwkv.kafka.transactional-id-prefix")
            .stringType()
            .noDefaultValue()
            .withDescription("Prefix of the sinks' transactional ids (PREFIX-embeddings, -classifications, "
                    + "-dead-letters), unique per job on the Kafka cluster; unset: the group id.");

    public static final ConfigOption<String> DELIVERY = ConfigOptions.key("rwkv.kafka.delivery")
            .stringType()
            .defaultValue("exactly-once")
            .withDescription("exactly-once: output in Kafka transactions committed at checkpoints; at-least-once: "
                    + "output at once, flushed at checkpoints, repeated after a failure.");

    public static final ConfigOption<Boolean> SEPARATE_SINKS = ConfigOptions.key("rwkv.sinks.separate")
            .booleanType()
            .defaultValue(true)
            .withDescription("The Avro conversion and Kafka sinks of embeddings and classes run in a task of their "
                    + "own (same slot), overlapping the model's next batch; false: chained to the operator.");

    /** Every option above, in the order of the configuration reference. */
    public static final List<ConfigOption<?>> ALL = List.of(
            BOOTSTRAP_SERVERS,
            CHUNKS_TOPIC,
            EMBEDDINGS_TOPIC,
            DEAD_LETTERS_TOPIC,
            CLASSIFICATIONS_TOPIC,
            GROUP_ID,
            STARTING_OFFSETS,
            FORMAT,
            SCHEMA_REGISTRY_URL,
            TRANSACTIONAL_ID_PREFIX,
            DELIVERY,
            SEPARATE_SINKS);
}
