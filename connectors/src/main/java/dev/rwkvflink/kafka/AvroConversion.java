package dev.rwkvflink.kafka;

import java.io.Serializable;

/**
 * Turns a job's own record into the Avro record a sink writes, inside the sink's serializer
 * ({@link KafkaJobs#avroSinkBuilder(String, String, String, AvroCodec, RecordFormat, AvroConversion,
 * org.apache.flink.util.function.SerializableFunction, org.apache.flink.connector.base.DeliveryGuarantee)}): no
 * operator between the two, so no copy of the Avro record between chained operators (Flink deep-copies a mutable
 * record at every chained hand-over; for an embedding that is 768 boxed floats).
 *
 * @param <I> the record the sink receives
 * @param <T> the Avro record it writes
 */
public interface AvroConversion<I, T> extends Serializable {

    /** Called once on each sink subtask before the first {@link #convert}. */
    default void open() {}

    /** The Avro record for {@code in}. */
    T convert(I in);
}
