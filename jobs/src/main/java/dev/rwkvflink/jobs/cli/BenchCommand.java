package dev.rwkvflink.jobs.cli;

import dev.rwkvflink.cuda.Availability;
import dev.rwkvflink.cuda.Cuda;
import dev.rwkvflink.engine.backend.Backend;
import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.backend.MemoryProbe;
import dev.rwkvflink.engine.backend.cuda.CudaBench;
import dev.rwkvflink.engine.model.RandomModels;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * Tokens per second of the engine, llama-bench style: decode (one token per call, logits every token), sequence
 * mode (T tokens, logits of the last) and many streams (many keys' states advanced together, hidden vectors
 * only), reported apart; warm-up, then the median of repeated runs. {@code --backend cuda} runs the GPU benchmark
 * ({@link CudaBench}) instead.
 */
@Command(
        name = "bench",
        mixinStandardHelpOptions = true,
        description =
                "Measure tokens/s: decode, sequence mode and many streams (CPU), or the GPU benchmark (--backend cuda).")
final class BenchCommand implements Callable<Integer> {
    /** seqN: N tokens in one call; seqN/K: the same N tokens in calls of K (the state carries over). */
    private static final Pattern SEQ = Pattern.compile("seq(\\d+)(?:/(\\d+))?");
    /** streamsKxT: K keys with T tokens each; /B: B keys per {@code advance} call (default all K). */
    private static final Pattern STREAMS = Pattern.compile("streams(\\d+)x(\\d+)(?:/(\\d+))?");

    @Option(names = "--model", paramLabel = "FILE", description = "A model file; default: random RWKV-7 0.1B shape.")
    Path model;

    @Option(
            names = "--type",
            defaultValue = "F32",
            paramLabel = "TYPE",
            description = "Matrix type of the random model: F32, F16, BF16, Q8_0, Q5_1, ... Default: ${DEFAULT-VALUE}.")
    WeightType type;

    @Mixin
    BackendOption backend = new BackendOption();

    @Option(
            names = "--modes",
            split = ",",
            defaultValue = "decode,seq64/16,seq512,streams64x16/16",
            description = "decode (1 token per call, logits every token); head (the output head alone, one token per "
                    + "product, also in GB/s); memory (the read bandwidth the kernels can reach, GB/s); seqN (N tokens "
                    + "in one call) or seqN/K (in calls of K), logits of the last; streamsKxT[/B] (K keys x T tokens, "
                    + "B keys per call, hidden vectors only). Default: ${DEFAULT-VALUE}.")
    List<String> modes;

    @Option(
            names = "--decode-tokens",
            defaultValue = "16",
            description = "Tokens per decode run (products per head run). Default: ${DEFAULT-VALUE}.")
    int decodeTokens;

    @Option(names = "--reps", defaultValue = "5", description = "Measured repetitions. Default: ${DEFAULT-VALUE}.")
    int reps;

    @Option(
            names = "--warmup",
            defaultValue = "1",
            description =
                    "Unmeasured warm-up runs per mode, right before its measured runs. Default: ${DEFAULT-VALUE}.")
    int warmup;

    @Option(
            names = "--warmup-seconds",
            defaultValue = "5",
            paramLabel = "S",
            description =
                    "First run every mode in turn for at least this long, unmeasured, so that the JIT has "
                            + "compiled the kernels every mode uses (a steady state, as in a long-running job). Default: ${DEFAULT-VALUE}.")
    double warmupSeconds;

    @Option(
            names = "--shapes",
            paramLabel = "LIST",
            description = "With --backend cuda: model shapes, e.g. 0.1b,1.5b,7b (CudaBench's default when absent).")
    String shapes;

    @Override
    public Integer call() throws Exception {
        if (backend.name.equalsIgnoreCase("cuda")) {
            return cuda();
        }
        for (String mode : modes) { // fail before loading anything
            workload(mode);
        }
        Backend be = Backends.byName(backend.name);
        long t0 = System.nanoTime();
        RwkvModel m = model != null
                ? RwkvModel.load(model, be)
                : RwkvModel.of(RandomModels.rwkv7(RandomModels.Rwkv7Shape.RWKV7_0_1B, 1, type), be);
        System.out.printf(
                "model %s: RWKV %s L%d D%d vocab %d, %s weights; backend %s; %d threads; loaded in %.1f s%n",
                model != null ? model : "random 0.1B",
                m.config().version().label(),
                m.config().layers(),
                m.config().embd(),
                m.config().vocab(),
                m.config().matrixType(),
                be.name(),
                Runtime.getRuntime().availableProcessors(),
                (System.nanoTime() - t0) / 1e9);
        System.out.println("| mode | tokens/s (median) | runs (tokens/s) |");
        System.out.println("|---|---|---|");
        SplittableRandom rnd = new SplittableRandom(7);
        String headNote = null;
        String memoryNote = null;
        long warmEnd = System.nanoTime() + (long) (warmupSeconds * 1e9);
        while (System.nanoTime() < warmEnd) {
            for (String mode : modes) {
                workload(mode).run(m, rnd);
            }
        }
        for (String mode : modes) {
            Workload w = workload(mode);
            List<Double> rates = new ArrayList<>();
            for (int rep = 0; rep < warmup + reps; rep++) {
                double secs = w.run(m, rnd);
                if (rep >= warmup) {
                    rates.add(w.tokens() / secs);
                }
            }
            double[] sorted =
                    rates.stream().mapToDouble(Double::doubleValue).sorted().toArray();
            double median = sorted.length % 2 == 1
                    ? sorted[sorted.length / 2]
                    : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
            System.out.printf(
                    "| %s | %.1f | %s |%n",
                    mode,
                    median,
                    Arrays.toString(rates.stream().mapToLong(Math::round).toArray()));
            if (w instanceof Workload.Memory(MemoryProbe probe)) {
                memoryNote = String.format(
                        "memory: %d MiB read with the backend's threads: %.2f GB/s at the median",
                        probe.bytes() >> 20, median * probe.bytes() / 1e9);
            }
            if (w instanceof Workload.Head) {
                Tensor head = m.weights().get("head.weight");
                long bytes = head.data().byteSize();
                headNote = String.format(
                        "head: %d x %d %s, %.1f MB read per product: %.2f GB/s at the median",
                        head.rows(), head.cols(), head.type(), bytes / 1e6, median * bytes / 1e9);
            }
        }
        for (String note : new String[] {headNote, memoryNote}) {
            if (note != null) {
                System.out.println(note);
            }
        }
        if (memoryProbe != null) {
            memoryProbe.close();
        }
        m.close();
        return 0;
    }

    /** The GPU benchmark; exit status 2 (with the reason on stderr) where CUDA is unavailable. */
    private int cuda() {
        Availability a = Cuda.availability();
        if (!a.available()) {
            System.err.println("CUDA unavailable: " + a.reason());
            return 2;
        }
        List<String> args = new ArrayList<>();
        if (shapes != null) {
            args.addAll(List.of("--shapes", shapes));
        }
        args.addAll(List.of("--reps", Integer.toString(reps)));
        CudaBench.main(args.toArray(String[]::new));
        return 0;
    }

    /** The buffer of the memory mode: 512 MiB, far beyond any cache here. */
    private static final long MEMORY_PROBE_BYTES = 512L << 20;

    private MemoryProbe memoryProbe;

    private Workload workload(String mode) {
        if (mode.equals("decode")) {
            return new Workload.Decode(decodeTokens);
        }
        if (mode.equals("head")) {
            return new Workload.Head(decodeTokens);
        }
        if (mode.equals("memory")) {
            if (memoryProbe == null) {
                memoryProbe = new MemoryProbe(MEMORY_PROBE_BYTES);
            }
            return new Workload.Memory(memoryProbe);
        }
        Matcher s = SEQ.matcher(mode);
        if (s.matches()) {
            int n = Integer.parseInt(s.group(1));
            return new Workload.Sequence(n, s.group(2) == null ? n : Integer.parseInt(s.group(2)));
        }
        Matcher k = STREAMS.matcher(mode);
        if (k.matches()) {
            int keys = Integer.parseInt(k.group(1));
            return new Workload.Streams(
                    keys, Integer.parseInt(k.group(2)), k.group(3) == null ? keys : Integer.parseInt(k.group(3)));
        }
        throw new IllegalArgumentException(
                "unknown mode " + mode + " (decode, head, memory, seqN, seqN/K, streamsKxT, streamsKxT/B)");
    }

    /** One measured run: fresh states, random token ids, wall time in seconds. */
    private sealed interface Workload {
        int tokens();

        double run(RwkvModel m, SplittableRandom rnd);

        /** Each token in its own call, logits every token. */
        record Decode(int tokens) implements Workload {
            @Override
            public double run(RwkvModel m, SplittableRandom rnd) {
                int[] ids = rnd.ints(tokens, 0, m.config().vocab()).toArray();
                RwkvState s = m.newState();
                long start = System.nanoTime();
                for (int id : ids) {
                    m.forward(s, new int[] {id});
                }
                return (System.nanoTime() - start) / 1e9;
            }
        }

        /**
         * The output head alone, {@code tokens} one-token products (vocab x embd, the largest matrix): the
         * one-token kernel at memory speed, reported also in GB/s of weights read.
         */
        record Head(int tokens) implements Workload {
            @Override
            public double run(RwkvModel m, SplittableRandom rnd) {
                float[] hidden = new float[m.config().embd()];
                for (int i = 0; i < hidden.length; i++) {
                    hidden[i] = (float) (rnd.nextDouble() * 2 - 1);
                }
                long start = System.nanoTime();
                for (int t = 0; t < tokens; t++) {
                    m.head(hidden);
                }
                return (System.nanoTime() - start) / 1e9;
            }
        }

        /** One read of a buffer larger than the caches ({@link MemoryProbe}): the rate one-token products can reach. */
        record Memory(MemoryProbe probe) implements Workload {
            @Override
            public int tokens() {
                return 1;
            }

            @Override
            public double run(RwkvModel m, SplittableRandom rnd) {
                return probe.readOnce(m.backend());
            }
        }

        /** {@code tokens} in calls of {@code chunk}, logits after the last call only (rwkv.cpp's eval_sequence_in_chunks). */
        record Sequence(int tokens, int chunk) implements Workload {
            public Sequence {
                if (chunk < 1 || tokens < 1) {
                    throw new IllegalArgumentException(
                            "seq" + tokens + "/" + chunk + ": need at least 1 token per call");
                }
            }

            @Override
            public double run(RwkvModel m, SplittableRandom rnd) {
                int[] ids = rnd.ints(tokens, 0, m.config().vocab()).toArray();
                RwkvState s = m.newState();
                long start = System.nanoTime();
                for (int from = 0; from < tokens; from += chunk) {
                    int[] part = Arrays.copyOfRange(ids, from, Math.min(tokens, from + chunk));
                    if (from + chunk >= tokens) {
                        m.forward(s, part);
                    } else {
                        m.hidden(s, part);
                    }
                }
                return (System.nanoTime() - start) / 1e9;
            }
        }

        /** {@code keys} states, {@code perKey} tokens each, {@code batch} states per {@link RwkvModel#advance} call. */
        record Streams(int keys, int perKey, int batch) implements Workload {
            public Streams {
                if (keys < 1 || perKey < 1 || batch < 1) {
                    throw new IllegalArgumentException(
                            "streams" + keys + "x" + perKey + "/" + batch + ": all must be >= 1");
                }
            }

            @Override
            public int tokens() {
                return keys * perKey;
            }

            @Override
            public double run(RwkvModel m, SplittableRandom rnd) {
                RwkvState[] states = new RwkvState[keys];
                int[][] ids = new int[keys][];
                for (int i = 0; i < keys; i++) {
                    states[i] = m.newState();
                    ids[i] = rnd.ints(perKey, 0, m.config().vocab()).toArray();
                }
                long start = System.nanoTime();
                for (int from = 0; from < keys; from += batch) {
                    int to = Math.min(keys, from + batch);
                    m.advance(Arrays.copyOfRange(states, from, to), Arrays.copyOfRange(ids, from, to));
                }
                return (System.nanoTime() - start) / 1e9;
            }
        }
    }
}
