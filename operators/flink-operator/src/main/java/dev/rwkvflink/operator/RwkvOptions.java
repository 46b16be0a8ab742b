package dev.rwkvflink.operator;

import java.time.Duration;
import java.util.List;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.MemorySize;
import org.apache.flink.configuration.ReadableConfig;

/**
 * The operator's settings as Flink {@link ConfigOption}s: settable in {@code config.yaml}, with {@code -D} on
 * {@code flink run}, or in a job's {@code Configuration}, read by {@link RwkvOperatorConfig#from(ReadableConfig)}.
 * The one place of each setting's key, default and description (the fields of {@link RwkvOperatorConfig} start
 * from these defaults; docs/configuration.md is checked against these descriptions).
 */
public final class RwkvOptions {

    private RwkvOptions() {}

    public static final ConfigOption<String> MODEL = ConfigOptions.key("rwkv.model")
            .stringType()
            .noDefaultValue()
            .withDescription("Model file (rwkv.cpp .bin, .pth, .safetensors) present on every TaskManager; "
                    + "unset or \"demo\": the built-in demo model (random weights); \"random:0.1b[:TYPE]\": random "
                    + "weights of a real shape, for benchmarks.");

    public static final ConfigOption<String> VOCAB = ConfigOptions.key("rwkv.vocab")
            .stringType()
            .noDefaultValue()
            .withDescription(
                    "Vocabulary file (World vocabulary .txt or a tokenizer .json); unset for byte-level " + "models.");

    /** What {@link #BACKEND} means; also the command line's {@code --backend} help (a constant for annotations). */
    public static final String BACKEND_DESCRIPTION = "Engine backend: cpu (the Vector API, fastest on the CPU), "
            + "vector, scalar (the plain reference), cuda (bf16 on an NVIDIA GPU) or cuda:f32; a GPU backend falls "
            + "back to the CPU, saying why in the log, where no GPU is usable.";

    public static final ConfigOption<String> BACKEND =
            ConfigOptions.key("rwkv.backend").stringType().defaultValue("cpu").withDescription(BACKEND_DESCRIPTION);

    public static final ConfigOption<Integer> CUDA_DEVICE = ConfigOptions.key("rwkv.cuda.device")
            .intType()
            .defaultValue(-1)
            .withDescription("CUDA device ordinal for the GPU backends; -1: the index of Flink's gpu external "
                    + "resource given to the TaskManager, else the JVM property rwkv.cuda.device (default 0).");

    public static final ConfigOption<Integer> THREADS = ConfigOptions.key("rwkv.threads")
            .intType()
            .defaultValue(0)
            .withDescription("Worker threads of the CPU backend, shared by every operator instance of a TaskManager "
                    + "(the first instance to load a model sizes it); 0: the JVM property rwkv.threads, else the "
                    + "available processors.");

    public static final ConfigOption<Integer> CUDA_SLOTS = ConfigOptions.key("rwkv.cuda.slots")
            .intType()
            .defaultValue(0)
            .withDescription("States a GPU model keeps resident on the device (its state pool, shared by the "
                    + "operator instances of a TaskManager that use the model); 0: the JVM property "
                    + "rwkv.cuda.slots, else 256.");

    public static final ConfigOption<Integer> CUDA_MAX_ROWS = ConfigOptions.key("rwkv.cuda.max-rows")
            .intType()
            .defaultValue(0)
            .withDescription("Tokens (over all keys) one GPU pass takes, which sizes its activation buffers; 0: the "
                    + "JVM property rwkv.cuda.maxRows, else 16384.");

    /** What {@link #POOLING} means; also the command line's {@code --pooling} help. */
    public static final String POOLING_DESCRIPTION = "How a document's state becomes its embedding: hidden (the "
            + "last token's hidden vector), state or both, optionally with layers (state:0,11, both:11; default: "
            + "the last layer).";

    public static final ConfigOption<String> POOLING = ConfigOptions.key("rwkv.pooling")
            .stringType()
            .defaultValue("hidden")
            .withDescription(POOLING_DESCRIPTION);

    public static final ConfigOption<String> STATS = ConfigOptions.key("rwkv.stats")
            .stringType()
            .noDefaultValue()
            .withDescription("Per-channel normalisation statistics for this model and pooling (from fit "
                    + "--stats-out); unset: none.");

    public static final ConfigOption<String> HEAD = ConfigOptions.key("rwkv.head")
            .stringType()
            .noDefaultValue()
            .withDescription(
                    "A classification head (from fit) for this model and pooling; unset: embeddings " + "only.");

    public static final ConfigOption<Integer> BATCH_MAX_KEYS = ConfigOptions.key("rwkv.batch.max-keys")
            .intType()
            .defaultValue(256)
            .withDescription("Most keys advanced in one engine call (a GPU advances more at once: e.g. 1024).");

    public static final ConfigOption<Integer> BATCH_MAX_TOKENS = ConfigOptions.key("rwkv.batch.max-tokens")
            .intType()
            .defaultValue(16_384)
            .withDescription("Most tokens in one batch over all keys.");

    public static final ConfigOption<Duration> BATCH_MAX_WAIT = ConfigOptions.key("rwkv.batch.max-wait")
            .durationType()
            .defaultValue(Duration.ofMillis(50))
            .withDescription("Longest a chunk waits for its batch (processing time) before the batch runs anyway.");

    public static final ConfigOption<MemorySize> HOT_STATES_SIZE = ConfigOptions.key("rwkv.hot-states.size")
            .memoryType()
            .defaultValue(MemorySize.ofMebiBytes(256))
            .withDescription("Memory for the states kept where the model runs between batches (GPU memory with "
                    + "CUDA, else the heap): a hot key's state goes to Flink state before each checkpoint barrier "
                    + "and when evicted (least recently used), not after every batch; at least one batch's keys; "
                    + "with CUDA at most the GPU state pool's share of the slot (rwkv.cuda.slots / task slots), on "
                    + "the CPU at most the slot's share of a quarter of the heap; 0: after every batch.");

    public static final ConfigOption<Long> SNAPSHOT_TOKENS = ConfigOptions.key("rwkv.snapshot.tokens")
            .longType()
            .defaultValue(-1L)
            .withDescription("The token log's budget K: a key's Flink state is a snapshot of its RWKV state plus "
                    + "the token ids applied since (~2 bytes each); a write-back appends the new tokens and writes a "
                    + "new snapshot once K have accumulated; a cold key is rebuilt by replaying its log. -1: where "
                    + "replaying K tokens costs about one snapshot read, measured per backend (GPU: 900 at every "
                    + "size, measured on an H100; CPU: at least 256); 0: a whole state at every write-back.");

    public static final ConfigOption<Duration> IDLE_TIMEOUT = ConfigOptions.key("rwkv.idle-timeout")
            .durationType()
            .defaultValue(Duration.ofHours(1))
            .withDescription("A document without a new chunk for this long gets its final (IDLE) embedding and is "
                    + "cleared (checked on whole seconds); 0: never.");

    public static final ConfigOption<Boolean> EMIT_EVERY_CHUNK = ConfigOptions.key("rwkv.emit.every-chunk")
            .booleanType()
            .defaultValue(false)
            .withDescription(
                    "Also emit an embedding (reason PROGRESS) after every chunk, not only at a " + "document's end.");

    public static final ConfigOption<Long> EMIT_EVERY_TOKENS = ConfigOptions.key("rwkv.emit.every-tokens")
            .longType()
            .defaultValue(0L)
            .withDescription("Also emit an embedding (reason PROGRESS) every N tokens of a document; 0: never.");

    public static final ConfigOption<Long> MAX_SEQ_AHEAD = ConfigOptions.key("rwkv.limits.max-seq-ahead")
            .longType()
            .defaultValue(10_000L)
            .withDescription(
                    "A chunk more than this many seqs ahead of the next expected one is rejected (dead " + "letter).");

    public static final ConfigOption<Integer> MAX_BUFFERED_CHUNKS = ConfigOptions.key("rwkv.limits.max-buffered-chunks")
            .intType()
            .defaultValue(1_000)
            .withDescription(
                    "Chunks held per document while waiting for a missing predecessor; more are " + "rejected.");

    public static final ConfigOption<Integer> MAX_CHUNK_BYTES = ConfigOptions.key("rwkv.limits.max-chunk-bytes")
            .intType()
            .defaultValue(4 << 20)
            .withDescription(
                    "Longest chunk accepted: UTF-8 bytes of text, or token ids; longer ones are " + "rejected.");

    public static final ConfigOption<Integer> MAX_KEY_BYTES = ConfigOptions.key("rwkv.limits.max-key-bytes")
            .intType()
            .defaultValue(4096)
            .withDescription("Longest document key accepted, in UTF-8 bytes (the key is the Kafka key and a field "
                    + "of every output record).");

    public static final ConfigOption<Duration> FINISHED_RETENTION = ConfigOptions.key("rwkv.finished-retention")
            .durationType()
            .defaultValue(Duration.ofHours(1))
            .withDescription("How long a finished document's tombstone rejects late chunks for it.");

    /** Every option above, in the order of the configuration reference. */
    public static final List<ConfigOption<?>> ALL = List.of(
            MODEL,
            VOCAB,
            BACKEND,
            CUDA_DEVICE,
            THREADS,
            CUDA_SLOTS,
            CUDA_MAX_ROWS,
            POOLING,
            STATS,
            HEAD,
            BATCH_MAX_KEYS,
            BATCH_MAX_TOKENS,
            BATCH_MAX_WAIT,
            HOT_STATES_SIZE,
            SNAPSHOT_TOKENS,
            IDLE_TIMEOUT,
            EMIT_EVERY_CHUNK,
            EMIT_EVERY_TOKENS,
            MAX_SEQ_AHEAD,
            MAX_BUFFERED_CHUNKS,
            MAX_CHUNK_BYTES,
            MAX_KEY_BYTES,
            FINISHED_RETENTION);
}
