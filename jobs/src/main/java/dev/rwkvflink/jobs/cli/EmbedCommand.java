package dev.rwkvflink.jobs.cli;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.json.JsonWriteFeature;
import dev.rwkvflink.engine.backend.Backend;
import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.embed.Embedder;
import dev.rwkvflink.engine.embed.EmbeddingStats;
import dev.rwkvflink.engine.embed.Pooling;
import dev.rwkvflink.engine.model.RandomModels;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tokenizer.Tokenizer;
import dev.rwkvflink.engine.tokenizer.Tokenizers;
import java.io.IOException;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * Embeds one text file: its bytes, read and tokenized piece by piece ({@link ChunkTokenizer}: exactly the tokens
 * of the whole text), advance a fresh state ({@code model.hidden(state, tokens)} per piece: the same bits as one
 * call over all tokens), so memory stays bounded whatever the file's size, and a terminal sees progress. The
 * hidden vector and the final state are pooled, standardized with
 * {@code --stats} if given, and L2-normalised ({@link Embedder}). Prints one JSON line:
 * <pre>{"key":"&lt;file name&gt;","dim":N,"vector":[f1,f2,...]}</pre>
 * Each float is written as {@link Float#toString(float)} writes it, which reads back to the same float; the key is
 * escaped by Jackson, with every non-ASCII character as an escape such as <code>&#92;u00e9</code>, so the line is
 * plain ASCII whatever the console's encoding.
 *
 * <p>This is the reference the streaming operator must match: a text embedded chunk by chunk gives exactly this
 * vector.
 */
@Command(
        name = "embed",
        mixinStandardHelpOptions = true,
        description = "Embed a text file in one pass and print {\"key\", \"dim\", \"vector\"} as one JSON line.")
final class EmbedCommand implements Callable<Integer> {

    /** ASCII-only JSON: non-ASCII characters of the key are written as escapes. */
    private static final JsonFactory JSON =
            JsonFactory.builder().enable(JsonWriteFeature.ESCAPE_NON_ASCII).build();

    @Option(
            names = "--model",
            paramLabel = "FILE",
            description = "Model file: rwkv.cpp .bin, BlinkDL .pth or .safetensors. Default: the built-in demo "
                    + "model (random weights: its embeddings carry NO learned meaning).")
    Path model;

    @Option(
            names = "--vocab",
            paramLabel = "FILE",
            description = "Vocabulary: rwkv_vocab_v20230424.txt (World) or 20B_tokenizer.json (v4 Pile). "
                    + "Not needed for 256-token byte-level models (the demo model is one).")
    Path vocab;

    @Option(
            names = "--text-file",
            required = true,
            paramLabel = "FILE",
            description = "The text to embed, read as bytes (UTF-8 expected).")
    Path textFile;

    @Mixin
    PoolingOption pooling = new PoolingOption();

    @Option(
            names = "--stats",
            paramLabel = "FILE",
            description = "Embedding statistics (JSON) of this model and pooling, to standardize channels with.")
    Path stats;

    @Mixin
    BackendOption backend = new BackendOption();

    @Mixin
    ProgressOption progress = new ProgressOption();

    /** Bytes read per piece (hidden: tests make it tiny to check that pieces change nothing). */
    @Option(names = "--read-bytes", hidden = true, defaultValue = "65536")
    int readBytes;

    @Override
    public Integer call() throws Exception {
        Pooling requested = Pooling.parse(pooling.name);
        TextPieces text = new TextPieces(textFile, "--text-file", readBytes);
        long size = text.size();
        Backend be = Backends.byName(backend.name);
        try (RwkvModel m = openModel(be)) {
            Tokenizer tokenizer = Tokenizers.forModel(m.config().vocab(), vocab);
            Embedder embedder = embedder(m, requested);
            TerminalProgress shown = progress.on(System.err);
            RwkvState state = m.newState();
            float[][] hidden = new float[1][];
            long tokens = text.tokenize(tokenizer.chunked(), (pieceTokens, read) -> {
                hidden[0] = m.hidden(state, pieceTokens);
                shown.update(String.format(
                        Locale.ROOT,
                        "embedding %s: %s of %s (%.0f%%)",
                        textFile.getFileName(),
                        TerminalProgress.megabytes(read),
                        TerminalProgress.megabytes(size),
                        100.0 * read / size));
            });
            shown.done();
            if (tokens == 0) {
                throw new IllegalArgumentException(textFile + ": the text gives no tokens to embed");
            }
            float[] vector = embedder.embed(hidden[0], state);

            System.out.println(jsonLine(textFile.getFileName().toString(), vector));
            System.err.printf(
                    "embedded %d bytes (%d tokens) in %.2f s on the %s backend: pooling %s%s, dim %d%n",
                    size,
                    tokens,
                    shown.seconds(),
                    m.backend().name(),
                    embedder.pooling(),
                    stats != null ? " standardized" : "",
                    vector.length);
            if (text.grew()) {
                System.err.printf(
                        "warning: %s grew while it was read; its first %d bytes (its size when embedding"
                                + " began) were embedded%n",
                        textFile, size);
            }
            return 0;
        }
    }

    private RwkvModel openModel(Backend be) throws IOException {
        if (model != null) {
            return RwkvModel.load(model, be);
        }
        System.err.println("NOTE: no --model given, so this uses the built-in DEMO model (RWKV-7, random weights,"
                + " seed " + RandomModels.DEMO_SEED + "). ITS EMBEDDINGS CARRY NO LEARNED MEANING: similar texts do"
                + " not get similar vectors. It only shows the pipeline working; pass --model FILE for real"
                + " embeddings.");
        return RandomModels.demo(be);
    }

    /** The embedder for the model; with {@code --stats}, checks that the file belongs to this model and pooling. */
    private Embedder embedder(RwkvModel m, Pooling requested) throws IOException {
        Embedder plain = new Embedder(m.config(), requested, null);
        if (stats == null) {
            return plain;
        }
        return new Embedder(m.config(), requested, EmbeddingStats.load(stats, m.fingerprint(), plain.pooling()));
    }

    /**
     * {@code {"key":KEY,"dim":N,"vector":[...]}} on one line, each float as {@link Float#toString(float)}.
     *
     * @throws IllegalStateException if the vector holds NaN or an infinity, which JSON cannot carry
     */
    static String jsonLine(String key, float[] vector) throws IOException {
        StringWriter out = new StringWriter();
        try (JsonGenerator g = JSON.createGenerator(out)) {
            g.writeStartObject();
            g.writeStringField("key", key);
            g.writeNumberField("dim", vector.length);
            g.writeArrayFieldStart("vector");
            for (int i = 0; i < vector.length; i++) {
                if (!Float.isFinite(vector[i])) {
                    throw new IllegalStateException("the embedding holds " + vector[i] + " at index " + i
                            + ": the model produced non-finite values");
                }
                g.writeNumber(Float.toString(vector[i]));
            }
            g.writeEndArray();
            g.writeEndObject();
        }
        return out.toString();
    }
}
