package dev.rwkvflink.operator;

import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tokenizer.ChunkTokenizer;
import dev.rwkvflink.operator.state.KeyModelStateSerializer;
import dev.rwkvflink.operator.state.TokenRunSerializer;
import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ScheduledFuture;
import org.apache.flink.api.common.TaskInfo;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.TaskManagerOptions;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.runtime.execution.SuppressRestartsException;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.apache.flink.runtime.state.StateSnapshotContext;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.InternalTimer;
import org.apache.flink.streaming.api.operators.InternalTimerService;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.operators.Triggerable;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.util.OutputTag;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The keyed RWKV operator: one RWKV state per key in Flink state, chunks applied in seq order, many keys advanced
 * in one engine call.
 *
 * <h2>Per chunk (task thread, key context set by Flink)</h2>
 * Validate; drop a duplicate (seq already applied or already buffered); buffer a chunk that arrives early; for
 * the chunk with the next seq, tokenize it exactly as the whole text would be tokenized (the tokenizer carries
 * the undecided tail bytes in the key's progress) and queue its tokens in the in-memory {@link Batch}; then
 * apply every buffered successor. Nothing blocks: the batch runs when it is full, when its oldest chunk has
 * waited {@code maxWaitMillis}, before every checkpoint barrier and at end of input.
 *
 * <h2>Per batch</h2>
 * Each key's RWKV state is taken from its hot slot ({@link HotStates}) or rebuilt from Flink state, the engine
 * advances all keys together (one call per segment round), each emission point yields an embedding, and a key
 * whose document ended is cleared. Because a batch is always flushed in {@link #prepareSnapshotPreBarrier}, a
 * checkpoint holds exactly the states after the chunks it has acknowledged, and operator state needs no in-flight
 * work.
 *
 * <h2>Per key in Flink state: a snapshot and a token log</h2>
 * RWKV is a deterministic recurrence, so a key's state is its last snapshot (or the model's initial state) advanced
 * by the tokens applied since. Flink state holds exactly that: {@code rwkv-model-state}, the snapshot (the RWKV
 * state, the hidden vector of its last token, its token count; absent for a key that never wrote one), and
 * {@code rwkv-token-log}, the token ids applied since, as appended runs (a list state: an append moves only the
 * new tokens, RocksDB merges it without reading). A hot key that advanced writes back (before each barrier, and
 * when it is evicted) only its new tokens, or a new snapshot (clearing the log) once the log holds
 * {@code snapshotTokens} (K) tokens or more; a document shorter than K never writes a state. A key that is not hot
 * is rebuilt when a batch needs it: the snapshot is loaded and its log replayed, for all such keys of the batch in
 * one engine call (on the GPU a prefill over many streams). The rebuilt state is the state the key had: bit for bit
 * on the CPU backends, within the GPU tolerance on the GPU.
 *
 * <h2>Equivalence</h2>
 * For any split of a text into chunks, any arrival order, duplicates, interleaving with other keys and any
 * checkpoint/restore in between, the final embedding equals embedding the whole text in one engine call, bit for
 * bit on the CPU backends (the engine computes every token the same way whatever else is in the call). *
 * <h2>Why one class of this length</h2>
 * Flink calls its hooks (open, processElement, the timers, the barrier, finish, close) on one object, and each hook
 * here is short and hands the work on: validation to {@link ChunkValidation}, ordering to {@link ChunkOrder}, the
 * queued work to {@link Batch} and {@link BatchRunner}, state to {@link KeyStateStore}, {@link HotStates},
 * {@link ProgressCache} and {@link DocumentCounts}; what is left is the wiring and the small accessors tests read.
 */
public final class RwkvEmbeddingOperator extends AbstractStreamOperator<EmbeddingRecord>
        implements OneInputStreamOperator<TextChunk, EmbeddingRecord>,
                BoundedOneInput,
                Triggerable<String, VoidNamespace> {
    private static final long serialVersionUID = 1L;
    /**
     * DEBUG: one line per emitted embedding, per duplicate chunk and per checkpoint flush, naming the subtask, its
     * attempt and the last checkpoint it flushed for, so that an output can be traced to the checkpoint (and the
     * sink transaction) that carries it.
     */
    private static final Logger LOG = LoggerFactory.getLogger(RwkvEmbeddingOperator.class);

    /** Chunks that can never be applied, with the reason. */
    public static final OutputTag<RejectedChunk> REJECTED =
            new OutputTag<>("rwkv-rejected", TypeInformation.of(RejectedChunk.class));

    static final String MODEL_STATE = "rwkv-model-state";
    static final String TOKEN_LOG = "rwkv-token-log";
    static final String DOCUMENT_COUNTS = "rwkv-document-counts";
    private static final long TIMER_GRANULARITY_MS = 1000;

    private final RwkvOperatorConfig config;

    private transient SharedModels.LoadedModel loaded;
    private transient ChunkTokenizer chunkTokenizer;
    private transient ChunkValidation validation;
    private transient ChunkOrder order;
    private transient ValueState<DocumentProgress> progressState;
    /** The progress records between checkpoints (written back before each barrier): see {@link ProgressCache}. */
    private transient ProgressCache progress;

    private transient MapState<Long, TextChunk> bufferedState;
    /** Open documents and buffered chunks per key group, checkpointed (see {@link DocumentCounts}). */
    private transient DocumentCounts documents;

    private transient ListState<long[]> documentCounts;
    /** Restored from a checkpoint without {@link #documentCounts}: count once from the progress records. */
    private transient boolean countOnOpen;
    /** Each key's RWKV state in Flink state: snapshot + token log ({@link KeyStateStore}). */
    private transient KeyStateStore store;

    private transient InternalTimerService<VoidNamespace> timers;
    private transient Batch batch;
    private transient HotStates hot;
    /** Runs the batch's keys through the engine and makes their emissions. */
    private transient BatchRunner runner;

    private transient ScheduledFuture<?> flushTimer;
    private transient OperatorMetrics metrics;
    private transient String fingerprintHex;
    /** "subtask/attempt" for the DEBUG trace. */
    private transient String traceId;
    /** The last checkpoint this instance flushed for (-1 before the first): outputs after it belong to the next. */
    private transient long lastBarrier;

    public RwkvEmbeddingOperator(RwkvOperatorConfig config) {
        this.config = config.validate();
    }

    @Override
    public void initializeState(StateInitializationContext context) throws Exception {
        super.initializeState(context);
        lastBarrier = context.getRestoredCheckpointId().orElse(-1L);
        TaskInfo task = getRuntimeContext().getTaskInfo();
        int keyGroups = task.getMaxNumberOfParallelSubtasks();
        documents = new DocumentCounts(
                KeyGroupRangeAssignment.computeKeyGroupRangeForOperatorIndex(
                        keyGroups, task.getNumberOfParallelSubtasks(), task.getIndexOfThisSubtask()),
                keyGroups);
        documentCounts = context.getOperatorStateStore()
                .getUnionListState(new ListStateDescriptor<>(
                        DOCUMENT_COUNTS, PrimitiveArrayTypeInfo.LONG_PRIMITIVE_ARRAY_TYPE_INFO));
        boolean counted = documents.restore(documentCounts.get());
        // a checkpoint from before the counts were checkpointed: count its documents once, in open()
        countOnOpen = context.isRestored() && !counted;
    }

    @Override
    public void snapshotState(StateSnapshotContext context) throws Exception {
        super.snapshotState(context);
        documentCounts.update(documents.entries());
    }

    @Override
    public void open() throws Exception {
        super.open();
        int subtask = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
        int device = GpuChoice.isGpu(config.backend)
                ? GpuChoice.device(
                        config.cudaDevice, getRuntimeContext().getExternalResourceInfos(GpuChoice.RESOURCE), subtask)
                : -1;
        loaded = acquireModel(device);
        if (GpuChoice.isGpu(config.backend)) {
            LOG.info(
                    "subtask {} runs on {} (CUDA device {})",
                    subtask,
                    loaded.model().backend().name(),
                    device >= 0 ? device : "default, rwkv.cuda.device");
        }
        chunkTokenizer = loaded.tokenizer().chunked();
        validation = new ChunkValidation(
                config.maxKeyBytes,
                config.maxChunkBytes,
                loaded.model().config().vocab());
        order = new ChunkOrder(config.maxSeqAhead, config.maxBufferedChunks);
        fingerprintHex = loaded.model().fingerprint().hex();
        progressState = getRuntimeContext().getState(progressDescriptor());
        progress = new ProgressCache(new ProgressCache.Store() {
            @Override
            public DocumentProgress read(String key) throws Exception {
                return withKey(key, () -> progressState.value());
            }

            @Override
            public void write(String key, DocumentProgress p) throws Exception {
                withKey(key, () -> {
                    if (p == null) {
                        progressState.clear();
                    } else {
                        progressState.update(p);
                    }
                    return null;
                });
            }
        });
        bufferedState = getRuntimeContext()
                .getMapState(
                        new MapStateDescriptor<>("rwkv-buffered", Types.LONG, TypeInformation.of(TextChunk.class)));
        long snapshotTokens = config.snapshotTokens >= 0
                ? config.snapshotTokens
                : SnapshotBudget.defaultTokens(
                        loaded.model().config(), loaded.model().onAccelerator());
        timers = getInternalTimerService("rwkv-timers", VoidNamespaceSerializer.INSTANCE, this);
        batch = new Batch();
        traceId = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask() + "/"
                + getRuntimeContext().getTaskInfo().getAttemptNumber();
        if (LOG.isDebugEnabled()) {
            LOG.debug("open {} restored-from-checkpoint={}", traceId, lastBarrier);
        }
        if (countOnOpen) {
            countRestored();
        }
        metrics = new OperatorMetrics(
                getMetricGroup().addGroup("rwkv"),
                loaded.model().backend().name(),
                4 * RwkvState.floats(loaded.model().config()),
                documents);
        hot = new HotStates(loaded.model().residentStates(hotCapacity()));
        metrics.hotStates(hot::size);
        store = new KeyStateStore(
                getRuntimeContext()
                        .getState(new ValueStateDescriptor<>(
                                MODEL_STATE,
                                new KeyModelStateSerializer(
                                        loaded.model().config(), loaded.model().fingerprint()))),
                getRuntimeContext().getListState(new ListStateDescriptor<>(TOKEN_LOG, TokenRunSerializer.INSTANCE)),
                snapshotTokens,
                loaded.model(),
                hot.slots(),
                metrics,
                this::setCurrentKey);
        runner = new BatchRunner(hot, store, metrics, loaded, config.pooling, new BatchRunner.Emissions() {
            @Override
            public void embedding(EmbeddingRecord r) {
                output.collect(new StreamRecord<>(r, r.eventTime));
                if (LOG.isDebugEnabled()) {
                    LOG.debug(
                            "emit {} key={} seq={} reason={} tokens={} after-checkpoint={}",
                            traceId,
                            r.key,
                            r.seq,
                            r.reason,
                            r.tokens,
                            lastBarrier);
                }
            }

            @Override
            public void rejected(TextChunk chunk, String reason) {
                reject(chunk, reason, now());
            }

            @Override
            public long now() {
                return getProcessingTimeService().getCurrentProcessingTime();
            }
        });
        if (LOG.isDebugEnabled()) {
            LOG.debug(
                    "open {} hot states: {} slots, snapshot every {} tokens",
                    traceId,
                    hot.capacity(),
                    store.snapshotTokens());
        }
    }

    /**
     * The shared model, or a failure that ends the job without restarts when the model file itself is refused
     * (malformed, hostile, over a loader's budget, not a whole model): restarting cannot fix a file, and a restart
     * loop would only hide the reason. A file that is missing or unreadable (a mount not there yet, permissions)
     * fails the task normally, so the restart strategy retries it.
     */
    private SharedModels.LoadedModel acquireModel(int device) throws Exception {
        try {
            return SharedModels.acquire(config.modelSpec(device));
        } catch (NoSuchFileException | AccessDeniedException e) {
            throw e;
        } catch (IOException | IllegalArgumentException e) {
            LOG.error("model {} refused, failing the job without restarts: {}", config.modelPath, e.getMessage());
            throw new SuppressRestartsException(e);
        }
    }

    /** Slots to ask for: see {@link HotStates#capacity}; logged with what bounded it. */
    private int hotCapacity() {
        long perState = 4 * RwkvState.floats(loaded.model().config())
                + 4L * loaded.model().config().embd();
        int taskSlots = getContainingTask()
                .getEnvironment()
                .getTaskManagerInfo()
                .getConfiguration()
                .get(TaskManagerOptions.NUM_TASK_SLOTS);
        int deviceSlots = loaded.model().residentStateLimit();
        long maxHeap = Runtime.getRuntime().maxMemory();
        int capacity = HotStates.capacity(
                config.hotStateBytes, perState, config.maxBatchKeys, taskSlots, deviceSlots, maxHeap);
        long asked = config.hotStateBytes / perState;
        if (config.hotStateBytes > 0 && capacity < asked) {
            LOG.info(
                    "hot states {}: {} keys ({} MiB) of the {} asked for by hotStateBytes={}: bounded by {}",
                    traceId,
                    capacity,
                    capacity * perState >> 20,
                    asked,
                    config.hotStateBytes,
                    deviceSlots == 0
                            ? "a " + HotStates.HEAP_SHARE + " share of the " + (maxHeap >> 20) + " MiB heap over "
                                    + taskSlots + " task slots"
                            : "the GPU pool's " + deviceSlots + " slots over " + taskSlots + " task slots");
        }
        return capacity;
    }

    private static ValueStateDescriptor<DocumentProgress> progressDescriptor() {
        return new ValueStateDescriptor<>("rwkv-progress", TypeInformation.of(DocumentProgress.class));
    }

    /**
     * Counts the open documents and buffered chunks of a checkpoint written before the counts were part of it:
     * once, from the progress records (tens of bytes each), never from the snapshots (MBs each).
     */
    private void countRestored() {
        try {
            getKeyedStateBackend()
                    .applyToAllKeys(
                            VoidNamespace.INSTANCE,
                            VoidNamespaceSerializer.INSTANCE,
                            progressDescriptor(),
                            (key, state) -> {
                                DocumentProgress p = state.value();
                                if (p != null) {
                                    documents.count(key, p);
                                }
                            });
        } catch (Exception e) {
            LOG.warn("could not count the restored documents for the statesHeld and bufferedChunks metrics", e);
        }
    }

    /** Batches run so far (for tests). */
    long batchesRun() {
        return metrics.batches();
    }

    /** The arrivalToEmitMs and eventTimeToEmitMs histograms (for tests). */
    Histogram[] latencyHistograms() {
        return new Histogram[] {metrics.arrivalToEmitMs(), metrics.eventTimeToEmitMs()};
    }

    /** Chunks buffered for a missing predecessor, as the bufferedChunks metric says (for tests). */
    long bufferedChunks() {
        return documents.bufferedChunks();
    }

    /** Whether open() counted the documents by reading every key's progress record (for tests). */
    boolean scannedKeysOnOpen() {
        return countOnOpen;
    }

    /** Open documents, as the statesHeld metric says (for tests). */
    long openDocuments() {
        return documents.openDocuments();
    }

    // ---------------------------------------------------------------------------------------------- per chunk

    @Override
    public void processElement(StreamRecord<TextChunk> element) throws Exception {
        TextChunk chunk = element.getValue();
        long now = getProcessingTimeService().getCurrentProcessingTime();
        String problem = validation.problem(chunk);
        if (problem != null) {
            reject(chunk, problem, now);
            return;
        }
        String key = (String) getCurrentKey();
        DocumentProgress stored = progress.get(key);
        DocumentProgress p = stored != null ? stored : new DocumentProgress();
        ChunkOrder.Verdict verdict = order.arrive(p, chunk, bufferedState::contains);
        switch (verdict.kind()) {
            case DUPLICATE -> {
                metrics.duplicates.inc();
                traceDuplicate(chunk, verdict.why());
                return;
            }
            case REJECT -> {
                reject(chunk, verdict.why(), now);
                return;
            }
            case BUFFER -> {
                p.lastActivity = now;
                bufferedState.put(chunk.seq, chunk);
                p.buffered++;
                documents.buffered(key, 1);
            }
            case APPLY -> {
                p.lastActivity = now;
                apply(chunk, p, now);
                TextChunk next; // (p.buffered counts the entries of bufferedState: an in-order document reads none)
                while (p.buffered > 0 && !p.finished && (next = bufferedState.get(p.nextSeq)) != null) {
                    bufferedState.remove(p.nextSeq);
                    p.buffered--;
                    documents.buffered(key, -1);
                    apply(next, p, now);
                }
                if (p.finished && p.buffered > 0) {
                    rejectBufferedAfterEnd(p, now);
                }
            }
        }
        if (stored == null) {
            documents.documentOpened(key); // a document opens (not for a first chunk that was rejected)
        }
        progress.put(key, p);
        scheduleTimeout(p);
        flushWhenDue(now);
    }

    /**
     * Runs the batch when it is full; otherwise makes sure it runs within {@code maxWaitMillis} of {@code now}. Both
     * new chunks and idle timeouts go through here, so keys that time out together (their timers are rounded to
     * the same second) end in one engine call, not one call each.
     */
    private void flushWhenDue(long now) throws Exception {
        if (batch.keys() >= config.maxBatchKeys || batch.tokens() >= config.maxBatchTokens) {
            flush();
        } else if (!batch.isEmpty() && flushTimer == null) {
            flushTimer = getProcessingTimeService().registerTimer(now + config.maxWaitMillis, t -> {
                flushTimer = null;
                flush();
            });
        }
    }

    /** Tokenizes the chunk with the next seq and queues its tokens. */
    private void apply(TextChunk chunk, DocumentProgress p, long now) throws Exception {
        ChunkOrder.Applied applied = ChunkOrder.apply(p, chunk, chunkTokenizer);
        if (applied.rejection() != null) {
            reject(chunk, applied.rejection(), now);
        }
        int[] tokens = applied.tokens();
        EmbeddingRecord.Reason emit = chunk.last ? EmbeddingRecord.Reason.LAST : null;
        Batch.KeyWork work = batch.forKey(chunk.key);
        if (config.emitEveryTokens > 0) {
            addWithInterval(work, tokens, p, chunk, emit, now);
        } else {
            if (emit == null && config.emitEveryChunk) {
                emit = EmbeddingRecord.Reason.PROGRESS;
            }
            work.add(tokens, chunk.seq, chunk.eventTime, emit, now);
        }
        batch.countTokens(tokens.length);
        if (chunk.last) {
            work.lastChunk = chunk;
        }
    }

    /**
     * Splits the chunk's tokens where the key's token count reaches a multiple of {@code emitEveryTokens}; a final
     * reason (the last chunk) closes the chunk, taking the place of a progress point at the same token.
     */
    private void addWithInterval(
            Batch.KeyWork work,
            int[] tokens,
            DocumentProgress p,
            TextChunk chunk,
            EmbeddingRecord.Reason finalReason,
            long now) {
        long n = config.emitEveryTokens;
        long before = p.tokens - tokens.length;
        int from = 0;
        while (from < tokens.length) {
            long toBoundary = n - (before + from) % n;
            int to = (int) Math.min(tokens.length, from + toBoundary);
            boolean boundary = (before + to) % n == 0;
            work.add(
                    Arrays.copyOfRange(tokens, from, to),
                    chunk.seq,
                    chunk.eventTime,
                    boundary ? EmbeddingRecord.Reason.PROGRESS : null,
                    now);
            from = to;
        }
        boolean endsOnBoundary = tokens.length > 0 && p.tokens % n == 0;
        if (finalReason != null || tokens.length == 0) {
            EmbeddingRecord.Reason last = finalReason != null ? finalReason : null;
            if (endsOnBoundary && finalReason != null) {
                work.segments.getLast().emit = finalReason;
            } else {
                work.add(new int[0], chunk.seq, chunk.eventTime, last, now);
            }
        }
    }

    private void rejectBufferedAfterEnd(DocumentProgress p, long now) throws Exception {
        List<Long> seqs = new ArrayList<>();
        for (Map.Entry<Long, TextChunk> e : bufferedState.entries()) {
            seqs.add(e.getKey());
            reject(
                    e.getValue(),
                    "chunk " + e.getKey() + " comes after the document's last chunk " + (p.nextSeq - 1),
                    now);
        }
        for (Long s : seqs) {
            bufferedState.remove(s);
            p.buffered--;
            documents.buffered(getCurrentKey(), -1);
        }
    }

    /**
     * Registers the key's next deadline (idle timeout, or the end of a finished document's tombstone), rounded up
     * to the next full second so that a busy key holds few distinct timers; the handler re-checks the deadline.
     */
    private void scheduleTimeout(DocumentProgress p) {
        long wait = p.finished ? config.finishedRetentionMillis : config.idleTimeoutMillis;
        if (wait > 0 || p.finished) {
            long deadline = p.lastActivity + wait;
            timers.registerProcessingTimeTimer(
                    VoidNamespace.INSTANCE, (deadline / TIMER_GRANULARITY_MS + 1) * TIMER_GRANULARITY_MS);
        }
    }

    private void traceDuplicate(TextChunk chunk, String why) {
        if (LOG.isDebugEnabled()) {
            LOG.debug(
                    "duplicate {} key={} seq={} ({}) after-checkpoint={}",
                    traceId,
                    chunk.key,
                    chunk.seq,
                    why,
                    lastBarrier);
        }
    }

    private void reject(TextChunk chunk, String reason, long now) {
        metrics.deadLetters.inc();
        output.collect(REJECTED, new StreamRecord<>(new RejectedChunk(chunk, reason, now)));
    }

    // ----------------------------------------------------------------------------------------------- timers

    /** Idle timeout (final embedding, then clear) or the end of a finished document's tombstone. */
    @Override
    public void onProcessingTime(InternalTimer<String, VoidNamespace> timer) throws Exception {
        String key = timer.getKey();
        DocumentProgress p = progress.get(key);
        if (p == null) {
            return;
        }
        long now = timer.getTimestamp();
        if (p.finished) {
            if (now >= p.lastActivity + config.finishedRetentionMillis) {
                progress.clear(key);
            }
            return;
        }
        if (config.idleTimeoutMillis <= 0 || now < p.lastActivity + config.idleTimeoutMillis) {
            return; // a newer chunk moved the deadline; its own timer will fire
        }
        for (Map.Entry<Long, TextChunk> e : bufferedState.entries()) {
            reject(
                    e.getValue(),
                    "idle timeout: chunk " + p.nextSeq + " never arrived, so chunk " + e.getKey()
                            + " could not be applied",
                    now);
            documents.buffered(key, -1);
        }
        bufferedState.clear();
        p.buffered = 0;
        int[] rest = ChunkOrder.end(p, chunkTokenizer);
        p.lastActivity = now;
        Batch.KeyWork work = batch.forKey(key);
        work.add(rest, p.nextSeq - 1, p.eventTime, EmbeddingRecord.Reason.IDLE, now);
        batch.countTokens(rest.length);
        progress.put(key, p);
        scheduleTimeout(p);
        flushWhenDue(now);
    }

    @Override
    public void onEventTime(InternalTimer<String, VoidNamespace> timer) {
        // no event-time timers
    }

    // ------------------------------------------------------------------------------------------------ batches

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        super.prepareSnapshotPreBarrier(checkpointId);
        long start = System.nanoTime();
        int keys = batch.keys();
        flush();
        int written = writeBackHot();
        progress.writeBack();
        metrics.checkpoint();
        metrics.barrierNanos.inc(System.nanoTime() - start);
        if (LOG.isDebugEnabled()) {
            LOG.debug(
                    "barrier {} checkpoint={} flushed-keys={} written-back={} previous={}",
                    traceId,
                    checkpointId,
                    keys,
                    written,
                    lastBarrier);
        }
        lastBarrier = checkpointId;
    }

    /** End of a bounded input: run what is queued (documents without a last chunk keep their state). */
    @Override
    public void endInput() throws Exception {
        flush();
    }

    @Override
    public void finish() throws Exception {
        flush();
        super.finish();
    }

    /**
     * Runs the batch: each key's state comes from its hot slot (or, when not hot, from Flink state into a slot), all
     * keys advance together, emissions are made, and a key whose document ended leaves. Keys beyond the hot
     * capacity run in groups of at most that many.
     */
    void flush() throws Exception {
        if (flushTimer != null) {
            flushTimer.cancel(false);
            flushTimer = null;
        }
        if (batch == null || batch.isEmpty()) {
            return; // nothing queued, or open() failed before the batch existed (finish() still runs on close)
        }
        long start = System.nanoTime();
        Object savedKey = getCurrentKey();
        List<Batch.KeyWork> works = new ArrayList<>(batch.all());
        try {
            long tokens = 0;
            for (int from = 0; from < works.size(); from += hot.capacity()) {
                tokens += runner.run(works.subList(from, Math.min(works.size(), from + hot.capacity())));
            }
            if (config.hotStateBytes == 0) {
                hot.evictAll(store::writeBack);
            }
            metrics.batch(works.size(), tokens, System.nanoTime() - start);
        } finally {
            batch.clear();
            if (savedKey != null) {
                setCurrentKey(savedKey);
            }
        }
    }

    /** Snapshots written to Flink state so far by this instance (for tests). */
    long snapshotsWritten() {
        return metrics.snapshotsWritten.getCount();
    }

    /** Tokens appended to token logs so far by this instance (for tests). */
    long logTokens() {
        return metrics.logTokens.getCount();
    }

    /** RWKV-state bytes read and written between the last two barriers (for tests). */
    long[] checkpointStateBytes() {
        return metrics.checkpointStateBytes();
    }

    /** Keys rebuilt from snapshot + log so far by this instance (for tests). */
    long statesReplayed() {
        return metrics.statesReplayed.getCount();
    }

    /** Runs {@code action} with {@code key} as the current key, then restores the current key. */
    private <T> T withKey(String key, Callable<T> action) throws Exception {
        Object saved = getCurrentKey();
        boolean switchKey = !key.equals(saved);
        if (switchKey) {
            setCurrentKey(key);
        }
        try {
            return action.call();
        } finally {
            if (switchKey && saved != null) {
                setCurrentKey(saved);
            }
        }
    }

    /** Writes every dirty hot state to Flink state (before each checkpoint barrier); returns how many. */
    private int writeBackHot() throws Exception {
        Object savedKey = getCurrentKey();
        try {
            return hot.writeBackDirty(store::writeBack);
        } finally {
            if (savedKey != null) {
                setCurrentKey(savedKey);
            }
        }
    }

    @Override
    public void close() throws Exception {
        try {
            super.close();
        } finally {
            if (hot != null) {
                hot.close(); // newer than the last checkpoint: a restore replays it
                hot = null;
            }
            if (loaded != null) {
                SharedModels.release(loaded);
                loaded = null;
            }
        }
    }
}
