package dev.rwkvflink.engine.backend.cuda;

import dev.rwkvflink.cuda.Cublas;
import dev.rwkvflink.cuda.Cublas.Op;
import dev.rwkvflink.cuda.CudaDevice;
import dev.rwkvflink.cuda.DeviceMemory;
import dev.rwkvflink.engine.backend.cuda.CommonKernels.Gemv;
import dev.rwkvflink.engine.format.WeightFile;
import dev.rwkvflink.engine.model.RandomModels.Rwkv7Shape;
import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.model.RwkvVersion;
import dev.rwkvflink.engine.tensor.WeightType;

/**
 * RWKV-7 on one GPU (the machinery of steps, passes, state pool and graphs is {@link CudaModelRunner}'s).
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
 *
 * <p>Over 500 lines: the layer's step is one sequence of launches (above) whose buffers and choices (chunked scan or
 * token by token, small-batch or cuBLAS products, dependent launches) are read best together; what it shares with
 * {@link Rwkv456Cuda} moves to a common base in the same GPU-checked split as {@link CudaModelRunner}'s.
 */
public final class Rwkv7Cuda extends CudaModelRunner {
    private static final String TIME_MIX = System.getProperty("rwkv.cuda.timeMix", "auto");

    private final Rwkv7Kernels k;
    private final Rwkv7Weights w;
    private final DeviceMemory mix; // 6 x R x C act: xr, xk, xv, xw, xa, xg
    private final DeviceMemory rkv; // 3 x R x C fp32: r, k, v
    private final DeviceMemory lora; // R x maxRank fp32
    private final DeviceMemory loraAct; // 4 x R x maxRank act (w, a, g, v: the small-batch path runs them at once)
    private final int maxRank;
    /** Whether every product's shape suits the small-batch kernel (property rwkv.cuda.smallProducts). */
    private final boolean gemvFits;

    private final DeviceMemory dw; // R x C fp32: decay
    private final DeviceMemory da; // learning rate
    private final DeviceMemory dg; // gate
    private final DeviceMemory dvl; // value-residual lora
    private final DeviceMemory vFirst;
    private final DeviceMemory kk; // R x C fp32 (split time mix)
    private final DeviceMemory att; // R x C fp32: the recurrence's raw output (split time mix)
    private final DeviceMemory gated; // R x C act: the time mix's output, W_o's input
    private final DeviceMemory ffnAct; // R x F act: relu(W_k xk)^2
    private DeviceMemory chunkScratch; // lazily, see chunkScratch()

    private Rwkv7Cuda(Resources res, Rwkv7Weights weights, RwkvConfig config, Rwkv7Kernels kernels, Limits limits) {
        super(res, kernels, config, weights.precision, limits, weights.lnOutW, weights.lnOutB, weights.head);
        this.w = weights;
        this.k = kernels;
        int act = precision.bytes;
        long R = maxRows;
        int rank = Math.max(Math.max(w.decayRank, w.aRank), Math.max(w.vRank, w.gateRank));
        mix = alloc(6L * act * R * C);
        rkv = alloc(3 * 4 * R * C);
        lora = alloc(4 * R * rank);
        loraAct = alloc(4 * act * R * rank);
        maxRank = rank;
        gemvFits = SMALL_PRODUCTS
                && kernels.gemvFits(C)
                && kernels.gemvFits(F)
                && kernels.gemvFits(w.decayRank)
                && kernels.gemvFits(w.aRank)
                && kernels.gemvFits(w.gateRank)
                && (w.vRank == 0 || kernels.gemvFits(w.vRank));
        dw = alloc(4 * R * C);
        da = alloc(4 * R * C);
        dg = alloc(4 * R * C);
        dvl = alloc(4 * R * C);
        vFirst = alloc(4 * R * C);
        kk = alloc(4 * R * C);
        att = alloc(4 * R * C);
        gated = alloc(act * R * C);
        ffnAct = alloc(act * R * F);
    }

    /** Uploads an RWKV-7 model's weights and allocates a runner for it. */
    public static Rwkv7Cuda open(
            CudaDevice device, WeightFile file, RwkvConfig config, Precision precision, Limits limits) {
        requireV7(config);
        return build(
                device,
                config,
                precision,
                limits,
                (res, kern) -> Rwkv7Weights.upload(file, config, precision, device, res.stream(), kern));
    }

    /** A runner over random weights of {@code shape} drawn on the device (benchmarks). */
    public static Rwkv7Cuda random(CudaDevice device, Rwkv7Shape shape, long seed, Precision precision, Limits limits) {
        RwkvConfig config = shape.config(WeightType.BF16);
        return build(
                device,
                config,
                precision,
                limits,
                (res, kern) -> Rwkv7Weights.random(shape, seed, precision, device, res.stream(), kern));
    }

    private interface WeightLoader {
        Rwkv7Weights load(Resources res, Rwkv7Kernels k);
    }

    private static Rwkv7Cuda build(
            CudaDevice device, RwkvConfig config, Precision precision, Limits limits, WeightLoader loader) {
        return assemble(
                device,
                () -> new Rwkv7Kernels(device, precision, config.headSize()),
                new Assembly<Rwkv7Kernels, Rwkv7Weights, Rwkv7Cuda>() {
                    @Override
                    public Rwkv7Weights weights(Resources res, Rwkv7Kernels kernels) {
                        return loader.load(res, kernels);
                    }

                    @Override
                    public Rwkv7Cuda runner(Resources res, Rwkv7Weights weights, Rwkv7Kernels kernels) {
                        return new Rwkv7Cuda(res, weights, config, kernels, limits);
                    }
                });
    }

    static void requireV7(RwkvConfig config) {
        if (config.version() != RwkvVersion.V7) {
            throw new IllegalArgumentException("Rwkv7Cuda runs RWKV-7 only, not " + config.version());
        }
    }

    @Override
    public long bodyParameters() {
        return w.bodyParameters();
    }

    @Override
    public long weightBytes() {
        return w.deviceBytes();
    }

    @Override
    void closeModel() {
        w.close();
        k.close();
    }

    /** Embedding and every layer over R rows of B streams; leaves the residual stream in {@link #x}. */
    @Override
    void forwardLayers(int R, int B, long dTokens, long dRowStream, long dStart, long dCount, long dSlot) {
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
        boolean small = R <= CommonKernels.GEMV_MAX_ROWS && gemvFits;
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
            k.lnShiftMix(
                    stream,
                    R,
                    xa,
                    y.ln1w,
                    y.ln1b,
                    LN_EPS,
                    poolA,
                    slotFloats,
                    attShift,
                    dRowStream,
                    dStart,
                    dSlot,
                    y.mix.address(),
                    6,
                    0L,
                    mixA,
                    RC,
                    C,
                    oneRowEach);
            if (!oneRowEach) {
                k.commitShift(
                        stream, B, xa, y.ln1w, y.ln1b, LN_EPS, poolA, slotFloats, attShift, dStart, dCount, dSlot, C);
            }
            mark("ln1+mix");
            long xw = mixA + 3 * actBytes * RC;
            long xaIn = mixA + 4 * actBytes * RC;
            long xg = mixA + 5 * actBytes * RC;
            long xv = mixA + 2 * actBytes * RC;
            if (smallSquare) {
                long cc = (long) C * C * actBytes;
                long rkvW = y.rkv.address();
                k.gemv(
                        stream,
                        R,
                        new Gemv(rkvW, mixA, rA, C, C, 0, false, false),
                        new Gemv(rkvW + cc, mixA + actBytes * RC, kA, C, C, 0, false, false),
                        new Gemv(rkvW + 2 * cc, xv, vA, C, C, 0, false, false));
            } else {
                blas.gemmStridedBatchedEx(
                        Op.T,
                        Op.N,
                        C,
                        R,
                        C,
                        1f,
                        y.rkv.address(),
                        act,
                        C,
                        (long) C * C,
                        mixA,
                        act,
                        C,
                        RC,
                        0f,
                        rA,
                        Cublas.DataType.F32,
                        C,
                        RC,
                        3);
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
                    k.gemv(
                            stream,
                            R,
                            w1,
                            a1,
                            g1,
                            new Gemv(y.v1.address(), xv, la + 3 * slice, w.vRank, C, 0, true, false));
                    k.gemv(
                            stream,
                            R,
                            w2,
                            a2,
                            g2,
                            new Gemv(y.v2.address(), la + 3 * slice, dvl.address(), C, w.vRank, 0, false, false));
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
            if (chunkCount > 0) {
                // long sequences of few streams: per-channel preparation over all rows, the chunked recurrence,
                // GroupNorm + gate over all rows
                k.prep(
                        stream,
                        R,
                        H,
                        dw.address(),
                        da.address(),
                        kA,
                        kk.address(),
                        vA,
                        vFirst.address(),
                        dvl.address(),
                        y,
                        l == 0,
                        C);
                long sc = chunkScratch().address();
                mark("prep");
                k.chunkLocal(
                        stream,
                        chunkCount,
                        H,
                        rA,
                        dw.address(),
                        kA,
                        kk.address(),
                        da.address(),
                        dChunkRow0,
                        dChunkLen,
                        sc,
                        C);
                mark("chunks: local");
                k.chunkState(
                        stream,
                        B,
                        H,
                        vA,
                        poolA,
                        slotFloats,
                        wkvOff,
                        dSlot,
                        dStreamChunk0,
                        dStreamChunks,
                        dChunkRow0,
                        dChunkLen,
                        sc,
                        C);
                mark("chunks: state");
                k.chunkOut(stream, chunkCount, H, vA, dChunkRow0, dChunkLen, sc, att.address(), C);
                mark("chunks: out");
                k.gate(
                        stream,
                        R,
                        H,
                        att.address(),
                        rA,
                        kA,
                        vA,
                        dg.address(),
                        y,
                        config.groupNormEps(),
                        gated.address(),
                        C);
            } else if (split) {
                k.prep(
                        stream,
                        R,
                        H,
                        dw.address(),
                        da.address(),
                        kA,
                        kk.address(),
                        vA,
                        vFirst.address(),
                        dvl.address(),
                        y,
                        l == 0,
                        C);
                k.scan(
                        stream,
                        B,
                        H,
                        rA,
                        dw.address(),
                        kA,
                        kk.address(),
                        da.address(),
                        vA,
                        att.address(),
                        poolA,
                        slotFloats,
                        wkvOff,
                        dStart,
                        dCount,
                        dSlot,
                        C);
                k.gate(
                        stream,
                        R,
                        H,
                        att.address(),
                        rA,
                        kA,
                        vA,
                        dg.address(),
                        y,
                        config.groupNormEps(),
                        gated.address(),
                        C);
            } else if (oneRowEach) {
                k.timeMixOne(
                        stream,
                        B,
                        H,
                        rA,
                        kA,
                        vA,
                        dw.address(),
                        da.address(),
                        dg.address(),
                        dvl.address(),
                        vFirst.address(),
                        y,
                        l == 0,
                        config.groupNormEps(),
                        gated.address(),
                        poolA,
                        slotFloats,
                        wkvOff,
                        dStart,
                        dSlot,
                        C);
            } else {
                k.timeMix(
                        stream,
                        B,
                        H,
                        rA,
                        kA,
                        vA,
                        dw.address(),
                        da.address(),
                        dg.address(),
                        dvl.address(),
                        vFirst.address(),
                        y,
                        l == 0,
                        config.groupNormEps(),
                        gated.address(),
                        poolA,
                        slotFloats,
                        wkvOff,
                        dStart,
                        dCount,
                        dSlot,
                        C);
            }
            mark("time mix (wkv)");
            if (smallSquare) {
                k.gemv(stream, R, new Gemv(y.output.address(), gated.address(), xa, C, C, 0, false, true));
            } else {
                blas.gemmEx(
                        Op.T,
                        Op.N,
                        C,
                        R,
                        C,
                        1f,
                        y.output.address(),
                        act,
                        C,
                        gated.address(),
                        act,
                        C,
                        1f,
                        xa,
                        Cublas.DataType.F32,
                        C);
            }
            mark("gemm output");
            // channel mix
            k.lnShiftMix(
                    stream,
                    R,
                    xa,
                    y.ln2w,
                    y.ln2b,
                    LN_EPS,
                    poolA,
                    slotFloats,
                    ffnShift,
                    dRowStream,
                    dStart,
                    dSlot,
                    y.ffnMix.address(),
                    1,
                    0L,
                    mixA,
                    RC,
                    C,
                    oneRowEach);
            if (!oneRowEach) {
                k.commitShift(
                        stream, B, xa, y.ln2w, y.ln2b, LN_EPS, poolA, slotFloats, ffnShift, dStart, dCount, dSlot, C);
            }
            mark("ln2+mix");
            if (smallFfn) {
                k.gemv(stream, R, new Gemv(y.ffnKey.address(), mixA, ffnAct.address(), F, C, 3, true, false));
                mark("gemm ffn key");
                k.gemv(stream, R, new Gemv(y.ffnValue.address(), ffnAct.address(), xa, C, F, 0, false, true));
            } else {
                blas.gemmEx(
                        Op.T,
                        Op.N,
                        F,
                        R,
                        C,
                        1f,
                        y.ffnKey.address(),
                        act,
                        C,
                        mixA,
                        act,
                        C,
                        0f,
                        ffnAct.address(),
                        act,
                        F);
                mark("gemm ffn key");
                k.reluSq(stream, ffnAct.address(), (long) R * F);
                mark("relu^2");
                blas.gemmEx(
                        Op.T,
                        Op.N,
                        C,
                        R,
                        F,
                        1f,
                        y.ffnValue.address(),
                        act,
                        F,
                        ffnAct.address(),
                        act,
                        F,
                        1f,
                        xa,
                        Cublas.DataType.F32,
                        C);
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
            case "fused", "chunked" -> false;
            case "split" -> true;
            default -> fewLongStreams(R, B);
        };
    }

    /**
     * The chunked recurrence (see rwkv7.cu): for few, long streams, where the per-token scan would leave most of
     * the GPU idle. Property {@code rwkv.cuda.timeMix}: auto (this rule), chunked (whenever the step is not
     * captured as a graph), split, fused.
     */
    @Override
    boolean chunked(int R, int B) {
        if (R <= GRAPH_MAX_ROWS) {
            return false;
        }
        return switch (TIME_MIX) {
            case "chunked" -> true;
            case "auto" -> fewLongStreams(R, B);
            default -> false;
        };
    }

    private boolean fewLongStreams(int R, int B) {
        return (long) B * H <= 2L * device.multiprocessors() && R >= 16L * B;
    }

    /** Scratch of the chunked recurrence, allocated on first use: per (chunk, head) P, K~, Z, A and S_start. */
    private DeviceMemory chunkScratch() {
        if (chunkScratch == null) {
            int streams =
                    TIME_MIX.equals("chunked") ? slots : (int) Math.min(slots, 2L * device.multiprocessors() / H + 1);
            long chunks = maxRows / CHUNK_L + streams;
            chunkScratch = alloc(4L * chunks * H * k.chunkScratchFloats());
        }
        return chunkScratch;
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
            blas.gemmEx(
                    Op.T,
                    Op.N,
                    rank,
                    R,
                    C,
                    1f,
                    m1.address(),
                    act,
                    C,
                    in,
                    act,
                    C,
                    0f,
                    lora.address(),
                    Cublas.DataType.F32,
                    rank);
            k.activate(stream, lora.address(), loraAct.address(), (long) R * rank, mode);
        }
        blas.gemmEx(
                Op.T,
                Op.N,
                C,
                R,
                rank,
                1f,
                m2.address(),
                act,
                rank,
                loraAct.address(),
                act,
                rank,
                0f,
                out,
                Cublas.DataType.F32,
                C);
    }
}
