package dev.rwkvflink.engine.backend;

import dev.rwkvflink.engine.tensor.QuantBlock;
import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * A SIMD, multi-threaded backend on the (incubating) Java Vector API.
 *
 * <h2>Work split</h2>
 * Output rows are independent, so they are cut into chunks that the calling thread and up to
 * {@code threads() - 1} helper threads of this backend claim one by one ({@link #threads()}: constructor argument, default system
 * property {@code rwkv.threads}, default {@code availableProcessors()}). Calls with fewer than
 * {@value #PARALLEL_MIN_MACS} multiply-adds (rows x cols x tokens) run on the caller's thread alone. An idle
 * helper, and a caller waiting for its helpers, may spin for {@code rwkv.spinMicros} microseconds before they
 * park (default {@value #DEFAULT_SPIN_MICROS}: park at once). A forward pass is a run of projections with short
 * single-threaded work between them, and waking a parked thread costs 10-50 microseconds in a VM, so spinning
 * (like the OpenMP spin-wait of rwkv.cpp's ggml threads) can pay on a dedicated machine; on a shared one
 * (this project's 2-vCPU machine with other builds running) it measured slower, as spinning threads take
 * turns from the ones with work.
 *
 * <h2>Kernel</h2>
 * A tile of {@value #ROW_TILE} rows is decoded once into a float scratch array (per thread: fp16/bf16 widened and
 * quant blocks unpacked in registers), then multiplied with every token's input, four tokens at a time
 * ({@link #dot4x4}: 4 row vectors and 4 input vectors per step, 16 independent fused multiply-adds), then two,
 * then one. Tokens go in blocks of about 128 KiB of input ({@link #tokenBlock}; the tile is decoded again per
 * block), so the inputs stay in L2 while the chunk's tiles pass over them. One token uses the same tile kernel
 * (4 independent chains), so that the arithmetic of an output never depends on how many tokens came with it.
 *
 * <h2>Determinism</h2>
 * Row tiles start at multiples of {@value #ROW_TILE} counted from row 0 and chunk borders fall on tile borders,
 * so each output element is computed by the same operations in the same order whatever the thread count, and
 * whatever the number of tokens (rows) in the call or the row's position among them, hence whatever other
 * streams share a batched call (one vector accumulator over the columns, folded, then the scalar tail:
 * {@link #dot4x4}, {@link #dot4x2}, {@link #dot4x1}, {@link #dot1} and {@link #streamRows} agree), and
 * lane sums use explicit folding (see {@link #sum}) so the interpreter and every JIT tier agree too: results are
 * bit-identical across thread counts and runs (but differ from {@link ScalarBackend} by summation order).
 *
 * <p>The weights are read through their {@link MemorySegment} with little-endian, unaligned vector loads (rwkv.cpp
 * files put tensors at arbitrary byte offsets). Thread-safe: the only mutable state is per-thread scratch.
 */
public final class VectorBackend implements Backend, AutoCloseable {
    private static final VectorSpecies<Float> FS = FloatVector.SPECIES_PREFERRED;
    /** Float lanes per vector (16 with AVX-512, 8 with AVX2). */
    private static final int L = FS.length();
    /** Same lane count, 16-bit lanes (fp16/bf16 loads) and 32-bit lanes (their widening). */
    private static final VectorSpecies<Short> HS = ShortVector.SPECIES_PREFERRED.withShape(
            VectorShape.forBitSize(FS.vectorBitSize() / 2));
    private static final VectorSpecies<Integer> IS = IntVector.SPECIES_PREFERRED.withShape(FS.vectorShape());
    /** 16 byte lanes: half a quant block. */
    private static final VectorSpecies<Byte> B16 = ByteVector.SPECIES_128;

    /** Lane i takes lane (i + L/2^k) mod L: the folding steps of {@link #sum}. */
    private static final VectorShuffle<Float> ROTATE_HALF = VectorShuffle.iota(FS, L / 2, 1, true);
    private static final VectorShuffle<Float> ROTATE_QUARTER = VectorShuffle.iota(FS, Math.max(1, L / 4), 1, true);
    private static final VectorShuffle<Float> ROTATE_EIGHTH = VectorShuffle.iota(FS, Math.max(1, L / 8), 1, true);
    private static final VectorShuffle<Float> ROTATE_SIXTEENTH = VectorShuffle.iota(FS, Math.max(1, L / 16), 1, true);

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED;

    private static final int QK = QuantBlock.SIZE;
    /** Rows decoded together in the several-token kernel; chunk borders are multiples of it. */
    static final int ROW_TILE = 4;
    /** Input floats per token block of the several-token kernel (128 KiB). */
    static final int TOKEN_BLOCK_FLOATS = 32 * 1024;
    /** Below this many multiply-adds (rows x cols x tokens) a call stays on the caller's thread. */
    static final long PARALLEL_MIN_MACS = 1L << 18;

    /** Per-thread decoded row tile, grown on demand. */
    private static final ThreadLocal<float[]> TILE = ThreadLocal.withInitial(() -> new float[0]);

    /** Default spin before parking, microseconds. */
    static final int DEFAULT_SPIN_MICROS = 0;
    private static final long SPIN_NANOS = 1000L * Integer.getInteger("rwkv.spinMicros", DEFAULT_SPIN_MICROS);

    private final int threads;
    /** Work for the helpers; null when single-threaded. */
    private final LinkedBlockingQueue<Runnable> queue;
    private final Thread[] helpers;
    /** Tells a helper to stop ({@link #close}). */
    private static final Runnable STOP = () -> { };

    /** Threads from system property {@code rwkv.threads}, default the number of available processors. */
    public VectorBackend() {
        this(Integer.getInteger("rwkv.threads", Runtime.getRuntime().availableProcessors()));
    }

    public VectorBackend(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        }
        if (L < 4 || 16 % L != 0) { // half a quant block (16 elements) must be a whole number of vectors
            throw new UnsupportedOperationException("unsupported float vector length " + L + " lanes");
        }
        this.threads = threads;
        this.queue = threads == 1 ? null : new LinkedBlockingQueue<>();
        this.helpers = new Thread[threads - 1];
        for (int i = 0; i < helpers.length; i++) {
            helpers[i] = Thread.ofPlatform().daemon().name("rwkv-vector-" + i).start(this::helperLoop);
        }
    }

    /** A helper: runs queued work; spins a while when the queue is empty, then blocks. */
    private void helperLoop() {
        try {
            while (true) {
                Runnable r = queue.poll();
                if (r == null) {
                    long until = System.nanoTime() + SPIN_NANOS;
                    while (r == null && System.nanoTime() < until) {
                        Thread.onSpinWait();
                        r = queue.poll();
                    }
                    if (r == null) {
                        r = queue.take();
                    }
                }
                if (r == STOP) {
                    return;
                }
                r.run();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public String name() {
        return "vector";
    }

    public int threads() {
        return threads;
    }

    /** The float vector width in lanes, for logs. */
    public static int vectorLanes() {
        return L;
    }

    /** Stops the helper threads (daemons) once they finish the work already queued. */
    @Override
    public void close() {
        for (int i = 0; i < helpers.length; i++) {
            queue.add(STOP);
        }
    }

    @Override
    public void matmul(Tensor w, float[] x, int tokens, float[] y) {
        int rows = w.rows();
        int cols = w.cols();
        if (tokens < 1 || (long) tokens * cols > x.length || (long) tokens * rows > y.length) {
            throw new IllegalArgumentException(w + ": x has " + x.length + " and y " + y.length
                    + " elements, need " + tokens + " x " + cols + " and " + tokens + " x " + rows);
        }
        long macs = (long) rows * cols * tokens;
        if (queue == null || macs < PARALLEL_MIN_MACS || rows < 2 * ROW_TILE) {
            computeRows(w, x, tokens, y, 0, rows);
            return;
        }
        // about 4 chunks per thread for load balance, each a whole number of row tiles
        int grain = roundUp(Math.max(1, rows / (threads * 4)), ROW_TILE);
        ParallelCall call = new ParallelCall(w, x, tokens, y, grain);
        for (int i = 1; i < Math.min(threads, call.chunks); i++) {
            queue.add(call);
        }
        call.run();
        call.awaitAll();
    }

    /**
     * One multi-threaded matmul. The caller and the helpers run {@link #run}, claiming chunks of rows from a
     * shared counter until none are left; whoever finishes the last chunk wakes the caller. A helper that starts
     * late finds nothing to claim and returns at once, and the caller never waits for it.
     */
    private static final class ParallelCall implements Runnable {
        private final Tensor w;
        private final float[] x;
        private final int tokens;
        private final float[] y;
        private final int grain;
        final int chunks;
        private final AtomicInteger next = new AtomicInteger();
        private final AtomicInteger unfinished;
        private final Thread caller = Thread.currentThread();
        private volatile Throwable failure;

        ParallelCall(Tensor w, float[] x, int tokens, float[] y, int grain) {
            this.w = w;
            this.x = x;
            this.tokens = tokens;
            this.y = y;
            this.grain = grain;
            this.chunks = (w.rows() + grain - 1) / grain;
            this.unfinished = new AtomicInteger(chunks);
        }

        @Override
        public void run() {
            int rows = w.rows();
            for (int c = next.getAndIncrement(); c < chunks; c = next.getAndIncrement()) {
                try {
                    computeRows(w, x, tokens, y, c * grain, Math.min(rows, (c + 1) * grain));
                } catch (Throwable e) {
                    failure = e;
                }
                if (unfinished.decrementAndGet() == 0) {
                    LockSupport.unpark(caller);
                }
            }
        }

        /** Blocks the caller until every chunk is done (spinning first); rethrows a helper's failure. */
        void awaitAll() {
            long until = System.nanoTime() + SPIN_NANOS;
            while (unfinished.get() > 0 && System.nanoTime() < until) {
                Thread.onSpinWait();
            }
            while (unfinished.get() > 0) {
                LockSupport.park(this);
            }
            Throwable e = failure;
            if (e instanceof RuntimeException re) {
                throw re;
            } else if (e instanceof Error err) {
                throw err;
            } else if (e != null) {
                throw new IllegalStateException(e);
            }
        }
    }

    /** Output rows [from, to) for all tokens; {@code from} is a multiple of {@link #ROW_TILE}. */
    static void computeRows(Tensor w, float[] x, int tokens, float[] y, int from, int to) {
        int rows = w.rows();
        int cols = w.cols();
        WeightType type = w.type();
        MemorySegment seg = w.data();
        long rowBytes = w.rowBytes();
        if (tokens == 1 && !type.isQuantized()) {
            streamRows(type, seg, rowBytes, cols, x, y, from, to);
            return;
        }
        float[] tile = TILE.get();
        if (tile.length < ROW_TILE * cols) {
            tile = new float[ROW_TILE * cols];
            TILE.set(tile);
        }
        // Tokens go in blocks whose inputs stay in L2 while every row tile of the chunk meets them (a tile is
        // decoded again per block: cheap next to 2 x block multiply-adds per weight). Same kernels per output.
        int block = tokenBlock(cols);
        for (int t0 = 0; t0 < tokens; t0 += block) {
            int t1 = Math.min(tokens, t0 + block);
            for (int r0 = from; r0 < to; r0 += ROW_TILE) {
                int n = Math.min(ROW_TILE, to - r0);
                for (int i = 0; i < n; i++) {
                    decodeRow(type, seg, (r0 + i) * rowBytes, cols, tile, i * cols);
                }
                if (n == ROW_TILE) {
                    int t = t0;
                    for (; t + 3 < t1; t += 4) {
                        dot4x4(tile, cols, x, t, y, rows, r0);
                    }
                    for (; t + 1 < t1; t += 2) {
                        dot4x2(tile, cols, x, t, y, rows, r0);
                    }
                    if (t < t1) {
                        dot4x1(tile, cols, x, t, y, rows, r0);
                    }
                } else { // the last, partial tile of the matrix
                    for (int i = 0; i < n; i++) {
                        for (int t = t0; t < t1; t++) {
                            y[t * rows + r0 + i] = dot1(tile, i * cols, x, t * cols, cols);
                        }
                    }
                }
            }
        }
    }

    /** Tokens per block: an even number whose inputs ({@value #TOKEN_BLOCK_FLOATS} floats) fit in L2 with room. */
    static int tokenBlock(int cols) {
        return Math.max(2, TOKEN_BLOCK_FLOATS / cols & ~1);
    }

    // =========================================================================================================
    // Loading 2-byte floats and unpacking quant blocks in registers

    /** L bf16 values at byte {@code off} as floats: widen 16-bit lanes to 32 and shift them into the top half. */
    private static FloatVector loadBF16(MemorySegment seg, long off) {
        return widen(seg, off).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    /**
     * L fp16 values at byte {@code off} as floats, by arithmetic on the bit patterns (the Vector API has no fp16
     * conversion). A half is sign s (bit 15), exponent e (bits 10..14, bias 15), mantissa f (bits 0..9):
     * <pre>
     * em   = (h &amp; 0x7FFF) &lt;&lt; 13        e and f moved to the fp32 exponent/mantissa positions
     * mag  = float(em) * 2^112           float(em) is 2^(e-127) (1 + f/1024) for e &gt;= 1, the fp32 subnormal
     *                                    f * 2^-136 for e = 0; times 2^112 gives exactly the half's magnitude,
     *                                    2^(e-15) (1 + f/1024) or f * 2^-24 (zero and subnormals included)
     * e = 31 (Inf, NaN): mag = em | 0x7F800000    exponent 255, payload kept
     * result = mag | sign, where the sign-extending 16 -&gt; 32 bit widening already copied s into bit 31
     * </pre>
     * Measured on AVX-512 (768x768, one token, 1 thread): this form ~19 GFLOP/s; the classic variant that
     * re-biases the exponent with an integer add and fixes subnormals with a second blend ~12; converting with
     * {@link Float#float16ToFloat} lane by lane into a scratch array ~3.
     */
    private static FloatVector loadF16(MemorySegment seg, long off) {
        IntVector h = widen(seg, off);
        IntVector em = h.and(0x7FFF).lanewise(VectorOperators.LSHL, 13);
        IntVector mag = em.reinterpretAsFloats().mul(0x1p112f).reinterpretAsInts()
                .blend(em.or(0x7F800000), em.compare(VectorOperators.GE, 0x7C00 << 13));
        return mag.or(h.and(0x80000000)).reinterpretAsFloats();
    }

    /** L little-endian 16-bit lanes at byte {@code off}, sign-extended to 32-bit lanes. */
    private static IntVector widen(MemorySegment seg, long off) {
        return (IntVector) ShortVector.fromMemorySegment(HS, seg, off, LE).convertShape(VectorOperators.S2I, IS, 0);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Block types. Each row is a run of 32-element blocks; block b covers x[32b .. 32b + 32). The 16 quant bytes
    // are unpacked with byte-vector ops into two 16-lane vectors of signed q: elements 0..15 ("lo") and 16..31
    // ("hi"), then {@link #fmaQuants} widens them to floats, scales per lane (w = d*q, or d*q + m: the same two
    // roundings as Tensor.readRow) and accumulates w*x with fma into one accumulator per half. For the "_1" types
    // the per-lane "+ m" costs one add per vector; the algebraically equal d*sum(q*x) + m*sum(x) would need the
    // sums of x per block, which only pays off when a block is longer than two vectors.

    private static float halfAt(MemorySegment seg, long off) {
        return Float.float16ToFloat(seg.get(U16, off));
    }

    private static ByteVector lowNibbles(ByteVector qs) {
        return qs.and((byte) 0x0F);
    }

    /** LSHR on byte lanes shifts the unsigned 8-bit value, so this is {@code (qs & 0xFF) >>> 4}. */
    private static ByteVector highNibbles(ByteVector qs) {
        return qs.lanewise(VectorOperators.LSHR, 4);
    }

    /**
     * Sets bit 4 (adds 16) in lane j where bit j of {@code bits} is set, j &lt; 16: the qh bits are used directly
     * as a lane mask ({@code VectorMask.fromLong}: lane j is set exactly when bit j is).
     */
    private static ByteVector withBit4(ByteVector nibbles, int bits) {
        return nibbles.lanewise(VectorOperators.OR, (byte) 0x10, VectorMask.fromLong(B16, bits & 0xFFFF));
    }

    // =========================================================================================================
    // Several tokens: decode rows to floats, then float-array kernels

    /**
     * Decodes one encoded row into {@code dst[dOff .. dOff + cols)}, numerically equal to {@link Tensor#readRow}
     * (same {@code d*q + m} roundings, exact fp16/bf16 widening; the symmetric types skip the {@code + 0}, so a
     * zero code under a negative scale reads as -0.0 where readRow gives +0.0).
     */
    static void decodeRow(WeightType type, MemorySegment seg, long rowOff, int cols, float[] dst, int dOff) {
        int blocks = cols / QK;
        switch (type) {
            case F32 -> MemorySegment.copy(seg, F32, rowOff, dst, dOff, cols);
            case F16 -> decodeF16(seg, rowOff, cols, dst, dOff);
            case BF16 -> decodeBF16(seg, rowOff, cols, dst, dOff);
            case Q4_0 -> decodeQ4_0(seg, rowOff, blocks, dst, dOff);
            case Q4_1 -> decodeQ4_1(seg, rowOff, blocks, dst, dOff);
            case Q5_0 -> decodeQ5_0(seg, rowOff, blocks, dst, dOff);
            case Q5_1 -> decodeQ5_1(seg, rowOff, blocks, dst, dOff);
            case Q8_0 -> decodeQ8_0(seg, rowOff, blocks, dst, dOff);
        }
    }

    private static void decodeF16(MemorySegment seg, long off, int cols, float[] dst, int o) {
        int c = 0;
        for (; c + L <= cols; c += L) {
            loadF16(seg, off + 2L * c).intoArray(dst, o + c);
        }
        for (; c < cols; c++) {
            dst[o + c] = Float.float16ToFloat(seg.get(U16, off + 2L * c));
        }
    }

    private static void decodeBF16(MemorySegment seg, long off, int cols, float[] dst, int o) {
        int c = 0;
        for (; c + L <= cols; c += L) {
            loadBF16(seg, off + 2L * c).intoArray(dst, o + c);
        }
        for (; c < cols; c++) {
            dst[o + c] = Float.intBitsToFloat((seg.get(U16, off + 2L * c) & 0xFFFF) << 16);
        }
    }

    /** The block decoders mirror the dot kernels above (same layouts), storing w instead of accumulating w*x. */
    private static void decodeQ4_0(MemorySegment seg, long rowOff, int blocks, float[] dst, int o) {
        for (int b = 0; b < blocks; b++) {
            long off = rowOff + 18L * b;
            float d = halfAt(seg, off);
            ByteVector qs = ByteVector.fromMemorySegment(B16, seg, off + 2, LE);
            storeQuants(lowNibbles(qs).sub((byte) 8), d, dst, o + QK * b);
            storeQuants(highNibbles(qs).sub((byte) 8), d, dst, o + QK * b + 16);
        }
    }

    private static void decodeQ4_1(MemorySegment seg, long rowOff, int blocks, float[] dst, int o) {
        for (int b = 0; b < blocks; b++) {
            long off = rowOff + 20L * b;
            float d = halfAt(seg, off);
            float m = halfAt(seg, off + 2);
            ByteVector qs = ByteVector.fromMemorySegment(B16, seg, off + 4, LE);
            storeQuants(lowNibbles(qs), d, m, dst, o + QK * b);
            storeQuants(highNibbles(qs), d, m, dst, o + QK * b + 16);
        }
    }

    private static void decodeQ5_0(MemorySegment seg, long rowOff, int blocks, float[] dst, int o) {
        for (int b = 0; b < blocks; b++) {
            long off = rowOff + 22L * b;
            float d = halfAt(seg, off);
            int qh = seg.get(U32, off + 2);
            ByteVector qs = ByteVector.fromMemorySegment(B16, seg, off + 6, LE);
            storeQuants(withBit4(lowNibbles(qs), qh).sub((byte) 16), d, dst, o + QK * b);
            storeQuants(withBit4(highNibbles(qs), qh >>> 16).sub((byte) 16), d, dst, o + QK * b + 16);
        }
    }

    private static void decodeQ5_1(MemorySegment seg, long rowOff, int blocks, float[] dst, int o) {
        for (int b = 0; b < blocks; b++) {
            long off = rowOff + 24L * b;
            float d = halfAt(seg, off);
            float m = halfAt(seg, off + 2);
            int qh = seg.get(U32, off + 4);
            ByteVector qs = ByteVector.fromMemorySegment(B16, seg, off + 8, LE);
            storeQuants(withBit4(lowNibbles(qs), qh), d, m, dst, o + QK * b);
            storeQuants(withBit4(highNibbles(qs), qh >>> 16), d, m, dst, o + QK * b + 16);
        }
    }

    private static void decodeQ8_0(MemorySegment seg, long rowOff, int blocks, float[] dst, int o) {
        for (int b = 0; b < blocks; b++) {
            long off = rowOff + 34L * b;
            float d = halfAt(seg, off);
            storeQuants(ByteVector.fromMemorySegment(B16, seg, off + 2, LE), d, dst, o + QK * b);
            storeQuants(ByteVector.fromMemorySegment(B16, seg, off + 18, LE), d, dst, o + QK * b + 16);
        }
    }

    /** dst[o .. o+16) = d * q; q: 16 signed byte lanes. */
    private static void storeQuants(ByteVector q, float d, float[] dst, int o) {
        for (int p = 0; p < 16 / L; p++) {
            ((FloatVector) q.convertShape(VectorOperators.B2F, FS, p)).mul(d).intoArray(dst, o + p * L);
        }
    }

    /** dst[o .. o+16) = d * q + m. */
    private static void storeQuants(ByteVector q, float d, float m, float[] dst, int o) {
        for (int p = 0; p < 16 / L; p++) {
            ((FloatVector) q.convertShape(VectorOperators.B2F, FS, p)).mul(d).add(m).intoArray(dst, o + p * L);
        }
    }

    /**
     * Four decoded rows (tile[i*cols ..], i &lt; 4) times two tokens (x rows t and t+1):
     * {@code y[t'][r0+i] = sum_c tile[i][c] * x[t'][c]}. 8 accumulators, 6 loads per 8 fma.
     */
    private static void dot4x2(float[] tile, int cols, float[] x, int t, float[] y, int rows, int r0) {
        int x0 = t * cols;
        int x1 = x0 + cols;
        FloatVector a00 = FloatVector.zero(FS), a01 = FloatVector.zero(FS);
        FloatVector a10 = FloatVector.zero(FS), a11 = FloatVector.zero(FS);
        FloatVector a20 = FloatVector.zero(FS), a21 = FloatVector.zero(FS);
        FloatVector a30 = FloatVector.zero(FS), a31 = FloatVector.zero(FS);
        int c = 0;
        for (; c + L <= cols; c += L) {
            FloatVector v0 = FloatVector.fromArray(FS, x, x0 + c);
            FloatVector v1 = FloatVector.fromArray(FS, x, x1 + c);
            FloatVector w0 = FloatVector.fromArray(FS, tile, c);
            FloatVector w1 = FloatVector.fromArray(FS, tile, cols + c);
            FloatVector w2 = FloatVector.fromArray(FS, tile, 2 * cols + c);
            FloatVector w3 = FloatVector.fromArray(FS, tile, 3 * cols + c);
            a00 = w0.fma(v0, a00);
            a01 = w0.fma(v1, a01);
            a10 = w1.fma(v0, a10);
            a11 = w1.fma(v1, a11);
            a20 = w2.fma(v0, a20);
            a21 = w2.fma(v1, a21);
            a30 = w3.fma(v0, a30);
            a31 = w3.fma(v1, a31);
        }
        float s00 = sum(a00), s01 = sum(a01);
        float s10 = sum(a10), s11 = sum(a11);
        float s20 = sum(a20), s21 = sum(a21);
        float s30 = sum(a30), s31 = sum(a31);
        for (; c < cols; c++) {
            float v0 = x[x0 + c];
            float v1 = x[x1 + c];
            s00 += tile[c] * v0;
            s01 += tile[c] * v1;
            s10 += tile[cols + c] * v0;
            s11 += tile[cols + c] * v1;
            s20 += tile[2 * cols + c] * v0;
            s21 += tile[2 * cols + c] * v1;
            s30 += tile[3 * cols + c] * v0;
            s31 += tile[3 * cols + c] * v1;
        }
        int y0 = t * rows + r0;
        int y1 = y0 + rows;
        y[y0] = s00;
        y[y0 + 1] = s10;
        y[y0 + 2] = s20;
        y[y0 + 3] = s30;
        y[y1] = s01;
        y[y1 + 1] = s11;
        y[y1 + 2] = s21;
        y[y1 + 3] = s31;
    }

    /**
     * Four decoded rows times four tokens (t .. t+3): 16 accumulators, 8 loads per 16 fma. Each output's
     * operations are those of {@link #dot4x1} (one accumulator over the columns, folded, then the tail).
     */
    private static void dot4x4(float[] tile, int cols, float[] x, int t, float[] y, int rows, int r0) {
        int x0 = t * cols;
        int x1 = x0 + cols;
        int x2 = x1 + cols;
        int x3 = x2 + cols;
        FloatVector a00 = FloatVector.zero(FS), a01 = FloatVector.zero(FS), a02 = FloatVector.zero(FS), a03 = FloatVector.zero(FS);
        FloatVector a10 = FloatVector.zero(FS), a11 = FloatVector.zero(FS), a12 = FloatVector.zero(FS), a13 = FloatVector.zero(FS);
        FloatVector a20 = FloatVector.zero(FS), a21 = FloatVector.zero(FS), a22 = FloatVector.zero(FS), a23 = FloatVector.zero(FS);
        FloatVector a30 = FloatVector.zero(FS), a31 = FloatVector.zero(FS), a32 = FloatVector.zero(FS), a33 = FloatVector.zero(FS);
        int c = 0;
        for (; c + L <= cols; c += L) {
            FloatVector v0 = FloatVector.fromArray(FS, x, x0 + c);
            FloatVector v1 = FloatVector.fromArray(FS, x, x1 + c);
            FloatVector v2 = FloatVector.fromArray(FS, x, x2 + c);
            FloatVector v3 = FloatVector.fromArray(FS, x, x3 + c);
            FloatVector w = FloatVector.fromArray(FS, tile, c);
            a00 = w.fma(v0, a00);
            a01 = w.fma(v1, a01);
            a02 = w.fma(v2, a02);
            a03 = w.fma(v3, a03);
            w = FloatVector.fromArray(FS, tile, cols + c);
            a10 = w.fma(v0, a10);
            a11 = w.fma(v1, a11);
            a12 = w.fma(v2, a12);
            a13 = w.fma(v3, a13);
            w = FloatVector.fromArray(FS, tile, 2 * cols + c);
            a20 = w.fma(v0, a20);
            a21 = w.fma(v1, a21);
            a22 = w.fma(v2, a22);
            a23 = w.fma(v3, a23);
            w = FloatVector.fromArray(FS, tile, 3 * cols + c);
            a30 = w.fma(v0, a30);
            a31 = w.fma(v1, a31);
            a32 = w.fma(v2, a32);
            a33 = w.fma(v3, a33);
        }
        int y0 = t * rows + r0;
        int y1 = y0 + rows;
        int y2 = y1 + rows;
        int y3 = y2 + rows;
        y[y0 + 0] = finish(a00, tile, 0 * cols, x, x0, c, cols);
        y[y0 + 1] = finish(a10, tile, 1 * cols, x, x0, c, cols);
        y[y0 + 2] = finish(a20, tile, 2 * cols, x, x0, c, cols);
        y[y0 + 3] = finish(a30, tile, 3 * cols, x, x0, c, cols);
        y[y1 + 0] = finish(a01, tile, 0 * cols, x, x1, c, cols);
        y[y1 + 1] = finish(a11, tile, 1 * cols, x, x1, c, cols);
        y[y1 + 2] = finish(a21, tile, 2 * cols, x, x1, c, cols);
        y[y1 + 3] = finish(a31, tile, 3 * cols, x, x1, c, cols);
        y[y2 + 0] = finish(a02, tile, 0 * cols, x, x2, c, cols);
        y[y2 + 1] = finish(a12, tile, 1 * cols, x, x2, c, cols);
        y[y2 + 2] = finish(a22, tile, 2 * cols, x, x2, c, cols);
        y[y2 + 3] = finish(a32, tile, 3 * cols, x, x2, c, cols);
        y[y3 + 0] = finish(a03, tile, 0 * cols, x, x3, c, cols);
        y[y3 + 1] = finish(a13, tile, 1 * cols, x, x3, c, cols);
        y[y3 + 2] = finish(a23, tile, 2 * cols, x, x3, c, cols);
        y[y3 + 3] = finish(a33, tile, 3 * cols, x, x3, c, cols);
    }

    /** One output of the tile kernels: the folded accumulator plus the scalar tail from column c. */
    private static float finish(FloatVector acc, float[] tile, int to, float[] x, int xo, int c, int cols) {
        float s = sum(acc);
        for (; c < cols; c++) {
            s += tile[to + c] * x[xo + c];
        }
        return s;
    }

    /**
     * One token, float weight types: {@link #dot4x1}'s arithmetic with each weight vector decoded in registers
     * straight from the segment instead of from a decoded tile (the same values: {@link #loadF16},
     * {@link #loadBF16} and the scalar tail conversions are what {@link #decodeRow} stores), so matrix-vector
     * products stream the weights once and still give the bits of the tile kernel.
     */
    private static void streamRows(WeightType type, MemorySegment seg, long rowBytes, int cols, float[] x, float[] y,
                                   int from, int to) {
        int r = from;
        for (; r + ROW_TILE <= to; r += ROW_TILE) {
            long o0 = r * rowBytes;
            long o1 = o0 + rowBytes;
            long o2 = o1 + rowBytes;
            long o3 = o2 + rowBytes;
            FloatVector a0 = FloatVector.zero(FS);
            FloatVector a1 = FloatVector.zero(FS);
            FloatVector a2 = FloatVector.zero(FS);
            FloatVector a3 = FloatVector.zero(FS);
            int c = 0;
            for (; c + L <= cols; c += L) {
                FloatVector v = FloatVector.fromArray(FS, x, c);
                a0 = load(type, seg, o0, c).fma(v, a0);
                a1 = load(type, seg, o1, c).fma(v, a1);
                a2 = load(type, seg, o2, c).fma(v, a2);
                a3 = load(type, seg, o3, c).fma(v, a3);
            }
            float s0 = sum(a0);
            float s1 = sum(a1);
            float s2 = sum(a2);
            float s3 = sum(a3);
            for (; c < cols; c++) {
                float v = x[c];
                s0 += element(type, seg, o0, c) * v;
                s1 += element(type, seg, o1, c) * v;
                s2 += element(type, seg, o2, c) * v;
                s3 += element(type, seg, o3, c) * v;
            }
            y[r] = s0;
            y[r + 1] = s1;
            y[r + 2] = s2;
            y[r + 3] = s3;
        }
        for (; r < to; r++) { // the last, partial tile: dot1's order
            long o = r * rowBytes;
            FloatVector a = FloatVector.zero(FS);
            int c = 0;
            for (; c + L <= cols; c += L) {
                a = load(type, seg, o, c).fma(FloatVector.fromArray(FS, x, c), a);
            }
            float s = sum(a);
            for (; c < cols; c++) {
                s += element(type, seg, o, c) * x[c];
            }
            y[r] = s;
        }
    }

    /** L weights from column c of the row at byte {@code rowOff}, as floats (float types only). */
    private static FloatVector load(WeightType type, MemorySegment seg, long rowOff, int c) {
        return switch (type) {
            case F32 -> FloatVector.fromMemorySegment(FS, seg, rowOff + 4L * c, LE);
            case F16 -> loadF16(seg, rowOff + 2L * c);
            case BF16 -> loadBF16(seg, rowOff + 2L * c);
            default -> throw new IllegalArgumentException(type + " is decoded through the tile");
        };
    }

    /** One weight (float types only), converted as {@link #decodeRow} converts its tail. */
    private static float element(WeightType type, MemorySegment seg, long rowOff, int c) {
        return switch (type) {
            case F32 -> seg.get(F32, rowOff + 4L * c);
            case F16 -> Float.float16ToFloat(seg.get(U16, rowOff + 2L * c));
            case BF16 -> Float.intBitsToFloat((seg.get(U16, rowOff + 2L * c) & 0xFFFF) << 16);
            default -> throw new IllegalArgumentException(type + " is decoded through the tile");
        };
    }

    /** Four decoded rows times one token (the odd token left by {@link #dot4x2}). */
    private static void dot4x1(float[] tile, int cols, float[] x, int t, float[] y, int rows, int r0) {
        int x0 = t * cols;
        FloatVector a0 = FloatVector.zero(FS);
        FloatVector a1 = FloatVector.zero(FS);
        FloatVector a2 = FloatVector.zero(FS);
        FloatVector a3 = FloatVector.zero(FS);
        int c = 0;
        for (; c + L <= cols; c += L) {
            FloatVector v = FloatVector.fromArray(FS, x, x0 + c);
            a0 = FloatVector.fromArray(FS, tile, c).fma(v, a0);
            a1 = FloatVector.fromArray(FS, tile, cols + c).fma(v, a1);
            a2 = FloatVector.fromArray(FS, tile, 2 * cols + c).fma(v, a2);
            a3 = FloatVector.fromArray(FS, tile, 3 * cols + c).fma(v, a3);
        }
        float s0 = sum(a0);
        float s1 = sum(a1);
        float s2 = sum(a2);
        float s3 = sum(a3);
        for (; c < cols; c++) {
            float v = x[x0 + c];
            s0 += tile[c] * v;
            s1 += tile[cols + c] * v;
            s2 += tile[2 * cols + c] * v;
            s3 += tile[3 * cols + c] * v;
        }
        int y0 = t * rows + r0;
        y[y0] = s0;
        y[y0 + 1] = s1;
        y[y0 + 2] = s2;
        y[y0 + 3] = s3;
    }

    // =========================================================================================================
    // RWKV-7's WKV recurrence, vectorised over the key index j

    /**
     * {@link Backend#wkv7} with each state row {@code S[i][.]} loaded once: {@code sa_i} (one accumulator,
     * folded), then the updated row {@code fma(S, w, fma(kk a, sa_i, v_i k))}, stored, and {@code out_i}
     * (one accumulator, folded). Every token's arithmetic is the same whatever the call, so results are
     * bit-identical across T, threads and runs (but differ from the scalar loop by summation order). Head sizes
     * that are not a multiple of the vector length take the scalar loop.
     */
    @Override
    public void wkv7(float[] s, int sOff, int heads, int n, float[] r, float[] w, float[] k, float[] v,
                     float[] kk, float[] a, int row, float[] out) {
        if (n % L != 0) {
            Backend.super.wkv7(s, sOff, heads, n, r, w, k, v, kk, a, row, out);
            return;
        }
        float[] kka = KKA.get();
        if (kka.length < n) {
            kka = new float[n];
            KKA.set(kka);
        }
        for (int h = 0; h < heads; h++) {
            int q = row + h * n;
            for (int c = 0; c < n; c += L) {
                FloatVector.fromArray(FS, kk, q + c).mul(FloatVector.fromArray(FS, a, q + c)).intoArray(kka, c);
            }
            int base = sOff + h * n * n;
            for (int i = 0; i < n; i++) {
                int si = base + i * n;
                FloatVector acc = FloatVector.zero(FS);
                for (int c = 0; c < n; c += L) {
                    acc = FloatVector.fromArray(FS, s, si + c).fma(FloatVector.fromArray(FS, kk, q + c), acc);
                }
                FloatVector sa = FloatVector.broadcast(FS, -sum(acc));
                float vi = v[q + i];
                FloatVector o = FloatVector.zero(FS);
                for (int c = 0; c < n; c += L) {
                    FloatVector add = FloatVector.fromArray(FS, kka, c)
                            .fma(sa, FloatVector.fromArray(FS, k, q + c).mul(vi));
                    FloatVector sij = FloatVector.fromArray(FS, s, si + c).fma(FloatVector.fromArray(FS, w, q + c), add);
                    sij.intoArray(s, si + c);
                    o = sij.fma(FloatVector.fromArray(FS, r, q + c), o);
                }
                out[q + i] = sum(o);
            }
        }
    }

    /** Per-thread kk * a of one head. */
    private static final ThreadLocal<float[]> KKA = ThreadLocal.withInitial(() -> new float[64]);

    /**
     * {@code sum_c a[ao + c] * b[bo + c]} with one vector accumulator, folded, then the scalar tail: the same
     * operations in the same order as one output of {@link #dot4x1} or {@link #dot4x2}.
     */
    private static float dot1(float[] a, int ao, float[] b, int bo, int n) {
        FloatVector acc = FloatVector.zero(FS);
        int c = 0;
        for (; c + L <= n; c += L) {
            acc = FloatVector.fromArray(FS, a, ao + c).fma(FloatVector.fromArray(FS, b, bo + c), acc);
        }
        float sum = sum(acc);
        for (; c < n; c++) {
            sum += a[ao + c] * b[bo + c];
        }
        return sum;
    }

    /**
     * Sum of the lanes, by folding halves: v + (v rotated by L/2), then by L/4, ..., by 1; lane 0 then holds the
     * total. Written out instead of {@code reduceLanes(ADD)}, whose float summation order is unspecified and
     * differs between the interpreter's fallback and C2's intrinsic: with explicit lane-wise adds every tier
     * computes the same bits, which the determinism promise above needs.
     */
    private static float sum(FloatVector v) {
        v = v.add(v.rearrange(ROTATE_HALF));
        if (L >= 4) {
            v = v.add(v.rearrange(ROTATE_QUARTER));
        }
        if (L >= 8) {
            v = v.add(v.rearrange(ROTATE_EIGHTH));
        }
        if (L >= 16) {
            v = v.add(v.rearrange(ROTATE_SIXTEENTH));
        }
        return v.lane(0);
    }

    private static int roundUp(int n, int multiple) {
        return (n + multiple - 1) / multiple * multiple;
    }
}
