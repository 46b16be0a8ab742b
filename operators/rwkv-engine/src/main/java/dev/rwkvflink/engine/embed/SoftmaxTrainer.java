package dev.rwkvflink.engine.embed;

import dev.rwkvflink.engine.state.ModelFingerprint;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.IntConsumer;

/**
 * Trains a {@link LinearHead}: multinomial logistic regression on embeddings with Adam on the mean cross-entropy
 * plus an L2 penalty on the weights.
 * <pre>
 *   p_nk = softmax_k(W x_n + b)
 *   loss = -1/N sum_n log p_{n,y_n} + lambda/2 ||W||^2
 *   dW_k = 1/N sum_n (p_nk - [y_n = k]) x_n + lambda W_k,   db_k = 1/N sum_n (p_nk - [y_n = k])
 *   Adam: m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2, theta -= lr * m_hat / (sqrt(v_hat) + eps)
 * </pre>
 * Two regimes, one {@link Plan} each:
 * <ul>
 *   <li><b>full batch</b> (small problems, the default when {@code epochs x N x K x D} is at most
 *       {@link #FULL_BATCH_WORK}): one Adam step per epoch over all N examples and all K labels, exactly as
 *       written above;</li>
 *   <li><b>mini-batches</b> (large N or K): one step per batch of B examples, in a seeded shuffled order; the
 *       softmax of a batch runs over <em>candidate</em> labels only, the batch's own labels plus S labels drawn
 *       uniformly (sampled softmax with shared negatives), so a step costs B x (labels in batch + S) x D instead
 *       of B x K x D, and only the candidates' rows are updated (lazy Adam: a row's moments move when it is a
 *       candidate). When K is at most B + S every label is a candidate and the batch softmax is exact.</li>
 * </ul>
 * Cost: {@link Plan#work()} multiply-adds, known before training, so a caller can refuse a problem that would not
 * finish in reasonable time. Memory: 3 x K x D doubles (weights and Adam moments) plus the candidates' gradients.
 * Deterministic: plain loops in a fixed order, zero initialisation, randomness only from the seed.
 */
public final class SoftmaxTrainer {
    /** Multiply-adds up to which an automatic plan trains full-batch (a few seconds on one core). */
    public static final long FULL_BATCH_WORK = 20_000_000_000L;
    /** Batch size of an automatic mini-batch plan. */
    public static final int DEFAULT_BATCH = 256;
    /** Sampled negative labels per batch of an automatic mini-batch plan. */
    public static final int DEFAULT_NEGATIVES = 256;
    /** Epochs of an automatic full-batch plan (one Adam step each). */
    public static final int DEFAULT_FULL_BATCH_EPOCHS = 300;
    /** Epochs of an automatic mini-batch plan (N / B Adam steps each). */
    public static final int DEFAULT_MINI_BATCH_EPOCHS = 10;

    /**
     * How training runs: {@code batch} examples per step (0: all of them, full batch) and {@code negatives}
     * sampled labels per step (0: every label is a candidate).
     */
    public record Plan(int epochs, int batch, int negatives, int examples, int labels, int dim) {
        public Plan {
            if (epochs < 1 || batch < 0 || negatives < 0 || examples < 1 || labels < 2 || dim < 1) {
                throw new IllegalArgumentException("bad training plan " + epochs + " epochs, batch " + batch
                        + ", " + negatives + " negatives, " + examples + " examples, " + labels + " labels, dim "
                        + dim);
            }
        }

        /**
         * {@link #DEFAULT_FULL_BATCH_EPOCHS} full-batch epochs for small problems; past {@link #FULL_BATCH_WORK},
         * {@link #DEFAULT_MINI_BATCH_EPOCHS} epochs of mini-batches with sampled labels.
         */
        public static Plan auto(int examples, int labels, int dim) {
            Plan full = new Plan(defaultEpochs(true), 0, 0, examples, labels, dim);
            return full.work() <= FULL_BATCH_WORK
                    ? full
                    : new Plan(defaultEpochs(false), DEFAULT_BATCH, DEFAULT_NEGATIVES, examples, labels, dim);
        }

        /** Epochs when none are asked for: {@link #DEFAULT_FULL_BATCH_EPOCHS} or {@link #DEFAULT_MINI_BATCH_EPOCHS}. */
        public static int defaultEpochs(boolean fullBatch) {
            return fullBatch ? DEFAULT_FULL_BATCH_EPOCHS : DEFAULT_MINI_BATCH_EPOCHS;
        }

        /** Full batch for small problems; mini-batches with sampled labels past {@link #FULL_BATCH_WORK}. */
        public static Plan auto(int epochs, int examples, int labels, int dim) {
            Plan full = new Plan(epochs, 0, 0, examples, labels, dim);
            if (full.work() <= FULL_BATCH_WORK) {
                return full;
            }
            return new Plan(epochs, DEFAULT_BATCH, DEFAULT_NEGATIVES, examples, labels, dim);
        }

        public boolean fullBatch() {
            return batch == 0 || batch >= examples;
        }

        /** Labels scored per example: all K, or at most the batch's labels plus the negatives. */
        public long candidatesPerStep() {
            if (negatives == 0 || fullBatch()) {
                return labels;
            }
            return Math.min(labels, (long) Math.min(batch, examples) + negatives);
        }

        /** Multiply-adds of the whole training: epochs x N x candidates x D, twice (scores and gradients). */
        public long work() {
            double w = 2.0 * epochs * examples * (double) candidatesPerStep() * dim;
            return w >= Long.MAX_VALUE ? Long.MAX_VALUE : (long) w;
        }

        /** Bytes of the weights and Adam moments (3 x K x D doubles) plus one step's gradients. */
        public long memoryBytes() {
            double b = 8.0 * ((3.0 * labels + candidatesPerStep()) * (dim + 1));
            return b >= Long.MAX_VALUE ? Long.MAX_VALUE : (long) b;
        }

        public String describe() {
            return fullBatch()
                    ? "full batch, " + epochs + " epochs"
                    : "mini-batches of " + batch + ", "
                            + (negatives == 0 || candidatesPerStep() == labels
                                    ? "all " + labels + " labels"
                                    : negatives + " sampled labels")
                            + " per step, " + epochs
                            + " epochs";
        }
    }

    private final double learningRate;
    private final double l2;
    private final long seed;

    public SoftmaxTrainer(double learningRate, double l2, long seed) {
        if (!(learningRate > 0) || Double.isInfinite(learningRate) || !(l2 >= 0) || Double.isInfinite(l2)) {
            throw new IllegalArgumentException("a finite learning rate > 0 and a finite l2 >= 0 are required");
        }
        this.learningRate = learningRate;
        this.l2 = l2;
        this.seed = seed;
    }

    /** Full-batch training for {@code epochs} epochs (the plan of small problems). */
    public LinearHead fit(
            int epochs, float[][] x, int[] y, List<String> labels, ModelFingerprint model, Pooling pooling) {
        check(x, y, labels);
        return fit(
                new Plan(epochs, 0, 0, x.length, labels.size(), x[0].length),
                x,
                y,
                labels,
                model,
                pooling,
                epoch -> {});
    }

    /**
     * Fits a head on embeddings {@code x} (all of one dimension) with label indexes {@code y} into {@code labels},
     * as {@code plan} says; {@code afterEpoch} hears each finished epoch (for progress).
     */
    public LinearHead fit(
            Plan plan,
            float[][] x,
            int[] y,
            List<String> labels,
            ModelFingerprint model,
            Pooling pooling,
            IntConsumer afterEpoch) {
        check(x, y, labels);
        int n = x.length;
        int k = labels.size();
        int d = x[0].length;
        if (plan.examples() != n || plan.labels() != k || plan.dim() != d) {
            throw new IllegalArgumentException("the plan is for " + plan.examples() + " x " + plan.labels() + " x "
                    + plan.dim() + ", the data is " + n + " x " + k + " x " + d);
        }
        Adam adam = new Adam(k, d);
        if (plan.fullBatch()) {
            int[] all = new int[n];
            Arrays.setAll(all, i -> i);
            int[] everyLabel = new int[k];
            Arrays.setAll(everyLabel, c -> c);
            for (int epoch = 1; epoch <= plan.epochs(); epoch++) {
                adam.step(x, y, all, everyLabel);
                afterEpoch.accept(epoch);
            }
        } else {
            SplittableRandom rnd = new SplittableRandom(seed);
            int[] order = new int[n];
            Arrays.setAll(order, i -> i);
            int[] slot = new int[k]; // label -> position in the candidates + 1 (0: not a candidate)
            for (int epoch = 1; epoch <= plan.epochs(); epoch++) {
                for (int i = n - 1; i > 0; i--) {
                    int j = rnd.nextInt(i + 1);
                    int t = order[i];
                    order[i] = order[j];
                    order[j] = t;
                }
                for (int from = 0; from < n; from += plan.batch()) {
                    int[] batch = Arrays.copyOfRange(order, from, Math.min(n, from + plan.batch()));
                    adam.step(x, y, batch, candidates(batch, y, k, plan.negatives(), rnd, slot));
                }
                afterEpoch.accept(epoch);
            }
        }
        return adam.head(model, pooling, labels);
    }

    /** The batch's labels, then {@code negatives} other labels drawn uniformly without repeats (all, if few). */
    private static int[] candidates(int[] batch, int[] y, int k, int negatives, SplittableRandom rnd, int[] slot) {
        int[] out = new int[Math.min(k, batch.length + (negatives == 0 ? k : negatives))];
        int count = 0;
        for (int i : batch) {
            if (slot[y[i]] == 0) {
                out[count++] = y[i];
                slot[y[i]] = count;
            }
        }
        if (negatives == 0 || count + negatives >= k) {
            for (int c = 0; c < k && count < out.length; c++) {
                if (slot[c] == 0) {
                    out[count++] = c;
                    slot[c] = count;
                }
            }
        } else {
            int wanted = count + negatives;
            while (count < wanted) { // rejection sampling: at most half the labels are taken, so it ends quickly
                int c = rnd.nextInt(k);
                if (slot[c] == 0) {
                    out[count++] = c;
                    slot[c] = count;
                }
            }
        }
        int[] result = Arrays.copyOf(out, count);
        for (int c : result) {
            slot[c] = 0;
        }
        return result;
    }

    private static void check(float[][] x, int[] y, List<String> labels) {
        int n = x.length;
        int k = labels.size();
        if (n == 0 || y.length != n || k < 2) {
            throw new IllegalArgumentException(
                    "need examples with labels of at least 2 classes (" + n + " examples, " + k + " classes)");
        }
    }

    /** Weights, biases and their Adam moments; one {@link #step} per batch. */
    private final class Adam {
        private static final double B1 = 0.9;
        private static final double B2 = 0.999;
        private static final double EPS = 1e-8;
        private final double[][] w;
        private final double[] b;
        private final double[][] mw;
        private final double[][] vw;
        private final double[] mb;
        private final double[] vb;
        private final int d;
        private int t;

        Adam(int k, int d) {
            this.d = d;
            w = new double[k][d];
            b = new double[k];
            mw = new double[k][d];
            vw = new double[k][d];
            mb = new double[k];
            vb = new double[k];
        }

        /** One step on examples {@code batch}, softmax over {@code cand} labels (which include every batch label). */
        void step(float[][] x, int[] y, int[] batch, int[] cand) {
            int m = cand.length;
            double[][] gw = new double[m][d];
            double[] gb = new double[m];
            double[] p = new double[m];
            for (int i : batch) {
                float[] xi = x[i];
                for (int c = 0; c < m; c++) {
                    double[] wc = w[cand[c]];
                    double z = b[cand[c]];
                    for (int j = 0; j < d; j++) {
                        z += wc[j] * xi[j];
                    }
                    p[c] = z;
                }
                LinearHead.softmaxInPlace(p);
                for (int c = 0; c < m; c++) {
                    double err = (p[c] - (y[i] == cand[c] ? 1 : 0)) / batch.length;
                    gb[c] += err;
                    double[] g = gw[c];
                    for (int j = 0; j < d; j++) {
                        g[j] += err * xi[j];
                    }
                }
            }
            t++;
            double c1 = 1 - Math.pow(B1, t);
            double c2 = 1 - Math.pow(B2, t);
            for (int c = 0; c < m; c++) {
                int label = cand[c];
                double[] wl = w[label];
                double[] ml = mw[label];
                double[] vl = vw[label];
                for (int j = 0; j < d; j++) {
                    double g = gw[c][j] + l2 * wl[j];
                    ml[j] = B1 * ml[j] + (1 - B1) * g;
                    vl[j] = B2 * vl[j] + (1 - B2) * g * g;
                    wl[j] -= learningRate * (ml[j] / c1) / (Math.sqrt(vl[j] / c2) + EPS);
                }
                mb[label] = B1 * mb[label] + (1 - B1) * gb[c];
                vb[label] = B2 * vb[label] + (1 - B2) * gb[c] * gb[c];
                b[label] -= learningRate * (mb[label] / c1) / (Math.sqrt(vb[label] / c2) + EPS);
            }
        }

        LinearHead head(ModelFingerprint model, Pooling pooling, List<String> labels) {
            int k = w.length;
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
