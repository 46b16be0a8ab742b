package dev.rwkvflink.engine.testing;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;

/** Locates the reference data in {@code ../shared/reference} (system property {@code rwkv.shared.dir}). */
public final class SharedData {
    private SharedData() {}

    public static Path sharedDir() {
        return Path.of(System.getProperty("rwkv.shared.dir", "../shared"));
    }

    /** A file under {@code shared/reference}; the calling test is skipped (with the reason) if it is absent. */
    public static Path reference(String relative) {
        Path p = sharedDir().resolve("reference").resolve(relative);
        Assumptions.assumeTrue(Files.isRegularFile(p), "reference file absent, skipping: " + p);
        return p;
    }

    /** A tiny rwkv.cpp test model, e.g. {@code tinyModel("7v0-834K", "FP32")}. */
    public static Path tinyModel(String model, String format) {
        return reference("rwkv-cpp-tests/tiny-rwkv-" + model + "-" + format + ".bin");
    }

    /** The FP32 model's logits after the prompt {@code "in} that rwkv.cpp's tests compare against. */
    public static float[] expectedLogits(String model) throws IOException {
        byte[] b = Files.readAllBytes(reference("rwkv-cpp-tests/expected-logits-" + model + ".bin"));
        float[] out = new float[b.length / 4];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
        return out;
    }

    /** The prompt {@code "in} as byte tokens. */
    public static final int[] PROMPT = {34, 105, 110};
}
