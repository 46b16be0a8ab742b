package dev.rwkvflink.engine.model;

/**
 * The small per-channel operations every block uses. Arrays hold T rows of n floats, row-major; statistics
 * are accumulated in double so that long rows do not lose precision.
 */
final class Ops {
    private Ops() {}

    /** LayerNorm: {@code y = (x - mean) / sqrt(var + eps) * w + b} over the n values at {@code xo}. */
    static void layerNorm(float[] x, int xo, float[] w, float[] b, float eps, float[] y, int yo, int n) {
        double sum = 0;
        for (int i = 0; i < n; i++) {
            sum += x[xo + i];
        }
        float mean = (float) (sum / n);
        double var = 0;
        for (int i = 0; i < n; i++) {
            double d = x[xo + i] - mean;
            var += d * d;
        }
        float inv = (float) (1.0 / Math.sqrt(var / n + eps));
        for (int i = 0; i < n; i++) {
            y[yo + i] = (x[xo + i] - mean) * inv * w[i] + b[i];
        }
    }

    /** LayerNorm of each of T rows of width n. */
    static void layerNormRows(float[] x, float[] w, float[] b, float eps, float[] y, int rows, int n) {
        for (int t = 0; t < rows; t++) {
            layerNorm(x, t * n, w, b, eps, y, t * n, n);
        }
    }

    /**
     * GroupNorm with one group per head, in place on a row of {@code heads * size} values at {@code off}:
     * each head's values are LayerNorm-ed with {@code eps}, then scaled by {@code w} and shifted by {@code b}
     * (which span the whole row).
     */
    static void groupNorm(float[] x, int off, int heads, int size, float[] w, float[] b, float eps) {
        for (int h = 0; h < heads; h++) {
            int o = off + h * size;
            double sum = 0;
            for (int i = 0; i < size; i++) {
                sum += x[o + i];
            }
            float mean = (float) (sum / size);
            double var = 0;
            for (int i = 0; i < size; i++) {
                double d = x[o + i] - mean;
                var += d * d;
            }
            float inv = (float) (1.0 / Math.sqrt(var / size + eps));
            for (int i = 0; i < size; i++) {
                int c = h * size + i;
                x[o + i] = (x[o + i] - mean) * inv * w[c] + b[c];
            }
        }
    }

    /**
     * The token shift of one stream's rows {@code [first, first + rows)}: row t of {@code prev} is the normalised
     * input of row t-1, the stream's first row getting the row held in the state at {@code shiftOff}; afterwards
     * the state holds the stream's last row.
     */
    static void shiftRows(float[] xx, float[] prev, int first, int rows, int n, float[] state, int shiftOff) {
        int o = first * n;
        System.arraycopy(state, shiftOff, prev, o, n);
        System.arraycopy(xx, o, prev, o + n, (rows - 1) * n);
        System.arraycopy(xx, o + (rows - 1) * n, state, shiftOff, n);
    }

    /** {@code xx * mu + prev * (1 - mu)}: the v4/v5 token-shift interpolation ({@code time_mix_*}); layer-scoped. */
    static float[] lerp(float[] xx, float[] prev, float[] mu, int rows, int n) {
        float[] y = Activations.floats(rows * n);
        for (int t = 0; t < rows; t++) {
            for (int i = 0; i < n; i++) {
                int j = t * n + i;
                y[j] = xx[j] * mu[i] + prev[j] * (1 - mu[i]);
            }
        }
        return y;
    }

    /** {@code xx + (prev - xx) * mu}: the v6/v7 form of the same interpolation ({@code time_maa_*}, {@code x_*}); layer-scoped. */
    static float[] shiftMix(float[] xx, float[] prev, float[] mu, int muOff, int rows, int n) {
        float[] y = Activations.floats(rows * n);
        for (int t = 0; t < rows; t++) {
            for (int i = 0; i < n; i++) {
                int j = t * n + i;
                y[j] = xx[j] + (prev[j] - xx[j]) * mu[muOff + i];
            }
        }
        return y;
    }

    static float sigmoid(float x) {
        return (float) (1.0 / (1.0 + Math.exp(-x)));
    }

    /** SiLU (swish): {@code x * sigmoid(x)}. */
    static float silu(float x) {
        return x * sigmoid(x);
    }

    /** Squared ReLU, the channel-mix activation ("primer" paper): {@code max(x, 0)^2}. */
    static float reluSquared(float x) {
        float r = Math.max(x, 0f);
        return r * r;
    }

    /** Adds {@code d} to {@code x} element-wise (the residual connection). */
    static void addInPlace(float[] x, float[] d) {
        for (int i = 0; i < x.length; i++) {
            x[i] += d[i];
        }
    }
}
