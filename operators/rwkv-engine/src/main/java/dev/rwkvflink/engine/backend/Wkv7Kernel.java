package dev.rwkvflink.engine.backend;

import static dev.rwkvflink.engine.backend.Lanes.FS;
import static dev.rwkvflink.engine.backend.Lanes.L;
import static dev.rwkvflink.engine.backend.Lanes.sum;

import jdk.incubator.vector.FloatVector;

/** RWKV-7's WKV recurrence on the CPU, vectorised over the key index j (the twin of {@link Backend#wkv7}). */
final class Wkv7Kernel {

    private Wkv7Kernel() {}

    /**
     * {@link Backend#wkv7} with each state row {@code S[i][.]} loaded once: {@code sa_i} (one accumulator,
     * folded), then the updated row {@code fma(S, w, fma(kk a, sa_i, v_i k))}, stored, and {@code out_i}
     * (one accumulator, folded). Every token's arithmetic is the same whatever the call, so results are
     * bit-identical across T, threads and runs (but differ from the scalar loop by summation order). Head sizes
     * that are not a multiple of the vector length take the scalar loop ({@link VectorBackend#wkv7} checks).
     */
    static void apply(
            float[] s,
            int sOff,
            int heads,
            int n,
            float[] r,
            float[] w,
            float[] k,
            float[] v,
            float[] kk,
            float[] a,
            int row,
            float[] out) {
        float[] kka = KKA.get();
        if (kka.length < n) {
            kka = new float[n];
            KKA.set(kka);
        }
        for (int h = 0; h < heads; h++) {
            int q = row + h * n;
            for (int c = 0; c < n; c += L) {
                FloatVector.fromArray(FS, kk, q + c)
                        .mul(FloatVector.fromArray(FS, a, q + c))
                        .intoArray(kka, c);
            }
            int base = sOff + h * n * n;
            for (int i = 0; i < n; i++) {
                int si = base + i * n;
                FloatVector acc = FloatVector.zero(FS);
                for (int c = 0; c < n; c += L) {
                    acc = FloatVector.fromArray(FS, s, si + c).fma(FloatVector.fromArray(FS, kk, q + c), acc);
                }
                FloatVector sa = FloatVector.broadcast(FS, -sum(acc));
                float vi = v[q + i];
                FloatVector o = FloatVector.zero(FS);
                for (int c = 0; c < n; c += L) {
                    FloatVector add = FloatVector.fromArray(FS, kka, c)
                            .fma(sa, FloatVector.fromArray(FS, k, q + c).mul(vi));
                    FloatVector sij =
                            FloatVector.fromArray(FS, s, si + c).fma(FloatVector.fromArray(FS, w, q + c), add);
                    sij.intoArray(s, si + c);
                    o = sij.fma(FloatVector.fromArray(FS, r, q + c), o);
                }
                out[q + i] = sum(o);
            }
        }
    }

    /** Per-thread kk * a of one head. */
    private static final ThreadLocal<float[]> KKA = ThreadLocal.withInitial(() -> new float[64]);
}
