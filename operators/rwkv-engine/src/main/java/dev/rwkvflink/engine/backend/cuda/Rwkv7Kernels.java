package dev.rwkvflink.engine.backend.cuda;

import dev.rwkvflink.cuda.CudaDevice;
import dev.rwkvflink.cuda.CudaKernel;
import dev.rwkvflink.cuda.CudaModule;
import dev.rwkvflink.cuda.CudaStream;
import dev.rwkvflink.cuda.DeviceMemory;
import dev.rwkvflink.cuda.KernelCache;

import java.util.List;

/**
 * The kernels of {@code rwkv7.cu} (compiled by NVRTC for the device at first use, cached on disk), each with a
 * typed launcher that states its grid. See the .cu file for the formula each one implements.
 */
final class Rwkv7Kernels implements AutoCloseable {
    static final String SOURCE = "/dev/rwkvflink/engine/backend/cuda/rwkv7.cu";
    /** Threads per block of the row kernels (LayerNorm over C channels). */
    static final int ROW_THREADS = 256;
    private static final int STRIDE_BLOCKS = 1024;

    private final CudaModule module;
    private final Precision precision;
    private final CudaKernel embedLn0;
    private final CudaKernel lnShiftMix;
    private final CudaKernel commitShift;
    private final CudaKernel activate;
    private final CudaKernel timeMix;
    private final CudaKernel reluSq;
    private final CudaKernel gemv4;
    private final CudaKernel prep;
    private final CudaKernel scan;
    private final CudaKernel gate;
    private final CudaKernel lnOutLast;
    private final CudaKernel convertBf16;
    private final CudaKernel randomFill;
    final int headSize;

    Rwkv7Kernels(CudaDevice device, Precision precision, int headSize) {
        if (headSize != 32 && headSize != 64) {
            throw new IllegalArgumentException("head size " + headSize + ": the CUDA WKV kernel is built for 32 and 64");
        }
        String source = KernelCache.loadResource(Rwkv7Kernels.class, SOURCE);
        this.module = KernelCache.load(device, "rwkv7.cu", source, List.of("--std=c++17", "-lineinfo"));
        this.precision = precision;
        this.headSize = headSize;
        String t = precision.suffix;
        embedLn0 = module.kernel("embed_ln0");
        lnShiftMix = module.kernel("ln_shift_mix_" + t);
        commitShift = module.kernel("commit_shift");
        activate = module.kernel("activate_" + t);
        timeMix = module.kernel("rwkv7_time_mix_" + headSize + "_" + t);
        reluSq = module.kernel("relu_sq_" + t);
        gemv4 = module.kernel("gemv4_" + t);
        prep = module.kernel("rwkv7_prep");
        scan = module.kernel("rwkv7_scan_" + headSize);
        gate = module.kernel("rwkv7_gate_" + t);
        lnOutLast = module.kernel("ln_out_last_" + t);
        convertBf16 = module.kernel("convert_bf16");
        randomFill = module.kernel("random_fill");
    }

    void embedLn0(CudaStream s, int rows, long tokens, DeviceMemory emb, DeviceMemory w, DeviceMemory b, long x,
                  int C, float eps) {
        embedLn0.launch(s, rows, 1, 1, ROW_THREADS, 1, 1, 0, tokens, emb, w, b, x, C, eps);
    }

    void lnShiftMix(CudaStream s, int rows, long x, DeviceMemory lnw, DeviceMemory lnb, float eps, long pool,
                    long slotFloats, int shiftOff, long rowStream, long start, long slot, DeviceMemory mix, int mixes,
                    long out, long outStride, int C, boolean commit) {
        lnShiftMix.launch(s, rows, 1, 1, ROW_THREADS, 1, 1, 0, x, lnw, lnb, eps, pool, slotFloats, shiftOff,
                rowStream, start, slot, mix, mixes, out, outStride, C, commit ? 1 : 0);
    }

    void commitShift(CudaStream s, int streams, long x, DeviceMemory lnw, DeviceMemory lnb, float eps, long pool,
                     long slotFloats, int shiftOff, long start, long count, long slot, int C) {
        commitShift.launch(s, streams, 1, 1, ROW_THREADS, 1, 1, 0, x, lnw, lnb, eps, pool, slotFloats, shiftOff,
                start, count, slot, C);
    }

    /** mode 0 identity, 1 tanh, 2 sigmoid, 3 squared ReLU. */
    void activate(CudaStream s, long in, long out, long n, int mode) {
        activate.launch(s, blocks(n), 1, 1, ROW_THREADS, 1, 1, 0, in, out, n, mode);
    }

    /** The fused time mix: decay, learning rate, value residual, kk, the WKV recurrence, GroupNorm, bonus, gate. */
    void timeMix(CudaStream s, int streams, int heads, long r, long k, long v, long wLora, long aLora, long g,
                 long vLora, long vFirst, Rwkv7Weights.Layer y, boolean firstLayer, float gnEps, long out, long pool,
                 long slotFloats, int wkvOff, long start, long count, long slot, int C) {
        timeMix.launch(s, heads, streams, 1, headSize, 1, 1, 0, r, k, v, wLora, aLora, g, vLora, vFirst, y.w0, y.a0,
                y.v0 == null ? 0L : y.v0.address(), y.kk, y.ka, y.rk, y.lnxw, y.lnxb, gnEps, firstLayer ? 1 : 0, out,
                pool, slotFloats, wkvOff, start, count, slot, C);
    }

    /** Rows of the largest step the small-batch products handle. */
    static final int GEMV_MAX_ROWS = 8;

    /**
     * One product of a small-batch launch: {@code y[r][m] (+)= f(sum_k w[m][k] x[r][k])}; {@code mode} 0 identity,
     * 1 tanh, 2 sigmoid, 3 squared ReLU; the result in the act type ({@code outAct}), in fp32, or added to fp32 y.
     */
    record Gemv(long w, long x, long y, int m, int k, int mode, boolean outAct, boolean acc) {
    }

    /** Whether the small-batch kernel can take products of inner dimension k (16-byte rows). */
    boolean gemvFits(int k) {
        return k % (precision == Precision.BF16 ? 8 : 4) == 0;
    }

    /** Up to four products over the same R rows (R <= {@link #GEMV_MAX_ROWS}) in one launch, one warp per output. */
    void gemv(CudaStream s, int rows, Gemv... ps) {
        if (ps.length < 1 || ps.length > 4 || rows > GEMV_MAX_ROWS) {
            throw new IllegalArgumentException(ps.length + " products of " + rows + " rows");
        }
        Object[] args = new Object[2 + 4 * 8];
        args[0] = rows;
        args[1] = ps.length;
        long outputs = 0;
        for (int i = 0; i < 4; i++) {
            Gemv g = i < ps.length ? ps[i] : new Gemv(0, 0, 0, 0, 0, 0, false, false);
            int a = 2 + 8 * i;
            args[a] = g.w();
            args[a + 1] = g.x();
            args[a + 2] = g.y();
            args[a + 3] = g.m();
            args[a + 4] = g.k();
            args[a + 5] = g.mode();
            args[a + 6] = g.outAct() ? 1 : 0;
            args[a + 7] = g.acc() ? 1 : 0;
            outputs += g.m();
        }
        int warps = 4;
        gemv4.launch(s, (int) ((outputs + warps - 1) / warps), 1, 1, 32 * warps, 1, 1, 0, args);
    }

    /** The split time mix, step 1: per-channel preparation over all rows (see rwkv7.cu). */
    void prep(CudaStream s, int rows, int heads, long w, long a, long k, long kk, long v, long vFirst, long vLora,
              Rwkv7Weights.Layer y, boolean firstLayer, int C) {
        prep.launch(s, heads, rows, 1, headSize, 1, 1, 0, w, a, k, kk, v, vFirst, vLora, y.w0, y.a0,
                y.v0 == null ? 0L : y.v0.address(), y.kk, y.ka, firstLayer ? 1 : 0, C, headSize);
    }

    /** The split time mix, step 2: the recurrence alone, per (stream, head). */
    void scan(CudaStream s, int streams, int heads, long r, long w, long k, long kk, long b, long v, long out,
              long pool, long slotFloats, int wkvOff, long start, long count, long slot, int C) {
        scan.launch(s, heads, streams, 1, headSize, 1, 1, 0, r, w, k, kk, b, v, out, pool, slotFloats, wkvOff, start,
                count, slot, C);
    }

    /** The split time mix, step 3: GroupNorm + bonus + gate over all rows, into the act type. */
    void gate(CudaStream s, int rows, int heads, long out, long r, long k, long v, long g, Rwkv7Weights.Layer y,
              float eps, long dst, int C) {
        gate.launch(s, heads, rows, 1, headSize, 1, 1, 0, out, r, k, v, g, y.rk, y.lnxw, y.lnxb, eps, dst, C, headSize);
    }

    /** x = max(x, 0)^2 in place on n values of the act type. */
    void reluSq(CudaStream s, long x, long n) {
        reluSq.launch(s, blocks(n), 1, 1, ROW_THREADS, 1, 1, 0, x, n);
    }

    void lnOutLast(CudaStream s, int streams, long x, DeviceMemory w, DeviceMemory b, float eps, long start,
                   long count, long hidden, long hiddenAct, int C) {
        lnOutLast.launch(s, streams, 1, 1, ROW_THREADS, 1, 1, 0, x, w, b, eps, start, count, hidden, hiddenAct, C);
    }

    void convertBf16(CudaStream s, DeviceMemory in, DeviceMemory out, long n) {
        convertBf16.launch(s, blocks(n), 1, 1, ROW_THREADS, 1, 1, 0, in, out, n);
    }

    void randomFill(CudaStream s, DeviceMemory out, long n, long seed, int mode, float p, float q) {
        randomFill.launch(s, blocks(n), 1, 1, ROW_THREADS, 1, 1, 0, out, n, seed, mode, p, q);
    }

    Precision precision() {
        return precision;
    }

    private static int blocks(long n) {
        return (int) Math.max(1, Math.min(STRIDE_BLOCKS * 16L, (n + ROW_THREADS - 1) / ROW_THREADS));
    }

    @Override
    public void close() {
        module.close();
    }
}
