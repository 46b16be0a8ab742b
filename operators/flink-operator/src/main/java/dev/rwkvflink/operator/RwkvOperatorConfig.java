package dev.rwkvflink.operator;

import dev.rwkvflink.engine.backend.EngineSettings;
import java.io.Serializable;
import java.util.function.Consumer;
import org.apache.flink.configuration.ReadableConfig;

/**
 * Settings of the RWKV operator, with defaults for a CPU deployment; immutable: each fluent setter returns a changed
 * copy. Made with the setters or {@link #from} a Flink configuration ({@link RwkvOptions}: keys, defaults and
 * descriptions), validated on the client, shipped with the job graph.
 */
public final class RwkvOperatorConfig implements Serializable {
    private static final long serialVersionUID = 1L;

    /**
     * Model file (rwkv.cpp .bin, .pth, .safetensors) present on every TaskManager, or "demo" / null for the built-in
     * demo model, or "random:0.1b[:TYPE]" for benchmarks (see dev.rwkvflink.engine.model.ModelSources).
     */
    public final String modelPath;
    /** Vocabulary file; null for byte-level models. */
    public final String vocabPath;
    /** Engine backend: cpu (Vector API), scalar, vector, or cuda when available. */
    public final String backend;
    /**
     * CUDA device ordinal for the GPU backends; -1 (default): the device of Flink's {@code gpu} external resource
     * given to this TaskManager when one is configured (its {@code index} property), else system property
     * {@code rwkv.cuda.device} (default 0). See {@link GpuChoice}.
     */
    public final int cudaDevice;
    /**
     * How the TaskManager's shared backends are sized (CPU threads, GPU pool slots and rows per pass; 0: defaults),
     * applied by the first instance that loads a model: see dev.rwkvflink.engine.backend.EngineSettings.
     */
    public final EngineSettings engine;
    /** Pooling of the embedding: hidden, state[:layers], both[:layers] (see dev.rwkvflink.engine.embed.Pooling). */
    public final String pooling;
    /** Per-channel normalisation statistics collected for this model and pooling; null: none. */
    public final String statsPath;
    /** A classification head (from the fit job) for this model and pooling; null: embeddings only. */
    public final String headPath;

    /** Most keys advanced in one engine call. */
    public final int maxBatchKeys;
    /** Most tokens in one batch (over all keys). */
    public final int maxBatchTokens;
    /** Longest a chunk waits in a batch before the batch runs anyway (processing time). */
    public final long maxWaitMillis;

    /**
     * Memory for states kept where the model runs between batches (GPU memory with the CUDA backend, else the
     * Java heap), so that a key advanced in many batches is read from and written to Flink state once per
     * checkpoint, not twice per batch (see HotStates). Holds this many bytes' worth of states (at least one batch
     * with 0); with the CUDA backend at most the GPU state pool's share of this TaskManager slot, on the CPU at most
     * this slot's share of a quarter of the JVM heap (HotStates.capacity; logged when it bounds). 0: states go back
     * to Flink state after every batch.
     */
    public final long hotStateBytes;

    /**
     * The token log's budget K: a key's Flink state is a snapshot of its RWKV state plus the token ids applied
     * since; when a write-back finds K or more tokens since the snapshot, it writes a new snapshot instead of
     * appending to the log. Larger K: fewer and smaller checkpoint writes, longer replays when a cold key is
     * rebuilt. 0: a snapshot at every write-back (the layout before the token log). -1 (default): chosen per
     * backend and model size ({@link SnapshotBudget}).
     */
    public final long snapshotTokens;

    /** A key without chunks for this long (checked on whole seconds) gets its final embedding and is cleared; 0 disables. */
    public final long idleTimeoutMillis;
    /** Emit an intermediate embedding after every chunk. */
    public final boolean emitEveryChunk;
    /** Emit an intermediate embedding every N tokens; 0 disables. */
    public final long emitEveryTokens;

    /** Chunks further ahead of the next expected seq than this are rejected (side output). */
    public final long maxSeqAhead;
    /** Most out-of-order chunks buffered per key. */
    public final int maxBufferedChunks;
    /** Largest chunk text accepted, in UTF-8 bytes. */
    public final int maxChunkBytes;
    /**
     * Longest document key accepted, in UTF-8 bytes: the key is the Kafka key and a field of every output record,
     * so an unbounded one could make an output too large for the topic and fail the job.
     */
    public final int maxKeyBytes;
    /** How long a finished document's tombstone is kept to reject late chunks for it. */
    public final long finishedRetentionMillis;

    /** The defaults ({@link RwkvOptions}). */
    public RwkvOperatorConfig() {
        this(new Values());
    }

    private RwkvOperatorConfig(Values v) {
        this.modelPath = v.modelPath;
        this.vocabPath = v.vocabPath;
        this.backend = v.backend;
        this.cudaDevice = v.cudaDevice;
        this.engine = v.engine;
        this.pooling = v.pooling;
        this.statsPath = v.statsPath;
        this.headPath = v.headPath;
        this.maxBatchKeys = v.maxBatchKeys;
        this.maxBatchTokens = v.maxBatchTokens;
        this.maxWaitMillis = v.maxWaitMillis;
        this.hotStateBytes = v.hotStateBytes;
        this.snapshotTokens = v.snapshotTokens;
        this.idleTimeoutMillis = v.idleTimeoutMillis;
        this.emitEveryChunk = v.emitEveryChunk;
        this.emitEveryTokens = v.emitEveryTokens;
        this.maxSeqAhead = v.maxSeqAhead;
        this.maxBufferedChunks = v.maxBufferedChunks;
        this.maxChunkBytes = v.maxChunkBytes;
        this.maxKeyBytes = v.maxKeyBytes;
        this.finishedRetentionMillis = v.finishedRetentionMillis;
    }

    /** A copy with {@code change} applied to its values: the setters' one way to change anything. */
    private RwkvOperatorConfig with(Consumer<Values> change) {
        Values v = new Values();
        v.modelPath = modelPath;
        v.vocabPath = vocabPath;
        v.backend = backend;
        v.cudaDevice = cudaDevice;
        v.engine = engine;
        v.pooling = pooling;
        v.statsPath = statsPath;
        v.headPath = headPath;
        v.maxBatchKeys = maxBatchKeys;
        v.maxBatchTokens = maxBatchTokens;
        v.maxWaitMillis = maxWaitMillis;
        v.hotStateBytes = hotStateBytes;
        v.snapshotTokens = snapshotTokens;
        v.idleTimeoutMillis = idleTimeoutMillis;
        v.emitEveryChunk = emitEveryChunk;
        v.emitEveryTokens = emitEveryTokens;
        v.maxSeqAhead = maxSeqAhead;
        v.maxBufferedChunks = maxBufferedChunks;
        v.maxChunkBytes = maxChunkBytes;
        v.maxKeyBytes = maxKeyBytes;
        v.finishedRetentionMillis = finishedRetentionMillis;
        change.accept(v);
        return new RwkvOperatorConfig(v);
    }

    /** The values a configuration is made of, mutable while one is made; the defaults are {@link RwkvOptions}'. */
    private static final class Values {
        String modelPath;
        String vocabPath;
        String backend = RwkvOptions.BACKEND.defaultValue();
        int cudaDevice = RwkvOptions.CUDA_DEVICE.defaultValue();
        EngineSettings engine = new EngineSettings(
                RwkvOptions.THREADS.defaultValue(),
                RwkvOptions.CUDA_SLOTS.defaultValue(),
                RwkvOptions.CUDA_MAX_ROWS.defaultValue());
        String pooling = RwkvOptions.POOLING.defaultValue();
        String statsPath;
        String headPath;
        int maxBatchKeys = RwkvOptions.BATCH_MAX_KEYS.defaultValue();
        int maxBatchTokens = RwkvOptions.BATCH_MAX_TOKENS.defaultValue();
        long maxWaitMillis = RwkvOptions.BATCH_MAX_WAIT.defaultValue().toMillis();
        long hotStateBytes = RwkvOptions.HOT_STATES_SIZE.defaultValue().getBytes();
        long snapshotTokens = RwkvOptions.SNAPSHOT_TOKENS.defaultValue();
        long idleTimeoutMillis = RwkvOptions.IDLE_TIMEOUT.defaultValue().toMillis();
        boolean emitEveryChunk = RwkvOptions.EMIT_EVERY_CHUNK.defaultValue();
        long emitEveryTokens = RwkvOptions.EMIT_EVERY_TOKENS.defaultValue();
        long maxSeqAhead = RwkvOptions.MAX_SEQ_AHEAD.defaultValue();
        int maxBufferedChunks = RwkvOptions.MAX_BUFFERED_CHUNKS.defaultValue();
        int maxChunkBytes = RwkvOptions.MAX_CHUNK_BYTES.defaultValue();
        int maxKeyBytes = RwkvOptions.MAX_KEY_BYTES.defaultValue();
        long finishedRetentionMillis =
                RwkvOptions.FINISHED_RETENTION.defaultValue().toMillis();
    }

    /**
     * The settings {@code conf} sets ({@link RwkvOptions}), the defaults for the rest; validated. A value that does
     * not parse as its option's type is refused naming the key.
     */
    public static RwkvOperatorConfig from(ReadableConfig conf) {
        Values c = new Values();
        c.modelPath = conf.getOptional(RwkvOptions.MODEL).orElse(null);
        c.vocabPath = conf.getOptional(RwkvOptions.VOCAB).orElse(null);
        c.backend = conf.get(RwkvOptions.BACKEND).strip();
        c.cudaDevice = conf.get(RwkvOptions.CUDA_DEVICE);
        c.engine = new EngineSettings(
                conf.get(RwkvOptions.THREADS), conf.get(RwkvOptions.CUDA_SLOTS), conf.get(RwkvOptions.CUDA_MAX_ROWS));
        c.pooling = conf.get(RwkvOptions.POOLING).strip();
        c.statsPath = conf.getOptional(RwkvOptions.STATS).orElse(null);
        c.headPath = conf.getOptional(RwkvOptions.HEAD).orElse(null);
        c.maxBatchKeys = conf.get(RwkvOptions.BATCH_MAX_KEYS);
        c.maxBatchTokens = conf.get(RwkvOptions.BATCH_MAX_TOKENS);
        c.maxWaitMillis = conf.get(RwkvOptions.BATCH_MAX_WAIT).toMillis();
        c.hotStateBytes = conf.get(RwkvOptions.HOT_STATES_SIZE).getBytes();
        c.snapshotTokens = conf.get(RwkvOptions.SNAPSHOT_TOKENS);
        c.idleTimeoutMillis = conf.get(RwkvOptions.IDLE_TIMEOUT).toMillis();
        c.emitEveryChunk = conf.get(RwkvOptions.EMIT_EVERY_CHUNK);
        c.emitEveryTokens = conf.get(RwkvOptions.EMIT_EVERY_TOKENS);
        c.maxSeqAhead = conf.get(RwkvOptions.MAX_SEQ_AHEAD);
        c.maxBufferedChunks = conf.get(RwkvOptions.MAX_BUFFERED_CHUNKS);
        c.maxChunkBytes = conf.get(RwkvOptions.MAX_CHUNK_BYTES);
        c.maxKeyBytes = conf.get(RwkvOptions.MAX_KEY_BYTES);
        c.finishedRetentionMillis = conf.get(RwkvOptions.FINISHED_RETENTION).toMillis();
        return new RwkvOperatorConfig(c).validate();
    }

    public RwkvOperatorConfig model(String path) {
        return with(v -> {
            v.modelPath = path;
        });
    }

    public RwkvOperatorConfig vocab(String path) {
        return with(v -> {
            v.vocabPath = path;
        });
    }

    public RwkvOperatorConfig backend(String name) {
        return with(v -> {
            v.backend = name;
        });
    }

    public RwkvOperatorConfig cudaDevice(int ordinal) {
        return with(v -> {
            v.cudaDevice = ordinal;
        });
    }

    /** The TaskManager's engine sizing (see {@link #engine}). */
    public RwkvOperatorConfig engine(EngineSettings settings) {
        return with(v -> {
            v.engine = settings;
        });
    }

    public RwkvOperatorConfig pooling(String spec) {
        return with(v -> {
            v.pooling = spec;
        });
    }

    public RwkvOperatorConfig stats(String path) {
        return with(v -> {
            v.statsPath = path;
        });
    }

    public RwkvOperatorConfig head(String path) {
        return with(v -> {
            v.headPath = path;
        });
    }

    public RwkvOperatorConfig batch(int maxKeys, int maxTokens, long maxWaitMillis) {
        return with(v -> {
            v.maxBatchKeys = maxKeys;
            v.maxBatchTokens = maxTokens;
            v.maxWaitMillis = maxWaitMillis;
        });
    }

    public RwkvOperatorConfig hotStateBytes(long bytes) {
        return with(v -> {
            v.hotStateBytes = bytes;
        });
    }

    public RwkvOperatorConfig snapshotTokens(long k) {
        return with(v -> {
            v.snapshotTokens = k;
        });
    }

    public RwkvOperatorConfig idleTimeout(long millis) {
        return with(v -> {
            v.idleTimeoutMillis = millis;
        });
    }

    public RwkvOperatorConfig emitEveryChunk(boolean on) {
        return with(v -> {
            v.emitEveryChunk = on;
        });
    }

    public RwkvOperatorConfig emitEveryTokens(long n) {
        return with(v -> {
            v.emitEveryTokens = n;
        });
    }

    public RwkvOperatorConfig limits(long maxSeqAhead, int maxBufferedChunks, int maxChunkBytes) {
        return with(v -> {
            v.maxSeqAhead = maxSeqAhead;
            v.maxBufferedChunks = maxBufferedChunks;
            v.maxChunkBytes = maxChunkBytes;
        });
    }

    public RwkvOperatorConfig finishedRetention(long millis) {
        return with(v -> {
            v.finishedRetentionMillis = millis;
        });
    }

    /** Checks the settings, with a message naming the bad one. */
    public RwkvOperatorConfig validate() {
        require(cudaDevice >= -1, "cudaDevice must be a device ordinal >= 0, or -1 for automatic");
        require(maxBatchKeys >= 1, "maxBatchKeys must be >= 1");
        require(maxBatchTokens >= 1, "maxBatchTokens must be >= 1");
        require(maxWaitMillis >= 0, "maxWaitMillis must be >= 0");
        require(hotStateBytes >= 0, "hotStateBytes must be >= 0");
        require(snapshotTokens >= -1, "snapshotTokens must be >= 0, or -1 for automatic");
        require(idleTimeoutMillis >= 0, "idleTimeoutMillis must be >= 0");
        require(emitEveryTokens >= 0, "emitEveryTokens must be >= 0");
        require(maxSeqAhead >= 1, "maxSeqAhead must be >= 1");
        require(maxBufferedChunks >= 0, "maxBufferedChunks must be >= 0");
        require(maxChunkBytes >= 1, "maxChunkBytes must be >= 1");
        require(maxKeyBytes >= 1, "maxKeyBytes must be >= 1");
        require(finishedRetentionMillis >= 0, "finishedRetentionMillis must be >= 0");
        return this;
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }

    /** What identifies a loaded model, so slots of one TaskManager share it; the GPU as {@link #cudaDevice}. */
    ModelSpec modelSpec() {
        return modelSpec(cudaDevice);
    }

    /** {@link #modelSpec()} on CUDA device {@code device} (-1: the engine's default). */
    ModelSpec modelSpec(int device) {
        return new ModelSpec(modelPath, vocabPath, backend, pooling, statsPath, headPath, device, engine);
    }
}
