package dev.rwkvflink.operator;

import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.embed.Embedder;
import dev.rwkvflink.engine.embed.Pooling;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tokenizer.Tokenizer;
import dev.rwkvflink.engine.tokenizer.Tokenizers;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Assumptions;

/**
 * The reference every operator output is compared with: the whole text, tokenized at once, run through the engine
 * in ONE call from a fresh state, then pooled. Independent of the operator's chunking, ordering, batching, state
 * backend and checkpoints.
 */
final class OneShot implements AutoCloseable {
    final RwkvModel model;
    final Tokenizer tokenizer;
    final Embedder embedder;

    OneShot(String modelPath, String pooling) throws Exception {
        this(modelPath, pooling, null);
    }

    /** On the engine backend {@code backend} (null: the default CPU backend). */
    OneShot(String modelPath, String pooling, String backend) throws Exception {
        model = RwkvModel.load(
                Path.of(modelPath), backend == null ? Backends.defaultBackend() : Backends.byName(backend));
        tokenizer = Tokenizers.forModel(model.config().vocab(), null);
        embedder = new Embedder(model.config(), Pooling.parse(pooling), null);
    }

    /** rwkv.cpp's tiny byte-level RWKV-7 (a real model file; skips the test when ../shared is absent). */
    static String tinyModel(String format) {
        Path p = Path.of(
                System.getProperty("rwkv.shared.dir", "../../shared"),
                "reference",
                "rwkv-cpp-tests",
                "tiny-rwkv-7v0-834K-" + format + ".bin");
        Assumptions.assumeTrue(Files.isRegularFile(p), "reference model absent, skipping: " + p);
        return p.toString();
    }

    float[] embed(String text) {
        int[] tokens = tokenizer.encodeBytes(text.getBytes(StandardCharsets.UTF_8));
        return embedTokens(tokens);
    }

    float[] embedTokens(int[] tokens) {
        RwkvState s = model.newState();
        float[] hidden = model.hidden(s, tokens);
        return embedder.embed(hidden, s);
    }

    float[] embedPrefix(String text, int tokenCount) {
        int[] tokens = tokenizer.encodeBytes(text.getBytes(StandardCharsets.UTF_8));
        return embedTokens(Arrays.copyOf(tokens, tokenCount));
    }

    @Override
    public void close() {
        model.close();
    }
}
