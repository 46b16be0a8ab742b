package dev.rwkvflink.engine.backend;

import dev.rwkvflink.engine.tensor.Tensor;

/**
 * The reference backend: one thread, plain loops, each weight row dequantized to floats then multiplied in
 * order. Every fast backend is checked against this one.
 */
public final class ScalarBackend implements Backend {

    @Override
    public String name() {
        return "scalar";
    }

    @Override
    public void matmul(Tensor w, float[] x, int tokens, float[] y) {
        int rows = w.rows();
        int cols = w.cols();
        float[] row = new float[cols];
        for (int r = 0; r < rows; r++) {
            w.readRow(r, row, 0);
            for (int t = 0; t < tokens; t++) {
                int xo = t * cols;
                float acc = 0f;
                for (int c = 0; c < cols; c++) {
                    acc += row[c] * x[xo + c];
                }
                y[t * rows + r] = acc;
            }
        }
    }
}
