package dev.rwkvflink.engine.model;

/**
 * The matrix-valued WKV recurrences of v5-v7, scanned token by token in fp32. One place for each, shared by
 * sequence mode and RNN mode (which is sequence mode with one token).
 */
final class MatrixWkv {
    private MatrixWkv() {}

    /**
     * v5/v6: per head, state {@code S[i][j]} (key i, value j) at {@code s[wkv + (h*N + i)*N + j]};
     * {@code w} and {@code u} per key channel, {@code w} either one row for every token (v5, length C) or one
     * row per row of {@code r} (v6). Scans the {@code rows} rows from row {@code first} (one stream's tokens).
     * <pre>
     *   out_j = sum_i r_i (u_i k_i v_j + S_ij),   S_ij <- k_i v_j + w_i S_ij
     * </pre>
     */
    static void scanDecayBonus(
            float[] r,
            float[] k,
            float[] v,
            float[] w,
            float[] u,
            float[] s,
            int wkv,
            float[] out,
            int first,
            int rows,
            int H,
            int N) {
        int C = H * N;
        boolean perToken = w.length != C; // with one row in all, both readings are row 0
        for (int t = first; t < first + rows; t++) {
            int row = t * C;
            int wRow = perToken ? row : 0;
            for (int h = 0; h < H; h++) {
                int hc = h * N;
                for (int i = 0; i < N; i++) {
                    int ci = hc + i;
                    float ri = r[row + ci];
                    float ki = k[row + ci];
                    float ui = u[ci];
                    float wi = w[wRow + ci];
                    int si = wkv + ci * N;
                    for (int j = 0; j < N; j++) {
                        float a = ki * v[row + hc + j];
                        out[row + hc + j] += ri * (ui * a + s[si + j]);
                        s[si + j] = a + wi * s[si + j];
                    }
                }
            }
        }
    }
}
