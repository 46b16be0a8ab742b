package dev.rwkvflink.cuda;

/**
 * Prints what this process sees of CUDA: the availability reason, where each library was loaded from, and every
 * device's properties. Exit status 1 when CUDA is unavailable.
 *
 * <pre>{@code java --enable-native-access=ALL-UNNAMED -cp rwkv-native-bindings.jar dev.rwkvflink.cuda.CudaInfo}</pre>
 */
public final class CudaInfo {
    private CudaInfo() {}

    public static void main(String[] args) {
        Availability availability = Cuda.availability();
        System.out.println(availability.reason());
        if (!availability.available()) {
            System.exit(1);
        }
        System.out.println("driver  " + NativeLibraries.driver().origin() + " (CUDA " + Cuda.driverVersion() + ")");
        System.out.println("cuBLAS  " + NativeLibraries.cublas().origin() + " (" + Cublas.libraryVersion() + ")");
        int[] nvrtc = Nvrtc.version();
        System.out.println("NVRTC   " + NativeLibraries.nvrtc().origin() + " (" + nvrtc[0] + "." + nvrtc[1] + ")");
        System.out.println("kernel cache " + KernelCache.directory());
        for (int ordinal = 0; ordinal < Cuda.deviceCount(); ordinal++) {
            CudaDevice device = Cuda.device(ordinal);
            long[] memory = device.memoryInfo();
            System.out.printf(
                    "device %d: %s, %s, %d SMs, %d MiB (%d MiB free), L2 %d KiB, shared memory per block"
                            + " up to %d bytes%n",
                    ordinal,
                    device.name(),
                    device.arch(),
                    device.multiprocessors(),
                    device.totalMemory() >> 20,
                    memory[0] >> 20,
                    device.l2CacheBytes() >> 10,
                    device.maxSharedMemoryPerBlockOptin());
        }
    }
}
