package dev.rwkvflink.engine.format;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * End-to-end check of the readers against rwkv.cpp's converter: {@code rwkvcpp_to_blinkdl.py} inverts the
 * converter's transforms on an rwkv.cpp tiny test model to rebuild the raw BlinkDL state dict and saves it as
 * {@code .pth}, {@code .safetensors} and (v7) fla-named safetensors. Reading those back must give the rwkv.cpp
 * file's tensors: same names, same shapes (except x_rwkvag, (6, C) here and (6, 1, C) in rwkv.cpp), same values.
 *
 * <p>Tolerance: tensors that only move (renames, reshapes, transposes, packing, dequantized values) must be
 * bit-identical. The exp/log round trips (v4 {@code time_decay = -exp(log(-x))}, v5 {@code time_decay =
 * exp(-exp(log(-log x)))} and {@code time_first = exp(log x)}) go through a float32 raw value, so they may differ
 * by the float32 rounding of that value times the transform's condition number: allowed |diff| &lt;=
 * {@value #REL_TOL} * |x| + {@value #ABS_TOL}.
 */
class RwkvCppRoundTripTest {
    static final double REL_TOL = 2e-6;
    static final double ABS_TOL = 1e-30;

    @TempDir
    static Path out;

    @ParameterizedTest
    @ValueSource(
            strings = {
                "tiny-rwkv-4v0-660K-FP32",
                "tiny-rwkv-4v0-660K-FP16",
                "tiny-rwkv-5v1-730K-FP32",
                "tiny-rwkv-5v2-730K-FP32",
                "tiny-rwkv-6v0-3m-Q5_0",
                "tiny-rwkv-7v0-834K-FP32",
                "tiny-rwkv-7v0-834K-FP16"
            })
    void blinkDlFilesRebuiltFromRwkvCppReadBackToTheSameTensors(String model) throws Exception {
        Path bin = PythonFixtures.rwkvCppModel(model + ".bin");
        PythonFixtures.run("torch", "rwkvcpp_to_blinkdl.py", out.toString(), bin.toString());
        List<String> files = Files.exists(out.resolve(model + ".fla.safetensors"))
                ? List.of(".pth", ".safetensors", ".fla.safetensors")
                : List.of(".pth", ".safetensors");
        try (WeightFile reference = RwkvCppFile.read(bin)) {
            for (String suffix : files) {
                try (WeightFile wf = WeightFile.open(out.resolve(model + suffix))) {
                    assertEquals(suffix.equals(".pth") ? "pth" : "safetensors", wf.format());
                    compare(model + suffix, reference.tensors(), wf.tensors());
                }
            }
        }
    }

    private static void compare(String what, Map<String, Tensor> reference, Map<String, Tensor> actual) {
        assertEquals(new TreeSet<>(reference.keySet()), new TreeSet<>(actual.keySet()), what + ": tensor names");
        boolean v6 = reference.containsKey("blocks.0.att.time_maa_x");
        double worst = 0;
        for (Map.Entry<String, Tensor> e : reference.entrySet()) {
            String name = e.getKey();
            Tensor ref = e.getValue();
            Tensor got = actual.get(name);
            String where = what + ": " + name;
            if (name.endsWith(".att.x_rwkvag")) {
                assertArrayEquals(new long[] {6, ref.dim(-1)}, got.shape(), where + " shape");
            } else {
                assertArrayEquals(ref.shape(), got.shape(), where + " shape");
            }
            if (ref.type() == WeightType.F16 && got.type() != WeightType.F32) {
                assertEquals(WeightType.F16, got.type(), where + ": untouched FP16 matrices stay FP16");
            }
            float[] x = ref.toFloatArray();
            float[] y = got.toFloatArray();
            if (isExpLogRoundTrip(name, v6)) {
                for (int i = 0; i < x.length; i++) {
                    double diff = Math.abs((double) x[i] - y[i]);
                    worst = Math.max(worst, diff / Math.max(Math.abs(x[i]), 1e-30));
                    if (diff > REL_TOL * Math.abs(x[i]) + ABS_TOL) {
                        fail(where + " element " + i + ": rwkv.cpp " + x[i] + ", read back " + y[i]);
                    }
                }
            } else {
                TensorAsserts.assertBitsEqual(x, y, where);
            }
        }
        System.out.printf(
                "%s: %d tensors match; worst relative error of the exp/log round trips %.3g%n",
                what, reference.size(), worst);
        assertTrue(worst <= REL_TOL);
    }

    /** Tensors whose raw BlinkDL value is a log of the rwkv.cpp value (v4, v5; see rwkvcpp_to_blinkdl.py). */
    private static boolean isExpLogRoundTrip(String name, boolean v6) {
        return !v6 && (name.endsWith(".att.time_decay") || name.endsWith(".att.time_first"));
    }
}
