package dev.rwkvflink.jobs.cli;

import dev.rwkvflink.engine.backend.Backend;
import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.model.RandomModels;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tensor.WeightType;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;

/**
 * Tokens per second of the engine, llama-bench style: decode (one token per call, logits every token) and
 * sequence mode (T tokens in one call, logits of the last), reported apart; warm-up, then the median of
 * repeated runs.
 */
@Command(name = "bench", mixinStandardHelpOptions = true, description = "Measure CPU tokens/s (decode and sequence mode).")
final class BenchCommand implements Callable<Integer> {
    @Option(names = "--model", paramLabel = "FILE", description = "A model file; default: random RWKV-7 0.1B shape.")
    Path model;

    @Option(names = "--type", defaultValue = "F32", paramLabel = "TYPE",
            description = "Matrix type of the random model: F32, F16, BF16, Q8_0, Q5_1, ... Default: ${DEFAULT-VALUE}.")
    WeightType type;

    @Option(names = "--backend", defaultValue = "cpu", description = "cpu, vector or scalar. Default: ${DEFAULT-VALUE}.")
    String backend;

    @Option(names = "--modes", split = ",", defaultValue = "decode,seq64,seq512",
            description = "decode, seqN (N tokens in one call). Default: ${DEFAULT-VALUE}.")
    List<String> modes;

    @Option(names = "--decode-tokens", defaultValue = "16", description = "Tokens per decode run. Default: ${DEFAULT-VALUE}.")
    int decodeTokens;

    @Option(names = "--reps", defaultValue = "5", description = "Measured repetitions. Default: ${DEFAULT-VALUE}.")
    int reps;

    @Option(names = "--warmup", defaultValue = "1", description = "Unmeasured warm-up runs. Default: ${DEFAULT-VALUE}.")
    int warmup;

    @Override
    public Integer call() throws Exception {
        Backend be = Backends.byName(backend);
        long t0 = System.nanoTime();
        RwkvModel m = model != null ? RwkvModel.load(model, be)
                : RwkvModel.of(RandomModels.rwkv7(RandomModels.Rwkv7Shape.RWKV7_0_1B, 1, type), be);
        System.out.printf("model %s: RWKV %s L%d D%d vocab %d, %s weights; backend %s; %d threads; loaded in %.1f s%n",
                model != null ? model : "random 0.1B", m.config().version().label(), m.config().layers(),
                m.config().embd(), m.config().vocab(), m.config().matrixType(), be.name(),
                Runtime.getRuntime().availableProcessors(), (System.nanoTime() - t0) / 1e9);
        System.out.println("| mode | tokens/s (median) | runs (tokens/s) |");
        System.out.println("|---|---|---|");
        SplittableRandom rnd = new SplittableRandom(7);
        for (String mode : modes) {
            int tokens = mode.equals("decode") ? decodeTokens : Integer.parseInt(mode.replace("seq", ""));
            List<Double> rates = new ArrayList<>();
            for (int rep = 0; rep < warmup + reps; rep++) {
                int[] ids = rnd.ints(tokens, 0, m.config().vocab()).toArray();
                RwkvState s = m.newState();
                long start = System.nanoTime();
                if (mode.equals("decode")) {
                    for (int id : ids) {
                        m.forward(s, new int[] {id});
                    }
                } else {
                    m.forward(s, ids);
                }
                double secs = (System.nanoTime() - start) / 1e9;
                if (rep >= warmup) {
                    rates.add(tokens / secs);
                }
            }
            double[] sorted = rates.stream().mapToDouble(Double::doubleValue).sorted().toArray();
            double median = sorted.length % 2 == 1 ? sorted[sorted.length / 2]
                    : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
            System.out.printf("| %s | %.1f | %s |%n", mode, median,
                    Arrays.toString(rates.stream().mapToLong(Math::round).toArray()));
        }
        m.close();
        return 0;
    }
}
