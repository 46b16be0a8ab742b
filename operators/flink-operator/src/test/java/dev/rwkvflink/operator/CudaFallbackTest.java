package dev.rwkvflink.operator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import dev.rwkvflink.engine.backend.Backends;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * Resource fault (issue 7, item 5): an operator configured with {@code backend("cuda")} on a machine without CUDA
 * opens on the CPU backend ({@code Backends.byName("cuda")} logs the reason at WARNING) and embeds exactly as the
 * CPU does, bit for bit. Skipped where CUDA works (there the GPU runs, within its stated tolerance).
 */
class CudaFallbackTest {
    @Test
    void withoutCudaTheOperatorRunsOnTheCpuAndGivesTheCpuResult() throws Exception {
        Assumptions.assumeFalse(
                Backends.byName("cuda").name().startsWith("cuda"), "CUDA is usable here: nothing falls back");
        String text = "A document embedded on a machine without a GPU, though the job asked for CUDA.";
        RwkvOperatorConfig config = new RwkvOperatorConfig()
                .model(OneShot.tinyModel("FP32"))
                .backend("cuda")
                .batch(64, 4096, 10);
        try (var h = new KeyedOneInputStreamOperatorTestHarness<>(
                        new RwkvEmbeddingOperator(config), (TextChunk c) -> c.key, Types.STRING);
                OneShot cpu = new OneShot(OneShot.tinyModel("FP32"), "hidden")) {
            h.open();
            SharedModels.LoadedModel loaded = SharedModels.acquire(config.modelSpec());
            try {
                assertNotEquals("cuda", loaded.model().backend().name(), "the CPU runs the model");
            } finally {
                SharedModels.release(loaded);
            }
            h.processElement(new TextChunk("doc", 0, text.substring(0, 20), false, 1), 1);
            h.processElement(new TextChunk("doc", 1, text.substring(20), true, 2), 2);
            h.endInput();
            List<EmbeddingRecord> out = new ArrayList<>();
            for (StreamRecord<EmbeddingRecord> r : h.getRecordOutput()) {
                out.add(r.getValue());
            }
            assertEquals(1, out.size(), out.toString());
            assertArrayEquals(cpu.embed(text), out.getFirst().vector, 0f, "bit for bit the CPU embedding");
        }
    }
}
