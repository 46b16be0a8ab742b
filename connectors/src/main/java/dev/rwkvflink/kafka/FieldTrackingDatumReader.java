package dev.rwkvflink.kafka;

import java.io.IOException;
import org.apache.avro.Schema;
import org.apache.avro.io.ResolvingDecoder;
import org.apache.avro.specific.SpecificData;
import org.apache.avro.specific.SpecificDatumReader;

/**
 * A specific-record reader whose errors name the field being read ({@code field attributes: ...}), so that a dead
 * letter says where a record went wrong.
 */
final class FieldTrackingDatumReader<T> extends SpecificDatumReader<T> {

    /** Reads data written with {@code writer} into instances of {@code type} (whose schema is {@code reader}). */
    FieldTrackingDatumReader(Schema writer, Schema reader, Class<?> type) {
        super(writer, reader, dataWithoutFastReader(type));
    }

    /**
     * The class's data model (with its logical-type conversions) minus Avro's "fast reader", which decodes records
     * without going through {@link #readField} and so could not say which field failed.
     */
    private static SpecificData dataWithoutFastReader(Class<?> type) {
        SpecificData generated = SpecificData.getForClass(type);
        SpecificData data = new SpecificData(type.getClassLoader());
        generated.getConversions().forEach(data::addLogicalTypeConversion);
        data.setFastReaderEnabled(false);
        return data;
    }

    @Override
    protected void readField(Object record, Schema.Field field, Object oldDatum, ResolvingDecoder in, Object state)
            throws IOException {
        try {
            super.readField(record, field, oldDatum, in, state);
        } catch (FieldException inner) {
            throw inner.within(field.name());
        } catch (IOException | RuntimeException e) {
            throw new FieldException(field.name(), e);
        }
    }

    /** An error while reading a field: the dotted path of the field, then the underlying message. */
    static final class FieldException extends IOException {
        private static final long serialVersionUID = 1L;

        private final String path;

        FieldException(String path, Throwable cause) {
            super("field " + path + ": " + describe(cause), cause);
            this.path = path;
        }

        /** The same error seen from the enclosing record's field. */
        FieldException within(String outerField) {
            return new FieldException(outerField + "." + path, getCause());
        }

        private static String describe(Throwable cause) {
            if (cause instanceof StrictBinaryDecoder.MalformedAvroException && cause.getMessage() != null) {
                return cause.getMessage();
            }
            return cause.getClass().getSimpleName() + (cause.getMessage() == null ? "" : ": " + cause.getMessage());
        }
    }
}
