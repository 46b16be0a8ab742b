package dev.rwkvflink.operator;

import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.state.RwkvState;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.runtime.state.storage.FileSystemCheckpointStorage;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;

/**
 * Bytes a checkpoint writes, whole states (K = 0, the layout before the token log) against the token log
 * (not a unit test: {@code bin/bench-operator checkpoint-bytes ...}). The operator runs in the keyed test harness
 * on RocksDB with incremental checkpoints into a file-system checkpoint directory, each checkpoint confirmed, as in
 * a job. D open documents: first each gets one chunk (opening it), then in each of I intervals a fraction F of
 * them (drawn with a fixed seed) gets a chunk of T token ids, followed by a checkpoint. Reported per K: the bytes
 * the interval checkpoints uploaded (Flink's incremental "checkpointed size": new SST files), their median per
 * checkpoint, per advanced document, and the full state size at the end.
 *
 * <p>Arguments: MODEL (random:0.1b:F32) DOCS (1000; a list) FRACTION (0.25) TOKENS (16) INTERVALS (3) K-LIST
 * (0,-1) HOT_STATE_BYTES (default: all documents hot). Write-heavy: with K = 0 each advanced 0.1B document writes
 * 2.4 MB per checkpoint.
 */
public final class CheckpointBytesBench {
    public static void main(String[] args) throws Exception {
        String model = args.length > 0 ? args[0] : "random:0.1b:F32";
        int[] docCounts = Arrays.stream((args.length > 1 ? args[1] : "1000").split(","))
                .mapToInt(Integer::parseInt)
                .toArray();
        double fraction = args.length > 2 ? Double.parseDouble(args[2]) : 0.25;
        int tokens = args.length > 3 ? Integer.parseInt(args[3]) : 16;
        int intervals = args.length > 4 ? Integer.parseInt(args[4]) : 3;
        long[] ks = Arrays.stream((args.length > 5 ? args[5] : "0,-1").split(","))
                .mapToLong(Long::parseLong)
                .toArray();
        String vocabFile = System.getProperty("rwkv.vocab", "../shared/reference/rwkv_vocab_v20230424.txt");
        RwkvOperatorConfig base = new RwkvOperatorConfig()
                .model(model)
                .vocab(model.startsWith("random:") ? vocabFile : null)
                .idleTimeout(0);
        SharedModels.LoadedModel keep = SharedModels.acquire(base.modelSpec()); // loaded once for all runs
        long stateBytes = 4L * RwkvState.floats(keep.model().config());
        System.out.printf(
                Locale.ROOT,
                "model %s: %d bytes of state per key; %d intervals, %.0f%% of the documents "
                        + "get %d tokens per interval%n",
                model,
                stateBytes,
                intervals,
                100 * fraction,
                tokens);
        System.out.println("| documents | K | checkpoints: uploaded in all | median per checkpoint | per advanced "
                + "document | full state at the end | time |");
        System.out.println("|---|---|---|---|---|---|---|");
        for (int docs : docCounts) {
            for (long k : ks) {
                long hot = args.length > 6 ? Long.parseLong(args[6]) : (long) docs * 2 * stateBytes;
                run(base, keep.model().config(), docs, fraction, tokens, intervals, k, hot);
            }
        }
        SharedModels.release(keep);
    }

    private static void run(
            RwkvOperatorConfig base,
            RwkvConfig model,
            int docs,
            double fraction,
            int tokens,
            int intervals,
            long k,
            long hotBytes)
            throws Exception {
        RwkvOperatorConfig config = new RwkvOperatorConfig()
                .model(base.modelPath)
                .vocab(base.vocabPath)
                .idleTimeout(0)
                .batch(1024, 1 << 20, 1_000_000)
                .hotStateBytes(hotBytes)
                .snapshotTokens(k);
        int vocab = model.vocab();
        Path dir = Files.createTempDirectory("rwkv-ckpt-bench");
        SplittableRandom rnd = new SplittableRandom(17); // the same documents and tokens for every K
        long start = System.nanoTime();
        long[] uploaded = new long[intervals];
        long full;
        long[] seq = new long[docs];
        var op = new RwkvEmbeddingOperator(config);
        try (var h = new KeyedOneInputStreamOperatorTestHarness<>(op, (TextChunk c) -> c.key, Types.STRING)) {
            h.setStateBackend(new EmbeddedRocksDBStateBackend(true));
            h.setCheckpointStorage(new FileSystemCheckpointStorage(dir.toUri()));
            h.open();
            for (int d = 0; d < docs; d++) {
                h.processElement(
                        TextChunk.ofTokens(
                                "doc-" + d, seq[d]++, rnd.ints(tokens, 0, vocab).toArray(), false, 0),
                        0);
            }
            checkpoint(h, 1);
            long advanced = 0;
            OperatorSubtaskState last = null;
            for (int i = 0; i < intervals; i++) {
                for (int d = 0; d < docs; d++) {
                    if (rnd.nextDouble() < fraction) {
                        h.processElement(
                                TextChunk.ofTokens(
                                        "doc-" + d,
                                        seq[d]++,
                                        rnd.ints(tokens, 0, vocab).toArray(),
                                        false,
                                        0),
                                0);
                        advanced++;
                    }
                }
                last = checkpoint(h, i + 2);
                uploaded[i] = last.getCheckpointedSize();
                h.getOutput().clear();
            }
            full = last == null ? 0 : last.getStateSize();
            long all = Arrays.stream(uploaded).sum();
            long[] sorted = uploaded.clone();
            Arrays.sort(sorted);
            System.out.printf(
                    Locale.ROOT,
                    "| %,d | %d | %s | %s | %s | %s | %.0f s |%n",
                    docs,
                    k < 0 ? SnapshotBudget.defaultTokens(model, false) : k,
                    mb(all),
                    mb(sorted[intervals / 2]),
                    String.format(Locale.ROOT, "%,d B", all / Math.max(1, advanced)),
                    mb(full),
                    (System.nanoTime() - start) / 1e9);
        } finally {
            try (Stream<Path> files = Files.walk(dir)) {
                files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    private static OperatorSubtaskState checkpoint(
            KeyedOneInputStreamOperatorTestHarness<String, TextChunk, EmbeddingRecord> h, long id) throws Exception {
        h.prepareSnapshotPreBarrier(id);
        OperatorSubtaskState s = h.snapshot(id, id);
        h.notifyOfCompletedCheckpoint(id);
        return s;
    }

    private static String mb(long bytes) {
        return String.format(Locale.ROOT, "%.2f MB", bytes / 1e6);
    }
}
