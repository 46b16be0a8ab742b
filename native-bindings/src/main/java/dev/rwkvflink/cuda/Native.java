package dev.rwkvflink.cuda;

import java.lang.foreign.MemorySegment;

/** Small helpers shared by the downcall classes. */
final class Native {
    private Native() {}

    /**
     * What a {@code catch (Throwable t)} around {@code invokeExact} rethrows: runtime exceptions (our own
     * {@link CudaException} among them) and errors as they are; anything else, which a downcall cannot
     * throw, wrapped.
     */
    static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException e) {
            return e;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException(t);
    }

    /** The NUL-terminated UTF-8 string at {@code pointer}, or {@code fallback} for a null pointer. */
    @SuppressWarnings("restricted") // a C string from the library: its length is found by reading it
    static String string(MemorySegment pointer, String fallback) {
        if (pointer.equals(MemorySegment.NULL)) {
            return fallback;
        }
        return pointer.reinterpret(Long.MAX_VALUE).getString(0);
    }
}
