package dev.rwkvflink.engine.embed;

import dev.rwkvflink.engine.state.ModelFingerprint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
        LinearHead head = new SoftmaxTrainer(300, 0.05, 1e-4).fit(train, yTrain, List.of("a", "b", "c"), MODEL, Pooling.HIDDEN);
        double acc = SoftmaxTrainer.accuracy(head, test, yTest);
        assertTrue(acc > 0.9, "held-out accuracy " + acc);
        // the probabilities are a distribution and favour the right class at a centre
        float[] p = head.probabilities(centers[1]);
        assertEquals(1.0, p[0] + p[1] + p[2], 1e-6);
        assertEquals("b", head.label(p));
    }

    @Test
    void headFilesRoundTripAndRefuseAnotherModelOrPooling(@TempDir Path dir) throws Exception {
        LinearHead head = new LinearHead(MODEL, Pooling.HIDDEN, List.of("x", "y"),
                new float[][] {{0.5f, -1f}, {Float.MIN_VALUE, 3.25f}}, new float[] {0.125f, -2f});
        Path f = dir.resolve("head.json");
        head.save(f);
        LinearHead back = LinearHead.load(f, MODEL, Pooling.HIDDEN);
        float[] e = {0.6f, 0.8f};
        assertArrayEquals(head.probabilities(e), back.probabilities(e), 0f);
        assertEquals(List.of("x", "y"), back.labels());
        byte[] other = new byte[32];
        other[0] = 1;
        assertTrue(assertThrows(java.io.IOException.class,
                () -> LinearHead.load(f, ModelFingerprint.ofBytes(other), Pooling.HIDDEN)).getMessage().contains("trained on"));
        assertTrue(assertThrows(java.io.IOException.class,
                () -> LinearHead.load(f, MODEL, Pooling.STATE)).getMessage().contains("pooling"));
    }
}
