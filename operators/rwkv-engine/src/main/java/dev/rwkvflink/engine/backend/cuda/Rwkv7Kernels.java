package dev.rwkvflink.engine.backend.cuda;

import dev.rwkvflink.cuda.CudaDevice;
import dev.rwkvflink.cuda.CudaKernel;
import dev.rwkvflink.cuda.CudaStream;

/** RWKV-7's kernels ({@code rwkv7.cu}) on top of the common ones. */
final class Rwkv7Kernels extends CommonKernels {
    private final CudaKernel timeMix;
    private final CudaKernel timeMixOne;
    private final CudaKernel prep;
    private final CudaKernel scan;
    private final CudaKernel gate;
    private final CudaKernel chunkLocal;
    private final CudaKernel chunkState;
    private final CudaKernel chunkOut;
    final int headSize;
    /** State rows per block of the chunk scan (CHUNK_RB in rwkv7.cu). */
    static final int CHUNK_RB = 8;
    /** Warps (one per (row, head)) per block of the prep and gate kernels. */
    private static final int PAIR_WARPS = 8;

    Rwkv7Kernels(CudaDevice device, Precision precision, int headSize) {
        super(device, precision, "rwkv7.cu");
        if (headSize != 32 && headSize != 64) {
            close();
            throw new IllegalArgumentException(
                    "head size " + headSize + ": the CUDA WKV kernel is built for 32 and 64");
        }
        this.headSize = headSize;
        String t = precision.suffix;
        timeMix = module.kernel("rwkv7_time_mix_" + headSize + "_" + t);
        timeMixOne = module.kernel("rwkv7_time_mix_one_" + headSize + "_" + t);
        prep = module.kernel("rwkv7_prep_" + headSize);
        scan = module.kernel("rwkv7_scan_" + headSize);
        gate = module.kernel("rwkv7_gate_" + headSize + "_" + t);
        chunkLocal = module.kernel("rwkv7_chunk_local_" + headSize);
        chunkState = module.kernel("rwkv7_chunk_state_" + headSize);
        chunkOut = module.kernel("rwkv7_chunk_out_" + headSize);
    }

    /** Floats of scratch per (chunk, head) of the chunked recurrence: P, K~, Z, A, S_start. */
    long chunkScratchFloats() {
        int n = headSize;
        int l = CudaModelRunner.CHUNK_L;
        return 2L * n * n + 2L * l * n + (long) l * l;
    }

    /** Chunked recurrence, phase 1: every chunk's P, K~, Z and A at once. */
    void chunkLocal(
            CudaStream s,
            int chunks,
            int heads,
            long r,
            long w,
            long k,
            long kk,
            long b,
            long chunkRow0,
            long chunkLen,
            long scratch,
            int C) {
        chunkLocal.launch(
                s,
                heads,
                chunks,
                1,
                headSize + CudaModelRunner.CHUNK_L,
                1,
                1,
                0,
                r,
                w,
                k,
                kk,
                b,
                chunkRow0,
                chunkLen,
                scratch,
                C);
    }

    /**
     * Phase 2: per (stream, head), the state carried across the stream's chunks; each chunk's start state saved. The
     * state's rows are split over {@code headSize / CHUNK_RB} blocks per (stream, head).
     */
    void chunkState(
            CudaStream s,
            int streams,
            int heads,
            long v,
            long pool,
            long slotFloats,
            int wkvOff,
            long slot,
            long streamChunk0,
            long streamChunks,
            long chunkRow0,
            long chunkLen,
            long scratch,
            int C) {
        chunkState.launch(
                s,
                heads,
                streams,
                headSize / CHUNK_RB,
                headSize,
                1,
                1,
                0,
                v,
                pool,
                slotFloats,
                wkvOff,
                slot,
                streamChunk0,
                streamChunks,
                chunkRow0,
                chunkLen,
                scratch,
                C);
    }

    /** Phase 3: every chunk's outputs at once. */
    void chunkOut(
            CudaStream s, int chunks, int heads, long v, long chunkRow0, long chunkLen, long scratch, long out, int C) {
        chunkOut.launch(s, heads, chunks, 1, headSize, 1, 1, 0, v, chunkRow0, chunkLen, scratch, out, C);
    }

    /** The fused time mix: decay, learning rate, value residual, kk, the WKV recurrence, GroupNorm, bonus, gate. */
    void timeMix(
            CudaStream s,
            int streams,
            int heads,
            long r,
            long k,
            long v,
            long wLora,
            long aLora,
            long g,
            long vLora,
            long vFirst,
            Rwkv7Weights.Layer y,
            boolean firstLayer,
            float gnEps,
            long out,
            long pool,
            long slotFloats,
            int wkvOff,
            long start,
            long count,
            long slot,
            int C) {
        timeMix.launch(
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
                wLora,
                aLora,
                g,
                vLora,
                vFirst,
                y.w0,
                y.a0,
                y.v0 == null ? 0L : y.v0.address(),
                y.kk,
                y.ka,
                y.rk,
                y.lnxw,
                y.lnxb,
                gnEps,
                firstLayer ? 1 : 0,
                out,
                pool,
                slotFloats,
                wkvOff,
                start,
                count,
                slot,
                C);
    }

    /** The fused time mix for steps where every stream has one token (rows == streams): 4 threads per state row. */
    void timeMixOne(
            CudaStream s,
            int streams,
            int heads,
            long r,
            long k,
            long v,
            long wLora,
            long aLora,
            long g,
            long vLora,
            long vFirst,
            Rwkv7Weights.Layer y,
            boolean firstLayer,
            float gnEps,
            long out,
            long pool,
            long slotFloats,
            int wkvOff,
            long start,
            long slot,
            int C) {
        launch(
                timeMixOne,
                true,
                s,
                heads,
                streams,
                4 * headSize,
                r,
                k,
                v,
                wLora,
                aLora,
                g,
                vLora,
                vFirst,
                y.w0,
                y.a0,
                y.v0 == null ? 0L : y.v0.address(),
                y.kk,
                y.ka,
                y.rk,
                y.lnxw,
                y.lnxb,
                gnEps,
                firstLayer ? 1 : 0,
                out,
                pool,
                slotFloats,
                wkvOff,
                start,
                slot,
                C);
    }

    /** The split time mix, step 1: per-channel preparation over all rows (see rwkv7.cu). */
    void prep(
            CudaStream s,
            int rows,
            int heads,
            long w,
            long a,
            long k,
            long kk,
            long v,
            long vFirst,
            long vLora,
            Rwkv7Weights.Layer y,
            boolean firstLayer,
            int C) {
        prep.launch(
                s,
                pairBlocks(rows, heads),
                1,
                1,
                32 * PAIR_WARPS,
                1,
                1,
                0,
                w,
                a,
                k,
                kk,
                v,
                vFirst,
                vLora,
                y.w0,
                y.a0,
                y.v0 == null ? 0L : y.v0.address(),
                y.kk,
                y.ka,
                firstLayer ? 1 : 0,
                C,
                rows);
    }

    /** The split time mix, step 2: the recurrence alone, per (stream, head). */
    void scan(
            CudaStream s,
            int streams,
            int heads,
            long r,
            long w,
            long k,
            long kk,
            long b,
            long v,
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
                w,
                k,
                kk,
                b,
                v,
                out,
                pool,
                slotFloats,
                wkvOff,
                start,
                count,
                slot,
                C);
    }

    /** The split time mix, step 3: GroupNorm + bonus + gate over all rows, into the act type. */
    void gate(
            CudaStream s,
            int rows,
            int heads,
            long out,
            long r,
            long k,
            long v,
            long g,
            Rwkv7Weights.Layer y,
            float eps,
            long dst,
            int C) {
        gate.launch(
                s,
                pairBlocks(rows, heads),
                1,
                1,
                32 * PAIR_WARPS,
                1,
                1,
                0,
                out,
                r,
                k,
                v,
                g,
                y.rk,
                y.lnxw,
                y.lnxb,
                eps,
                dst,
                C,
                rows);
    }

    private static int pairBlocks(int rows, int heads) {
        return (int) (((long) rows * heads + PAIR_WARPS - 1) / PAIR_WARPS);
    }
}
