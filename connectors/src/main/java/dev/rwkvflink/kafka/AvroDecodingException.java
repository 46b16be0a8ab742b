package dev.rwkvflink.kafka;

/**
 * Bytes that are not a valid record of the expected type: truncated or malformed Avro, invalid UTF-8 in a string,
 * bytes left over after the record, or a single-object record written with an unknown schema. The decoder never
 * returns a partly built record; it throws this instead.
 */
public class AvroDecodingException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    private final String reason;

    /**
     * @param recordType the simple name of the record type that was expected
     * @param format how the bytes were read
     * @param length how many bytes there were
     * @param reason what is wrong with them, for a human
     * @param cause the underlying error, or null
     */
    public AvroDecodingException(String recordType, RecordFormat format, int length, String reason, Throwable cause) {
        super("cannot decode " + recordType + " from " + length + " bytes (" + format + "): " + reason, cause);
        this.reason = reason;
    }

    /** What is wrong with the bytes, without the record type and length that {@link #getMessage()} adds. */
    public String reason() {
        return reason;
    }
}
