package dev.rwkvflink.operator;

import dev.rwkvflink.engine.backend.Backend;
import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.embed.Embedder;
import dev.rwkvflink.engine.embed.EmbeddingStats;
import dev.rwkvflink.engine.embed.LinearHead;
import dev.rwkvflink.engine.embed.Pooling;
import dev.rwkvflink.engine.model.ModelSources;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.tokenizer.Tokenizer;
import dev.rwkvflink.engine.tokenizer.Tokenizers;
import java.io.IOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Models loaded once per JVM (per TaskManager, per job class loader) and shared by all operator instances
 * (slots) that ask for the same {@link ModelSpec}; reference-counted, closed when the last user releases it.
 * A model is immutable and thread-safe; per-key memory lives in Flink state.
 */
final class SharedModels {
    private static final Logger LOG = LoggerFactory.getLogger(SharedModels.class);
    private static final Map<ModelSpec, Entry> MODELS = new HashMap<>();

    private SharedModels() {}

    /** Everything an operator needs from one model. */
    record LoadedModel(ModelSpec spec, RwkvModel model, Tokenizer tokenizer, Embedder embedder, LinearHead head) {}

    private static final class Entry {
        final LoadedModel loaded;
        int users;

        Entry(LoadedModel loaded) {
            this.loaded = loaded;
        }
    }

    static synchronized LoadedModel acquire(ModelSpec spec) throws IOException {
        Entry e = MODELS.get(spec);
        if (e == null) {
            e = new Entry(load(spec));
            MODELS.put(spec, e);
        }
        e.users++;
        return e.loaded;
    }

    static synchronized void release(LoadedModel loaded) {
        Entry e = MODELS.get(loaded.spec());
        if (e == null || e.loaded != loaded) {
            return;
        }
        if (--e.users == 0) {
            MODELS.remove(loaded.spec());
            loaded.model().close();
            LOG.info("released RWKV model {}", loaded.model().fingerprint());
        }
    }

    /** How many operator instances use the model of {@code spec} (for tests and metrics). */
    static synchronized int users(ModelSpec spec) {
        Entry e = MODELS.get(spec);
        return e == null ? 0 : e.users;
    }

    private static LoadedModel load(ModelSpec spec) throws IOException {
        long start = System.nanoTime();
        Backend backend = Backends.byName(spec.backend(), spec.cudaDevice(), spec.engine());
        RwkvModel model = ModelSources.open(spec.modelPath(), backend);
        try {
            Tokenizer tokenizer = Tokenizers.forModel(
                    model.config().vocab(), spec.vocabPath() == null ? null : Path.of(spec.vocabPath()));
            Pooling pooling = Pooling.parse(spec.pooling());
            EmbeddingStats stats = spec.statsPath() == null
                    ? null
                    : EmbeddingStats.load(Path.of(spec.statsPath()), model.fingerprint(), pooling);
            Embedder embedder = new Embedder(model.config(), pooling, stats);
            LinearHead head = spec.headPath() == null
                    ? null
                    : LinearHead.load(Path.of(spec.headPath()), model.fingerprint(), pooling);
            if (head != null && head.dimension() != embedder.dimension()) {
                throw new IOException(spec.headPath() + ": head expects embeddings of dimension " + head.dimension()
                        + ", the pooling gives " + embedder.dimension());
            }
            LOG.info(
                    "loaded RWKV {} model {} ({}), {} backend, {} tokenizer, pooling {} (dim {}) in {} ms",
                    model.config().version().label(),
                    spec.modelPath() == null ? "demo" : spec.modelPath(),
                    model.fingerprint(),
                    backend.name(),
                    tokenizer.name(),
                    spec.pooling(),
                    embedder.dimension(),
                    (System.nanoTime() - start) / 1_000_000);
            return new LoadedModel(spec, model, tokenizer, embedder, head);
        } catch (IOException | RuntimeException e) {
            model.close();
            throw e;
        }
    }
}
