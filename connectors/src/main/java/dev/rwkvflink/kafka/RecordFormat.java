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
  SINGLE_OBJECT("single-object");

  private final String id;

  RecordFormat(String id) {
    this.id = id;
  }

  /** The name used in configuration: {@code binary} or {@code single-object}. */
  public String id() {
    return id;
  }

  /**
   * The format with the given name ({@code binary} or {@code single-object}, case-insensitive; {@code single_object}
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
