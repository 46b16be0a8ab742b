package dev.rwkvflink.engine.backend;

import static dev.rwkvflink.engine.backend.Lanes.ACCUMULATORS;
import static dev.rwkvflink.engine.backend.Lanes.FS;
import static dev.rwkvflink.engine.backend.Lanes.L;
import static dev.rwkvflink.engine.backend.Lanes.LANE_OF;
import static dev.rwkvflink.engine.backend.Lanes.sum;
import static dev.rwkvflink.engine.backend.Lanes.sumLanes16;
import static dev.rwkvflink.engine.backend.RowDecoder.QK;
import static dev.rwkvflink.engine.backend.RowDecoder.decodeQ8Min;
import static dev.rwkvflink.engine.backend.RowDecoder.decodeRow;

import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import java.lang.foreign.MemorySegment;
import java.util.Collections;
import java.util.EnumSet;
import java.util.Set;
import jdk.incubator.vector.FloatVector;

/**
 * The several-token products: a tile of {@value #ROW_TILE} rows decoded once into a per-thread float array, then
 * multiplied with every token's input, {@link #TOKEN_TILE} tokens per register tile ({@link #dot4x4} where the CPU has
 * 32 vector registers, {@link #dot4x3} where it has 16, then {@link #dot4x2}, then one token: {@link #dot4x1}), tokens
 * in blocks whose inputs stay in L2 ({@link #tokenBlock}). Every output is one vector accumulator over the columns in
 * order, folded by {@link Lanes#sum}, then the scalar tail: the same bits as {@link RowKernels#streamRows}, whatever
 * the tile. Static, stateless but for the per-thread tile.
 */
final class TileKernels {
    private TileKernels() {}

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

    /** Per-thread decoded row tile, grown on demand. */
    static final ThreadLocal<float[]> TILE = ThreadLocal.withInitial(() -> new float[0]);

    /**
     * The weight types whose one-token products take the several-token path ({@link #tileRows}: four rows decoded into
     * a float tile, then {@link #dot4x1}) instead of {@link RowKernels#streamRows}; chosen by lane count, from measurement. At 8
     * lanes, fp32 and fp16: the four rows are consecutive in memory, so the tile is still filled by one sequential
     * stream, fp16 is converted by the CPU's own instruction ({@link RowDecoder#decodeF16}), and {@link #dot4x1}'s four
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

    /**
     * Four decoded rows (tile[i*cols ..], i &lt; 4) times two tokens (x rows t and t+1):
     * {@code y[t'][r0+i] = sum_c tile[i][c] * x[t'][c]}. 8 accumulators, 6 loads per 8 fma.
     */
    static void dot4x2(float[] tile, int cols, float[] x, int t, float[] y, int rows, int r0, float[] acc) {
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
                y[(t + tt) * rows + r0 + i] =
                        tail(acc[LANE_OF[2 * i + tt]], tile, i * cols, x, (t + tt) * cols, c, cols);
            }
        }
    }

    /**
     * Four decoded rows times three tokens (t .. t+2): 12 accumulators, 7 loads per 12 fma, 16 vector registers in
     * all. Each output's operations are those of {@link #dot4x1} (one accumulator over the columns, folded, then the
     * tail).
     */
    static void dot4x3(float[] tile, int cols, float[] x, int t, float[] y, int rows, int r0, float[] acc) {
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
                y[(t + tt) * rows + r0 + i] =
                        tail(acc[LANE_OF[4 * i + tt]], tile, i * cols, x, (t + tt) * cols, c, cols);
            }
        }
    }

    /**
     * Four decoded rows times four tokens (t .. t+3): 16 accumulators, 8 loads per 16 fma. Each output's
     * operations are those of {@link #dot4x1} (one accumulator over the columns, folded, then the tail).
     */
    static void dot4x4(float[] tile, int cols, float[] x, int t, float[] y, int rows, int r0, float[] acc) {
        int x0 = t * cols;
        int x1 = x0 + cols;
        int x2 = x1 + cols;
        int x3 = x2 + cols;
        FloatVector a00 = FloatVector.zero(FS),
                a01 = FloatVector.zero(FS),
                a02 = FloatVector.zero(FS),
                a03 = FloatVector.zero(FS);
        FloatVector a10 = FloatVector.zero(FS),
                a11 = FloatVector.zero(FS),
                a12 = FloatVector.zero(FS),
                a13 = FloatVector.zero(FS);
        FloatVector a20 = FloatVector.zero(FS),
                a21 = FloatVector.zero(FS),
                a22 = FloatVector.zero(FS),
                a23 = FloatVector.zero(FS);
        FloatVector a30 = FloatVector.zero(FS),
                a31 = FloatVector.zero(FS),
                a32 = FloatVector.zero(FS),
                a33 = FloatVector.zero(FS);
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
                y[(t + tt) * rows + r0 + i] =
                        tail(acc[LANE_OF[4 * i + tt]], tile, i * cols, x, (t + tt) * cols, c, cols);
            }
        }
    }

    /** One output of the tile kernels: its folded accumulator {@code s} plus the scalar tail from column c. */
    static float tail(float s, float[] tile, int to, float[] x, int xo, int c, int cols) {
        for (; c < cols; c++) {
            s += tile[to + c] * x[xo + c];
        }
        return s;
    }

    /** Four decoded rows times one token (the odd token left by {@link #dot4x2}). */
    static void dot4x1(float[] tile, int cols, float[] x, int t, float[] y, int rows, int r0) {
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

    /**
     * {@code sum_c a[ao + c] * b[bo + c]} with one vector accumulator, folded, then the scalar tail: the same
     * operations in the same order as one output of {@link #dot4x1} or {@link #dot4x2}.
     */
    static float dot1(float[] a, int ao, float[] b, int bo, int n) {
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
}
