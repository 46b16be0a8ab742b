package dev.rwkvflink.engine.backend;

import static dev.rwkvflink.engine.backend.Lanes.B16;
import static dev.rwkvflink.engine.backend.Lanes.FS;
import static dev.rwkvflink.engine.backend.Lanes.L;
import static dev.rwkvflink.engine.backend.Lanes.sum;
import static dev.rwkvflink.engine.backend.RowDecoder.F32;
import static dev.rwkvflink.engine.backend.RowDecoder.LE;
import static dev.rwkvflink.engine.backend.RowDecoder.Q8_BLOCK;
import static dev.rwkvflink.engine.backend.RowDecoder.QK;
import static dev.rwkvflink.engine.backend.RowDecoder.U16;
import static dev.rwkvflink.engine.backend.RowDecoder.halfAt;
import static dev.rwkvflink.engine.backend.RowDecoder.loadBF16;
import static dev.rwkvflink.engine.backend.RowDecoder.loadF16;
import static dev.rwkvflink.engine.backend.RowDecoder.loadFiniteF16;

import dev.rwkvflink.engine.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/**
 * The one-token products that stream each weight row once, decoding it in registers ({@link #streamRows}, one row
 * kernel per weight type: {@link #rowDot}): for the types where that reads faster than decoding row tiles (see
 * {@link TileKernels#ONE_TOKEN_TILES}). Each output is the same operations in the same order as in
 * {@link TileKernels}, so an output never depends on how many tokens came with it. Static, stateless.
 */
final class RowKernels {
    private RowKernels() {}

    /**
     * One token: each output row's dot product with the weights decoded in registers straight from the segment,
     * one row after the other. The arithmetic of an output is {@link TileKernels#dot1}'s on the row {@link RowDecoder#decodeRow} would
     * decode (the same weight floats: {@link RowDecoder#loadF16}, {@link RowDecoder#loadBF16}, the block unpacking and the scalar tail
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
    interface RowDot {
        float dot(MemorySegment seg, long rowOff, int cols, float[] x);
    }

    static RowDot rowDot(Tensor w) {
        return switch (w.type()) {
            case F32 -> RowKernels::dotF32;
            case F16 -> w.halvesFinite() ? RowKernels::dotFiniteF16 : RowKernels::dotF16;
            case BF16 -> RowKernels::dotBF16;
            case Q8_0 -> RowKernels::dotQ8_0;
            case Q4_0, Q4_1, Q5_0, Q5_1 -> throw new IllegalArgumentException(w + ": multiplied in its Bytewise form");
        };
    }

    static float dotF32(MemorySegment seg, long off, int cols, float[] x) {
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

    static float f16Tail(float s, MemorySegment seg, long off, int c, int cols, float[] x) {
        for (; c < cols; c++) {
            s += Float.float16ToFloat(seg.get(U16, off + 2L * c)) * x[c];
        }
        return s;
    }

    static float dotBF16(MemorySegment seg, long off, int cols, float[] x) {
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

    static float dotQ8_0(MemorySegment seg, long rowOff, int cols, float[] x) {
        FloatVector a = FloatVector.zero(FS);
        for (int b = 0; b < cols / QK; b++) {
            long off = rowOff + 34L * b;
            float d = halfAt(seg, off);
            a = fmaQuants(ByteVector.fromMemorySegment(B16, seg, off + 2, LE), d, x, QK * b, a);
            a = fmaQuants(ByteVector.fromMemorySegment(B16, seg, off + 18, LE), d, x, QK * b + 16, a);
        }
        return sum(a);
    }

    /** A {@link Bytewise} row with block minimums: the products of {@link RowDecoder#decodeQ8Min}'s weights, in column order. */
    static float dotQ8Min(MemorySegment seg, long rowOff, int cols, float[] x, float[] mins) {
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
    static FloatVector fmaQuants(ByteVector q, float d, float[] x, int o, FloatVector acc) {
        for (int p = 0; p < 16 / L; p++) {
            acc = ((FloatVector) q.convertShape(VectorOperators.B2F, FS, p))
                    .mul(d)
                    .fma(FloatVector.fromArray(FS, x, o + p * L), acc);
        }
        return acc;
    }

    /** acc + (d * q + m) * x[o .. o+16). */
    static FloatVector fmaQuants(ByteVector q, float d, float m, float[] x, int o, FloatVector acc) {
        for (int p = 0; p < 16 / L; p++) {
            acc = ((FloatVector) q.convertShape(VectorOperators.B2F, FS, p))
                    .mul(d)
                    .add(m)
                    .fma(FloatVector.fromArray(FS, x, o + p * L), acc);
        }
        return acc;
    }
}
