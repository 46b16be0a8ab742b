package dev.rwkvflink.engine.backend.cuda;

import dev.rwkvflink.cuda.CudaDevice;
import dev.rwkvflink.cuda.CudaKernel;
import dev.rwkvflink.cuda.CudaStream;
import dev.rwkvflink.cuda.DeviceMemory;

/** RWKV-4, RWKV-5 and RWKV-6 kernels ({@code rwkv456.cu}) on top of the common ones. */
final class Rwkv456Kernels extends CommonKernels {
    private final CudaKernel scan;
    private final CudaKernel gate;
    private final CudaKernel decay;
    private final CudaKernel ffnGateAdd;
    private final CudaKernel rwkv4Scan;
    final int headSize;

    /** {@code headSize} 0 for RWKV-4 (no matrix state). */
    Rwkv456Kernels(CudaDevice device, Precision precision, int headSize) {
        super(device, precision, "rwkv456.cu");
        if (headSize != 0 && headSize != 8 && headSize != 16 && headSize != 32 && headSize != 64) {
            close();
            throw new IllegalArgumentException(
                    "head size " + headSize + ": the CUDA v5/v6 WKV kernel is built for 8, 16, 32 and 64");
        }
        this.headSize = headSize;
        scan = headSize == 0 ? null : module.kernel("rwkv56_scan_" + headSize);
        rwkv4Scan = module.kernel("rwkv4_scan_" + precision.suffix);
        gate = module.kernel("rwkv56_gate_" + precision.suffix);
        decay = module.kernel("rwkv6_decay");
        ffnGateAdd = module.kernel("ffn_gate_add");
    }

    /** The decay-and-bonus recurrence per (stream, head); {@code wStride} 0 (one decay row) or C (per token). */
    void scan(
            CudaStream s,
            int streams,
            int heads,
            long r,
            long k,
            long v,
            long w,
            long wStride,
            DeviceMemory u,
            long out,
            long pool,
            long slotFloats,
            int wkvOff,
            long start,
            long count,
            long slot,
            int C) {
        scan.launch(
                s,
                heads,
                streams,
                1,
                headSize,
                1,
                1,
                0,
                r,
                k,
                v,
                w,
                wStride,
                u,
                out,
                pool,
                slotFloats,
                wkvOff,
                start,
                count,
                slot,
                C);
    }

    /** RWKV-4's WKV per (stream, channel), gated by sigmoid(r), into the act type. */
    void rwkv4Scan(
            CudaStream s,
            int streams,
            long r,
            long k,
            long v,
            DeviceMemory w,
            DeviceMemory u,
            long y,
            long pool,
            long slotFloats,
            int wkvOff,
            long start,
            long count,
            long slot,
            int C) {
        rwkv4Scan.launch(
                s,
                (C + 127) / 128,
                streams,
                1,
                128,
                1,
                1,
                0,
                r,
                k,
                v,
                w,
                u,
                y,
                pool,
                slotFloats,
                wkvOff,
                start,
                count,
                slot,
                C);
    }

    /** GroupNorm per head, times silu(g) when {@code g} is not 0, into the act type. */
    void gate(
            CudaStream s,
            int rows,
            int heads,
            long out,
            long g,
            DeviceMemory lnw,
            DeviceMemory lnb,
            float eps,
            long y,
            int C) {
        gate.launch(s, heads, rows, 1, headSize, 1, 1, 0, out, g, lnw, lnb, eps, y, C, headSize);
    }

    /** v6: w = exp(-exp(base + w)) in place over n values. */
    void decay(CudaStream s, long w, DeviceMemory base, long n, int C) {
        decay.launch(s, blocks(n), 1, 1, ROW_THREADS, 1, 1, 0, w, base, n, C);
    }

    /** x += sigmoid(rr) * vv over n values. */
    void ffnGateAdd(CudaStream s, long x, long rr, long vv, long n) {
        ffnGateAdd.launch(s, blocks(n), 1, 1, ROW_THREADS, 1, 1, 0, x, rr, vv, n);
    }
}
