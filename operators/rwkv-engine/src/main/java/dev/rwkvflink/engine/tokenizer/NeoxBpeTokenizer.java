package dev.rwkvflink.engine.tokenizer;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The GPT-NeoX-20B byte-level BPE tokenizer used by RWKV-4 Pile and Raven models, read from a Hugging Face
 * {@code tokenizers} JSON file ({@code 20B_tokenizer.json}), and producing the same ids as {@code tokenizers}.
 *
 * <p>Encoding runs the {@code tokenizers} pipeline:
 * <ol>
 *   <li><b>Added tokens, raw.</b> The added tokens that are not "normalized" ({@code <|endoftext|>} = 0 and
 *       {@code <|padding|>} = 1) are found in the raw text, leftmost-longest ({@link AddedTokenSplitter}); each
 *       becomes its id and the text between them goes on.</li>
 *   <li><b>Normalizer</b>: Unicode NFC.</li>
 *   <li><b>Added tokens, normalized.</b> The "normalized" added tokens (ids 50254-50276: runs of 24 down to 2
 *       spaces) are found the same way in the normalized text. So {@code "Hi  Hello"} gives {@code Hi},
 *       the two-space token, {@code Hello}.</li>
 *   <li><b>Pre-tokenizer</b> (ByteLevel, no prefix space): GPT-2's regular expression cuts the rest into
 *       pre-tokens: contractions, letters with an optional leading space, digits likewise, other symbols likewise,
 *       and whitespace (a run of whitespace before a word leaves its last space to the word).</li>
 *   <li><b>Model</b>: each pre-token's UTF-8 bytes are merged by {@link BytePairEncoder}; results are cached per
 *       pre-token, since words repeat.</li>
 * </ol>
 * The vocabulary and merges are written in GPT-2's {@link ByteLevelAlphabet}; they are translated to ids once at
 * load time, so encoding works on bytes and ids only.
 *
 * <p>Decoding concatenates each token's bytes (the byte-level alphabet read back). An added token whose text
 * is not in the alphabet (the runs of spaces) stands for its own UTF-8 bytes, as in the {@code tokenizers}
 * ByteLevel decoder. Special tokens decode to nothing, as {@code tokenizers}' {@code decode} does by default
 * ({@code skip_special_tokens=True}), which is what ChatRWKV uses.
 *
 * <p>Text that arrives in pieces is tokenized by {@link #chunked()} ({@link NeoxChunkTokenizer}), which carries
 * the unsettled end of the text from one piece to the next.
 */
public final class NeoxBpeTokenizer implements Tokenizer {

    /** GPT-2's pre-tokenisation pattern; {@code \s}, {@code \p{L}}, {@code \p{N}} in their Unicode meaning. */
    static final Pattern GPT2_SPLIT = Pattern.compile(
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
            Pattern.UNICODE_CHARACTER_CLASS);

    /** Pre-tokens up to this many chars are cached, and at most {@link #CACHE_ENTRIES} of them. */
    private static final int CACHE_MAX_WORD = 100;

    private static final int CACHE_ENTRIES = 100_000;

    private final AddedTokenSplitter rawAddedTokens;
    private final AddedTokenSplitter normalizedAddedTokens;
    private final boolean nfc;
    private final BytePairEncoder bpe;
    /** Bytes of each id; {@code null} for ids that do not exist. */
    private final TokenTable table;

    private final Map<String, int[]> cache = new ConcurrentHashMap<>();

    private NeoxBpeTokenizer(
            AddedTokenSplitter rawAddedTokens,
            AddedTokenSplitter normalizedAddedTokens,
            boolean nfc,
            BytePairEncoder bpe,
            byte[][] tokenBytes) {
        this.rawAddedTokens = rawAddedTokens;
        this.normalizedAddedTokens = normalizedAddedTokens;
        this.nfc = nfc;
        this.bpe = bpe;
        this.table = new TokenTable(name(), tokenBytes);
    }

    /**
     * Reads a {@code tokenizers} JSON file with a byte-level BPE model. Settings that this class does not
     * implement (another normalizer or pre-tokenizer, dropout, an unknown token, stripping added tokens ...) are
     * rejected rather than silently ignored.
     *
     * @throws VocabFormatException if the file is not such a tokenizer; the message names the file
     */
    public static NeoxBpeTokenizer load(Path tokenizerJson) throws IOException {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(VocabularyFiles.read(tokenizerJson));
        } catch (JacksonException e) {
            throw new VocabFormatException(tokenizerJson + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
        return new Loader(tokenizerJson, root).load();
    }

    @Override
    public int[] encode(String text) {
        IntList ids = new IntList(text.length() / 3 + 4);
        for (AddedTokenSplitter.Piece raw : rawAddedTokens.split(text)) {
            if (raw.isToken()) {
                ids.add(raw.tokenId());
            } else {
                encodePieces(preTokens(normalize(raw.text())), ids);
            }
        }
        return ids.toArray();
    }

    /**
     * Carry: normally the last pre-tokens plus a look-ahead of about 40 characters (for the longest added
     * tokens, 13 and 24 chars, and the pre-tokenizer's peek past a match); never more than
     * {@link NeoxChunkTokenizer#CARRY_CAP_BYTES} (64 KiB). Exact for every split of valid or invalid UTF-8, except
     * for a text holding a single pre-token longer than that cap, which is cut at the cap. See
     * {@link NeoxChunkTokenizer}.
     */
    @Override
    public ChunkTokenizer chunked() {
        return new NeoxChunkTokenizer(this);
    }

    /** Step 2: the normalizer (NFC, or nothing), applied to a text between raw added tokens. */
    String normalize(String rawSegment) {
        return nfc ? Normalizer.normalize(rawSegment, Normalizer.Form.NFC) : rawSegment;
    }

    /** Whether the normalizer is NFC (otherwise text is not normalized). */
    boolean normalizesNfc() {
        return nfc;
    }

    /** Step 1's splitter: the added tokens found in the raw text. */
    AddedTokenSplitter rawAddedTokens() {
        return rawAddedTokens;
    }

    /** Length in chars of the longest added token matched in normalized text (0 if none). */
    int maxNormalizedAddedTokenLength() {
        return normalizedAddedTokens.maxLength();
    }

    /**
     * Steps 3 and 4 on a normalized text that holds no raw added token: the pieces the model reads, in order,
     * each either a normalized added token ({@code tokenId >= 0}) or a pre-token for BPE ({@code tokenId < 0}).
     * Their texts concatenate to {@code normalized}.
     */
    List<AddedTokenSplitter.Piece> preTokens(String normalized) {
        List<AddedTokenSplitter.Piece> pieces = new ArrayList<>();
        for (AddedTokenSplitter.Piece piece : normalizedAddedTokens.split(normalized)) {
            if (piece.isToken()) {
                pieces.add(piece);
            } else {
                Matcher matcher = GPT2_SPLIT.matcher(piece.text());
                while (matcher.find()) {
                    pieces.add(new AddedTokenSplitter.Piece(matcher.group(), -1));
                }
            }
        }
        return pieces;
    }

    /** Step 5: appends each added token's id and the BPE ids of each pre-token. */
    private void encodePieces(List<AddedTokenSplitter.Piece> pieces, IntList ids) {
        for (AddedTokenSplitter.Piece piece : pieces) {
            if (piece.isToken()) {
                ids.add(piece.tokenId());
            } else {
                ids.addAll(encodeWord(piece.text()));
            }
        }
    }

    private int[] encodeWord(String word) {
        int[] cached = cache.get(word);
        if (cached != null) {
            return cached;
        }
        int[] ids = bpe.encode(word.getBytes(StandardCharsets.UTF_8));
        if (word.length() <= CACHE_MAX_WORD && cache.size() < CACHE_ENTRIES) {
            cache.put(word, ids);
        }
        return ids;
    }

    @Override
    public byte[] decodeBytes(int[] ids) {
        return table.decode(ids);
    }

    @Override
    public int vocabSize() {
        return table.size();
    }

    @Override
    public String name() {
        return "gpt-neox-bpe";
    }

    /** Reads and checks the parts of the JSON document. */
    private static final class Loader {

        private final Path file;
        private final JsonNode root;

        Loader(Path file, JsonNode root) {
            this.file = file;
            this.root = root;
        }

        NeoxBpeTokenizer load() throws VocabFormatException {
            JsonNode model = root.path("model");
            require("BPE".equals(model.path("type").asText()), "model.type must be \"BPE\"");
            require(
                    isNullOrEmpty(model.path("dropout"))
                            || model.path("dropout").asDouble() == 0,
                    "BPE dropout is not supported");
            require(isNullOrEmpty(model.path("unk_token")), "an unknown token (model.unk_token) is not supported");
            require(
                    isNullOrEmpty(model.path("continuing_subword_prefix")),
                    "model.continuing_subword_prefix is not supported");
            require(isNullOrEmpty(model.path("end_of_word_suffix")), "model.end_of_word_suffix is not supported");
            require(!model.path("byte_fallback").asBoolean(false), "model.byte_fallback is not supported");
            boolean nfc = readNormalizer();
            checkByteLevel(root.path("pre_tokenizer"), "pre_tokenizer", true);
            checkByteLevel(root.path("decoder"), "decoder", false);

            Map<String, Integer> vocab = readVocab(model.path("vocab"));
            Map<String, Integer> rawAdded = new LinkedHashMap<>();
            Map<String, Integer> normalizedAdded = new LinkedHashMap<>();
            Map<Integer, byte[]> addedBytes = new HashMap<>();
            readAddedTokens(nfc, rawAdded, normalizedAdded, addedBytes);

            int maxId =
                    vocab.values().stream().mapToInt(Integer::intValue).max().orElse(-1);
            maxId = Math.max(
                    maxId,
                    addedBytes.keySet().stream()
                            .mapToInt(Integer::intValue)
                            .max()
                            .orElse(-1));
            byte[][] tokenBytes = new byte[maxId + 1][];
            vocab.forEach((token, id) -> tokenBytes[id] = bytesOfToken(token));
            addedBytes.forEach((id, bytes) -> tokenBytes[id] = bytes);

            int[] idOfByte = new int[256];
            for (int b = 0; b < 256; b++) {
                idOfByte[b] = vocab.getOrDefault(String.valueOf(ByteLevelAlphabet.charOf(b)), -1);
            }
            BytePairEncoder bpe = new BytePairEncoder(idOfByte, readMerges(model.path("merges"), vocab));
            return new NeoxBpeTokenizer(
                    new AddedTokenSplitter(rawAdded), new AddedTokenSplitter(normalizedAdded), nfc, bpe, tokenBytes);
        }

        /** {@code true} for NFC, {@code false} for none; anything else is unsupported. */
        private boolean readNormalizer() throws VocabFormatException {
            JsonNode normalizer = root.path("normalizer");
            if (isNullOrEmpty(normalizer)) {
                return false;
            }
            String type = normalizer.path("type").asText();
            require("NFC".equals(type), "normalizer " + type + " is not supported (only NFC or none)");
            return true;
        }

        private void checkByteLevel(JsonNode node, String what, boolean required) throws VocabFormatException {
            if (!required && isNullOrEmpty(node)) {
                return;
            }
            String type = node.path("type").asText();
            require(
                    "ByteLevel".equals(type),
                    what + " " + (type.isEmpty() ? "(none)" : type) + " is not supported (only ByteLevel)");
            require(!node.path("add_prefix_space").asBoolean(false), what + ".add_prefix_space=true is not supported");
            require(node.path("use_regex").asBoolean(true), what + ".use_regex=false is not supported");
        }

        private Map<String, Integer> readVocab(JsonNode vocabNode) throws VocabFormatException {
            require(vocabNode.isObject() && !vocabNode.isEmpty(), "model.vocab must be a non-empty object");
            Map<String, Integer> vocab = new HashMap<>(vocabNode.size() * 2);
            Map<Integer, String> tokenOfId = new HashMap<>(vocabNode.size() * 2);
            for (Map.Entry<String, JsonNode> entry : vocabNode.properties()) {
                JsonNode idNode = entry.getValue();
                require(
                        idNode.canConvertToInt() && idNode.asInt() >= 0,
                        "model.vocab[\"" + entry.getKey() + "\"] is not a token id: " + idNode);
                String other = tokenOfId.putIfAbsent(idNode.asInt(), entry.getKey());
                require(
                        other == null,
                        "model.vocab gives id " + idNode.asInt() + " to both \"" + other + "\" and \"" + entry.getKey()
                                + "\"");
                vocab.put(entry.getKey(), idNode.asInt());
            }
            return vocab;
        }

        /**
         * Merge number {@code i} ("a b", or ["a", "b"] in newer files) has rank {@code i}: lower ranks are merged
         * first. Both halves and their concatenation must be vocabulary tokens.
         */
        private LongLongMap readMerges(JsonNode mergesNode, Map<String, Integer> vocab) throws VocabFormatException {
            require(mergesNode.isArray(), "model.merges must be an array");
            LongLongMap merges = new LongLongMap(mergesNode.size());
            int rank = 0;
            for (Iterator<JsonNode> it = mergesNode.elements(); it.hasNext(); rank++) {
                JsonNode merge = it.next();
                String left;
                String right;
                if (merge.isTextual()) {
                    String[] parts = merge.asText().split(" ", -1);
                    require(parts.length == 2, "merge " + rank + " is not \"left right\": " + merge);
                    left = parts[0];
                    right = parts[1];
                } else {
                    require(merge.isArray() && merge.size() == 2, "merge " + rank + " is not a pair: " + merge);
                    left = merge.get(0).asText();
                    right = merge.get(1).asText();
                }
                Integer leftId = vocab.get(left);
                Integer rightId = vocab.get(right);
                Integer mergedId = vocab.get(left + right);
                require(
                        leftId != null && rightId != null && mergedId != null,
                        "merge " + rank + " (" + merge + ") uses a token that is not in the vocabulary");
                merges.put(BytePairEncoder.pair(leftId, rightId), BytePairEncoder.merge(rank, mergedId));
            }
            return merges;
        }

        private void readAddedTokens(
                boolean nfc, Map<String, Integer> raw, Map<String, Integer> normalized, Map<Integer, byte[]> bytesOfId)
                throws VocabFormatException {
            JsonNode added = root.path("added_tokens");
            if (isNullOrEmpty(added)) {
                return;
            }
            require(added.isArray(), "added_tokens must be an array");
            for (JsonNode token : added) {
                String content = token.path("content").asText();
                int id = token.path("id").asInt(-1);
                require(!content.isEmpty() && id >= 0, "added token without content or id: " + token);
                for (String flag : new String[] {"lstrip", "rstrip", "single_word"}) {
                    require(
                            !token.path(flag).asBoolean(false),
                            "added token " + id + ": " + flag + "=true is not supported");
                }
                boolean special = token.path("special").asBoolean(false);
                if (token.path("normalized").asBoolean(!special)) {
                    // tokenizers matches a normalized added token against normalized text, so normalize it too
                    normalized.put(nfc ? Normalizer.normalize(content, Normalizer.Form.NFC) : content, id);
                } else {
                    raw.put(content, id);
                }
                bytesOfId.put(id, special ? new byte[0] : bytesOfToken(content));
            }
        }

        /**
         * The bytes a token stands for: its characters read back through the byte-level alphabet, or, if one of
         * them is outside it, the token's own UTF-8 (the rule of the {@code tokenizers} ByteLevel decoder).
         */
        private static byte[] bytesOfToken(String token) {
            byte[] bytes = ByteLevelAlphabet.toBytes(token);
            return bytes != null ? bytes : token.getBytes(StandardCharsets.UTF_8);
        }

        private static boolean isNullOrEmpty(JsonNode node) {
            return node.isMissingNode()
                    || node.isNull()
                    || (node.isTextual() && node.asText().isEmpty());
        }

        private void require(boolean condition, String problem) throws VocabFormatException {
            if (!condition) {
                throw new VocabFormatException(file + ": " + problem);
            }
        }
    }
}
