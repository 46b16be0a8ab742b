package dev.rwkvflink.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Compiling CUDA C++ at run time, loading modules, launching kernels. Needs a GPU; skips itself elsewhere. */
class NvrtcTest {
    static final String SAXPY = """
            extern "C" __global__ void saxpy(float a, const float* __restrict__ x, const float* __restrict__ y,
                                             float* __restrict__ out, int n) {
                int i = blockIdx.x * blockDim.x + threadIdx.x;
                if (i < n) {
                    out[i] = fmaf(a, x[i], y[i]);
                }
            }
            """;

    private static List<String> options(CudaDevice gpu) {
        return List.of("--gpu-architecture=" + gpu.arch(), "-default-device", "--std=c++17", "-lineinfo");
    }

    @Test
    void versionIsKnown() {
        Gpu.device();
        int[] version = Nvrtc.version();
        assertTrue(version[0] >= 12, version[0] + "." + version[1]);
    }

    @Test
    void saxpyCompiledFromAStringComputesEveryElement() {
        CudaDevice gpu = Gpu.device();
        long seed = Gpu.seed();
        Random random = new Random(seed);
        int n = (1 << 20) + 7;
        float a = random.nextFloat() * 4 - 2;
        float[] x = Gpu.randomFloats(random, n);
        float[] y = Gpu.randomFloats(random, n);

        byte[] cubin = Nvrtc.compile(SAXPY, "saxpy.cu", options(gpu));
        assertEquals(0x7F, cubin[0]); // an ELF file
        assertEquals('E', cubin[1]);
        try (CudaModule module = gpu.loadModule(cubin);
                DeviceMemory dx = Gpu.upload(gpu, x);
                DeviceMemory dy = Gpu.upload(gpu, y);
                DeviceMemory out = gpu.alloc(4L * n);
                CudaStream stream = gpu.newStream()) {
            out.fill32(0, n, 0x7FC00000, stream); // poison: NaN
            CudaKernel saxpy = module.kernel("saxpy");
            assertSame(saxpy, module.kernel("saxpy"));
            int block = 256;
            saxpy.launch(stream, (n + block - 1) / block, 1, 1, block, 1, 1, 0, a, dx, dy, out, n);
            stream.synchronize();
            float[] result = Gpu.download(out, n);
            for (int i = 0; i < n; i++) {
                if (result[i] != Math.fma(a, x[i], y[i])) {
                    assertEquals(
                            Math.fma(a, x[i], y[i]),
                            result[i],
                            "element " + i + " of " + n + ", " + Gpu.seedText(seed));
                }
            }
        }
    }

    @Test
    void aVirtualArchitectureGivesPtxThatTheDriverCompiles() {
        CudaDevice gpu = Gpu.device();
        Nvrtc.Result ptx = Nvrtc.compileWithLog(
                SAXPY, "saxpy.cu", List.of("--gpu-architecture=compute_" + gpu.computeMajor() + gpu.computeMinor()));
        assertFalse(ptx.cubin());
        String text = new String(ptx.image(), StandardCharsets.UTF_8);
        assertTrue(text.contains(".entry saxpy("), text);
        float[] x = {1, 2, 3};
        float[] y = {10, 20, 30};
        try (CudaModule module = gpu.loadModule(ptx.image());
                DeviceMemory dx = Gpu.upload(gpu, x);
                DeviceMemory dy = Gpu.upload(gpu, y);
                DeviceMemory out = gpu.alloc(12)) {
            // device pointers may also be passed as Long addresses
            module.kernel("saxpy")
                    .launch(null, 1, 1, 1, 32, 1, 1, 0, 2.0f, dx.address(), dy.address(), out.address(), 3);
            assertArrayEquals(new float[] {12, 24, 36}, Gpu.download(out, 3));
        }
    }

    @Test
    void aCompileErrorCarriesTheCompilerLog() {
        CudaDevice gpu = Gpu.device();
        String broken = "extern \"C\" __global__ void broken(float* x) {\n    x[0] = undefined_identifier;\n}\n";
        CudaException e = assertThrows(CudaException.class, () -> Nvrtc.compile(broken, "broken.cu", options(gpu)));
        assertEquals("nvrtcCompileProgram", e.call());
        assertEquals("NVRTC_ERROR_COMPILATION", e.statusName());
        assertEquals(6, e.status());
        assertTrue(e.getMessage().contains("broken.cu(2)"), e.getMessage());
        assertTrue(e.getMessage().contains("identifier \"undefined_identifier\" is undefined"), e.getMessage());
    }

    @Test
    void aMissingKernelNamesTheCallAndTheStatus() {
        CudaDevice gpu = Gpu.device();
        try (CudaModule module = gpu.loadModule(Nvrtc.compile(SAXPY, "saxpy.cu", options(gpu)))) {
            CudaException e = assertThrows(CudaException.class, () -> module.kernel("no_such_kernel"));
            assertEquals("cuModuleGetFunction", e.call());
            assertEquals("CUDA_ERROR_NOT_FOUND", e.statusName());
            assertEquals(500, e.status());
            assertTrue(e.getMessage().contains("no_such_kernel"), e.getMessage());
        }
    }

    @Test
    void impossibleLaunchesAreRefused() {
        CudaDevice gpu = Gpu.device();
        try (CudaModule module = gpu.loadModule(Nvrtc.compile(SAXPY, "saxpy.cu", options(gpu)));
                DeviceMemory buffer = gpu.alloc(4)) {
            CudaKernel saxpy = module.kernel("saxpy");
            CudaException e = assertThrows(
                    CudaException.class,
                    () -> saxpy.launch(null, 1, 1, 1, 4096, 1, 1, 0, 1f, buffer, buffer, buffer, 1));
            assertEquals("cuLaunchKernel", e.call());
            assertTrue(e.getMessage().contains("block 4096x1x1"), e.getMessage());
            IllegalArgumentException wrongType = assertThrows(
                    IllegalArgumentException.class,
                    () -> saxpy.launch(null, 1, 1, 1, 1, 1, 1, 0, 1f, buffer, buffer, buffer, "1"));
            assertTrue(wrongType.getMessage().contains("argument 4"), wrongType.getMessage());
            gpu.synchronize(); // the context is still usable
        }
    }

    @Test
    void kernelsMayOptIntoLargeDynamicSharedMemory(@TempDir Path cache) {
        CudaDevice gpu = Gpu.device();
        long seed = Gpu.seed();
        int n = 20_000; // 80 000 bytes: above the 48 KiB default
        float[] values = Gpu.randomFloats(new Random(seed), n);
        try (CudaModule module = Gpu.testKernels(gpu, cache);
                DeviceMemory in = Gpu.upload(gpu, values);
                DeviceMemory out = gpu.alloc(4)) {
            CudaKernel sum = module.kernel("shared_sum");
            assertTrue(sum.attribute(CudaKernel.ATTRIBUTE_NUM_REGS) > 0);
            assertEquals(
                    gpu.computeMajor() * 10 + gpu.computeMinor(), sum.attribute(CudaKernel.ATTRIBUTE_BINARY_VERSION));
            sum.setMaxDynamicSharedMemory(4 * n);
            assertEquals(4 * n, sum.attribute(CudaKernel.ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES));
            sum.launch(null, 1, 1, 1, 256, 1, 1, 4 * n, in, out, n);
            float expected = 0f;
            for (float v : values) {
                expected += v; // the kernel's thread 0 adds in the same order
            }
            assertEquals(expected, Gpu.download(out, 1)[0], Gpu.seedText(seed));
        }
    }

    @Test
    void theKernelCacheCompilesOnceAndReplacesACorruptEntry(@TempDir Path cache) throws IOException {
        CudaDevice gpu = Gpu.device();
        try (CudaModule first = Gpu.testKernels(gpu, cache)) {
            first.kernel("axpy_in_place");
        }
        Path entry = onlyFile(cache);
        assertTrue(entry.getFileName().toString().matches("test-kernels\\.cu-[0-9a-f]{64}\\.cubin"), entry.toString());
        assertEquals(0x7F, Files.readAllBytes(entry)[0]);
        long written = Files.getLastModifiedTime(entry).toMillis();

        try (CudaModule cached = Gpu.testKernels(gpu, cache)) {
            cached.kernel("spin");
        }
        assertEquals(written, Files.getLastModifiedTime(entry).toMillis(), "served from the cache, not rewritten");

        Files.write(entry, "not a cubin".getBytes(StandardCharsets.UTF_8));
        try (CudaModule recompiled = Gpu.testKernels(gpu, cache)) {
            recompiled.kernel("shared_sum");
        }
        assertEquals(entry, onlyFile(cache));
        byte[] replaced = Files.readAllBytes(entry);
        assertEquals(0x7F, replaced[0], "the corrupt entry was compiled again (an ELF file)");
        assertEquals('E', replaced[1]);
    }

    private static Path onlyFile(Path dir) throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            List<Path> all = files.toList();
            assertEquals(1, all.size(), all.toString());
            return all.getFirst();
        }
    }
}
