package dev.rwkvflink.jobs.local;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.jobs.cli.RwkvFlinkCli;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** {@code rwkv-flink local} end to end: broker, MiniCluster with web UI, job, two small files, clean stop. */
class LocalCommandITCase {

    @Test
    void embedsTwoFilesAndStops(@TempDir Path dir) throws Exception {
        Path alpha = Files.writeString(dir.resolve("alpha.txt"), "A short first document, déjà vu.");
        Path beta = Files.writeString(dir.resolve("beta.txt"), "The second one is a little longer than the first.");
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        PrintStream original = System.out;
        int exit;
        System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
        try {
            exit = RwkvFlinkCli.commandLine()
                    .execute(
                            "local",
                            "--input",
                            alpha.toString(),
                            beta.toString(),
                            "--ui-port",
                            "0",
                            "--chunk-bytes",
                            "16",
                            "--checkpoint-ms",
                            "200",
                            "--timeout",
                            "120");
        } finally {
            System.setOut(original);
        }
        String out = captured.toString(StandardCharsets.UTF_8);
        original.println(out);
        assertEquals(0, exit, out);
        assertTrue(out.contains("DEMO model"), "warns about the demo model");
        assertTrue(
                Pattern.compile("Flink web UI: http://127\\.0\\.0\\.1:\\d+")
                        .matcher(out)
                        .find(),
                out);
        assertTrue(out.contains("Fed 2 documents as 7 chunks of at most 16 bytes"), out);
        int alphaBytes = Files.readAllBytes(alpha).length;
        int betaBytes = Files.readAllBytes(beta).length;
        assertTrue(
                Pattern.compile("alpha\\.txt\\s+LAST\\s+tokens\\s+" + alphaBytes + "\\s+dim 32 \\[")
                        .matcher(out)
                        .find(),
                "byte model: one token per byte\n" + out);
        assertTrue(
                Pattern.compile("beta\\.txt\\s+LAST\\s+tokens\\s+" + betaBytes + "\\s")
                        .matcher(out)
                        .find(),
                out);
        assertTrue(out.contains("Done: 2/2 documents embedded"), out);
        assertTrue(out.contains("Stopping Flink and Kafka..."), out);
    }

    /**
     * The checkable run: a directory of documents, chunks shuffled with 10% duplicates, {@code --until-done}
     * prints exactly the JSON lines that {@code embed} prints for each whole file; with {@code --hot-state-bytes 0},
     * so that every key's state goes to Flink state after each batch and is read back for the next. In each record
     * format; with {@code confluent}, {@code local} starts a schema registry (a real one, in a child JVM) and every
     * chunk and embedding goes through it.
     */
    @ParameterizedTest
    @ValueSource(strings = {"single-object", "confluent"})
    void untilDonePrintsExactlyWhatEmbedPrints(String format, @TempDir Path dir) throws Exception {
        Path docs = Files.createDirectory(dir.resolve("docs"));
        Files.writeString(docs.resolve("one.txt"), "Streams of text become embeddings, chunk by chunk.");
        Files.writeString(docs.resolve("two.txt"), "Ünïcödé, 状態 and emoji 🙂 split across chunks of eight bytes.");
        String local = stdout(() -> RwkvFlinkCli.commandLine()
                .execute(
                        "local",
                        "--input",
                        docs.toString(),
                        "--shuffle-chunks",
                        "--duplicates",
                        "0.1",
                        "--until-done",
                        "--ui-port",
                        "0",
                        "--chunk-bytes",
                        "8",
                        "--checkpoint-ms",
                        "200",
                        "--timeout",
                        "120",
                        "--hot-state-bytes",
                        "0",
                        "--format",
                        format));
        String embed = stdout(() -> {
            RwkvFlinkCli.commandLine()
                    .execute("embed", "--text-file", docs.resolve("one.txt").toString());
            RwkvFlinkCli.commandLine()
                    .execute("embed", "--text-file", docs.resolve("two.txt").toString());
        });
        // the test logging configuration writes log lines to stdout too; the CLI's own writes them to stderr
        String json = jsonLines(local);
        assertTrue(json.startsWith("{\"key\":\"one.txt\""), local);
        assertEquals(2, json.lines().count(), local);
        assertEquals(jsonLines(embed), json);
        assertEquals(format.equals("confluent"), local.contains("schema registry at http://127.0.0.1:"), local);
    }

    private static String jsonLines(String out) {
        return out.lines().filter(l -> l.startsWith("{")).collect(Collectors.joining("\n"));
    }

    /** What {@code r} prints, standard output and error together (the JSON lines are told apart by their brace). */
    private static String stdout(Runnable r) {
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        PrintStream original = System.out;
        PrintStream originalErr = System.err;
        PrintStream both = new PrintStream(captured, true, StandardCharsets.UTF_8);
        System.setOut(both);
        System.setErr(both);
        try {
            r.run();
        } finally {
            System.setOut(original);
            System.setErr(originalErr);
        }
        return captured.toString(StandardCharsets.UTF_8);
    }
}
