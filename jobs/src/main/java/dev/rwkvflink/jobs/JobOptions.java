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

    private JobOptions() {
    }

    public static final ConfigOption<String> BOOTSTRAP_SERVERS = ConfigOptions.key("rwkv.kafka.bootstrap-servers")
            .stringType().noDefaultValue()
            .withDescription("Kafka bootstrap servers of the source and the sinks (required).");

    public static final ConfigOption<String> CHUNKS_TOPIC = ConfigOptions.key("rwkv.kafka.chunks-topic")
            .stringType().defaultValue("chunks")
            .withDescription("Topic of the DocumentChunk records to embed.");

    public static final ConfigOption<String> EMBEDDINGS_TOPIC = ConfigOptions.key("rwkv.kafka.embeddings-topic")
            .stringType().defaultValue("embeddings")
            .withDescription("Topic the Embedding records go to.");

    public static final ConfigOption<String> DEAD_LETTERS_TOPIC = ConfigOptions.key("rwkv.kafka.dead-letters-topic")
            .stringType().defaultValue("chunks-dead-letters")
            .withDescription("Topic of the DeadLetter records: input that could not be used, with the reason.");

    public static final ConfigOption<String> CLASSIFICATIONS_TOPIC = ConfigOptions
            .key("rwkv.kafka.classifications-topic").stringType().defaultValue("classifications")
            .withDescription("Topic the Classification records go to when a head is set.");

    public static final ConfigOption<String> GROUP_ID = ConfigOptions.key("rwkv.kafka.group-id").stringType()
            .defaultValue("rwkv-embed")
            .withDescription("Consumer group of the source (offsets are committed at checkpoints).");

    public static final ConfigOption<String> STARTING_OFFSETS = ConfigOptions.key("rwkv.kafka.starting-offsets")
            .stringType().defaultValue("committed")
            .withDescription("Where the source starts without restored state: earliest, latest, or committed "
                    + "(earliest where the group has none); ignored when restoring.");

    public static final ConfigOption<String> FORMAT = ConfigOptions.key("rwkv.kafka.format").stringType()
            .defaultValue("single-object")
            .withDescription("Layout of the Avro records of chunks in and embeddings and classes out: "
                    + "single-object (marker, schema fingerprint, record) or binary (the record alone); dead "
                    + "letters are always single-object.");

    public static final ConfigOption<String> TRANSACTIONAL_ID_PREFIX = ConfigOptions
            .key("rwkv.kafka.transactional-id-prefix").stringType().noDefaultValue()
            .withDescription("Prefix of the sinks' transactional ids (PREFIX-embeddings, -classifications, "
                    + "-dead-letters), unique per job on the Kafka cluster; unset: the group id.");

    public static final ConfigOption<String> DELIVERY = ConfigOptions.key("rwkv.kafka.delivery").stringType()
            .defaultValue("exactly-once")
            .withDescription("exactly-once: output in Kafka transactions committed at checkpoints; at-least-once: "
                    + "output at once, flushed at checkpoints, repeated after a failure.");

    public static final ConfigOption<Boolean> SEPARATE_SINKS = ConfigOptions.key("rwkv.sinks.separate")
            .booleanType().defaultValue(true)
            .withDescription("The Avro conversion and Kafka sinks of embeddings and classes run in a task of their "
                    + "own (same slot), overlapping the model's next batch; false: chained to the operator.");

    /** Every option above, in the order of the configuration reference. */
    public static final List<ConfigOption<?>> ALL = List.of(BOOTSTRAP_SERVERS, CHUNKS_TOPIC, EMBEDDINGS_TOPIC,
            DEAD_LETTERS_TOPIC, CLASSIFICATIONS_TOPIC, GROUP_ID, STARTING_OFFSETS, FORMAT, TRANSACTIONAL_ID_PREFIX,
            DELIVERY, SEPARATE_SINKS);
}
