package dev.rwkvflink.operator;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.runtime.checkpoint.SavepointType;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.streaming.util.OperatorSnapshotUtil;

/**
 * The fixture of the state-layout migration test: an operator savepoint (canonical format, taken on the heap backend, rwkv.cpp's tiny RWKV-7 FP32
 * model) written by an earlier release, in which every key's state is one whole-RWKV-state value. The documents
 * and their split are fixed here (seeded), so the snapshot holds the first {@link #CUT} chunks of each and the
 * migration test feeds the rest.
 *
 * <p>To write it again with a release (from that release's checkout, with this file copied in):
 * {@code mvn -o -pl operators/flink-operator test-compile exec:java -Dexec.classpathScope=test
 * -Dexec.mainClass=dev.rwkvflink.operator.LegacySnapshot -Dexec.args=PATH} or any runner of this main class with
 * the module's test class path.
 */
final class LegacySnapshot {
    /** The snapshot written with release 0.5 (commit efec0e5: whole states, serializer snapshot version 1). */
    static final String RELEASE_0_5 = "savepoints/operator-0.5-canonical-tiny7-fp32.savepoint";

    static final String[] TEXTS = {
        "A document whose state the old layout stored whole: the quick brown fox jumps over the lazy dog.",
        "Second one, ünïcödé ✓ and 以下は, split at random places.",
        "Third: shorter than the others, yet in five chunks or more."
    };
    static final int CUT = 4;

    private LegacySnapshot() {}

    /** The chunks of document {@code d}, seeded: the same split in the writer and in the test. */
    static List<TextChunk> chunks(int d) {
        return RwkvEmbeddingOperatorTest.chunks("doc-" + d, TEXTS[d], new Random(1000 + d), 9);
    }

    static RwkvOperatorConfig config() {
        return new RwkvOperatorConfig().model(OneShot.tinyModel("FP32")).batch(64, 4096, 10);
    }

    /** Writes the snapshot of the first {@link #CUT} chunks of every document to {@code args[0]}. */
    public static void main(String[] args) throws Exception {
        List<TextChunk> first = new ArrayList<>();
        for (int d = 0; d < TEXTS.length; d++) {
            List<TextChunk> c = chunks(d);
            if (c.size() <= CUT) {
                throw new IllegalStateException("document " + d + " has only " + c.size() + " chunks");
            }
            first.addAll(c.subList(0, CUT));
        }
        try (var h = new KeyedOneInputStreamOperatorTestHarness<>(
                new RwkvEmbeddingOperator(config()), (TextChunk c) -> c.key, Types.STRING)) {
            h.open();
            for (TextChunk c : first) {
                h.processElement(c, 0);
            }
            h.prepareSnapshotPreBarrier(1);
            // a savepoint in the canonical format: what a user takes before upgrading, restorable into any backend
            OperatorSubtaskState s = h.snapshotWithLocalState(
                            1, 1, SavepointType.savepoint(SavepointFormatType.CANONICAL))
                    .getJobManagerOwnedState();
            Path out = Path.of(args[0]);
            Files.createDirectories(out.toAbsolutePath().getParent());
            OperatorSnapshotUtil.writeStateHandle(s, out.toString());
            System.out.println("wrote " + out + " (" + Files.size(out) + " bytes)");
        }
    }
}
