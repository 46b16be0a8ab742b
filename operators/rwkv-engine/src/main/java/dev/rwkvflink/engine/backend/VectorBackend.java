package dev.rwkvflink.engine.backend;

import static dev.rwkvflink.engine.backend.Lanes.ACCUMULATORS;
import static dev.rwkvflink.engine.backend.Lanes.B16;
import static dev.rwkvflink.engine.backend.Lanes.FS;
import static dev.rwkvflink.engine.backend.Lanes.HS;
import static dev.rwkvflink.engine.backend.Lanes.IS;
import static dev.rwkvflink.engine.backend.Lanes.L;
import static dev.rwkvflink.engine.backend.Lanes.LANE_OF;
import static dev.rwkvflink.engine.backend.Lanes.sum;
import static dev.rwkvflink.engine.backend.Lanes.sumLanes16;

import dev.rwkvflink.engine.tensor.QuantBlock;
import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Collections;
import java.util.EnumSet;
import java.util.Map;
import java.util.Set;
import java.util.WeakHashMap;

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
 * A tile of {@value #ROW_TILE} rows is decoded once into a float scratch array (per thread: fp16 converted by the CPU's
 * F16C instruction, bf16 widened and quant blocks unpacked in registers), then multiplied with every token's input,
 * four tokens at a time where the CPU has 32 vector registers ({@link #dot4x4}: 4 row vectors and 4 input vectors per
 * step, 16 independent fused multiply-adds), three at a time where it has 16 ({@link #dot4x3}, AVX2: see
 * {@link #TOKEN_TILE}), then two, then one. Tokens go in blocks of about 128 KiB of input ({@link #tokenBlock}; the
 * tile is decoded again per block), so the inputs stay in L2 while the chunk's tiles pass over them. One token takes
 * the same tile kernel ({@link #dot4x1}, 4 independent chains) where that reads faster ({@link #ONE_TOKEN_TILES}), else
 * streams its rows ({@link #streamRows}) with the same arithmetic per output, so that an output never depends on how
 * many tokens came with it.
 *
 * <h2>Determinism</h2>
 * Row tiles start at multiples of {@value #ROW_TILE} counted from row 0 and chunk borders fall on tile borders, so each
 * output element is computed by the same operations in the same order whatever the thread count, and whatever the
 * number of tokens (rows) in the call or the row's position among them, hence whatever other streams share a batched
 * call (one vector accumulator over the columns, folded, then the scalar tail: {@link #dot4x4}, {@link #dot4x3},
 * {@link #dot4x2}, {@link #dot4x1}, {@link #dot1} and {@link #streamRows} agree), and lane sums use explicit folding
 * (see {@link #sum}) so the interpreter and every JIT tier agree too: results are bit-identical across thread counts
 * and runs (but differ from {@link ScalarBackend} by summation order).
 *
 * <p>The weights are read through their {@link MemorySegment} with little-endian, unaligned vector loads (rwkv.cpp
 * files put tensors at arbitrary byte offsets). Thread-safe: the only mutable state is per-thread scratch.
 */
public final class VectorBackend implements Backend, AutoCloseable {

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED;

    private static final int QK = QuantBlock.SIZE;
    /** Bytes of a Q8_0 block: fp16 d and 32 byte quants. */
    private static final int Q8_BLOCK = 34;
    /** Rows decoded together in the several-token kernel; chunk borders are multiples of it. */
    static final int ROW_TILE = 4;
    /**
     * Tokens per register tile of the several-token kernel, by vector width: 4 ({@link #dot4x4}: 16 accumulators,
     * 4 inputs and a weight vector) where vectors are 16 floats, which only CPUs with AVX-512 and its 32 vector
     * registers have; else 3 ({@link #dot4x3}: 12 accumulators, 3 inputs and a weight vector fill the 16 registers
     * of AVX2 exactly, where 4 x 4 spills). Measured with {@code -XX:UseAVX=2} on the project's 2-vCPU Xeon
     * (docs/benchmarks.md, issue 19): 0.1B fp32 seq512 256-265 -> 318-319 tokens/s, 4 x 2 alone 301-308.
     * Property {@code rwkv.tokenTile} (2, 3 or 4) overrides. Every output gets the same bits whichever tile.
     */
    static final int TOKEN_TILE = Integer.getInteger("rwkv.tokenTile", L >= 16 ? 4 : 3);
    /** Input floats per token block of the several-token kernel (128 KiB). */
    static final int TOKEN_BLOCK_FLOATS = 32 * 1024;
    /**
     * Below this many multiply-adds (rows x cols x tokens) a call stays on the caller's thread. Low enough that a
     * token's small LoRA products (768 x 64 in the 0.1B shape: 49,152) are shared too: a helper idle during them
     * is bandwidth lost. Measured (issue 19, this project's 2-vCPU Xeon, 0.1B decode, 2 threads, 2 runs each):
     * 2^18 -> 2^14 took fp32 28.6/27.4 -> 29.9/29.6 tokens/s, fp16 38.4/38.5 -> 42.8/43.1 (8 lanes) and
     * 39.9/38.0 -> 42.6/41.2 (16 lanes), Q8_0 41.3/43.3 -> 46.9/45.0 and 46.4/46.1 -> 49.0/53.3; 2^16 keeps the
     * LoRA products serial (fp16 39.2/38.9) and 2^12 gains nothing more (41.4/41.1 vs 41.6/40.9).
     */
    static final long PARALLEL_MIN_MACS = 1L << 14;

    /** Per-thread decoded row tile, grown on demand. */
    private static final ThreadLocal<float[]> TILE = ThreadLocal.withInitial(() -> new float[0]);

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
            throw new IllegalArgumentException(w + ": x has " + x.length + " and y " + y.length
                    + " elements, need " + tokens + " x " + cols + " and " + tokens + " x " + rows);
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

    /**
     * A 4- or 5-bit matrix with its quants widened to bytes, made on its first product and kept while the tensor
     * lives: Q4_0 and Q5_0 blocks become Q8_0 blocks (the same fp16 d, q - 8 or q - 16 as a signed byte), Q4_1 and
     * Q5_1 blocks Q8_0-shaped blocks of the unsigned q with the block minimums m beside them ({@code mins}, one per
     * block in order). The weights are the same floats (w = d * q, or d * q + m, in the same two roundings), so
     * results keep their bits, and the products run the Q8_0 kernels, which need no nibble or fifth-bit unpacking:
     * on one core (3072 x 768, weights in cache) Q8_0 ran at 13.7 GMAC/s, Q4_0 10.5, Q4_1 8.9, Q5_0 8.3, Q5_1 6.8.
     * Costs memory: 34 bytes per block (+ 4 for m) instead of 18-24, besides the original (a mapped file's pages).
     */
    record Bytewise(Tensor q8, float[] mins) {
        private static final Map<Tensor, Bytewise> OF = Collections.synchronizedMap(new WeakHashMap<>());

        /** The bytewise form of a 4- or 5-bit tensor (made once), null for other types. */
        static Bytewise of(Tensor w) {
            return switch (w.type()) {
                case Q4_0, Q4_1, Q5_0, Q5_1 -> OF.computeIfAbsent(w, Bytewise::repack);
                default -> null;
            };
        }

        private static Bytewise repack(Tensor w) {
            WeightType type = w.type();
            MemorySegment src = w.data();
            long blocks = src.byteSize() / type.blockBytes;
            if (blocks > Integer.MAX_VALUE) {
                throw new IllegalArgumentException(w + ": too many blocks to repack");
            }
            MemorySegment dst = Arena.ofAuto().allocate(blocks * Q8_BLOCK, 64);
            float[] mins = type == WeightType.Q4_1 || type == WeightType.Q5_1 ? new float[(int) blocks] : null;
            for (int b = 0; b < blocks; b++) {
                long off = (long) b * type.blockBytes;
                ByteVector lo;
                ByteVector hi;
                switch (type) {
                    case Q4_0 -> {
                        ByteVector qs = ByteVector.fromMemorySegment(B16, src, off + 2, LE);
                        lo = lowNibbles(qs).sub((byte) 8);
                        hi = highNibbles(qs).sub((byte) 8);
                    }
                    case Q4_1 -> {
                        mins[b] = halfAt(src, off + 2);
                        ByteVector qs = ByteVector.fromMemorySegment(B16, src, off + 4, LE);
                        lo = lowNibbles(qs);
                        hi = highNibbles(qs);
                    }
                    case Q5_0 -> {
                        int qh = src.get(U32, off + 2);
                        ByteVector qs = ByteVector.fromMemorySegment(B16, src, off + 6, LE);
                        lo = withBit4(lowNibbles(qs), qh).sub((byte) 16);
                        hi = withBit4(highNibbles(qs), qh >>> 16).sub((byte) 16);
                    }
                    case Q5_1 -> {
                        mins[b] = halfAt(src, off + 2);
                        int qh = src.get(U32, off + 4);
                        ByteVector qs = ByteVector.fromMemorySegment(B16, src, off + 8, LE);
                        lo = withBit4(lowNibbles(qs), qh);
                        hi = withBit4(highNibbles(qs), qh >>> 16);
                    }
                    default -> throw new IllegalArgumentException(type + " is not a 4- or 5-bit type");
                }
                long o = (long) b * Q8_BLOCK;
                dst.set(U16, o, src.get(U16, off)); // d, the same fp16 bits
                lo.intoMemorySegment(dst, o + 2, LE);
                hi.intoMemorySegment(dst, o + 18, LE);
            }
            return new Bytewise(Tensor.of(w.name(), WeightType.Q8_0, w.shape(), dst), mins);
        }
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
     * Output rows [from, to) for all tokens; {@code from} is a multiple of {@link #ROW_TILE}. {@code mins}: the
     * block minimums of a Q8_0-shaped {@link Bytewise} form (w = d * q + m), else null.
     */
    static void computeRows(Tensor w, float[] mins, float[] x, int tokens, float[] y, int from, int to) {
        if (tokens == 1 && !ONE_TOKEN_TILES.contains(w.type())) {
            streamRows(w, mins, x, y, from, to);
        } else {
            tileRows(w, mins, x, tokens, y, from, to);
        }
    }

    /**
     * The weight types whose one-token products take the several-token path ({@link #tileRows}: four rows decoded into
     * a float tile, then {@link #dot4x1}) instead of {@link #streamRows}; chosen by lane count, from measurement. At 8
     * lanes, fp32 and fp16: the four rows are consecutive in memory, so the tile is still filled by one sequential
     * stream, fp16 is converted by the CPU's own instruction ({@link #decodeF16}), and {@link #dot4x1}'s four
     * accumulators share each x load and hide the fma latency that one accumulator per row leaves exposed at 8 lanes
     * (4 lanes: not measured, same reasoning). On this project's 2-vCPU Xeon (issue 19, 2 threads, a 65536 x 768
     * matrix from DRAM, a probe like {@code bench --modes head}): fp32 15.8 -> 18.1 GB/s (the machine reads 21.6-26.1
     * GB/s, {@code bench --modes memory}), fp16 10.1 -> 12.9-16.5 GB/s; 0.1B fp16 decode 28.6 -> 40.1 tokens/s. Not at
     * 16 lanes (fp32 20.5 either way, fp16 16.0 streamed vs 11.7 tiled), nor for bf16 (14.3 streamed vs 11.2 tiled at
     * 8 lanes) or Q8_0 and the bytewise forms (8.2 vs 8.2; 12.0 vs 9.5 at 16 lanes). Either path gives an output the
     * same bits (one accumulator in column order, the same fold and tail). {@code -Drwkv.decode.tiles=F32,F16} (or
     * {@code none}) overrides the choice.
     */
    static final Set<WeightType> ONE_TOKEN_TILES = oneTokenTiles(System.getProperty("rwkv.decode.tiles"));

    static Set<WeightType> oneTokenTiles(String override) {
        EnumSet<WeightType> types = EnumSet.noneOf(WeightType.class);
        if (override == null) {
            if (L <= 8) {
                types.add(WeightType.F32);
                types.add(WeightType.F16);
            }
        } else if (!override.isBlank() && !override.equals("none")) {
            for (String t : override.split(",")) {
                types.add(WeightType.valueOf(t.strip()));
            }
        }
        return Collections.unmodifiableSet(types);
    }

    /**
     * Output rows [from, to) for all tokens from decoded row tiles; {@code from} is a multiple of
     * {@link #ROW_TILE}.
     */
    static void tileRows(Tensor w, float[] mins, float[] x, int tokens, float[] y, int from, int to) {
        tileRows(w, mins, x, tokens, y, from, to, TOKEN_TILE);
    }

    /** {@link #tileRows} with {@code tokenTile} tokens per register tile: 4, 3 or 2 (the same bits each way). */
    static void tileRows(Tensor w, float[] mins, float[] x, int tokens, float[] y, int from, int to, int tokenTile) {
        int rows = w.rows();
        int cols = w.cols();
        WeightType type = w.type();
        MemorySegment seg = w.data();
        long rowBytes = w.rowBytes();
        float[] acc = ACCUMULATORS.get();
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
                    if (mins == null) {
                        decodeRow(type, seg, (r0 + i) * rowBytes, cols, tile, i * cols);
                    } else {
                        decodeQ8Min(seg, (r0 + i) * rowBytes, cols / QK, mins, tile, i * cols);
                    }
                }
                if (n == ROW_TILE) {
                    int t = t0;
                    if (tokenTile == 4) {
                        for (; t + 3 < t1; t += 4) {
                            dot4x4(tile, cols, x, t, y, rows, r0, acc);
                        }
                    } else if (tokenTile == 3) {
                        for (; t + 2 < t1; t += 3) {
                            dot4x3(tile, cols, x, t, y, rows, r0, acc);
                        }
                    }
                    for (; t + 1 < t1; t += 2) {
                        dot4x2(tile, cols, x, t, y, rows, r0, acc);
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

    /**
     * {@link #loadF16} for halves that are not Inf or NaN (exponent field below 31; {@link Tensor#halvesFinite}),
     * in three operations instead of eight:
     * <pre>
     * h            the half sign-extended to 32 bits: bits 31..15 all equal s
     * h &lt;&lt; 13      e and f land in the fp32 exponent/mantissa positions (bits 27..23, 22..13), s in bits 31..28
     * &amp; 0x8FFFFFFF clears bits 30..28, keeping s in bit 31: the float s * 2^(e-127) (1 + f/1024), or the fp32
     *              subnormal s * f * 2^-136 for e = 0
     * * 2^112      exactly the half's value, s * 2^(e-15) (1 + f/1024) or s * f * 2^-24 (zero and subnormals
     *              included, signed zeros kept)
     * </pre>
     * The same floats as {@link #loadF16}; on the project's machine it streams a 65536 x 768 fp16 matrix-vector
     * product 1.7x faster.
     */
    private static FloatVector loadFiniteF16(MemorySegment seg, long off) {
        return widen(seg, off).lanewise(VectorOperators.LSHL, 13).and(0x8FFFFFFF).reinterpretAsFloats().mul(0x1p112f);
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

    /**
     * fp16 row to floats by a plain {@link Float#float16ToFloat} loop, which C2 compiles to the CPU's own
     * conversion (F16C {@code vcvtph2ps}, one instruction per vector, exact for every bit pattern) rather than the
     * bit arithmetic of {@link #loadF16}/{@link #loadFiniteF16}. Measured (issue 19, this project's Xeon, 0.1B fp16,
     * 2 threads): seq512 351-358 -> 427-431 tokens/s at 8 lanes, 402-407 -> 439-476 at 16 lanes.
     */
    private static void decodeF16(MemorySegment seg, long off, int cols, float[] dst, int o) {
        for (int c = 0; c < cols; c++) {
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

    /** A {@link Bytewise} row of unsigned quants with block minimums: d * q + m, as {@link #decodeQ5_1} stores. */
    private static void decodeQ8Min(MemorySegment seg, long rowOff, int blocks, float[] mins, float[] dst, int o) {
        int first = (int) (rowOff / Q8_BLOCK);
        for (int b = 0; b < blocks; b++) {
            long off = rowOff + (long) Q8_BLOCK * b;
            float d = halfAt(seg, off);
            float m = mins[first + b];
            storeQuants(ByteVector.fromMemorySegment(B16, seg, off + 2, LE), d, m, dst, o + QK * b);
            storeQuants(ByteVector.fromMemorySegment(B16, seg, off + 18, LE), d, m, dst, o + QK * b + 16);
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
    private static void dot4x2(float[] tile, int cols, float[] x, int t, float[] y, int rows, int r0, float[] acc) {
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
        // accumulator 2i + t' is row i, token t' (the other 8 slots hold leftovers, summed and ignored)
        a00.intoArray(acc, 0);
        a01.intoArray(acc, L);
        a10.intoArray(acc, 2 * L);
        a11.intoArray(acc, 3 * L);
        a20.intoArray(acc, 4 * L);
        a21.intoArray(acc, 5 * L);
        a30.intoArray(acc, 6 * L);
        a31.intoArray(acc, 7 * L);
        sumLanes16(acc);
        for (int i = 0; i < ROW_TILE; i++) {
            for (int tt = 0; tt < 2; tt++) {
                y[(t + tt) * rows + r0 + i] = tail(acc[LANE_OF[2 * i + tt]], tile, i * cols, x, (t + tt) * cols, c, cols);
            }
        }
    }

    /**
     * Four decoded rows times three tokens (t .. t+2): 12 accumulators, 7 loads per 12 fma, 16 vector registers in
     * all. Each output's operations are those of {@link #dot4x1} (one accumulator over the columns, folded, then the
     * tail).
     */
    private static void dot4x3(float[] tile, int cols, float[] x, int t, float[] y, int rows, int r0, float[] acc) {
        int x0 = t * cols;
        int x1 = x0 + cols;
        int x2 = x1 + cols;
        FloatVector a00 = FloatVector.zero(FS), a01 = FloatVector.zero(FS), a02 = FloatVector.zero(FS);
        FloatVector a10 = FloatVector.zero(FS), a11 = FloatVector.zero(FS), a12 = FloatVector.zero(FS);
        FloatVector a20 = FloatVector.zero(FS), a21 = FloatVector.zero(FS), a22 = FloatVector.zero(FS);
        FloatVector a30 = FloatVector.zero(FS), a31 = FloatVector.zero(FS), a32 = FloatVector.zero(FS);
        int c = 0;
        for (; c + L <= cols; c += L) {
            FloatVector v0 = FloatVector.fromArray(FS, x, x0 + c);
            FloatVector v1 = FloatVector.fromArray(FS, x, x1 + c);
            FloatVector v2 = FloatVector.fromArray(FS, x, x2 + c);
            FloatVector w = FloatVector.fromArray(FS, tile, c);
            a00 = w.fma(v0, a00);
            a01 = w.fma(v1, a01);
            a02 = w.fma(v2, a02);
            w = FloatVector.fromArray(FS, tile, cols + c);
            a10 = w.fma(v0, a10);
            a11 = w.fma(v1, a11);
            a12 = w.fma(v2, a12);
            w = FloatVector.fromArray(FS, tile, 2 * cols + c);
            a20 = w.fma(v0, a20);
            a21 = w.fma(v1, a21);
            a22 = w.fma(v2, a22);
            w = FloatVector.fromArray(FS, tile, 3 * cols + c);
            a30 = w.fma(v0, a30);
            a31 = w.fma(v1, a31);
            a32 = w.fma(v2, a32);
        }
        // accumulator 4i + t' is row i, token t' (slots 4i + 3 hold leftovers, summed and ignored)
        a00.intoArray(acc, 0);
        a01.intoArray(acc, L);
        a02.intoArray(acc, 2 * L);
        a10.intoArray(acc, 4 * L);
        a11.intoArray(acc, 5 * L);
        a12.intoArray(acc, 6 * L);
        a20.intoArray(acc, 8 * L);
        a21.intoArray(acc, 9 * L);
        a22.intoArray(acc, 10 * L);
        a30.intoArray(acc, 12 * L);
        a31.intoArray(acc, 13 * L);
        a32.intoArray(acc, 14 * L);
        sumLanes16(acc);
        for (int i = 0; i < ROW_TILE; i++) {
            for (int tt = 0; tt < 3; tt++) {
                y[(t + tt) * rows + r0 + i] = tail(acc[LANE_OF[4 * i + tt]], tile, i * cols, x, (t + tt) * cols, c, cols);
            }
        }
    }

    /**
     * Four decoded rows times four tokens (t .. t+3): 16 accumulators, 8 loads per 16 fma. Each output's
     * operations are those of {@link #dot4x1} (one accumulator over the columns, folded, then the tail).
     */
    private static void dot4x4(float[] tile, int cols, float[] x, int t, float[] y, int rows, int r0, float[] acc) {
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
        // accumulator 4i + t' is row i, token t'
        a00.intoArray(acc, 0);
        a01.intoArray(acc, L);
        a02.intoArray(acc, 2 * L);
        a03.intoArray(acc, 3 * L);
        a10.intoArray(acc, 4 * L);
        a11.intoArray(acc, 5 * L);
        a12.intoArray(acc, 6 * L);
        a13.intoArray(acc, 7 * L);
        a20.intoArray(acc, 8 * L);
        a21.intoArray(acc, 9 * L);
        a22.intoArray(acc, 10 * L);
        a23.intoArray(acc, 11 * L);
        a30.intoArray(acc, 12 * L);
        a31.intoArray(acc, 13 * L);
        a32.intoArray(acc, 14 * L);
        a33.intoArray(acc, 15 * L);
        sumLanes16(acc);
        for (int i = 0; i < ROW_TILE; i++) {
            for (int tt = 0; tt < 4; tt++) {
                y[(t + tt) * rows + r0 + i] = tail(acc[LANE_OF[4 * i + tt]], tile, i * cols, x, (t + tt) * cols, c, cols);
            }
        }
    }

    /** One output of the tile kernels: its folded accumulator {@code s} plus the scalar tail from column c. */
    private static float tail(float s, float[] tile, int to, float[] x, int xo, int c, int cols) {
        for (; c < cols; c++) {
            s += tile[to + c] * x[xo + c];
        }
        return s;
    }


    /**
     * One token: each output row's dot product with the weights decoded in registers straight from the segment,
     * one row after the other. The arithmetic of an output is {@link #dot1}'s on the row {@link #decodeRow} would
     * decode (the same weight floats: {@link #loadF16}, {@link #loadBF16}, the block unpacking and the scalar tail
     * conversions; one accumulator over the columns, folded, then the tail), so a token gets the bits it gets in
     * a several-token call; but the weights are streamed once with no scratch tile.
     *
     * <p>Row after row, not four rows side by side as the several-token kernels read them: a single sequential
     * stream is what the hardware prefetcher follows; on the project's 2-vCPU EPYC (Zen 4, KVM) four interleaved
     * row streams of a 65536 x 768 matrix read 12 GB/s (f32) and 7 GB/s (fp16) on one core, a single stream
     * 18-20 GB/s.
     */
    static void streamRows(Tensor w, float[] mins, float[] x, float[] y, int from, int to) {
        MemorySegment seg = w.data();
        long rowBytes = w.rowBytes();
        int cols = w.cols();
        RowDot dot = mins == null ? rowDot(w) : (sg, off, n, v) -> dotQ8Min(sg, off, n, v, mins);
        for (int r = from; r < to; r++) {
            y[r] = dot.dot(seg, r * rowBytes, cols, x);
        }
    }

    /** One row's dot product with x, the row's {@code cols} weights read from byte {@code rowOff}. */
    @FunctionalInterface
    private interface RowDot {
        float dot(MemorySegment seg, long rowOff, int cols, float[] x);
    }

    private static RowDot rowDot(Tensor w) {
        return switch (w.type()) {
            case F32 -> VectorBackend::dotF32;
            case F16 -> w.halvesFinite() ? VectorBackend::dotFiniteF16 : VectorBackend::dotF16;
            case BF16 -> VectorBackend::dotBF16;
            case Q8_0 -> VectorBackend::dotQ8_0;
            case Q4_0, Q4_1, Q5_0, Q5_1 -> throw new IllegalArgumentException(w + ": multiplied in its Bytewise form");
        };
    }

    private static float dotF32(MemorySegment seg, long off, int cols, float[] x) {
        FloatVector a = FloatVector.zero(FS);
        int c = 0;
        for (; c + L <= cols; c += L) {
            a = FloatVector.fromMemorySegment(FS, seg, off + 4L * c, LE).fma(FloatVector.fromArray(FS, x, c), a);
        }
        float s = sum(a);
        for (; c < cols; c++) {
            s += seg.get(F32, off + 4L * c) * x[c];
        }
        return s;
    }

    static float dotF16(MemorySegment seg, long off, int cols, float[] x) {
        FloatVector a = FloatVector.zero(FS);
        int c = 0;
        for (; c + L <= cols; c += L) {
            a = loadF16(seg, off + 2L * c).fma(FloatVector.fromArray(FS, x, c), a);
        }
        return f16Tail(sum(a), seg, off, c, cols, x);
    }

    static float dotFiniteF16(MemorySegment seg, long off, int cols, float[] x) {
        FloatVector a = FloatVector.zero(FS);
        int c = 0;
        for (; c + L <= cols; c += L) {
            a = loadFiniteF16(seg, off + 2L * c).fma(FloatVector.fromArray(FS, x, c), a);
        }
        return f16Tail(sum(a), seg, off, c, cols, x);
    }

    private static float f16Tail(float s, MemorySegment seg, long off, int c, int cols, float[] x) {
        for (; c < cols; c++) {
            s += Float.float16ToFloat(seg.get(U16, off + 2L * c)) * x[c];
        }
        return s;
    }

    private static float dotBF16(MemorySegment seg, long off, int cols, float[] x) {
        FloatVector a = FloatVector.zero(FS);
        int c = 0;
        for (; c + L <= cols; c += L) {
            a = loadBF16(seg, off + 2L * c).fma(FloatVector.fromArray(FS, x, c), a);
        }
        float s = sum(a);
        for (; c < cols; c++) {
            s += Float.intBitsToFloat((seg.get(U16, off + 2L * c) & 0xFFFF) << 16) * x[c];
        }
        return s;
    }

    // The block dot products unpack as the block decoders do and accumulate w*x lane by lane in column order
    // (fmaQuants), so they add the same products in the same order as dot1 on the decoded row.

    private static float dotQ8_0(MemorySegment seg, long rowOff, int cols, float[] x) {
        FloatVector a = FloatVector.zero(FS);
        for (int b = 0; b < cols / QK; b++) {
            long off = rowOff + 34L * b;
            float d = halfAt(seg, off);
            a = fmaQuants(ByteVector.fromMemorySegment(B16, seg, off + 2, LE), d, x, QK * b, a);
            a = fmaQuants(ByteVector.fromMemorySegment(B16, seg, off + 18, LE), d, x, QK * b + 16, a);
        }
        return sum(a);
    }

    /** A {@link Bytewise} row with block minimums: the products of {@link #decodeQ8Min}'s weights, in column order. */
    private static float dotQ8Min(MemorySegment seg, long rowOff, int cols, float[] x, float[] mins) {
        int first = (int) (rowOff / Q8_BLOCK);
        FloatVector a = FloatVector.zero(FS);
        for (int b = 0; b < cols / QK; b++) {
            long off = rowOff + (long) Q8_BLOCK * b;
            float d = halfAt(seg, off);
            float m = mins[first + b];
            a = fmaQuants(ByteVector.fromMemorySegment(B16, seg, off + 2, LE), d, m, x, QK * b, a);
            a = fmaQuants(ByteVector.fromMemorySegment(B16, seg, off + 18, LE), d, m, x, QK * b + 16, a);
        }
        return sum(a);
    }

    /** acc + (d * q) * x[o .. o+16), L lanes at a time in column order; q: 16 signed byte lanes. */
    private static FloatVector fmaQuants(ByteVector q, float d, float[] x, int o, FloatVector acc) {
        for (int p = 0; p < 16 / L; p++) {
            acc = ((FloatVector) q.convertShape(VectorOperators.B2F, FS, p)).mul(d)
                    .fma(FloatVector.fromArray(FS, x, o + p * L), acc);
        }
        return acc;
    }

    /** acc + (d * q + m) * x[o .. o+16). */
    private static FloatVector fmaQuants(ByteVector q, float d, float m, float[] x, int o, FloatVector acc) {
        for (int p = 0; p < 16 / L; p++) {
            acc = ((FloatVector) q.convertShape(VectorOperators.B2F, FS, p)).mul(d).add(m)
                    .fma(FloatVector.fromArray(FS, x, o + p * L), acc);
        }
        return acc;
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

    /** {@link Backend#wkv7} vectorised over the key index: {@link Wkv7Kernel}. */
    @Override
    public void wkv7(float[] s, int sOff, int heads, int n, float[] r, float[] w, float[] k, float[] v,
                     float[] kk, float[] a, int row, float[] out) {
        if (n % L != 0) {
            Backend.super.wkv7(s, sOff, heads, n, r, w, k, v, kk, a, row, out);
            return;
        }
        Wkv7Kernel.apply(s, sOff, heads, n, r, w, k, v, kk, a, row, out);
    }


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


    private static int roundUp(int n, int multiple) {
        return (n + multiple - 1) / multiple * multiple;
    }
}
