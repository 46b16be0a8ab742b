package dev.rwkvflink.engine.embed;

import dev.rwkvflink.engine.state.ModelFingerprint;

import java.util.List;

/**
 * Trains a {@link LinearHead}: multinomial logistic regression on embeddings, full-batch Adam on the mean
 * cross-entropy plus an L2 penalty on the weights.
 * <pre>
 *   p_nk = softmax_k(W x_n + b)
 *   loss = -1/N sum_n log p_{n,y_n} + lambda/2 ||W||^2
 *   dW_k = 1/N sum_n (p_nk - [y_n = k]) x_n + lambda W_k,   db_k = 1/N sum_n (p_nk - [y_n = k])
 *   Adam: m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2, theta -= lr * m_hat / (sqrt(v_hat) + eps)
 * </pre>
 * Deterministic: plain loops in a fixed order, zero initialisation, no randomness.
 */
public final class SoftmaxTrainer {
    private final int epochs;
    private final double learningRate;
    private final double l2;

    public SoftmaxTrainer(int epochs, double learningRate, double l2) {
        if (epochs < 1 || learningRate <= 0 || l2 < 0) {
            throw new IllegalArgumentException("epochs >= 1, learning rate > 0 and l2 >= 0 are required");
        }
        this.epochs = epochs;
        this.learningRate = learningRate;
        this.l2 = l2;
    }

    /** Fits a head on embeddings {@code x} (all of one dimension) with label indexes {@code y} into {@code labels}. */
    public LinearHead fit(float[][] x, int[] y, List<String> labels, ModelFingerprint model, Pooling pooling) {
        int n = x.length;
        int k = labels.size();
        if (n == 0 || y.length != n || k < 2) {
            throw new IllegalArgumentException("need examples with labels of at least 2 classes (" + n + " examples, "
                    + k + " classes)");
        }
        int d = x[0].length;
        double[][] w = new double[k][d];
        double[] b = new double[k];
        double[][] mw = new double[k][d];
        double[][] vw = new double[k][d];
        double[] mb = new double[k];
        double[] vb = new double[k];
        double b1 = 0.9;
        double b2 = 0.999;
        double eps = 1e-8;
        double[] p = new double[k];
        for (int epoch = 1; epoch <= epochs; epoch++) {
            double[][] gw = new double[k][d];
            double[] gb = new double[k];
            for (int i = 0; i < n; i++) {
                probabilities(w, b, x[i], p);
                for (int c = 0; c < k; c++) {
                    double err = (p[c] - (y[i] == c ? 1 : 0)) / n;
                    gb[c] += err;
                    for (int j = 0; j < d; j++) {
                        gw[c][j] += err * x[i][j];
                    }
                }
            }
            double c1 = 1 - Math.pow(b1, epoch);
            double c2 = 1 - Math.pow(b2, epoch);
            for (int c = 0; c < k; c++) {
                for (int j = 0; j < d; j++) {
                    double g = gw[c][j] + l2 * w[c][j];
                    mw[c][j] = b1 * mw[c][j] + (1 - b1) * g;
                    vw[c][j] = b2 * vw[c][j] + (1 - b2) * g * g;
                    w[c][j] -= learningRate * (mw[c][j] / c1) / (Math.sqrt(vw[c][j] / c2) + eps);
                }
                mb[c] = b1 * mb[c] + (1 - b1) * gb[c];
                vb[c] = b2 * vb[c] + (1 - b2) * gb[c] * gb[c];
                b[c] -= learningRate * (mb[c] / c1) / (Math.sqrt(vb[c] / c2) + eps);
            }
        }
        float[][] wf = new float[k][d];
        float[] bf = new float[k];
        for (int c = 0; c < k; c++) {
            for (int j = 0; j < d; j++) {
                wf[c][j] = (float) w[c][j];
            }
            bf[c] = (float) b[c];
        }
        return new LinearHead(model, pooling, labels, wf, bf);
    }

    private static void probabilities(double[][] w, double[] b, float[] x, double[] p) {
        for (int c = 0; c < p.length; c++) {
            double z = b[c];
            for (int j = 0; j < x.length; j++) {
                z += w[c][j] * x[j];
            }
            p[c] = z;
        }
        LinearHead.softmaxInPlace(p);
    }

    /** Fraction of examples whose most probable label is the true one. */
    public static double accuracy(LinearHead head, float[][] x, int[] y) {
        int right = 0;
        for (int i = 0; i < x.length; i++) {
            float[] p = head.probabilities(x[i]);
            if (head.label(p).equals(head.labels().get(y[i]))) {
                right++;
            }
        }
        return x.length == 0 ? Double.NaN : (double) right / x.length;
    }
}
