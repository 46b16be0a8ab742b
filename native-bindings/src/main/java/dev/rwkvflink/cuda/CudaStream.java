package dev.rwkvflink.cuda;

import java.lang.foreign.MemorySegment;

/**
 * A queue of device work ({@code CUstream}) from {@link CudaDevice#newStream()}, created non-blocking: it does not
 * wait for the legacy default stream. Also records work into a {@link CudaGraph}: {@link #beginCapture()}, queue
 * copies, kernels and cuBLAS calls as usual (nothing runs), then {@link #endCapture()}.
 */
public final class CudaStream extends DeviceResource {
    /** {@code CU_STREAM_CAPTURE_MODE_THREAD_LOCAL}: other threads stay free to allocate during a capture. */
    private static final int CAPTURE_MODE = DriverApi.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;

    private final MemorySegment stream;

    CudaStream(CudaDevice device, MemorySegment stream) {
        super(device);
        this.stream = stream;
    }

    /** The {@code CUstream} handle for a stream, or the null (legacy default) stream for {@code null}. */
    static MemorySegment handleOf(CudaStream stream) {
        return stream == null ? MemorySegment.NULL : stream.stream;
    }

    /** The {@code CUstream} value (also a valid {@code cudaStream_t}). */
    public long handle() {
        return stream.address();
    }

    /** The device this stream belongs to. */
    public CudaDevice device() {
        return device;
    }

    /** Waits until all work queued on this stream has finished ({@code cuStreamSynchronize}). */
    public void synchronize() {
        device.ensureCurrent();
        DriverApi.cuStreamSynchronize(stream);
    }

    /** Makes work queued after this call wait until {@code event} has completed ({@code cuStreamWaitEvent}). */
    public void waitFor(CudaEvent event) {
        device.ensureCurrent();
        DriverApi.cuStreamWaitEvent(stream, event.handle());
    }

    /**
     * Starts recording instead of running ({@code cuStreamBeginCapture_v2}, thread-local mode: this thread must
     * not allocate or synchronise until {@link #endCapture()}).
     */
    public void beginCapture() {
        device.ensureCurrent();
        DriverApi.cuStreamBeginCapture(stream, CAPTURE_MODE);
    }

    /**
     * Ends the recording and instantiates it ({@code cuStreamEndCapture}, {@code cuGraphInstantiateWithFlags}
     * with flags 0); the intermediate graph is destroyed, the executable graph returned.
     */
    public CudaGraph endCapture() {
        device.ensureCurrent();
        MemorySegment graph = DriverApi.cuStreamEndCapture(stream);
        try {
            return new CudaGraph(device, DriverApi.cuGraphInstantiate(graph, 0L));
        } finally {
            DriverApi.cuGraphDestroy(graph);
        }
    }

    /** Destroys the stream ({@code cuStreamDestroy_v2}); queued work still completes. Idempotent. */
    @Override
    void release() {
        DriverApi.cuStreamDestroy(stream);
    }
}
