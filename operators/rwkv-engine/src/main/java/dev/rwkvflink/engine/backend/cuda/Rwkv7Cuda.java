package dev.rwkvflink.engine.backend.cuda;

import dev.rwkvflink.cuda.Cublas;
import dev.rwkvflink.cuda.Cublas.Op;
import dev.rwkvflink.cuda.CudaDevice;
import dev.rwkvflink.cuda.CudaGraph;
import dev.rwkvflink.cuda.CudaStream;
import dev.rwkvflink.cuda.DeviceMemory;
import dev.rwkvflink.cuda.PinnedMemory;
import dev.rwkvflink.engine.backend.cuda.Rwkv7Kernels.Gemv;
import dev.rwkvflink.engine.format.WeightFile;
import dev.rwkvflink.engine.model.ModelRunner;
import dev.rwkvflink.engine.model.RandomModels.Rwkv7Shape;
import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.model.RwkvVersion;
import dev.rwkvflink.engine.state.RwkvState;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * RWKV-7 on one GPU: many streams advanced in one step, each by its own number of tokens.
 *
 * <p>A step packs the streams' tokens into R rows (stream s owns rows {@code [start_s, start_s + count_s)}) and runs
 * every layer over all rows at once: the projections are cuBLAS products of (R x in) activations with the weight
 * matrices, so many streams turn matrix-vector work into matrix-matrix work; the per-channel operations are the
 * kernels of {@code rwkv7.cu}; the recurrence runs per (stream, head), token by token. States live in a device
 * <em>state pool</em> of slots (one stream's whole state each, the layout of {@link RwkvState}), gathered and
 * scattered by slot index, so hot states can stay on the device between steps ({@link #step}); {@link #advance}
 * moves host states through the pool.
 *
 * <p>Bounded memory: rows beyond {@code maxRows} go in further passes (a stream longer than that is split, its
 * pieces run in order), and at most {@code slots} streams per pass.
 *
 * <p>Per layer (R rows, C channels, F ffn width):
 * <pre>
 *   ln_shift_mix(ln1)        -> xr, xk, xv, xw, xa, xg              (act type; 6 x R x C)
 *   commit_shift             the slot's time-mix shift := ln1(x_last)
 *   r, k, v = W_{r,k,v} x_{r,k,v}                                 (one strided-batched GEMM)
 *   w = W2 tanh(W1 xw);  a = A2 A1 xa;  g = G2 sigmoid(G1 xg);  v_lora = V2 V1 xv   (8 small GEMMs)
 *   rwkv7_time_mix           per (stream, head), token by token: decay, learning rate, value residual, kk, k,
 *                            the WKV recurrence (the slot's state updated), GroupNorm + bonus + gate -> act type
 *   x += W_o y                                                    (GEMM, beta = 1)
 *   ln_shift_mix(ln2) -> xk; commit_shift; x += W_v relu(W_k xk)^2    (2 GEMMs, relu^2 in place)
 * </pre>
 */
public final class Rwkv7Cuda implements ModelRunner {
    private static final float LN_EPS = RwkvConfig.LAYER_NORM_EPS;
    /** Steps of at most this many rows are captured once as CUDA graphs and replayed (property rwkv.cuda.graphs). */
    static final int GRAPH_MAX_ROWS = 64;
    private static final boolean GRAPHS_ENABLED = Boolean.parseBoolean(System.getProperty("rwkv.cuda.graphs", "true"));
    private static final int GRAPH_CACHE = 64;
    /** cuBLAS workspace: set explicitly so that products can be captured into graphs. */
    private static final long BLAS_WORKSPACE = 32L << 20;

    private final CudaDevice device;
    private final CudaStream stream;
    private final Cublas blas;
    private final Rwkv7Kernels k;
    private final Rwkv7Weights w;
    private final RwkvConfig config;
    private final Precision precision;
    private final int C;
    private final int H;
    private final int F;
    private final int maxRows;
    private final int slots;
    private final long slotFloats;
    private final int layerFloats;

    private final List<DeviceMemory> buffers = new ArrayList<>();
    private final DeviceMemory pool;
    private final DeviceMemory x;        // R x C fp32 residual stream
    private final DeviceMemory mix;      // 6 x R x C act: xr, xk, xv, xw, xa, xg
    private final DeviceMemory rkv;      // 3 x R x C fp32: r, k, v
    private final DeviceMemory lora;     // R x maxRank fp32
    private final DeviceMemory loraAct;  // 4 x R x maxRank act (w, a, g, v: the small-batch path runs them at once)
    private final int maxRank;
    /** Whether every product's shape suits the small-batch kernel (property rwkv.cuda.smallProducts). */
    private final boolean gemvFits;
    /** Largest matrix (elements) the small-batch kernel takes; bigger ones go to cuBLAS at every batch size. */
    static final long GEMV_MAX_ELEMENTS = 1L << 22;
    private static final String TIME_MIX = System.getProperty("rwkv.cuda.timeMix", "auto");
    private static final boolean SMALL_PRODUCTS = Boolean.parseBoolean(System.getProperty("rwkv.cuda.smallProducts", "true"));
    private final DeviceMemory dw;       // R x C fp32: decay
    private final DeviceMemory da;       // learning rate
    private final DeviceMemory dg;       // gate
    private final DeviceMemory dvl;      // value-residual lora
    private final DeviceMemory vFirst;
    private final DeviceMemory kk;       // R x C fp32 (split time mix)
    private final DeviceMemory att;      // R x C fp32: the recurrence's raw output (split time mix)
    private final DeviceMemory gated;    // R x C act: the time mix's output, W_o's input
    private final DeviceMemory ffnAct;   // R x F act: relu(W_k xk)^2
    private final DeviceMemory meta;     // ints: tokens[maxRows], rowStream[maxRows], start/count/slot[slots]
    private final DeviceMemory hidden;   // slots x C fp32
    private final DeviceMemory hiddenAct;
    private final PinnedMemory metaHost;
    private final PinnedMemory hiddenHost;
    private final PinnedMemory stateHost; // one state
    private DeviceMemory logits;          // lazily: slots x vocab fp32
    private PinnedMemory logitsHost;
    private final String description;
    /** Captured steps by (rows, streams), least recently used first. */
    private final java.util.LinkedHashMap<Long, CudaGraph> graphs = new java.util.LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(java.util.Map.Entry<Long, CudaGraph> eldest) {
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
                throw new IllegalArgumentException("limits must be positive: " + maxRows + " rows, " + slots + " slots");
            }
        }

        public static Limits defaults() {
            return new Limits(Integer.getInteger("rwkv.cuda.maxRows", 16_384), Integer.getInteger("rwkv.cuda.slots", 256));
        }
    }

    private Rwkv7Cuda(CudaDevice device, Rwkv7Weights weights, RwkvConfig config, Rwkv7Kernels kernels,
                      CudaStream stream, Cublas blas, Limits limits) {
        this.device = device;
        this.w = weights;
        this.config = config;
        this.k = kernels;
        this.stream = stream;
        this.blas = blas;
        this.precision = weights.precision;
        this.C = config.embd();
        this.H = config.heads();
        this.F = config.ffn();
        this.maxRows = limits.maxRows();
        this.slots = limits.slots();
        this.slotFloats = RwkvState.floats(config);
        this.layerFloats = RwkvState.layerFloats(config);
        int act = precision.bytes;
        long R = maxRows;
        int rank = Math.max(Math.max(w.decayRank, w.aRank), Math.max(w.vRank, w.gateRank));
        pool = alloc(4L * slots * slotFloats);
        x = alloc(4 * R * C);
        mix = alloc(6L * act * R * C);
        rkv = alloc(3 * 4 * R * C);
        lora = alloc(4 * R * rank);
        loraAct = alloc(4 * act * R * rank);
        maxRank = rank;
        gemvFits = SMALL_PRODUCTS && kernels.gemvFits(C) && kernels.gemvFits(F) && kernels.gemvFits(w.decayRank)
                && kernels.gemvFits(w.aRank) && kernels.gemvFits(w.gateRank) && (w.vRank == 0 || kernels.gemvFits(w.vRank));
        dw = alloc(4 * R * C);
        da = alloc(4 * R * C);
        dg = alloc(4 * R * C);
        dvl = alloc(4 * R * C);
        vFirst = alloc(4 * R * C);
        kk = alloc(4 * R * C);
        att = alloc(4 * R * C);
        gated = alloc(act * R * C);
        ffnAct = alloc(act * R * F);
        meta = alloc(4L * (2 * R + 3L * slots));
        hidden = alloc(4L * slots * C);
        hiddenAct = alloc((long) act * slots * C);
        metaHost = device.allocPinned(4L * (2 * R + 3L * slots));
        hiddenHost = device.allocPinned(4L * slots * C);
        stateHost = device.allocPinned(4L * slotFloats);
        description = "cuda " + device.name() + " (" + device.arch() + "), " + precision.suffix + " matrices, "
                + maxRows + " rows x " + slots + " slots per pass";
    }

    /** Uploads an RWKV-7 model's weights and allocates a runner for it. */
    public static Rwkv7Cuda open(CudaDevice device, WeightFile file, RwkvConfig config, Precision precision,
                                 Limits limits) {
        requireV7(config);
        return build(device, config, precision, limits, (s, kern) -> Rwkv7Weights.upload(file, config, precision,
                device, s, kern));
    }

    /** A runner over random weights of {@code shape} drawn on the device (benchmarks). */
    public static Rwkv7Cuda random(CudaDevice device, Rwkv7Shape shape, long seed, Precision precision, Limits limits) {
        RwkvConfig config = new RwkvConfig(RwkvVersion.V7, shape.layers(), shape.embd(), shape.embd() / shape.headSize(),
                shape.headSize(), shape.vocab(), shape.ffn(), 64e-5f, dev.rwkvflink.engine.tensor.WeightType.BF16);
        return build(device, config, precision, limits, (s, kern) -> Rwkv7Weights.random(shape, seed, precision,
                device, s, kern));
    }

    private interface WeightLoader {
        Rwkv7Weights load(CudaStream s, Rwkv7Kernels k);
    }

    private static Rwkv7Cuda build(CudaDevice device, RwkvConfig config, Precision precision, Limits limits,
                                   WeightLoader loader) {
        device.makeCurrent();
        Rwkv7Kernels kernels = new Rwkv7Kernels(device, precision, config.headSize());
        CudaStream stream = device.newStream();
        Cublas blas = Cublas.create(device);
        Rwkv7Weights weights = null;
        DeviceMemory workspace = null;
        try {
            blas.setStream(stream);
            workspace = device.alloc(BLAS_WORKSPACE);
            blas.setWorkspace(workspace);
            weights = loader.load(stream, kernels);
            Rwkv7Cuda r = new Rwkv7Cuda(device, weights, config, kernels, stream, blas, limits);
            r.buffers.add(workspace);
            return r;
        } catch (RuntimeException | Error e) {
            if (weights != null) {
                weights.close();
            }
            if (workspace != null) {
                workspace.close();
            }
            blas.close();
            stream.close();
            kernels.close();
            throw e;
        }
    }

    static void requireV7(RwkvConfig config) {
        if (config.version() != RwkvVersion.V7) {
            throw new IllegalArgumentException("the CUDA runner implements RWKV-7 only, not " + config.version());
        }
    }

    public RwkvConfig config() {
        return config;
    }

    public int slots() {
        return slots;
    }

    public int maxRows() {
        return maxRows;
    }

    /** Parameters in the layers (MFU counts 2 flops per body parameter per token). */
    public long bodyParameters() {
        return w.bodyParameters();
    }

    /** Device bytes of the weights. */
    public long weightBytes() {
        return w.deviceBytes();
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
        for (int from = 0; from < live.size(); from += slots) {
            int n = Math.min(slots, live.size() - from);
            int[] slotIds = new int[n];
            int[][] toks = new int[n][];
            for (int j = 0; j < n; j++) {
                int i = live.get(from + j);
                slotIds[j] = j;
                toks[j] = tokens[i];
                upload(j, states[i]);
            }
            float[][] res = step(slotIds, toks, logits);
            for (int j = 0; j < n; j++) {
                int i = live.get(from + j);
                download(j, states[i]);
                out[i] = res[j];
            }
        }
        return out;
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

    /** Resets slot {@code slot} to the initial (all-zero) RWKV-7 state. */
    public synchronized void reset(int slot) {
        checkSlot(slot);
        device.makeCurrent();
        pool.fill32(4L * slot * slotFloats, slotFloats, 0, stream);
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
        int[] done = new int[B];         // tokens of stream i already run
        int next = 0;                    // first stream not yet finished
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
                    throw new IllegalArgumentException("token " + id + " outside the vocabulary [0, " + config.vocab() + ")");
                }
                m.set(ValueLayout.JAVA_INT, 4L * r, id);
                m.set(ValueLayout.JAVA_INT, rowStreamOff + 4L * r, s);
            }
        }
        meta.copyFromHost(m, 0, 4L * R, stream);
        meta.copyFromHost(m.asSlice(rowStreamOff), rowStreamOff, 4L * R, stream);
        meta.copyFromHost(m.asSlice(startOff), startOff, 4L * 3 * slots, stream);
        long base = meta.address();
        long dTokens = base;
        long dRowStream = base + rowStreamOff;
        long dStart = base + startOff;
        long dCount = base + countOff;
        long dSlot = base + slotOff;

        if (profiling) {
            startMarks();
            forwardLayers(R, B, dTokens, dRowStream, dStart, dCount, dSlot);
            k.lnOutLast(stream, B, x.address(), w.lnOutW, w.lnOutB, LN_EPS, dStart, dCount, hidden.address(),
                    hiddenAct.address(), C);
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
                    k.lnOutLast(stream, B, x.address(), w.lnOutW, w.lnOutB, LN_EPS, dStart, dCount,
                            hidden.address(), hiddenAct.address(), C);
                } finally {
                    g = stream.endCapture();
                }
                graphs.put(key, g);
            }
            g.launch(stream);
        } else {
            forwardLayers(R, B, dTokens, dRowStream, dStart, dCount, dSlot);
            k.lnOutLast(stream, B, x.address(), w.lnOutW, w.lnOutB, LN_EPS, dStart, dCount, hidden.address(),
                    hiddenAct.address(), C);
        }
        float[][] out = new float[B][];
        if (wantLogits) {
            int V = config.vocab();
            ensureLogits();
            // logits (V x B, col-major = B x V row-major) = head (V x C) . hidden
            if (B <= Rwkv7Kernels.GEMV_MAX_ROWS && gemvFits) {
                k.gemv(stream, B, new Gemv(w.head.address(), hiddenAct.address(), logits.address(), V, C, 0, false,
                        false));
            } else {
                blas.gemmEx(Op.T, Op.N, V, B, C, 1f, w.head.address(), precision.blasType, C, hiddenAct.address(),
                        precision.blasType, C, 0f, logits.address(), Cublas.DataType.F32, V);
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

    /** Embedding and every layer over R rows of B streams; leaves the residual stream in {@link #x}. */
    private void forwardLayers(int R, int B, long dTokens, long dRowStream, long dStart, long dCount, long dSlot) {
        Cublas.DataType act = precision.blasType;
        long actBytes = precision.bytes;
        long RC = (long) R * C;
        long xa = x.address();
        long poolA = pool.address();
        long mixA = mix.address();
        long rA = rkv.address();
        long kA = rA + 4 * RC;
        long vA = rA + 8 * RC;
        k.embedLn0(stream, R, dTokens, w.emb, w.ln0w, w.ln0b, xa, C, LN_EPS);
        mark("embed");
        // decode-sized steps: the small-batch products (fewer, cheaper launches than cuBLAS at R <= 8)
        boolean small = R <= Rwkv7Kernels.GEMV_MAX_ROWS && gemvFits;
        boolean split = splitTimeMix(R, B);
        // big matrices stream faster through cuBLAS even for one row; the small kernel wins below a few MB
        boolean smallSquare = small && (long) C * C <= GEMV_MAX_ELEMENTS;
        boolean smallFfn = small && (long) C * F <= GEMV_MAX_ELEMENTS;
        for (int l = 0; l < config.layers(); l++) {
            Rwkv7Weights.Layer y = w.layer[l];
            int attShift = l * layerFloats;
            int ffnShift = attShift + C;
            int wkvOff = attShift + 2 * C;
            // time mix; when every stream has one row (decode) the mix kernel also saves the shift
            boolean oneRowEach = R == B;
            k.lnShiftMix(stream, R, xa, y.ln1w, y.ln1b, LN_EPS, poolA, slotFloats, attShift, dRowStream, dStart, dSlot,
                    y.mix, 6, mixA, RC, C, oneRowEach);
            if (!oneRowEach) {
                k.commitShift(stream, B, xa, y.ln1w, y.ln1b, LN_EPS, poolA, slotFloats, attShift, dStart, dCount,
                        dSlot, C);
            }
            mark("ln1+mix");
            long xw = mixA + 3 * actBytes * RC;
            long xaIn = mixA + 4 * actBytes * RC;
            long xg = mixA + 5 * actBytes * RC;
            long xv = mixA + 2 * actBytes * RC;
            if (smallSquare) {
                long cc = (long) C * C * actBytes;
                long rkvW = y.rkv.address();
                k.gemv(stream, R, new Gemv(rkvW, mixA, rA, C, C, 0, false, false),
                        new Gemv(rkvW + cc, mixA + actBytes * RC, kA, C, C, 0, false, false),
                        new Gemv(rkvW + 2 * cc, xv, vA, C, C, 0, false, false));
            } else {
                blas.gemmStridedBatchedEx(Op.T, Op.N, C, R, C, 1f, y.rkv.address(), act, C, (long) C * C,
                        mixA, act, C, RC, 0f, rA, Cublas.DataType.F32, C, RC, 3);
            }
            mark("gemm rkv");
            if (small) {
                long la = loraAct.address();
                long slice = actBytes * R * maxRank;
                Gemv w1 = new Gemv(y.w1.address(), xw, la, w.decayRank, C, 1, true, false);
                Gemv a1 = new Gemv(y.a1.address(), xaIn, la + slice, w.aRank, C, 0, true, false);
                Gemv g1 = new Gemv(y.g1.address(), xg, la + 2 * slice, w.gateRank, C, 2, true, false);
                Gemv w2 = new Gemv(y.w2.address(), la, dw.address(), C, w.decayRank, 0, false, false);
                Gemv a2 = new Gemv(y.a2.address(), la + slice, da.address(), C, w.aRank, 0, false, false);
                Gemv g2 = new Gemv(y.g2.address(), la + 2 * slice, dg.address(), C, w.gateRank, 0, false, false);
                if (l > 0) {
                    k.gemv(stream, R, w1, a1, g1, new Gemv(y.v1.address(), xv, la + 3 * slice, w.vRank, C, 0, true, false));
                    k.gemv(stream, R, w2, a2, g2, new Gemv(y.v2.address(), la + 3 * slice, dvl.address(), C, w.vRank,
                            0, false, false));
                } else {
                    k.gemv(stream, R, w1, a1, g1);
                    k.gemv(stream, R, w2, a2, g2);
                }
            } else {
                lora(R, y.w1, y.w2, w.decayRank, xw, 1, dw.address());
                lora(R, y.a1, y.a2, w.aRank, xaIn, 0, da.address());
                lora(R, y.g1, y.g2, w.gateRank, xg, 2, dg.address());
                if (l > 0) {
                    lora(R, y.v1, y.v2, w.vRank, xv, 0, dvl.address());
                }
            }
            mark("lora");
            if (split) {
                k.prep(stream, R, H, dw.address(), da.address(), kA, kk.address(), vA, vFirst.address(), dvl.address(),
                        y, l == 0, C);
                k.scan(stream, B, H, rA, dw.address(), kA, kk.address(), da.address(), vA, att.address(), poolA,
                        slotFloats, wkvOff, dStart, dCount, dSlot, C);
                k.gate(stream, R, H, att.address(), rA, kA, vA, dg.address(), y, config.groupNormEps(),
                        gated.address(), C);
            } else {
                k.timeMix(stream, B, H, rA, kA, vA, dw.address(), da.address(), dg.address(), dvl.address(),
                        vFirst.address(), y, l == 0, config.groupNormEps(), gated.address(), poolA, slotFloats, wkvOff,
                        dStart, dCount, dSlot, C);
            }
            mark("time mix (wkv)");
            if (smallSquare) {
                k.gemv(stream, R, new Gemv(y.output.address(), gated.address(), xa, C, C, 0, false, true));
            } else {
                blas.gemmEx(Op.T, Op.N, C, R, C, 1f, y.output.address(), act, C, gated.address(), act, C, 1f, xa,
                        Cublas.DataType.F32, C);
            }
            mark("gemm output");
            // channel mix
            k.lnShiftMix(stream, R, xa, y.ln2w, y.ln2b, LN_EPS, poolA, slotFloats, ffnShift, dRowStream, dStart, dSlot,
                    y.ffnMix, 1, mixA, RC, C, oneRowEach);
            if (!oneRowEach) {
                k.commitShift(stream, B, xa, y.ln2w, y.ln2b, LN_EPS, poolA, slotFloats, ffnShift, dStart, dCount,
                        dSlot, C);
            }
            mark("ln2+mix");
            if (smallFfn) {
                k.gemv(stream, R, new Gemv(y.ffnKey.address(), mixA, ffnAct.address(), F, C, 3, true, false));
                mark("gemm ffn key");
                k.gemv(stream, R, new Gemv(y.ffnValue.address(), ffnAct.address(), xa, C, F, 0, false, true));
            } else {
                blas.gemmEx(Op.T, Op.N, F, R, C, 1f, y.ffnKey.address(), act, C, mixA, act, C, 0f, ffnAct.address(),
                        act, F);
                mark("gemm ffn key");
                k.reluSq(stream, ffnAct.address(), (long) R * F);
                mark("relu^2");
                blas.gemmEx(Op.T, Op.N, C, R, F, 1f, y.ffnValue.address(), act, F, ffnAct.address(), act, F, 1f, xa,
                        Cublas.DataType.F32, C);
            }
            mark("gemm ffn value");
        }
    }

    /**
     * Whether a step runs the time mix split in three kernels rather than fused: when few (stream, head) blocks
     * would each scan many tokens (a long prefill), the scan's per-token latency decides, so everything that is not
     * the recurrence itself moves out of the sequential loop. Property {@code rwkv.cuda.timeMix}: auto, fused, split.
     */
    private boolean splitTimeMix(int R, int B) {
        return switch (TIME_MIX) {
            case "fused" -> false;
            case "split" -> true;
            default -> (long) B * H <= 2L * device.multiprocessors() && R >= 16L * B;
        };
    }

    /**
     * {@code out = M2 f(M1 in)} over R rows: M1 is rank x C, M2 is C x rank; f by activation mode (0 identity,
     * 1 tanh, 2 sigmoid). The identity case writes M1's product straight in the act type.
     */
    private void lora(int R, DeviceMemory m1, DeviceMemory m2, int rank, long in, int mode, long out) {
        Cublas.DataType act = precision.blasType;
        if (mode == 0) {
            blas.gemmEx(Op.T, Op.N, rank, R, C, 1f, m1.address(), act, C, in, act, C, 0f, loraAct.address(), act, rank);
        } else {
            blas.gemmEx(Op.T, Op.N, rank, R, C, 1f, m1.address(), act, C, in, act, C, 0f, lora.address(),
                    Cublas.DataType.F32, rank);
            k.activate(stream, lora.address(), loraAct.address(), (long) R * rank, mode);
        }
        blas.gemmEx(Op.T, Op.N, C, R, rank, 1f, m2.address(), act, rank, loraAct.address(), act, rank, 0f, out,
                Cublas.DataType.F32, C);
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
    private final List<dev.rwkvflink.cuda.CudaEvent> events = new ArrayList<>();
    private final List<String> eventNames = new ArrayList<>();
    private final java.util.Map<String, Double> stageMillis = new java.util.LinkedHashMap<>();

    /** Starts (or stops) timing each stage of the following steps with device events. */
    public synchronized void profile(boolean on) {
        profiling = on;
        stageMillis.clear();
    }

    /** Device milliseconds per stage summed over the profiled steps, in first-seen order. */
    public synchronized java.util.Map<String, Double> profile() {
        return new java.util.LinkedHashMap<>(stageMillis);
    }

    private int marks;

    private void mark(String stage) {
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

    private DeviceMemory alloc(long bytes) {
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
        for (dev.rwkvflink.cuda.CudaEvent e : events) {
            e.close();
        }
        graphs.clear();
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
        w.close();
        blas.close();
        k.close();
        stream.close();
    }
}
