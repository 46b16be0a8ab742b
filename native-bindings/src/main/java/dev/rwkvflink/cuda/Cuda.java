package dev.rwkvflink.cuda;

import java.util.HashMap;
import java.util.Map;

/**
 * The entry point: whether CUDA is usable here, and the devices.
 *
 * <pre>{@code
 * if (Cuda.availability().available()) {
 *     CudaDevice gpu = Cuda.device(0);
 *     try (DeviceMemory buffer = gpu.alloc(1 << 20)) { ... }
 * }
 * }</pre>
 *
 * <p>Nothing here loads a library until it is first called; a machine without CUDA sees
 * {@code available() == false} with the reason, never an exception from {@link #availability()}.
 */
public final class Cuda {
    private static Availability availability; // guarded by Cuda.class
    private static final Map<Integer, CudaDevice> DEVICES = new HashMap<>(); // guarded by Cuda.class

    private Cuda() {}

    /**
     * Whether the CUDA driver, cuBLAS and NVRTC load and a device answers; computed once per process (the first
     * call loads the libraries and runs {@code cuInit}), never throws.
     */
    public static synchronized Availability availability() {
        if (availability == null) {
            availability = probe();
        }
        return availability;
    }

    private static Availability probe() {
        try {
            NativeLibraries.driver();
        } catch (IllegalStateException e) {
            return Availability.no(e.getMessage());
        }
        try {
            int driver = DriverApi.cuDriverGetVersion();
            try {
                DriverApi.cuInit(0);
            } catch (CudaException e) {
                return Availability.no(e.getMessage() + ", driver " + driver);
            }
            int count = DriverApi.cuDeviceGetCount();
            if (count == 0) {
                return Availability.no("no CUDA device (driver " + driver + ")");
            }
            try {
                NativeLibraries.cublas();
                NativeLibraries.nvrtc();
            } catch (IllegalStateException e) {
                return Availability.no(e.getMessage());
            }
            int device = DriverApi.cuDeviceGet(0);
            String name = DriverApi.cuDeviceGetName(device);
            int major = DriverApi.cuDeviceGetAttribute(DriverApi.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device);
            int minor = DriverApi.cuDeviceGetAttribute(DriverApi.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device);
            int[] nvrtc = Nvrtc.version();
            return Availability.yes(name + ", " + CudaDevice.arch(major, minor) + ", driver " + driver
                    + (count > 1 ? ", " + count + " devices" : "")
                    + ", cuBLAS " + Cublas.libraryVersion() + ", NVRTC " + nvrtc[0] + "." + nvrtc[1]);
        } catch (RuntimeException | LinkageError e) {
            return Availability.no(e.toString());
        }
    }

    /**
     * The device with this ordinal, opened on first use ({@code cuInit}, {@code cuDeviceGet},
     * {@code cuDevicePrimaryCtxRetain}) and shared afterwards: every caller gets the same object until it is
     * closed.
     *
     * @throws IllegalStateException when CUDA is unavailable (the message is the availability reason)
     * @throws CudaException         when the driver refuses, e.g. for an ordinal beyond the device count
     */
    public static synchronized CudaDevice device(int ordinal) {
        requireAvailable();
        CudaDevice device = DEVICES.get(ordinal);
        if (device == null) {
            device = CudaDevice.open(ordinal);
            DEVICES.put(ordinal, device);
        }
        return device;
    }

    /** The number of CUDA devices ({@code cuDeviceGetCount}). */
    public static int deviceCount() {
        requireAvailable();
        return DriverApi.cuDeviceGetCount();
    }

    /**
     * The driver's CUDA version as {@code cuDriverGetVersion} reports it, 1000 * major + 10 * minor (13000 for
     * CUDA 13.0).
     *
     * @throws IllegalStateException when the driver library is not present
     */
    public static int driverVersion() {
        NativeLibraries.driver();
        return DriverApi.cuDriverGetVersion();
    }

    /** Throws {@link IllegalStateException} with the availability reason unless CUDA is available. */
    static void requireAvailable() {
        Availability a = availability();
        if (!a.available()) {
            throw new IllegalStateException(a.reason());
        }
    }

    /** Called by {@link CudaDevice#close()}: the next {@link #device(int)} opens the device again. */
    static synchronized void forget(CudaDevice device) {
        DEVICES.remove(device.ordinal(), device);
    }
}
