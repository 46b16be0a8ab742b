package dev.rwkvflink.engine.backend;

import static dev.rwkvflink.engine.backend.Lanes.B16;
import static dev.rwkvflink.engine.backend.RowDecoder.LE;
import static dev.rwkvflink.engine.backend.RowDecoder.Q8_BLOCK;
import static dev.rwkvflink.engine.backend.RowDecoder.U16;
import static dev.rwkvflink.engine.backend.RowDecoder.U32;
import static dev.rwkvflink.engine.backend.RowDecoder.halfAt;
import static dev.rwkvflink.engine.backend.RowDecoder.highNibbles;
import static dev.rwkvflink.engine.backend.RowDecoder.lowNibbles;
import static dev.rwkvflink.engine.backend.RowDecoder.withBit4;

import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Collections;
import java.util.Map;
import java.util.WeakHashMap;
import jdk.incubator.vector.ByteVector;

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
