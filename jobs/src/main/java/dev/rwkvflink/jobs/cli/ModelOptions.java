package dev.rwkvflink.jobs.cli;

import dev.rwkvflink.engine.backend.Backend;
import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.tokenizer.Tokenizer;
import dev.rwkvflink.engine.tokenizer.Tokenizers;
import java.io.IOException;
import java.nio.file.Path;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** Options shared by commands that load a model: the file, an optional vocabulary, the backend. */
final class ModelOptions {
    @Option(
            names = "--model",
            required = true,
            paramLabel = "FILE",
            description =
                    "Model file: rwkv.cpp .bin, BlinkDL .pth or .safetensors (format read from the file's bytes).")
    Path model;

    @Option(
            names = "--vocab",
            paramLabel = "FILE",
            description = "Vocabulary: rwkv_vocab_v20230424.txt (World) or 20B_tokenizer.json (v4 Pile). "
                    + "Not needed for 256-token byte-level models.")
    Path vocab;

    @Mixin
    BackendOption backend = new BackendOption();

    Backend backend() {
        return Backends.byName(backend.name);
    }

    RwkvModel load() throws IOException {
        return RwkvModel.load(model, backend());
    }

    Tokenizer tokenizer(RwkvModel m) throws IOException {
        return Tokenizers.forModel(m.config().vocab(), vocab);
    }
}
