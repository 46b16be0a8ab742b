package dev.rwkvflink.engine.format;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * The memory a model loader may take beyond the file's own bytes: inflated archive entries, copies of
 * non-contiguous views, tensors converted to fp32. A real checkpoint needs at most about its own size again (every
 * matrix stored transposed, or bf16 vectors widened to fp32); a hostile one can ask for far more from a few
 * megabytes (one compressed blob that many entries share, one storage viewed through many strided tensors). So
 * the ceiling is set from the file's size:
 * <pre>
 *   limit = 8 x file size + 256 MiB
 * </pre>
 * and every allocation of a loader goes through this arena, which refuses, naming the file and what was being
 * loaded, the first one that would pass it. The same limit bounds the bytes the tensors of a state dict declare
 * ({@link #checkDeclared}).
 */
final class LoadBudget implements Arena {
    static final long SLACK = 256L << 20;
    static final int FACTOR = 8;

    private final Arena arena;
    private final String file;
    private final long limit;
    private long used;

    LoadBudget(Arena arena, String file, long fileSize) {
        this.arena = arena;
        this.file = file;
        this.limit = limitFor(fileSize);
    }

    static long limitFor(long fileSize) {
        return fileSize > (Long.MAX_VALUE - SLACK) / FACTOR ? Long.MAX_VALUE : FACTOR * fileSize + SLACK;
    }

    long limit() {
        return limit;
    }

    long used() {
        return used;
    }

    /** Refuses when {@code bytes} more would pass the limit; otherwise counts them. */
    void charge(long bytes, String what) {
        if (bytes < 0 || bytes > limit - used) {
            throw new IllegalArgumentException(what + " needs " + bytes + " bytes of memory beyond the file, "
                    + used + " already taken: more than the " + limit + " a " + file + " of this size may take "
                    + "(" + FACTOR + " x its size + " + (SLACK >> 20) + " MiB); the file is corrupt or hostile");
        }
        used += bytes;
    }

    /** Refuses a state dict whose tensors declare more bytes, all together, than the limit. */
    void checkDeclared(long declaredBytes) {
        if (declaredBytes < 0 || declaredBytes > limit) {
            throw new IllegalArgumentException(
                    "its tensors declare " + (declaredBytes < 0 ? "over 2^63" : declaredBytes)
                            + " bytes, more than the " + limit + " a " + file + " of this size may hold ("
                            + FACTOR + " x its size + " + (SLACK >> 20) + " MiB): the file is corrupt or hostile");
        }
    }

    @Override
    public MemorySegment allocate(long byteSize, long byteAlignment) {
        charge(byteSize, "loading");
        return arena.allocate(byteSize, byteAlignment);
    }

    @Override
    public MemorySegment.Scope scope() {
        return arena.scope();
    }

    /** The loaded weights keep the underlying arena; {@link WeightFile} closes it. */
    @Override
    public void close() {
        throw new UnsupportedOperationException("a load budget is not closed; its WeightFile closes the arena");
    }
}
