package dev.rwkvflink.engine.backend.cuda;

import dev.rwkvflink.cuda.CudaDevice;
import dev.rwkvflink.cuda.CudaKernel;
import dev.rwkvflink.cuda.CudaModule;
import dev.rwkvflink.cuda.CudaStream;
import dev.rwkvflink.cuda.DeviceMemory;
import dev.rwkvflink.cuda.KernelCache;
import java.util.List;

/**
 * The kernels of {@code rwkv-common.cu}, compiled by NVRTC together with one version's kernel file (at first use,
 * cached on disk), each with a typed launcher that states its grid. See the .cu files for the formula each one
 * implements; subclasses add the version's own kernels.
 */
class CommonKernels implements AutoCloseable {
    static final String COMMON = "/dev/rwkvflink/engine/backend/cuda/rwkv-common.cu";
    /** Threads per block of the row kernels (LayerNorm over C channels). */
    static final int ROW_THREADS = 256;

    private static final int STRIDE_BLOCKS = 1024;
    /** Steps of fewer rows than this run the LayerNorm + mix kernel with each row cut into channel slices. */
    static final int SLICED_ROWS = 64;

    /**
     * Whether the kernels of short steps (decode) are launched as programmatic dependent launches (compute
     * capability 9.0+; property {@code rwkv.cuda.dependentLaunches}, default true): each may start, and prefetch its
     * weights, while the kernel before it still runs (see rwkv-common.cu, {@link CudaKernel#launchDependent}).
     */
    final boolean dependentLaunches;

    final CudaModule module;
    final Precision precision;
    final CudaKernel embedLn0;
    final CudaKernel lnShiftMix;
    final CudaKernel commitShift;
    final CudaKernel activate;
    final CudaKernel reluSq;
    final CudaKernel gemv4;
    final CudaKernel lnOutLast;
    final CudaKernel convertBf16;
    final CudaKernel randomFill;

    /**
     * Compiles {@code rwkv-common.cu} followed by {@code versionSource} (a resource next to it) as one program.
     */
    CommonKernels(CudaDevice device, Precision precision, String versionSource) {
        String source = KernelCache.loadResource(CommonKernels.class, COMMON) + "\n"
                + KernelCache.loadResource(CommonKernels.class, "/dev/rwkvflink/engine/backend/cuda/" + versionSource);
        this.module = KernelCache.load(device, versionSource, source, List.of("--std=c++17", "-lineinfo"));
        this.precision = precision;
        this.dependentLaunches = device.computeMajor() >= 9
                && Boolean.parseBoolean(System.getProperty("rwkv.cuda.dependentLaunches", "true"));
        String t = precision.suffix;
        embedLn0 = module.kernel("embed_ln0");
        lnShiftMix = module.kernel("ln_shift_mix_" + t);
        commitShift = module.kernel("commit_shift");
        activate = module.kernel("activate_" + t);
        reluSq = module.kernel("relu_sq_" + t);
        gemv4 = module.kernel("gemv4_" + t);
        lnOutLast = module.kernel("ln_out_last_" + t);
        convertBf16 = module.kernel("convert_bf16");
        randomFill = module.kernel("random_fill");
    }

    void embedLn0(
            CudaStream s,
            int rows,
            long tokens,
            DeviceMemory emb,
            DeviceMemory w,
            DeviceMemory b,
            long x,
            int C,
            float eps) {
        embedLn0.launch(s, rows, 1, 1, ROW_THREADS, 1, 1, 0, tokens, emb, w, b, x, C, eps);
    }

    /**
     * LayerNorm + token shift + {@code mixes} mixes (see rwkv-common.cu); {@code delta} (0 for none) adds a per-row
     * term to each mix (v6's data-dependent mixes), {@code mixes} blocks of R x C fp32 at {@code outStride}.
     */
    void lnShiftMix(
            CudaStream s,
            int rows,
            long x,
            DeviceMemory lnw,
            DeviceMemory lnb,
            float eps,
            long pool,
            long slotFloats,
            int shiftOff,
            long rowStream,
            long start,
            long slot,
            long mix,
            int mixes,
            long delta,
            long out,
            long outStride,
            int C,
            boolean commit) {
        // few rows: each row in slices of ROW_THREADS channels, one block each (each computes the row's statistics)
        int slices = rows < SLICED_ROWS ? (C + ROW_THREADS - 1) / ROW_THREADS : 1;
        launch(
                lnShiftMix,
                rows < SLICED_ROWS,
                s,
                rows,
                slices,
                ROW_THREADS,
                x,
                lnw,
                lnb,
                eps,
                pool,
                slotFloats,
                shiftOff,
                rowStream,
                start,
                slot,
                mix,
                mixes,
                delta,
                out,
                outStride,
                C,
                commit ? 1 : 0);
    }

    void commitShift(
            CudaStream s,
            int streams,
            long x,
            DeviceMemory lnw,
            DeviceMemory lnb,
            float eps,
            long pool,
            long slotFloats,
            int shiftOff,
            long start,
            long count,
            long slot,
            int C) {
        commitShift.launch(
                s,
                streams,
                1,
                1,
                ROW_THREADS,
                1,
                1,
                0,
                x,
                lnw,
                lnb,
                eps,
                pool,
                slotFloats,
                shiftOff,
                start,
                count,
                slot,
                C);
    }

    /** mode 0 identity, 1 tanh, 2 sigmoid, 3 squared ReLU. */
    void activate(CudaStream s, long in, long out, long n, int mode) {
        activate.launch(s, blocks(n), 1, 1, ROW_THREADS, 1, 1, 0, in, out, n, mode);
    }

    /** Rows of the largest step the small-batch products handle. */
    static final int GEMV_MAX_ROWS = 8;

    /**
     * One product of a small-batch launch: {@code y[r][m] (+)= f(sum_k w[m][k] x[r][k])}; {@code mode} 0 identity,
     * 1 tanh, 2 sigmoid, 3 squared ReLU; the result in the act type ({@code outAct}), in fp32, or added to fp32 y.
     */
    record Gemv(long w, long x, long y, int m, int k, int mode, boolean outAct, boolean acc) {}

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
        launch(gemv4, true, s, (int) ((outputs + warps - 1) / warps), 1, 32 * warps, args);
    }

    /** x = max(x, 0)^2 in place on n values of the act type. */
    void reluSq(CudaStream s, long x, long n) {
        launch(reluSq, false, s, blocks(n), 1, ROW_THREADS, x, n);
    }

    void lnOutLast(
            CudaStream s,
            int streams,
            long x,
            DeviceMemory w,
            DeviceMemory b,
            float eps,
            long start,
            long count,
            long hidden,
            long hiddenAct,
            int C) {
        launch(lnOutLast, true, s, streams, 1, ROW_THREADS, x, w, b, eps, start, count, hidden, hiddenAct, C);
    }

    /**
     * Launches a kernel that begins with {@code follow_previous_kernel()} (rwkv-common.cu): as a programmatic
     * dependent launch when {@code small} (a short step, where the gaps between kernels are much of the time) and
     * {@link #dependentLaunches}, else as a plain launch.
     */
    void launch(CudaKernel kernel, boolean small, CudaStream s, int gridX, int gridY, int block, Object... args) {
        if (small && dependentLaunches) {
            kernel.launchDependent(s, gridX, gridY, 1, block, 1, 1, 0, args);
        } else {
            kernel.launch(s, gridX, gridY, 1, block, 1, 1, 0, args);
        }
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

    static int blocks(long n) {
        return (int) Math.max(1, Math.min(STRIDE_BLOCKS * 16L, (n + ROW_THREADS - 1) / ROW_THREADS));
    }

    @Override
    public void close() {
        module.close();
    }
}
