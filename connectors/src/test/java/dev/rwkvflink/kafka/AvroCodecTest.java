package dev.rwkvflink.kafka;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.schema.DeadLetter;
import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.Embedding;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.specific.SpecificData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class AvroCodecTest {

    private final AvroCodec<DocumentChunk> chunks = AvroCodec.of(DocumentChunk.class);

    /** Every format that needs no schema registry (the confluent one: {@link SchemaRegistryITCase}). */
    @ParameterizedTest
    @EnumSource(value = RecordFormat.class, names = "CONFLUENT", mode = EnumSource.Mode.EXCLUDE)
    void roundTripsEveryKindOfChunk(RecordFormat format) {
        for (DocumentChunk chunk : List.of(
                Chunks.text("doc-1", 0, "héllo wörld ✓ 😀"),
                Chunks.lastTokens("doc-2", 5, 1, 2, 3),
                Chunks.text("", 0, ""))) {
            assertEquals(chunk, chunks.decode(chunks.encode(chunk, format), format));
        }
    }

    @Test
    void roundTripsOtherRecordTypes() {
        AvroCodec<Embedding> embeddings = AvroCodec.of(Embedding.class);
        assertEquals(Chunks.embedding(), embeddings.decodeBinary(embeddings.encodeBinary(Chunks.embedding())));
        AvroCodec<DeadLetter> deadLetters = AvroCodec.of(DeadLetter.class);
        DeadLetter deadLetter = DeadLetter.newBuilder()
                .setSourceTopic("t")
                .setPartition(1)
                .setOffset(2)
                .setValue(ByteBuffer.wrap(new byte[] {1, 2, 3}))
                .setErrorClass("E")
                .setReason("r")
                .setTime(Instant.ofEpochMilli(1234))
                .build();
        assertEquals(deadLetter, deadLetters.decodeSingleObject(deadLetters.encodeSingleObject(deadLetter)));
    }

    @Test
    void unboxedFloatArraysEncodeToTheBytesOfBoxedOnes() throws IOException {
        Random rnd = new Random(7); // fixed seed
        float[] vector = new float[768];
        for (int i = 0; i < vector.length; i++) {
            vector[i] = (float) rnd.nextGaussian();
        }
        vector[1] = Float.NaN;
        vector[2] = -0.0f;
        vector[3] = Float.NEGATIVE_INFINITY;
        List<Float> boxed = new ArrayList<>();
        for (float f : vector) {
            boxed.add(f);
        }
        Schema arraySchema = Embedding.getClassSchema().getField("vector").schema();
        Embedding unboxed = Embedding.newBuilder(Chunks.embedding())
                .setDim(vector.length)
                .setVector(UnboxedFloatsDatumWriter.floats(vector, arraySchema))
                .build();
        Embedding plain = Embedding.newBuilder(unboxed).setVector(boxed).build();
        AvroCodec<Embedding> codec = AvroCodec.of(Embedding.class);
        byte[] fast = codec.encodeBinary(unboxed);
        assertArrayEquals(codec.encodeBinary(plain), fast);
        // and Avro's own generic writer, which knows nothing of the fast path, writes the same bytes
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        BinaryEncoder encoder = EncoderFactory.get().binaryEncoder(out, null);
        new GenericDatumWriter<Embedding>(Embedding.getClassSchema(), SpecificData.get()).write(plain, encoder);
        encoder.flush();
        assertArrayEquals(out.toByteArray(), fast);
        Embedding back = codec.decode(fast, RecordFormat.BINARY);
        for (int i = 0; i < vector.length; i++) {
            assertEquals(
                    Float.floatToRawIntBits(vector[i]),
                    Float.floatToRawIntBits(back.getVector().get(i)),
                    "element " + i);
        }
    }

    @Test
    void singleObjectIsMarkerFingerprintThenBinary() {
        DocumentChunk chunk = Chunks.text("doc", 3, "abc");
        byte[] single = chunks.encodeSingleObject(chunk);
        byte[] binary = chunks.encodeBinary(chunk);
        long fingerprint = SchemaNormalization.parsingFingerprint64(DocumentChunk.getClassSchema());
        assertEquals(fingerprint, chunks.fingerprint());
        assertEquals(binary.length + 10, single.length);
        assertEquals((byte) 0xC3, single[0]);
        assertEquals((byte) 0x01, single[1]);
        assertEquals(
                fingerprint,
                ByteBuffer.wrap(single, 2, 8).order(ByteOrder.LITTLE_ENDIAN).getLong());
        assertArrayEquals(binary, Arrays.copyOfRange(single, 10, single.length));
    }

    @Test
    void singleObjectBytesAreInterchangeableWithAvrosOwnMessageCodec() throws IOException {
        DocumentChunk chunk = Chunks.text("doc", 3, "abc");
        assertEquals(chunk, DocumentChunk.fromByteBuffer(ByteBuffer.wrap(chunks.encodeSingleObject(chunk))));
        ByteBuffer avros = chunk.toByteBuffer();
        byte[] bytes = new byte[avros.remaining()];
        avros.get(bytes);
        assertEquals(chunk, chunks.decodeSingleObject(bytes));
    }

    @Test
    void aRecordOfAnotherSchemaIsRefusedNamingBothFingerprints() {
        byte[] embedding = AvroCodec.of(Embedding.class).encodeSingleObject(Chunks.embedding());
        AvroDecodingException error =
                assertThrows(AvroDecodingException.class, () -> chunks.decodeSingleObject(embedding));
        long embeddingFingerprint = SchemaNormalization.parsingFingerprint64(Embedding.getClassSchema());
        assertTrue(error.getMessage().contains(AvroCodec.hex(embeddingFingerprint)), error.getMessage());
        assertTrue(error.getMessage().contains(AvroCodec.hex(chunks.fingerprint())), error.getMessage());
        assertTrue(
                error.getMessage().startsWith("cannot decode DocumentChunk from " + embedding.length + " bytes"),
                error.getMessage());
    }

    @Test
    void binaryBytesAreNotSingleObject() {
        byte[] binary = chunks.encodeBinary(Chunks.text("doc", 0, "x"));
        AvroDecodingException error =
                assertThrows(AvroDecodingException.class, () -> chunks.decodeSingleObject(binary));
        assertTrue(error.reason().startsWith("not a single-object record: it must start with C3 01"), error.reason());
    }

    @Test
    void garbageGivesAReasonWithFieldAndOffset() {
        byte[] garbage = "this is not avro".getBytes(StandardCharsets.US_ASCII);
        AvroDecodingException error = assertThrows(AvroDecodingException.class, () -> chunks.decodeBinary(garbage));
        // 't' = 0x74 is the varint 58: a 58-byte key in 15 remaining bytes.
        assertEquals("field key: string of 58 bytes runs past the end (15 bytes left) (at byte 0)", error.reason());
    }

    @Test
    void aHugeLengthIsRefusedBeforeAnythingIsAllocated() {
        // key "k", seq 0, text branch 1, then a string length of 2^40.
        byte[] bytes = {2, 'k', 0, 2, (byte) 0x80, (byte) 0x80, (byte) 0x80, (byte) 0x80, (byte) 0x80, 0x20};
        AvroDecodingException error = assertThrows(AvroDecodingException.class, () -> chunks.decodeBinary(bytes));
        assertTrue(
                error.reason().startsWith("field text: string of 549755813888 bytes runs past the end"),
                error.reason());
        // key "k", seq 0, no text, tokens branch 1, then an array of a billion items.
        byte[] array = {2, 'k', 0, 0, 2, (byte) 0x80, (byte) 0xa8, (byte) 0xd6, (byte) 0xb9, 0x07};
        AvroDecodingException arrayError = assertThrows(AvroDecodingException.class, () -> chunks.decodeBinary(array));
        assertTrue(
                arrayError.reason().startsWith("field tokens: array block of 1000000000 items cannot fit"),
                arrayError.reason());
    }

    @Test
    void everyTruncationIsRefused() {
        byte[] whole = chunks.encodeBinary(Chunks.text("doc-1", 7, "some text"));
        for (int length = 0; length < whole.length; length++) {
            byte[] prefix = Arrays.copyOf(whole, length);
            assertThrows(AvroDecodingException.class, () -> chunks.decodeBinary(prefix), "prefix of " + length);
        }
        AvroDecodingException error =
                assertThrows(AvroDecodingException.class, () -> chunks.decodeBinary(Chunks.truncated(whole, 1)));
        assertEquals(
                "field attributes: truncated: a byte needs 1 bytes, 0 left (at byte " + (whole.length - 1) + ")",
                error.reason());
    }

    @Test
    void bytesAfterTheRecordAreRefused() {
        byte[] whole = chunks.encodeBinary(Chunks.text("doc", 0, "x"));
        byte[] longer = Arrays.copyOf(whole, whole.length + 2);
        AvroDecodingException error = assertThrows(AvroDecodingException.class, () -> chunks.decodeBinary(longer));
        assertEquals("2 bytes left over after the record ends at byte " + whole.length, error.reason());
    }

    @Test
    void invalidUtf8IsRefusedWhereAvroWouldReplaceIt() throws IOException {
        DocumentChunk chunk = Chunks.text("doc", 0, "abcd");
        byte[] broken = Chunks.withInvalidUtf8(chunks.encodeSingleObject(chunk), "abcd");
        // Avro's own decoder accepts the bytes and substitutes U+FFFD: the text would silently change.
        assertEquals(
                "a\uFFFDcd",
                DocumentChunk.fromByteBuffer(ByteBuffer.wrap(broken)).getText());

        AvroDecodingException error =
                assertThrows(AvroDecodingException.class, () -> chunks.decodeSingleObject(broken));
        assertTrue(
                error.reason()
                        .startsWith("field text: string of 4 bytes is not valid UTF-8: malformed sequence of "
                                + "1 byte(s) at byte 1 of the string (0xff)"),
                error.reason());
    }

    @Test
    void invalidUtf8IsRefusedInKeysAndAttributesToo() {
        DocumentChunk chunk = DocumentChunk.newBuilder()
                .setKey("kkkk")
                .setSeq(0)
                .setText("t")
                .setEventTime(Chunks.EVENT_TIME)
                .setAttributes(Map.of("name", "vvvv"))
                .build();
        byte[] bytes = chunks.encodeBinary(chunk);
        assertTrue(assertThrows(
                        AvroDecodingException.class, () -> chunks.decodeBinary(Chunks.withInvalidUtf8(bytes, "kkkk")))
                .reason()
                .startsWith("field key: "));
        assertTrue(assertThrows(
                        AvroDecodingException.class, () -> chunks.decodeBinary(Chunks.withInvalidUtf8(bytes, "vvvv")))
                .reason()
                .startsWith("field attributes: "));
    }

    @Test
    void overlongAndSurrogateUtf8AreInvalid() {
        for (byte[] text : List.of(
                new byte[] {(byte) 0xC0, (byte) 0xAF},
                new byte[] {(byte) 0xED, (byte) 0xA0, (byte) 0x80},
                new byte[] {(byte) 0xE2, (byte) 0x82})) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            out.writeBytes(new byte[] {2, 'k', 0, 2, (byte) (text.length * 2)});
            out.writeBytes(text);
            out.writeBytes(new byte[] {0, 0, 0, 0});
            AvroDecodingException error =
                    assertThrows(AvroDecodingException.class, () -> chunks.decodeBinary(out.toByteArray()));
            assertTrue(error.reason().contains("is not valid UTF-8"), error.reason());
        }
    }

    @Test
    void randomCorruptionsEitherDecodeOrFailWithADecodingException() {
        byte[] whole = chunks.encodeBinary(Chunks.text("doc-1", 123456, "some text with ü and ✓"));
        Random random = new Random(42);
        int refused = 0;
        for (int i = 0; i < 5000; i++) {
            byte[] corrupt = whole.clone();
            for (int flips = 1 + random.nextInt(3); flips > 0; flips--) {
                corrupt[random.nextInt(corrupt.length)] = (byte) random.nextInt(256);
            }
            try {
                chunks.decodeBinary(corrupt);
            } catch (AvroDecodingException expected) {
                refused++;
            }
        }
        assertTrue(refused > 1000, "only " + refused + " of 5000 corruptions refused");
    }

    @Test
    void missingBytesAreRefused() {
        assertEquals(
                "no bytes (null value)",
                assertThrows(AvroDecodingException.class, () -> chunks.decodeBinary(null))
                        .reason());
        assertEquals(
                "no bytes (empty value)",
                assertThrows(AvroDecodingException.class, () -> chunks.decodeSingleObject(new byte[0]))
                        .reason());
    }

    @Test
    void olderSchemasAreResolvedWhenRegistered() throws IOException {
        Schema older = Chunks.olderChunkSchema();
        GenericRecord old = Chunks.olderChunk(older, "from an older producer", false);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(new byte[] {(byte) 0xC3, 0x01});
        out.writeBytes(ByteBuffer.allocate(8)
                .order(ByteOrder.LITTLE_ENDIAN)
                .putLong(SchemaNormalization.parsingFingerprint64(older))
                .array());
        BinaryEncoder encoder = EncoderFactory.get().binaryEncoder(out, null);
        new GenericDatumWriter<GenericRecord>(older).write(old, encoder);
        encoder.flush();
        byte[] bytes = out.toByteArray();

        assertThrows(AvroDecodingException.class, () -> chunks.decodeSingleObject(bytes));
        DocumentChunk read = AvroCodec.builder(DocumentChunk.class)
                .olderSchema(older)
                .build()
                .decodeSingleObject(bytes);
        assertEquals("from an older producer", read.getText());
        assertEquals(Map.of(), read.getAttributes());
        assertEquals(Instant.ofEpochMilli(1000), read.getEventTime());
    }

    @Test
    void anUnreadableOlderSchemaIsRefusedAtBuildTime() {
        Schema unrelated = Schema.createRecord(
                "DocumentChunk",
                null,
                "dev.rwkvflink.schema",
                false,
                List.of(new Schema.Field("key", Schema.create(Schema.Type.INT))));
        IllegalArgumentException error = assertThrows(
                IllegalArgumentException.class,
                () -> AvroCodec.builder(DocumentChunk.class).olderSchema(unrelated));
        assertTrue(
                error.getMessage().startsWith("the current DocumentChunk schema cannot read data written with schema"),
                error.getMessage());
    }

    @Test
    void encodingAnIncompleteRecordSaysWhy() {
        DocumentChunk missingKey = new DocumentChunk();
        IllegalArgumentException error =
                assertThrows(IllegalArgumentException.class, () -> chunks.encodeBinary(missingKey));
        assertTrue(error.getMessage().startsWith("cannot encode DocumentChunk: "), error.getMessage());
    }

    @Test
    void survivesJavaSerializationAsFlinkShipsIt() throws Exception {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            out.writeObject(chunks);
        }
        @SuppressWarnings("unchecked")
        AvroCodec<DocumentChunk> copy = (AvroCodec<DocumentChunk>)
                new ObjectInputStream(new ByteArrayInputStream(bytes.toByteArray())).readObject();
        DocumentChunk chunk = Chunks.text("doc", 1, "x");
        assertEquals(chunk, copy.decodeSingleObject(chunks.encodeSingleObject(chunk)));
        assertEquals(chunks.fingerprint(), copy.fingerprint());
    }

    @Test
    void formatsParseByName() {
        assertEquals(RecordFormat.BINARY, RecordFormat.parse("binary"));
        assertEquals(RecordFormat.SINGLE_OBJECT, RecordFormat.parse("Single-Object"));
        assertEquals(RecordFormat.SINGLE_OBJECT, RecordFormat.parse("single_object"));
        IllegalArgumentException error = assertThrows(IllegalArgumentException.class, () -> RecordFormat.parse("json"));
        assertEquals(RecordFormat.CONFLUENT, RecordFormat.parse("CONFLUENT"));
        assertEquals(
                "unknown record format 'json': expected one of binary, single-object, confluent", error.getMessage());
    }
}
