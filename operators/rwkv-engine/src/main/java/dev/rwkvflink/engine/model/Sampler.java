package dev.rwkvflink.engine.model;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Temperature and nucleus (top-p) sampling over logits, as BlinkDL's {@code sample_logits}: softmax, keep the
 * most probable tokens whose cumulative probability reaches {@code topP}, sharpen by {@code 1/temperature},
 * then draw. Temperature 0 (or top-p 0) picks the argmax.
 */
public final class Sampler {
    private final float temperature;
    private final float topP;
    private final SplittableRandom random;

    public Sampler(float temperature, float topP, long seed) {
        if (temperature < 0 || topP < 0 || topP > 1) {
            throw new IllegalArgumentException("temperature must be >= 0 and top-p in [0, 1]");
        }
        this.temperature = temperature;
        this.topP = topP;
        this.random = new SplittableRandom(seed);
    }

    public int sample(float[] logits) {
        int argmax = 0;
        for (int i = 1; i < logits.length; i++) {
            if (logits[i] > logits[argmax]) {
                argmax = i;
            }
        }
        if (temperature == 0 || topP == 0) {
            return argmax;
        }
        double[] p = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < p.length; i++) {
            p[i] = Math.exp(logits[i] - logits[argmax]);
            sum += p[i];
        }
        for (int i = 0; i < p.length; i++) {
            p[i] /= sum;
        }
        double[] sorted = p.clone();
        Arrays.sort(sorted);
        double cumulative = 0;
        double cutoff = 0;
        for (int i = sorted.length - 1; i >= 0; i--) {
            cumulative += sorted[i];
            if (cumulative >= topP) {
                cutoff = sorted[i];
                break;
            }
        }
        double total = 0;
        for (int i = 0; i < p.length; i++) {
            p[i] = p[i] < cutoff ? 0 : Math.pow(p[i], 1.0 / temperature);
            total += p[i];
        }
        double u = random.nextDouble() * total;
        for (int i = 0; i < p.length; i++) {
            u -= p[i];
            if (u <= 0 && p[i] > 0) {
                return i;
            }
        }
        return argmax;
    }
}
