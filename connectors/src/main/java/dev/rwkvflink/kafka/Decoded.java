package dev.rwkvflink.kafka;

import dev.rwkvflink.schema.DeadLetter;
import dev.rwkvflink.schema.DocumentChunk;
import java.util.Objects;

/**
 * What {@link ChunkDeserializer} makes of one Kafka record: either the {@link DocumentChunk} it holds or, when its
 * bytes are not a valid chunk, a {@link DeadLetter} that keeps them. Nothing read is ever dropped.
 *
 * <pre>{@code
 * switch (decoded) {
 *   case Decoded.Chunk(DocumentChunk chunk) -> ...
 *   case Decoded.Rejected(DeadLetter deadLetter) -> ...
 * }
 * }</pre>
 */
public sealed interface Decoded permits Decoded.Chunk, Decoded.Rejected {

    /** A decoded chunk. */
    static Decoded chunk(DocumentChunk chunk) {
        return new Chunk(chunk);
    }

    /** A record that could not be decoded. */
    static Decoded deadLetter(DeadLetter deadLetter) {
        return new Rejected(deadLetter);
    }

    /** True for a chunk, false for a dead letter. */
    boolean isChunk();

    /**
     * The chunk.
     *
     * @throws IllegalStateException for a dead letter
     */
    DocumentChunk chunk();

    /**
     * The dead letter.
     *
     * @throws IllegalStateException for a chunk
     */
    DeadLetter deadLetter();

    /** A record that decoded into a chunk. */
    record Chunk(DocumentChunk chunk) implements Decoded {
        public Chunk {
            Objects.requireNonNull(chunk, "chunk");
        }

        @Override
        public boolean isChunk() {
            return true;
        }

        @Override
        public DeadLetter deadLetter() {
            throw new IllegalStateException("a chunk, not a dead letter: " + chunk.getKey() + "#" + chunk.getSeq());
        }
    }

    /** A record that did not decode, kept as a dead letter. */
    record Rejected(DeadLetter deadLetter) implements Decoded {
        public Rejected {
            Objects.requireNonNull(deadLetter, "deadLetter");
        }

        @Override
        public boolean isChunk() {
            return false;
        }

        @Override
        public DocumentChunk chunk() {
            throw new IllegalStateException("a dead letter, not a chunk: " + deadLetter.getReason());
        }
    }
}
