package dev.rwkvflink.kafka;

import java.io.Serial;
import java.util.Objects;
import org.apache.avro.specific.SpecificRecord;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.util.function.SerializableFunction;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * Writes Avro records to one topic: the value in the chosen {@link RecordFormat}, the key from a function of the
 * record (records with equal keys land in the same partition, in order).
 *
 * <p>The Kafka record timestamp is left to the producer (CreateTime = when the record is sent), <em>not</em> the
 * Flink record's timestamp, which for our outputs is the document's event time (kept in the payload's
 * {@code eventTime}). Event times can be arbitrarily old (a backfill of an archive, replayed test data), and a
 * topic's time-based retention deletes a log segment as soon as its newest timestamp is older than
 * {@code retention.ms}: committed output stamped with old event times was deleted by the broker minutes after it was
 * written (an old first timestamp also makes the broker roll a segment at almost every append; our crash and
 * rescale tests lost 2 to 29 documents per run that way, docs/reliability.md).
 */
public final class AvroRecordSerializationSchema<T extends SpecificRecord>
        implements KafkaRecordSerializationSchema<T> {

    @Serial
    private static final long serialVersionUID = 1L;

    private final String topic;
    private final AvroCodec<T> codec;
    private final RecordFormat format;
    private final SerializableFunction<T, byte[]> keyOf;

    /**
     * @param topic the topic every record goes to
     * @param codec encodes the values
     * @param format the value layout
     * @param keyOf the Kafka key bytes of a record (may return null: no key)
     */
    public AvroRecordSerializationSchema(
            String topic, AvroCodec<T> codec, RecordFormat format, SerializableFunction<T, byte[]> keyOf) {
        this.topic = requireText(topic, "topic");
        this.codec = Objects.requireNonNull(codec, "codec");
        this.format = Objects.requireNonNull(format, "format");
        this.keyOf = Objects.requireNonNull(keyOf, "keyOf");
    }

    /** The record for {@code record}; {@code timestamp} (the Flink record's event time) is not used, see above. */
    @Override
    public ProducerRecord<byte[], byte[]> serialize(T record, KafkaSinkContext context, Long timestamp) {
        return new ProducerRecord<>(topic, null, null, keyOf.apply(record), codec.encode(record, format));
    }

    static String requireText(String value, String name) {
        if (value == null || value.isBlank()) {
            throw new IllegalArgumentException(name + " must not be empty");
        }
        return value;
    }
}
