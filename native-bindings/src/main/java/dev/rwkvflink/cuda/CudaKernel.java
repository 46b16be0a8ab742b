package dev.rwkvflink.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * One {@code __global__} function of a {@link CudaModule} ({@code CUfunction}), launched with
 * {@link #launch(CudaStream, int, int, int, int, int, int, int, Object...)}.
 */
public final class CudaKernel {
    /** {@code CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK}: the most threads a block of this kernel may have. */
    public static final int ATTRIBUTE_MAX_THREADS_PER_BLOCK = 0;
    /** {@code CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES}: statically allocated shared memory per block. */
    public static final int ATTRIBUTE_SHARED_SIZE_BYTES = 1;
    /** {@code CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES}: local memory (spills) per thread. */
    public static final int ATTRIBUTE_LOCAL_SIZE_BYTES = 3;
    /** {@code CU_FUNC_ATTRIBUTE_NUM_REGS}: registers per thread. */
    public static final int ATTRIBUTE_NUM_REGS = 4;
    /** {@code CU_FUNC_ATTRIBUTE_BINARY_VERSION}: the architecture the code was compiled for, e.g. 90. */
    public static final int ATTRIBUTE_BINARY_VERSION = 6;
    /** {@code CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES}: the dynamic shared memory a launch may ask for. */
    public static final int ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;

    private static final long SLOT = 8; // every argument gets an 8-byte, 8-aligned slot

    private final CudaDevice device;
    private final String name;
    private final MemorySegment function;

    CudaKernel(CudaDevice device, String name, MemorySegment function) {
        this.device = device;
        this.name = name;
        this.function = function;
    }

    /** The kernel's name as given to {@link CudaModule#kernel(String)}. */
    public String name() {
        return name;
    }

    /**
     * Allows launches with up to {@code bytes} of dynamic shared memory ({@code cuFuncSetAttribute}
     * {@code CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES}); needed above 48 KiB, up to
     * {@link CudaDevice#maxSharedMemoryPerBlockOptin()}.
     */
    public void setMaxDynamicSharedMemory(int bytes) {
        device.ensureCurrent();
        DriverApi.cuFuncSetAttribute(function, ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes, name);
    }

    /** A {@code CUfunction_attribute} of this kernel ({@code cuFuncGetAttribute}), e.g. {@link #ATTRIBUTE_NUM_REGS}. */
    public int attribute(int cuFuncAttribute) {
        device.ensureCurrent();
        return DriverApi.cuFuncGetAttribute(cuFuncAttribute, function, name);
    }

    /**
     * Queues the kernel on {@code stream} ({@code cuLaunchKernel}; {@code null}: the legacy default stream).
     *
     * <p>Arguments in the order of the kernel's parameters, each of the Java type matching the C one:
     * {@link Long} ({@code long long}, {@code size_t}, or a device pointer given as its address),
     * {@link Integer} ({@code int}, {@code unsigned}), {@link Float}, {@link Double}, {@link Short} (16-bit, e.g.
     * the bits of a {@code __nv_bfloat16}) or {@link DeviceMemory} (a pointer to its start). The driver copies the
     * values at launch, so the call may return before the kernel runs without the arguments going stale.
     *
     * @throws IllegalArgumentException for an argument of another type
     * @throws CudaException            when the driver refuses the launch (bad dimensions, too much shared memory)
     */
    public void launch(
            CudaStream stream,
            int gridX,
            int gridY,
            int gridZ,
            int blockX,
            int blockY,
            int blockZ,
            int sharedBytes,
            Object... args) {
        launch(false, stream, gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes, args);
    }

    /**
     * Queues the kernel as a <em>programmatic dependent launch</em> (compute capability 9.0 and later;
     * {@code cuLaunchKernelEx} with {@code CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION}): it may start while
     * the kernel before it on the stream still runs, once every block of that kernel has executed
     * {@code griddepcontrol.launch_dependents} (or exited). The kernel must therefore execute
     * {@code griddepcontrol.wait} before it reads what the kernel before it wrote, and before it writes what that
     * kernel may read; before the wait it may only read data that no unfinished kernel writes (weights). Arguments
     * as {@link #launch}. Captured into graphs like any launch.
     */
    public void launchDependent(
            CudaStream stream,
            int gridX,
            int gridY,
            int gridZ,
            int blockX,
            int blockY,
            int blockZ,
            int sharedBytes,
            Object... args) {
        launch(true, stream, gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes, args);
    }

    private void launch(
            boolean dependent,
            CudaStream stream,
            int gridX,
            int gridY,
            int gridZ,
            int blockX,
            int blockY,
            int blockZ,
            int sharedBytes,
            Object... args) {
        device.ensureCurrent();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment params = MemorySegment.NULL;
            if (args.length > 0) {
                MemorySegment values = arena.allocate(SLOT * args.length, SLOT);
                params = arena.allocate(ADDRESS, args.length);
                for (int i = 0; i < args.length; i++) {
                    MemorySegment slot = values.asSlice(SLOT * i, SLOT);
                    store(slot, args[i], i);
                    params.setAtIndex(ADDRESS, i, slot);
                }
            }
            if (dependent) {
                DriverApi.cuLaunchKernelProgrammatic(
                        function,
                        gridX,
                        gridY,
                        gridZ,
                        blockX,
                        blockY,
                        blockZ,
                        sharedBytes,
                        CudaStream.handleOf(stream),
                        params,
                        name);
            } else {
                DriverApi.cuLaunchKernel(
                        function,
                        gridX,
                        gridY,
                        gridZ,
                        blockX,
                        blockY,
                        blockZ,
                        sharedBytes,
                        CudaStream.handleOf(stream),
                        params,
                        name);
            }
        }
    }

    private void store(MemorySegment slot, Object arg, int index) {
        switch (arg) {
            case Long v -> slot.set(JAVA_LONG, 0, v);
            case Integer v -> slot.set(JAVA_INT, 0, v);
            case Float v -> slot.set(JAVA_FLOAT, 0, v);
            case Double v -> slot.set(JAVA_DOUBLE, 0, v);
            case Short v -> slot.set(JAVA_SHORT, 0, v);
            case DeviceMemory m -> slot.set(JAVA_LONG, 0, m.address());
            case null ->
                throw new IllegalArgumentException(
                        "kernel " + name + " argument " + index + " is null (pass 0L for a null pointer)");
            default ->
                throw new IllegalArgumentException("kernel " + name + " argument " + index + " has type "
                        + arg.getClass().getName() + "; expected Long, Integer, Float, Double, Short or DeviceMemory");
        }
    }

    @Override
    public String toString() {
        return "CudaKernel[" + name + "]";
    }
}
