package dev.rwkvflink.engine.backend;

import java.io.Serializable;

/**
 * How the shared backends of this JVM are sized: the CPU backend's worker threads, and per GPU model the state
 * pool's slots (streams resident on the device) and the rows (tokens over all streams) one pass takes. Backends are
 * shared by every model of the JVM, so these apply when a backend is first made ({@link Backends#byName(String,
 * int, EngineSettings)}); a later, different request is logged and ignored. 0 in a field: its default, the system
 * property ({@code rwkv.threads}, {@code rwkv.cuda.slots}, {@code rwkv.cuda.maxRows}), else the built-in value
 * (the available processors, 256 slots, 16,384 rows).
 */
public record EngineSettings(int threads, int cudaSlots, int cudaMaxRows) implements Serializable {
    /** Every field at its default. */
    public static final EngineSettings DEFAULTS = new EngineSettings(0, 0, 0);

    public EngineSettings {
        if (threads < 0 || cudaSlots < 0 || cudaMaxRows < 0) {
            throw new IllegalArgumentException("engine settings must be >= 0 (0: default): threads " + threads
                    + ", CUDA slots " + cudaSlots + ", CUDA rows " + cudaMaxRows);
        }
    }

    /** The CPU backend's threads: {@link #threads}, else {@code rwkv.threads}, else the available processors. */
    public int threadsOrDefault() {
        return threads > 0
                ? threads
                : Integer.getInteger("rwkv.threads", Runtime.getRuntime().availableProcessors());
    }

    /** State-pool slots of a GPU model: {@link #cudaSlots}, else {@code rwkv.cuda.slots}, else 256. */
    public int cudaSlotsOrDefault() {
        return cudaSlots > 0 ? cudaSlots : Integer.getInteger("rwkv.cuda.slots", 256);
    }

    /** Rows one GPU pass takes: {@link #cudaMaxRows}, else {@code rwkv.cuda.maxRows}, else 16,384. */
    public int cudaMaxRowsOrDefault() {
        return cudaMaxRows > 0 ? cudaMaxRows : Integer.getInteger("rwkv.cuda.maxRows", 16_384);
    }
}
