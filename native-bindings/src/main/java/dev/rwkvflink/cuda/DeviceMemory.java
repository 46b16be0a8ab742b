package dev.rwkvflink.cuda;

import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * A block of device memory from {@link CudaDevice#alloc(long)}, freed by {@link #close()}.
 *
 * <p>Copies and fills are asynchronous on the given stream ({@code null}: the legacy default stream) and are
 * bounds-checked against this block and the host segment. Host segments must be native memory. With pinned
 * memory ({@link PinnedMemory}) the copy may still be running when the method returns: keep the host memory
 * alive and unchanged until the stream is synchronised. With ordinary (pageable) memory the driver stages the
 * data, and a device-to-host copy returns only when it is done.
 */
public final class DeviceMemory extends DeviceResource {
    private final long address;
    private final long bytes;

    DeviceMemory(CudaDevice device, long address, long bytes) {
        super(device);
        this.address = address;
        this.bytes = bytes;
    }

    /** The device address ({@code CUdeviceptr}), for kernel arguments and cuBLAS. */
    public long address() {
        return address;
    }

    /** The device address {@code offset} bytes in, bounds-checked ({@code offset == bytes()} is allowed). */
    public long address(long offset) {
        Objects.checkFromIndexSize(offset, 0, bytes);
        return address + offset;
    }

    /** The size in bytes. */
    public long bytes() {
        return bytes;
    }

    /** The device this memory lives on. */
    public CudaDevice device() {
        return device;
    }

    /** Copies {@code bytes} from the start of {@code src} to {@code dstOffset} here ({@code cuMemcpyHtoDAsync_v2}). */
    public void copyFromHost(MemorySegment src, long dstOffset, long bytes, CudaStream stream) {
        checkOpen();
        Objects.checkFromIndexSize(dstOffset, bytes, this.bytes);
        checkHost(src, bytes);
        if (bytes == 0) {
            return;
        }
        device.ensureCurrent();
        DriverApi.cuMemcpyHtoDAsync(address + dstOffset, src, bytes, CudaStream.handleOf(stream));
    }

    /** Copies {@code bytes} from {@code srcOffset} here to the start of {@code dst} ({@code cuMemcpyDtoHAsync_v2}). */
    public void copyToHost(long srcOffset, MemorySegment dst, long bytes, CudaStream stream) {
        checkOpen();
        Objects.checkFromIndexSize(srcOffset, bytes, this.bytes);
        checkHost(dst, bytes);
        if (bytes == 0) {
            return;
        }
        device.ensureCurrent();
        DriverApi.cuMemcpyDtoHAsync(dst, address + srcOffset, bytes, CudaStream.handleOf(stream));
    }

    /**
     * Copies {@code bytes} from {@code srcOffset} in {@code src} to {@code dstOffset} here
     * ({@code cuMemcpyDtoDAsync_v2}).
     */
    public void copyFromDevice(DeviceMemory src, long srcOffset, long dstOffset, long bytes, CudaStream stream) {
        checkOpen();
        src.checkOpen();
        Objects.checkFromIndexSize(srcOffset, bytes, src.bytes);
        Objects.checkFromIndexSize(dstOffset, bytes, this.bytes);
        if (bytes == 0) {
            return;
        }
        device.ensureCurrent();
        DriverApi.cuMemcpyDtoDAsync(address + dstOffset, src.address + srcOffset, bytes, CudaStream.handleOf(stream));
    }

    /**
     * Sets {@code count} 32-bit words from byte {@code offset} (a multiple of 4) to {@code value}
     * ({@code cuMemsetD32Async}); {@code Float.floatToRawIntBits(x)} fills with a float.
     */
    public void fill32(long offset, long count, int value, CudaStream stream) {
        checkOpen();
        if (offset % 4 != 0) {
            throw new IllegalArgumentException("offset must be a multiple of 4: " + offset);
        }
        Objects.checkFromIndexSize(offset, Math.multiplyExact(count, 4L), bytes);
        if (count == 0) {
            return;
        }
        device.ensureCurrent();
        DriverApi.cuMemsetD32Async(address + offset, value, count, CudaStream.handleOf(stream));
    }

    /** Frees the memory ({@code cuMemFree_v2}); idempotent. Work still queued that uses it must be finished. */
    @Override
    void release() {
        DriverApi.cuMemFree(address);
    }

    private void checkOpen() {
        if (isClosed()) {
            throw new IllegalStateException("device memory already freed: " + this);
        }
    }

    private static void checkHost(MemorySegment host, long bytes) {
        if (!host.isNative()) {
            throw new IllegalArgumentException("host memory must be a native segment (Arena or PinnedMemory)");
        }
        Objects.checkFromIndexSize(0, bytes, host.byteSize());
    }

    @Override
    public String toString() {
        return "DeviceMemory[0x" + Long.toHexString(address) + ", " + bytes + " bytes, device " + device.ordinal()
                + "]";
    }
}
