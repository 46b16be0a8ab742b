package dev.rwkvflink.kafka;

import dev.rwkvflink.schema.DeadLetter;
import java.nio.ByteBuffer;

/**
 * Keeps dead letters small enough for a dead-letter topic with Kafka's default limits (producer
 * {@code max.request.size} and broker {@code message.max.bytes}, both about 1 MB). A record rejected because it is
 * too large (a 10 MB chunk) must not fail the job a second time as a dead letter: a raw key or value above these
 * bounds is left out of the dead letter, and its reason says so and how large it was. Partition and offset still
 * point at the original record (for records read from Kafka).
 */
public final class DeadLetters {

    /** Largest raw value a dead letter carries. */
    public static final int MAX_VALUE_BYTES = 512 * 1024;
    /** Largest raw key a dead letter carries. */
    public static final int MAX_KEY_BYTES = 16 * 1024;

    private DeadLetters() {}

    /** {@code letter} itself when within bounds, else a copy without the oversized key and/or value. */
    public static DeadLetter bounded(DeadLetter letter) {
        int keyBytes = size(letter.getKey());
        int valueBytes = size(letter.getValue());
        if (keyBytes <= MAX_KEY_BYTES && valueBytes <= MAX_VALUE_BYTES) {
            return letter;
        }
        StringBuilder reason = new StringBuilder(letter.getReason());
        DeadLetter.Builder b = DeadLetter.newBuilder(letter);
        if (keyBytes > MAX_KEY_BYTES) {
            b.setKey(null);
            reason.append(" [key of ")
                    .append(keyBytes)
                    .append(" bytes left out: more than the ")
                    .append(MAX_KEY_BYTES)
                    .append(" a dead letter carries]");
        }
        if (valueBytes > MAX_VALUE_BYTES) {
            b.setValue(null);
            reason.append(" [value of ")
                    .append(valueBytes)
                    .append(" bytes left out: more than the ")
                    .append(MAX_VALUE_BYTES)
                    .append(" a dead letter carries]");
        }
        return b.setReason(reason.toString()).build();
    }

    private static int size(ByteBuffer b) {
        return b == null ? 0 : b.remaining();
    }
}
