package dev.rwkvflink.engine.tokenizer;

import java.util.Arrays;

/**
 * GPT-2's reversible mapping between the 256 byte values and 256 printable Unicode characters, which byte-level
 * BPE vocabularies (GPT-2, GPT-NeoX) are written in.
 *
 * <p>Bytes that are already visible characters keep their code point: {@code '!'..'~'} (0x21-0x7E),
 * {@code '¡'..'¬'} (0xA1-0xAC) and {@code '®'..'ÿ'} (0xAE-0xFF). The other 68 bytes (control characters, space,
 * DEL, NBSP, soft hyphen) are given the code points 256, 257, ... in increasing byte order; so space (0x20)
 * becomes {@code 'Ġ'} (U+0120) and newline (0x0A) becomes {@code 'Ċ'} (U+010A). A token such as {@code "Ġthe"}
 * therefore stands for the bytes {@code " the"}.
 */
final class ByteLevelAlphabet {

    private static final char[] CHAR_OF_BYTE = new char[256];
    /** Indexed by code point (all images are below 256 + 68); -1 where no byte maps to the character. */
    private static final int[] BYTE_OF_CHAR = new int[256 + 68];

    static {
        Arrays.fill(BYTE_OF_CHAR, -1);
        int nextExtra = 256;
        for (int b = 0; b < 256; b++) {
            boolean visible = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            char c = (char) (visible ? b : nextExtra++);
            CHAR_OF_BYTE[b] = c;
            BYTE_OF_CHAR[c] = b;
        }
    }

    private ByteLevelAlphabet() {}

    /** The character that stands for byte {@code b} (0..255). */
    static char charOf(int b) {
        return CHAR_OF_BYTE[b];
    }

    /** The byte that character {@code c} stands for, or -1 if it is not in the alphabet. */
    static int byteOf(char c) {
        return c < BYTE_OF_CHAR.length ? BYTE_OF_CHAR[c] : -1;
    }

    /** The bytes a token written in this alphabet stands for, or {@code null} if a character is outside it. */
    static byte[] toBytes(String token) {
        byte[] out = new byte[token.length()];
        for (int i = 0; i < out.length; i++) {
            int b = byteOf(token.charAt(i));
            if (b < 0) {
                return null;
            }
            out[i] = (byte) b;
        }
        return out;
    }
}
