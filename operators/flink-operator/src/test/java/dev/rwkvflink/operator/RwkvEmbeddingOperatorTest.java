package dev.rwkvflink.operator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.embed.LinearHead;
import dev.rwkvflink.engine.embed.Pooling;
import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.operator.state.KeyModelState;
import dev.rwkvflink.operator.state.KeyModelStateSerializer;
import dev.rwkvflink.operator.state.TokenRunSerializer;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.AbstractStreamOperatorTestHarness;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The operator driven by Flink's keyed test harness (real keyed state backends: heap and RocksDB, real timers and
 * snapshots), on rwkv.cpp's tiny RWKV-7 model. Every embedding is compared bit for bit with {@link OneShot}.
 */
class RwkvEmbeddingOperatorTest {
    private static final String DOC_A =
            "The quick brown fox jumps over the lazy dog. RWKV keeps the whole past in a fixed-size state, "
                    + "so a stream of any length costs the same per token. Ünïcödé and 以下は too.";
    private static final String DOC_B =
            "Completely different text for the second key: 0123456789, punctuation!?; and more words.";

    private static OneShot reference;

    @BeforeAll
    static void loadReference() throws Exception {
        reference = new OneShot(OneShot.tinyModel("FP32"), "hidden");
    }

    @AfterAll
    static void closeReference() {
        reference.close();
    }

    private static RwkvOperatorConfig config() {
        return new RwkvOperatorConfig().model(OneShot.tinyModel("FP32")).batch(64, 4096, 10);
    }

    private static KeyedOneInputStreamOperatorTestHarness<String, TextChunk, EmbeddingRecord> harness(
            RwkvOperatorConfig config, String backend) throws Exception {
        var h = new KeyedOneInputStreamOperatorTestHarness<>(
                new RwkvEmbeddingOperator(config), (TextChunk c) -> c.key == null ? "" : c.key, Types.STRING);
        if (backend.equals("rocksdb")) {
            h.setStateBackend(new EmbeddedRocksDBStateBackend());
        }
        return h;
    }

    /** Splits text into chunks at random places (including inside multi-byte characters' neighbours). */
    static List<TextChunk> chunks(String key, String text, Random rnd, int maxLen) {
        List<TextChunk> out = new ArrayList<>();
        int pos = 0;
        long seq = 0;
        while (pos < text.length()) {
            int len = 1 + rnd.nextInt(maxLen);
            int end = Math.min(text.length(), pos + len);
            if (end < text.length() && Character.isHighSurrogate(text.charAt(end - 1))) {
                end++;
            }
            out.add(new TextChunk(key, seq++, text.substring(pos, end), end == text.length(), 1000 + seq));
            pos = end;
        }
        return out;
    }

    /** The bytes {@code serializer} writes for {@code value}. */
    private static <T> long serializedLength(TypeSerializer<T> serializer, T value) throws IOException {
        DataOutputSerializer out = new DataOutputSerializer(256);
        serializer.serialize(value, out);
        return out.length();
    }

    /** The token-log bytes of these chunks' tokens: one run per chunk ({@code perChunk}) or one run of them all. */
    private static long logBytes(List<TextChunk> chunks, boolean perChunk) throws IOException {
        List<int[]> runs = new ArrayList<>();
        for (TextChunk ch : chunks) {
            runs.add(reference.tokenizer.encodeBytes(ch.text.getBytes(StandardCharsets.UTF_8)));
        }
        if (!perChunk) {
            runs = List.of(runs.stream().flatMapToInt(Arrays::stream).toArray());
        }
        long bytes = 0;
        for (int[] run : runs) {
            bytes += serializedLength(TokenRunSerializer.INSTANCE, run);
        }
        return bytes;
    }

    private static List<EmbeddingRecord> outputs(
            KeyedOneInputStreamOperatorTestHarness<String, TextChunk, EmbeddingRecord> h) {
        List<EmbeddingRecord> out = new ArrayList<>();
        for (StreamRecord<EmbeddingRecord> r : h.getRecordOutput()) {
            out.add(r.getValue());
        }
        return out;
    }

    private static EmbeddingRecord only(List<EmbeddingRecord> records, String key) {
        List<EmbeddingRecord> mine =
                records.stream().filter(r -> r.key.equals(key)).toList();
        assertEquals(1, mine.size(), "embeddings for " + key + ": " + mine);
        return mine.getFirst();
    }

    @ParameterizedTest
    @ValueSource(strings = {"heap", "rocksdb"})
    void interleavedKeysOutOfOrderAndDuplicatesGiveTheOneShotEmbedding(String backend) throws Exception {
        Random rnd = new Random(42);
        List<TextChunk> all = new ArrayList<>(chunks("a", DOC_A, rnd, 9));
        all.addAll(chunks("b", DOC_B, rnd, 7));
        List<TextChunk> dups = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            dups.add(all.get(rnd.nextInt(all.size())));
        }
        all.addAll(dups);
        Collections.shuffle(all, rnd);
        try (var h = harness(config(), backend)) {
            h.open();
            for (TextChunk c : all) {
                h.processElement(c, c.eventTime);
            }
            h.endInput();
            List<EmbeddingRecord> out = outputs(h);
            assertEquals(2, out.size(), out.toString());
            EmbeddingRecord a = only(out, "a");
            assertArrayEquals(reference.embed(DOC_A), a.vector, 0f);
            assertEquals(EmbeddingRecord.Reason.LAST, a.reason);
            assertEquals(DOC_A.getBytes(StandardCharsets.UTF_8).length, a.tokens);
            assertArrayEquals(reference.embed(DOC_B), only(out, "b").vector, 0f);
            assertTrue(
                    h.getSideOutput(RwkvEmbeddingOperator.REJECTED) == null
                            || h.getSideOutput(RwkvEmbeddingOperator.REJECTED).isEmpty(),
                    "nothing rejected");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"heap", "rocksdb"})
    void snapshotInTheMiddleThenRestoreGivesTheUninterruptedResult(String backend) throws Exception {
        Random rnd = new Random(7);
        List<TextChunk> a = chunks("a", DOC_A, rnd, 11);
        List<TextChunk> b = chunks("b", DOC_B, rnd, 5);
        int cutA = a.size() / 2;
        int cutB = b.size() / 3;
        OperatorSubtaskState snapshot;
        try (var h = harness(config(), backend)) {
            h.open();
            for (int i = 0; i < Math.max(cutA, cutB); i++) {
                if (i < cutA) {
                    h.processElement(a.get(i), 0);
                }
                if (i < cutB) {
                    h.processElement(b.get(i), 0);
                }
            }
            h.processElement(a.get(cutA + 1), 0); // an out-of-order chunk waits in state across the checkpoint
            h.prepareSnapshotPreBarrier(1);
            snapshot = h.snapshot(1, 1);
            assertTrue(outputs(h).isEmpty());
        }
        try (var h = harness(config(), backend)) {
            h.initializeState(snapshot);
            h.open();
            for (int i = cutA; i < a.size(); i++) {
                if (i != cutA + 1) {
                    h.processElement(a.get(i), 0);
                }
            }
            for (int i = cutB; i < b.size(); i++) {
                h.processElement(b.get(i), 0);
            }
            h.endInput();
            List<EmbeddingRecord> out = outputs(h);
            assertArrayEquals(reference.embed(DOC_A), only(out, "a").vector, 0f);
            assertArrayEquals(reference.embed(DOC_B), only(out, "b").vector, 0f);
        }
    }

    /**
     * Hot states (kept where the model runs between batches): six documents interleaved through batches of two
     * keys, with two hot slots (every batch evicts and writes back), with the default budget (all keys hot,
     * written back only at the checkpoint) and with hot states off (written back after every batch); a snapshot
     * in the middle is restored into a fresh operator. Every document's embedding is the one-shot one, bit for bit.
     */
    @ParameterizedTest
    @CsvSource({
        "heap,1,-1",
        "rocksdb,1,-1",
        "heap,268435456,-1",
        "rocksdb,268435456,-1",
        "heap,0,-1",
        "rocksdb,0,-1",
        "heap,0,5",
        "rocksdb,1,5",
        "rocksdb,268435456,0"
    })
    void hotStatesEvictedAndWrittenBackAtCheckpointsGiveTheOneShotEmbedding(String backend, long hotBytes, long k)
            throws Exception {
        Random rnd = new Random(99);
        String[] texts = {
            DOC_A,
            DOC_B,
            "third text, short",
            "a fourth one with more words than the third one",
            "fifth: ünïcödé ✓",
            "sixth and last document of this test"
        };
        List<TextChunk> all = new ArrayList<>();
        for (int d = 0; d < texts.length; d++) {
            all.addAll(chunks("k" + d, texts[d], rnd, 6));
        }
        Collections.shuffle(all, rnd);
        RwkvOperatorConfig cfg =
                config().batch(2, 4096, 10).hotStateBytes(hotBytes).snapshotTokens(k);
        int cut = all.size() / 2;
        OperatorSubtaskState snapshot;
        List<EmbeddingRecord> out = new ArrayList<>();
        try (var h = harness(cfg, backend)) {
            h.open();
            for (TextChunk c : all.subList(0, cut)) {
                h.processElement(c, 0);
            }
            h.prepareSnapshotPreBarrier(1);
            snapshot = h.snapshot(1, 1);
            out.addAll(outputs(h));
        }
        try (var h = harness(cfg, backend)) {
            h.initializeState(snapshot);
            h.open();
            for (TextChunk c : all.subList(cut, all.size())) {
                h.processElement(c, 0);
            }
            h.endInput();
            out.addAll(outputs(h));
        }
        assertEquals(texts.length, out.size(), out.toString());
        for (int d = 0; d < texts.length; d++) {
            assertArrayEquals(reference.embed(texts[d]), only(out, "k" + d).vector, 0f, "document " + d);
        }
    }

    /**
     * A key advanced in ten batches between two checkpoints: with the token log (default K, longer than this
     * document) it writes no snapshot, only its new tokens (once at the checkpoint when hot, after every batch
     * when not); with K = 0 (the whole-state layout) it writes its state once per checkpoint when hot, ten times
     * when not. The embedding is the same.
     */
    @ParameterizedTest(name = "hotStateBytes {0}, K {1}")
    @CsvSource({"268435456,-1,0", "0,-1,0", "268435456,0,1", "0,0,10"})
    void hotStatesWriteOncePerCheckpointAndTheLogOnlyTheirNewTokens(long hotBytes, long k, long expectedSnapshots)
            throws Exception {
        List<TextChunk> a = chunks("a", DOC_A, new Random(5), 12);
        assertTrue(a.size() > 11, "enough chunks: " + a.size());
        long tokens = 0;
        for (int i = 0; i < 10; i++) {
            tokens += a.get(i).text.getBytes(StandardCharsets.UTF_8).length; // byte tokenizer
        }
        var op = new RwkvEmbeddingOperator(
                config().batch(1, 4096, 10).hotStateBytes(hotBytes).snapshotTokens(k));
        try (var h = new KeyedOneInputStreamOperatorTestHarness<>(op, (TextChunk c) -> c.key, Types.STRING)) {
            h.setStateBackend(new EmbeddedRocksDBStateBackend());
            h.open();
            for (int i = 0; i < 10; i++) {
                h.processElement(a.get(i), 0); // one key per batch: each chunk is a batch
            }
            h.prepareSnapshotPreBarrier(1);
            h.snapshot(1, 1);
            assertEquals(expectedSnapshots, op.snapshotsWritten(), "snapshots of the key's state written");
            assertEquals(k == 0 ? 0 : tokens, op.logTokens(), "tokens appended to the key's log");
            assertEquals(
                    hotBytes == 0 && k != 0 ? 9 : 0,
                    op.statesReplayed(),
                    "rebuilds from the log (cold after every batch but the first)");
            // the state I/O metrics, against the bytes Flink's serializers write for what was written
            RwkvConfig c = reference.model.config();
            long snapshot = serializedLength(
                    new KeyModelStateSerializer(c, reference.model.fingerprint()),
                    new KeyModelState(RwkvState.initial(c), new float[c.embd()], 1));
            long written = expectedSnapshots * snapshot + (k == 0 ? 0 : logBytes(a.subList(0, 10), hotBytes == 0));
            assertEquals(written, op.checkpointStateBytes()[1], "bytes the checkpoint's increment carries");
            for (int i = 10; i < a.size(); i++) {
                h.processElement(a.get(i), 0);
            }
            h.endInput();
            assertArrayEquals(reference.embed(DOC_A), only(outputs(h), "a").vector, 0f);
        }
    }

    /**
     * The replay path is exact on the CPU: evicting every key after every batch (each batch rebuilds its keys
     * from snapshot + token log, with K small enough that both snapshots and logs occur) emits the same bits as
     * never evicting, at every progress point and at the end, and both equal the one-shot embeddings.
     */
    @ParameterizedTest(name = "{0}, K {1}")
    @CsvSource({"heap,24", "rocksdb,24", "heap,60", "rocksdb,-1"})
    void rebuildingEveryKeyFromItsLogAfterEveryBatchEmitsTheSameBitsAsNeverEvicting(String backend, long k)
            throws Exception {
        Random rnd = new Random(2024);
        String[] texts = {DOC_A, DOC_B, DOC_A + " " + DOC_B, "short", DOC_B + DOC_B};
        List<TextChunk> all = new ArrayList<>();
        for (int d = 0; d < texts.length; d++) {
            all.addAll(chunks("k" + d, texts[d], rnd, 11));
        }
        Collections.shuffle(all, rnd);
        List<List<EmbeddingRecord>> runs = new ArrayList<>();
        long[] replayed = new long[2];
        for (long hotBytes : new long[] {268435456L, 0L}) {
            var op = new RwkvEmbeddingOperator(config().batch(2, 4096, 10)
                    .emitEveryTokens(16)
                    .hotStateBytes(hotBytes)
                    .snapshotTokens(k));
            try (var h = new KeyedOneInputStreamOperatorTestHarness<>(op, (TextChunk c) -> c.key, Types.STRING)) {
                if (backend.equals("rocksdb")) {
                    h.setStateBackend(new EmbeddedRocksDBStateBackend());
                }
                h.open();
                for (int i = 0; i < all.size(); i++) {
                    h.processElement(all.get(i), 0);
                    if (i % 10 == 9) {
                        h.prepareSnapshotPreBarrier(i);
                        h.snapshot(i, i);
                    }
                }
                h.endInput();
                runs.add(outputs(h));
                replayed[hotBytes == 0 ? 1 : 0] = op.statesReplayed();
                if (hotBytes == 0 && k > 0 && k < 100) {
                    assertTrue(
                            op.snapshotsWritten() > 0 && op.logTokens() > 0,
                            "both snapshots and logs written: " + op.snapshotsWritten() + ", " + op.logTokens());
                }
            }
        }
        assertEquals(0, replayed[0], "never evicted: nothing rebuilt");
        assertTrue(replayed[1] >= 5, "evicted after every batch: keys rebuilt " + replayed[1]);
        assertEquals(runs.get(0).size(), runs.get(1).size());
        int finals = 0;
        for (int i = 0; i < runs.get(0).size(); i++) {
            EmbeddingRecord hot = runs.get(0).get(i);
            EmbeddingRecord cold = runs.get(1).get(i);
            assertEquals(hot.key + "@" + hot.tokens, cold.key + "@" + cold.tokens, "output " + i);
            assertArrayEquals(hot.vector, cold.vector, 0f, "output " + i + " " + hot.key + "@" + hot.tokens);
            if (hot.reason == EmbeddingRecord.Reason.LAST) {
                int d = Integer.parseInt(hot.key.substring(1));
                assertArrayEquals(reference.embed(texts[d]), hot.vector, 0f, hot.key);
                finals++;
            }
        }
        assertEquals(texts.length, finals);
    }

    @Test
    void restoringStatesOfAnotherModelIsRefusedNamingBoth() throws Exception {
        OperatorSubtaskState snapshot = checkpointAfter(new TextChunk("a", 0, "hello", false, 0));
        RwkvOperatorConfig other = config().model(OneShot.tinyModel("FP16"));
        var h = harness(other, "heap");
        Exception e = assertThrows(Exception.class, () -> {
            h.initializeState(snapshot);
            h.open();
        });
        String message = rootMessages(e);
        assertTrue(
                message.contains("refusing to restore RWKV states")
                        && message.contains("F32")
                        && message.contains("F16"),
                message);
    }

    /**
     * Chunks buffered before a checkpoint are counted again after the restore: the metric says 2 while seq 2 and 3
     * wait for seq 0 and 1, and 0 once they arrive (it went to -2 when the counter started at 0 after a restore).
     */
    @Test
    void bufferedChunksAreCountedAfterARestore() throws Exception {
        OperatorSubtaskState snapshot =
                checkpointAfter(new TextChunk("a", 2, " gamma", false, 0), new TextChunk("a", 3, " delta", true, 0));
        try (var h = harness(config(), "heap")) {
            h.initializeState(snapshot);
            h.open();
            RwkvEmbeddingOperator op = (RwkvEmbeddingOperator) h.getOperator();
            assertEquals(2, op.bufferedChunks(), "the restored waiting chunks");
            h.processElement(new TextChunk("a", 0, "alpha", false, 0), 0);
            h.processElement(new TextChunk("a", 1, " beta", false, 0), 0);
            h.endInput();
            assertEquals(0, op.bufferedChunks(), "all applied after the restore");
            EmbeddingRecord last = outputs(h).getLast();
            assertArrayEquals(reference.embed("alpha beta gamma delta"), last.vector, 0f, "the whole document");
        }
    }

    /**
     * The latency histograms: a chunk that reaches the operator at 1,000 ms (event time 400) and waits for the
     * 10 ms batch timer is emitted at 1,010 (10 ms after arrival, 610 after its event time); a chunk that waited
     * 25 ms for its predecessor counts from when the gap filled (its tokens were queued then), while its event time
     * counts as stamped.
     */
    @Test
    void latencyIsMeasuredFromArrivalAndFromEventTime() throws Exception {
        try (var h = harness(config().emitEveryChunk(true), "heap")) {
            h.open();
            RwkvEmbeddingOperator op = (RwkvEmbeddingOperator) h.getOperator();
            h.setProcessingTime(1_000);
            h.processElement(new TextChunk("a", 0, "alpha", true, 400), 0);
            h.setProcessingTime(1_010); // the batch timer: maxWait 10 ms
            h.setProcessingTime(2_000);
            h.processElement(new TextChunk("b", 1, " beta", true, 1_990), 0); // waits for seq 0
            h.setProcessingTime(2_025);
            h.processElement(new TextChunk("b", 0, "alpha", false, 1_950), 0);
            h.setProcessingTime(2_035);
            assertEquals(3, outputs(h).size(), "a: last; b: progress after seq 0, last after seq 1");
            var fromArrival = op.latencyHistograms()[0].getStatistics();
            var fromEvent = op.latencyHistograms()[1].getStatistics();
            assertEquals(3, op.latencyHistograms()[0].getCount());
            // b's two segments were both queued at 2,025 (seq 1 was applied when seq 0 filled the gap)
            assertEquals(10, fromArrival.getMin());
            assertEquals(10, fromArrival.getMax());
            assertEquals(3, op.latencyHistograms()[1].getCount());
            assertEquals(45, fromEvent.getMin(), "b's last: 2,035 - 1,990");
            assertEquals(610, fromEvent.getMax(), "a: 1,010 - 400");
        }
    }

    /** A fresh operator (default config, heap state) given {@code chunks}, then checkpoint 1 of it. */
    /**
     * The statesHeld and bufferedChunks counts are checkpointed per key group, so after a rescale each subtask
     * knows those of its keys without reading keyed state: 12 documents open (every third with two chunks waiting
     * for their predecessor), restored into two subtasks; each counts exactly the documents whose key group it
     * owns (by Flink's own assignment), and the two add up to the whole.
     */
    @Test
    void documentCountsFollowTheirKeyGroupsThroughARescale() throws Exception {
        List<TextChunk> input = new ArrayList<>();
        int buffered = 0;
        for (int d = 0; d < 12; d++) {
            input.add(new TextChunk("doc-" + d, 0, "open ", false, 0));
            if (d % 3 == 0) {
                input.add(new TextChunk("doc-" + d, 2, "later ", false, 0));
                input.add(new TextChunk("doc-" + d, 3, "end", true, 0));
                buffered += 2;
            }
        }
        int maxParallelism = 128;
        OperatorSubtaskState snapshot;
        try (var h = new KeyedOneInputStreamOperatorTestHarness<>(
                new RwkvEmbeddingOperator(config()), (TextChunk c) -> c.key, Types.STRING, maxParallelism, 1, 0)) {
            h.open();
            for (TextChunk c : input) {
                h.processElement(c, 0);
            }
            h.prepareSnapshotPreBarrier(1);
            snapshot = h.snapshot(1, 1);
        }
        long open = 0;
        long waiting = 0;
        for (int subtask = 0; subtask < 2; subtask++) {
            var range = KeyGroupRangeAssignment.computeKeyGroupRangeForOperatorIndex(maxParallelism, 2, subtask);
            long mine = 0;
            long mineWaiting = 0;
            for (int d = 0; d < 12; d++) {
                if (range.contains(KeyGroupRangeAssignment.assignToKeyGroup("doc-" + d, maxParallelism))) {
                    mine++;
                    mineWaiting += d % 3 == 0 ? 2 : 0;
                }
            }
            try (var h = new KeyedOneInputStreamOperatorTestHarness<>(
                    new RwkvEmbeddingOperator(config()),
                    (TextChunk c) -> c.key,
                    Types.STRING,
                    maxParallelism,
                    2,
                    subtask)) {
                h.initializeState(AbstractStreamOperatorTestHarness.repartitionOperatorState(
                        snapshot, maxParallelism, 1, 2, subtask));
                h.open();
                RwkvEmbeddingOperator op = (RwkvEmbeddingOperator) h.getOperator();
                assertFalse(op.scannedKeysOnOpen(), "the counts came with the checkpoint: no scan of the keys");
                assertEquals(mine, op.openDocuments(), "open documents of subtask " + subtask);
                assertEquals(mineWaiting, op.bufferedChunks(), "waiting chunks of subtask " + subtask);
                open += op.openDocuments();
                waiting += op.bufferedChunks();
            }
        }
        assertEquals(12, open);
        assertEquals(buffered, waiting);
    }

    /**
     * A checkpoint written before the counts were checkpointed (its operator state left out here) is counted once
     * from the progress records on open, so the gauges start right and never go below zero.
     */
    @Test
    void aCheckpointWithoutCountsIsCountedOnceOnOpen() throws Exception {
        OperatorSubtaskState full = checkpointAfter(
                new TextChunk("a", 2, " gamma", false, 0),
                new TextChunk("a", 3, " delta", true, 0),
                new TextChunk("b", 0, "open", false, 0));
        OperatorSubtaskState legacy = OperatorSubtaskState.builder()
                .setManagedKeyedState(full.getManagedKeyedState())
                .build();
        try (var h = harness(config(), "heap")) {
            h.initializeState(legacy);
            h.open();
            RwkvEmbeddingOperator op = (RwkvEmbeddingOperator) h.getOperator();
            assertTrue(op.scannedKeysOnOpen(), "an older checkpoint is counted from its progress records");
            assertEquals(2, op.openDocuments());
            assertEquals(2, op.bufferedChunks());
        }
    }

    private static OperatorSubtaskState checkpointAfter(TextChunk... chunks) throws Exception {
        try (var h = harness(config(), "heap")) {
            h.open();
            for (TextChunk c : chunks) {
                h.processElement(c, 0);
            }
            h.prepareSnapshotPreBarrier(1);
            return h.snapshot(1, 1);
        }
    }

    static String rootMessages(Throwable t) {
        StringBuilder sb = new StringBuilder();
        for (Throwable c = t; c != null; c = c.getCause()) {
            sb.append(c.getMessage()).append(" | ");
        }
        return sb.toString();
    }

    @Test
    void idleTimeoutEmitsTheFinalEmbeddingAndClearsTheKey() throws Exception {
        RwkvOperatorConfig cfg = config().idleTimeout(60_000);
        try (var h = harness(cfg, "heap")) {
            h.open();
            h.setProcessingTime(1_000);
            List<TextChunk> a = chunks("a", DOC_A, new Random(3), 13);
            for (TextChunk c : a.subList(0, a.size() - 1)) {
                h.processElement(c, 0); // never the last one
            }
            String seen = DOC_A.substring(0, DOC_A.length() - a.getLast().text.length());
            h.setProcessingTime(30_000);
            assertTrue(outputs(h).isEmpty(), "not idle yet");
            h.setProcessingTime(62_000); // deadline 61,000, timers fire on the next full second
            h.setProcessingTime(62_010); // and the timed-out key's batch runs within maxWait (10 ms)
            EmbeddingRecord r = only(outputs(h), "a");
            assertEquals(EmbeddingRecord.Reason.IDLE, r.reason);
            assertArrayEquals(reference.embed(seen), r.vector, 0f);
            // the document is over: its late last chunk is a dead letter, with the reason
            h.processElement(a.getLast(), 0);
            var rejected = h.getSideOutput(RwkvEmbeddingOperator.REJECTED);
            assertEquals(1, rejected.size());
            assertTrue(
                    rejected.peek().getValue().reason.contains("already ended"),
                    rejected.peek().getValue().reason);
        }
    }

    /** Keys that time out together end in one batch (one engine call), not one batch each. */
    @Test
    void keysThatTimeOutTogetherRunInOneBatch() throws Exception {
        RwkvOperatorConfig cfg = config().idleTimeout(60_000);
        try (var h = harness(cfg, "heap")) {
            h.open();
            h.setProcessingTime(1_000);
            String[] keys = {"a", "b", "c"};
            for (String k : keys) {
                h.processElement(new TextChunk(k, 0, "open " + k, false, 0), 0);
            }
            h.setProcessingTime(1_010);
            RwkvEmbeddingOperator op = (RwkvEmbeddingOperator) h.getOperator();
            long before = op.batchesRun();
            assertEquals(1, before, "the three first chunks in one batch");
            h.setProcessingTime(62_000); // all three deadlines (61,000) fire on the same second
            h.setProcessingTime(62_010);
            assertEquals(before + 1, op.batchesRun(), "the three timeouts in one batch");
            List<EmbeddingRecord> out = outputs(h);
            for (String k : keys) {
                EmbeddingRecord r = out.stream()
                        .filter(e -> e.key.equals(k) && e.reason == EmbeddingRecord.Reason.IDLE)
                        .findFirst()
                        .orElseThrow(() -> new AssertionError("no idle embedding of " + k));
                assertArrayEquals(reference.embed("open " + k), r.vector, 0f, k);
            }
        }
    }

    @Test
    void progressEmbeddingsEveryNTokensEqualTheOneShotPrefixes() throws Exception {
        RwkvOperatorConfig cfg = config().emitEveryTokens(25);
        try (var h = harness(cfg, "heap")) {
            h.open();
            for (TextChunk c : chunks("a", DOC_A, new Random(5), 17)) {
                h.processElement(c, 0);
            }
            h.endInput();
            List<EmbeddingRecord> out = outputs(h);
            int total = DOC_A.getBytes(StandardCharsets.UTF_8).length;
            assertEquals(total / 25 + 1, out.size(), out.toString());
            for (EmbeddingRecord r : out) {
                if (r.reason == EmbeddingRecord.Reason.PROGRESS) {
                    assertEquals(0, r.tokens % 25);
                    assertArrayEquals(reference.embedPrefix(DOC_A, (int) r.tokens), r.vector, 0f, "after " + r.tokens);
                } else {
                    assertArrayEquals(reference.embed(DOC_A), r.vector, 0f);
                }
            }
        }
    }

    @Test
    void badChunksAreDeadLettersWithReasonsAndTheKeyGoesOn() throws Exception {
        try (var h = harness(config().limits(100, 2, 1 << 20), "heap")) {
            h.open();
            h.processElement(new TextChunk(null, 0, "x", false, 0), 0);
            h.processElement(new TextChunk("a", -1, "x", false, 0), 0);
            h.processElement(new TextChunk("a", 500, "x", false, 0), 0);
            h.processElement(TextChunk.ofTokens("a", 3, new int[] {1, 999}, false, 0), 0);
            h.processElement(new TextChunk("a", 5, "\uD800 lone", false, 0), 0); // buffered: seq 5 waits
            h.processElement(new TextChunk("a", 6, "six", false, 0), 0);
            h.processElement(new TextChunk("a", 7, "seven", false, 0), 0); // a third waiting chunk: over the limit
            h.processElement(new TextChunk("e", 0, "", true, 0), 0); // empty document
            h.processElement(new TextChunk("u", 0, "bad \uD800 text", false, 0), 0); // unpaired surrogate
            h.processElement(new TextChunk("a", 0, "fine", true, 0), 0); // ends a; 5 and 6 come after the end
            h.endInput();
            List<String> reasons = new ArrayList<>();
            for (var r : h.getSideOutput(RwkvEmbeddingOperator.REJECTED)) {
                reasons.add(r.getValue().reason);
            }
            String all = String.join("\n", reasons);
            assertTrue(all.contains("no key"), all);
            assertTrue(all.contains("negative seq"), all);
            assertTrue(all.contains("more than 100 ahead"), all);
            assertTrue(all.contains("outside the model's vocabulary"), all);
            assertTrue(all.contains("already wait"), all);
            assertTrue(all.contains("has no tokens"), all);
            assertTrue(all.contains("after the document's last chunk"), all);
            assertTrue(all.contains("not valid Unicode"), all);
            assertEquals(9, reasons.size(), all);
            assertArrayEquals(reference.embed("fine"), only(outputs(h), "a").vector, 0f);
        }
    }

    @Test
    void aClassificationHeadLabelsTheFinalEmbedding(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        Random rnd = new Random(9);
        int dim = reference.embedder.dimension();
        float[][] w = new float[3][dim];
        for (float[] row : w) {
            for (int i = 0; i < dim; i++) {
                row[i] = (float) rnd.nextGaussian();
            }
        }
        var head = new LinearHead(
                reference.model.fingerprint(), Pooling.HIDDEN, List.of("news", "sports", "code"), w, new float[] {
                    0.1f, 0f, -0.1f
                });
        Path file = dir.resolve("head.json");
        head.save(file);
        try (var h = harness(config().head(file.toString()), "heap")) {
            h.open();
            for (TextChunk c : chunks("a", DOC_A, rnd, 10)) {
                h.processElement(c, 0);
            }
            h.endInput();
            EmbeddingRecord r = only(outputs(h), "a");
            float[] expected = head.probabilities(reference.embed(DOC_A));
            assertArrayEquals(expected, r.probabilities, 0f);
            assertEquals(head.label(expected), r.label);
            assertEquals(1.0, r.probabilities[0] + r.probabilities[1] + r.probabilities[2], 1e-6);
        }
        // a head trained for another model is refused when the operator opens
        var other = harness(config().model(OneShot.tinyModel("FP16")).head(file.toString()), "heap");
        Exception e = assertThrows(Exception.class, other::open);
        assertTrue(rootMessages(e).contains("head was trained on"), rootMessages(e));
    }

    /** Two operator instances (two slots of one TaskManager) share one loaded model, released by the last. */
    @Test
    void slotsShareOneModelReferenceCounted() throws Exception {
        RwkvOperatorConfig cfg = config();
        ModelSpec spec = cfg.modelSpec();
        var first = harness(cfg, "heap");
        var second = harness(cfg, "heap");
        first.open();
        second.open();
        assertEquals(2, SharedModels.users(spec));
        SharedModels.LoadedModel a = SharedModels.acquire(spec);
        SharedModels.LoadedModel b = SharedModels.acquire(spec);
        assertTrue(a == b, "one model object per JVM");
        SharedModels.release(a);
        SharedModels.release(b);
        first.close();
        assertEquals(1, SharedModels.users(spec));
        second.close();
        assertEquals(0, SharedModels.users(spec));
    }
}
