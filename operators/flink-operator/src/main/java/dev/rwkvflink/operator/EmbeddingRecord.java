package dev.rwkvflink.operator;

import java.util.Arrays;
import java.util.Objects;

/** An embedding of everything a key has seen so far: the operator's main output. A Flink POJO. */
public class EmbeddingRecord {
    /** Why an embedding is emitted. */
    public enum Reason {
        /** After the chunk marked {@code last}; the key's state is then cleared. */
        LAST,
        /** No chunk for the idle timeout; the key's state is then cleared. */
        IDLE,
        /** An intermediate embedding (every chunk or every N tokens, as configured); the key goes on. */
        PROGRESS
    }

    public String key;
    /** The last chunk seq included. */
    public long seq;
    /** Tokens read for this key so far. */
    public long tokens;
    /** The L2-normalised embedding. */
    public float[] vector;
    /** The pooling that produced it (e.g. "hidden", "state:11"). */
    public String pooling;

    public Reason reason;
    /** The fingerprint of the model that computed it (hex). */
    public String model;
    /** Event time of the newest chunk included. */
    public long eventTime;
    /** Label and class probabilities when a classification head is configured; else null. */
    public String label;

    public float[] probabilities;

    public EmbeddingRecord() {}

    public boolean isFinal() {
        return reason == Reason.LAST || reason == Reason.IDLE;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof EmbeddingRecord r
                && seq == r.seq
                && tokens == r.tokens
                && eventTime == r.eventTime
                && Objects.equals(key, r.key)
                && Arrays.equals(vector, r.vector)
                && Objects.equals(pooling, r.pooling)
                && reason == r.reason
                && Objects.equals(model, r.model)
                && Objects.equals(label, r.label)
                && Arrays.equals(probabilities, r.probabilities);
    }

    @Override
    public int hashCode() {
        return Objects.hash(key, seq, tokens, reason) * 31 + Arrays.hashCode(vector);
    }

    @Override
    public String toString() {
        return "EmbeddingRecord{" + key + " #" + seq + " " + reason + ", " + tokens + " tokens, dim "
                + (vector == null ? 0 : vector.length) + (label != null ? ", label " + label : "") + "}";
    }
}
