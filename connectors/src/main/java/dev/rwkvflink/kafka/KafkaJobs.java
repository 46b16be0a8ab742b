package dev.rwkvflink.kafka;

import dev.rwkvflink.schema.DeadLetter;
import dev.rwkvflink.schema.DocumentChunk;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Locale;
import org.apache.avro.specific.SpecificRecord;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.sink.KafkaSinkBuilder;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.KafkaSourceBuilder;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.util.function.SerializableFunction;
import org.apache.kafka.clients.consumer.OffsetResetStrategy;

/**
 * The Kafka sources and sinks of rwkv-flink jobs, configured for exactly-once pipelines.
 *
 * <ul>
 *   <li>{@link #chunkSource}: {@link Decoded} chunks or dead letters from a chunk topic, reading only committed
 *       records ({@code isolation.level=read_committed}); offsets are committed to the group at checkpoints.
 *   <li>{@link #avroSink}, {@link #deadLetterSink}: {@link DeliveryGuarantee#EXACTLY_ONCE} transactional sinks whose
 *       records become visible to {@code read_committed} consumers when the checkpoint that covers them completes.
 *       Each sink needs a transactional-id prefix that no other sink (of this or any other job on the cluster) uses;
 *       the transaction timeout is {@link #TRANSACTION_TIMEOUT} (the broker's maximum is 15 minutes by default, the
 *       producer's default of 1 hour would be refused).
 * </ul>
 *
 * <p>The {@code ...Builder} variants return Flink's builders already configured, for callers that add properties
 * (security, bounded reading) before {@code build()}. Jobs must enable checkpointing for the exactly-once sinks.
 */
public final class KafkaJobs {

    /** The sinks' {@code transaction.timeout.ms}: longer than any checkpoint, shorter than the broker's maximum. */
    public static final Duration TRANSACTION_TIMEOUT = Duration.ofMinutes(10);

    private KafkaJobs() {}

    /**
     * A source of decoded chunks; malformed records arrive as dead letters (see {@link DeadLetterSplitter}).
     *
     * @param bootstrapServers e.g. {@code 127.0.0.1:9092}
     * @param topic the chunk topic
     * @param groupId the consumer group (offsets are committed to it at checkpoints)
     * @param format how chunk values are encoded
     * @param startingOffsets where to start without restored state, e.g. {@link #startingOffsets(String)}
     */
    public static KafkaSource<Decoded> chunkSource(
            String bootstrapServers,
            String topic,
            String groupId,
            RecordFormat format,
            OffsetsInitializer startingOffsets) {
        return chunkSourceBuilder(bootstrapServers, topic, groupId, format, startingOffsets)
                .build();
    }

    /** {@link #chunkSource} as a builder, to add properties before building. */
    public static KafkaSourceBuilder<Decoded> chunkSourceBuilder(
            String bootstrapServers,
            String topic,
            String groupId,
            RecordFormat format,
            OffsetsInitializer startingOffsets) {
        return chunkSourceBuilder(bootstrapServers, topic, groupId, format, null, startingOffsets);
    }

    /**
     * {@link #chunkSourceBuilder} for any format: {@code registryUrl} is the schema registry of the
     * {@link RecordFormat#CONFLUENT} format (null for the others).
     */
    public static KafkaSourceBuilder<Decoded> chunkSourceBuilder(
            String bootstrapServers,
            String topic,
            String groupId,
            RecordFormat format,
            String registryUrl,
            OffsetsInitializer startingOffsets) {
        return KafkaSource.<Decoded>builder()
                .setBootstrapServers(AvroRecordSerializationSchema.requireText(bootstrapServers, "bootstrap servers"))
                .setTopics(AvroRecordSerializationSchema.requireText(topic, "topic"))
                .setGroupId(AvroRecordSerializationSchema.requireText(groupId, "group id"))
                .setStartingOffsets(startingOffsets)
                .setDeserializer(new ChunkDeserializer(
                        format, AvroCodec.forTopic(DocumentChunk.class, topic, format, registryUrl)))
                .setProperty("isolation.level", "read_committed");
    }

    /**
     * Starting offsets by name: {@code earliest}, {@code latest}, or {@code committed} (the group's committed offsets,
     * falling back to earliest for partitions without one).
     */
    @SuppressWarnings("deprecation") // OffsetResetStrategy: the type OffsetsInitializer.committedOffsets still takes
    public static OffsetsInitializer startingOffsets(String name) {
        return switch (name == null ? "" : name.trim().toLowerCase(Locale.ROOT)) {
            case "earliest" -> OffsetsInitializer.earliest();
            case "latest" -> OffsetsInitializer.latest();
            case "committed" -> OffsetsInitializer.committedOffsets(OffsetResetStrategy.EARLIEST);
            default ->
                throw new IllegalArgumentException(
                        "unknown starting offsets '" + name + "': expected earliest, latest or committed");
        };
    }

    /**
     * An exactly-once sink of Avro records.
     *
     * @param bootstrapServers e.g. {@code 127.0.0.1:9092}
     * @param topic the output topic
     * @param transactionalIdPrefix unique to this sink among all sinks writing to the cluster
     * @param codec encodes the values
     * @param format the value layout
     * @param keyOf the Kafka key of a record (UTF-8 encoded; null for none)
     */
    public static <T extends SpecificRecord> KafkaSink<T> avroSink(
            String bootstrapServers,
            String topic,
            String transactionalIdPrefix,
            AvroCodec<T> codec,
            RecordFormat format,
            SerializableFunction<T, String> keyOf) {
        return avroSinkBuilder(bootstrapServers, topic, transactionalIdPrefix, codec, format, keyOf)
                .build();
    }

    /** {@link #avroSink} as a builder, to add producer properties before building. */
    public static <T extends SpecificRecord> KafkaSinkBuilder<T> avroSinkBuilder(
            String bootstrapServers,
            String topic,
            String transactionalIdPrefix,
            AvroCodec<T> codec,
            RecordFormat format,
            SerializableFunction<T, String> keyOf) {
        return avroSinkBuilder(
                bootstrapServers, topic, transactionalIdPrefix, codec, format, keyOf, DeliveryGuarantee.EXACTLY_ONCE);
    }

    /**
     * {@link #avroSinkBuilder} with a delivery guarantee: {@link DeliveryGuarantee#EXACTLY_ONCE} (transactions
     * committed at checkpoints) or {@link DeliveryGuarantee#AT_LEAST_ONCE} (records sent at once and flushed at every
     * checkpoint: visible without waiting for the checkpoint, but records emitted after the last completed checkpoint
     * are emitted again after a failure).
     */
    public static <T extends SpecificRecord> KafkaSinkBuilder<T> avroSinkBuilder(
            String bootstrapServers,
            String topic,
            String transactionalIdPrefix,
            AvroCodec<T> codec,
            RecordFormat format,
            SerializableFunction<T, String> keyOf,
            DeliveryGuarantee delivery) {
        return sink(bootstrapServers, transactionalIdPrefix, avroSchema(topic, codec, format, keyOf), delivery);
    }

    /**
     * {@link #avroSinkBuilder(String, String, String, AvroCodec, RecordFormat, SerializableFunction, DeliveryGuarantee)}
     * for a sink that receives the job's own records and converts each to its Avro record while serialising it
     * ({@code conversion}), not in an operator before the sink.
     */
    public static <I, T extends SpecificRecord> KafkaSinkBuilder<I> avroSinkBuilder(
            String bootstrapServers,
            String topic,
            String transactionalIdPrefix,
            AvroCodec<T> codec,
            RecordFormat format,
            AvroConversion<I, T> conversion,
            SerializableFunction<T, String> keyOf,
            DeliveryGuarantee delivery) {
        return sink(
                bootstrapServers,
                transactionalIdPrefix,
                new ConvertingSerializationSchema<>(conversion, avroSchema(topic, codec, format, keyOf)),
                delivery);
    }

    /** Avro values in {@code format} to {@code topic}, keyed by the UTF-8 bytes of {@code keyOf} (null: no key). */
    private static <T extends SpecificRecord> AvroRecordSerializationSchema<T> avroSchema(
            String topic, AvroCodec<T> codec, RecordFormat format, SerializableFunction<T, String> keyOf) {
        SerializableFunction<T, byte[]> keyBytes = record -> {
            String key = keyOf.apply(record);
            return key == null ? null : key.getBytes(StandardCharsets.UTF_8);
        };
        return new AvroRecordSerializationSchema<>(topic, codec, format, keyBytes);
    }

    /**
     * An exactly-once sink of dead letters, single-object encoded (so that any reader can tell what they are), keyed
     * by the rejected record's original key bytes.
     */
    public static KafkaSink<DeadLetter> deadLetterSink(
            String bootstrapServers, String topic, String transactionalIdPrefix) {
        return deadLetterSinkBuilder(bootstrapServers, topic, transactionalIdPrefix)
                .build();
    }

    /** {@link #deadLetterSink} as a builder, to add producer properties before building. */
    public static KafkaSinkBuilder<DeadLetter> deadLetterSinkBuilder(
            String bootstrapServers, String topic, String transactionalIdPrefix) {
        return deadLetterSinkBuilder(bootstrapServers, topic, transactionalIdPrefix, DeliveryGuarantee.EXACTLY_ONCE);
    }

    /** {@link #deadLetterSinkBuilder} with a delivery guarantee (see {@link #avroSinkBuilder}). */
    public static KafkaSinkBuilder<DeadLetter> deadLetterSinkBuilder(
            String bootstrapServers, String topic, String transactionalIdPrefix, DeliveryGuarantee delivery) {
        SerializableFunction<DeadLetter, byte[]> originalKey = deadLetter -> bytesOf(deadLetter.getKey());
        return sink(
                bootstrapServers,
                transactionalIdPrefix,
                new AvroRecordSerializationSchema<>(
                        topic, AvroCodec.of(DeadLetter.class), RecordFormat.SINGLE_OBJECT, originalKey),
                delivery);
    }

    private static <T> KafkaSinkBuilder<T> sink(
            String bootstrapServers,
            String transactionalIdPrefix,
            KafkaRecordSerializationSchema<T> serializer,
            DeliveryGuarantee delivery) {
        KafkaSinkBuilder<T> builder = KafkaSink.<T>builder()
                .setBootstrapServers(AvroRecordSerializationSchema.requireText(bootstrapServers, "bootstrap servers"))
                .setRecordSerializer(serializer)
                .setDeliveryGuarantee(delivery);
        if (delivery == DeliveryGuarantee.EXACTLY_ONCE) {
            builder.setTransactionalIdPrefix(
                            AvroRecordSerializationSchema.requireText(transactionalIdPrefix, "transactional id prefix"))
                    .setProperty("transaction.timeout.ms", Long.toString(TRANSACTION_TIMEOUT.toMillis()));
        }
        return builder;
    }

    /**
     * A delivery guarantee by name: {@code exactly-once} or {@code at-least-once}.
     *
     * @throws IllegalArgumentException for any other name, listing the two
     */
    public static DeliveryGuarantee delivery(String name) {
        String key = name == null ? "" : name.strip().toLowerCase(Locale.ROOT);
        return switch (key) {
            case "exactly-once" -> DeliveryGuarantee.EXACTLY_ONCE;
            case "at-least-once" -> DeliveryGuarantee.AT_LEAST_ONCE;
            default ->
                throw new IllegalArgumentException(
                        "unknown delivery '" + name
                                + "': exactly-once (output at checkpoints) or at-least-once (output at once, repeats after a failure)");
        };
    }

    private static byte[] bytesOf(ByteBuffer buffer) {
        if (buffer == null) {
            return null;
        }
        ByteBuffer view = buffer.duplicate();
        byte[] bytes = new byte[view.remaining()];
        view.get(bytes);
        return bytes;
    }
}
