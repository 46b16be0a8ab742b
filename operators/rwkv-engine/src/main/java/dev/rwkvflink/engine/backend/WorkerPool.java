package dev.rwkvflink.engine.backend;

import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * The caller plus {@code threads - 1} helper threads that split row-wise work ({@link VectorBackend}'s products
 * and row loops): each call is cut into chunks that the caller and the helpers claim one by one from a shared
 * counter. An idle helper, and a caller waiting for its helpers, spin for {@code rwkv.spinMicros} microseconds
 * (default {@value #DEFAULT_SPIN_MICROS}) before they park: a forward pass is a run of products with short
 * single-threaded work between them, and waking a parked thread costs 10-50 microseconds in a VM, longer than a
 * 768 x 768 product takes (without the spin, one-token decode of RWKV-7 0.1B on 2 threads ran at 73 (fp16) and 82
 * (Q8_0) tokens/s, with 100 microseconds 84 and 93-100: quiet 2-vCPU EPYC; rwkv.cpp's ggml threads spin too). The
 * spin is bounded, so between calls an idle helper parks within 100 microseconds; on a machine oversubscribed by
 * other processes, 0 gives their threads those turns.
 */
final class WorkerPool implements AutoCloseable {
    /** Default spin before parking, microseconds. */
    static final int DEFAULT_SPIN_MICROS = 100;

    private static final long SPIN_NANOS = 1000L * Integer.getInteger("rwkv.spinMicros", DEFAULT_SPIN_MICROS);
    /** Tells a helper to stop ({@link #close}). */
    private static final Runnable STOP = () -> {};

    private final int threads;
    /** Work for the helpers; null when single-threaded. */
    private final LinkedBlockingQueue<Runnable> queue;

    private final Thread[] helpers;

    /** {@code threads - 1} daemon helpers named {@code namePrefix + i}. */
    WorkerPool(int threads, String namePrefix) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        }
        this.threads = threads;
        this.queue = threads == 1 ? null : new LinkedBlockingQueue<>();
        this.helpers = new Thread[threads - 1];
        for (int i = 0; i < helpers.length; i++) {
            helpers[i] = Thread.ofPlatform().daemon().name(namePrefix + i).start(this::helperLoop);
        }
    }

    /** Threads that share a call: the caller and the helpers. */
    int threads() {
        return threads;
    }

    /** A helper: runs queued work; spins a while when the queue is empty, then blocks. */
    private void helperLoop() {
        try {
            while (true) {
                Runnable r = queue.poll();
                if (r == null) {
                    long until = System.nanoTime() + SPIN_NANOS;
                    while (r == null && System.nanoTime() < until) {
                        Thread.onSpinWait();
                        r = queue.poll();
                    }
                    if (r == null) {
                        r = queue.take();
                    }
                }
                if (r == STOP) {
                    return;
                }
                r.run();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Runs body over [0, n) in chunks of {@code grain}, claimed by the caller and the helpers; waits for all. */
    void run(int n, int grain, Backend.RowRange body) {
        ParallelCall call = new ParallelCall(n, grain, body);
        for (int i = 1; i < Math.min(threads, call.chunks); i++) {
            queue.add(call);
        }
        call.run();
        call.awaitAll();
    }

    /**
     * One multi-threaded call (a matmul's output rows, or row-wise work). The caller and the helpers run
     * {@link #run}, claiming chunks of rows from a shared counter until none are left; whoever finishes the last
     * chunk wakes the caller. A helper that starts late finds nothing to claim and returns at once, and the caller
     * never waits for it.
     */
    private static final class ParallelCall implements Runnable {
        private final int n;
        private final int grain;
        private final Backend.RowRange body;
        final int chunks;
        private final AtomicInteger next = new AtomicInteger();
        private final AtomicInteger unfinished;
        private final Thread caller = Thread.currentThread();
        private volatile Throwable failure;

        ParallelCall(int n, int grain, Backend.RowRange body) {
            this.n = n;
            this.grain = grain;
            this.body = body;
            this.chunks = (n + grain - 1) / grain;
            this.unfinished = new AtomicInteger(chunks);
        }

        @Override
        public void run() {
            for (int c = next.getAndIncrement(); c < chunks; c = next.getAndIncrement()) {
                try {
                    body.run(c * grain, Math.min(n, (c + 1) * grain));
                } catch (Throwable e) {
                    failure = e;
                }
                if (unfinished.decrementAndGet() == 0) {
                    LockSupport.unpark(caller);
                }
            }
        }

        /** Blocks the caller until every chunk is done (spinning first); rethrows a helper's failure. */
        void awaitAll() {
            long until = System.nanoTime() + SPIN_NANOS;
            while (unfinished.get() > 0 && System.nanoTime() < until) {
                Thread.onSpinWait();
            }
            while (unfinished.get() > 0) {
                LockSupport.park(this);
            }
            Throwable e = failure;
            if (e instanceof RuntimeException re) {
                throw re;
            } else if (e instanceof Error err) {
                throw err;
            } else if (e != null) {
                throw new IllegalStateException(e);
            }
        }
    }

    /** Stops the helper threads (daemons) once they finish the work already queued. */
    @Override
    public void close() {
        for (int i = 0; i < helpers.length; i++) {
            queue.add(STOP);
        }
    }
}
