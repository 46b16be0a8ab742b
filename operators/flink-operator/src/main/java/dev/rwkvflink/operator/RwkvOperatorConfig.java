package dev.rwkvflink.operator;

import java.io.Serializable;
import org.apache.flink.configuration.ReadableConfig;

/**
 * Settings of the RWKV operator, with defaults for a CPU deployment. Fluent setters, or {@link #from} a Flink
 * configuration ({@link RwkvOptions}: keys, defaults and descriptions); shipped with the job graph.
 */
public final class RwkvOperatorConfig implements Serializable {
    private static final long serialVersionUID = 1L;

    /**
     * Model file (rwkv.cpp .bin, .pth, .safetensors) present on every TaskManager, or "demo" / null for the built-in
     * demo model, or "random:0.1b[:TYPE]" for benchmarks (see dev.rwkvflink.engine.model.ModelSources).
     */
    public String modelPath;
    /** Vocabulary file; null for byte-level models. */
    public String vocabPath;
    /** Engine backend: cpu (Vector API), scalar, vector, or cuda when available. */
    public String backend = RwkvOptions.BACKEND.defaultValue();
    /**
     * CUDA device ordinal for the GPU backends; -1 (default): the device of Flink's {@code gpu} external resource
     * given to this TaskManager when one is configured (its {@code index} property), else system property
     * {@code rwkv.cuda.device} (default 0). See {@link GpuChoice}.
     */
    public int cudaDevice = RwkvOptions.CUDA_DEVICE.defaultValue();
    /** Pooling of the embedding: hidden, state[:layers], both[:layers] (see dev.rwkvflink.engine.embed.Pooling). */
    public String pooling = RwkvOptions.POOLING.defaultValue();
    /** Per-channel normalisation statistics collected for this model and pooling; null: none. */
    public String statsPath;
    /** A classification head (from the fit job) for this model and pooling; null: embeddings only. */
    public String headPath;

    /** Most keys advanced in one engine call. */
    public int maxBatchKeys = RwkvOptions.BATCH_MAX_KEYS.defaultValue();
    /** Most tokens in one batch (over all keys). */
    public int maxBatchTokens = RwkvOptions.BATCH_MAX_TOKENS.defaultValue();
    /** Longest a chunk waits in a batch before the batch runs anyway (processing time). */
    public long maxWaitMillis = RwkvOptions.BATCH_MAX_WAIT.defaultValue().toMillis();

    /**
     * Memory for states kept where the model runs between batches (GPU memory with the CUDA backend, else the
     * Java heap), so that a key advanced in many batches is read from and written to Flink state once per
     * checkpoint, not twice per batch (see HotStates). Holds this many bytes' worth of states (at least one batch
     * with 0); with the CUDA backend at most the GPU state pool's share of this TaskManager slot, on the CPU at most
     * this slot's share of a quarter of the JVM heap (HotStates.capacity; logged when it bounds). 0: states go back
     * to Flink state after every batch.
     */
    public long hotStateBytes = RwkvOptions.HOT_STATES_SIZE.defaultValue().getBytes();

    /**
     * The token log's budget K: a key's Flink state is a snapshot of its RWKV state plus the token ids applied
     * since; when a write-back finds K or more tokens since the snapshot, it writes a new snapshot instead of
     * appending to the log. Larger K: fewer and smaller checkpoint writes, longer replays when a cold key is
     * rebuilt. 0: a snapshot at every write-back (the layout before the token log). -1 (default): chosen per
     * backend and model size ({@link SnapshotBudget}).
     */
    public long snapshotTokens = RwkvOptions.SNAPSHOT_TOKENS.defaultValue();

    /** A key without chunks for this long (checked on whole seconds) gets its final embedding and is cleared; 0 disables. */
    public long idleTimeoutMillis = RwkvOptions.IDLE_TIMEOUT.defaultValue().toMillis();
    /** Emit an intermediate embedding after every chunk. */
    public boolean emitEveryChunk = RwkvOptions.EMIT_EVERY_CHUNK.defaultValue();
    /** Emit an intermediate embedding every N tokens; 0 disables. */
    public long emitEveryTokens = RwkvOptions.EMIT_EVERY_TOKENS.defaultValue();

    /** Chunks further ahead of the next expected seq than this are rejected (side output). */
    public long maxSeqAhead = RwkvOptions.MAX_SEQ_AHEAD.defaultValue();
    /** Most out-of-order chunks buffered per key. */
    public int maxBufferedChunks = RwkvOptions.MAX_BUFFERED_CHUNKS.defaultValue();
    /** Largest chunk text accepted, in UTF-8 bytes. */
    public int maxChunkBytes = RwkvOptions.MAX_CHUNK_BYTES.defaultValue();
    /**
     * Longest document key accepted, in UTF-8 bytes: the key is the Kafka key and a field of every output record,
     * so an unbounded one could make an output too large for the topic and fail the job.
     */
    public int maxKeyBytes = RwkvOptions.MAX_KEY_BYTES.defaultValue();
    /** How long a finished document's tombstone is kept to reject late chunks for it. */
    public long finishedRetentionMillis = RwkvOptions.FINISHED_RETENTION.defaultValue().toMillis();

    /**
     * The settings {@code conf} sets ({@link RwkvOptions}), the defaults for the rest; validated. A value that does
     * not parse as its option's type is refused naming the key.
     */
    public static RwkvOperatorConfig from(ReadableConfig conf) {
        RwkvOperatorConfig c = new RwkvOperatorConfig();
        c.modelPath = conf.getOptional(RwkvOptions.MODEL).orElse(null);
        c.vocabPath = conf.getOptional(RwkvOptions.VOCAB).orElse(null);
        c.backend = conf.get(RwkvOptions.BACKEND).strip();
        c.cudaDevice = conf.get(RwkvOptions.CUDA_DEVICE);
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
        return c.validate();
    }

    public RwkvOperatorConfig model(String path) {
        this.modelPath = path;
        return this;
    }

    public RwkvOperatorConfig vocab(String path) {
        this.vocabPath = path;
        return this;
    }

    public RwkvOperatorConfig backend(String name) {
        this.backend = name;
        return this;
    }

    public RwkvOperatorConfig cudaDevice(int ordinal) {
        this.cudaDevice = ordinal;
        return this;
    }

    public RwkvOperatorConfig pooling(String spec) {
        this.pooling = spec;
        return this;
    }

    public RwkvOperatorConfig stats(String path) {
        this.statsPath = path;
        return this;
    }

    public RwkvOperatorConfig head(String path) {
        this.headPath = path;
        return this;
    }

    public RwkvOperatorConfig batch(int maxKeys, int maxTokens, long maxWaitMillis) {
        this.maxBatchKeys = maxKeys;
        this.maxBatchTokens = maxTokens;
        this.maxWaitMillis = maxWaitMillis;
        return this;
    }

    public RwkvOperatorConfig hotStateBytes(long bytes) {
        this.hotStateBytes = bytes;
        return this;
    }

    public RwkvOperatorConfig snapshotTokens(long k) {
        this.snapshotTokens = k;
        return this;
    }

    public RwkvOperatorConfig idleTimeout(long millis) {
        this.idleTimeoutMillis = millis;
        return this;
    }

    public RwkvOperatorConfig emitEveryChunk(boolean on) {
        this.emitEveryChunk = on;
        return this;
    }

    public RwkvOperatorConfig emitEveryTokens(long n) {
        this.emitEveryTokens = n;
        return this;
    }

    public RwkvOperatorConfig limits(long maxSeqAhead, int maxBufferedChunks, int maxChunkBytes) {
        this.maxSeqAhead = maxSeqAhead;
        this.maxBufferedChunks = maxBufferedChunks;
        this.maxChunkBytes = maxChunkBytes;
        return this;
    }

    public RwkvOperatorConfig finishedRetention(long millis) {
        this.finishedRetentionMillis = millis;
        return this;
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
        return new ModelSpec(modelPath, vocabPath, backend, pooling, statsPath, headPath, device);
    }
}
