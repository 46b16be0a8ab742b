package dev.rwkvflink.engine.backend.cuda;

import dev.rwkvflink.cuda.Cuda;
import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.format.WeightFile;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.reference.Float64Rwkv;
import dev.rwkvflink.engine.testing.SharedData;
import dev.rwkvflink.engine.testing.TestSeeds;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;

/**
 * Measures the error distributions behind the GPU tests' limits (not a test: a main class, run on a GPU machine).
 * For each comparison of {@link GpuParity} that {@link CudaRwkv7Test} asserts against the CPU engine it runs the
 * test's own code over seeds {@code from .. from+N-1} (each seed draws new inputs exactly as the test does with
 * {@code -Drwkv.test.seed=S}; the model and the GPU runner are the test's, opened once per comparison and
 * precision) and prints, per asserted metric, the median, p90, p99, p99.9 (nearest rank) and max over the seeds, the
 * seed of the max, the current limit and how many seeds exceed it. The metric is what the test asserts for one run:
 * the worst stream where the test asserts every stream, the median and the worst of the 60 decode vectors. The
 * fixed-input checks on rwkv.cpp's tiny models (no seed) are measured once when the reference files are present.
 *
 * <pre>
 * usage: CudaToleranceSurvey [N=200] [--from S=1] [--precision bf16|f32|both (bf16)]
 *                            [--only ragged,decode,chunked,logits,tiny (all)]
 * on the GPU machine: bash native-bindings/gpu-check.sh --main dev.rwkvflink.engine.backend.cuda.CudaToleranceSurvey 200
 * </pre>
 *
 * <p>The CPU engine's reference dominates the time (about 0.2 to 0.4 s a seed for all comparisons of one
 * precision); {@code --precision both} doubles it.
 */
public final class CudaToleranceSurvey {
    private static final List<String> COMPARISONS = List.of("ragged", "decode", "chunked", "logits", "tiny");

    private CudaToleranceSurvey() {}

    /** One asserted metric over the seeds. */
    private static final class Metric {
        final String name;
        final Precision precision;
        final String constant;
        final double limit;
        final List<double[]> values = new ArrayList<>(); // {value, seed}

        Metric(String name, Precision precision, String constant, GpuParity.Limit limit) {
            this.name = name;
            this.precision = precision;
            this.constant = constant;
            this.limit = limit.of(precision);
        }

        void add(long seed, double value) {
            values.add(new double[] {Double.isNaN(value) ? Double.POSITIVE_INFINITY : value, seed});
        }

        double[] sorted() {
            return values.stream().mapToDouble(v -> v[0]).sorted().toArray();
        }

        /** Nearest rank: the smallest value with at least q of the values at or below it. */
        double quantile(double q) {
            double[] s = sorted();
            return s[Math.max(0, (int) Math.ceil(q * s.length) - 1)];
        }

        double[] max() {
            double[] m = values.getFirst();
            for (double[] v : values) {
                if (v[0] > m[0]) {
                    m = v;
                }
            }
            return m;
        }

        long exceeding() {
            return values.stream().filter(v -> !(v[0] <= limit)).count();
        }

        String row() {
            double[] m = max();
            String seed = values.size() == 1 && m[1] < 0 ? "fixed" : Long.toString((long) m[1]);
            return String.format(
                    Locale.ROOT,
                    "%-38s %-4s %5d %9.3g %9.3g %9.3g %9.3g %9.3g %10s %9.3g %6d  %s",
                    name,
                    precision.name().toLowerCase(Locale.ROOT),
                    values.size(),
                    quantile(0.5),
                    quantile(0.9),
                    quantile(0.99),
                    quantile(0.999),
                    m[0],
                    seed,
                    limit,
                    exceeding(),
                    constant);
        }
    }

    private static final String HEADER = String.format(
            Locale.ROOT,
            "%-38s %-4s %5s %9s %9s %9s %9s %9s %10s %9s %6s  %s",
            "comparison (metric per run)",
            "prec",
            "runs",
            "median",
            "p90",
            "p99",
            "p99.9",
            "max",
            "seed(max)",
            "limit",
            ">limit",
            "constant (GpuParity.)");

    public static void main(String[] args) throws Exception {
        int n = 200;
        long from = 1;
        List<Precision> precisions = List.of(Precision.BF16);
        Set<String> only = new LinkedHashSet<>(COMPARISONS);
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--from" -> from = Long.parseLong(args[++i]);
                case "--precision" -> {
                    String p = args[++i].toLowerCase(Locale.ROOT);
                    precisions = p.equals("both")
                            ? List.of(Precision.BF16, Precision.F32)
                            : List.of(Precision.valueOf(p.toUpperCase(Locale.ROOT)));
                }
                case "--only" -> {
                    only = new LinkedHashSet<>(Arrays.asList(args[++i].split(",")));
                    if (!COMPARISONS.containsAll(only)) {
                        usage("--only takes some of " + COMPARISONS + ", not " + only);
                    }
                }
                case "-h", "--help" -> usage(null);
                default -> {
                    try {
                        n = Integer.parseInt(args[i]);
                    } catch (NumberFormatException e) {
                        usage("unknown argument " + args[i]);
                    }
                }
            }
        }
        if (n < 1) {
            usage("N must be positive");
        }
        Optional<String> unavailable = CudaBackend.unavailableReason();
        if (unavailable.isPresent()) {
            System.err.println("CudaToleranceSurvey needs a GPU, and CUDA is " + unavailable.get());
            System.exit(2);
        }
        System.out.println("== CudaToleranceSurvey: " + n + " seeds from " + from + ", " + precisions + ", " + only
                + "; " + Cuda.availability().reason());
        long start = System.nanoTime();
        List<Metric> metrics = new ArrayList<>();
        for (Precision p : precisions) {
            if (only.contains("ragged")) {
                Metric hidden =
                        new Metric("ragged hidden (worst of 11 streams)", p, "RAGGED_HIDDEN", GpuParity.RAGGED_HIDDEN);
                Metric state = new Metric("ragged state (worst of 11)", p, "RAGGED_STATE", GpuParity.RAGGED_STATE);
                Metric alone = new Metric(
                        "ragged alone vs batched (worst of 11)",
                        p,
                        "RAGGED_ALONE_VS_BATCHED",
                        GpuParity.RAGGED_ALONE_VS_BATCHED);
                survey(
                        "ragged",
                        p,
                        n,
                        from,
                        () -> GpuParity.Fixture.ragged(p),
                        (f, seed) -> {
                            GpuParity.Ragged r =
                                    GpuParity.ragged(f, TestSeeds.of(seed).random());
                            hidden.add(seed, GpuParity.max(r.hidden()));
                            state.add(seed, GpuParity.max(r.state()));
                            alone.add(seed, GpuParity.max(r.aloneVsBatched()));
                        },
                        hidden,
                        state,
                        alone);
                metrics.addAll(List.of(hidden, state, alone));
            }
            if (only.contains("decode")) {
                Metric median = new Metric("decode median of 60 vectors", p, "DECODE_MEDIAN", GpuParity.DECODE_MEDIAN);
                Metric worst = new Metric("decode worst of 60 vectors", p, "DECODE_WORST", GpuParity.DECODE_WORST);
                Metric state = new Metric("decode state (worst of 5)", p, "DECODE_STATE", GpuParity.DECODE_STATE);
                survey(
                        "decode",
                        p,
                        n,
                        from,
                        () -> GpuParity.Fixture.decode(p),
                        (f, seed) -> {
                            GpuParity.Decode d =
                                    GpuParity.decode(f, TestSeeds.of(seed).random());
                            median.add(seed, d.median());
                            worst.add(seed, d.worst());
                            state.add(seed, GpuParity.max(d.state()));
                        },
                        median,
                        worst,
                        state);
                metrics.addAll(List.of(median, worst, state));
            }
            if (only.contains("chunked")) {
                Metric hidden = new Metric(
                        "chunked hidden (worst of 3 streams)", p, "CHUNKED_HIDDEN", GpuParity.CHUNKED_HIDDEN);
                Metric state = new Metric("chunked state (worst of 3)", p, "CHUNKED_STATE", GpuParity.CHUNKED_STATE);
                survey(
                        "chunked",
                        p,
                        n,
                        from,
                        () -> GpuParity.Fixture.chunked(p),
                        (f, seed) -> {
                            GpuParity.Chunked c =
                                    GpuParity.chunked(f, TestSeeds.of(seed).random());
                            hidden.add(seed, GpuParity.max(c.hidden()));
                            state.add(seed, GpuParity.max(c.state()));
                        },
                        hidden,
                        state);
                metrics.addAll(List.of(hidden, state));
            }
            if (only.contains("logits") && p == Precision.BF16) {
                Metric logits = new Metric("logits after 200 tokens", p, "LOGITS", GpuParity.LOGITS);
                survey(
                        "logits",
                        p,
                        n,
                        from,
                        GpuParity.Fixture::logits,
                        (f, seed) -> logits.add(
                                seed,
                                GpuParity.logits(f, TestSeeds.of(seed).random()).error()),
                        logits);
                metrics.add(logits);
            }
            if (only.contains("tiny")) {
                tiny("7v0-834K", "FP32", p, "TINY_V7_LOGITS", GpuParity.TINY_V7_LOGITS, metrics);
                for (String model : new String[] {"4v0-660K", "5v1-730K", "5v2-730K", "6v0-3m"}) {
                    tiny(
                            model,
                            model.startsWith("6v0") ? "Q5_1" : "FP32",
                            p,
                            "TINY_V456_LOGITS",
                            GpuParity.TINY_V456_LOGITS,
                            metrics);
                }
            }
        }
        System.out.printf(
                Locale.ROOT,
                "%n== summary: %d seeds (%d..%d), %.1f s; metric: relative L2 error"
                        + " ||gpu - cpu|| / ||cpu||, tiny: max |difference| per logit (fixed input, one run)%n",
                n,
                from,
                from + n - 1,
                (System.nanoTime() - start) / 1e9);
        System.out.println(HEADER);
        for (Metric m : metrics) {
            System.out.println(m.row());
        }
        System.out.println("Replay a seed in the tests: -Drwkv.test.seed=S (on the GPU machine: "
                + "GPU_JAVA_OPTS=-Drwkv.test.seed=S bash native-bindings/gpu-check.sh).");
    }

    private interface FixtureFactory {
        GpuParity.Fixture open();
    }

    private interface Measurement {
        void run(GpuParity.Fixture f, long seed);
    }

    /** Runs one comparison over the seeds on one fixture and prints its metrics. */
    private static void survey(
            String name,
            Precision p,
            int n,
            long from,
            FixtureFactory factory,
            Measurement measurement,
            Metric... metrics) {
        long t0 = System.nanoTime();
        try (GpuParity.Fixture f = factory.open()) {
            for (long seed = from; seed < from + n; seed++) {
                try {
                    measurement.run(f, seed);
                } catch (RuntimeException e) {
                    throw new IllegalStateException(name + " " + p + " failed at seed " + seed, e);
                }
                if ((seed - from + 1) % 50 == 0 && seed - from + 1 < n) {
                    System.out.printf(
                            Locale.ROOT,
                            "   %s %s: %d/%d seeds, %.1f s%n",
                            name,
                            p,
                            seed - from + 1,
                            n,
                            (System.nanoTime() - t0) / 1e9);
                }
            }
        }
        System.out.printf(Locale.ROOT, "== %s %s: %d seeds in %.1f s%n", name, p, n, (System.nanoTime() - t0) / 1e9);
        System.out.println(HEADER);
        for (Metric m : metrics) {
            System.out.println(m.row());
        }
        System.out.flush();
    }

    /** A fixed-input check on one of rwkv.cpp's tiny models (skipped, saying why, without the reference files). */
    private static void tiny(
            String model, String format, Precision p, String constant, GpuParity.Limit limit, List<Metric> metrics) {
        String backend = "cuda:" + p.name().toLowerCase(Locale.ROOT);
        try {
            double[] exact;
            try (WeightFile f = WeightFile.open(SharedData.tinyModel(model, format))) {
                exact = Float64Rwkv.load(f).logitsAfter(SharedData.PROMPT);
            }
            float[] expected = format.equals("FP32") ? SharedData.expectedLogits(model) : null;
            try (RwkvModel m = RwkvModel.load(SharedData.tinyModel(model, format), Backends.byName(backend))) {
                GpuParity.Tiny t = GpuParity.tiny(m, SharedData.PROMPT, exact, expected);
                System.out.printf(
                        Locale.ROOT,
                        "== tiny %s %s %s: max|gpu - float64| %.3g, max|gpu - rwkv.cpp| %.3g,"
                                + " rnn vs seq %.3g (limit %.3g, %s)%n",
                        model,
                        format,
                        backend,
                        t.vsExact(),
                        t.vsExpected(),
                        t.rnnVsSeq(),
                        limit.of(p),
                        constant);
                Metric metric = new Metric("tiny " + model + " logits max|diff|", p, constant, limit);
                metric.add(-1, t.worst());
                metrics.add(metric);
            }
        } catch (Exception e) {
            System.out.println("== tiny " + model + " " + backend + ": skipped: " + e);
        }
    }

    private static void usage(String problem) {
        if (problem != null) {
            System.err.println("CudaToleranceSurvey: " + problem);
        }
        System.err.println("usage: CudaToleranceSurvey [N=200] [--from S=1] [--precision bf16|f32|both (bf16)]"
                + " [--only " + String.join(",", COMPARISONS) + "]");
        System.exit(problem == null ? 0 : 2);
    }
}
