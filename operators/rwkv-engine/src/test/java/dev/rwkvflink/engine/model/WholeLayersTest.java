package dev.rwkvflink.engine.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.backend.ScalarBackend;
import dev.rwkvflink.engine.format.WeightFile;
import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

/** A model whose layers are not whole is refused naming what is wrong (issue 18), never silently cut or misread. */
class WholeLayersTest {
    private static final RandomModels.Rwkv7Shape SHAPE = new RandomModels.Rwkv7Shape(3, 64, 32, 256, 128, 8, 8, 8, 8);

    private static WeightFile edited(Consumer<Map<String, Tensor>> edit) {
        WeightFile original = RandomModels.rwkv7(SHAPE, 3, WeightType.F32);
        Map<String, Tensor> tensors = new LinkedHashMap<>(original.tensors());
        edit.accept(tensors);
        return new WeightFile(Path.of("edited.bin"), "test", WeightFile.Origin.BLINKDL, tensors, Arena.ofAuto());
    }

    private static String refusal(WeightFile f) {
        return assertThrows(IllegalArgumentException.class, () -> RwkvConfig.detect(f))
                .getMessage();
    }

    @Test
    void aWholeModelPasses() {
        assertEquals(
                3,
                RwkvConfig.detect(RandomModels.rwkv7(SHAPE, 3, WeightType.F32)).layers());
    }

    @Test
    void aGapInTheLayersIsRefusedNotACutModel() {
        String m = refusal(edited(t -> t.remove("blocks.1.ln1.weight")));
        assertTrue(m.contains("blocks.1.ln1.weight is missing, yet layers [1, 2] have tensors"), m);
    }

    @Test
    void aMissingTensorOfALaterLayerIsNamed() {
        String m = refusal(edited(t -> t.remove("blocks.2.att.key.weight")));
        assertTrue(m.contains("missing blocks.2.att.key.weight"), m);
    }

    @Test
    void aNarrowerMatrixThanLayer0sIsRefusedWithBothShapes() {
        String m = refusal(edited(t -> {
            Tensor w = t.get("blocks.2.att.w1");
            t.put(
                    "blocks.2.att.w1",
                    Tensor.ofFloats("blocks.2.att.w1", new float[(int) w.size() / 2], w.dim(0) / 2, w.dim(1)));
        }));
        assertTrue(m.contains("blocks.2.att.w1 has shape") && m.contains("layer 1's"), m);
    }

    @Test
    void aLowRankMatrixNarrowerThanTheModelInEveryLayerIsRefused() {
        // every layer alike, so the layers agree with each other: the model's width (64) is what it must match
        for (String lora : new String[] {"att.w1", "att.a1", "att.g1", "att.v1"}) {
            WeightFile f = edited(t -> {
                for (int layer = 0; layer < SHAPE.layers(); layer++) {
                    String name = "blocks." + layer + "." + lora;
                    Tensor w = t.get(name);
                    if (w != null) {
                        t.put(name, Tensor.ofFloats(name, new float[(int) w.size() / 2], w.dim(0), w.dim(1) / 2));
                    }
                }
            });
            IllegalArgumentException e =
                    assertThrows(IllegalArgumentException.class, () -> RwkvModel.of(f, new ScalarBackend()));
            assertTrue(
                    e.getMessage().contains(lora) && e.getMessage().contains("is not rank x 64"),
                    lora + ": " + e.getMessage());
        }
    }

    @Test
    void anUnexpectedBlockTensorIsNamed() {
        String m = refusal(
                edited(t -> t.put("blocks.2.att.extra", Tensor.ofFloats("blocks.2.att.extra", new float[4], 4))));
        assertTrue(m.contains("unexpected blocks.2.att.extra"), m);
    }
}
