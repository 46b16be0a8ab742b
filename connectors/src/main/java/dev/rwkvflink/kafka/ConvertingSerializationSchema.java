package dev.rwkvflink.kafka;

import java.io.Serial;
import java.util.Objects;
import org.apache.avro.specific.SpecificRecord;
import org.apache.flink.api.common.serialization.SerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.kafka.clients.producer.ProducerRecord;

/** Converts each record to its Avro record ({@link AvroConversion}), then writes it as {@link AvroRecordSerializationSchema}. */
final class ConvertingSerializationSchema<I, T extends SpecificRecord> implements KafkaRecordSerializationSchema<I> {

    @Serial
    private static final long serialVersionUID = 1L;

    private final AvroConversion<I, T> conversion;
    private final AvroRecordSerializationSchema<T> avro;

    ConvertingSerializationSchema(AvroConversion<I, T> conversion, AvroRecordSerializationSchema<T> avro) {
        this.conversion = Objects.requireNonNull(conversion, "conversion");
        this.avro = Objects.requireNonNull(avro, "avro");
    }

    @Override
    public void open(SerializationSchema.InitializationContext context, KafkaSinkContext sinkContext) throws Exception {
        conversion.open();
        avro.open(context, sinkContext);
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(I record, KafkaSinkContext context, Long timestamp) {
        return avro.serialize(conversion.convert(record), context, timestamp);
    }
}
