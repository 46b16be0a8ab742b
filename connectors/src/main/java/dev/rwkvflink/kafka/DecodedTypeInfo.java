package dev.rwkvflink.kafka;

import dev.rwkvflink.schema.DeadLetter;
import dev.rwkvflink.schema.DocumentChunk;
import java.io.IOException;
import java.io.Serial;
import org.apache.flink.api.common.serialization.SerializerConfig;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

/**
 * Flink type information for {@link Decoded}: a tag byte (0 chunk, 1 dead letter) and the record as in
 * {@link AvroRecordTypeInfo}. Decoded values live between the source and the operator that splits them; they are not
 * meant for state.
 */
public final class DecodedTypeInfo extends OpaqueTypeInfo<Decoded> {

    @Serial
    private static final long serialVersionUID = 1L;

    public DecodedTypeInfo() {
        super(Decoded.class);
    }

    @Override
    public TypeSerializer<Decoded> createSerializer(SerializerConfig config) {
        return new Serializer();
    }

    @Override
    public String toString() {
        return "Decoded<DocumentChunk | DeadLetter>";
    }

    /** Tag byte, then the chunk or the dead letter. */
    public static final class Serializer extends TypeSerializer<Decoded> {

        @Serial
        private static final long serialVersionUID = 1L;

        private static final byte CHUNK = 0;
        private static final byte DEAD_LETTER = 1;

        private final AvroRecordTypeInfo.Serializer<DocumentChunk> chunks =
                new AvroRecordTypeInfo.Serializer<>(DocumentChunk.class, null);
        private final AvroRecordTypeInfo.Serializer<DeadLetter> deadLetters =
                new AvroRecordTypeInfo.Serializer<>(DeadLetter.class, null);

        @Override
        public boolean isImmutableType() {
            return false;
        }

        @Override
        public TypeSerializer<Decoded> duplicate() {
            return new Serializer();
        }

        @Override
        public Decoded createInstance() {
            return Decoded.chunk(chunks.createInstance());
        }

        @Override
        public Decoded copy(Decoded from) {
            return from.isChunk()
                    ? Decoded.chunk(chunks.copy(from.chunk()))
                    : Decoded.deadLetter(deadLetters.copy(from.deadLetter()));
        }

        @Override
        public Decoded copy(Decoded from, Decoded reuse) {
            return copy(from);
        }

        @Override
        public int getLength() {
            return -1;
        }

        @Override
        public void serialize(Decoded value, DataOutputView target) throws IOException {
            if (value.isChunk()) {
                target.writeByte(CHUNK);
                chunks.serialize(value.chunk(), target);
            } else {
                target.writeByte(DEAD_LETTER);
                deadLetters.serialize(value.deadLetter(), target);
            }
        }

        @Override
        public Decoded deserialize(DataInputView source) throws IOException {
            byte tag = source.readByte();
            return switch (tag) {
                case CHUNK -> Decoded.chunk(chunks.deserialize(source));
                case DEAD_LETTER -> Decoded.deadLetter(deadLetters.deserialize(source));
                default -> throw new IOException("corrupt Decoded value: unknown tag " + tag);
            };
        }

        @Override
        public Decoded deserialize(Decoded reuse, DataInputView source) throws IOException {
            return deserialize(source);
        }

        @Override
        public void copy(DataInputView source, DataOutputView target) throws IOException {
            byte tag = source.readByte();
            target.writeByte(tag);
            int length = source.readInt();
            target.writeInt(length);
            target.write(source, length);
        }

        @Override
        public boolean equals(Object other) {
            return other instanceof Serializer;
        }

        @Override
        public int hashCode() {
            return Serializer.class.hashCode();
        }

        @Override
        public TypeSerializerSnapshot<Decoded> snapshotConfiguration() {
            return new SerializerSnapshot();
        }
    }

    /** Nothing to configure: the layout is fixed by the current schemas. */
    public static final class SerializerSnapshot extends SimpleTypeSerializerSnapshot<Decoded> {
        public SerializerSnapshot() {
            super(Serializer::new);
        }
    }
}
