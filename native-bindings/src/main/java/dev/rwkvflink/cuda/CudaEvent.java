package dev.rwkvflink.cuda;

import java.lang.foreign.MemorySegment;

/**
 * A marker in a stream ({@code CUevent}) from {@link CudaDevice#newEvent()}: to wait for the work before it, to
 * order streams ({@link CudaStream#waitFor(CudaEvent)}), or to time the device work between two events.
 */
public final class CudaEvent extends DeviceResource {
    private final MemorySegment event;

    CudaEvent(CudaDevice device, MemorySegment event) {
        super(device);
        this.event = event;
    }

    MemorySegment handle() {
        return event;
    }

    /** Marks the current end of {@code stream}'s queue ({@code cuEventRecord}; {@code null}: the default stream). */
    public void record(CudaStream stream) {
        device.ensureCurrent();
        DriverApi.cuEventRecord(event, CudaStream.handleOf(stream));
    }

    /** Waits until the work before the recorded point has finished ({@code cuEventSynchronize}). */
    public void synchronize() {
        device.ensureCurrent();
        DriverApi.cuEventSynchronize(event);
    }

    /**
     * Device time in milliseconds from {@code start} to this event ({@code cuEventElapsedTime_v2}); both must
     * have been recorded and this one completed (call {@link #synchronize()} first). Resolution about 0.5 us.
     */
    public float elapsedMillisSince(CudaEvent start) {
        device.ensureCurrent();
        return DriverApi.cuEventElapsedTime(start.event, event);
    }

    /** Destroys the event ({@code cuEventDestroy_v2}); idempotent. */
    @Override
    void release() {
        DriverApi.cuEventDestroy(event);
    }
}
