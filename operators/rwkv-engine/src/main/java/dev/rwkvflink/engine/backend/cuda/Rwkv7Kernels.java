package dev.rwkvflink.engine.backend.cuda;

import dev.rwkvflink.cuda.CudaDevice;
import dev.rwkvflink.cuda.CudaKernel;
import dev.rwkvflink.cuda.CudaStream;

/** RWKV-7's kernels ({@code rwkv7.cu}) on top of the common ones. */
final class Rwkv7Kernels extends CommonKernels {
    private final CudaKernel timeMix;
    private final CudaKernel prep;
    private final CudaKernel scan;
    private final CudaKernel gate;
    final int headSize;

    Rwkv7Kernels(CudaDevice device, Precision precision, int headSize) {
        super(device, precision, "rwkv7.cu");
        if (headSize != 32 && headSize != 64) {
            close();
            throw new IllegalArgumentException("head size " + headSize + ": the CUDA WKV kernel is built for 32 and 64");
        }
        this.headSize = headSize;
        String t = precision.suffix;
        timeMix = module.kernel("rwkv7_time_mix_" + headSize + "_" + t);
        prep = module.kernel("rwkv7_prep");
        scan = module.kernel("rwkv7_scan_" + headSize);
        gate = module.kernel("rwkv7_gate_" + t);
    }

    /** The fused time mix: decay, learning rate, value residual, kk, the WKV recurrence, GroupNorm, bonus, gate. */
    void timeMix(CudaStream s, int streams, int heads, long r, long k, long v, long wLora, long aLora, long g,
                 long vLora, long vFirst, Rwkv7Weights.Layer y, boolean firstLayer, float gnEps, long out, long pool,
                 long slotFloats, int wkvOff, long start, long count, long slot, int C) {
        timeMix.launch(s, heads, streams, 1, headSize, 1, 1, 0, r, k, v, wLora, aLora, g, vLora, vFirst, y.w0, y.a0,
                y.v0 == null ? 0L : y.v0.address(), y.kk, y.ka, y.rk, y.lnxw, y.lnxb, gnEps, firstLayer ? 1 : 0, out,
                pool, slotFloats, wkvOff, start, count, slot, C);
    }

    /** The split time mix, step 1: per-channel preparation over all rows (see rwkv7.cu). */
    void prep(CudaStream s, int rows, int heads, long w, long a, long k, long kk, long v, long vFirst, long vLora,
              Rwkv7Weights.Layer y, boolean firstLayer, int C) {
        prep.launch(s, heads, rows, 1, headSize, 1, 1, 0, w, a, k, kk, v, vFirst, vLora, y.w0, y.a0,
                y.v0 == null ? 0L : y.v0.address(), y.kk, y.ka, firstLayer ? 1 : 0, C, headSize);
    }

    /** The split time mix, step 2: the recurrence alone, per (stream, head). */
    void scan(CudaStream s, int streams, int heads, long r, long w, long k, long kk, long b, long v, long out,
              long pool, long slotFloats, int wkvOff, long start, long count, long slot, int C) {
        scan.launch(s, heads, streams, 1, headSize, 1, 1, 0, r, w, k, kk, b, v, out, pool, slotFloats, wkvOff, start,
                count, slot, C);
    }

    /** The split time mix, step 3: GroupNorm + bonus + gate over all rows, into the act type. */
    void gate(CudaStream s, int rows, int heads, long out, long r, long k, long v, long g, Rwkv7Weights.Layer y,
              float eps, long dst, int C) {
        gate.launch(s, heads, rows, 1, headSize, 1, 1, 0, out, r, k, v, g, y.rk, y.lnxw, y.lnxb, eps, dst, C, headSize);
    }
}
