package dev.rwkvflink.jobs;

import dev.rwkvflink.kafka.AvroCodec;
import dev.rwkvflink.kafka.DeadLetters;
import dev.rwkvflink.kafka.RecordFormat;
import dev.rwkvflink.kafka.UnboxedFloatsDatumWriter;
import dev.rwkvflink.operator.EmbeddingRecord;
import dev.rwkvflink.operator.RejectedChunk;
import dev.rwkvflink.operator.TextChunk;
import dev.rwkvflink.schema.Classification;
import dev.rwkvflink.schema.DeadLetter;
import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.Embedding;
import dev.rwkvflink.schema.EmitReason;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import org.apache.avro.Schema;

/** Conversions between the Avro records of the topics and the operator's records. Pure functions. */
public final class Records {

    /** The error class a dead letter of a chunk the operator rejected carries. */
    public static final String REJECTED_BY_OPERATOR = RejectedChunk.class.getName();

    /** The schemas of the float arrays, for arrays the codec writes without boxing each element. */
    private static final Schema VECTOR_SCHEMA =
            Embedding.getClassSchema().getField("vector").schema();

    private static final Schema PROBABILITIES_SCHEMA =
            Classification.getClassSchema().getField("probabilities").schema();

    private Records() {}

    /** The operator's view of a chunk (attributes are not used by the operator and are dropped). */
    public static TextChunk textChunk(DocumentChunk chunk) {
        TextChunk out = new TextChunk(
                chunk.getKey(),
                chunk.getSeq(),
                chunk.getText(),
                chunk.getLast(),
                chunk.getEventTime().toEpochMilli());
        if (chunk.getTokens() != null) {
            out.tokens = chunk.getTokens().stream().mapToInt(Integer::intValue).toArray();
        }
        return out;
    }

    /** The chunk back as the Avro record it came from (without attributes). */
    public static DocumentChunk documentChunk(TextChunk chunk) {
        List<Integer> tokens = null;
        if (chunk.tokens != null) {
            tokens = new ArrayList<>(chunk.tokens.length);
            for (int t : chunk.tokens) {
                tokens.add(t);
            }
        }
        return DocumentChunk.newBuilder()
                .setKey(chunk.key == null ? "" : chunk.key)
                .setSeq(chunk.seq)
                .setText(chunk.text)
                .setTokens(tokens)
                .setLast(chunk.last)
                .setEventTime(Instant.ofEpochMilli(chunk.eventTime))
                .build();
    }

    /** An embedding for the embeddings topic. */
    public static Embedding embedding(EmbeddingRecord r, Instant emittedAt) {
        List<Float> vector = UnboxedFloatsDatumWriter.floats(r.vector, VECTOR_SCHEMA);
        return Embedding.newBuilder()
                .setKey(r.key)
                .setModel(r.model)
                .setSeq(r.seq)
                .setTokens(r.tokens)
                .setDim(r.vector.length)
                .setVector(vector)
                .setPooling(r.pooling)
                .setReason(EmitReason.valueOf(r.reason.name()))
                .setEventTime(Instant.ofEpochMilli(r.eventTime))
                .setEmittedAt(emittedAt)
                .build();
    }

    /** A class for the classifications topic; {@code r} must carry a label (the operator has a head). */
    public static Classification classification(
            EmbeddingRecord r, List<String> labels, String head, Instant emittedAt) {
        if (r.label == null || r.probabilities == null) {
            throw new IllegalArgumentException("embedding of " + r.key + " has no label: is a head configured?");
        }
        if (r.probabilities.length != labels.size()) {
            throw new IllegalStateException("head " + head + " names " + labels.size() + " labels but the operator "
                    + "gave " + r.probabilities.length + " probabilities");
        }
        List<Float> probabilities = UnboxedFloatsDatumWriter.floats(r.probabilities, PROBABILITIES_SCHEMA);
        return Classification.newBuilder()
                .setKey(r.key)
                .setModel(r.model)
                .setSeq(r.seq)
                .setLabel(r.label)
                .setLabels(labels)
                .setProbabilities(probabilities)
                .setHead(head)
                .setEventTime(Instant.ofEpochMilli(r.eventTime))
                .setEmittedAt(emittedAt)
                .build();
    }

    /**
     * A dead letter for a chunk the operator rejected: the reason, and the chunk re-encoded (as {@code codec}
     * writes it, in the topic's format) as the raw value, keyed by its document key. The record's position in the
     * chunk topic is no longer known: partition and offset are -1. A chunk too large for a dead-letter topic (the
     * operator rejects chunks over its size limit) is left out, and the reason says so ({@link DeadLetters#bounded}).
     */
    public static DeadLetter deadLetter(RejectedChunk rejected, String chunksTopic, byte[] encodedChunk) {
        String key = rejected.chunk == null ? null : rejected.chunk.key;
        return DeadLetters.bounded(DeadLetter.newBuilder()
                .setSourceTopic(chunksTopic)
                .setPartition(-1)
                .setOffset(-1)
                .setKey(key == null ? null : ByteBuffer.wrap(key.getBytes(StandardCharsets.UTF_8)))
                .setValue(encodedChunk == null ? null : ByteBuffer.wrap(encodedChunk))
                .setErrorClass(REJECTED_BY_OPERATOR)
                .setReason(rejected.reason)
                .setTime(Instant.ofEpochMilli(rejected.time))
                .build());
    }

    /** Encodes a rejected chunk for {@link #deadLetter}; null when there is no chunk. */
    static byte[] encode(AvroCodec<DocumentChunk> codec, RejectedChunk rejected, RecordFormat format) {
        return rejected.chunk == null ? null : codec.encode(documentChunk(rejected.chunk), format);
    }
}
