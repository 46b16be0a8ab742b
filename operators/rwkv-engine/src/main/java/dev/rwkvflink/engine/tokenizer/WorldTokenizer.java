package dev.rwkvflink.engine.tokenizer;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * The RWKV "World" tokenizer (models v4-World, v5, v6, v7), read from {@code rwkv_vocab_v20230424.txt}.
 *
 * <p><b>Vocabulary file.</b> One token per line: {@code <id> <python literal> <byte length>}, for example
 * {@code 262 '\n ' 2} or {@code 2412 b'\x82\xac' 2}. The literal is a Python {@code str} (its UTF-8 bytes are
 * the token) or {@code bytes} literal, read by {@link PythonLiteral} without evaluating anything. Loading checks
 * that the literal's byte length equals the trailing number and that ids and byte strings are unique; an error
 * names the line. Id 0 is not in the file: it is the end-of-text token and decodes to nothing.
 *
 * <p><b>Encoding</b> is greedy longest match over the UTF-8 bytes: at each position take the longest token that
 * the remaining input starts with, emit it and continue after it. There is no normalisation, no pre-splitting
 * and no special-token syntax ("&lt;|endoftext|&gt;" in the text is ordinary bytes). The 256 single-byte tokens
 * ({@code id = byte + 1}) make every byte string encodable. The longest match is found by walking a
 * {@link ByteTrie} from the root along the input and remembering the last node that ends a token, so each
 * emitted token costs one hash lookup per byte looked at.
 *
 * <p><b>Chunked encoding</b> ({@link #chunked()}). The token chosen at a position depends only on the next
 * {@code maxTokenLength} bytes (128 for {@code rwkv_vocab_v20230424.txt}): no token is longer, so the trie walk
 * never looks further. A step therefore emits tokens while at least {@code maxTokenLength} bytes remain from the
 * token's start (or all of them on the last step) and carries the rest: the carry is always shorter than
 * {@code maxTokenLength} bytes (at most 127 bytes for the World vocabulary). Being byte-level, this holds for any
 * bytes, valid UTF-8 or not, split anywhere.
 */
public final class WorldTokenizer implements Tokenizer {

    /** Id 0: end of text (also used as padding); not in the vocabulary file, decodes to no bytes. */
    public static final int END_OF_TEXT = 0;

    private static final byte[] NO_BYTES = new byte[0];
    /** Ids below this are always allowed; above it, at most 4 x the file's token count (ids must be dense). */
    static final int DENSE_IDS = 1 << 16;

    /** Bytes of each token, indexed by id; {@code null} where the file defines no such id. */
    private final TokenTable table;

    private final ByteTrie trie;
    /** Bytes of the longest token: how far ahead the longest match can look. */
    private final int maxTokenLength;

    private WorldTokenizer(byte[][] tokenBytes, ByteTrie trie) {
        this.table = new TokenTable(name(), tokenBytes);
        this.trie = trie;
        int longest = 1;
        for (byte[] bytes : tokenBytes) {
            longest = Math.max(longest, bytes == null ? 0 : bytes.length);
        }
        this.maxTokenLength = longest;
    }

    /**
     * Reads a World vocabulary file.
     *
     * @throws VocabFormatException if a line is malformed; the message names the file and the line
     */
    public static WorldTokenizer load(Path vocabFile) throws IOException {
        byte[] content = VocabularyFiles.read(vocabFile);
        ByteTrie trie = new ByteTrie(content.length / 6);
        Map<Integer, byte[]> tokens = new HashMap<>();
        Map<Integer, Integer> lineOfId = new HashMap<>();
        int maxId = END_OF_TEXT;

        int lineNumber = 0;
        int lineStart = 0;
        while (lineStart < content.length) {
            int lineEnd = indexOf(content, (byte) '\n', lineStart);
            lineNumber++;
            String line = decodeLine(vocabFile, lineNumber, content, lineStart, lineEnd);
            lineStart = lineEnd + 1;
            if (line.isBlank()) {
                continue;
            }
            VocabLine parsed = VocabLine.parse(vocabFile, lineNumber, line);
            if (parsed.id() == END_OF_TEXT) {
                throw VocabFormatException.atLine(vocabFile, lineNumber, "id 0 is reserved for end-of-text");
            }
            Integer earlierLine = lineOfId.putIfAbsent(parsed.id(), lineNumber);
            if (earlierLine != null) {
                throw VocabFormatException.atLine(
                        vocabFile, lineNumber, "id " + parsed.id() + " was already defined on line " + earlierLine);
            }
            int sameBytes = trie.put(parsed.bytes(), parsed.id());
            if (sameBytes != ByteTrie.NONE) {
                throw VocabFormatException.atLine(
                        vocabFile,
                        lineNumber,
                        "token " + parsed.id() + " has the same bytes as token " + sameBytes + " (line "
                                + lineOfId.get(sameBytes) + ")");
            }
            tokens.put(parsed.id(), parsed.bytes());
            maxId = Math.max(maxId, parsed.id());
        }
        if (tokens.isEmpty()) {
            throw new VocabFormatException(vocabFile + ": no tokens in the vocabulary file");
        }

        long allowed = Math.max(DENSE_IDS, 4L * (tokens.size() + 1));
        if (maxId >= allowed) {
            throw VocabFormatException.atLine(
                    vocabFile,
                    lineOfId.get(maxId),
                    "token id " + maxId + " is far beyond "
                            + "the file's " + tokens.size() + " tokens: ids must be dense (at most " + (allowed - 1)
                            + " here), the decoding table is sized by the largest id");
        }
        byte[][] tokenBytes = new byte[maxId + 1][];
        tokens.forEach((id, bytes) -> tokenBytes[id] = bytes);
        tokenBytes[END_OF_TEXT] = NO_BYTES;
        return new WorldTokenizer(tokenBytes, trie);
    }

    @Override
    public int[] encode(String text) {
        return encodeBytes(text.getBytes(StandardCharsets.UTF_8));
    }

    /** Greedy longest match over the bytes; exact for every byte string, valid UTF-8 or not. */
    @Override
    public int[] encodeBytes(byte[] input) {
        IntList ids = new IntList(input.length / 3 + 4);
        encodeTokensStartingBefore(input, input.length, ids);
        return ids.toArray();
    }

    /**
     * Carry: fewer than {@link #maxTokenLength()} bytes (127 for the World vocabulary). A token starting at
     * position {@code p} is final once the input holds {@code p + maxTokenLength} bytes.
     */
    @Override
    public ChunkTokenizer chunked() {
        return (carry, piece, last) -> {
            byte[] input = ByteArrays.concat(carry, piece);
            int startLimit = last ? input.length : input.length - maxTokenLength + 1;
            IntList ids = new IntList(input.length / 3 + 4);
            int consumed = encodeTokensStartingBefore(input, startLimit, ids);
            return new ChunkTokenizer.Step(ids.toArray(), Arrays.copyOfRange(input, consumed, input.length));
        };
    }

    /** Length in bytes of the longest token in the vocabulary. */
    public int maxTokenLength() {
        return maxTokenLength;
    }

    /**
     * Appends the greedy longest-match tokens of {@code input}, one after the other from position 0, as long as
     * the next token starts before {@code startLimit}.
     *
     * @return the position after the last token appended (where the next token would start)
     */
    private int encodeTokensStartingBefore(byte[] input, int startLimit, IntList ids) {
        int pos = 0;
        while (pos < startLimit) {
            int bestId = ByteTrie.NONE;
            int bestLength = 0;
            int node = ByteTrie.root();
            for (int i = pos; i < input.length; i++) {
                node = trie.child(node, input[i]);
                if (node == ByteTrie.NONE) {
                    break;
                }
                int id = trie.tokenAt(node);
                if (id != ByteTrie.NONE) {
                    bestId = id;
                    bestLength = i - pos + 1;
                }
            }
            if (bestId == ByteTrie.NONE) {
                throw new IllegalArgumentException(String.format(
                        "byte 0x%02x at offset %d has no token in the %s vocabulary", input[pos] & 0xFF, pos, name()));
            }
            ids.add(bestId);
            pos += bestLength;
        }
        return pos;
    }

    @Override
    public byte[] decodeBytes(int[] ids) {
        return table.decode(ids);
    }

    /** The bytes of one token (empty for {@link #END_OF_TEXT}). */
    public byte[] bytesOf(int id) {
        return table.bytesOf(id).clone();
    }

    @Override
    public int vocabSize() {
        return table.size();
    }

    @Override
    public String name() {
        return "rwkv-world";
    }

    private static int indexOf(byte[] content, byte wanted, int from) {
        for (int i = from; i < content.length; i++) {
            if (content[i] == wanted) {
                return i;
            }
        }
        return content.length;
    }

    /** One line as strict UTF-8, without its line break ("\n" or "\r\n"). */
    private static String decodeLine(Path file, int lineNumber, byte[] content, int start, int end)
            throws VocabFormatException {
        if (end > start && content[end - 1] == '\r') {
            end--;
        }
        try {
            return StandardCharsets.UTF_8
                    .newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(content, start, end - start))
                    .toString();
        } catch (CharacterCodingException e) {
            throw VocabFormatException.atLine(file, lineNumber, "not valid UTF-8");
        }
    }

    /** One parsed line of the vocabulary file. */
    private record VocabLine(int id, byte[] bytes) {

        /**
         * Splits {@code <id> <literal> <byte length>} at the first and the last space (the literal itself may hold
         * spaces), reads the literal and checks its length.
         */
        static VocabLine parse(Path file, int lineNumber, String line) throws VocabFormatException {
            int firstSpace = line.indexOf(' ');
            int lastSpace = line.lastIndexOf(' ');
            if (firstSpace <= 0 || lastSpace == firstSpace) {
                throw VocabFormatException.atLine(
                        file, lineNumber, "expected '<id> <python literal> <byte length>' but got: " + line);
            }
            int id = parseCount(file, lineNumber, line.substring(0, firstSpace), "token id");
            int declaredLength = parseCount(file, lineNumber, line.substring(lastSpace + 1), "byte length");
            byte[] bytes;
            try {
                bytes = PythonLiteral.toBytes(
                        line.substring(firstSpace + 1, lastSpace).strip());
            } catch (IllegalArgumentException e) {
                throw VocabFormatException.atLine(file, lineNumber, e.getMessage());
            }
            if (bytes.length == 0) {
                throw VocabFormatException.atLine(file, lineNumber, "token " + id + " is empty");
            }
            if (bytes.length != declaredLength) {
                throw VocabFormatException.atLine(
                        file,
                        lineNumber,
                        "token " + id + " is " + bytes.length + " bytes long but the line says " + declaredLength);
            }
            return new VocabLine(id, bytes);
        }

        private static int parseCount(Path file, int lineNumber, String text, String what) throws VocabFormatException {
            boolean digitsOnly =
                    !text.isEmpty() && text.length() <= 9 && text.chars().allMatch(c -> c >= '0' && c <= '9');
            if (!digitsOnly) {
                throw VocabFormatException.atLine(file, lineNumber, "bad " + what + " '" + text + "'");
            }
            return Integer.parseInt(text);
        }
    }
}
