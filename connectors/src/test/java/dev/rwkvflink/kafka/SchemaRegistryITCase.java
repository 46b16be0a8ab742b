package dev.rwkvflink.kafka;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.kafka.local.EmbeddedSchemaRegistry;
import dev.rwkvflink.schema.DeadLetter;
import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.Embedding;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The Confluent wire format against a real schema registry (Apicurio Registry in a child JVM, its Confluent API):
 * writers register and frame, readers fetch writer schemas by id and resolve older versions; an unknown id, an
 * unreadable writer schema and bytes not framed so are dead letters with the reason; an unreachable registry fails.
 */
class SchemaRegistryITCase {

    private static EmbeddedSchemaRegistry registry;

    @BeforeAll
    static void start() {
        registry = EmbeddedSchemaRegistry.start();
    }

    @AfterAll
    static void stop() {
        registry.close();
    }

    private static AvroCodec<DocumentChunk> chunks(String topic) {
        return AvroCodec.forTopic(DocumentChunk.class, topic, RecordFormat.CONFLUENT, registry.url());
    }

    private static ConsumerRecord<byte[], byte[]> record(byte[] value) {
        return new ConsumerRecord<>("chunks", 0, 7L, "k".getBytes(StandardCharsets.UTF_8), value);
    }

    @Test
    void writersRegisterTheirSchemaAndFrameRecordsWithItsId() {
        AvroCodec<DocumentChunk> codec = chunks("round-trip");
        DocumentChunk chunk = Chunks.text("doc-1", 3, "héllo");
        byte[] bytes = codec.encode(chunk, RecordFormat.CONFLUENT);
        int id = ByteBuffer.wrap(bytes, 1, 4).getInt();
        assertEquals(0, bytes[0]);
        assertEquals(codec.schemaId(), id);
        SchemaRegistryClient client = new SchemaRegistryClient(registry.url());
        assertEquals(DocumentChunk.getClassSchema(), client.schema(id), "the registry holds the writer's schema");
        assertEquals(id, client.register("round-trip-value", DocumentChunk.getClassSchema()), "registered there");
        assertArrayEquals(
                AvroCodec.of(DocumentChunk.class).encodeBinary(chunk),
                Arrays.copyOfRange(bytes, AvroCodec.CONFLUENT_HEADER_LENGTH, bytes.length),
                "then the binary record");
        assertEquals(chunk, chunks("round-trip").decode(bytes, RecordFormat.CONFLUENT), "a fresh reader reads it");
        AvroCodec<Embedding> embeddings =
                AvroCodec.forTopic(Embedding.class, "embeddings", RecordFormat.CONFLUENT, registry.url());
        assertNotEquals(id, embeddings.schemaId(), "another schema, another id");
        assertEquals(
                Chunks.embedding(),
                embeddings.decode(
                        embeddings.encode(Chunks.embedding(), RecordFormat.CONFLUENT), RecordFormat.CONFLUENT));
    }

    @Test
    void aProducerOfAnOlderSchemaVersionIsRead() throws IOException {
        Schema older = Chunks.olderChunkSchema();
        int olderId = new SchemaRegistryClient(registry.url()).register("older-value", older);
        GenericRecord old = Chunks.olderChunk(older, "from an older producer", true);
        byte[] bytes = framed(olderId, older, old);

        DocumentChunk read = chunks("older").decode(bytes, RecordFormat.CONFLUENT);
        assertEquals("from an older producer", read.getText());
        assertEquals(Map.of(), read.getAttributes(), "the new field takes its default");
        assertEquals(Instant.ofEpochMilli(1000), read.getEventTime());
        assertTrue(read.getLast());
    }

    @Test
    void recordsThatCannotBeReadAreDeadLettersWithTheReason() throws IOException {
        ChunkDeserializer deserializer = new ChunkDeserializer(RecordFormat.CONFLUENT, chunks("bad"));

        DeadLetter unknown = deserializer
                .decode(record(new byte[] {0, 0, 0, 0x7F, (byte) 0xFF, 2, 4}))
                .deadLetter();
        assertTrue(
                unknown.getReason().contains("schema id 32767 cannot be used from the registry at " + registry.url()),
                unknown.getReason());

        Schema unrelated = Schema.createRecord(
                "DocumentChunk",
                null,
                "dev.rwkvflink.schema",
                false,
                List.of(new Schema.Field("key", Schema.create(Schema.Type.INT))));
        int unrelatedId = new SchemaRegistryClient(registry.url()).register("unrelated-value", unrelated);
        GenericRecord r = new GenericData.Record(unrelated);
        r.put("key", 5);
        DeadLetter unreadable =
                deserializer.decode(record(framed(unrelatedId, unrelated, r))).deadLetter();
        assertTrue(
                unreadable
                        .getReason()
                        .contains(
                                "written with schema id " + unrelatedId
                                        + " (dev.rwkvflink.schema.DocumentChunk), which the current DocumentChunk schema cannot read"),
                unreadable.getReason());

        byte[] singleObject = AvroCodec.of(DocumentChunk.class).encodeSingleObject(Chunks.text("d", 0, "x"));
        DeadLetter notFramed = deserializer.decode(record(singleObject)).deadLetter();
        assertTrue(
                notFramed
                        .getReason()
                        .contains("not a Confluent-framed record: it must start with 00 and a 4-byte "
                                + "schema id, found C3 01"),
                notFramed.getReason());
        assertEquals(ByteBuffer.wrap(singleObject), notFramed.getValue(), "the raw bytes kept");
        assertEquals(7L, notFramed.getOffset());
    }

    @Test
    void anUnreachableRegistryFailsInsteadOfDeadLettering() throws IOException {
        int closedPort;
        try (ServerSocket s = new ServerSocket(0)) {
            closedPort = s.getLocalPort();
        }
        String nowhere = "http://127.0.0.1:" + closedPort + "/apis/ccompat/v7";
        AvroCodec<DocumentChunk> codec = AvroCodec.forTopic(DocumentChunk.class, "x", RecordFormat.CONFLUENT, nowhere);
        SchemaRegistryClient.SchemaRegistryException writing = assertThrows(
                SchemaRegistryClient.SchemaRegistryException.class,
                () -> codec.encode(Chunks.text("d", 0, "x"), RecordFormat.CONFLUENT));
        assertTrue(
                writing.getMessage().startsWith("schema registry at " + nowhere + " unreachable while registering"),
                writing.getMessage());
        ChunkDeserializer deserializer = new ChunkDeserializer(RecordFormat.CONFLUENT, codec);
        assertThrows(
                SchemaRegistryClient.SchemaRegistryException.class,
                () -> deserializer.decode(record(new byte[] {0, 0, 0, 0, 1, 2})));
        IllegalArgumentException noUrl = assertThrows(
                IllegalArgumentException.class,
                () -> AvroCodec.forTopic(DocumentChunk.class, "x", RecordFormat.CONFLUENT, null));
        assertEquals("the confluent format needs a schema registry URL (--schema-registry-url)", noUrl.getMessage());
    }

    /** A record as another language's producer frames it: 00, the 4-byte id, the binary record. */
    private static byte[] framed(int id, Schema schema, GenericRecord record) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(0);
        out.writeBytes(ByteBuffer.allocate(4).putInt(id).array());
        BinaryEncoder encoder = EncoderFactory.get().binaryEncoder(out, null);
        new GenericDatumWriter<GenericRecord>(schema).write(record, encoder);
        encoder.flush();
        return out.toByteArray();
    }
}
