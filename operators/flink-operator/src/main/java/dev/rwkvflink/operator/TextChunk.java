package dev.rwkvflink.operator;

import java.io.Serializable;
import java.util.Arrays;
import java.util.Objects;

/**
 * One piece of a document: the operator's input. A Flink POJO (public fields, no-argument constructor).
 * Chunks of a key are applied in {@code seq} order starting at 0, whatever order they arrive in.
 */
public class TextChunk implements Serializable {
    private static final long serialVersionUID = 1L;

    /** The document (or conversation, user, channel) this chunk belongs to: the Flink key. */
    public String key;
    /** Position of the chunk in its document, 0, 1, 2, ... */
    public long seq;
    /** The text of the chunk; or null when {@link #tokens} are given instead. */
    public String text;
    /** Token ids instead of text (already tokenized upstream); null when {@link #text} is given. */
    public int[] tokens;
    /** Whether this is the document's last chunk: its final embedding is emitted and its state cleared. */
    public boolean last;
    /** Event time of the chunk (milliseconds), carried to the output. */
    public long eventTime;

    public TextChunk() {}

    public TextChunk(String key, long seq, String text, boolean last, long eventTime) {
        this.key = key;
        this.seq = seq;
        this.text = text;
        this.last = last;
        this.eventTime = eventTime;
    }

    public static TextChunk ofTokens(String key, long seq, int[] tokens, boolean last, long eventTime) {
        TextChunk c = new TextChunk(key, seq, null, last, eventTime);
        c.tokens = tokens;
        return c;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TextChunk c
                && seq == c.seq
                && last == c.last
                && eventTime == c.eventTime
                && Objects.equals(key, c.key)
                && Objects.equals(text, c.text)
                && Arrays.equals(tokens, c.tokens);
    }

    @Override
    public int hashCode() {
        return Objects.hash(key, seq, text, last, eventTime) * 31 + Arrays.hashCode(tokens);
    }

    @Override
    public String toString() {
        String body = text != null
                ? (text.length() > 40 ? text.substring(0, 40) + "..." : text)
                : tokens != null ? tokens.length + " tokens" : "null";
        return "TextChunk{" + key + " #" + seq + (last ? " last" : "") + ": " + body + "}";
    }
}
