package dev.rwkvflink.kafka;

import java.io.Serial;
import java.util.Objects;
import org.apache.avro.specific.SpecificRecord;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.util.function.SerializableFunction;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * Writes Avro records to one topic: the value in the chosen {@link RecordFormat}, the key from a function of the
 * record (records with equal keys land in the same partition, in order), the record's Flink timestamp if it has one.
 */
public final class AvroRecordSerializationSchema<T extends SpecificRecord> implements KafkaRecordSerializationSchema<T> {

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
  public AvroRecordSerializationSchema(String topic, AvroCodec<T> codec, RecordFormat format,
      SerializableFunction<T, byte[]> keyOf) {
    this.topic = requireText(topic, "topic");
    this.codec = Objects.requireNonNull(codec, "codec");
    this.format = Objects.requireNonNull(format, "format");
    this.keyOf = Objects.requireNonNull(keyOf, "keyOf");
  }

  @Override
  public ProducerRecord<byte[], byte[]> serialize(T record, KafkaSinkContext context, Long timestamp) {
    return new ProducerRecord<>(topic, null, timestamp, keyOf.apply(record), codec.encode(record, format));
  }

  static String requireText(String value, String name) {
    if (value == null || value.isBlank()) {
      throw new IllegalArgumentException(name + " must not be empty");
    }
    return value;
  }
}
