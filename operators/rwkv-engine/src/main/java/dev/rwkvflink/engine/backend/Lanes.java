package dev.rwkvflink.engine.backend;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The vector width the CPU kernels run at (the preferred species: 16 float lanes with AVX-512, 8 with AVX2, 4 with
 * {@code -XX:MaxVectorSize=16}) and the deterministic lane sums they all use: {@link #sum} folds one vector,
 * {@link #sumLanes16} sixteen at once, each by explicit lane-wise adds in a fixed order, so that the interpreter
 * and every JIT tier compute the same bits (see {@link VectorBackend}'s determinism note).
 */
final class Lanes {
    static final VectorSpecies<Float> FS = FloatVector.SPECIES_PREFERRED;
    /** Float lanes per vector (16 with AVX-512, 8 with AVX2). */
    static final int L = FS.length();
    /** Same lane count, 16-bit lanes (fp16/bf16 loads) and 32-bit lanes (their widening). */
    static final VectorSpecies<Short> HS =
            ShortVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(FS.vectorBitSize() / 2));

    static final VectorSpecies<Integer> IS = IntVector.SPECIES_PREFERRED.withShape(FS.vectorShape());
    /** 16 byte lanes: half a quant block. */
    static final VectorSpecies<Byte> B16 = ByteVector.SPECIES_128;

    /** Lane i takes lane (i + L/2^k) mod L: the folding steps of {@link #sum}. */
    static final VectorShuffle<Float> ROTATE_HALF = VectorShuffle.iota(FS, L / 2, 1, true);

    static final VectorShuffle<Float> ROTATE_QUARTER = VectorShuffle.iota(FS, Math.max(1, L / 4), 1, true);
    static final VectorShuffle<Float> ROTATE_EIGHTH = VectorShuffle.iota(FS, Math.max(1, L / 8), 1, true);
    static final VectorShuffle<Float> ROTATE_SIXTEENTH = VectorShuffle.iota(FS, Math.max(1, L / 16), 1, true);
    /** Lane i takes lane (i - s) mod L, s = 4, 2, 1 (the other direction of the quarter, eighth, sixteenth). */
    static final VectorShuffle<Float> ROTATE_BACK_QUARTER = VectorShuffle.iota(FS, L - Math.max(1, L / 4), 1, true);

    static final VectorShuffle<Float> ROTATE_BACK_EIGHTH = VectorShuffle.iota(FS, L - Math.max(1, L / 8), 1, true);
    static final VectorShuffle<Float> ROTATE_BACK_SIXTEENTH = VectorShuffle.iota(FS, L - Math.max(1, L / 16), 1, true);
    /** Lanes whose index has bit s set, s = 8, 4, 2, 1: where {@link #sumLanes16} takes the pair's second vector. */
    static final VectorMask<Float> BIT_8 = laneBit(8);

    static final VectorMask<Float> BIT_4 = laneBit(4);
    static final VectorMask<Float> BIT_2 = laneBit(2);
    static final VectorMask<Float> BIT_1 = laneBit(1);
    /** Accumulators {@link #sumLanes16} folds at once. */
    static final int SUMS = 16;
    /** Where {@link #sumLanes16} leaves accumulator a's sum: at offset LANE_OF[a]. */
    static final int[] LANE_OF = lanesOfSums();
    /** Per-thread stored accumulators for {@link #sumLanes16}. */
    static final ThreadLocal<float[]> ACCUMULATORS = ThreadLocal.withInitial(() -> new float[SUMS * L]);

    private Lanes() {}

    /**
     * Sum of the lanes, by folding halves: v + (v rotated by L/2), then by L/4, ..., by 1; lane 0 then holds the
     * total. Written out instead of {@code reduceLanes(ADD)}, whose float summation order is unspecified and
     * differs between the interpreter's fallback and C2's intrinsic: with explicit lane-wise adds every tier
     * computes the same bits, which the determinism promise above needs.
     */
    static float sum(FloatVector v) {
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

    /**
     * The lane sums of the {@value #SUMS} vectors stored in {@code acc} (vector a at a*L), each folded exactly as
     * {@link #sum} folds it, left at {@code acc[LANE_OF[a]]}. With 16 lanes the 16 folds run side by side: each
     * level pairs vectors p, q and computes in one vector
     * <pre>
     * p.blend(q.rearrange(back s), lanes with bit s) + p.rearrange(forward s).blend(q, lanes with bit s)
     * </pre>
     * which holds p_i + p_(i+s) where bit s of i is clear and q_(i-s) + q_i where it is set: the additions of
     * sum's fold step s, for both vectors at once (the partial sums of each accumulator stay in lanes whose lower
     * bits match its own). Four levels (s = 8, 4, 2, 1: 15 pairings) give all 16 sums in one vector, instead of
     * 16 folds of 4 dependent steps. Other lane counts fold one vector at a time.
     */
    static void sumLanes16(float[] acc) {
        if (L != 16) {
            for (int a = 0; a < SUMS; a++) { // result a lands at a <= a*L, in a vector already read
                acc[a] = sum(FloatVector.fromArray(FS, acc, a * L));
            }
            return;
        }
        for (int j = 0; j < 8; j++) {
            FloatVector p = FloatVector.fromArray(FS, acc, 2 * j * L);
            FloatVector q = FloatVector.fromArray(FS, acc, (2 * j + 1) * L);
            p.blend(q.rearrange(ROTATE_HALF), BIT_8)
                    .add(p.rearrange(ROTATE_HALF).blend(q, BIT_8))
                    .intoArray(acc, j * L);
        }
        for (int j = 0; j < 4; j++) {
            FloatVector p = FloatVector.fromArray(FS, acc, 2 * j * L);
            FloatVector q = FloatVector.fromArray(FS, acc, (2 * j + 1) * L);
            p.blend(q.rearrange(ROTATE_BACK_QUARTER), BIT_4)
                    .add(p.rearrange(ROTATE_QUARTER).blend(q, BIT_4))
                    .intoArray(acc, j * L);
        }
        for (int j = 0; j < 2; j++) {
            FloatVector p = FloatVector.fromArray(FS, acc, 2 * j * L);
            FloatVector q = FloatVector.fromArray(FS, acc, (2 * j + 1) * L);
            p.blend(q.rearrange(ROTATE_BACK_EIGHTH), BIT_2)
                    .add(p.rearrange(ROTATE_EIGHTH).blend(q, BIT_2))
                    .intoArray(acc, j * L);
        }
        FloatVector p = FloatVector.fromArray(FS, acc, 0);
        FloatVector q = FloatVector.fromArray(FS, acc, L);
        p.blend(q.rearrange(ROTATE_BACK_SIXTEENTH), BIT_1)
                .add(p.rearrange(ROTATE_SIXTEENTH).blend(q, BIT_1))
                .intoArray(acc, 0);
    }

    private static VectorMask<Float> laneBit(int bit) {
        boolean[] set = new boolean[L];
        for (int i = 0; i < L; i++) {
            set[i] = (i & bit) != 0;
        }
        return VectorMask.fromArray(FS, set, 0);
    }

    /** LANE_OF, found by folding vectors whose only nonzero lane is lane 0 = a + 1 (exact sums). */
    private static int[] lanesOfSums() {
        float[] acc = new float[SUMS * L];
        for (int a = 0; a < SUMS; a++) {
            acc[a * L] = a + 1;
        }
        sumLanes16(acc);
        int[] laneOf = new int[SUMS];
        for (int i = 0; i < SUMS; i++) {
            laneOf[(int) acc[i] - 1] = i;
        }
        return laneOf;
    }
}
