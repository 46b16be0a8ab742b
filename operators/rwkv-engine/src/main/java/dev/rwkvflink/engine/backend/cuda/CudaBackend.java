package dev.rwkvflink.engine.backend.cuda;

import dev.rwkvflink.cuda.Availability;
import dev.rwkvflink.cuda.Cuda;
import dev.rwkvflink.cuda.CudaDevice;
import dev.rwkvflink.engine.backend.Backend;
import dev.rwkvflink.engine.model.Accelerator;
import dev.rwkvflink.engine.model.ModelRunner;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.model.RwkvVersion;
import dev.rwkvflink.engine.tensor.Tensor;
import java.util.Optional;
import java.util.function.Consumer;

/**
 * The GPU backend: whole RWKV v4, v5, v6 and v7 models run on one CUDA device ({@link Rwkv7Cuda},
 * {@link Rwkv456Cuda}); the occasional stand-alone projection runs on the CPU backend it wraps.
 *
 * <p>Obtained through {@link dev.rwkvflink.engine.backend.Backends#byName} as {@code "cuda"} (bf16 matrices) or
 * {@code "cuda:f32"}; when CUDA is absent that call logs why and returns the CPU backend.
 */
public final class CudaBackend implements Backend, Accelerator {
    private final CudaDevice device;
    private final Precision precision;
    private final Backend cpu;
    /** Sizing of each model's runner: rows per pass, state-pool slots. */
    private final CudaModelRunner.Limits limits;

    private CudaBackend(CudaDevice device, Precision precision, Backend cpu, CudaModelRunner.Limits limits) {
        this.device = device;
        this.precision = precision;
        this.cpu = cpu;
        this.limits = limits;
    }

    /** Why the GPU backend cannot run here, or empty when it can. */
    public static Optional<String> unavailableReason() {
        Availability a = Cuda.availability();
        return a.available() ? Optional.empty() : Optional.of(a.reason());
    }

    /** The device ordinal used when none is given: system property {@code rwkv.cuda.device}, default 0. */
    public static int defaultDevice() {
        return Integer.getInteger("rwkv.cuda.device", 0);
    }

    /** A GPU backend on the {@link #defaultDevice() default device}. */
    public static CudaBackend open(Precision precision, Backend cpu) {
        return open(precision, cpu, defaultDevice());
    }

    /**
     * A GPU backend on device {@code ordinal}.
     *
     * @throws IllegalArgumentException when this machine has no such device (the message says how many it has)
     */
    public static CudaBackend open(Precision precision, Backend cpu, int ordinal) {
        return open(precision, cpu, ordinal, CudaModelRunner.Limits.defaults());
    }

    /** {@link #open(Precision, Backend, int)} with each model's runner sized by {@code limits}. */
    public static CudaBackend open(Precision precision, Backend cpu, int ordinal, CudaModelRunner.Limits limits) {
        int count = Cuda.deviceCount();
        if (ordinal < 0 || ordinal >= count) {
            throw new IllegalArgumentException("CUDA device " + ordinal + " does not exist: this machine has " + count
                    + (count == 1 ? " device (ordinal 0)" : " devices (ordinals 0 to " + (count - 1) + ")")
                    + "; set by rwkv.cuda.device, the operator's cudaDevice or Flink's gpu external resource");
        }
        return new CudaBackend(Cuda.device(ordinal), precision, cpu, limits);
    }

    /** How each model's runner is sized. */
    public CudaModelRunner.Limits limits() {
        return limits;
    }

    public CudaDevice device() {
        return device;
    }

    public Precision precision() {
        return precision;
    }

    @Override
    public String name() {
        return "cuda";
    }

    /** A single projection outside a whole-model run: computed by the CPU backend. */
    @Override
    public void matmul(Tensor w, float[] x, int tokens, float[] y) {
        cpu.matmul(w, x, tokens, y);
    }

    @Override
    public Optional<ModelRunner> open(RwkvModel model, Consumer<String> declined) {
        RwkvVersion v = model.config().version();
        int n = model.config().headSize();
        boolean v7 = v == RwkvVersion.V7;
        if (v != RwkvVersion.V4 && (v7 ? n != 32 && n != 64 : n != 8 && n != 16 && n != 32 && n != 64)) {
            declined.accept("head size " + n + " (the CUDA WKV kernels are built for "
                    + (v7 ? "32 and 64" : "8, 16, 32 and 64") + ")");
            return Optional.empty();
        }
        return Optional.of(
                v7
                        ? Rwkv7Cuda.open(device, model.weights(), model.config(), precision, limits)
                        : Rwkv456Cuda.open(device, model.weights(), model.config(), precision, limits));
    }
}
