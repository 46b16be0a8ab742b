package dev.rwkvflink.schema;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.avro.AvroTypeException;
import org.apache.avro.Schema;
import org.apache.avro.SchemaCompatibility;
import org.apache.avro.SchemaCompatibility.SchemaCompatibilityType;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.specific.SpecificData;
import org.apache.avro.specific.SpecificDatumReader;
import org.apache.avro.specific.SpecificDatumWriter;
import org.apache.avro.specific.SpecificRecordBase;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Round trips of every record, and the compatibility rules of schemas/README.md: a reader schema with a new
 * defaulted field reads old data, a new field without a default does not, and the current schemas stay compatible
 * (both ways) with every released version kept under src/test/resources/released.
 */
class SchemaEvolutionTest {

    private static final Instant EVENT_TIME = Instant.parse("2026-11-23T10:15:30.123Z");
    private static final Instant EMITTED_AT = Instant.parse("2026-11-23T10:15:31.456Z");

    @BeforeAll
    static void trustGeneratedClasses() {
        Schemas.trustGeneratedClasses();
    }

    static Stream<SpecificRecordBase> samples() {
        return Stream.of(
                DocumentChunk.newBuilder()
                        .setKey("doc-1")
                        .setSeq(7)
                        .setText("héllo wörld ✓")
                        .setLast(true)
                        .setEventTime(EVENT_TIME)
                        .setAttributes(Map.of("lang", "fr", "source", "test"))
                        .build(),
                DocumentChunk.newBuilder()
                        .setKey("doc-2")
                        .setSeq(0)
                        .setTokens(List.of(34, 105, 110))
                        .setEventTime(EVENT_TIME)
                        .build(),
                Embedding.newBuilder()
                        .setKey("doc-1")
                        .setModel("9f86d081884c7d65")
                        .setSeq(7)
                        .setTokens(1234)
                        .setDim(3)
                        .setVector(List.of(0.25f, -1.5f, 3.0f))
                        .setPooling("last")
                        .setReason(EmitReason.IDLE)
                        .setEventTime(EVENT_TIME)
                        .setEmittedAt(EMITTED_AT)
                        .build(),
                Classification.newBuilder()
                        .setKey("doc-1")
                        .setModel("9f86d081884c7d65")
                        .setSeq(7)
                        .setLabel("spam")
                        .setLabels(List.of("ham", "spam"))
                        .setProbabilities(List.of(0.125f, 0.875f))
                        .setHead("spam-v2")
                        .setEventTime(EVENT_TIME)
                        .setEmittedAt(EMITTED_AT)
                        .build(),
                DeadLetter.newBuilder()
                        .setSourceTopic("chunks")
                        .setPartition(2)
                        .setOffset(41)
                        .setKey(ByteBuffer.wrap(new byte[] {1, 2}))
                        .setValue(ByteBuffer.wrap(new byte[] {(byte) 0xC3, 0x01, (byte) 0xFF}))
                        .setErrorClass("java.io.EOFException")
                        .setReason("truncated")
                        .setTime(EMITTED_AT)
                        .build());
    }

    @ParameterizedTest
    @MethodSource("samples")
    void binaryRoundTripGivesAnEqualRecord(SpecificRecordBase record) throws IOException {
        byte[] bytes = writeBinary(record);
        SpecificDatumReader<SpecificRecordBase> reader = new SpecificDatumReader<>(record.getSchema());
        SpecificRecordBase decoded = reader.read(null, DecoderFactory.get().binaryDecoder(bytes, null));
        assertEquals(record, decoded);
    }

    @Test
    void singleObjectRoundTripOfTheGeneratedCodecs() throws IOException {
        Embedding embedding = (Embedding)
                samples().filter(Embedding.class::isInstance).findFirst().orElseThrow();
        ByteBuffer bytes = embedding.toByteBuffer();
        assertEquals((byte) 0xC3, bytes.get(0));
        assertEquals((byte) 0x01, bytes.get(1));
        assertEquals(embedding, Embedding.fromByteBuffer(bytes));
    }

    @Test
    void chunkDefaultsAreNoTextNoTokensNotLastNoAttributes() {
        DocumentChunk chunk = DocumentChunk.newBuilder()
                .setKey("k")
                .setSeq(0)
                .setEventTime(EVENT_TIME)
                .build();
        assertNull(chunk.getText());
        assertNull(chunk.getTokens());
        assertEquals(false, chunk.getLast());
        assertEquals(Map.of(), chunk.getAttributes());
        assertEquals(
                "",
                Classification.newBuilder()
                        .setKey("k")
                        .setModel("m")
                        .setSeq(0)
                        .setLabel("a")
                        .setLabels(List.of("a"))
                        .setProbabilities(List.of(1f))
                        .setEventTime(EVENT_TIME)
                        .setEmittedAt(EMITTED_AT)
                        .build()
                        .getHead());
    }

    @ParameterizedTest
    @MethodSource("samples")
    void readerWithANewDefaultedFieldReadsOldData(SpecificRecordBase record) throws IOException {
        Schema writer = record.getSchema();
        Schema reader = withExtraField(
                writer,
                new Schema.Field(
                        "addedLater", Schema.create(Schema.Type.STRING), "a field of a later version", "none"));
        assertEquals(
                SchemaCompatibilityType.COMPATIBLE,
                SchemaCompatibility.checkReaderWriterCompatibility(reader, writer)
                        .getType());

        byte[] old = writeBinary(record);
        GenericRecord read = readGeneric(old, writer, reader);
        GenericRecord asWritten = readGeneric(old, writer, writer);
        assertEquals("none", read.get("addedLater").toString());
        for (Schema.Field field : writer.getFields()) {
            assertEquals(asWritten.get(field.name()), read.get(field.name()), field.name());
        }
    }

    @Test
    void oldReadersIgnoreANewDefaultedField() throws IOException {
        Schema current = DocumentChunk.getClassSchema();
        Schema next = withExtraField(
                current,
                new Schema.Field(
                        "language",
                        Schema.createUnion(Schema.create(Schema.Type.NULL), Schema.create(Schema.Type.STRING)),
                        null,
                        Schema.Field.NULL_DEFAULT_VALUE));
        assertEquals(
                SchemaCompatibilityType.COMPATIBLE,
                SchemaCompatibility.checkReaderWriterCompatibility(current, next)
                        .getType());
    }

    @Test
    void aNewFieldWithoutDefaultCannotReadOldData() throws IOException {
        Schema writer = DocumentChunk.getClassSchema();
        Schema reader = withExtraField(writer, new Schema.Field("language", Schema.create(Schema.Type.STRING)));
        assertEquals(
                SchemaCompatibilityType.INCOMPATIBLE,
                SchemaCompatibility.checkReaderWriterCompatibility(reader, writer)
                        .getType());
        byte[] old = writeBinary(samples().findFirst().orElseThrow());
        AvroTypeException error = assertThrows(AvroTypeException.class, () -> readGeneric(old, writer, reader));
        assertTrue(error.getMessage().contains("language"), error.getMessage());
    }

    /** Released schema versions: one folder per release under src/test/resources/released (a copy of src/main/avro). */
    private static List<String> releasedVersions() throws Exception {
        Path released =
                Path.of(SchemaEvolutionTest.class.getResource("/released").toURI());
        try (Stream<Path> folders = Files.list(released)) {
            return folders.filter(Files::isDirectory)
                    .map(folder -> folder.getFileName().toString())
                    .sorted()
                    .toList();
        }
    }

    @Test
    void currentSchemasStayCompatibleWithEveryReleasedVersion() throws Exception {
        List<String> versions = releasedVersions();
        assertTrue(versions.contains("v1"), versions::toString);
        for (String version : versions) {
            for (Class<?> type : Schemas.RECORDS) {
                Schema current = SpecificData.get().getSchema(type);
                Schema released = released(version, type.getSimpleName());
                assertEquals(
                        SchemaCompatibilityType.COMPATIBLE,
                        SchemaCompatibility.checkReaderWriterCompatibility(current, released)
                                .getType(),
                        () -> type.getSimpleName() + ": the current schema cannot read data written with " + version);
                assertEquals(
                        SchemaCompatibilityType.COMPATIBLE,
                        SchemaCompatibility.checkReaderWriterCompatibility(released, current)
                                .getType(),
                        () -> type.getSimpleName() + ": readers of " + version
                                + " cannot read data of the current schema");
                for (Schema.Field field : released.getFields()) {
                    Schema.Field now = current.getField(field.name());
                    assertTrue(
                            now != null,
                            () -> type.getSimpleName() + "." + field.name() + " of " + version
                                    + " was removed or renamed: fields are never removed or renamed");
                    assertEquals(
                            SchemaNormalization.toParsingForm(field.schema()),
                            SchemaNormalization.toParsingForm(now.schema()),
                            () -> type.getSimpleName() + "." + field.name() + " changed its type since " + version);
                }
            }
        }
    }

    private static Schema released(String version, String name) throws IOException {
        String resource = "/released/" + version + "/" + name + ".avsc";
        try (InputStream in = SchemaEvolutionTest.class.getResourceAsStream(resource)) {
            assertTrue(in != null, "missing " + resource);
            return new Schema.Parser().parse(in);
        }
    }

    private static Schema withExtraField(Schema schema, Schema.Field extra) {
        List<Schema.Field> fields = new ArrayList<>();
        for (Schema.Field field : schema.getFields()) {
            fields.add(new Schema.Field(field, field.schema()));
        }
        fields.add(extra);
        return Schema.createRecord(schema.getName(), schema.getDoc(), schema.getNamespace(), false, fields);
    }

    private static byte[] writeBinary(SpecificRecordBase record) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        BinaryEncoder encoder = EncoderFactory.get().binaryEncoder(out, null);
        new SpecificDatumWriter<SpecificRecordBase>(record.getSchema()).write(record, encoder);
        encoder.flush();
        return out.toByteArray();
    }

    private static GenericRecord readGeneric(byte[] bytes, Schema writer, Schema reader) throws IOException {
        return new GenericDatumReader<GenericRecord>(writer, reader)
                .read(null, DecoderFactory.get().binaryDecoder(bytes, null));
    }
}
