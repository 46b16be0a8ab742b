package dev.rwkvflink.kafka;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/** How an Avro record is laid out in a Kafka record's value. */
public enum RecordFormat {

    /** Plain Avro binary: the record's fields and nothing else. Reader and writer must agree on the schema. */
    BINARY("binary"),

    /**
     * Avro single-object encoding: the marker bytes {@code C3 01}, the writer schema's 8-byte CRC-64-AVRO fingerprint
     * (little-endian), then the binary record. A reader can tell which schema wrote the record and refuse others.
     */
    SINGLE_OBJECT("single-object"),

    /**
     * The Confluent Schema Registry wire format: a zero byte, the writer schema's 4-byte id in a schema registry
     * (big-endian), then the binary record. Writers register their schema under the subject {@code <topic>-value};
     * readers fetch the writer's schema by id and resolve it to their own, so producers of older compatible schema
     * versions are read.
     */
    CONFLUENT("confluent");

    private final String id;

    RecordFormat(String id) {
        this.id = id;
    }

    /** The name used in configuration: {@code binary}, {@code single-object} or {@code confluent}. */
    public String id() {
        return id;
    }

    /**
     * The format with the given name ({@code binary}, {@code single-object} or {@code confluent}, case-insensitive; {@code single_object}
     * is accepted too).
     *
     * @throws IllegalArgumentException for any other name, listing the valid ones
     */
    public static RecordFormat parse(String name) {
        String wanted = name == null ? "" : name.trim().toLowerCase(Locale.ROOT).replace('_', '-');
        for (RecordFormat format : values()) {
            if (format.id.equals(wanted)) {
                return format;
            }
        }
        throw new IllegalArgumentException("unknown record format '" + name + "': expected one of "
                + Arrays.stream(values()).map(RecordFormat::id).collect(Collectors.joining(", ")));
    }

    @Override
    public String toString() {
        return id;
    }
}
