package dev.rwkvflink.kafka;

import dev.rwkvflink.schema.Schemas;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.Serial;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.avro.Schema;
import org.apache.avro.SchemaCompatibility;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DatumReader;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.specific.SpecificData;
import org.apache.avro.specific.SpecificDatumWriter;
import org.apache.avro.specific.SpecificRecord;

/**
 * Encodes and decodes one generated Avro record type, in plain binary, Avro single-object encoding, or the Confluent
 * Schema Registry wire format.
 *
 * <p>Single-object bytes are {@code C3 01}, the writer schema's CRC-64-AVRO fingerprint (8 bytes, little-endian) and
 * the binary record, as in the Avro specification; {@code toByteBuffer()} of the generated classes reads them and
 * vice versa. Decoding checks the fingerprint against this type's schema (and any older schemas registered with
 * {@link Builder#olderSchema(Schema)}, which are resolved to the current one) and refuses others, naming both
 * fingerprints.
 *
 * <p>Confluent bytes are {@code 00}, the writer schema's id in a schema registry (4 bytes, big-endian) and the binary
 * record. A codec built with a registry ({@link Builder#registry}, or {@link #forTopic}) registers its schema under
 * its subject on the first encode, and on decode fetches the writer schema of each new id and resolves it to the
 * current one; an id the registry does not know, a writer schema the current one cannot read, or bytes not framed
 * so, are {@link AvroDecodingException}s; a registry that cannot be reached is a
 * {@link SchemaRegistryClient.SchemaRegistryException}.
 *
 * <p>Decoding is strict (see {@link StrictBinaryDecoder}): truncated or malformed bytes, invalid UTF-8 in any
 * string and bytes left over after the record all raise an {@link AvroDecodingException} whose message says what and
 * where; a partly decoded record is never returned. Thread-safe and serializable (Flink ships it to the tasks).
 *
 * <pre>{@code
 * AvroCodec<DocumentChunk> codec = AvroCodec.of(DocumentChunk.class);
 * byte[] bytes = codec.encode(chunk, RecordFormat.SINGLE_OBJECT);
 * DocumentChunk back = codec.decode(bytes, RecordFormat.SINGLE_OBJECT);
 * }</pre>
 */
public final class AvroCodec<T extends SpecificRecord> implements Serializable {

    @Serial
    private static final long serialVersionUID = 1L;

    /** The two marker bytes that start a single-object encoded record. */
    private static final byte[] SINGLE_OBJECT_MARKER = {(byte) 0xC3, 0x01};

    /** Marker and fingerprint: the bytes before the record in single-object encoding. */
    public static final int SINGLE_OBJECT_HEADER_LENGTH = 10;

    /** The magic zero byte and the schema id: the bytes before the record in the Confluent wire format. */
    public static final int CONFLUENT_HEADER_LENGTH = 5;

    private final Class<T> type;
    private final List<String> olderSchemas;
    /** The schema registry's URL and this codec's subject there; both null without a registry. */
    private final String registryUrl;

    private final String subject;

    private transient Schema schema;
    private transient long fingerprint;
    private transient Map<Long, Schema> writerSchemas;
    private transient Map<Schema, DatumReader<T>> readers;
    private transient SpecificDatumWriter<T> writer;
    private transient SchemaRegistryClient registry;
    /** This type's schema id in the registry, once registered. */
    private transient volatile Integer registeredId;
    /** Why the current schema cannot read a registry writer schema ("" when it can). */
    private transient Map<Schema, String> incompatibilities;

    private AvroCodec(Class<T> type, List<String> olderSchemas, String registryUrl, String subject) {
        this.type = Objects.requireNonNull(type, "type");
        this.olderSchemas = List.copyOf(olderSchemas);
        this.registryUrl = registryUrl;
        this.subject = subject;
        initialize();
    }

    /** A codec for a generated record class that knows only the class's own schema. */
    public static <T extends SpecificRecord> AvroCodec<T> of(Class<T> type) {
        return builder(type).build();
    }

    /**
     * The codec for records of {@code type} on {@code topic} in {@code format}: with {@link RecordFormat#CONFLUENT},
     * bound to the registry at {@code registryUrl} under the subject {@code <topic>-value} (the registry's default
     * naming); in the other formats the registry is not used.
     *
     * @throws IllegalArgumentException for the Confluent format without a registry URL
     */
    public static <T extends SpecificRecord> AvroCodec<T> forTopic(
            Class<T> type, String topic, RecordFormat format, String registryUrl) {
        if (format != RecordFormat.CONFLUENT) {
            return of(type);
        }
        if (registryUrl == null || registryUrl.isBlank()) {
            throw new IllegalArgumentException(
                    "the confluent format needs a schema registry URL (--schema-registry-url)");
        }
        return builder(type).registry(registryUrl, topic + "-value").build();
    }

    /** Starts a codec for a generated record class; add older writer schemas before {@link Builder#build()}. */
    public static <T extends SpecificRecord> Builder<T> builder(Class<T> type) {
        return new Builder<>(type);
    }

    /** The record class. */
    public Class<T> type() {
        return type;
    }

    /** The record class's (reader and writer) schema. */
    public Schema schema() {
        return schema;
    }

    /** CRC-64-AVRO fingerprint of {@link #schema()}, the one written into single-object records. */
    public long fingerprint() {
        return fingerprint;
    }

    /** A fingerprint as 16 hex digits, the way errors print it. */
    public static String hex(long fingerprint) {
        return HexFormat.of().toHexDigits(fingerprint);
    }

    /**
     * Encodes a record.
     *
     * @throws IllegalArgumentException when the record cannot be written (e.g. null in a non-null field)
     */
    public byte[] encode(T record, RecordFormat format) {
        Objects.requireNonNull(record, "record");
        ByteArrayOutputStream out = new ByteArrayOutputStream(256);
        if (format == RecordFormat.SINGLE_OBJECT) {
            out.writeBytes(SINGLE_OBJECT_MARKER);
            for (int i = 0; i < 8; i++) {
                out.write((int) (fingerprint >>> (8 * i)));
            }
        } else if (format == RecordFormat.CONFLUENT) {
            int id = schemaId();
            out.write(0);
            for (int i = 3; i >= 0; i--) {
                out.write(id >>> (8 * i));
            }
        }
        try {
            BinaryEncoder encoder = EncoderFactory.get().binaryEncoder(out, null);
            writer.write(record, encoder);
            encoder.flush();
        } catch (IOException | RuntimeException e) {
            throw new IllegalArgumentException("cannot encode " + type.getSimpleName() + ": " + e.getMessage(), e);
        }
        return out.toByteArray();
    }

    /** Encodes a record in plain Avro binary. */
    public byte[] encodeBinary(T record) {
        return encode(record, RecordFormat.BINARY);
    }

    /** Encodes a record in Avro single-object encoding. */
    public byte[] encodeSingleObject(T record) {
        return encode(record, RecordFormat.SINGLE_OBJECT);
    }

    /**
     * Decodes a whole record.
     *
     * @throws AvroDecodingException when the bytes are not exactly one valid record of this type (null, empty,
     *     truncated, malformed, invalid UTF-8, trailing bytes, unknown single-object fingerprint)
     */
    public T decode(byte[] bytes, RecordFormat format) {
        Objects.requireNonNull(format, "format");
        if (bytes == null || bytes.length == 0) {
            throw new AvroDecodingException(
                    type.getSimpleName(),
                    format,
                    0,
                    bytes == null ? "no bytes (null value)" : "no bytes (empty value)",
                    null);
        }
        if (format == RecordFormat.BINARY) {
            return read(bytes, 0, schema, format);
        }
        if (format == RecordFormat.CONFLUENT) {
            return decodeConfluent(bytes);
        }
        if (bytes.length < SINGLE_OBJECT_HEADER_LENGTH
                || bytes[0] != SINGLE_OBJECT_MARKER[0]
                || bytes[1] != SINGLE_OBJECT_MARKER[1]) {
            throw new AvroDecodingException(
                    type.getSimpleName(),
                    format,
                    bytes.length,
                    "not a single-object record: it must start with C3 01 and an 8-byte schema fingerprint, found "
                            + HexFormat.ofDelimiter(" ")
                                    .withUpperCase()
                                    .formatHex(bytes, 0, Math.min(bytes.length, 10)),
                    null);
        }
        long found = 0;
        for (int i = 9; i >= 2; i--) {
            found = found << 8 | (bytes[i] & 0xFF);
        }
        Schema writerSchema = writerSchemas.get(found);
        if (writerSchema == null) {
            throw new AvroDecodingException(
                    type.getSimpleName(),
                    format,
                    bytes.length,
                    "written with schema fingerprint " + hex(found) + " but " + type.getSimpleName()
                            + " has fingerprint "
                            + hex(fingerprint)
                            + (writerSchemas.size() > 1 ? " (older schemas known: " + olderFingerprints() + ")" : "")
                            + ": a record of another type or of an unregistered schema version",
                    null);
        }
        return read(bytes, SINGLE_OBJECT_HEADER_LENGTH, writerSchema, format);
    }

    /**
     * This type's schema id in the registry: registered under the subject on first use.
     *
     * @throws IllegalStateException for a codec built without a registry
     */
    public int schemaId() {
        Integer id = registeredId;
        if (id == null) {
            id = registry().register(subject, schema);
            registeredId = id;
        }
        return id;
    }

    private SchemaRegistryClient registry() {
        if (registry == null) {
            throw new IllegalStateException("the confluent format needs a codec built with a schema registry, and this "
                    + type.getSimpleName() + " codec has none (AvroCodec.forTopic or Builder.registry)");
        }
        return registry;
    }

    private T decodeConfluent(byte[] bytes) {
        RecordFormat format = RecordFormat.CONFLUENT;
        if (bytes.length < CONFLUENT_HEADER_LENGTH || bytes[0] != 0) {
            throw new AvroDecodingException(
                    type.getSimpleName(),
                    format,
                    bytes.length,
                    "not a Confluent-framed record: it must start with 00 and a 4-byte schema id, found "
                            + HexFormat.ofDelimiter(" ").withUpperCase().formatHex(bytes, 0, Math.min(bytes.length, 5)),
                    null);
        }
        int id = (bytes[1] & 0xFF) << 24 | (bytes[2] & 0xFF) << 16 | (bytes[3] & 0xFF) << 8 | (bytes[4] & 0xFF);
        Schema writerSchema;
        try {
            writerSchema = registry().schema(id);
        } catch (SchemaRegistryClient.UnknownSchemaIdException e) {
            throw new AvroDecodingException(type.getSimpleName(), format, bytes.length, e.getMessage(), e);
        }
        String problem = incompatibilities.computeIfAbsent(writerSchema, writer -> {
            SchemaCompatibility.SchemaPairCompatibility c =
                    SchemaCompatibility.checkReaderWriterCompatibility(schema, writer);
            return c.getType() == SchemaCompatibility.SchemaCompatibilityType.COMPATIBLE
                    ? ""
                    : c.getResult().getIncompatibilities().toString();
        });
        if (!problem.isEmpty()) {
            throw new AvroDecodingException(
                    type.getSimpleName(),
                    format,
                    bytes.length,
                    "written with schema id " + id
                            + " (" + writerSchema.getFullName() + "), which the current " + type.getSimpleName()
                            + " schema cannot read: " + problem,
                    null);
        }
        return read(bytes, CONFLUENT_HEADER_LENGTH, writerSchema, format);
    }

    /** Decodes plain Avro binary. */
    public T decodeBinary(byte[] bytes) {
        return decode(bytes, RecordFormat.BINARY);
    }

    /**
     * Decodes plain Avro binary written with a schema known out of band (an older version, e.g. recorded in a Flink
     * state snapshot), resolving it to the current schema.
     *
     * @throws AvroDecodingException as {@link #decode(byte[], RecordFormat)}
     */
    public T decodeBinary(byte[] bytes, Schema writerSchema) {
        Objects.requireNonNull(writerSchema, "writerSchema");
        if (bytes == null || bytes.length == 0) {
            return decode(bytes, RecordFormat.BINARY);
        }
        return read(bytes, 0, writerSchema, RecordFormat.BINARY);
    }

    /** Decodes Avro single-object encoding. */
    public T decodeSingleObject(byte[] bytes) {
        return decode(bytes, RecordFormat.SINGLE_OBJECT);
    }

    private T read(byte[] bytes, int offset, Schema writerSchema, RecordFormat format) {
        StrictBinaryDecoder in = new StrictBinaryDecoder(bytes, offset, bytes.length - offset);
        T record;
        try {
            record = readers.computeIfAbsent(
                            writerSchema, writer -> new FieldTrackingDatumReader<>(writer, schema, type))
                    .read(null, in);
        } catch (IOException | RuntimeException e) {
            String detail = e instanceof FieldTrackingDatumReader.FieldException
                            || e instanceof StrictBinaryDecoder.MalformedAvroException
                    ? e.getMessage()
                    : e.getClass().getSimpleName() + ": " + e.getMessage();
            throw new AvroDecodingException(type.getSimpleName(), format, bytes.length, detail, e);
        }
        if (!in.isEnd()) {
            throw new AvroDecodingException(
                    type.getSimpleName(),
                    format,
                    bytes.length,
                    (bytes.length - in.position()) + " bytes left over after the record ends at byte " + in.position(),
                    null);
        }
        return record;
    }

    private String olderFingerprints() {
        List<String> older = new ArrayList<>();
        writerSchemas.keySet().stream().filter(f -> f != fingerprint).forEach(f -> older.add(hex(f)));
        return String.join(", ", older);
    }

    private void initialize() {
        Schemas.trust(SpecificData.get().getSchema(type));
        schema = SpecificData.getForClass(type).getSchema(type);
        fingerprint = SchemaNormalization.parsingFingerprint64(schema);
        Map<Long, Schema> known = new LinkedHashMap<>();
        known.put(fingerprint, schema);
        for (String json : olderSchemas) {
            Schema older = new Schema.Parser().parse(json);
            known.putIfAbsent(SchemaNormalization.parsingFingerprint64(older), older);
        }
        writerSchemas = Map.copyOf(known);
        readers = new ConcurrentHashMap<>();
        writer = new UnboxedFloatsDatumWriter<>(schema, SpecificData.getForClass(type));
        registry = registryUrl == null ? null : new SchemaRegistryClient(registryUrl);
        incompatibilities = new ConcurrentHashMap<>();
    }

    @Serial
    private void readObject(ObjectInputStream in) throws IOException, ClassNotFoundException {
        in.defaultReadObject();
        initialize();
    }

    @Override
    public String toString() {
        return "AvroCodec[" + type.getName() + ", fingerprint " + hex(fingerprint)
                + (registryUrl == null ? "" : ", subject " + subject + " at " + registryUrl) + "]";
    }

    /** Builds an {@link AvroCodec}; older schemas let single-object decoding read records of earlier versions. */
    public static final class Builder<T extends SpecificRecord> {
        private final Class<T> type;
        private final List<String> olderSchemas = new ArrayList<>();
        private String registryUrl;
        private String subject;

        private Builder(Class<T> type) {
            this.type = Objects.requireNonNull(type, "type");
        }

        /**
         * Accepts single-object records written with an older version of the schema; they are resolved to the current
         * schema (new fields take their defaults).
         *
         * @throws IllegalArgumentException when the current schema cannot read data written with {@code older}
         */
        public Builder<T> olderSchema(Schema older) {
            Schema current = SpecificData.get().getSchema(type);
            SchemaCompatibility.SchemaPairCompatibility compatibility =
                    SchemaCompatibility.checkReaderWriterCompatibility(current, older);
            if (compatibility.getType() != SchemaCompatibility.SchemaCompatibilityType.COMPATIBLE) {
                throw new IllegalArgumentException(
                        "the current " + type.getSimpleName() + " schema cannot read data written "
                                + "with schema " + hex(SchemaNormalization.parsingFingerprint64(older)) + ": "
                                + compatibility.getResult().getIncompatibilities());
            }
            olderSchemas.add(older.toString());
            return this;
        }

        /**
         * Binds the codec to a schema registry (the Confluent format): its schema is registered under {@code subject},
         * and writer schemas are fetched by id.
         */
        public Builder<T> registry(String url, String subject) {
            this.registryUrl = new SchemaRegistryClient(url).url();
            this.subject = Objects.requireNonNull(subject, "subject");
            return this;
        }

        public AvroCodec<T> build() {
            return new AvroCodec<>(type, olderSchemas, registryUrl, subject);
        }
    }
}
