package dev.rwkvflink.kafka;

import java.io.IOException;
import org.apache.avro.Schema;
import org.apache.avro.generic.PrimitivesArrays;
import org.apache.avro.io.Encoder;
import org.apache.avro.specific.SpecificData;
import org.apache.avro.specific.SpecificDatumWriter;

/**
 * A {@link SpecificDatumWriter} that writes an {@code array<float>} held as Avro's own unboxed
 * {@link PrimitivesArrays.FloatArray} one {@code float} at a time, where the generic writer would box each element
 * and dispatch on its schema: an embedding is 768 to 4,096 floats, and every chunk can emit one. Made with
 * {@link #floats}; any other list is written as usual. The bytes are Avro's binary encoding either way (the
 * codec's tests compare them).
 */
public final class UnboxedFloatsDatumWriter<T> extends SpecificDatumWriter<T> {

    UnboxedFloatsDatumWriter(Schema schema, SpecificData data) {
        super(schema, data);
    }

    /** {@code values} as an Avro array of the {@code array<float>} schema {@code arraySchema}, without boxing. */
    public static PrimitivesArrays.FloatArray floats(float[] values, Schema arraySchema) {
        PrimitivesArrays.FloatArray array = new PrimitivesArrays.FloatArray(values.length, arraySchema);
        for (int i = 0; i < values.length; i++) {
            array.add(i, values[i]);
        }
        return array;
    }

    @Override
    protected void writeArray(Schema schema, Object datum, Encoder out) throws IOException {
        if (!(datum instanceof PrimitivesArrays.FloatArray floats)
                || schema.getElementType().getType() != Schema.Type.FLOAT) {
            super.writeArray(schema, datum, out);
            return;
        }
        int n = floats.size();
        out.writeArrayStart();
        out.setItemCount(n);
        for (int i = 0; i < n; i++) {
            out.startItem();
            out.writeFloat(floats.getFloat(i));
        }
        out.writeArrayEnd();
    }
}
