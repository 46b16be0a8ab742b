package dev.rwkvflink.engine.format;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.backend.ScalarBackend;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.reference.Float64Rwkv;
import dev.rwkvflink.engine.testing.SharedData;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A model saved by real PyTorch ({@code torch.save}, via {@code rwkvcpp_to_blinkdl.py}: rwkv.cpp's tiny models
 * with the converter's transforms inverted) runs and gives the logits of the same weights: within 1e-4 of the
 * float64 evaluation of the loaded file. BlinkDL files follow BlinkDL's GroupNorm eps (64e-5), so the v5 model
 * read from a {@code .pth} is evaluated with that eps, unlike its rwkv.cpp twin (1e-5).
 */
class PthModelLogitsTest {
    @TempDir
    static Path out;

    @ParameterizedTest
    @ValueSource(strings = {"tiny-rwkv-4v0-660K-FP32", "tiny-rwkv-5v2-730K-FP32", "tiny-rwkv-7v0-834K-FP32"})
    void modelsSavedByPyTorchRun(String model) throws Exception {
        Path bin = PythonFixtures.rwkvCppModel(model + ".bin");
        PythonFixtures.run("torch", "rwkvcpp_to_blinkdl.py", out.toString(), bin.toString());
        List<String> files = Files.exists(out.resolve(model + ".fla.safetensors"))
                ? List.of(".pth", ".safetensors", ".fla.safetensors")
                : List.of(".pth", ".safetensors");
        for (String suffix : files) {
            Path file = out.resolve(model + suffix);
            double[] exact;
            try (WeightFile f = WeightFile.open(file)) {
                exact = Float64Rwkv.load(f).logitsAfter(SharedData.PROMPT);
            }
            try (RwkvModel m = RwkvModel.load(file, new ScalarBackend())) {
                double diff = Float64Rwkv.maxAbsDiff(m.forward(m.newState(), SharedData.PROMPT), exact);
                System.out.printf("%s%s: max|ours - float64| %.3g%n", model, suffix, diff);
                assertTrue(diff <= 1e-4, model + suffix + ": " + diff);
                if (!model.contains("5v")) {
                    // v4 and v7 share conventions across formats: the rwkv.cpp expected logits apply too.
                    float[] expected =
                            SharedData.expectedLogits(model.substring("tiny-rwkv-".length(), model.lastIndexOf('-')));
                    double vsCpp = Float64Rwkv.maxAbsDiff(expected, exact);
                    assertTrue(vsCpp <= 1e-4, model + suffix + " vs rwkv.cpp: " + vsCpp);
                }
            }
        }
    }
}
