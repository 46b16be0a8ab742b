package dev.rwkvflink.engine.backend.cuda;

import dev.rwkvflink.cuda.Cublas;
import dev.rwkvflink.cuda.Cublas.Op;
import dev.rwkvflink.cuda.CudaDevice;
import dev.rwkvflink.cuda.DeviceMemory;
import dev.rwkvflink.engine.format.WeightFile;
import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.model.RwkvVersion;

/**
 * RWKV-4, RWKV-5 (5.0, 5.1, 5.2) and RWKV-6 on one GPU (steps, passes, state pool and graphs:
 * {@link CudaModelRunner}). Per layer (R rows, C channels, F ffn width):
 * <pre>
 *   v6 only: xxx = mix(ln1, maa_x); m = tanh(W1 xxx); delta_i = W2_i m_i       (2 products, 5 batched)
 *   ln_shift_mix(ln1) -> x_k, x_v, x_r, x_g (v6: and x_w, with + delta)           (act type)
 *   k, v, r, g = W x_*                                                    (one strided-batched product)
 *   v6: w = exp(-exp(time_decay + Wd2 tanh(Wd1 x_w)));  v5: w = the stored decay
 *   rwkv56_scan           out_j = sum_i r_i (u_i k_i v_j + S_ij);  S_ij <- k_i v_j + w_i S_ij
 *   rwkv56_gate           GroupNorm(out) [* silu(g)]                                  (act type)
 *   (v4: k, v, r only; rwkv4_scan, the ratio of decayed sums, times sigmoid(r), straight into the act type)
 *   x += W_o y                                                                  (beta = 1)
 *   ln_shift_mix(ln2) -> xk, xr;  x += sigmoid(W_r xr) * W_v relu(W_k xk)^2
 * </pre>
 * All products run on cuBLAS (the small-batch kernel is used by RWKV-7's runner only, for now).
 */
public final class Rwkv456Cuda extends CudaModelRunner {
    private final Rwkv456Kernels k;
    private final Rwkv456Weights w;
    private final int mixes; // time-mix projections: 3 (5.0) or 4
    private final DeviceMemory mix; // 5 x R x C act (v6: w, k, v, r, g; v5: k, v, r[, g])
    private final DeviceMemory proj; // 4 x R x C fp32: k, v, r, g
    private final DeviceMemory maaIn; // R x C act (v6: the maa_x mix)
    private final DeviceMemory maaHidden; // R x 5 rank fp32 (v6)
    private final DeviceMemory maaHiddenAct; // R x 5 rank act (v6)
    private final DeviceMemory delta; // 5 x R x C fp32 (v6)
    private final DeviceMemory decayHidden; // R x decayRank fp32 (v6)
    private final DeviceMemory decayHiddenAct; // R x decayRank act (v6)
    private final DeviceMemory decay; // R x C fp32 (v6)
    private final DeviceMemory att; // R x C fp32: the recurrence's output
    private final DeviceMemory gated; // R x C act
    private final DeviceMemory ffnAct; // R x F act
    private final DeviceMemory ffnV; // R x C fp32
    private final DeviceMemory ffnR; // R x C fp32

    private Rwkv456Cuda(
            Resources res, Rwkv456Weights weights, RwkvConfig config, Rwkv456Kernels kernels, Limits limits) {
        super(res, kernels, config, weights.precision, limits, weights.lnOutW, weights.lnOutB, weights.head);
        this.w = weights;
        this.k = kernels;
        this.mixes = weights.gated ? 4 : 3; // v4 and v5.0: k, v, r
        int act = precision.bytes;
        long R = maxRows;
        mix = alloc(5L * act * R * C);
        proj = alloc(4L * 4 * R * C);
        boolean v6 = weights.v6;
        maaIn = alloc(v6 ? act * R * C : 4);
        maaHidden = alloc(v6 ? 4 * R * 5 * w.maaRank : 4);
        maaHiddenAct = alloc(v6 ? act * R * 5 * w.maaRank : 4);
        delta = alloc(v6 ? 5 * 4 * R * C : 4);
        decayHidden = alloc(v6 ? 4 * R * w.decayRank : 4);
        decayHiddenAct = alloc(v6 ? act * R * w.decayRank : 4);
        decay = alloc(v6 ? 4 * R * C : 4);
        att = alloc(4 * R * C);
        gated = alloc(act * R * C);
        ffnAct = alloc(act * R * F);
        ffnV = alloc(4 * R * C);
        ffnR = alloc(4 * R * C);
    }

    /** Uploads an RWKV-4, RWKV-5 or RWKV-6 model's weights and allocates a runner for it. */
    public static Rwkv456Cuda open(
            CudaDevice device, WeightFile file, RwkvConfig config, Precision precision, Limits limits) {
        if (config.version() == RwkvVersion.V7) {
            throw new IllegalArgumentException("Rwkv456Cuda runs RWKV-4, RWKV-5 and RWKV-6, not " + config.version());
        }
        return assemble(
                device,
                () -> new Rwkv456Kernels(device, precision, config.version() == RwkvVersion.V4 ? 0 : config.headSize()),
                new Assembly<Rwkv456Kernels, Rwkv456Weights, Rwkv456Cuda>() {
                    @Override
                    public Rwkv456Weights weights(Resources res, Rwkv456Kernels kernels) {
                        return Rwkv456Weights.upload(file, config, precision, device, res.stream(), kernels);
                    }

                    @Override
                    public Rwkv456Cuda runner(Resources res, Rwkv456Weights weights, Rwkv456Kernels kernels) {
                        return new Rwkv456Cuda(res, weights, config, kernels, limits);
                    }
                });
    }

    @Override
    public long bodyParameters() {
        return w.bodyParameters(config);
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

    @Override
    void forwardLayers(int R, int B, long dTokens, long dRowStream, long dStart, long dCount, long dSlot) {
        Cublas.DataType act = precision.blasType;
        long actBytes = precision.bytes;
        long RC = (long) R * C;
        long xa = x.address();
        long poolA = pool.address();
        long mixA = mix.address();
        long projA = proj.address();
        boolean oneRowEach = R == B;
        k.embedLn0(stream, R, dTokens, w.emb, w.ln0w, w.ln0b, xa, C, LN_EPS);
        mark("embed");
        for (int l = 0; l < config.layers(); l++) {
            Rwkv456Weights.Layer y = w.layer[l];
            int attShift = l * layerFloats;
            int ffnShift = attShift + C;
            int wkvOff = attShift + 2 * C;
            // time mix: token shift and mixes (v6: data-dependent)
            long kvrgIn = mixA;
            long wRow;
            long wStride;
            if (w.v6) {
                int r5 = 5 * w.maaRank;
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
                        y.maaX.address(),
                        1,
                        0L,
                        maaIn.address(),
                        RC,
                        C,
                        false);
                blas.gemmEx(
                        Op.T,
                        Op.N,
                        r5,
                        R,
                        C,
                        1f,
                        y.maaW1.address(),
                        act,
                        C,
                        maaIn.address(),
                        act,
                        C,
                        0f,
                        maaHidden.address(),
                        Cublas.DataType.F32,
                        r5);
                k.activate(stream, maaHidden.address(), maaHiddenAct.address(), (long) R * r5, 1);
                blas.gemmStridedBatchedEx(
                        Op.T,
                        Op.N,
                        C,
                        R,
                        w.maaRank,
                        1f,
                        y.maaW2.address(),
                        act,
                        w.maaRank,
                        (long) C * w.maaRank,
                        maaHiddenAct.address(),
                        act,
                        r5,
                        w.maaRank,
                        0f,
                        delta.address(),
                        Cublas.DataType.F32,
                        C,
                        RC,
                        5);
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
                        5,
                        delta.address(),
                        mixA,
                        RC,
                        C,
                        oneRowEach);
                kvrgIn = mixA + actBytes * RC; // slots w, k, v, r, g: the products start at k
            } else {
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
                        mixes,
                        0L,
                        mixA,
                        RC,
                        C,
                        oneRowEach);
            }
            if (!oneRowEach) {
                k.commitShift(
                        stream, B, xa, y.ln1w, y.ln1b, LN_EPS, poolA, slotFloats, attShift, dStart, dCount, dSlot, C);
            }
            mark("ln1+mix");
            blas.gemmStridedBatchedEx(
                    Op.T,
                    Op.N,
                    C,
                    R,
                    C,
                    1f,
                    y.kvrg.address(),
                    act,
                    C,
                    (long) C * C,
                    kvrgIn,
                    act,
                    C,
                    RC,
                    0f,
                    projA,
                    Cublas.DataType.F32,
                    C,
                    RC,
                    mixes);
            mark("gemm kvrg");
            long kA = projA;
            long vA = projA + 4 * RC;
            long rA = projA + 8 * RC;
            if (w.v4) {
                k.rwkv4Scan(
                        stream,
                        B,
                        rA,
                        kA,
                        vA,
                        y.decay,
                        y.first,
                        gated.address(),
                        poolA,
                        slotFloats,
                        wkvOff,
                        dStart,
                        dCount,
                        dSlot,
                        C);
                mark("time mix (wkv)");
            } else {
                if (w.v6) {
                    int d = w.decayRank;
                    blas.gemmEx(
                            Op.T,
                            Op.N,
                            d,
                            R,
                            C,
                            1f,
                            y.decayW1.address(),
                            act,
                            C,
                            mixA,
                            act,
                            C,
                            0f,
                            decayHidden.address(),
                            Cublas.DataType.F32,
                            d);
                    k.activate(stream, decayHidden.address(), decayHiddenAct.address(), (long) R * d, 1);
                    blas.gemmEx(
                            Op.T,
                            Op.N,
                            C,
                            R,
                            d,
                            1f,
                            y.decayW2.address(),
                            act,
                            d,
                            decayHiddenAct.address(),
                            act,
                            d,
                            0f,
                            decay.address(),
                            Cublas.DataType.F32,
                            C);
                    k.decay(stream, decay.address(), y.decay, RC, C);
                    wRow = decay.address();
                    wStride = C;
                } else {
                    wRow = y.decay.address();
                    wStride = 0;
                }
                mark("decay");
                long gA = w.gated ? projA + 12 * RC : 0L;
                k.scan(
                        stream,
                        B,
                        H,
                        rA,
                        kA,
                        vA,
                        wRow,
                        wStride,
                        y.first,
                        att.address(),
                        poolA,
                        slotFloats,
                        wkvOff,
                        dStart,
                        dCount,
                        dSlot,
                        C);
                k.gate(stream, R, H, att.address(), gA, y.lnxw, y.lnxb, config.groupNormEps(), gated.address(), C);
                mark("time mix (wkv)");
            }
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
            mark("gemm output");
            // channel mix: x += sigmoid(W_r xr) * W_v relu(W_k xk)^2
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
                    2,
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
            blas.gemmEx(
                    Op.T, Op.N, F, R, C, 1f, y.ffnKey.address(), act, C, mixA, act, C, 0f, ffnAct.address(), act, F);
            k.reluSq(stream, ffnAct.address(), (long) R * F);
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
                    0f,
                    ffnV.address(),
                    Cublas.DataType.F32,
                    C);
            blas.gemmEx(
                    Op.T,
                    Op.N,
                    C,
                    R,
                    C,
                    1f,
                    y.ffnReceptance.address(),
                    act,
                    C,
                    mixA + actBytes * RC,
                    act,
                    C,
                    0f,
                    ffnR.address(),
                    Cublas.DataType.F32,
                    C);
            k.ffnGateAdd(stream, xa, ffnR.address(), ffnV.address(), RC);
            mark("ffn");
        }
    }
}
