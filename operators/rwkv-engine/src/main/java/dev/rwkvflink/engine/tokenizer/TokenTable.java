package dev.rwkvflink.engine.tokenizer;

/** The bytes of every token id of a vocabulary (null where an id is unused): decoding is concatenation. */
final class TokenTable {
    private final String vocabulary;
    private final byte[][] bytes;

    TokenTable(String vocabulary, byte[][] bytes) {
        this.vocabulary = vocabulary;
        this.bytes = bytes;
    }

    int size() {
        return bytes.length;
    }

    /** The stored bytes of {@code id} (not a copy); an unknown id is an error naming it. */
    byte[] bytesOf(int id) {
        if (id < 0 || id >= bytes.length || bytes[id] == null) {
            throw new IllegalArgumentException("unknown token id " + id + " (the " + vocabulary
                    + " vocabulary has ids 0.." + (bytes.length - 1) + ")");
        }
        return bytes[id];
    }

    /** The tokens' bytes, concatenated. */
    byte[] decode(int[] ids) {
        int total = 0;
        for (int id : ids) {
            total += bytesOf(id).length;
        }
        byte[] out = new byte[total];
        int pos = 0;
        for (int id : ids) {
            byte[] b = bytes[id];
            System.arraycopy(b, 0, out, pos, b.length);
            pos += b.length;
        }
        return out;
    }
}
