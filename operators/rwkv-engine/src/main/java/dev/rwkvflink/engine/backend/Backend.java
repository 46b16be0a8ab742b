package dev.rwkvflink.engine.backend;

import dev.rwkvflink.engine.tensor.Tensor;

/**
 * The projections of the model: the only operation that touches big weight matrices. Everything else in a
 * block is O(channels) per token and is written once, in the block classes.
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
}
