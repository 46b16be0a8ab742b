package dev.rwkvflink.engine.embed;

import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.state.RwkvState;
import java.util.Objects;

/**
 * Turns the result of running a text through a model (the last hidden vector and the final state) into an
 * embedding: a unit-length vector of {@link #dimension()} floats.
 * <pre>
 *   raw = pool(hidden, state)                              // see {@link Pooling}
 *   z   = stats == null ? raw : (raw - mean) / max(std, 1e-6)   // per channel, see {@link EmbeddingStats}
 *   e   = z / ||z||_2                                      // a zero vector stays zero
 * </pre>
 * Deterministic: plain sequential loops (the norm is summed in double, in index order), no parallel reductions,
 * so equal inputs give bit-identical embeddings on every machine. In particular a text advanced chunk by chunk
 * (bit-identical state and hidden vector) gets exactly the embedding of the text run in one call.
 *
 * <p>Immutable and thread-safe once built (the statistics must no longer be added to).
 */
public final class Embedder {

    private final RwkvConfig config;
    private final Pooling pooling;
    private final EmbeddingStats stats;
    private final int dimension;

    /**
     * @param pooling     what the vector is made of; default layers are resolved for this model
     * @param statsOrNull per-channel statistics to standardize with, or {@code null} to skip standardization;
     *                    they must have been collected with the same (resolved) pooling. That they belong to
     *                    this model is checked when they are loaded ({@link EmbeddingStats#load(java.nio.file.Path,
     *                    dev.rwkvflink.engine.state.ModelFingerprint, Pooling)}).
     * @throws IllegalArgumentException if a pooled layer does not exist, or the statistics do not fit
     */
    public Embedder(RwkvConfig config, Pooling pooling, EmbeddingStats statsOrNull) {
        this.config = Objects.requireNonNull(config, "config");
        this.pooling = pooling.resolve(config);
        this.dimension = this.pooling.dimension(config);
        if (statsOrNull != null
                && (!statsOrNull.pooling().resolve(config).equals(this.pooling)
                        || statsOrNull.dimension() != dimension)) {
            throw new IllegalArgumentException("embedding statistics are for pooling " + statsOrNull.pooling()
                    + " (dimension " + statsOrNull.dimension() + "), but the embedder uses " + this.pooling
                    + " (dimension " + dimension + ")");
        }
        this.stats = statsOrNull;
    }

    /** Length of the vectors {@link #pool} and {@link #embed} return. */
    public int dimension() {
        return dimension;
    }

    /** The pooling with its layers explicit (what statistics files record). */
    public Pooling pooling() {
        return pooling;
    }

    /** The embedding: pooled, standardized if statistics were given, then scaled to unit length. */
    public float[] embed(float[] hidden, RwkvState state) {
        return finish(pool(hidden, state));
    }

    /**
     * The second half of {@link #embed}, for a raw vector from {@link #pool}: standardized if statistics were
     * given, then scaled to unit length. {@code embed(h, s)} equals {@code finish(pool(h, s))} bit for bit.
     */
    public float[] finish(float[] pooled) {
        if (pooled.length != dimension) {
            throw new IllegalArgumentException(
                    "pooled vector of " + pooled.length + " floats, the embedder's " + "dimension is " + dimension);
        }
        return l2Normalize(stats != null ? stats.standardize(pooled) : pooled);
    }

    /**
     * The raw pooled vector (no standardization, no normalization): what {@link EmbeddingStats#add} collects.
     *
     * @param hidden the last token's hidden vector ({@code RwkvModel.hidden}), width C
     * @param state  the state after the text
     */
    public float[] pool(float[] hidden, RwkvState state) {
        if (hidden.length != config.embd()) {
            throw new IllegalArgumentException(
                    "hidden vector of " + hidden.length + " floats, the model's width is " + config.embd());
        }
        if (!state.config().equals(config)) {
            throw new IllegalArgumentException(
                    "state of a model of shape " + state.config() + ", the embedder is for " + config);
        }
        float[] out = new float[dimension];
        int pos = 0;
        if (pooling.usesHidden()) {
            System.arraycopy(hidden, 0, out, 0, hidden.length);
            pos = hidden.length;
        }
        if (pooling.usesState()) {
            for (int layer : pooling.layers()) {
                pos = appendLayerState(state, layer, out, pos);
            }
        }
        return out;
    }

    /** Appends one layer's pooled WKV state at {@code pos}; returns the position after it. */
    private int appendLayerState(RwkvState state, int layer, float[] out, int pos) {
        float[] data = state.data();
        int wkv = state.wkvOffset(layer);
        if (config.version().hasMatrixState()) {
            int n = RwkvState.wkvFloats(config);
            System.arraycopy(data, wkv, out, pos, n);
            return pos + n;
        }
        // v4: [aa (C)][bb (C)][pp (C)]; the weighted average of values is aa / bb
        int c = config.embd();
        for (int i = 0; i < c; i++) {
            float aa = data[wkv + i];
            float bb = data[wkv + c + i];
            out[pos + i] = bb == 0f ? 0f : aa / bb;
        }
        return pos + c;
    }

    /** {@code v / ||v||_2}, the norm summed in double in index order; a zero vector is returned as zeros. */
    static float[] l2Normalize(float[] v) {
        double sumOfSquares = 0;
        for (float x : v) {
            sumOfSquares += (double) x * x;
        }
        float[] out = new float[v.length];
        if (sumOfSquares == 0) {
            return out;
        }
        double norm = Math.sqrt(sumOfSquares);
        for (int i = 0; i < v.length; i++) {
            out[i] = (float) (v[i] / norm);
        }
        return out;
    }
}
