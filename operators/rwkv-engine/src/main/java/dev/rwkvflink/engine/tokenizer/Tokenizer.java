package dev.rwkvflink.engine.tokenizer;

import java.nio.charset.StandardCharsets;

/**
 * Turns text into the integer token ids a language model reads, and ids back into text.
 *
 * <p>Decoding works on bytes first: one token may hold only part of a UTF-8 character (a model may emit the
 * three bytes of "以" as two tokens), so {@link #decodeBytes} is exact, while {@link #decode} is a convenience
 * that replaces malformed UTF-8 sequences with U+FFFD. A streaming caller that emits text token by token should
 * collect bytes and decode only complete characters.
 *
 * <p>Implementations are immutable after loading and safe to share between threads.
 */
public interface Tokenizer {

    /** Token ids of {@code text}. */
    int[] encode(String text);

    /**
     * Token ids of raw bytes. Byte-level tokenizers encode every byte string exactly, even one that is not valid
     * UTF-8. The default, meant for tokenizers that work on characters, decodes the bytes as UTF-8 (malformed
     * sequences become U+FFFD) and encodes the resulting text.
     */
    default int[] encodeBytes(byte[] utf8) {
        return encode(new String(utf8, StandardCharsets.UTF_8));
    }

    /**
     * A tokenizer for text that arrives in pieces: the tokens of all its steps, concatenated, are exactly
     * {@link #encodeBytes} of the whole text (see {@link ChunkTokenizer} for the contract and each implementation
     * for its bound on the carried bytes).
     */
    ChunkTokenizer chunked();

    /**
     * The bytes the tokens stand for, concatenated.
     *
     * @throws IllegalArgumentException if an id is not in the vocabulary
     */
    byte[] decodeBytes(int[] ids);

    /** {@link #decodeBytes} read as UTF-8; malformed sequences are replaced by U+FFFD. */
    default String decode(int[] ids) {
        return new String(decodeBytes(ids), StandardCharsets.UTF_8);
    }

    /** One more than the largest id this tokenizer can produce or decode. */
    int vocabSize();

    /** Short name for logs and error messages, such as {@code "rwkv-world"}. */
    String name();
}
