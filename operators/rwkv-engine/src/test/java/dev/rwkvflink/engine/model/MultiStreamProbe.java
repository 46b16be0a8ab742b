package dev.rwkvflink.engine.model;

import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tensor.WeightType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * A speed probe (not a benchmark of record, not a unit test): many streams on the CPU, the batched
 * {@link RwkvModel#advance} against the per-stream loop it replaced ({@link RwkvModel#hidden} on each stream in
 * turn, which is what {@code advance} did before), alternating run by run in one JVM so that both meet the same
 * load, JIT state and heap; {@code KxT/B}: K keys of T tokens, B keys per {@code advance} call (default all K). Random RWKV-7 0.1B-shape weights (the bench's model); fresh states and random tokens
 * per run, the same for both paths. Prints tokens/s per run and the medians.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -XX:+UseParallelGC -Drwkv.threads=2 -cp target/classes:target/test-classes \
 *      dev.rwkvflink.engine.model.MultiStreamProbe [types, e.g. F32,Q8_0] [KxT[/B] list, e.g. 16x16,64x16/16] [runs]
 * </pre>
 */
public final class MultiStreamProbe {
    private MultiStreamProbe() {}

    public static void main(String[] args) {
        String[] types = (args.length > 0 ? args[0] : "F32").split(",");
        String[] shapes = (args.length > 1 ? args[1] : "16x16,64x16").split(",");
        int runs = args.length > 2 ? Integer.parseInt(args[2]) : 7;
        for (String typeName : types) {
            WeightType type = WeightType.valueOf(typeName.strip().toUpperCase(Locale.ROOT));
            try (RwkvModel m = RwkvModel.of(
                    RandomModels.rwkv7(RandomModels.Rwkv7Shape.RWKV7_0_1B, 1, type), Backends.byName("vector"))) {
                for (String shape : shapes) { // KxT or KxT/B
                    String[] kt = shape.split("[x/]");
                    int keys = Integer.parseInt(kt[0]);
                    probe(m, type, keys, Integer.parseInt(kt[1]), kt.length > 2 ? Integer.parseInt(kt[2]) : keys, runs);
                }
            }
        }
    }

    private static void probe(RwkvModel m, WeightType type, int keys, int perKey, int batch, int runs) {
        SplittableRandom rnd = new SplittableRandom(7);
        List<Double> loop = new ArrayList<>();
        List<Double> batched = new ArrayList<>();
        for (int run = -1; run < runs; run++) { // run -1: warm-up of both
            int[][] ids = new int[keys][];
            for (int i = 0; i < keys; i++) {
                ids[i] = rnd.ints(perKey, 0, m.config().vocab()).toArray();
            }
            for (boolean together : run % 2 == 0 ? new boolean[] {true, false} : new boolean[] {false, true}) {
                RwkvState[] states = new RwkvState[keys];
                for (int i = 0; i < keys; i++) {
                    states[i] = m.newState();
                }
                long start = System.nanoTime();
                if (together) {
                    for (int from = 0; from < keys; from += batch) {
                        int to = Math.min(keys, from + batch);
                        m.advance(Arrays.copyOfRange(states, from, to), Arrays.copyOfRange(ids, from, to));
                    }
                } else {
                    for (int i = 0; i < keys; i++) {
                        m.hidden(states[i], ids[i]);
                    }
                }
                double rate = keys * perKey / ((System.nanoTime() - start) / 1e9);
                if (run >= 0) {
                    (together ? batched : loop).add(rate);
                }
            }
        }
        double a = median(loop);
        double b = median(batched);
        System.out.printf(
                Locale.ROOT,
                "%s streams%dx%d/%d  per-stream loop %.1f tok/s %s  batched %.1f tok/s %s" + "  ratio %.2f%n",
                type,
                keys,
                perKey,
                batch,
                a,
                rounded(loop),
                b,
                rounded(batched),
                b / a);
    }

    private static double median(List<Double> v) {
        double[] s = v.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    private static String rounded(List<Double> v) {
        return Arrays.toString(v.stream().mapToLong(Math::round).toArray());
    }
}
