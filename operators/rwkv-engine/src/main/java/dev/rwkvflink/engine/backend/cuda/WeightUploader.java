package dev.rwkvflink.engine.backend.cuda;

import dev.rwkvflink.cuda.CudaDevice;
import dev.rwkvflink.cuda.CudaStream;
import dev.rwkvflink.cuda.DeviceMemory;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

/**
 * Puts a model's tensors on the device, once: per-channel vectors in fp32, matrices in the {@link Precision}'s type
 * (converted to bf16 on the device), or values drawn on the device for benchmarks. Every allocation goes to the
 * caller's {@code owned} list, which the weights free on close.
 */
final class WeightUploader implements AutoCloseable {
    private final CudaDevice device;
    private final CudaStream stream;
    private final CommonKernels k;
    private final Precision precision;
    private final List<DeviceMemory> owned;
    private final long seed;
    private long drawn;

    WeightUploader(
            CudaDevice device,
            CudaStream stream,
            CommonKernels k,
            Precision precision,
            List<DeviceMemory> owned,
            long seed) {
        this.device = device;
        this.stream = stream;
        this.k = k;
        this.precision = precision;
        this.owned = owned;
        this.seed = seed;
    }

    /** fp32 values as they are. */
    DeviceMemory vector(float[] v) {
        DeviceMemory d = own(device.alloc(4L * v.length));
        copy(v, d);
        return d;
    }

    /** A matrix in the precision's type. */
    DeviceMemory matrix(float[] v) {
        if (precision == Precision.F32) {
            return vector(v);
        }
        try (DeviceMemory f32 = device.alloc(4L * v.length)) {
            copy(v, f32);
            return toBf16(f32, v.length);
        }
    }

    /** n fp32 values drawn on the device: mode 0 normal(0, sd = p), mode 1 uniform(p, q). */
    DeviceMemory randomVector(long n, int mode, float p, float q) {
        DeviceMemory d = own(device.alloc(4L * n));
        k.randomFill(stream, d, n, nextSeed(), mode, p, q);
        return d;
    }

    /** rows x cols drawn N(0, 1/cols), in the precision's type. */
    DeviceMemory randomMatrix(int rows, int cols) {
        long n = (long) rows * cols;
        float sd = (float) Math.sqrt(1.0 / cols);
        if (precision == Precision.F32) {
            return randomVector(n, 0, sd, 0);
        }
        try (DeviceMemory f32 = device.alloc(4L * n)) {
            k.randomFill(stream, f32, n, nextSeed(), 0, sd, 0);
            return toBf16(f32, n);
        }
    }

    private long nextSeed() {
        return seed + 0x9E3779B97F4A7C15L * ++drawn;
    }

    private DeviceMemory toBf16(DeviceMemory f32, long n) {
        DeviceMemory d = own(device.alloc(2L * n));
        k.convertBf16(stream, f32, d, n);
        stream.synchronize(); // f32 is freed by the caller
        return d;
    }

    /** Host to device through a native buffer freed right after the copy. */
    private void copy(float[] v, DeviceMemory d) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment host = a.allocate(ValueLayout.JAVA_FLOAT, v.length);
            MemorySegment.copy(v, 0, host, ValueLayout.JAVA_FLOAT, 0, v.length);
            d.copyFromHost(host, 0, 4L * v.length, stream);
            stream.synchronize();
        }
    }

    private DeviceMemory own(DeviceMemory m) {
        owned.add(m);
        return m;
    }

    @Override
    public void close() {
        stream.synchronize();
    }
}
