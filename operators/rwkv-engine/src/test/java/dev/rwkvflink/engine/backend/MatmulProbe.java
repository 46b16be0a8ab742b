package dev.rwkvflink.engine.backend;

import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * A rough speed probe (not a benchmark harness, not a unit test): GFLOP/s of {@link ScalarBackend} and
 * {@link VectorBackend} (1 thread and all threads) for 768x768 and 3072x768 matrices of every type, for 1 token
 * (matrix-vector) and several tokens (matrix-matrix). FLOPs = 2 * rows * cols * tokens per call. Each cell runs
 * until about {@code rwkv.probe.ms} (default 300) ms have passed, after a warm-up of the same length.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp target/classes:target/test-classes \
 *      dev.rwkvflink.engine.backend.MatmulProbe [types, e.g. F32,Q5_1] [tokens, e.g. 1,64]
 * </pre>
 */
public final class MatmulProbe {
    private MatmulProbe() {}

    public static void main(String[] args) {
        List<WeightType> types = new ArrayList<>();
        if (args.length > 0) {
            for (String s : args[0].split(",")) {
                types.add(WeightType.valueOf(s.strip().toUpperCase(Locale.ROOT)));
            }
        } else {
            types.addAll(List.of(WeightType.values()));
        }
        int[] tokenCounts = args.length > 1
                ? Arrays.stream(args[1].split(","))
                        .mapToInt(s -> Integer.parseInt(s.strip()))
                        .toArray()
                : new int[] {1, 64};
        long ms = Long.getLong("rwkv.probe.ms", 300);
        int threads = Integer.getInteger("rwkv.threads", Runtime.getRuntime().availableProcessors());
        int[][] shapes = {{768, 768}, {3072, 768}};

        ScalarBackend scalar = new ScalarBackend();
        try (VectorBackend one = new VectorBackend(1);
                VectorBackend all = new VectorBackend(threads)) {
            System.out.printf(
                    "GFLOP/s, %d float lanes, %d threads, %s%n",
                    VectorBackend.vectorLanes(), threads, System.getProperty("java.vm.version"));
            System.out.printf(
                    "%-5s %-9s %6s %9s %10s %10s %8s%n",
                    "type", "shape", "tokens", "scalar", "vector x1", "vector x" + threads, "speedup");
            Random rnd = new Random(1);
            for (WeightType type : types) {
                for (int[] shape : shapes) {
                    Tensor w = VectorBackendTest.randomWeights(rnd, shape[0], shape[1], type);
                    for (int tokens : tokenCounts) {
                        float[] x = VectorBackendTest.gaussian(rnd, tokens * shape[1], 1.0);
                        float[] y = new float[tokens * shape[0]];
                        double flops = 2.0 * shape[0] * shape[1] * tokens;
                        double s = gflops(scalar, w, x, tokens, y, flops, ms);
                        double v1 = gflops(one, w, x, tokens, y, flops, ms);
                        double vn = gflops(all, w, x, tokens, y, flops, ms);
                        System.out.printf(
                                "%-5s %4dx%-4d %6d %9.2f %10.2f %10.2f %7.1fx%n",
                                type, shape[0], shape[1], tokens, s, v1, vn, vn / s);
                    }
                }
            }
        }
    }

    private static double gflops(Backend b, Tensor w, float[] x, int tokens, float[] y, double flops, long ms) {
        run(b, w, x, tokens, y, ms); // warm-up: JIT compilation
        long[] callsAndNanos = run(b, w, x, tokens, y, ms);
        return flops * callsAndNanos[0] / callsAndNanos[1];
    }

    private static long[] run(Backend b, Tensor w, float[] x, int tokens, float[] y, long ms) {
        long start = System.nanoTime();
        long deadline = start + ms * 1_000_000;
        long calls = 0;
        long now;
        do {
            b.matmul(w, x, tokens, y);
            calls++;
            now = System.nanoTime();
        } while (now < deadline);
        return new long[] {calls, now - start};
    }
}
