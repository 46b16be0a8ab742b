package dev.rwkvflink.kafka;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.kafka.local.EmbeddedKafka;
import dev.rwkvflink.schema.DeadLetter;
import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.Embedding;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.flink.api.common.serialization.SerializerConfigImpl;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Records written to a real topic and read back with a plain consumer, then given to the deserializer: good ones
 * become chunks, every bad one a dead letter with its coordinates, raw bytes and reason.
 */
@ExtendWith(SharedKafka.class)
class ChunkDeserializerTest {

    private final AvroCodec<DocumentChunk> chunks = AvroCodec.of(DocumentChunk.class);

    @Test
    void singleObjectRecordsBecomeChunksOrDeadLetters(EmbeddedKafka kafka) throws Exception {
        String topic = "deserializer-single-object";
        kafka.createTopics(topic);
        DocumentChunk good = Chunks.text("doc-1", 0, "hello");
        DocumentChunk tokens = Chunks.lastTokens("doc-1", 1, 10, 20);
        byte[] goodBytes = chunks.encodeSingleObject(good);
        List<byte[]> values = new ArrayList<>();
        values.add(goodBytes);
        values.add(chunks.encodeSingleObject(tokens));
        values.add("garbage, not avro at all".getBytes(StandardCharsets.US_ASCII));
        values.add(Chunks.truncated(goodBytes, 3));
        values.add(AvroCodec.of(Embedding.class).encodeSingleObject(Chunks.embedding()));
        values.add(Chunks.withInvalidUtf8(chunks.encodeSingleObject(Chunks.text("doc-2", 0, "abcd")), "abcd"));
        values.add(null);
        values.add(new byte[0]);
        byte[] header = Arrays.copyOf(goodBytes, AvroCodec.SINGLE_OBJECT_HEADER_LENGTH);
        values.add(concat(header, "garbage after a good header".getBytes(StandardCharsets.US_ASCII)));
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < values.size(); i++) {
            byte[] key = i == 6 ? null : ("key-" + i).getBytes(StandardCharsets.UTF_8);
            records.add(new ProducerRecord<>(topic, 0, key, values.get(i)));
        }
        List<RecordMetadata> written = Topics.send(kafka, records);
        long before = System.currentTimeMillis();

        List<ConsumerRecord<byte[], byte[]>> read = Topics.readCommitted(kafka, topic);
        assertEquals(values.size(), read.size());
        ChunkDeserializer deserializer = new ChunkDeserializer(RecordFormat.SINGLE_OBJECT);
        List<Decoded> decoded = new ArrayList<>();
        for (ConsumerRecord<byte[], byte[]> record : read) {
            deserializer.deserialize(record, collectInto(decoded));
        }
        assertEquals(values.size(), decoded.size(), "one output per record");

        assertEquals(good, decoded.get(0).chunk());
        assertEquals(tokens, decoded.get(1).chunk());
        assertReason(decoded.get(2), "not a single-object record: it must start with C3 01");
        assertReason(
                decoded.get(3), "field attributes: string of 4 bytes runs past the end (2 bytes left) (at byte 40)");
        assertReason(
                decoded.get(4),
                "written with schema fingerprint "
                        + AvroCodec.hex(AvroCodec.of(Embedding.class).fingerprint())
                        + " but DocumentChunk has fingerprint "
                        + AvroCodec.hex(chunks.fingerprint()));
        assertReason(decoded.get(5), "field text: string of 4 bytes is not valid UTF-8");
        assertReason(decoded.get(6), "no bytes (null value)");
        assertReason(decoded.get(7), "no bytes (empty value)");
        assertReason(decoded.get(8), "field key: negative string length -52 (at byte 10)");

        for (int i = 2; i < values.size(); i++) {
            DeadLetter deadLetter = decoded.get(i).deadLetter();
            assertFalse(decoded.get(i).isChunk());
            assertEquals(topic, deadLetter.getSourceTopic());
            assertEquals(0, deadLetter.getPartition());
            assertEquals(written.get(i).offset(), deadLetter.getOffset());
            assertEquals(AvroDecodingException.class.getName(), deadLetter.getErrorClass());
            assertArrayEquals(values.get(i), bytes(deadLetter.getValue()), "raw value kept for record " + i);
            assertArrayEquals(records.get(i).key(), bytes(deadLetter.getKey()), "raw key kept for record " + i);
            assertTrue(
                    Math.abs(deadLetter.getTime().toEpochMilli() - before) < 60_000,
                    deadLetter.getTime().toString());
        }
        assertThrows(IllegalStateException.class, () -> decoded.get(0).deadLetter());
        assertThrows(IllegalStateException.class, () -> decoded.get(2).chunk());
    }

    @Test
    void binaryRecordsBecomeChunksOrDeadLetters(EmbeddedKafka kafka) throws Exception {
        String topic = "deserializer-binary";
        kafka.createTopics(topic);
        DocumentChunk good = Chunks.text("doc-1", 0, "zwölf Boxkämpfer");
        List<byte[]> values = List.of(
                chunks.encodeBinary(good),
                chunks.encodeSingleObject(good), // the wrong format: C3 01 is no valid start of a binary chunk
                Chunks.withInvalidUtf8(chunks.encodeBinary(Chunks.text("doc-2", 0, "wxyz")), "wxyz"));
        List<ProducerRecord<byte[], byte[]>> records = values.stream()
                .map(value -> new ProducerRecord<byte[], byte[]>(topic, 0, null, value))
                .toList();
        Topics.send(kafka, records);

        ChunkDeserializer deserializer = new ChunkDeserializer(RecordFormat.BINARY);
        List<Decoded> decoded = Topics.readCommitted(kafka, topic).stream()
                .map(deserializer::decode)
                .toList();
        assertEquals(3, decoded.size());
        assertEquals(good, decoded.get(0).chunk());
        assertFalse(decoded.get(1).isChunk());
        assertArrayEquals(values.get(1), bytes(decoded.get(1).deadLetter().getValue()));
        assertNull(decoded.get(1).deadLetter().getKey());
        assertReason(decoded.get(2), "field text: string of 4 bytes is not valid UTF-8");
    }

    @Test
    void decodedValuesSurviveFlinksSerializer() throws Exception {
        TypeSerializer<Decoded> serializer = new ChunkDeserializer(RecordFormat.BINARY)
                .getProducedType()
                .createSerializer(new SerializerConfigImpl());
        DeadLetter deadLetter = DeadLetter.newBuilder()
                .setSourceTopic("t")
                .setPartition(0)
                .setOffset(9)
                .setValue(ByteBuffer.wrap(new byte[] {(byte) 0xC3}))
                .setErrorClass("E")
                .setReason("why")
                .setTime(Instant.ofEpochMilli(5))
                .build();
        for (Decoded value : List.of(Decoded.chunk(Chunks.text("d", 0, "x")), Decoded.deadLetter(deadLetter))) {
            DataOutputSerializer out = new DataOutputSerializer(64);
            serializer.serialize(value, out);
            Decoded back = serializer.deserialize(new DataInputDeserializer(out.getCopyOfBuffer()));
            assertEquals(value, back);
            assertEquals(value, serializer.copy(value));
        }
    }

    private static void assertReason(Decoded decoded, String expectedStart) {
        assertFalse(decoded.isChunk(), () -> "expected a dead letter, got " + decoded);
        String reason = decoded.deadLetter().getReason();
        String withoutPrefix = reason.substring(reason.indexOf("): ") + 3);
        assertTrue(withoutPrefix.startsWith(expectedStart), reason);
        assertTrue(reason.startsWith("cannot decode DocumentChunk from "), reason);
    }

    private static byte[] concat(byte[] first, byte[] second) {
        byte[] both = Arrays.copyOf(first, first.length + second.length);
        System.arraycopy(second, 0, both, first.length, second.length);
        return both;
    }

    private static byte[] bytes(ByteBuffer buffer) {
        if (buffer == null) {
            return null;
        }
        byte[] bytes = new byte[buffer.remaining()];
        buffer.duplicate().get(bytes);
        return bytes;
    }

    private static Collector<Decoded> collectInto(List<Decoded> list) {
        return new Collector<>() {
            @Override
            public void collect(Decoded record) {
                list.add(record);
            }

            @Override
            public void close() {}
        };
    }
}
