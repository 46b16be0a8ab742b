package dev.rwkvflink.engine.tokenizer;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Pattern;

/** Chooses and loads the tokenizer for a model. */
public final class Tokenizers {

    /** First line of a World vocabulary: {@code <id> <python str or bytes literal> <byte length>}. */
    private static final Pattern WORLD_LINE = Pattern.compile("\\d+ [bBrRuU]{0,2}['\"].*['\"] \\d+");

    /** Enough of the file's start to recognise its format. */
    private static final int HEAD_BYTES = 4096;

    private Tokenizers() {}

    /**
     * Loads a vocabulary file, recognising its format by content, not by name: a JSON document is read as a
     * Hugging Face {@code tokenizers} file with a BPE model ({@link NeoxBpeTokenizer}); a text file whose first line
     * looks like {@code 1 '\x00' 1} is read as a World vocabulary ({@link WorldTokenizer}).
     *
     * @throws VocabFormatException if the format is neither, or the file is malformed
     */
    public static Tokenizer load(Path vocab) throws IOException {
        VocabularyFiles.check(vocab);
        String head = readHead(vocab);
        String start = head.stripLeading();
        if (start.startsWith("{")) {
            return NeoxBpeTokenizer.load(vocab);
        }
        String firstLine = start.lines().findFirst().orElse("");
        if (WORLD_LINE.matcher(firstLine).matches()) {
            return WorldTokenizer.load(vocab);
        }
        throw new VocabFormatException(vocab + ": unrecognised vocabulary format: expected a tokenizers JSON file "
                + "with a BPE model (such as 20B_tokenizer.json) or an RWKV World vocabulary (lines like "
                + "\"<id> '<token>' <byte length>\", such as rwkv_vocab_v20230424.txt)");
    }

    /**
     * The tokenizer for a model with {@code modelVocabSize} embedding rows.
     *
     * @param vocabOrNull the vocabulary file, or {@code null} for none: allowed only for the 256-token byte-level
     *                    models, which get a {@link ByteTokenizer}
     * @throws IllegalArgumentException if no file is given for a model that needs one, or the file's ids do not
     *                                  fit the model
     */
    public static Tokenizer forModel(int modelVocabSize, Path vocabOrNull) throws IOException {
        if (vocabOrNull == null) {
            if (modelVocabSize == ByteTokenizer.VOCAB_SIZE) {
                return new ByteTokenizer();
            }
            throw new IllegalArgumentException("the model has " + modelVocabSize
                    + " tokens: a vocabulary file is needed (--vocab), e.g. rwkv_vocab_v20230424.txt for World "
                    + "models or 20B_tokenizer.json for RWKV-4 Pile models");
        }
        Tokenizer tokenizer = load(vocabOrNull);
        if (tokenizer.vocabSize() > modelVocabSize) {
            throw new IllegalArgumentException(vocabOrNull + ": the " + tokenizer.name() + " vocabulary has ids up to "
                    + (tokenizer.vocabSize() - 1) + " but the model has only " + modelVocabSize
                    + " tokens: wrong vocabulary for this model?");
        }
        return tokenizer;
    }

    private static String readHead(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            // A multi-byte character cut at the end becomes U+FFFD, which does not matter for recognition.
            return new String(in.readNBytes(HEAD_BYTES), StandardCharsets.UTF_8);
        }
    }
}
