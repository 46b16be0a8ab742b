package dev.rwkvflink.engine.backend;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The machine's memory read bandwidth as the kernels see it: a buffer much larger than the caches, summed with
 * vector loads by a backend's own threads ({@link Backend#forRows}), four accumulators so that nothing but the
 * loads limits it. The ceiling for one-token (decode) products, which read every weight once per token: a
 * product at this rate is memory-bound, one below it is bound by its instructions. {@code bench --modes memory}.
 */
public final class MemoryProbe implements AutoCloseable {
    private static final VectorSpecies<Float> FS = FloatVector.SPECIES_PREFERRED;
    /** Bytes summed by one piece of work: 256 KiB, many pieces per thread. */
    private static final long PIECE = 256 * 1024;

    private final Arena arena = Arena.ofShared();
    private final MemorySegment buffer;
    private final int pieces;
    private volatile float sink;

    /** A buffer of {@code bytes} (rounded down to whole pieces), filled so that its pages are really there. */
    public MemoryProbe(long bytes) {
        pieces = (int) Math.max(1, bytes / PIECE);
        buffer = arena.allocate(pieces * PIECE, 4096);
        for (long i = 0; i < buffer.byteSize(); i += 4) {
            buffer.set(ValueLayout.JAVA_FLOAT_UNALIGNED, i, (i & 0xFFFF) * 1e-6f);
        }
    }

    public long bytes() {
        return buffer.byteSize();
    }

    /** Reads the whole buffer once with {@code backend}'s threads; returns the seconds it took. */
    public double readOnce(Backend backend) {
        float[] sums = new float[pieces];
        long start = System.nanoTime();
        backend.forRows(pieces, (int) PIECE, (from, to) -> {
            for (int p = from; p < to; p++) {
                sums[p] = sumPiece(p * PIECE);
            }
        });
        double secs = (System.nanoTime() - start) / 1e9;
        float s = 0;
        for (float v : sums) {
            s += v;
        }
        sink = s; // keeps the loads from being optimised away
        return secs;
    }

    private float sumPiece(long off) {
        int step = FS.length() * 4;
        FloatVector a0 = FloatVector.zero(FS);
        FloatVector a1 = FloatVector.zero(FS);
        FloatVector a2 = FloatVector.zero(FS);
        FloatVector a3 = FloatVector.zero(FS);
        for (long o = off; o < off + PIECE; o += 4L * step) {
            a0 = a0.add(FloatVector.fromMemorySegment(FS, buffer, o, ByteOrder.LITTLE_ENDIAN));
            a1 = a1.add(FloatVector.fromMemorySegment(FS, buffer, o + step, ByteOrder.LITTLE_ENDIAN));
            a2 = a2.add(FloatVector.fromMemorySegment(FS, buffer, o + 2L * step, ByteOrder.LITTLE_ENDIAN));
            a3 = a3.add(FloatVector.fromMemorySegment(FS, buffer, o + 3L * step, ByteOrder.LITTLE_ENDIAN));
        }
        return a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
    }

    @Override
    public void close() {
        arena.close();
    }
}
