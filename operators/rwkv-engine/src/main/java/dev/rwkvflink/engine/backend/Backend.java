package dev.rwkvflink.engine.backend;

import dev.rwkvflink.engine.tensor.Tensor;

/**
 * The projections of the model: the only operation that touches big weight matrices, and RWKV-7's WKV
 * recurrence (the one per-token kernel of O(channels x head size) work). Everything else in a block is
 * O(channels) per token and is written once, in the block classes.
 *
 * <p>Implementations must accept every {@link dev.rwkvflink.engine.tensor.WeightType} and read the weights
 * directly (dequantizing inside the dot product), and must be safe to call from several threads at once.
 */
public interface Backend {

    /** A short name for logs and metrics ("scalar", "vector"). */
    String name();

    /**
     * {@code y[t][r] = sum_c w[r][c] * x[t][c]} for {@code t < tokens}, {@code r < w.rows()}: row-major
     * {@code x} is tokens x w.cols(), {@code y} is tokens x w.rows(). One token is a matrix-vector product;
     * several are a matrix-matrix product (sequence mode).
     */
    void matmul(Tensor w, float[] x, int tokens, float[] y);

    /** Rows {@code [from, to)} of some row-wise work. */
    @FunctionalInterface
    interface RowRange {
        void run(int from, int to);
    }

    /**
     * Runs {@code body} over rows {@code [0, rows)}, each row about {@code rowWork} operations: in one call on the
     * caller's thread (this default), or cut into ranges that several threads run (VectorBackend). The body's
     * arithmetic for a row must not depend on the range it falls in, so the results are the same bits either way.
     */
    default void forRows(int rows, int rowWork, RowRange body) {
        body.run(0, rows);
    }

    /**
     * One token of RWKV-7's WKV recurrence (the generalised delta rule), every head. Head h of size {@code n}
     * keeps {@code S = s[sOff + h n n ..]}, row-major {@code S[i][j]} (value i, key j); the token's inputs are row
     * {@code row} (an offset) of row-major activation arrays, head h's from {@code q = row + h n}:
     * <pre>
     *   sa_i  = -sum_j S_ij kk_j
     *   S_ij &lt;- S_ij w_j + sa_i kk_j a_j + v_i k_j       (w, k, kk, a, v at q + j or q + i)
     *   out_i = sum_j S_ij r_j                           written to out[q + i]
     * </pre>
     * The default is the plain scalar loop (the reference); fast backends vectorise over j. Whatever the
     * implementation, each output depends only on this token's inputs and the state (no dependence on how many
     * tokens came in a call).
     */
    default void wkv7(
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
        for (int h = 0; h < heads; h++) {
            int hc = h * n;
            int base = sOff + h * n * n;
            for (int i = 0; i < n; i++) {
                int si = base + i * n;
                float sa = 0;
                for (int j = 0; j < n; j++) {
                    sa -= s[si + j] * kk[row + hc + j];
                }
                float vi = v[row + hc + i];
                float acc = 0;
                for (int j = 0; j < n; j++) {
                    int cj = row + hc + j;
                    float sij = s[si + j] * w[cj] + sa * kk[cj] * a[cj] + vi * k[cj];
                    s[si + j] = sij;
                    acc += sij * r[cj];
                }
                out[row + hc + i] = acc;
            }
        }
    }
}
