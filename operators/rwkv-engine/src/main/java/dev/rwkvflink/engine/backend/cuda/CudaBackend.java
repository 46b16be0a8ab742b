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
 * The GPU backend: whole RWKV-7 models run on one CUDA device ({@link Rwkv7Cuda}); the rest (the occasional
 * stand-alone projection, other model versions) runs on the CPU backend it wraps.
 *
 * <p>Obtained through {@link dev.rwkvflink.engine.backend.Backends#byName} as {@code "cuda"} (bf16 matrices) or
 * {@code "cuda:f32"}; when CUDA is absent that call logs why and returns the CPU backend.
 */
public final class CudaBackend implements Backend, Accelerator {
    private final CudaDevice device;
    private final Precision precision;
    private final Backend cpu;

    private CudaBackend(CudaDevice device, Precision precision, Backend cpu) {
        this.device = device;
        this.precision = precision;
        this.cpu = cpu;
    }

    /** Why the GPU backend cannot run here, or empty when it can. */
    public static Optional<String> unavailableReason() {
        Availability a = Cuda.availability();
        return a.available() ? Optional.empty() : Optional.of(a.reason());
    }

    /** A GPU backend on device 0 (system property {@code rwkv.cuda.device} picks another). */
    public static CudaBackend open(Precision precision, Backend cpu) {
        CudaDevice d = Cuda.device(Integer.getInteger("rwkv.cuda.device", 0));
        return new CudaBackend(d, precision, cpu);
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
        if (model.config().version() != RwkvVersion.V7) {
            declined.accept("the CUDA runner implements RWKV-7 only; this model is " + model.config().version());
            return Optional.empty();
        }
        int n = model.config().headSize();
        if (n != 32 && n != 64) {
            declined.accept("head size " + n + " (the CUDA WKV kernel is built for 32 and 64)");
            return Optional.empty();
        }
        return Optional.of(Rwkv7Cuda.open(device, model.weights(), model.config(), precision,
                Rwkv7Cuda.Limits.defaults()));
    }
}
