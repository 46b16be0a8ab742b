package dev.rwkvflink.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * One GPU and its primary context (the context the CUDA runtime and cuBLAS also use). Obtained from
 * {@link Cuda#device(int)}, which shares one object per ordinal.
 *
 * <p>The driver binds a context to an OS thread. Every method here, and every method of the objects made from
 * this device, makes the primary context current on the calling thread first, so any thread may use them. That
 * is cheap: on platform threads the last device made current is remembered per thread and the driver call is
 * skipped when it matches. Code that switches contexts behind this class's back (another CUDA library) should
 * call {@link #makeCurrent()} afterwards.
 *
 * <p>Properties are read once when the device is opened.
 */
public final class CudaDevice implements AutoCloseable {
    /** The device whose context this platform thread last made current through this class. */
    private static final ThreadLocal<CudaDevice> CURRENT = new ThreadLocal<>();

    private final int ordinal;
    private final int device;
    private final MemorySegment context;
    private final String name;
    private final long totalMemory;
    private final int multiprocessors;
    private final int computeMajor;
    private final int computeMinor;
    private final int l2CacheBytes;
    private final int maxSharedMemoryPerBlockOptin;
    private volatile boolean closed;

    private CudaDevice(int ordinal, int device, MemorySegment context) {
        this.ordinal = ordinal;
        this.device = device;
        this.context = context;
        this.name = DriverApi.cuDeviceGetName(device);
        this.totalMemory = DriverApi.cuDeviceTotalMem(device);
        this.multiprocessors = attribute(DriverApi.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        this.computeMajor = attribute(DriverApi.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        this.computeMinor = attribute(DriverApi.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        this.l2CacheBytes = attribute(DriverApi.CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE);
        this.maxSharedMemoryPerBlockOptin = attribute(DriverApi.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
    }

    /** {@code cuInit}, {@code cuDeviceGet}, {@code cuDevicePrimaryCtxRetain}; called by {@link Cuda#device(int)}. */
    static CudaDevice open(int ordinal) {
        DriverApi.cuInit(0);
        int device = DriverApi.cuDeviceGet(ordinal);
        MemorySegment context = DriverApi.cuDevicePrimaryCtxRetain(device);
        try {
            CudaDevice opened = new CudaDevice(ordinal, device, context);
            opened.makeCurrent();
            return opened;
        } catch (RuntimeException e) {
            DriverApi.cuDevicePrimaryCtxRelease(device);
            throw e;
        }
    }

    /** The architecture name NVRTC and nvcc use for a compute capability, e.g. {@code sm_90} for 9.0. */
    static String arch(int major, int minor) {
        return "sm_" + major + minor;
    }

    private int attribute(int attribute) {
        return DriverApi.cuDeviceGetAttribute(attribute, device);
    }

    /** The device's product name, e.g. {@code NVIDIA H100 80GB HBM3}. */
    public String name() {
        return name;
    }

    /** The ordinal this device was opened with. */
    public int ordinal() {
        return ordinal;
    }

    /** Streaming multiprocessors ({@code CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT}). */
    public int multiprocessors() {
        return multiprocessors;
    }

    /** Total device memory in bytes ({@code cuDeviceTotalMem_v2}). */
    public long totalMemory() {
        return totalMemory;
    }

    /** Compute capability, major part (9 for an H100). */
    public int computeMajor() {
        return computeMajor;
    }

    /** Compute capability, minor part (0 for an H100). */
    public int computeMinor() {
        return computeMinor;
    }

    /** The real architecture to compile for, from the compute capability: {@code sm_90} for 9.0. */
    public String arch() {
        return arch(computeMajor, computeMinor);
    }

    /** L2 cache size in bytes ({@code CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE}). */
    public int l2CacheBytes() {
        return l2CacheBytes;
    }

    /**
     * The most shared memory one block may use after opting in with
     * {@link CudaKernel#setMaxDynamicSharedMemory(int)} ({@code CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN}).
     */
    public int maxSharedMemoryPerBlockOptin() {
        return maxSharedMemoryPerBlockOptin;
    }

    /** Makes this device's primary context current on the calling thread ({@code cuCtxSetCurrent}), always. */
    public void makeCurrent() {
        checkOpen();
        DriverApi.cuCtxSetCurrent(context);
        if (!Thread.currentThread().isVirtual()) {
            CURRENT.set(this);
        }
    }

    /**
     * Makes the context current unless this platform thread already did so through this class. Virtual threads
     * always call the driver: the context belongs to the carrier thread, which may change between calls.
     */
    void ensureCurrent() {
        if (Thread.currentThread().isVirtual() || CURRENT.get() != this) {
            makeCurrent();
        }
    }

    /** {free, total} device memory in bytes ({@code cuMemGetInfo_v2}). */
    public long[] memoryInfo() {
        ensureCurrent();
        return DriverApi.cuMemGetInfo();
    }

    /** Allocates {@code bytes} of device memory ({@code cuMemAlloc_v2}); contents undefined. */
    public DeviceMemory alloc(long bytes) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("bytes must be positive: " + bytes);
        }
        ensureCurrent();
        return new DeviceMemory(this, DriverApi.cuMemAlloc(bytes), bytes);
    }

    /**
     * Allocates page-locked host memory ({@code cuMemHostAlloc}, portable to every context), the kind of host
     * memory that asynchronous copies overlap with other work.
     */
    public PinnedMemory allocPinned(long bytes) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("bytes must be positive: " + bytes);
        }
        ensureCurrent();
        return new PinnedMemory(this, DriverApi.cuMemHostAlloc(bytes, DriverApi.CU_MEMHOSTALLOC_PORTABLE), bytes);
    }

    /** A new stream that does not synchronise with the legacy default stream ({@code CU_STREAM_NON_BLOCKING}). */
    public CudaStream newStream() {
        ensureCurrent();
        return new CudaStream(this, DriverApi.cuStreamCreate(DriverApi.CU_STREAM_NON_BLOCKING));
    }

    /** A new event that records timing ({@code cuEventCreate} with {@code CU_EVENT_DEFAULT}). */
    public CudaEvent newEvent() {
        ensureCurrent();
        return new CudaEvent(this, DriverApi.cuEventCreate(DriverApi.CU_EVENT_DEFAULT));
    }

    /**
     * Loads a CUBIN, PTX or fatbin image ({@code cuModuleLoadData}). The bytes are copied to native memory with a
     * NUL appended, which PTX text needs and binary images ignore.
     */
    public CudaModule loadModule(byte[] cubinOrPtx) {
        ensureCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment image = arena.allocate(cubinOrPtx.length + 1L, 16);
            MemorySegment.copy(cubinOrPtx, 0, image, ValueLayout.JAVA_BYTE, 0, cubinOrPtx.length);
            return new CudaModule(this, DriverApi.cuModuleLoadData(image));
        }
    }

    /** Waits until all work on this device's context has finished ({@code cuCtxSynchronize}). */
    public void synchronize() {
        ensureCurrent();
        DriverApi.cuCtxSynchronize();
    }

    /**
     * Releases the primary context ({@code cuDevicePrimaryCtxRelease_v2}); idempotent. Free this device's
     * memory, streams, events and modules first. A later {@link Cuda#device(int)} opens the device again.
     */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        Cuda.forget(this);
        if (CURRENT.get() == this) {
            CURRENT.remove();
        }
        DriverApi.cuDevicePrimaryCtxRelease(device);
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("device " + ordinal + " is closed");
        }
    }

    @Override
    public String toString() {
        return "CudaDevice[" + ordinal + ": " + name + ", " + arch() + "]";
    }
}
