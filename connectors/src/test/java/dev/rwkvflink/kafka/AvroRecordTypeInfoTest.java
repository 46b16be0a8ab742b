package dev.rwkvflink.kafka;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.Embedding;
import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.flink.api.common.serialization.SerializerConfigImpl;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSchemaCompatibility;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.junit.jupiter.api.Test;

/** The Flink serializer of Avro records: round trips, and what a restore from an older schema does. */
class AvroRecordTypeInfoTest {

    private final TypeSerializer<DocumentChunk> serializer =
            new AvroRecordTypeInfo<>(DocumentChunk.class).createSerializer(new SerializerConfigImpl());

    @Test
    void typeInformationIsEqualForTheSameTypeOnly() {
        assertEquals(new AvroRecordTypeInfo<>(DocumentChunk.class), new AvroRecordTypeInfo<>(DocumentChunk.class));
        assertEquals(
                new AvroRecordTypeInfo<>(DocumentChunk.class).hashCode(),
                new AvroRecordTypeInfo<>(DocumentChunk.class).hashCode());
        assertNotEquals(new AvroRecordTypeInfo<>(DocumentChunk.class), new AvroRecordTypeInfo<>(Embedding.class));
        assertEquals(new DecodedTypeInfo(), new DecodedTypeInfo());
        assertNotEquals(new DecodedTypeInfo(), new AvroRecordTypeInfo<>(DocumentChunk.class));
        assertEquals(1, new DecodedTypeInfo().getArity());
        assertEquals(Decoded.class, new DecodedTypeInfo().getTypeClass());
        assertFalse(new AvroRecordTypeInfo<>(DocumentChunk.class).isKeyType());
    }

    @Test
    void roundTripsAndCopies() throws Exception {
        DocumentChunk chunk = Chunks.text("doc", 2, "text ✓");
        DataOutputSerializer out = new DataOutputSerializer(64);
        serializer.serialize(chunk, out);
        serializer.serialize(Chunks.lastTokens("doc", 3, 1, 2), out);
        DataInputDeserializer in = new DataInputDeserializer(out.getCopyOfBuffer());
        DataOutputSerializer copied = new DataOutputSerializer(64);
        serializer.copy(in, copied);
        assertEquals(chunk, serializer.deserialize(new DataInputDeserializer(copied.getCopyOfBuffer())));
        assertEquals(Chunks.lastTokens("doc", 3, 1, 2), serializer.deserialize(in));

        DocumentChunk copy = serializer.copy(chunk);
        assertEquals(chunk, copy);
        assertNotSame(chunk.getAttributes(), copy.getAttributes());
    }

    @Test
    void snapshotRoundTripIsCompatibleAsIs() throws Exception {
        TypeSerializerSnapshot<DocumentChunk> restored = writeAndRead(serializer.snapshotConfiguration());
        assertTrue(serializer
                .snapshotConfiguration()
                .resolveSchemaCompatibility(restored)
                .isCompatibleAsIs());
    }

    @Test
    void stateOfAnOlderCompatibleSchemaIsMigrated() throws Exception {
        Schema older = withoutField(DocumentChunk.getClassSchema(), "attributes");
        TypeSerializerSnapshot<DocumentChunk> old =
                writeAndRead(new AvroRecordTypeInfo.Snapshot<>(DocumentChunk.class, older));
        TypeSerializerSchemaCompatibility<DocumentChunk> compatibility =
                serializer.snapshotConfiguration().resolveSchemaCompatibility(old);
        assertTrue(compatibility.isCompatibleAfterMigration(), compatibility.toString());

        GenericRecord record = new GenericData.Record(older);
        record.put("key", "doc");
        record.put("seq", 1L);
        record.put("text", "kept in old state");
        record.put("last", true);
        record.put("eventTime", 5L);
        ByteArrayOutputStream avro = new ByteArrayOutputStream();
        BinaryEncoder encoder = EncoderFactory.get().binaryEncoder(avro, null);
        new GenericDatumWriter<GenericRecord>(older).write(record, encoder);
        encoder.flush();
        DataOutputSerializer state = new DataOutputSerializer(64);
        state.writeInt(avro.size());
        state.write(avro.toByteArray());

        DocumentChunk migrated =
                old.restoreSerializer().deserialize(new DataInputDeserializer(state.getCopyOfBuffer()));
        assertEquals("kept in old state", migrated.getText());
        assertEquals(Map.of(), migrated.getAttributes());
    }

    @Test
    void stateOfAnUnreadableSchemaIsRefused() throws Exception {
        Schema unreadable = Schema.createRecord(
                "DocumentChunk",
                null,
                "dev.rwkvflink.schema",
                false,
                List.of(new Schema.Field("key", Schema.create(Schema.Type.INT))));
        TypeSerializerSnapshot<DocumentChunk> old =
                writeAndRead(new AvroRecordTypeInfo.Snapshot<>(DocumentChunk.class, unreadable));
        assertTrue(serializer
                .snapshotConfiguration()
                .resolveSchemaCompatibility(old)
                .isIncompatible());
    }

    private static TypeSerializerSnapshot<DocumentChunk> writeAndRead(TypeSerializerSnapshot<DocumentChunk> snapshot)
            throws Exception {
        DataOutputSerializer out = new DataOutputSerializer(256);
        TypeSerializerSnapshot.writeVersionedSnapshot(out, snapshot);
        return TypeSerializerSnapshot.readVersionedSnapshot(
                new DataInputDeserializer(out.getCopyOfBuffer()), AvroRecordTypeInfoTest.class.getClassLoader());
    }

    private static Schema withoutField(Schema schema, String name) {
        List<Schema.Field> fields = new ArrayList<>();
        for (Schema.Field field : schema.getFields()) {
            if (!field.name().equals(name)) {
                fields.add(new Schema.Field(field, field.schema()));
            }
        }
        return Schema.createRecord(schema.getName(), null, schema.getNamespace(), false, fields);
    }
}
