package dev.rwkvflink.engine.backend;

import static dev.rwkvflink.engine.backend.Lanes.B16;
import static dev.rwkvflink.engine.backend.Lanes.FS;
import static dev.rwkvflink.engine.backend.Lanes.HS;
import static dev.rwkvflink.engine.backend.Lanes.IS;
import static dev.rwkvflink.engine.backend.Lanes.L;

import dev.rwkvflink.engine.tensor.QuantBlock;
import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

/**
 * Reading weights for the vector kernels: little-endian, unaligned vector loads of bf16 and fp16 (widened in
 * registers), quant-block unpacking (nibbles, the fifth bit, scales and minimums), and whole rows decoded into a float
 * array ({@link #decodeRow}: fp16 by the CPU's F16C instruction through {@link Float#float16ToFloat}). The one place
 * each weight type's layout is read. Static, stateless.
 */
final class RowDecoder {
    private RowDecoder() {}

    static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED;

    static final int QK = QuantBlock.SIZE;
    /** Bytes of a Q8_0 block: fp16 d and 32 byte quants. */
    static final int Q8_BLOCK = 34;

    // =========================================================================================================
    // Loading 2-byte floats and unpacking quant blocks in registers

    /** L bf16 values at byte {@code off} as floats: widen 16-bit lanes to 32 and shift them into the top half. */
    static FloatVector loadBF16(MemorySegment seg, long off) {
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
    static FloatVector loadF16(MemorySegment seg, long off) {
        IntVector h = widen(seg, off);
        IntVector em = h.and(0x7FFF).lanewise(VectorOperators.LSHL, 13);
        IntVector mag = em.reinterpretAsFloats()
                .mul(0x1p112f)
                .reinterpretAsInts()
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
    static FloatVector loadFiniteF16(MemorySegment seg, long off) {
        return widen(seg, off)
                .lanewise(VectorOperators.LSHL, 13)
                .and(0x8FFFFFFF)
                .reinterpretAsFloats()
                .mul(0x1p112f);
    }

    /** L little-endian 16-bit lanes at byte {@code off}, sign-extended to 32-bit lanes. */
    static IntVector widen(MemorySegment seg, long off) {
        return (IntVector) ShortVector.fromMemorySegment(HS, seg, off, LE).convertShape(VectorOperators.S2I, IS, 0);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Block types. Each row is a run of 32-element blocks; block b covers x[32b .. 32b + 32). The 16 quant bytes
    // are unpacked with byte-vector ops into two 16-lane vectors of signed q: elements 0..15 ("lo") and 16..31
    // ("hi"), then {@link RowKernels#fmaQuants} widens them to floats, scales per lane (w = d*q, or d*q + m: the same
    // two
    // roundings as Tensor.readRow) and accumulates w*x with fma into one accumulator per half. For the "_1" types
    // the per-lane "+ m" costs one add per vector; the algebraically equal d*sum(q*x) + m*sum(x) would need the
    // sums of x per block, which only pays off when a block is longer than two vectors.

    static float halfAt(MemorySegment seg, long off) {
        return Float.float16ToFloat(seg.get(U16, off));
    }

    static ByteVector lowNibbles(ByteVector qs) {
        return qs.and((byte) 0x0F);
    }

    /** LSHR on byte lanes shifts the unsigned 8-bit value, so this is {@code (qs & 0xFF) >>> 4}. */
    static ByteVector highNibbles(ByteVector qs) {
        return qs.lanewise(VectorOperators.LSHR, 4);
    }

    /**
     * Sets bit 4 (adds 16) in lane j where bit j of {@code bits} is set, j &lt; 16: the qh bits are used directly
     * as a lane mask ({@code VectorMask.fromLong}: lane j is set exactly when bit j is).
     */
    static ByteVector withBit4(ByteVector nibbles, int bits) {
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
    static void decodeF16(MemorySegment seg, long off, int cols, float[] dst, int o) {
        for (int c = 0; c < cols; c++) {
            dst[o + c] = Float.float16ToFloat(seg.get(U16, off + 2L * c));
        }
    }

    static void decodeBF16(MemorySegment seg, long off, int cols, float[] dst, int o) {
        int c = 0;
        for (; c + L <= cols; c += L) {
            loadBF16(seg, off + 2L * c).intoArray(dst, o + c);
        }
        for (; c < cols; c++) {
            dst[o + c] = Float.intBitsToFloat((seg.get(U16, off + 2L * c) & 0xFFFF) << 16);
        }
    }

    /** The block decoders mirror the dot kernels above (same layouts), storing w instead of accumulating w*x. */
    static void decodeQ4_0(MemorySegment seg, long rowOff, int blocks, float[] dst, int o) {
        for (int b = 0; b < blocks; b++) {
            long off = rowOff + 18L * b;
            float d = halfAt(seg, off);
            ByteVector qs = ByteVector.fromMemorySegment(B16, seg, off + 2, LE);
            storeQuants(lowNibbles(qs).sub((byte) 8), d, dst, o + QK * b);
            storeQuants(highNibbles(qs).sub((byte) 8), d, dst, o + QK * b + 16);
        }
    }

    static void decodeQ4_1(MemorySegment seg, long rowOff, int blocks, float[] dst, int o) {
        for (int b = 0; b < blocks; b++) {
            long off = rowOff + 20L * b;
            float d = halfAt(seg, off);
            float m = halfAt(seg, off + 2);
            ByteVector qs = ByteVector.fromMemorySegment(B16, seg, off + 4, LE);
            storeQuants(lowNibbles(qs), d, m, dst, o + QK * b);
            storeQuants(highNibbles(qs), d, m, dst, o + QK * b + 16);
        }
    }

    static void decodeQ5_0(MemorySegment seg, long rowOff, int blocks, float[] dst, int o) {
        for (int b = 0; b < blocks; b++) {
            long off = rowOff + 22L * b;
            float d = halfAt(seg, off);
            int qh = seg.get(U32, off + 2);
            ByteVector qs = ByteVector.fromMemorySegment(B16, seg, off + 6, LE);
            storeQuants(withBit4(lowNibbles(qs), qh).sub((byte) 16), d, dst, o + QK * b);
            storeQuants(withBit4(highNibbles(qs), qh >>> 16).sub((byte) 16), d, dst, o + QK * b + 16);
        }
    }

    static void decodeQ5_1(MemorySegment seg, long rowOff, int blocks, float[] dst, int o) {
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

    static void decodeQ8_0(MemorySegment seg, long rowOff, int blocks, float[] dst, int o) {
        for (int b = 0; b < blocks; b++) {
            long off = rowOff + 34L * b;
            float d = halfAt(seg, off);
            storeQuants(ByteVector.fromMemorySegment(B16, seg, off + 2, LE), d, dst, o + QK * b);
            storeQuants(ByteVector.fromMemorySegment(B16, seg, off + 18, LE), d, dst, o + QK * b + 16);
        }
    }

    /** A {@link Bytewise} row of unsigned quants with block minimums: d * q + m, as {@link #decodeQ5_1} stores. */
    static void decodeQ8Min(MemorySegment seg, long rowOff, int blocks, float[] mins, float[] dst, int o) {
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
    static void storeQuants(ByteVector q, float d, float[] dst, int o) {
        for (int p = 0; p < 16 / L; p++) {
            ((FloatVector) q.convertShape(VectorOperators.B2F, FS, p)).mul(d).intoArray(dst, o + p * L);
        }
    }

    /** dst[o .. o+16) = d * q + m. */
    static void storeQuants(ByteVector q, float d, float m, float[] dst, int o) {
        for (int p = 0; p < 16 / L; p++) {
            ((FloatVector) q.convertShape(VectorOperators.B2F, FS, p))
                    .mul(d)
                    .add(m)
                    .intoArray(dst, o + p * L);
        }
    }
}
