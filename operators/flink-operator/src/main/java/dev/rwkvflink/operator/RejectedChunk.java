package dev.rwkvflink.operator;

import java.util.Objects;

/** A chunk that can never be applied, with the reason: the operator's side output (to a dead-letter topic). */
public class RejectedChunk {
    public TextChunk chunk;
    public String reason;
    /** Processing time of the rejection (milliseconds). */
    public long time;

    public RejectedChunk() {}

    public RejectedChunk(TextChunk chunk, String reason, long time) {
        this.chunk = chunk;
        this.reason = reason;
        this.time = time;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof RejectedChunk r
                && time == r.time
                && Objects.equals(chunk, r.chunk)
                && Objects.equals(reason, r.reason);
    }

    @Override
    public int hashCode() {
        return Objects.hash(chunk, reason, time);
    }

    @Override
    public String toString() {
        return "RejectedChunk{" + chunk + ": " + reason + "}";
    }
}
