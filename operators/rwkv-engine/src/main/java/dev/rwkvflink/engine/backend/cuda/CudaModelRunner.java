package dev.rwkvflink.engine.backend.cuda;

import dev.rwkvflink.cuda.Cublas;
import dev.rwkvflink.cuda.Cublas.Op;
import dev.rwkvflink.cuda.CudaDevice;
import dev.rwkvflink.cuda.CudaEvent;
import dev.rwkvflink.cuda.CudaGraph;
import dev.rwkvflink.cuda.CudaStream;
import dev.rwkvflink.cuda.DeviceMemory;
import dev.rwkvflink.cuda.PinnedMemory;
import dev.rwkvflink.engine.backend.EngineSettings;
import dev.rwkvflink.engine.backend.cuda.CommonKernels.Gemv;
import dev.rwkvflink.engine.model.ModelRunner;
import dev.rwkvflink.engine.model.ResidentStates;
import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.model.RwkvVersion;
import dev.rwkvflink.engine.state.RwkvState;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * A whole RWKV model on one GPU, any version: many streams advanced in one step, each by its own number of tokens.
 * This class holds what every version shares; subclasses ({@link Rwkv7Cuda}, {@link Rwkv456Cuda}) run the layers.
 *
 * <p>A step packs the streams' tokens into R rows (stream s owns rows {@code [start_s, start_s + count_s)}) and runs
 * every layer over all rows at once: the projections are cuBLAS products of (R x in) activations with the weight
 * matrices, so many streams turn matrix-vector work into matrix-matrix work; the per-channel operations are
 * kernels. States live in a device <em>state pool</em> of slots (one stream's whole state each, the layout of
 * {@link RwkvState}), gathered and scattered by slot index, so hot states can stay on the device between steps
 * ({@link #step}); {@link #advance} moves host states through the pool.
 *
 * <p>Bounded memory: rows beyond {@code maxRows} go in further passes (a stream longer than that is split, its
 * pieces run in order), and at most {@code slots} streams per pass. Steps of at most {@link #GRAPH_MAX_ROWS} rows are
 * captured once per shape as CUDA graphs and replayed; steps of at most 8 rows use the small-batch product kernel.
 *
 * <p>Over 500 lines for now: the state pool (slots, reservations, uploads and downloads), the graph cache and the
 * stage profiler are to become classes of their own (issue 17), a split that waits for a session with GPU time, so
 * that every step of it is checked by the GPU tests on the device.
 */
public abstract class CudaModelRunner implements ModelRunner {
    static final float LN_EPS = RwkvConfig.LAYER_NORM_EPS;
    /** Steps of at most this many rows are captured once as CUDA graphs and replayed (property rwkv.cuda.graphs). */
    static final int GRAPH_MAX_ROWS = 64;

    private static final boolean GRAPHS_ENABLED = Boolean.parseBoolean(System.getProperty("rwkv.cuda.graphs", "true"));
    private static final int GRAPH_CACHE = 64;
    /** cuBLAS workspace: set explicitly so that products can be captured into graphs. */
    static final long BLAS_WORKSPACE = 32L << 20;
    /** Largest matrix (elements) the small-batch kernel takes; bigger ones go to cuBLAS at every batch size. */
    static final long GEMV_MAX_ELEMENTS = 1L << 22;

    static final boolean SMALL_PRODUCTS = Boolean.parseBoolean(System.getProperty("rwkv.cuda.smallProducts", "true"));

    final CudaDevice device;
    final CudaStream stream;
    final Cublas blas;
    final CommonKernels kernels;
    final RwkvConfig config;
    final Precision precision;
    final int C;
    final int H;
    final int F;
    final int maxRows;
    final int slots;
    final long slotFloats;
    final int layerFloats;

    /** Tokens per chunk of the chunked recurrence (CHUNK_L in rwkv7.cu). */
    static final int CHUNK_L = 32;

    final int maxChunks;
    /** The current pass's chunk table (when {@link #chunked} asked for it): count and device arrays. */
    int chunkCount;

    long dChunkRow0;
    long dChunkLen;
    long dStreamChunk0;
    long dStreamChunks;

    final List<DeviceMemory> buffers = new ArrayList<>();
    final DeviceMemory pool;
    final DeviceMemory x; // R x C fp32 residual stream
    private final DeviceMemory meta; // ints: tokens[maxRows], rowStream[maxRows], start/count/slot[slots]
    private final DeviceMemory hidden; // slots x C fp32
    private final DeviceMemory hiddenAct;
    private final PinnedMemory metaHost;
    private final PinnedMemory hiddenHost;
    private final PinnedMemory stateHost; // one state
    private DeviceMemory logits; // lazily: slots x vocab fp32
    private PinnedMemory logitsHost;
    private final DeviceMemory lnOutW;
    private final DeviceMemory lnOutB;
    private final DeviceMemory head;
    private final String description;
    /** Captured steps by (rows, streams), least recently used first. */
    private final LinkedHashMap<Long, CudaGraph> graphs = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Long, CudaGraph> eldest) {
            if (size() > GRAPH_CACHE) {
                eldest.getValue().close();
                return true;
            }
            return false;
        }
    };

    /** Sizing of one runner: rows per pass and state-pool slots (streams per pass). */
    public record Limits(int maxRows, int slots) {
        public Limits {
            if (maxRows < 1 || slots < 1) {
                throw new IllegalArgumentException(
                        "limits must be positive: " + maxRows + " rows, " + slots + " slots");
            }
        }

        /** From the system properties, else the built-in values ({@link EngineSettings#DEFAULTS}). */
        public static Limits defaults() {
            return new Limits(
                    EngineSettings.DEFAULTS.cudaMaxRowsOrDefault(), EngineSettings.DEFAULTS.cudaSlotsOrDefault());
        }
    }

    /** The resources a runner takes over (and closes): device objects made before the weights were uploaded. */
    record Resources(CudaDevice device, CudaStream stream, Cublas blas, DeviceMemory workspace) {
        /** A stream and a cuBLAS handle bound to it, with an explicit workspace. */
        static Resources open(CudaDevice device) {
            device.makeCurrent();
            CudaStream stream = device.newStream();
            Cublas blas = null;
            DeviceMemory ws = null;
            try {
                blas = Cublas.create(device);
                blas.setStream(stream);
                ws = device.alloc(BLAS_WORKSPACE);
                blas.setWorkspace(ws);
                return new Resources(device, stream, blas, ws);
            } catch (RuntimeException | Error e) {
                if (ws != null) {
                    ws.close();
                }
                if (blas != null) {
                    blas.close();
                }
                stream.close();
                throw e;
            }
        }

        void close() {
            workspace.close();
            blas.close();
            stream.close();
        }
    }

    /** The steps of opening a runner, so that {@link #assemble} can undo the earlier ones when a later one fails. */
    interface Assembly<K extends CommonKernels, W extends AutoCloseable, R extends CudaModelRunner> {
        W weights(Resources res, K kernels);

        R runner(Resources res, W weights, K kernels);
    }

    /**
     * Compiles (or loads) the kernels, opens a stream and cuBLAS handle, uploads the weights and builds the runner;
     * if any step fails, what the earlier ones made is freed before the exception goes on.
     */
    static <K extends CommonKernels, W extends AutoCloseable, R extends CudaModelRunner> R assemble(
            CudaDevice device, Supplier<K> kernelsFactory, Assembly<K, W, R> steps) {
        device.makeCurrent();
        K kernels = kernelsFactory.get();
        Resources res = null;
        W weights = null;
        try {
            res = Resources.open(device);
            weights = steps.weights(res, kernels);
            return steps.runner(res, weights, kernels);
        } catch (RuntimeException | Error e) {
            try {
                if (weights != null) {
                    weights.close();
                }
            } catch (Exception suppressed) {
                e.addSuppressed(suppressed);
            }
            if (res != null) {
                res.close();
            }
            kernels.close();
            throw e;
        }
    }

    CudaModelRunner(
            Resources res,
            CommonKernels kernels,
            RwkvConfig config,
            Precision precision,
            Limits limits,
            DeviceMemory lnOutW,
            DeviceMemory lnOutB,
            DeviceMemory head) {
        this.device = res.device();
        this.stream = res.stream();
        this.blas = res.blas();
        this.kernels = kernels;
        this.config = config;
        this.precision = precision;
        this.lnOutW = lnOutW;
        this.lnOutB = lnOutB;
        this.head = head;
        this.C = config.embd();
        this.H = config.heads();
        this.F = config.ffn();
        this.maxRows = limits.maxRows();
        this.slots = limits.slots();
        this.slotFloats = RwkvState.floats(config);
        this.layerFloats = RwkvState.layerFloats(config);
        buffers.add(res.workspace());
        long R = maxRows;
        int act = precision.bytes;
        pool = alloc(4L * slots * slotFloats);
        x = alloc(4 * R * C);
        maxChunks = maxRows / CHUNK_L + slots;
        meta = alloc(4L * (2 * R + 3L * slots + 2L * maxChunks + 2L * slots));
        hidden = alloc(4L * slots * C);
        hiddenAct = alloc((long) act * slots * C);
        metaHost = device.allocPinned(4L * (2 * R + 3L * slots + 2L * maxChunks + 2L * slots));
        hiddenHost = device.allocPinned(4L * slots * C);
        stateHost = device.allocPinned(4L * slotFloats);
        description = "cuda " + device.name() + " (" + device.arch() + "), RWKV " + config.version() + ", "
                + precision.suffix + " matrices, " + maxRows + " rows x " + slots + " slots per pass";
    }

    /** Embedding and every layer over R rows of B streams; leaves the residual stream in {@link #x}. */
    abstract void forwardLayers(int R, int B, long dTokens, long dRowStream, long dStart, long dCount, long dSlot);

    /**
     * Whether this pass runs the chunked recurrence, which needs the chunk table built on the host. Never for steps
     * that may be captured as graphs (their chunk count is not a function of R and B alone).
     */
    boolean chunked(int R, int B) {
        return false;
    }

    /** Parameters in the layers (MFU counts 2 flops per body parameter per token). */
    public abstract long bodyParameters();

    /** Device bytes of the weights. */
    public abstract long weightBytes();

    /** Frees the version's weights and kernels. */
    abstract void closeModel();

    public RwkvConfig config() {
        return config;
    }

    @Override
    public int slots() {
        return slots;
    }

    public int maxRows() {
        return maxRows;
    }

    public CudaStream stream() {
        return stream;
    }

    public CudaDevice device() {
        return device;
    }

    @Override
    public String describe() {
        return description;
    }

    // ---------------------------------------------------------------- host states

    @Override
    public synchronized float[][] advance(RwkvState[] states, int[][] tokens) {
        return advance(states, tokens, false);
    }

    @Override
    public synchronized float[][] advanceToLogits(RwkvState[] states, int[][] tokens) {
        return advance(states, tokens, true);
    }

    private float[][] advance(RwkvState[] states, int[][] tokens, boolean logits) {
        if (states.length != tokens.length) {
            throw new IllegalArgumentException(states.length + " states but " + tokens.length + " token lists");
        }
        device.makeCurrent();
        float[][] out = new float[states.length][];
        List<Integer> live = new ArrayList<>();
        for (int i = 0; i < states.length; i++) {
            if (tokens[i].length > 0) {
                live.add(i);
            }
        }
        int[] scratch = reserved.isEmpty() ? null : unreserved(); // the pool's slots no owner holds
        int room = scratch == null ? slots : scratch.length;
        if (room == 0 && !live.isEmpty()) {
            throw new IllegalStateException("all " + slots + " slots of the GPU state pool are reserved by resident"
                    + " states; raise rwkv.cuda.slots");
        }
        for (int from = 0; from < live.size(); from += room) {
            int n = Math.min(room, live.size() - from);
            int[] slotIds = new int[n];
            int[][] toks = new int[n][];
            for (int j = 0; j < n; j++) {
                int i = live.get(from + j);
                slotIds[j] = scratch == null ? j : scratch[j];
                toks[j] = tokens[i];
                upload(slotIds[j], states[i]);
            }
            float[][] res = step(slotIds, toks, logits);
            for (int j = 0; j < n; j++) {
                int i = live.get(from + j);
                download(slotIds[j], states[i]);
                out[i] = res[j];
            }
        }
        return out;
    }

    // ---------------------------------------------------------------- resident states

    /** Pool slots held by {@link Resident} owners; the host-state API uses the others. */
    private final BitSet reserved = new BitSet();

    private int[] unreserved() {
        int[] ids = new int[slots - reserved.cardinality()];
        for (int i = 0, s = reserved.nextClearBit(0); i < ids.length; i++, s = reserved.nextClearBit(s + 1)) {
            ids[i] = s;
        }
        return ids;
    }

    @Override
    public synchronized ResidentStates reserve(int wanted) {
        if (wanted < 1) {
            throw new IllegalArgumentException("wanted slots must be >= 1, got " + wanted);
        }
        int free = slots - reserved.cardinality();
        if (free == 0) {
            throw new IllegalStateException("all " + slots + " slots of the GPU state pool are reserved; raise"
                    + " rwkv.cuda.slots or hold fewer resident states per owner");
        }
        int[] ids = new int[Math.min(wanted, free)];
        for (int i = 0, s = reserved.nextClearBit(0); i < ids.length; i++, s = reserved.nextClearBit(s + 1)) {
            ids[i] = s;
            reserved.set(s);
        }
        return new Resident(ids);
    }

    /** Slots of the device pool reserved for one owner: local slot i is pool slot {@code ids[i]}. */
    private final class Resident implements ResidentStates {
        private int[] ids;

        Resident(int[] ids) {
            this.ids = ids;
        }

        private int id(int slot) {
            if (ids == null) {
                throw new IllegalStateException("resident states closed");
            }
            if (slot < 0 || slot >= ids.length) {
                throw new IndexOutOfBoundsException("slot " + slot + " outside [0, " + ids.length + ")");
            }
            return ids[slot];
        }

        @Override
        public int capacity() {
            return ids.length;
        }

        @Override
        public void load(int slot, RwkvState state) {
            upload(id(slot), state);
        }

        @Override
        public void store(int slot, RwkvState state) {
            download(id(slot), state);
        }

        @Override
        public void reset(int slot) {
            CudaModelRunner.this.reset(id(slot));
        }

        @Override
        public float[][] advance(int[] slotIds, int[][] tokens) {
            if (slotIds.length != tokens.length) {
                throw new IllegalArgumentException(slotIds.length + " slots but " + tokens.length + " token lists");
            }
            float[][] out = new float[slotIds.length][];
            int live = 0;
            for (int[] t : tokens) {
                live += t.length > 0 ? 1 : 0;
            }
            int[] pool = new int[live];
            int[][] toks = new int[live][];
            BitSet seen = new BitSet();
            for (int i = 0, j = 0; i < slotIds.length; i++) {
                if (tokens[i].length > 0) {
                    if (seen.get(slotIds[i])) {
                        throw new IllegalArgumentException("slot " + slotIds[i] + " advanced twice in one call");
                    }
                    seen.set(slotIds[i]);
                    for (int token : tokens[i]) {
                        if (token < 0 || token >= config.vocab()) {
                            throw new IllegalArgumentException(
                                    "token " + token + " outside the vocabulary [0, " + config.vocab() + ")");
                        }
                    }
                    pool[j] = id(slotIds[i]);
                    toks[j++] = tokens[i];
                }
            }
            if (live > 0) {
                float[][] res = step(pool, toks, false);
                for (int i = 0, j = 0; i < slotIds.length; i++) {
                    if (tokens[i].length > 0) {
                        out[i] = res[j++];
                    }
                }
            }
            return out;
        }

        @Override
        public void close() {
            synchronized (CudaModelRunner.this) {
                if (ids != null) {
                    for (int id : ids) {
                        reserved.clear(id);
                    }
                    ids = null;
                }
            }
        }
    }

    /** Copies a host state into pool slot {@code slot}. */
    public synchronized void upload(int slot, RwkvState state) {
        checkSlot(slot);
        device.makeCurrent();
        MemorySegment.copy(state.data(), 0, stateHost.segment(), ValueLayout.JAVA_FLOAT, 0, (int) slotFloats);
        pool.copyFromHost(stateHost.segment(), 4L * slot * slotFloats, 4L * slotFloats, stream);
        stream.synchronize();
    }

    /** Copies pool slot {@code slot} into a host state. */
    public synchronized void download(int slot, RwkvState state) {
        checkSlot(slot);
        device.makeCurrent();
        pool.copyToHost(4L * slot * slotFloats, stateHost.segment(), 4L * slotFloats, stream);
        stream.synchronize();
        MemorySegment.copy(stateHost.segment(), ValueLayout.JAVA_FLOAT, 0, state.data(), 0, (int) slotFloats);
    }

    /** Resets slot {@code slot} to the initial state: zeros (and RWKV-4's running maximum pp = -1e30). */
    public synchronized void reset(int slot) {
        checkSlot(slot);
        device.makeCurrent();
        pool.fill32(4L * slot * slotFloats, slotFloats, 0, stream);
        if (config.version() == RwkvVersion.V4) {
            for (int l = 0; l < config.layers(); l++) {
                long pp = (long) slot * slotFloats + (long) l * layerFloats + 4L * C;
                pool.fill32(4L * pp, C, Float.floatToRawIntBits(RwkvState.V4_PP_INIT), stream);
            }
        }
    }

    private void checkSlot(int slot) {
        if (slot < 0 || slot >= slots) {
            throw new IndexOutOfBoundsException("slot " + slot + " outside [0, " + slots + ")");
        }
    }

    // ---------------------------------------------------------------- device-resident step

    /**
     * Advances the states in pool slots {@code slotIds[i]} by {@code tokens[i]} (all non-empty, slots distinct)
     * and returns per stream its hidden vector (C floats) or, with {@code logits}, its logits.
     */
    public synchronized float[][] step(int[] slotIds, int[][] tokens, boolean logits) {
        if (slotIds.length != tokens.length) {
            throw new IllegalArgumentException(slotIds.length + " slots but " + tokens.length + " token lists");
        }
        device.makeCurrent();
        int B = slotIds.length;
        float[][] out = new float[B][];
        int[] done = new int[B]; // tokens of stream i already run
        int next = 0; // first stream not yet finished
        while (next < B) {
            // one pass: streams in order from `next`, as many rows as fit; the last one may be split
            List<int[]> piece = new ArrayList<>(); // {stream, from, count}
            int rows = 0;
            for (int i = next; i < B && rows < maxRows && piece.size() < slots; i++) {
                int left = tokens[i].length - done[i];
                if (left <= 0) {
                    throw new IllegalArgumentException("stream " + i + " has no tokens");
                }
                int take = Math.min(left, maxRows - rows);
                piece.add(new int[] {i, done[i], take});
                rows += take;
            }
            float[][] res = pass(piece, slotIds, tokens, rows, logits);
            for (int p = 0; p < piece.size(); p++) {
                int i = piece.get(p)[0];
                done[i] += piece.get(p)[2];
                if (done[i] == tokens[i].length) {
                    out[i] = res[p];
                }
            }
            while (next < B && done[next] == tokens[next].length) {
                next++;
            }
        }
        return out;
    }

    private float[][] pass(List<int[]> piece, int[] slotIds, int[][] tokens, int R, boolean wantLogits) {
        int B = piece.size();
        MemorySegment m = metaHost.segment();
        long rowStreamOff = 4L * maxRows;
        long startOff = 8L * maxRows;
        long countOff = startOff + 4L * slots;
        long slotOff = countOff + 4L * slots;
        int r = 0;
        for (int s = 0; s < B; s++) {
            int[] p = piece.get(s);
            int[] t = tokens[p[0]];
            m.set(ValueLayout.JAVA_INT, startOff + 4L * s, r);
            m.set(ValueLayout.JAVA_INT, countOff + 4L * s, p[2]);
            m.set(ValueLayout.JAVA_INT, slotOff + 4L * s, slotIds[p[0]]);
            for (int j = 0; j < p[2]; j++, r++) {
                int id = t[p[1] + j];
                if (id < 0 || id >= config.vocab()) {
                    throw new IllegalArgumentException(
                            "token " + id + " outside the vocabulary [0, " + config.vocab() + ")");
                }
                m.set(ValueLayout.JAVA_INT, 4L * r, id);
                m.set(ValueLayout.JAVA_INT, rowStreamOff + 4L * r, s);
            }
        }
        meta.copyFromHost(m, 0, 4L * R, stream);
        meta.copyFromHost(m.asSlice(rowStreamOff), rowStreamOff, 4L * R, stream);
        meta.copyFromHost(m.asSlice(startOff), startOff, 4L * 3 * slots, stream);
        chunkCount = 0;
        if (chunked(R, B)) {
            // chunks of up to CHUNK_L tokens, stream by stream: row0, length; per stream its first chunk and count
            long row0Off = slotOff + 4L * slots;
            long lenOff = row0Off + 4L * maxChunks;
            long firstOff = lenOff + 4L * maxChunks;
            long numOff = firstOff + 4L * slots;
            int n = 0;
            for (int s = 0; s < B; s++) {
                int start = m.get(ValueLayout.JAVA_INT, startOff + 4L * s);
                int count = m.get(ValueLayout.JAVA_INT, countOff + 4L * s);
                m.set(ValueLayout.JAVA_INT, firstOff + 4L * s, n);
                int chunks = (count + CHUNK_L - 1) / CHUNK_L;
                m.set(ValueLayout.JAVA_INT, numOff + 4L * s, chunks);
                for (int c = 0; c < chunks; c++, n++) {
                    m.set(ValueLayout.JAVA_INT, row0Off + 4L * n, start + c * CHUNK_L);
                    m.set(ValueLayout.JAVA_INT, lenOff + 4L * n, Math.min(CHUNK_L, count - c * CHUNK_L));
                }
            }
            meta.copyFromHost(m.asSlice(row0Off), row0Off, 4L * (2L * maxChunks + 2L * slots), stream);
            chunkCount = n;
            dChunkRow0 = meta.address() + row0Off;
            dChunkLen = meta.address() + lenOff;
            dStreamChunk0 = meta.address() + firstOff;
            dStreamChunks = meta.address() + numOff;
        }
        long base = meta.address();
        long dTokens = base;
        long dRowStream = base + rowStreamOff;
        long dStart = base + startOff;
        long dCount = base + countOff;
        long dSlot = base + slotOff;

        if (profiling) {
            startMarks();
            forwardLayers(R, B, dTokens, dRowStream, dStart, dCount, dSlot);
            kernels.lnOutLast(
                    stream,
                    B,
                    x.address(),
                    lnOutW,
                    lnOutB,
                    LN_EPS,
                    dStart,
                    dCount,
                    hidden.address(),
                    hiddenAct.address(),
                    C);
            mark("ln_out");
            collectMarks();
        } else if (R <= GRAPH_MAX_ROWS && GRAPHS_ENABLED) {
            // small steps are bound by launch overhead: replay a captured graph of the whole step (its kernels
            // read tokens, rows and slots from `meta`, whose address is fixed, so one graph serves every step of
            // the same R and B)
            long key = ((long) R << 32) | B;
            CudaGraph g = graphs.get(key);
            if (g == null) {
                stream.beginCapture();
                try {
                    forwardLayers(R, B, dTokens, dRowStream, dStart, dCount, dSlot);
                    kernels.lnOutLast(
                            stream,
                            B,
                            x.address(),
                            lnOutW,
                            lnOutB,
                            LN_EPS,
                            dStart,
                            dCount,
                            hidden.address(),
                            hiddenAct.address(),
                            C);
                } finally {
                    g = stream.endCapture();
                }
                graphs.put(key, g);
            }
            g.launch(stream);
        } else {
            forwardLayers(R, B, dTokens, dRowStream, dStart, dCount, dSlot);
            kernels.lnOutLast(
                    stream,
                    B,
                    x.address(),
                    lnOutW,
                    lnOutB,
                    LN_EPS,
                    dStart,
                    dCount,
                    hidden.address(),
                    hiddenAct.address(),
                    C);
        }
        float[][] out = new float[B][];
        if (wantLogits) {
            int V = config.vocab();
            ensureLogits();
            // logits (V x B, col-major = B x V row-major) = head (V x C) . hidden
            if (B <= CommonKernels.GEMV_MAX_ROWS && kernels.gemvFits(C)) {
                kernels.gemv(
                        stream,
                        B,
                        new Gemv(head.address(), hiddenAct.address(), logits.address(), V, C, 0, false, false));
            } else {
                blas.gemmEx(
                        Op.T,
                        Op.N,
                        V,
                        B,
                        C,
                        1f,
                        head.address(),
                        precision.blasType,
                        C,
                        hiddenAct.address(),
                        precision.blasType,
                        C,
                        0f,
                        logits.address(),
                        Cublas.DataType.F32,
                        V);
            }
            logits.copyToHost(0, logitsHost.segment(), 4L * B * V, stream);
            stream.synchronize();
            for (int s = 0; s < B; s++) {
                out[s] = logitsHost.segment().asSlice(4L * s * V, 4L * V).toArray(ValueLayout.JAVA_FLOAT);
            }
        } else {
            hidden.copyToHost(0, hiddenHost.segment(), 4L * B * C, stream);
            stream.synchronize();
            for (int s = 0; s < B; s++) {
                out[s] = hiddenHost.segment().asSlice(4L * s * C, 4L * C).toArray(ValueLayout.JAVA_FLOAT);
            }
        }
        return out;
    }

    private void ensureLogits() {
        if (logits == null) {
            logits = alloc(4L * slots * config.vocab());
            logitsHost = device.allocPinned(4L * slots * config.vocab());
        }
    }

    /**
     * Fills every activation buffer with NaN (fp32 and bf16 NaN patterns), so that a test sees any element a
     * kernel fails to write.
     */
    synchronized void poisonBuffers() {
        device.makeCurrent();
        for (DeviceMemory b : buffers) {
            if (b != pool && b != meta) {
                b.fill32(0, b.bytes() / 4, 0x7fc07fc0, stream);
            }
        }
        stream.synchronize();
    }

    // ---------------------------------------------------------------- profile (benchmarks only)

    /** When set, steps run without graphs and record an event after each stage; {@link #profile()} sums them. */
    private boolean profiling;

    private final List<CudaEvent> events = new ArrayList<>();
    private final List<String> eventNames = new ArrayList<>();
    private final Map<String, Double> stageMillis = new LinkedHashMap<>();

    /** Starts (or stops) timing each stage of the following steps with device events. */
    public synchronized void profile(boolean on) {
        profiling = on;
        stageMillis.clear();
    }

    /** Device milliseconds per stage summed over the profiled steps, in first-seen order. */
    public synchronized Map<String, Double> profile() {
        return new LinkedHashMap<>(stageMillis);
    }

    private int marks;

    void mark(String stage) {
        if (!profiling) {
            return;
        }
        if (marks == events.size()) {
            events.add(device.newEvent());
            eventNames.add(null);
        }
        events.get(marks).record(stream);
        eventNames.set(marks, stage);
        marks++;
    }

    private void startMarks() {
        marks = 0;
        mark("start");
    }

    private void collectMarks() {
        if (!profiling) {
            return;
        }
        events.get(marks - 1).synchronize();
        for (int i = 1; i < marks; i++) {
            double ms = events.get(i).elapsedMillisSince(events.get(i - 1));
            stageMillis.merge(eventNames.get(i), ms, Double::sum);
        }
    }

    DeviceMemory alloc(long bytes) {
        DeviceMemory m = device.alloc(Math.max(bytes, 4));
        buffers.add(m);
        return m;
    }

    @Override
    public synchronized void close() {
        device.makeCurrent();
        stream.synchronize();
        for (CudaGraph g : graphs.values()) {
            g.close();
        }
        graphs.clear();
        for (CudaEvent e : events) {
            e.close();
        }
        for (DeviceMemory b : buffers) {
            b.close();
        }
        buffers.clear();
        metaHost.close();
        hiddenHost.close();
        stateHost.close();
        if (logitsHost != null) {
            logitsHost.close();
        }
        closeModel();
        blas.close();
        stream.close();
    }
}
