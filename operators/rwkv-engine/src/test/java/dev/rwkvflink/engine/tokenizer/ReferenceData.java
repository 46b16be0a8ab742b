package dev.rwkvflink.engine.tokenizer;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;

/** Locates the read-only reference files in {@code ${rwkv.shared.dir}/reference}; tests skip when absent. */
final class ReferenceData {

    static final String WORLD_VOCAB = "rwkv_vocab_v20230424.txt";
    static final String NEOX_TOKENIZER = "20B_tokenizer.json";

    private ReferenceData() {}

    /** The reference file, or a skipped test (not a failure) when it is not there. */
    static Path require(String name) {
        // Surefire passes rwkv.shared.dir; the fallback is the same place seen from the module directory.
        Path dir = Path.of(System.getProperty("rwkv.shared.dir", "../../../shared"), "reference");
        Path file = dir.resolve(name);
        Assumptions.assumeTrue(Files.isRegularFile(file), "reference file " + file + " is absent");
        return file;
    }
}
