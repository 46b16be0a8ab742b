package dev.rwkvflink.cuda;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Assumptions;

/** Helpers for the tests that need a GPU: they skip themselves, with the reason, where CUDA is unavailable. */
final class Gpu {
    private Gpu() {
    }

    /** Device 0, or a skipped test. */
    static CudaDevice device() {
        Availability availability = Cuda.availability();
        Assumptions.assumeTrue(availability.available(), availability.reason());
        return Cuda.device(0);
    }

    /** A seed that differs between runs; tests put it into their failure messages. */
    static long freshSeed() {
        return System.nanoTime();
    }

    /** {@code n} uniform floats in [-1, 1). */
    static float[] randomFloats(Random random, int n) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = random.nextFloat() * 2 - 1;
        }
        return values;
    }

    /** {@code values} in native memory. */
    static MemorySegment hostFloats(Arena arena, float[] values) {
        return arena.allocateFrom(JAVA_FLOAT, values);
    }

    /** Uploads {@code values} into new device memory and waits for the copy. */
    static DeviceMemory upload(CudaDevice gpu, float[] values) {
        DeviceMemory memory = gpu.alloc(4L * values.length);
        try (Arena arena = Arena.ofConfined()) {
            memory.copyFromHost(hostFloats(arena, values), 0, memory.bytes(), null);
            gpu.synchronize();
        }
        return memory;
    }

    /** Downloads {@code n} floats from the start of {@code memory} (synchronously). */
    static float[] download(DeviceMemory memory, int n) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(JAVA_FLOAT, n);
            host.fill((byte) 0x7F); // poison: 0x7F7F7F7F is a large float no result here equals
            memory.copyToHost(0, host, 4L * n, null);
            memory.device().synchronize();
            return host.toArray(JAVA_FLOAT);
        }
    }

    /** The test kernels ({@code test-kernels.cu}), compiled through the kernel cache into {@code cacheDir}. */
    static CudaModule testKernels(CudaDevice gpu, Path cacheDir) {
        String source = KernelCache.loadResource(Gpu.class, "test-kernels.cu");
        return KernelCache.load(gpu, "test-kernels.cu", source, List.of("--std=c++17"), cacheDir);
    }
}
