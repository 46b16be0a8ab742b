package dev.rwkvflink.jobs.cli;

import dev.rwkvflink.engine.tokenizer.Tokenizers;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** Prints the token ids of a text, comma-separated. */
@Command(
        name = "tokenize",
        mixinStandardHelpOptions = true,
        description = "Print the token ids of a text, comma-separated.")
final class TokenizeCommand implements Callable<Integer> {
    @Option(
            names = "--vocab",
            required = true,
            paramLabel = "FILE",
            description = "rwkv_vocab_v20230424.txt (World) or 20B_tokenizer.json (GPT-NeoX).")
    Path vocab;

    @Option(names = "--text", required = true, paramLabel = "TEXT")
    String text;

    @Override
    public Integer call() throws Exception {
        int[] ids = Tokenizers.load(vocab).encode(text);
        System.out.println(Arrays.stream(ids).mapToObj(Integer::toString).collect(Collectors.joining(",")));
        return 0;
    }
}
