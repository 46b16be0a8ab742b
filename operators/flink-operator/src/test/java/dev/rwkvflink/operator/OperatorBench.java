package dev.rwkvflink.operator;

import dev.rwkvflink.engine.model.ResidentStates;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.state.StateCodec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;

/**
 * Operator throughput against the bare engine on the same batches (not a unit test: run with
 * {@code bin/bench-operator}, or on the GPU machine with {@code native-bindings/gpu-check.sh --main}). K keys each
 * receive one chunk of T token ids per round; rounds after the first (which loads the model's kernels and admits
 * the keys) are measured, medians reported.
 *
 * <ul>
 *   <li>engine, resident states: {@link ResidentStates#advance} on K slots, the states staying where the model
 *       runs (GPU memory with CUDA): what the operator's batches do between checkpoints, without the operator;</li>
 *   <li>engine, host states: {@link RwkvModel#advance} on K host states (with CUDA, copied to the device and back
 *       around every call);</li>
 *   <li>operator, batch: the K chunks through {@code processElement} until the batch (full at K keys) has run and
 *       its embeddings were emitted: validation, ordering, batching, emission, as between checkpoints;</li>
 *   <li>operator, batch + barrier: the same with a checkpoint barrier after every round
 *       ({@code prepareSnapshotPreBarrier}: the K dirty hot states written to Flink state), i.e. a checkpoint per
 *       batch, the worst case.</li>
 * </ul>
 *
 * Arguments: MODEL (random:0.1b:F32) KEYS (16; a list, e.g. 256,1024) TOKENS (16; a list) ROUNDS (5) BACKEND (cpu)
 * STATE_BACKENDS (heap,rocksdb); every KEYS x TOKENS pair is measured with the model loaded once. With a GPU backend
 * the device pool gets at least KEYS slots ({@code rwkv.cuda.slots}, set here unless given).
 */
public final class OperatorBench {
    public static void main(String[] args) throws Exception {
        String model = args.length > 0 ? args[0] : "random:0.1b:F32";
        int[] keyCounts = ints(args.length > 1 ? args[1] : "16");
        int[] tokenCounts = ints(args.length > 2 ? args[2] : "16");
        int rounds = args.length > 3 ? Integer.parseInt(args[3]) : 5;
        String backend = args.length > 4 ? args[4] : "cpu";
        String[] stateBackends = (args.length > 5 ? args[5] : "heap,rocksdb").split(",");
        int maxKeys = Arrays.stream(keyCounts).max().orElse(1);
        if (GpuChoice.isGpu(backend) && Integer.getInteger("rwkv.cuda.slots", 0) < maxKeys) {
            System.setProperty("rwkv.cuda.slots", Integer.toString(Math.max(256, maxKeys)));
        }
        // the chunks carry token ids; a vocabulary is still needed to open a 65536-token model
        String vocabFile = System.getProperty("rwkv.vocab", "../shared/reference/rwkv_vocab_v20230424.txt");
        RwkvOperatorConfig base = new RwkvOperatorConfig()
                .model(model)
                .backend(backend)
                .vocab(model.startsWith("random:") ? vocabFile : null)
                .idleTimeout(0);
        long loadStart = System.nanoTime();
        SharedModels.LoadedModel loaded = SharedModels.acquire(base.modelSpec());
        RwkvModel m = loaded.model();
        RwkvState probe = m.newState();
        System.out.printf(
                "model %s: RWKV %s L%d D%d %s, backend %s (%s), loaded in %.1f s; %d rounds (+1 warm-up)"
                        + " per configuration%n",
                model,
                m.config().version().label(),
                m.config().layers(),
                m.config().embd(),
                m.config().matrixType(),
                m.backend().name(),
                m.runner() == null ? "CPU" : m.runner().describe(),
                (System.nanoTime() - loadStart) / 1e9,
                rounds);
        System.out.printf(
                "state per key: %d floats, %d bytes in the engine's binary form (+%d bytes hidden vector)%n",
                RwkvState.floats(m.config()),
                StateCodec.encode(probe, m.fingerprint()).length,
                4 * m.config().embd());
        List<String> rows = new ArrayList<>();
        for (int keys : keyCounts) {
            for (int tokens : tokenCounts) {
                rows.addAll(configuration(m, base, keys, tokens, rounds, stateBackends));
            }
        }
        System.out.println();
        System.out.println("| keys x tokens | path | tokens/s (median) | ratio to the engine with resident states |");
        System.out.println("|---|---|---|---|");
        rows.forEach(System.out::println);
        SharedModels.release(loaded);
    }

    private static int[] ints(String list) {
        return Arrays.stream(list.split(","))
                .mapToInt(v -> Integer.parseInt(v.strip()))
                .toArray();
    }

    /** The rows of one batch shape: K keys x T tokens. */
    private static List<String> configuration(
            RwkvModel m, RwkvOperatorConfig base, int keys, int tokens, int rounds, String[] stateBackends)
            throws Exception {
        long stateBytes = 4L * RwkvState.floats(m.config());
        RwkvOperatorConfig config = new RwkvOperatorConfig()
                .model(base.modelPath)
                .vocab(base.vocabPath)
                .backend(base.backend)
                .idleTimeout(0)
                .batch(keys, keys * tokens, 1_000_000)
                .hotStateBytes(2 * (long) keys * (stateBytes + 4L * m.config().embd()));
        SplittableRandom rnd = new SplittableRandom(1);
        int vocab = m.config().vocab();
        List<int[][]> batches = new ArrayList<>();
        for (int r = 0; r < rounds + 1; r++) {
            int[][] b = new int[keys][];
            for (int k = 0; k < keys; k++) {
                b[k] = rnd.ints(tokens, 0, vocab).toArray();
            }
            batches.add(b);
        }
        String shape = keys + " x " + tokens;
        List<String> rows = new ArrayList<>();
        double resident = residentRate(m, batches, keys);
        double host = hostRate(m, batches, keys);
        rows.add(String.format(Locale.ROOT, "| %s | engine, resident states | %.1f | 1.00 |", shape, resident));
        rows.add(String.format(
                Locale.ROOT,
                "| %s | engine, host states (model.advance) | %.1f | %.2f |",
                shape,
                host,
                host / resident));
        for (String stateBackend : stateBackends) {
            double[] op = operatorRates(config, batches, keys, stateBackend.strip());
            rows.add(String.format(
                    Locale.ROOT,
                    "| %s | operator, %s state: batch | %.1f | %.2f |",
                    shape,
                    stateBackend,
                    op[0],
                    op[0] / resident));
            rows.add(String.format(
                    Locale.ROOT,
                    "| %s | operator, %s state: batch + barrier every round"
                            + " (%.1f ms, %.3f ms per key) | %.1f | %.2f |",
                    shape,
                    stateBackend,
                    op[2],
                    op[2] / keys,
                    op[1],
                    op[1] / resident));
        }
        rows.forEach(System.out::println);
        return rows;
    }

    private static double residentRate(RwkvModel m, List<int[][]> batches, int keys) {
        try (ResidentStates slots = m.residentStates(keys)) {
            int[] ids = new int[keys];
            for (int k = 0; k < keys; k++) {
                ids[k] = k;
                slots.reset(k);
            }
            return medianRate(batches, batch -> slots.advance(ids, batch));
        }
    }

    private static double hostRate(RwkvModel m, List<int[][]> batches, int keys) {
        RwkvState[] states = new RwkvState[keys];
        for (int k = 0; k < keys; k++) {
            states[k] = m.newState();
        }
        return medianRate(batches, batch -> m.advance(states, batch));
    }

    /** Median tokens/s of {@code step} over the batches after the first (a warm-up). */
    private static double medianRate(List<int[][]> batches, Consumer<int[][]> step) {
        double[] rates = new double[batches.size() - 1];
        for (int r = 0; r < batches.size(); r++) {
            long start = System.nanoTime();
            step.accept(batches.get(r));
            double s = (System.nanoTime() - start) / 1e9;
            if (r > 0) {
                rates[r - 1] = tokens(batches.get(r)) / s;
            }
        }
        return median(rates);
    }

    /** Tokens/s of the batch path, of batch + barrier, and the barrier's milliseconds (medians). */
    private static double[] operatorRates(
            RwkvOperatorConfig config, List<int[][]> batches, int keys, String stateBackend) throws Exception {
        var op = new RwkvEmbeddingOperator(config);
        var h = new KeyedOneInputStreamOperatorTestHarness<>(op, (TextChunk c) -> c.key, Types.STRING);
        if (stateBackend.equals("rocksdb")) {
            h.setStateBackend(new EmbeddedRocksDBStateBackend());
        }
        h.open();
        int n = batches.size() - 1;
        double[] batchRates = new double[n];
        double[] withBarrier = new double[n];
        double[] barrierMs = new double[n];
        for (int r = 0; r < batches.size(); r++) {
            long start = System.nanoTime();
            for (int k = 0; k < keys; k++) {
                h.processElement(TextChunk.ofTokens("key-" + k, r, batches.get(r)[k], false, 0), 0);
            }
            op.flush(); // normally already run by the K-th chunk (the batch is full)
            long batchEnd = System.nanoTime();
            h.prepareSnapshotPreBarrier(r + 1);
            long end = System.nanoTime();
            h.getOutput().clear();
            if (r > 0) {
                long t = tokens(batches.get(r));
                batchRates[r - 1] = t / ((batchEnd - start) / 1e9);
                withBarrier[r - 1] = t / ((end - start) / 1e9);
                barrierMs[r - 1] = (end - batchEnd) / 1e6;
            }
        }
        h.close();
        return new double[] {median(batchRates), median(withBarrier), median(barrierMs)};
    }

    private static long tokens(int[][] batch) {
        long n = 0;
        for (int[] t : batch) {
            n += t.length;
        }
        return n;
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }
}
