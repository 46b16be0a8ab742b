package dev.rwkvflink.engine.model;

import dev.rwkvflink.engine.backend.Backend;
import dev.rwkvflink.engine.tensor.WeightType;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;

/**
 * Where a model comes from, named by one string (as the CLI and the Flink operator take it):
 * <ul>
 *   <li>{@code demo}: the built-in byte-level RWKV-7 demo model (random weights, no learned meaning);</li>
 *   <li>{@code random:0.1b[:TYPE]}: random weights of the RWKV-7 0.1B shape, matrices in TYPE (default F32), for
 *       benchmarks;</li>
 *   <li>{@code random:1.5b[:TYPE]}: random weights of the RWKV-7 1.5B shape (drawn uniformly, see
 *       {@link RandomModels#rwkv7Uniform}), for benchmarks;</li>
 *   <li>anything else: a model file (rwkv.cpp .bin, .pth, .safetensors).</li>
 * </ul>
 */
public final class ModelSources {
    public static final String DEMO = "demo";
    private static final String RANDOM_0_1B = "random:0.1b";
    private static final String RANDOM_1_5B = "random:1.5b";

    private ModelSources() {}

    public static RwkvModel open(String source, Backend backend) throws IOException {
        if (source == null || source.equals(DEMO)) {
            return RandomModels.demo(backend);
        }
        if (source.equals(RANDOM_0_1B) || source.startsWith(RANDOM_0_1B + ":")) {
            return RwkvModel.of(
                    RandomModels.rwkv7(RandomModels.Rwkv7Shape.RWKV7_0_1B, 1, matrixType(source, RANDOM_0_1B)),
                    backend);
        }
        if (source.equals(RANDOM_1_5B) || source.startsWith(RANDOM_1_5B + ":")) {
            return RwkvModel.of(
                    RandomModels.rwkv7Uniform(RandomModels.Rwkv7Shape.RWKV7_1_5B, 1, matrixType(source, RANDOM_1_5B)),
                    backend);
        }
        return RwkvModel.load(Path.of(source), backend);
    }

    /** TYPE of {@code random:SHAPE:TYPE} (F32 when absent). */
    private static WeightType matrixType(String source, String prefix) {
        return source.equals(prefix)
                ? WeightType.F32
                : WeightType.valueOf(source.substring(prefix.length() + 1).toUpperCase(Locale.ROOT));
    }
}
