package dev.rwkvflink.operator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.streaming.util.OperatorSnapshotUtil;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A snapshot written by release 0.5 ({@link LegacySnapshot}: every key's state one whole-RWKV-state value) restores
 * into today's operator on the heap and RocksDB backends, with and without the token log and hot states, and
 * every document finishes with the embedding of its whole text computed in one engine call (bit for bit: CPU).
 */
class StateLayoutMigrationTest {
    private static OneShot reference;

    @BeforeAll
    static void loadReference() throws Exception {
        reference = new OneShot(OneShot.tinyModel("FP32"), "hidden");
    }

    @AfterAll
    static void closeReference() {
        reference.close();
    }

    @ParameterizedTest(name = "{0}, hotStateBytes {1}")
    @CsvSource({"heap,268435456", "rocksdb,268435456", "heap,0", "rocksdb,0"})
    void aRelease05SnapshotRestoresAndEveryDocumentEndsWithItsOneShotEmbedding(String backend, long hotBytes)
            throws Exception {
        URL url = getClass().getClassLoader().getResource(LegacySnapshot.RELEASE_0_5);
        assertNotNull(url, LegacySnapshot.RELEASE_0_5);
        OperatorSubtaskState old =
                OperatorSnapshotUtil.readStateHandle(Path.of(url.toURI()).toString());
        List<EmbeddingRecord> out = new ArrayList<>();
        try (var h = new KeyedOneInputStreamOperatorTestHarness<>(
                new RwkvEmbeddingOperator(LegacySnapshot.config().hotStateBytes(hotBytes)),
                (TextChunk c) -> c.key,
                Types.STRING)) {
            if (backend.equals("rocksdb")) {
                h.setStateBackend(new EmbeddedRocksDBStateBackend());
            }
            h.initializeState(old);
            h.open();
            for (int d = 0; d < LegacySnapshot.TEXTS.length; d++) {
                List<TextChunk> chunks = LegacySnapshot.chunks(d);
                for (TextChunk c : chunks.subList(LegacySnapshot.CUT, chunks.size())) {
                    h.processElement(c, 0);
                }
                // a repeat of a chunk the snapshot already holds is recognised as a duplicate
                h.processElement(chunks.get(LegacySnapshot.CUT - 1), 0);
            }
            h.endInput();
            for (StreamRecord<EmbeddingRecord> r : h.getRecordOutput()) {
                out.add(r.getValue());
            }
        }
        assertEquals(LegacySnapshot.TEXTS.length, out.size(), out.toString());
        for (int d = 0; d < LegacySnapshot.TEXTS.length; d++) {
            String key = "doc-" + d;
            EmbeddingRecord r =
                    out.stream().filter(e -> e.key.equals(key)).findFirst().orElseThrow();
            assertArrayEquals(reference.embed(LegacySnapshot.TEXTS[d]), r.vector, 0f, key);
            assertEquals(
                    LegacySnapshot.TEXTS[d].getBytes(StandardCharsets.UTF_8).length, r.tokens, key + " token count");
        }
    }
}
