package dev.rwkvflink.operator;

import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.state.StateCodec;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Operator throughput against the bare engine on the same batches (not a unit test: run with
 * {@code bin/bench-operator}). K keys each receive one chunk of T token ids per round; the operator runs them as
 * one batch (flushed as before a checkpoint barrier), the engine alone runs {@code model.advance} on the same
 * states and tokens. Reports tokens/s medians over rounds and the ratio, per state backend, and the bytes of one
 * key's state.
 */
public final class OperatorBench {
    public static void main(String[] args) throws Exception {
        String model = args.length > 0 ? args[0] : "random:0.1b:F32";
        int keys = args.length > 1 ? Integer.parseInt(args[1]) : 16;
        int tokens = args.length > 2 ? Integer.parseInt(args[2]) : 16;
        int rounds = args.length > 3 ? Integer.parseInt(args[3]) : 5;
        // the chunks carry token ids; a vocabulary is still needed to open a 65536-token model
        String vocabFile = System.getProperty("rwkv.vocab", "../shared/reference/rwkv_vocab_v20230424.txt");
        RwkvOperatorConfig config = new RwkvOperatorConfig().model(model).vocab(model.startsWith("random:") ? vocabFile : null)
                .batch(keys, keys * tokens, 1_000_000).idleTimeout(0);
        SplittableRandom rnd = new SplittableRandom(1);

        SharedModels.LoadedModel loaded = SharedModels.acquire(config.modelSpec());
        RwkvModel m = loaded.model();
        int vocab = m.config().vocab();
        List<int[][]> batches = new ArrayList<>();
        for (int r = 0; r < rounds + 1; r++) {
            int[][] b = new int[keys][];
            for (int k = 0; k < keys; k++) {
                b[k] = rnd.ints(tokens, 0, vocab).toArray();
            }
            batches.add(b);
        }
        RwkvState probe = m.newState();
        System.out.printf("model %s: RWKV %s L%d D%d %s, backend %s; %d keys x %d tokens per batch, %d rounds (+1 warm-up)%n",
                model, m.config().version().label(), m.config().layers(), m.config().embd(), m.config().matrixType(),
                m.backend().name(), keys, tokens, rounds);
        System.out.printf("state per key: %d floats, %d bytes in the engine's binary form (+%d bytes hidden vector)%n",
                RwkvState.floats(m.config()), StateCodec.encode(probe, m.fingerprint()).length, 4 * m.config().embd());

        double engine = engineRate(m, batches, keys);
        System.out.println("| path | tokens/s (median) | ratio to the bare engine |");
        System.out.println("|---|---|---|");
        System.out.printf("| bare engine (model.advance) | %.1f | 1.00 |%n", engine);
        for (String backend : new String[] {"heap", "rocksdb"}) {
            double op = operatorRate(config, batches, keys, backend);
            System.out.printf("| operator, %s state | %.1f | %.2f |%n", backend, op, op / engine);
        }
        SharedModels.release(loaded);
    }

    private static double engineRate(RwkvModel m, List<int[][]> batches, int keys) {
        RwkvState[] states = new RwkvState[keys];
        for (int k = 0; k < keys; k++) {
            states[k] = m.newState();
        }
        double[] rates = new double[batches.size() - 1];
        for (int r = 0; r < batches.size(); r++) {
            long start = System.nanoTime();
            m.advance(states, batches.get(r));
            double s = (System.nanoTime() - start) / 1e9;
            if (r > 0) {
                rates[r - 1] = tokens(batches.get(r)) / s;
            }
        }
        return median(rates);
    }

    private static double operatorRate(RwkvOperatorConfig config, List<int[][]> batches, int keys, String backend)
            throws Exception {
        var h = new KeyedOneInputStreamOperatorTestHarness<>(new RwkvEmbeddingOperator(config),
                (TextChunk c) -> c.key, Types.STRING);
        if (backend.equals("rocksdb")) {
            h.setStateBackend(new EmbeddedRocksDBStateBackend());
        }
        h.open();
        double[] rates = new double[batches.size() - 1];
        for (int r = 0; r < batches.size(); r++) {
            long start = System.nanoTime();
            for (int k = 0; k < keys; k++) {
                h.processElement(TextChunk.ofTokens("key-" + k, r, batches.get(r)[k], false, 0), 0);
            }
            h.prepareSnapshotPreBarrier(r + 1);
            double s = (System.nanoTime() - start) / 1e9;
            if (r > 0) {
                rates[r - 1] = tokens(batches.get(r)) / s;
            }
        }
        h.close();
        return median(rates);
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
