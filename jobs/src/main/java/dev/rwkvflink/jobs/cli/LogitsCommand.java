package dev.rwkvflink.jobs.cli;

import dev.rwkvflink.engine.model.RwkvModel;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** Writes the logits after the last token as raw little-endian float32, one per vocabulary entry. */
@Command(
        name = "logits",
        mixinStandardHelpOptions = true,
        description = "Run a prompt from the initial state and write the logits after its last token (raw LE float32).")
final class LogitsCommand implements Callable<Integer> {
    @Mixin
    ModelOptions model;

    @ArgGroup(exclusive = true, multiplicity = "1")
    Input input;

    static final class Input {
        @Option(names = "--tokens", split = ",", paramLabel = "IDS", description = "Token ids, comma-separated.")
        int[] tokens;

        @Option(names = "--text", paramLabel = "TEXT", description = "Text, tokenized with --vocab (or bytes).")
        String text;
    }

    @Option(
            names = "--mode",
            defaultValue = "seq",
            paramLabel = "rnn|seq",
            description = "rnn: one token per step; seq: the whole prompt in one pass. Default: ${DEFAULT-VALUE}.")
    String mode;

    @Option(names = "--out", required = true, paramLabel = "FILE", description = "Where to write the logits.")
    Path out;

    /**
     * A warning line when some logits are NaN or infinite (a broken model or weights that overflow: the file is
     * still written, as computed, but nobody should read it as a distribution), else null.
     */
    static String nonFiniteWarning(float[] logits) {
        int nan = 0;
        int inf = 0;
        int first = -1;
        for (int i = 0; i < logits.length; i++) {
            if (Float.isNaN(logits[i])) {
                nan++;
            } else if (Float.isInfinite(logits[i])) {
                inf++;
            } else {
                continue;
            }
            if (first < 0) {
                first = i;
            }
        }
        return nan + inf == 0
                ? null
                : String.format(
                        "warning: %d of %d logits are not finite (%d NaN, %d infinite; "
                                + "the first at index %d): the model's weights or its arithmetic overflowed",
                        nan + inf, logits.length, nan, inf, first);
    }

    @Override
    public Integer call() throws Exception {
        try (RwkvModel m = model.load()) {
            int[] tokens =
                    input.tokens != null ? input.tokens : model.tokenizer(m).encode(input.text);
            if (tokens.length == 0) {
                throw new IllegalArgumentException("the prompt has no tokens");
            }
            float[] logits = switch (mode) {
                case "rnn" -> m.forwardRnn(m.newState(), tokens);
                case "seq" -> m.forward(m.newState(), tokens);
                default -> throw new IllegalArgumentException("--mode must be rnn or seq, not " + mode);
            };
            ByteBuffer b = ByteBuffer.allocate(4 * logits.length).order(ByteOrder.LITTLE_ENDIAN);
            b.asFloatBuffer().put(logits);
            Files.write(out, b.array());
            int argmax = 0;
            for (int i = 1; i < logits.length; i++) {
                if (logits[i] > logits[argmax]) {
                    argmax = i;
                }
            }
            System.err.printf(
                    "%d tokens %s, %s mode, %s backend: wrote %d logits to %s (argmax %d)%n",
                    tokens.length,
                    tokens.length <= 16 ? Arrays.toString(tokens) : "",
                    mode,
                    m.backend().name(),
                    logits.length,
                    out,
                    argmax);
            String warning = nonFiniteWarning(logits);
            if (warning != null) {
                System.err.println(warning);
            }
            return 0;
        }
    }
}
