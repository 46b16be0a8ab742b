package dev.rwkvflink.kafka;

import dev.rwkvflink.schema.DeadLetter;
import dev.rwkvflink.schema.DocumentChunk;
import java.io.Serial;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.util.Objects;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Turns each Kafka record of a chunk topic into a {@link Decoded}: the {@link DocumentChunk} when the value is a
 * valid chunk in the configured {@link RecordFormat}, otherwise a {@link DeadLetter} with the topic, partition,
 * offset, the raw key and value bytes, the error class and the reason. It never throws, so a malformed record neither
 * fails the job nor disappears.
 *
 * <p>A schema registry that cannot be reached (the Confluent format) is the one failure that is thrown, not
 * dead-lettered: it says nothing about the record, and the job's restart strategy retries it.
 *
 * <p>Only decoding is checked here (Avro structure, schema fingerprint, UTF-8 of every string including the text);
 * what a chunk means (key present, seq order, text or tokens) is checked by the operator that uses it.
 */
public final class ChunkDeserializer implements KafkaRecordDeserializationSchema<Decoded> {

    @Serial
    private static final long serialVersionUID = 1L;

    private final RecordFormat format;
    private final AvroCodec<DocumentChunk> codec;

    /**
     * A deserializer for values written in the given format.
     *
     * @throws IllegalArgumentException for {@link RecordFormat#CONFLUENT}, which needs a codec with its registry
     */
    public ChunkDeserializer(RecordFormat format) {
        this(format, AvroCodec.forTopic(DocumentChunk.class, "", format, null));
    }

    /** A deserializer for values written in the given format, decoded by {@code codec} (with its registry). */
    public ChunkDeserializer(RecordFormat format, AvroCodec<DocumentChunk> codec) {
        this.format = Objects.requireNonNull(format, "format");
        this.codec = Objects.requireNonNull(codec, "codec");
    }

    /** The format values are read in. */
    public RecordFormat format() {
        return format;
    }

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Decoded> out) {
        out.collect(decode(record));
    }

    /** The chunk in a record, or a dead letter saying why there is none. */
    public Decoded decode(ConsumerRecord<byte[], byte[]> record) {
        try {
            return Decoded.chunk(codec.decode(record.value(), format));
        } catch (AvroDecodingException e) {
            return Decoded.deadLetter(deadLetter(record, e.getClass().getName(), e.getMessage()));
        } catch (SchemaRegistryClient.SchemaRegistryException e) {
            throw e; // the registry is down or failing, not the record: fail, and let the restart strategy retry
        } catch (RuntimeException e) {
            return Decoded.deadLetter(deadLetter(
                    record,
                    e.getClass().getName(),
                    "unexpected error while decoding a " + format + " DocumentChunk: " + e));
        }
    }

    /**
     * A dead letter for a Kafka record: where it came from, its raw bytes, the error and the reason; stamped now.
     * Keys and values too large for a dead-letter topic are left out ({@link DeadLetters#bounded}).
     */
    public static DeadLetter deadLetter(ConsumerRecord<byte[], byte[]> record, String errorClass, String reason) {
        return DeadLetters.bounded(DeadLetter.newBuilder()
                .setSourceTopic(record.topic())
                .setPartition(record.partition())
                .setOffset(record.offset())
                .setKey(
                        record.key() == null
                                ? null
                                : ByteBuffer.wrap(record.key().clone()))
                .setValue(
                        record.value() == null
                                ? null
                                : ByteBuffer.wrap(record.value().clone()))
                .setErrorClass(errorClass)
                .setReason(reason)
                .setTime(Instant.ofEpochMilli(System.currentTimeMillis()))
                .build());
    }

    @Override
    public TypeInformation<Decoded> getProducedType() {
        return new DecodedTypeInfo();
    }
}
