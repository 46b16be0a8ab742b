package dev.rwkvflink.engine.backend;

import static dev.rwkvflink.engine.backend.Lanes.L;
import static dev.rwkvflink.engine.backend.RowKernels.streamRows;
import static dev.rwkvflink.engine.backend.TileKernels.ONE_TOKEN_TILES;
import static dev.rwkvflink.engine.backend.TileKernels.ROW_TILE;
import static dev.rwkvflink.engine.backend.TileKernels.tileRows;

import dev.rwkvflink.engine.tensor.Tensor;
import java.lang.foreign.MemorySegment;

/**
 * A SIMD, multi-threaded backend on the (incubating) Java Vector API.
 *
 * <h2>Work split</h2>
 * Output rows are independent, so they are cut into chunks that the calling thread and up to
 * {@code threads() - 1} helper threads ({@link WorkerPool}) claim one by one ({@link #threads()}: constructor
 * argument, default system property {@code rwkv.threads}, default {@code availableProcessors()}). Calls with fewer
 * than {@value #PARALLEL_MIN_MACS} multiply-adds (rows x cols x tokens) run on the caller's thread alone.
 *
 * <h2>Kernel</h2>
 * A tile of {@value TileKernels#ROW_TILE} rows is decoded once into a float scratch array (per thread: fp16 converted by the CPU's
 * F16C instruction, bf16 widened and quant blocks unpacked in registers), then multiplied with every token's input,
 * four tokens at a time where the CPU has 32 vector registers ({@link TileKernels#dot4x4}: 4 row vectors and 4 input vectors per
 * step, 16 independent fused multiply-adds), three at a time where it has 16 ({@link TileKernels#dot4x3}, AVX2: see
 * {@link TileKernels#TOKEN_TILE}), then two, then one. Tokens go in blocks of about 128 KiB of input ({@link TileKernels#tokenBlock}; the
 * tile is decoded again per block), so the inputs stay in L2 while the chunk's tiles pass over them. One token takes
 * the same tile kernel ({@link TileKernels#dot4x1}, 4 independent chains) where that reads faster ({@link TileKernels#ONE_TOKEN_TILES}), else
 * streams its rows ({@link RowKernels#streamRows}) with the same arithmetic per output, so that an output never depends on how
 * many tokens came with it.
 *
 * <h2>Determinism</h2>
 * Row tiles start at multiples of {@value TileKernels#ROW_TILE} counted from row 0 and chunk borders fall on tile borders, so each
 * output element is computed by the same operations in the same order whatever the thread count, and whatever the
 * number of tokens (rows) in the call or the row's position among them, hence whatever other streams share a batched
 * call (one vector accumulator over the columns, folded, then the scalar tail: {@link TileKernels#dot4x4}, {@link TileKernels#dot4x3},
 * {@link TileKernels#dot4x2}, {@link TileKernels#dot4x1}, {@link TileKernels#dot1} and {@link RowKernels#streamRows} agree), and lane sums use explicit folding
 * (see {@link Lanes#sum}) so the interpreter and every JIT tier agree too: results are bit-identical across thread counts
 * and runs (but differ from {@link ScalarBackend} by summation order).
 *
 * <p>The weights are read through their {@link MemorySegment} with little-endian, unaligned vector loads (rwkv.cpp
 * files put tensors at arbitrary byte offsets). Thread-safe: the only mutable state is per-thread scratch.
 */
public final class VectorBackend implements Backend, AutoCloseable {
    /**
     * Below this many multiply-adds (rows x cols x tokens) a call stays on the caller's thread. Low enough that a
     * token's small LoRA products (768 x 64 in the 0.1B shape: 49,152) are shared too: a helper idle during them
     * is bandwidth lost. Measured (issue 19, this project's 2-vCPU Xeon, 0.1B decode, 2 threads, 2 runs each):
     * 2^18 -> 2^14 took fp32 28.6/27.4 -> 29.9/29.6 tokens/s, fp16 38.4/38.5 -> 42.8/43.1 (8 lanes) and
     * 39.9/38.0 -> 42.6/41.2 (16 lanes), Q8_0 41.3/43.3 -> 46.9/45.0 and 46.4/46.1 -> 49.0/53.3; 2^16 keeps the
     * LoRA products serial (fp16 39.2/38.9) and 2^12 gains nothing more (41.4/41.1 vs 41.6/40.9).
     */
    static final long PARALLEL_MIN_MACS = 1L << 14;

    /** The caller's helpers ({@code threads - 1} of them). */
    private final WorkerPool pool;

    /** Threads from system property {@code rwkv.threads}, default the number of available processors. */
    public VectorBackend() {
        this(EngineSettings.DEFAULTS.threadsOrDefault());
    }

    public VectorBackend(int threads) {
        if (L < 4 || 16 % L != 0) { // half a quant block (16 elements) must be a whole number of vectors
            throw new UnsupportedOperationException("unsupported float vector length " + L + " lanes");
        }
        this.pool = new WorkerPool(threads, "rwkv-vector-");
    }

    @Override
    public String name() {
        return "vector";
    }

    public int threads() {
        return pool.threads();
    }

    /** The float vector width in lanes, for logs. */
    public static int vectorLanes() {
        return L;
    }

    /** Stops the helper threads (daemons) once they finish the work already queued. */
    @Override
    public void close() {
        pool.close();
    }

    @Override
    public void matmul(Tensor w, float[] x, int tokens, float[] y) {
        int rows = w.rows();
        int cols = w.cols();
        if (tokens < 1 || (long) tokens * cols > x.length || (long) tokens * rows > y.length) {
            throw new IllegalArgumentException(w + ": x has " + x.length + " and y " + y.length + " elements, need "
                    + tokens + " x " + cols + " and " + tokens + " x " + rows);
        }
        Bytewise b = Bytewise.of(w);
        Tensor q = b == null ? w : b.q8();
        float[] mins = b == null ? null : b.mins();
        long macs = (long) rows * cols * tokens;
        if (pool.threads() == 1 || macs < PARALLEL_MIN_MACS || rows < 2 * ROW_TILE) {
            computeRows(q, mins, x, tokens, y, 0, rows);
            return;
        }
        // about 4 chunks per thread for load balance, each a whole number of row tiles
        int grain = roundUp(Math.max(1, rows / (pool.threads() * 4)), ROW_TILE);
        pool.run(rows, grain, (from, to) -> computeRows(q, mins, x, tokens, y, from, to));
    }

    /** Row-wise work of the blocks (activations, the recurrence's inputs) over the helpers too, when it pays. */
    @Override
    public void forRows(int rows, int rowWork, RowRange body) {
        if (pool.threads() == 1 || (long) rows * rowWork < PARALLEL_MIN_MACS || rows < 2) {
            body.run(0, rows);
            return;
        }
        pool.run(rows, Math.max(1, rows / (pool.threads() * 4)), body);
    }

    /**
     * Output rows [from, to) for all tokens; {@code from} is a multiple of {@link TileKernels#ROW_TILE}. {@code mins}: the
     * block minimums of a Q8_0-shaped {@link Bytewise} form (w = d * q + m), else null.
     */
    static void computeRows(Tensor w, float[] mins, float[] x, int tokens, float[] y, int from, int to) {
        if (tokens == 1 && !ONE_TOKEN_TILES.contains(w.type())) {
            streamRows(w, mins, x, y, from, to);
        } else {
            tileRows(w, mins, x, tokens, y, from, to);
        }
    }

    /** {@link Backend#wkv7} vectorised over the key index: {@link Wkv7Kernel}. */
    @Override
    public void wkv7(
            float[] s,
            int sOff,
            int heads,
            int n,
            float[] r,
            float[] w,
            float[] k,
            float[] v,
            float[] kk,
            float[] a,
            int row,
            float[] out) {
        if (n % L != 0) {
            Backend.super.wkv7(s, sOff, heads, n, r, w, k, v, kk, a, row, out);
            return;
        }
        Wkv7Kernel.apply(s, sOff, heads, n, r, w, k, v, kk, a, row, out);
    }

    private static int roundUp(int n, int multiple) {
        return (n + multiple - 1) / multiple * multiple;
    }
}
