package dev.rwkvflink.jobs.cli;

import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.model.Sampler;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tokenizer.Tokenizer;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** Continues a prompt by sampling: a sanity check that a model and its vocabulary load and make sense. */
@Command(name = "generate", mixinStandardHelpOptions = true, description = "Continue a prompt (sanity tool).")
final class GenerateCommand implements Callable<Integer> {
    @Mixin
    ModelOptions model;

    @Option(names = "--prompt", required = true, paramLabel = "TEXT")
    String prompt;

    @Option(names = "--temp", defaultValue = "1.0", description = "Temperature. Default: ${DEFAULT-VALUE}.")
    float temperature;

    @Option(names = "--top-p", defaultValue = "0.85", description = "Nucleus sampling mass. Default: ${DEFAULT-VALUE}.")
    float topP;

    @Option(names = "--tokens", defaultValue = "100", description = "Tokens to generate. Default: ${DEFAULT-VALUE}.")
    int count;

    @Option(names = "--seed", defaultValue = "42", description = "Random seed. Default: ${DEFAULT-VALUE}.")
    long seed;

    @Override
    public Integer call() throws Exception {
        if (!(temperature >= 0) || Float.isInfinite(temperature)) { // NaN fails too
            throw new IllegalArgumentException("--temp must be a finite number >= 0, got " + temperature);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("--top-p must be in (0, 1], got " + topP);
        }
        if (count < 0) {
            throw new IllegalArgumentException("--tokens must be >= 0, got " + count);
        }
        try (RwkvModel m = model.load()) {
            Tokenizer tok = model.tokenizer(m);
            int[] ids = tok.encode(prompt);
            if (ids.length == 0) {
                throw new IllegalArgumentException("the prompt has no tokens");
            }
            RwkvState state = m.newState();
            float[] logits = m.forward(state, ids);
            Sampler sampler = new Sampler(temperature, topP, seed);
            PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
            out.print(prompt);
            ByteArrayOutputStream pending = new ByteArrayOutputStream();
            long start = System.nanoTime();
            int made = 0;
            for (; made < count; made++) {
                int next = sampler.sample(logits);
                if (next == 0) {
                    break; // end of text
                }
                pending.writeBytes(tok.decodeBytes(new int[] {next}));
                out.print(flushComplete(pending));
                logits = m.forward(state, new int[] {next});
            }
            out.print(pending.toString(StandardCharsets.UTF_8));
            out.println();
            double s = (System.nanoTime() - start) / 1e9;
            System.err.printf(
                    "%d tokens in %.2f s (%.1f tokens/s, %s backend)%n",
                    made, s, made / s, m.backend().name());
            return 0;
        }
    }

    /** Emits the longest prefix of complete UTF-8 characters, keeping a split multi-byte character for later. */
    private static String flushComplete(ByteArrayOutputStream pending) {
        byte[] b = pending.toByteArray();
        int end = b.length;
        int back = 0;
        while (back < Math.min(3, b.length) && (b[b.length - 1 - back] & 0xC0) == 0x80) {
            back++;
        }
        if (back < b.length) {
            int lead = b[b.length - 1 - back] & 0xFF;
            int need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
            if (need > back) {
                end = b.length - 1 - back;
            }
        }
        pending.reset();
        pending.write(b, end, b.length - end);
        return new String(b, 0, end, StandardCharsets.UTF_8);
    }
}
