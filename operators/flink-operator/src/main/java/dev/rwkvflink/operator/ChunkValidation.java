package dev.rwkvflink.operator;

import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * The checks a chunk must pass before the operator applies it, each failure a dead letter's reason: a key (not
 * empty, at most {@code maxKeyBytes} of UTF-8), a seq >= 0, exactly one of text and tokens, token ids inside the
 * model's vocabulary, and a length within {@code maxChunkBytes} (UTF-8 bytes of text, or tokens). Pure: no state,
 * no Flink.
 */
final class ChunkValidation implements Serializable {
    private static final long serialVersionUID = 1L;

    private final int maxKeyBytes;
    private final int maxChunkBytes;
    private final int vocab;

    ChunkValidation(int maxKeyBytes, int maxChunkBytes, int vocab) {
        this.maxKeyBytes = maxKeyBytes;
        this.maxChunkBytes = maxChunkBytes;
        this.vocab = vocab;
    }

    /** Why {@code c} cannot be applied (a dead letter's reason), or null when it can. */
    String problem(TextChunk c) {
        if (c.key == null || c.key.isEmpty()) {
            return "chunk has no key";
        }
        if (c.key.length() > maxKeyBytes / 3 && utf8Length(c.key) > maxKeyBytes) {
            return "key of " + utf8Length(c.key) + " bytes exceeds the limit of " + maxKeyBytes + " bytes";
        }
        if (c.seq < 0) {
            return "negative seq " + c.seq;
        }
        if ((c.text == null) == (c.tokens == null)) {
            return c.text == null ? "chunk has neither text nor tokens" : "chunk has both text and tokens";
        }
        if (c.tokens != null) {
            for (int t : c.tokens) {
                if (t < 0 || t >= vocab) {
                    return "token id " + t + " outside the model's vocabulary [0, " + vocab + ")";
                }
            }
            if (c.tokens.length > maxChunkBytes) {
                return "chunk of " + c.tokens.length + " tokens exceeds the limit of " + maxChunkBytes;
            }
        } else if (c.text.length() > maxChunkBytes / 3 && utf8Length(c.text) > maxChunkBytes) {
            return "chunk text of " + utf8Length(c.text) + " bytes exceeds the limit of " + maxChunkBytes + " bytes";
        }
        return null;
    }

    /** UTF-8 length of {@code s} (an unpaired surrogate counts as the 3 bytes of its replacement). */
    static long utf8Length(String s) {
        long n = 0;
        for (int i = 0; i < s.length(); i++) {
            char ch = s.charAt(i);
            if (ch < 0x80) {
                n += 1;
            } else if (ch < 0x800) {
                n += 2;
            } else if (Character.isHighSurrogate(ch)
                    && i + 1 < s.length()
                    && Character.isLowSurrogate(s.charAt(i + 1))) {
                n += 4;
                i++;
            } else {
                n += 3;
            }
        }
        return n;
    }

    /** The UTF-8 bytes of {@code text}, or null when it holds an unpaired surrogate (not valid Unicode). */
    static byte[] utf8(String text) {
        try {
            ByteBuffer b = StandardCharsets.UTF_8
                    .newEncoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .encode(CharBuffer.wrap(text));
            byte[] out = new byte[b.remaining()];
            b.get(out);
            return out;
        } catch (CharacterCodingException e) {
            return null;
        }
    }
}
