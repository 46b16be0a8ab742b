package dev.rwkvflink.kafka;

import java.io.IOException;
import java.io.Serial;
import java.nio.charset.StandardCharsets;
import java.util.Objects;
import org.apache.avro.Schema;
import org.apache.avro.SchemaCompatibility;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.specific.SpecificData;
import org.apache.avro.specific.SpecificRecord;
import org.apache.flink.api.common.serialization.SerializerConfig;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSchemaCompatibility;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

/**
 * Flink type information for a generated Avro record class: records travel between tasks (and sit in state) as
 * length-prefixed Avro binary, never through Kryo.
 *
 * <pre>{@code
 * OutputTag<DeadLetter> tag = new OutputTag<>("dead-letters", new AvroRecordTypeInfo<>(DeadLetter.class));
 * }</pre>
 */
public final class AvroRecordTypeInfo<T extends SpecificRecord> extends OpaqueTypeInfo<T> {

    @Serial
    private static final long serialVersionUID = 1L;

    /** Type information for a generated record class. */
    public AvroRecordTypeInfo(Class<T> type) {
        super(type);
    }

    @Override
    public TypeSerializer<T> createSerializer(SerializerConfig config) {
        return new Serializer<>(getTypeClass(), null);
    }

    @Override
    public String toString() {
        return "AvroRecord<" + getTypeClass().getName() + ">";
    }

    /**
     * Writes records as an int length and the record's Avro binary with the class's current schema. A serializer
     * restored from an older snapshot reads with the schema recorded in that snapshot and resolves to the current one.
     */
    public static final class Serializer<T extends SpecificRecord> extends TypeSerializer<T> {

        @Serial
        private static final long serialVersionUID = 1L;

        private final Class<T> type;
        /** The schema that wrote the bytes this serializer reads; null for the class's current schema. */
        private final String writerSchema;

        private final AvroCodec<T> codec;
        private transient Schema parsedWriterSchema;

        Serializer(Class<T> type, Schema writerSchema) {
            this.type = type;
            this.writerSchema = writerSchema == null ? null : writerSchema.toString();
            this.codec = AvroCodec.of(type);
        }

        private Schema writerSchema() {
            if (parsedWriterSchema == null) {
                parsedWriterSchema = writerSchema == null ? codec.schema() : new Schema.Parser().parse(writerSchema);
            }
            return parsedWriterSchema;
        }

        @Override
        public boolean isImmutableType() {
            return false;
        }

        @Override
        public TypeSerializer<T> duplicate() {
            return new Serializer<>(type, writerSchema == null ? null : writerSchema());
        }

        @Override
        public T createInstance() {
            try {
                return type.getDeclaredConstructor().newInstance();
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException("cannot create an empty " + type.getName(), e);
            }
        }

        @Override
        public T copy(T from) {
            return SpecificData.getForClass(type).deepCopy(codec.schema(), from);
        }

        @Override
        public T copy(T from, T reuse) {
            return copy(from);
        }

        @Override
        public int getLength() {
            return -1;
        }

        @Override
        public void serialize(T record, DataOutputView target) throws IOException {
            byte[] bytes = codec.encodeBinary(record);
            target.writeInt(bytes.length);
            target.write(bytes);
        }

        @Override
        public T deserialize(DataInputView source) throws IOException {
            byte[] bytes = new byte[source.readInt()];
            source.readFully(bytes);
            return writerSchema == null ? codec.decodeBinary(bytes) : codec.decodeBinary(bytes, writerSchema());
        }

        @Override
        public T deserialize(T reuse, DataInputView source) throws IOException {
            return deserialize(source);
        }

        @Override
        public void copy(DataInputView source, DataOutputView target) throws IOException {
            int length = source.readInt();
            target.writeInt(length);
            target.write(source, length);
        }

        @Override
        public boolean equals(Object other) {
            return other instanceof Serializer<?> serializer
                    && serializer.type == type
                    && Objects.equals(serializer.writerSchema, writerSchema);
        }

        @Override
        public int hashCode() {
            return type.hashCode();
        }

        @Override
        public TypeSerializerSnapshot<T> snapshotConfiguration() {
            return new Snapshot<>(type, codec.schema());
        }
    }

    /**
     * The record class and its schema at the time of the snapshot. Restoring with a class whose schema can read the
     * old one (see schemas/README.md) migrates the state; an unreadable change is refused.
     */
    public static final class Snapshot<T extends SpecificRecord> implements TypeSerializerSnapshot<T> {

        private static final int VERSION = 1;

        private Class<T> type;
        private Schema schema;

        /** For Flink, which reads the snapshot into an empty instance. */
        public Snapshot() {}

        Snapshot(Class<T> type, Schema schema) {
            this.type = type;
            this.schema = schema;
        }

        @Override
        public int getCurrentVersion() {
            return VERSION;
        }

        @Override
        public void writeSnapshot(DataOutputView out) throws IOException {
            out.writeUTF(type.getName());
            byte[] json = schema.toString().getBytes(StandardCharsets.UTF_8);
            out.writeInt(json.length);
            out.write(json);
        }

        @Override
        @SuppressWarnings("unchecked")
        public void readSnapshot(int readVersion, DataInputView in, ClassLoader classLoader) throws IOException {
            if (readVersion != VERSION) {
                throw new IOException("unknown AvroRecordTypeInfo snapshot version " + readVersion);
            }
            String className = in.readUTF();
            byte[] json = new byte[in.readInt()];
            in.readFully(json);
            try {
                type = (Class<T>) Class.forName(className, false, classLoader);
            } catch (ClassNotFoundException e) {
                throw new IOException(
                        "the Avro record class " + className + " of this state is not on the classpath", e);
            }
            schema = new Schema.Parser().parse(new String(json, StandardCharsets.UTF_8));
        }

        @Override
        public TypeSerializer<T> restoreSerializer() {
            return new Serializer<>(type, schema);
        }

        @Override
        public TypeSerializerSchemaCompatibility<T> resolveSchemaCompatibility(TypeSerializerSnapshot<T> oldSnapshot) {
            if (!(oldSnapshot instanceof Snapshot<T> old) || !old.type.getName().equals(type.getName())) {
                return TypeSerializerSchemaCompatibility.incompatible();
            }
            if (SchemaNormalization.parsingFingerprint64(old.schema)
                    == SchemaNormalization.parsingFingerprint64(schema)) {
                return TypeSerializerSchemaCompatibility.compatibleAsIs();
            }
            boolean readable = SchemaCompatibility.checkReaderWriterCompatibility(schema, old.schema)
                            .getType()
                    == SchemaCompatibility.SchemaCompatibilityType.COMPATIBLE;
            return readable
                    ? TypeSerializerSchemaCompatibility.compatibleAfterMigration()
                    : TypeSerializerSchemaCompatibility.incompatible();
        }
    }
}
