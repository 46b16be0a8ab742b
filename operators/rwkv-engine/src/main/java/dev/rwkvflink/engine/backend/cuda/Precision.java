package dev.rwkvflink.engine.backend.cuda;

import dev.rwkvflink.cuda.Cublas;
import java.util.Locale;

/**
 * The type of the projection matrices and of the activations fed to them on the GPU. Accumulation is always fp32,
 * and so are the residual stream, the recurrent state, decays and every per-channel computation.
 * <ul>
 *   <li>{@link #BF16}: the production setting (tensor cores); logits agree with the CPU engine to about 1e-2
 *       relative;</li>
 *   <li>{@link #F32}: full fp32 products (cuBLAS without TF32); agrees with the CPU engine to about 1e-5, the
 *       setting that checks the kernels.</li>
 * </ul>
 */
public enum Precision {
    F32(Cublas.DataType.F32, 4, "f32"),
    BF16(Cublas.DataType.BF16, 2, "bf16");

    final Cublas.DataType blasType;
    final int bytes;
    /** Suffix of the kernel entry points that write this type. */
    final String suffix;

    Precision(Cublas.DataType blasType, int bytes, String suffix) {
        this.blasType = blasType;
        this.bytes = bytes;
        this.suffix = suffix;
    }

    /** "bf16" or "f32" (case-insensitive). */
    public static Precision parse(String s) {
        return switch (s.strip().toLowerCase(Locale.ROOT)) {
            case "bf16" -> BF16;
            case "f32", "fp32" -> F32;
            default -> throw new IllegalArgumentException("unknown CUDA precision \"" + s + "\"; known: bf16, f32");
        };
    }
}
