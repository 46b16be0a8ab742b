package dev.rwkvflink.engine.embed;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.state.ModelFingerprint;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SoftmaxTrainerTest {
    private static final ModelFingerprint MODEL = ModelFingerprint.ofBytes(new byte[32]);

    /** Three well-separated Gaussian clusters: the trained head must classify held-out points almost perfectly. */
    @Test
    void learnsSeparableClassesAndGeneralises() {
        Random rnd = new Random(1);
        float[][] centers = {{3, 0, 0, 0}, {0, 3, 0, 0}, {0, 0, 3, 0}};
        float[][] train = new float[300][];
        int[] yTrain = new int[300];
        float[][] test = new float[150][];
        int[] yTest = new int[150];
        for (int i = 0; i < 450; i++) {
            int c = i % 3;
            float[] v = new float[4];
            for (int j = 0; j < 4; j++) {
                v[j] = centers[c][j] + (float) rnd.nextGaussian();
            }
            if (i < 300) {
                train[i] = v;
                yTrain[i] = c;
            } else {
                test[i - 300] = v;
                yTest[i - 300] = c;
            }
        }
        LinearHead head = new SoftmaxTrainer(0.05, 1e-4, 1)
                .fit(300, train, yTrain, List.of("a", "b", "c"), MODEL, Pooling.HIDDEN);
        double acc = SoftmaxTrainer.accuracy(head, test, yTest);
        assertTrue(acc > 0.9, "held-out accuracy " + acc);
        // the probabilities are a distribution and favour the right class at a centre
        float[] p = head.probabilities(centers[1]);
        assertEquals(1.0, p[0] + p[1] + p[2], 1e-6);
        assertEquals("b", head.label(p));
    }

    /** {@code k} labels, each a random unit centre in {@code d} dimensions; examples are centres plus noise. */
    private static float[][] clusters(int k, int d, long seed) {
        Random rnd = new Random(seed);
        float[][] centres = new float[k][d];
        for (float[] c : centres) {
            double norm = 0;
            for (int j = 0; j < d; j++) {
                c[j] = (float) rnd.nextGaussian();
                norm += c[j] * c[j];
            }
            for (int j = 0; j < d; j++) {
                c[j] = (float) (3 * c[j] / Math.sqrt(norm));
            }
        }
        return centres;
    }

    private static float[] near(float[] centre, Random rnd) {
        float[] v = centre.clone();
        for (int j = 0; j < v.length; j++) {
            v[j] += (float) (0.1 * rnd.nextGaussian());
        }
        return v;
    }

    /**
     * 2,000 labels (seed 7): mini-batches of 64 with 64 sampled labels score at most 128 labels per example instead
     * of 2,000, and still learn every class: training and held-out accuracy above 0.95.
     */
    @Test
    void manyLabelsTrainWithSampledCandidatesAndStillSeparate() {
        int k = 2000;
        int d = 32;
        float[][] centres = clusters(k, d, 7);
        Random rnd = new Random(8);
        float[][] train = new float[3 * k][];
        int[] yTrain = new int[3 * k];
        float[][] test = new float[k][];
        int[] yTest = new int[k];
        for (int c = 0; c < k; c++) {
            for (int r = 0; r < 3; r++) {
                train[3 * c + r] = near(centres[c], rnd);
                yTrain[3 * c + r] = c;
            }
            test[c] = near(centres[c], rnd);
            yTest[c] = c;
        }
        List<String> labels = IntStream.range(0, k).mapToObj(i -> "l" + i).toList();
        SoftmaxTrainer.Plan plan = new SoftmaxTrainer.Plan(20, 64, 64, train.length, k, d);
        assertEquals(128, plan.candidatesPerStep());
        assertTrue(
                plan.work() * 15 < new SoftmaxTrainer.Plan(20, 0, 0, train.length, k, d).work(),
                "sampled work " + plan.work());
        int[] epochs = {0};
        LinearHead head = new SoftmaxTrainer(0.05, 1e-5, 3)
                .fit(plan, train, yTrain, labels, MODEL, Pooling.HIDDEN, e -> epochs[0] = e);
        assertEquals(20, epochs[0], "every epoch reported");
        double trainAcc = SoftmaxTrainer.accuracy(head, train, yTrain);
        double testAcc = SoftmaxTrainer.accuracy(head, test, yTest);
        assertTrue(trainAcc > 0.95 && testAcc > 0.95, "accuracy " + trainAcc + " / " + testAcc);
        // seeded: the same seed gives the same head, another seed another one
        LinearHead again =
                new SoftmaxTrainer(0.05, 1e-5, 3).fit(plan, train, yTrain, labels, MODEL, Pooling.HIDDEN, e -> {});
        assertArrayEquals(head.probabilities(test[0]), again.probabilities(test[0]), 0f);
        LinearHead other =
                new SoftmaxTrainer(0.05, 1e-5, 4).fit(plan, train, yTrain, labels, MODEL, Pooling.HIDDEN, e -> {});
        assertTrue(!Arrays.equals(head.probabilities(test[0]), other.probabilities(test[0])));
    }

    /** With every label a candidate and one batch of all examples, mini-batch training is full-batch training. */
    @Test
    void aBatchOfEverythingIsTheFullBatchBitForBit() {
        float[][] centres = clusters(5, 8, 9);
        Random rnd = new Random(10);
        float[][] x = new float[50][];
        int[] y = new int[50];
        for (int i = 0; i < 50; i++) {
            y[i] = i % 5;
            x[i] = near(centres[y[i]], rnd);
        }
        List<String> labels = List.of("a", "b", "c", "d", "e");
        LinearHead full = new SoftmaxTrainer(0.05, 1e-4, 1).fit(30, x, y, labels, MODEL, Pooling.HIDDEN);
        // batch 64 >= 50 examples: one step per epoch, over all labels
        LinearHead mini = new SoftmaxTrainer(0.05, 1e-4, 1)
                .fit(new SoftmaxTrainer.Plan(30, 64, 16, 50, 5, 8), x, y, labels, MODEL, Pooling.HIDDEN, e -> {});
        for (float[] v : x) {
            assertArrayEquals(full.probabilities(v), mini.probabilities(v), 0f);
        }
    }

    @Test
    void theAutomaticPlanIsFullBatchForSmallProblemsOnly() {
        assertTrue(SoftmaxTrainer.Plan.auto(300, 1000, 10, 768).fullBatch());
        SoftmaxTrainer.Plan big = SoftmaxTrainer.Plan.auto(300, 100_000, 100_000, 768);
        assertTrue(!big.fullBatch());
        assertEquals(512, big.candidatesPerStep());
        assertEquals(2L * 300 * 100_000 * 512 * 768, big.work());
    }

    @Test
    void headFilesRoundTripAndRefuseAnotherModelOrPooling(@TempDir Path dir) throws Exception {
        LinearHead head = new LinearHead(
                MODEL,
                Pooling.HIDDEN,
                List.of("x", "y"),
                new float[][] {{0.5f, -1f}, {Float.MIN_VALUE, 3.25f}},
                new float[] {0.125f, -2f});
        Path f = dir.resolve("head.json");
        head.save(f);
        LinearHead back = LinearHead.load(f, MODEL, Pooling.HIDDEN);
        float[] e = {0.6f, 0.8f};
        assertArrayEquals(head.probabilities(e), back.probabilities(e), 0f);
        assertEquals(List.of("x", "y"), back.labels());
        byte[] other = new byte[32];
        other[0] = 1;
        assertTrue(assertThrows(
                        IOException.class, () -> LinearHead.load(f, ModelFingerprint.ofBytes(other), Pooling.HIDDEN))
                .getMessage()
                .contains("trained on"));
        assertTrue(assertThrows(IOException.class, () -> LinearHead.load(f, MODEL, Pooling.STATE))
                .getMessage()
                .contains("pooling"));
    }
}
