package dev.rwkvflink.operator;

import dev.rwkvflink.engine.model.ResidentStates;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.operator.state.KeyModelState;
import dev.rwkvflink.operator.state.KeyModelStateSerializer;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;

/**
 * The measurement behind {@link SnapshotBudget}: what rebuilding a cold key costs, per snapshot and per replayed
 * token, on one model and backend (not a unit test: {@code bin/bench-operator budget MODEL BACKEND}, or on the GPU
 * machine {@code native-bindings/gpu-bench.sh budget}).
 *
 * <ul>
 *   <li>snapshot read: a key's snapshot record decoded from its serialized bytes (what the state backend hands
 *       the operator; RocksDB's own lookup adds a copy) and loaded into an engine slot (on the GPU: copied to the
 *       device), per key, for KEYS keys;</li>
 *   <li>replay: KEYS cold keys' logs of L tokens replayed in one {@link ResidentStates#advance} call (what a batch
 *       with KEYS cold keys does), per token.</li>
 * </ul>
 * K = read time / replay time per token is the log length whose replay costs one snapshot read;
 * {@code macs/byte} = K x multiply-adds per token / state bytes is the backend's constant in {@link SnapshotBudget}.
 * Medians of ROUNDS rounds after a warm-up. Arguments: MODEL (random:0.1b:F32) BACKEND (cpu) KEYS (64) L (64)
 * ROUNDS (5).
 */
public final class SnapshotBudgetBench {
    public static void main(String[] args) throws Exception {
        String model = args.length > 0 ? args[0] : "random:0.1b:F32";
        String backend = args.length > 1 ? args[1] : "cpu";
        int keys = args.length > 2 ? Integer.parseInt(args[2]) : 64;
        int logTokens = args.length > 3 ? Integer.parseInt(args[3]) : 64;
        int rounds = args.length > 4 ? Integer.parseInt(args[4]) : 5;
        if (GpuChoice.isGpu(backend) && Integer.getInteger("rwkv.cuda.slots", 0) < keys) {
            System.setProperty("rwkv.cuda.slots", Integer.toString(Math.max(256, keys)));
        }
        String vocabFile = System.getProperty("rwkv.vocab", "../shared/reference/rwkv_vocab_v20230424.txt");
        RwkvOperatorConfig config = new RwkvOperatorConfig()
                .model(model)
                .backend(backend)
                .vocab(model.startsWith("random:") ? vocabFile : null);
        SharedModels.LoadedModel loaded = SharedModels.acquire(config.modelSpec());
        try {
            RwkvModel m = loaded.model();
            var serializer = new KeyModelStateSerializer(m.config(), m.fingerprint());
            SplittableRandom rnd = new SplittableRandom(1); // seeded: the same tokens every run
            int vocab = m.config().vocab();
            int[][][] logs = new int[rounds + 1][keys][];
            for (int[][] round : logs) {
                for (int k = 0; k < keys; k++) {
                    round[k] = rnd.ints(logTokens, 0, vocab).toArray();
                }
            }
            double[] readPerKey = new double[rounds];
            double[] replayPerToken = new double[rounds];
            try (ResidentStates slots = m.residentStates(keys)) {
                int[] ids = new int[keys];
                byte[][] records = new byte[keys][];
                for (int k = 0; k < keys; k++) {
                    ids[k] = k;
                    slots.reset(k);
                }
                for (int r = 0; r <= rounds; r++) {
                    // snapshots worth reading: the states after the previous round
                    DataOutputSerializer out = new DataOutputSerializer(1 << 20);
                    for (int k = 0; k < keys; k++) {
                        RwkvState s = m.newState();
                        slots.store(k, s);
                        out.clear();
                        serializer.serialize(
                                new KeyModelState(s, new float[m.config().embd()], 1), out);
                        records[k] = out.getCopyOfBuffer();
                    }
                    long start = System.nanoTime();
                    for (int k = 0; k < keys; k++) {
                        KeyModelState s = serializer.deserialize(new DataInputDeserializer(records[k]));
                        slots.load(k, s.state);
                    }
                    long read = System.nanoTime();
                    slots.advance(ids, logs[r]);
                    long end = System.nanoTime();
                    if (r > 0) {
                        readPerKey[r - 1] = (read - start) / 1e9 / keys;
                        replayPerToken[r - 1] = (end - read) / 1e9 / ((double) keys * logTokens);
                    }
                }
            }
            double read = median(readPerKey);
            double token = median(replayPerToken);
            double k = read / token;
            double stateBytes = 4.0 * RwkvState.floats(m.config());
            double macsPerByte = k * SnapshotBudget.macsPerToken(m.config()) / stateBytes;
            System.out.printf(
                    Locale.ROOT,
                    "| %s | %s | %.2f MB | %d x %d | %.3f ms | %.2f us | %.1f | %.1f | %d |%n",
                    model,
                    m.backend().name(),
                    stateBytes / 1e6,
                    keys,
                    logTokens,
                    read * 1e3,
                    token * 1e6,
                    k,
                    macsPerByte,
                    SnapshotBudget.defaultTokens(m.config(), m.runner() != null));
        } finally {
            SharedModels.release(loaded);
        }
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }
}
