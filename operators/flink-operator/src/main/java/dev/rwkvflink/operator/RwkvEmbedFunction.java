package dev.rwkvflink.operator;

import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tokenizer.ChunkTokenizer;
import dev.rwkvflink.operator.state.KeyModelState;
import dev.rwkvflink.operator.state.KeyModelStateSerializer;
import java.util.List;
import java.util.Map;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.api.dataview.ListView;
import org.apache.flink.table.api.dataview.MapView;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.table.functions.TableSemantics;
import org.apache.flink.table.types.DataType;
import org.apache.flink.types.Row;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code RWKV_EMBED}: the SQL entry, a process table function over a table of chunks partitioned by document.
 *
 * <pre>{@code
 * SET 'pipeline.global-job-parameters' = 'rwkv.model:/models/rwkv7-0.1b.pth';
 * CREATE FUNCTION RWKV_EMBED AS 'dev.rwkvflink.operator.RwkvEmbedFunction';
 * SELECT * FROM RWKV_EMBED(input => TABLE chunks PARTITION BY doc, on_time => DESCRIPTOR(ts));
 * }</pre>
 *
 * <h2>Input and output</h2>
 * The input table has a {@code seq} column (BIGINT or INT: the chunk's position, 0, 1, 2, ...), a {@code text}
 * column (STRING) and optionally {@code last} (BOOLEAN: the document's last chunk); the PARTITION BY columns are
 * the document's key. Each row out (after the key columns, which Flink puts first) is an embedding ({@code reason}
 * LAST, IDLE, or PROGRESS when {@code rwkv.emit.every-chunk} is on) or a dead letter: a chunk that can never be
 * applied, with {@code reason} REJECTED and the cause in {@code error}. Nothing is dropped silently except exact
 * repeats of chunks already applied or buffered.
 *
 * <h2>Same rules as the DataStream operator</h2>
 * The same validation ({@link ChunkValidation}), ordering and deduplication ({@link ChunkOrder}), tokenization
 * across chunk boundaries and the same state layout per key: the progress record, a snapshot (the RWKV state, the
 * last hidden vector, its token count, in {@link KeyModelStateSerializer}'s format) written once every K tokens
 * ({@code rwkv.snapshot.tokens}), and a token log (the token ids applied since, appended per chunk). So the final
 * embedding of any split, order and repetition of a text equals embedding the whole text in one engine call, bit
 * for bit on the CPU backends. States of recently used keys stay in memory between rows (an LRU of
 * {@code rwkv.hot-states.size}); a key that is not there is rebuilt from its snapshot and log.
 *
 * <h2>The trade-off</h2>
 * A process table function sees one row of one key at a time, so each chunk is one engine call of one stream: no
 * batching across keys, which is what makes the DataStream operator fast on a GPU (and faster on the CPU for short
 * chunks). Use {@link RwkvStreams#embed} where throughput matters; this function where SQL is the interface.
 * Timers need event time: with {@code on_time}, a document idle for {@code rwkv.idle-timeout} of event time (by
 * the watermark) ends with an IDLE embedding, and a finished document's tombstone (which rejects late chunks) is
 * dropped after {@code rwkv.finished-retention}; without it, tombstones stay until {@code table.exec.state.ttl}.
 */
@FunctionHint(
        output = @DataTypeHint("ROW<seq BIGINT, tokens BIGINT, embedding ARRAY<FLOAT>, reason STRING, "
                        + "model STRING, label STRING, probabilities ARRAY<FLOAT>, error STRING>"))
public class RwkvEmbedFunction extends ProcessTableFunction<Row> {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(RwkvEmbedFunction.class);
    private static final String IDLE_TIMER = "idle";
    private static final String RETENTION_TIMER = "retention";

    /** The key's name, for timers (which see no input row). */
    public static class Document {
        public String key;

        public Document() {}
    }

    /** Set by the Table API constructor; null: read {@code rwkv.*} from the job parameters at open. */
    private final RwkvOperatorConfig given;

    private transient RwkvOperatorConfig config;
    private transient SharedModels.LoadedModel loaded;
    private transient ChunkTokenizer chunkTokenizer;
    private transient ChunkValidation validation;
    private transient ChunkOrder order;
    private transient KeyModelStateSerializer stateSerializer;
    private transient long snapshotTokens;
    private transient LiveStates live;
    private transient String fingerprintHex;
    private transient Columns columns;
    /** The metrics, under {@code rwkv} of the function's operator (the DataStream operator's names where shared). */
    private transient Counter tokenCount;

    private transient Counter embeddingCount;
    private transient Counter deadLetterCount;
    private transient Counter duplicateCount;
    private transient Counter snapshotsReadCount;
    private transient Counter snapshotCount;

    /** For {@code CREATE FUNCTION ... AS}: the settings come from the job parameters ({@code rwkv.*} keys). */
    public RwkvEmbedFunction() {
        this.given = null;
    }

    /** For the Table API: {@code tableEnv.createTemporarySystemFunction("RWKV_EMBED", new RwkvEmbedFunction(c))}. */
    public RwkvEmbedFunction(RwkvOperatorConfig config) {
        this.given = supported(config.validate());
    }

    private static RwkvOperatorConfig supported(RwkvOperatorConfig c) {
        if (c.modelPath == null) {
            throw new IllegalArgumentException("RWKV_EMBED needs a model: set " + RwkvOptions.MODEL.key());
        }
        if (c.emitEveryTokens > 0) {
            throw new IllegalArgumentException(RwkvOptions.EMIT_EVERY_TOKENS.key()
                    + " is not supported by RWKV_EMBED (use " + RwkvOptions.EMIT_EVERY_CHUNK.key() + ")");
        }
        return c;
    }

    /** The {@code rwkv.*} settings among the job parameters (pipeline.global-job-parameters). */
    static RwkvOperatorConfig fromJobParameters(FunctionContext context) {
        Configuration conf = new Configuration();
        for (ConfigOption<?> option : RwkvOptions.ALL) {
            String value = context.getJobParameter(option.key(), null);
            if (value != null) {
                conf.setString(option.key(), value);
            }
        }
        return supported(RwkvOperatorConfig.from(conf));
    }

    @Override
    public void open(FunctionContext context) throws Exception {
        config = given != null ? given : fromJobParameters(context);
        loaded = SharedModels.acquire(config.modelSpec());
        RwkvModel model = loaded.model();
        chunkTokenizer = loaded.tokenizer().chunked();
        validation = new ChunkValidation(
                config.maxKeyBytes, config.maxChunkBytes, model.config().vocab());
        order = new ChunkOrder(config.maxSeqAhead, config.maxBufferedChunks);
        stateSerializer = new KeyModelStateSerializer(model.config(), model.fingerprint());
        snapshotTokens = config.snapshotTokens >= 0
                ? config.snapshotTokens
                : SnapshotBudget.defaultTokens(model.config(), model.onAccelerator());
        long perState =
                4 * RwkvState.floats(model.config()) + 4L * model.config().embd();
        live = new LiveStates((int) Math.max(1, Math.min(Integer.MAX_VALUE, config.hotStateBytes / perState)));
        fingerprintHex = model.fingerprint().hex();
        MetricGroup group = context.getMetricGroup().addGroup("rwkv");
        tokenCount = group.counter("tokens");
        embeddingCount = group.counter("embeddings");
        deadLetterCount = group.counter("deadLetters");
        duplicateCount = group.counter("duplicates");
        snapshotsReadCount = group.counter("snapshotsRead");
        snapshotCount = group.counter("snapshotsWritten");
        group.gauge("liveStates", (Gauge<Integer>) live::size);
        LOG.info(
                "RWKV_EMBED subtask {}: {} states in memory, snapshot every {} tokens",
                context.getTaskInfo().getIndexOfThisSubtask(),
                live.capacity(),
                snapshotTokens);
    }

    @Override
    public void close() throws Exception {
        if (loaded != null) {
            SharedModels.release(loaded);
            loaded = null;
        }
    }

    public void eval(
            Context ctx,
            @StateHint(name = "progress") DocumentProgress progress,
            @StateHint(name = "document") Document document,
            @StateHint(name = "snapshot") ListView<byte[]> snapshot,
            @StateHint(name = "log") ListView<int[]> log,
            @StateHint(name = "buffered") MapView<Long, TextChunk> buffered,
            @ArgumentHint(value = ArgumentTrait.SET_SEMANTIC_TABLE, name = "input") Row input)
            throws Exception {
        TableSemantics table = ctx.tableSemanticsFor("input");
        TimeContext<Long> time = ctx.timeContext(Long.class);
        TextChunk chunk = chunk(input, table, time.time());
        String problem = validation.problem(chunk);
        if (problem != null) {
            rejected(chunk, problem);
            return;
        }
        document.key = chunk.key;
        ChunkOrder.Verdict verdict = order.arrive(progress, chunk, buffered::contains);
        switch (verdict.kind()) {
            case DUPLICATE -> {
                duplicateCount.inc();
                return;
            }
            case REJECT -> {
                rejected(chunk, verdict.why());
                return;
            }
            case BUFFER -> {
                buffered.put(chunk.seq, chunk);
                progress.buffered++;
            }
            case APPLY -> {
                apply(chunk, progress, new KeyState(document.key, snapshot, log));
                TextChunk next;
                while (progress.buffered > 0 && !progress.finished && (next = buffered.get(progress.nextSeq)) != null) {
                    buffered.remove(progress.nextSeq);
                    progress.buffered--;
                    apply(next, progress, new KeyState(document.key, snapshot, log));
                }
                if (progress.finished) {
                    for (Map.Entry<Long, TextChunk> e : buffered.entries()) {
                        rejected(
                                e.getValue(),
                                "chunk " + e.getKey() + " comes after the document's last chunk "
                                        + (progress.nextSeq - 1));
                    }
                    finish(ctx, progress, document.key);
                }
            }
        }
        if (time.time() != null) { // with on_time: the key's next deadline, from the newest event time it saw
            long wait = progress.finished ? config.finishedRetentionMillis : config.idleTimeoutMillis;
            if (wait > 0 || progress.finished) {
                time.registerOnTime(
                        progress.finished ? RETENTION_TIMER : IDLE_TIMER,
                        Math.max(time.time(), progress.eventTime) + wait);
            }
        }
    }

    /**
     * Event-time timers: a document idle for {@code rwkv.idle-timeout} ends with what it has (buffered chunks whose
     * predecessor never came are dead letters); a finished document's tombstone goes after its retention.
     */
    public void onTimer(
            OnTimerContext ctx,
            DocumentProgress progress,
            Document document,
            ListView<byte[]> snapshot,
            ListView<int[]> log,
            MapView<Long, TextChunk> buffered)
            throws Exception {
        if (RETENTION_TIMER.equals(ctx.currentTimer()) || progress.finished) {
            ctx.clearAll();
            return;
        }
        for (Map.Entry<Long, TextChunk> e : buffered.entries()) {
            rejected(
                    e.getValue(),
                    "idle timeout: chunk " + progress.nextSeq + " never arrived, so chunk " + e.getKey()
                            + " could not be applied");
        }
        int[] rest = ChunkOrder.end(progress, chunkTokenizer);
        LiveStates.Live s = advance(new KeyState(document.key, snapshot, log), rest, progress.tokens - rest.length);
        emit(progress.nextSeq - 1, s, EmbeddingRecord.Reason.IDLE, document.key);
        finish(ctx, progress, document.key);
        Long now = ctx.timeContext(Long.class).time();
        if (now != null && config.finishedRetentionMillis > 0) {
            ctx.timeContext(Long.class).registerOnTime(RETENTION_TIMER, now + config.finishedRetentionMillis);
        } else {
            ctx.clearAll();
        }
    }

    /** Applies the chunk with the next seq: tokens through the model, the log or a snapshot, an emission if due. */
    private void apply(TextChunk chunk, DocumentProgress p, KeyState k) throws Exception {
        long before = p.tokens;
        ChunkOrder.Applied applied = ChunkOrder.apply(p, chunk, chunkTokenizer);
        if (applied.rejection() != null) {
            rejected(chunk, applied.rejection());
        }
        LiveStates.Live s = advance(k, applied.tokens(), before);
        if (chunk.last) {
            emit(chunk.seq, s, EmbeddingRecord.Reason.LAST, chunk.key);
        } else if (config.emitEveryChunk) {
            emit(chunk.seq, s, EmbeddingRecord.Reason.PROGRESS, chunk.key);
        }
    }

    /**
     * The key's state advanced by {@code tokens}: taken from memory when it is there at {@code before} tokens, else
     * rebuilt from the snapshot and the log; then the tokens are appended to the log, or a new snapshot replaces
     * snapshot and log once K tokens have gathered since the last one.
     */
    private LiveStates.Live advance(KeyState k, int[] tokens, long before) throws Exception {
        LiveStates.Live s = live.get(k.key(), before);
        if (s == null) {
            s = rebuild(k);
            if (s.tokens != before) {
                throw new IllegalStateException(
                        "the state of '" + k.key() + "' holds " + s.tokens + " tokens, its progress " + before);
            }
            live.put(k.key(), s);
        }
        if (tokens.length > 0) {
            s.hidden = loaded.model().advance(new RwkvState[] {s.state}, new int[][] {tokens})[0];
            s.tokens += tokens.length;
            tokenCount.inc(tokens.length);
            if (s.tokens - s.snapshotTokens >= snapshotTokens) {
                DataOutputSerializer out = new DataOutputSerializer(1024);
                stateSerializer.serialize(new KeyModelState(s.state, s.hidden, s.tokens), out);
                k.snapshot().clear();
                k.snapshot().add(out.getCopyOfBuffer());
                k.log().clear();
                s.snapshotTokens = s.tokens;
                snapshotCount.inc();
            } else {
                k.log().add(tokens);
            }
        }
        return s;
    }

    /** A key's state from Flink state: its snapshot (or the initial state) advanced by its token log. */
    private LiveStates.Live rebuild(KeyState k) throws Exception {
        LiveStates.Live s = new LiveStates.Live();
        s.state = loaded.model().newState();
        for (byte[] bytes : k.snapshot().get()) {
            KeyModelState stored = stateSerializer.deserialize(new DataInputDeserializer(bytes));
            s.state = stored.state;
            s.hidden = stored.hidden;
            s.tokens = stored.tokens;
            s.snapshotTokens = stored.tokens;
            snapshotsReadCount.inc(); // read from Flink state: not in memory (evicted, or after a restore)
        }
        int[] log = KeyStateStore.concat(k.log().get());
        if (log.length > 0) {
            s.hidden = loaded.model().advance(new RwkvState[] {s.state}, new int[][] {log})[0];
            s.tokens += log.length;
        }
        return s;
    }

    /** An ended document: its RWKV state goes; the progress stays as a tombstone that rejects late chunks. */
    private void finish(Context ctx, DocumentProgress p, String key) {
        p.buffered = 0;
        ctx.clearState("snapshot");
        ctx.clearState("log");
        ctx.clearState("buffered");
        live.remove(key);
    }

    private void emit(long seq, LiveStates.Live s, EmbeddingRecord.Reason reason, String key) {
        if (s.hidden == null) {
            if (reason != EmbeddingRecord.Reason.PROGRESS) {
                deadLetterCount.inc();
                collect(Row.of(
                        seq,
                        0L,
                        null,
                        "REJECTED",
                        fingerprintHex,
                        null,
                        null,
                        "document '" + key + "' has no tokens: nothing to embed"));
            }
            return;
        }
        float[] vector = loaded.embedder().embed(s.hidden, s.state);
        String label = null;
        Float[] probabilities = null;
        if (loaded.head() != null) {
            float[] p = loaded.head().probabilities(vector);
            label = loaded.head().label(p);
            probabilities = boxed(p);
        }
        embeddingCount.inc();
        collect(Row.of(seq, s.tokens, boxed(vector), reason.name(), fingerprintHex, label, probabilities, null));
    }

    private void rejected(TextChunk chunk, String reason) {
        deadLetterCount.inc();
        collect(Row.of(chunk.seq, null, null, "REJECTED", fingerprintHex, null, null, reason));
    }

    private static Float[] boxed(float[] v) {
        Float[] b = new Float[v.length];
        for (int i = 0; i < v.length; i++) {
            b[i] = v[i];
        }
        return b;
    }

    /** The row as a chunk: key from the PARTITION BY columns, seq, text, last, event time from on_time. */
    private TextChunk chunk(Row input, TableSemantics table, Long time) {
        if (columns == null) {
            columns = Columns.of(table);
        }
        StringBuilder key = new StringBuilder();
        for (int c : table.partitionByColumns()) {
            if (!key.isEmpty()) {
                key.append('|');
            }
            key.append(input.getField(c));
        }
        TextChunk chunk = new TextChunk();
        chunk.key = key.toString();
        chunk.seq = input.getField(columns.seq()) instanceof Number n ? n.longValue() : -1;
        chunk.text = (String) input.getField(columns.text());
        chunk.last = columns.last() >= 0 && Boolean.TRUE.equals(input.getField(columns.last()));
        chunk.eventTime = time != null ? time : 0L;
        return chunk;
    }

    /** Where the input's seq, text and (optional, -1) last columns are. */
    private record Columns(int seq, int text, int last) {
        static Columns of(TableSemantics table) {
            List<String> names = DataType.getFieldNames(table.dataType());
            int seq = names.indexOf("seq");
            int text = names.indexOf("text");
            if (seq < 0 || text < 0 || table.partitionByColumns().length == 0) {
                throw new IllegalArgumentException("RWKV_EMBED reads a table with columns seq (BIGINT), text (STRING) "
                        + "and optionally last (BOOLEAN), partitioned by the document key; this one has " + names
                        + (table.partitionByColumns().length == 0 ? " and no PARTITION BY" : ""));
            }
            return new Columns(seq, text, names.indexOf("last"));
        }
    }

    /** A key's state entries that hold its RWKV state: at most one snapshot, and the token log since it. */
    private record KeyState(String key, ListView<byte[]> snapshot, ListView<int[]> log) {}
}
