package dev.rwkvflink.kafka;

import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.Embedding;
import dev.rwkvflink.schema.EmitReason;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;

/** Records and byte strings the connector tests share. */
final class Chunks {

    static final Instant EVENT_TIME = Instant.parse("2026-11-23T10:15:30.123Z");

    private Chunks() {}

    /** A text chunk. */
    static DocumentChunk text(String key, long seq, String text) {
        return DocumentChunk.newBuilder()
                .setKey(key)
                .setSeq(seq)
                .setText(text)
                .setEventTime(EVENT_TIME.plusMillis(seq))
                .setAttributes(Map.of("source", "test"))
                .build();
    }

    /** A chunk of token ids, the document's last. */
    static DocumentChunk lastTokens(String key, long seq, Integer... tokens) {
        return DocumentChunk.newBuilder()
                .setKey(key)
                .setSeq(seq)
                .setTokens(List.of(tokens))
                .setLast(true)
                .setEventTime(EVENT_TIME.plusMillis(seq))
                .build();
    }

    /** An embedding: a valid record of another type. */
    static Embedding embedding() {
        return Embedding.newBuilder()
                .setKey("doc")
                .setModel("9f86d081884c7d65")
                .setSeq(1)
                .setTokens(3)
                .setDim(2)
                .setVector(List.of(0.5f, -0.5f))
                .setPooling("last")
                .setReason(EmitReason.LAST)
                .setEventTime(EVENT_TIME)
                .setEmittedAt(EVENT_TIME)
                .build();
    }

    /**
     * The chunk's encoding with the text's second byte replaced by 0xFF, which is never valid in UTF-8. The text must
     * be ASCII and occur once in the encoding.
     */
    static byte[] withInvalidUtf8(byte[] encoded, String asciiText) {
        byte[] text = asciiText.getBytes(StandardCharsets.US_ASCII);
        int at = indexOf(encoded, text);
        if (at < 0) {
            throw new IllegalArgumentException("text not found in the encoding");
        }
        byte[] broken = encoded.clone();
        broken[at + 1] = (byte) 0xFF;
        return broken;
    }

    static byte[] truncated(byte[] bytes, int dropped) {
        return Arrays.copyOf(bytes, bytes.length - dropped);
    }

    private static int indexOf(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    /** The DocumentChunk schema as an older producer had it: without the {@code attributes} field added since. */
    static Schema olderChunkSchema() {
        Schema current = DocumentChunk.getClassSchema();
        List<Schema.Field> fields = new ArrayList<>();
        for (Schema.Field field : current.getFields()) {
            if (!field.name().equals("attributes")) {
                fields.add(new Schema.Field(field, field.schema()));
            }
        }
        return Schema.createRecord(current.getName(), null, current.getNamespace(), false, fields);
    }

    /** A chunk of the {@link #olderChunkSchema()}: key "doc", seq 4, event time 1000 ms. */
    static GenericRecord olderChunk(Schema older, String text, boolean last) {
        GenericRecord old = new GenericData.Record(older);
        old.put("key", "doc");
        old.put("seq", 4L);
        old.put("text", text);
        old.put("last", last);
        old.put("eventTime", 1000L);
        return old;
    }
}
