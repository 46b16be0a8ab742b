package dev.rwkvflink.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The kernel cache's key, file names and configuration. Runs on every machine. */
class KernelCacheTest {
    private static final String SOURCE = "extern \"C\" __global__ void k(float* x) { x[0] = 1.0f; }";
    private static final List<String> OPTIONS = List.of("--std=c++17", "--gpu-architecture=sm_90");

    private static String key(String source, List<String> options, String arch, int driver, String nvrtc) {
        return KernelCache.key(source, options, arch, driver, nvrtc);
    }

    @Test
    void theKeyIsAStableSha256() {
        String key = key(SOURCE, OPTIONS, "sm_90", 13000, "13.0");
        assertEquals(key, key(SOURCE, List.copyOf(OPTIONS), "sm_90", 13000, "13.0"));
        assertTrue(key.matches("[0-9a-f]{64}"), key);
    }

    @Test
    void theKeyChangesWithEveryInput() {
        Set<String> keys = Set.of(
                key(SOURCE, OPTIONS, "sm_90", 13000, "13.0"),
                key(SOURCE + " ", OPTIONS, "sm_90", 13000, "13.0"),
                key(SOURCE, List.of("--std=c++17", "--gpu-architecture=sm_90", "-lineinfo"), "sm_90", 13000, "13.0"),
                key(SOURCE, OPTIONS.reversed(), "sm_90", 13000, "13.0"),
                key(SOURCE, OPTIONS, "sm_89", 13000, "13.0"),
                key(SOURCE, OPTIONS, "sm_90", 13010, "13.0"),
                key(SOURCE, OPTIONS, "sm_90", 13000, "13.1"));
        assertEquals(7, keys.size());
    }

    @Test
    void fieldsDoNotRunTogether() {
        assertNotEquals(
                key("ab", List.of("c"), "sm_90", 13000, "13.0"), key("a", List.of("bc"), "sm_90", 13000, "13.0"));
        assertNotEquals(
                key("s", List.of("a", "b"), "sm_90", 13000, "13.0"), key("s", List.of("ab"), "sm_90", 13000, "13.0"));
        assertNotEquals(key("s", List.of(), "sm_90", 13000, "13.0"), key("s", List.of(""), "sm_90", 13000, "13.0"));
    }

    @Test
    void theDeviceArchitectureIsAddedUnlessNamed() {
        assertEquals(
                List.of("--std=c++17", "--gpu-architecture=sm_90"),
                KernelCache.withArchitecture(List.of("--std=c++17"), "sm_90"));
        assertEquals(
                List.of("--gpu-architecture=compute_90"),
                KernelCache.withArchitecture(List.of("--gpu-architecture=compute_90"), "sm_90"));
        assertEquals(List.of("-arch=sm_90a"), KernelCache.withArchitecture(List.of("-arch=sm_90a"), "sm_90"));
    }

    @Test
    void cacheFileNamesAreSafe() {
        assertEquals("rwkv7.cu-abc.cubin", KernelCache.fileName("rwkv7.cu", "abc"));
        assertEquals("_.._etc_passwd-abc.cubin", KernelCache.fileName("/../etc/passwd", "abc"));
    }

    @Test
    void theCacheDirectoryComesFromThePropertyElseTheHomeDirectory() {
        String previous = System.getProperty(KernelCache.DIR_PROPERTY);
        try {
            System.setProperty(KernelCache.DIR_PROPERTY, "/tmp/some-cache");
            assertEquals(Path.of("/tmp/some-cache"), KernelCache.directory());
            System.clearProperty(KernelCache.DIR_PROPERTY);
            if (System.getenv(KernelCache.DIR_ENV) == null) {
                assertEquals(
                        Path.of(System.getProperty("user.home"), ".cache/rwkv-flink/cuda"), KernelCache.directory());
            }
        } finally {
            if (previous != null) {
                System.setProperty(KernelCache.DIR_PROPERTY, previous);
            }
        }
    }

    @Test
    void kernelSourcesAreReadFromTheClassPath() {
        String source = KernelCache.loadResource(KernelCacheTest.class, "test-kernels.cu");
        assertTrue(source.contains("extern \"C\" __global__ void axpy_in_place("), source);
        assertEquals(source, KernelCache.loadResource(HalfFloatTest.class, "/dev/rwkvflink/cuda/test-kernels.cu"));
        assertThrows(IllegalArgumentException.class, () -> KernelCache.loadResource(KernelCacheTest.class, "nope.cu"));
    }

    @Test
    void statusesBecomeMessagesNamingTheCall() {
        CudaException e = new CudaException(
                "cuModuleGetFunction", 500, "CUDA_ERROR_NOT_FOUND", "named symbol not found", "[kernel \"missing\"]");
        assertEquals(
                "cuModuleGetFunction failed: CUDA_ERROR_NOT_FOUND (named symbol not found) [kernel \"missing\"]",
                e.getMessage());
        assertEquals("cuModuleGetFunction", e.call());
        assertEquals(500, e.status());
        assertEquals("CUDA_ERROR_NOT_FOUND", e.statusName());
        assertEquals(
                "nvrtcCompileProgram failed: NVRTC_ERROR_COMPILATION [program p]\nline 1: error",
                new CudaException("nvrtcCompileProgram", 6, "NVRTC_ERROR_COMPILATION", "", "[program p]\nline 1: error")
                        .getMessage());
    }
}
