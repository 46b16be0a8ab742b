package dev.rwkvflink.cuda;

import java.lang.foreign.MemorySegment;

/**
 * An executable graph ({@code CUgraphExec}) recorded by {@link CudaStream#beginCapture()} and
 * {@link CudaStream#endCapture()}: the captured copies and kernels replayed by one launch, with the same
 * arguments and addresses each time (change data in place, not pointers).
 */
public final class CudaGraph extends DeviceResource {
    private final MemorySegment exec;

    CudaGraph(CudaDevice device, MemorySegment exec) {
        super(device);
        this.exec = exec;
    }

    /** Queues the whole graph on {@code stream} ({@code cuGraphLaunch}; {@code null}: the legacy default stream). */
    public void launch(CudaStream stream) {
        device.ensureCurrent();
        DriverApi.cuGraphLaunch(exec, CudaStream.handleOf(stream));
    }

    /** Destroys the executable graph ({@code cuGraphExecDestroy}); idempotent. */
    @Override
    void release() {
        DriverApi.cuGraphExecDestroy(exec);
    }
}
