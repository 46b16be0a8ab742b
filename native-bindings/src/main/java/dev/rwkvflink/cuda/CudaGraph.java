package dev.rwkvflink.cuda;

import java.lang.foreign.MemorySegment;

/**
 * An executable graph ({@code CUgraphExec}) recorded by {@link CudaStream#beginCapture()} and
 * {@link CudaStream#endCapture()}: the captured copies and kernels replayed by one launch, with the same
 * arguments and addresses each time (change data in place, not pointers).
 */
public final class CudaGraph implements AutoCloseable {
    private final CudaDevice device;
    private final MemorySegment exec;
    private boolean closed; // guarded by this

    CudaGraph(CudaDevice device, MemorySegment exec) {
        this.device = device;
        this.exec = exec;
    }

    /** Queues the whole graph on {@code stream} ({@code cuGraphLaunch}; {@code null}: the legacy default stream). */
    public void launch(CudaStream stream) {
        device.ensureCurrent();
        DriverApi.cuGraphLaunch(exec, CudaStream.handleOf(stream));
    }

    /** Destroys the executable graph ({@code cuGraphExecDestroy}); idempotent. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        device.ensureCurrent();
        DriverApi.cuGraphExecDestroy(exec);
    }
}
