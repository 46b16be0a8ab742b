package dev.rwkvflink.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Page-locked host memory from {@link CudaDevice#allocPinned(long)}: the host side of asynchronous copies that
 * overlap with kernels. Read and written through {@link #segment()}, which becomes unusable once the memory is
 * freed by {@link #close()}.
 */
public final class PinnedMemory extends DeviceResource {
    private final MemorySegment pointer;
    private final Arena arena;
    private final MemorySegment segment;

    @SuppressWarnings("restricted") // gives the driver's pointer its size and a lifetime
    PinnedMemory(CudaDevice device, MemorySegment pointer, long bytes) {
        super(device);
        this.pointer = pointer;
        this.arena = Arena.ofShared();
        this.segment = pointer.reinterpret(bytes, arena, null);
    }

    /** The memory as a segment of exactly the allocated size; closed together with this object. */
    public MemorySegment segment() {
        return segment;
    }

    /** The host address. */
    public long address() {
        return pointer.address();
    }

    /** Invalidates {@link #segment()} and frees the memory ({@code cuMemFreeHost}); idempotent. */
    @Override
    void release() {
        arena.close();
        DriverApi.cuMemFreeHost(pointer);
    }
}
