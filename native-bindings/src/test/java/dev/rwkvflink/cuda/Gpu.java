package dev.rwkvflink.cuda;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ThreadLocalRandom;
import org.junit.jupiter.api.Assumptions;

/** Helpers for the tests that need a GPU: they skip themselves, with the reason, where CUDA is unavailable. */
final class Gpu {
    private Gpu() {}

    /** Device 0, or a skipped test. */
    static CudaDevice device() {
        Availability availability = Cuda.availability();
        Assumptions.assumeTrue(availability.available(), availability.reason());
        return Cuda.device(0);
    }

    /** The system property that forces the seed of every test that asks for one (as the engine's TestSeeds). */
    static final String SEED_PROPERTY = "rwkv.test.seed";

    /**
     * The seed of the calling test's random inputs: {@value #SEED_PROPERTY} when set (to replay a failure), else a
     * fresh one each run; printed with the test's name either way. Tests put {@link #seedText} into every failure
     * message.
     */
    static long seed() {
        String forced = System.getProperty(SEED_PROPERTY);
        long seed;
        if (forced == null || forced.isBlank()) {
            seed = ThreadLocalRandom.current().nextLong() & Long.MAX_VALUE;
        } else {
            try {
                seed = Long.parseLong(forced.strip());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("-D" + SEED_PROPERTY + " must be a long, not \"" + forced + "\"", e);
            }
        }
        String caller = StackWalker.getInstance(StackWalker.Option.RETAIN_CLASS_REFERENCE)
                .walk(frames -> frames.skip(1)
                        .findFirst()
                        .map(f -> f.getDeclaringClass().getSimpleName() + "." + f.getMethodName())
                        .orElse("?"));
        System.out.println(caller + ": " + seedText(seed) + (forced == null || forced.isBlank() ? "" : ", forced"));
        return seed;
    }

    /** "seed N (replay: -Drwkv.test.seed=N)", for failure messages. */
    static String seedText(long seed) {
        return "seed " + seed + " (replay: -D" + SEED_PROPERTY + "=" + seed + ")";
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
