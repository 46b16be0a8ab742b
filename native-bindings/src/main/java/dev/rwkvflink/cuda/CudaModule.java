package dev.rwkvflink.cuda;

import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Loaded device code ({@code CUmodule}) from {@link CudaDevice#loadModule(byte[])} or {@link KernelCache}; hands
 * out its kernels by name.
 */
public final class CudaModule extends DeviceResource {
    private final MemorySegment module;
    private final Map<String, CudaKernel> kernels = new ConcurrentHashMap<>();

    CudaModule(CudaDevice device, MemorySegment module) {
        super(device);
        this.module = module;
    }

    /** The device the module was loaded on. */
    public CudaDevice device() {
        return device;
    }

    /**
     * The kernel called {@code name} ({@code cuModuleGetFunction}; declare it {@code extern "C"} so the name is
     * not mangled); the same object on every call.
     *
     * @throws CudaException {@code CUDA_ERROR_NOT_FOUND} when the module has no such kernel
     */
    public CudaKernel kernel(String name) {
        CudaKernel kernel = kernels.get(name);
        if (kernel == null) {
            synchronized (this) {
                if (isClosed()) {
                    throw new IllegalStateException("module already unloaded");
                }
            }
            device.ensureCurrent();
            kernel = kernels.computeIfAbsent(
                    name, n -> new CudaKernel(device, n, DriverApi.cuModuleGetFunction(module, n)));
        }
        return kernel;
    }

    /** Unloads the module ({@code cuModuleUnload}); its kernels become unusable. Idempotent. */
    @Override
    void release() {
        kernels.clear();
        DriverApi.cuModuleUnload(module);
    }
}
