package dev.rwkvflink.cuda;

/**
 * A driver object of one device (a stream, event, graph, module, device or pinned allocation) that {@link #close()}
 * releases exactly once, with the device's context current: what those classes share. Closing again does nothing;
 * {@link #isClosed()} lets their methods refuse use after close.
 */
abstract class DeviceResource implements AutoCloseable {
    /** The device the object belongs to. */
    protected final CudaDevice device;

    private volatile boolean closed;

    DeviceResource(CudaDevice device) {
        this.device = device;
    }

    /** Whether {@link #close()} has run. */
    final boolean isClosed() {
        return closed;
    }

    @Override
    public final void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        device.ensureCurrent();
        release();
    }

    /** Frees the driver object (called once, the device's context current). */
    abstract void release();
}
