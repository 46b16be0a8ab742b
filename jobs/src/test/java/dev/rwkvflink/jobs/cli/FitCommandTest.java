package dev.rwkvflink.jobs.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.embed.Embedder;
import dev.rwkvflink.engine.embed.EmbeddingStats;
import dev.rwkvflink.engine.embed.LinearHead;
import dev.rwkvflink.engine.embed.Pooling;
import dev.rwkvflink.engine.model.RandomModels;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code fit} on a task the tiny model can tell apart (digits vs. lower-case words) writes a head that classifies. */
class FitCommandTest {
    @TempDir
    Path dir;

    @Test
    void trainsAHeadThatClassifiesHeldOutText() throws Exception {
        Path model = Path.of(
                System.getProperty("rwkv.shared.dir", "../../shared"),
                "reference",
                "rwkv-cpp-tests",
                "tiny-rwkv-7v0-834K-FP32.bin");
        Assumptions.assumeTrue(Files.isRegularFile(model), "reference model absent, skipping: " + model);
        Random rnd = new Random(3);
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < 80; i++) {
            StringBuilder sb = new StringBuilder();
            boolean digits = i % 2 == 0;
            for (int j = 0; j < 12 + rnd.nextInt(20); j++) {
                sb.append(digits ? (char) ('0' + rnd.nextInt(10)) : (char) ('a' + rnd.nextInt(26)));
                if (rnd.nextInt(5) == 0) {
                    sb.append(' ');
                }
            }
            lines.add("{\"text\": \"" + sb + "\", \"label\": \"" + (digits ? "number" : "word") + "\"}");
        }
        Path data = dir.resolve("train.jsonl");
        Files.write(data, lines, StandardCharsets.UTF_8);
        Path head = dir.resolve("head.json");
        Path stats = dir.resolve("stats.json");
        int rc = RwkvFlinkCli.commandLine()
                .execute(
                        "fit",
                        "--model",
                        model.toString(),
                        "--data",
                        data.toString(),
                        "--out",
                        head.toString(),
                        "--stats-out",
                        stats.toString(),
                        "--holdout",
                        "0.25");
        assertEquals(0, rc);

        try (RwkvModel m = RwkvModel.load(model, Backends.defaultBackend())) {
            EmbeddingStats s = EmbeddingStats.load(stats, m.fingerprint(), Pooling.HIDDEN);
            assertEquals(60, s.count(), "statistics come from the training split only");
            LinearHead h = LinearHead.load(head, m.fingerprint(), Pooling.HIDDEN);
            assertEquals(List.of("number", "word"), h.labels());
            Embedder e = new Embedder(m.config(), Pooling.HIDDEN, s);
            int right = 0;
            String[] probes = {"4815 1623 42", "9 8 7 6 5 4 3 2 1", "hello there world", "streams of words"};
            String[] truth = {"number", "number", "word", "word"};
            for (int i = 0; i < probes.length; i++) {
                RwkvState st = m.newState();
                float[] v = e.embed(m.hidden(st, toBytes(probes[i])), st);
                if (h.label(h.probabilities(v)).equals(truth[i])) {
                    right++;
                }
            }
            assertTrue(right >= 3, right + " of 4 unseen probes classified right");
        }
    }

    @Test
    void aBadLineIsAClearErrorWithItsNumber() throws Exception {
        Path data = dir.resolve("bad.jsonl");
        Files.writeString(data, "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": 3}\n");
        var err = new StringWriter();
        var cl = RwkvFlinkCli.commandLine();
        cl.setErr(new PrintWriter(err));
        assertEquals(
                1,
                cl.execute(
                        "fit",
                        "--data",
                        data.toString(),
                        "--out",
                        dir.resolve("h.json").toString()));
        assertTrue(err.toString().contains("line 2"), err.toString());
    }

    @Test
    void exactlyOneOfDataAndTopicWithClearErrors() throws Exception {
        Path data = dir.resolve("d.jsonl");
        Files.writeString(data, "{\"text\": \"a\", \"label\": \"x\"}\n");
        String out = dir.resolve("h.json").toString();
        assertEquals("error: give exactly one of --data FILE and --topic TOPIC", fitError("--out", out));
        assertEquals(
                "error: give exactly one of --data FILE and --topic TOPIC",
                fitError("--data", data.toString(), "--topic", "t", "--out", out));
        assertEquals("error: --topic needs --bootstrap-servers HOST:PORT", fitError("--topic", "t", "--out", out));
        assertEquals(
                "error: --bootstrap-servers and --kafka-property go with --topic, not --data",
                fitError("--data", data.toString(), "--bootstrap-servers", "b:9092", "--out", out));
        assertTrue(fitError(
                        "--topic",
                        "t",
                        "--bootstrap-servers",
                        "127.0.0.1:1",
                        "--kafka-property",
                        "isolation.level=read_uncommitted",
                        "--out",
                        out)
                .startsWith("error: Kafka property isolation.level is set by the job itself"));
        assertTrue(fitError("--topic", "t", "--bootstrap-servers", "127.0.0.1:1", "--format", "json", "--out", out)
                .startsWith("error: --format: unknown record format 'json'"));
        assertTrue(!Files.exists(dir.resolve("h.json")), "nothing written");
    }

    /** {@code n} examples of 8 random letters (seeded), each with its own label (n labels). */
    private Path uniqueLabels(int n, long seed) throws Exception {
        Random rnd = new Random(seed);
        List<String> lines = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            StringBuilder sb = new StringBuilder();
            for (int j = 0; j < 8; j++) {
                sb.append((char) ('a' + rnd.nextInt(26)));
            }
            lines.add("{\"text\": \"" + sb + "\", \"label\": \"L" + i + "\"}");
        }
        Path data = dir.resolve("unique-" + n + ".jsonl");
        Files.write(data, lines, StandardCharsets.UTF_8);
        return data;
    }

    /**
     * 10^5 examples with 10^5 labels: a plan past --max-train-work is refused before anything is embedded, naming
     * its cost and what to change (300 epochs of mini-batches: 7.9e11 multiply-adds on the demo model's 32 wide
     * embeddings); nothing is written.
     */
    @Test
    void aTrainingPlanPastTheWorkLimitIsRefusedBeforeEmbedding() throws Exception {
        Path data = uniqueLabels(100_000, 21);
        String out = dir.resolve("h.json").toString();
        String err = fitError("--data", data.toString(), "--out", out, "--epochs", "300");
        assertEquals(
                "error: " + data + ": training 80000 examples over 100000 labels (dimension 32; mini-batches of "
                        + "256, 256 sampled labels per step, 300 epochs) takes 7.9e+11 multiply-adds, more than "
                        + "--max-train-work 3.0e+11 (about 13 min at 1e9/s): use fewer --epochs, fewer --negatives or a "
                        + "smaller --batch-size, or raise --max-train-work",
                err);
        assertTrue(!Files.exists(Path.of(out)), "nothing written");
        // full batch over all labels is refused the same way, suggesting mini-batches
        String full = fitError("--data", data.toString(), "--out", out, "--batch-size", "0", "--epochs", "1");
        assertTrue(
                full.contains("full batch, 1 epochs) takes 5.1e+11 multiply-adds")
                        && full.contains("mini-batches with sampled labels (--batch-size 256 --negatives 256)"),
                full);
    }

    /**
     * 20,000 examples with 20,000 labels on the default plan (mini-batches with sampled labels, measured at 10^5 x
     * 10^5 in docs/reliability.md): it trains, reports accuracy on a sample, and the head has every label.
     */
    @Test
    void manyExamplesWithManyLabelsTrainOnMiniBatches() throws Exception {
        Path data = uniqueLabels(20_000, 22);
        Path head = dir.resolve("head.json");
        var out = new StringWriter();
        var err = new StringWriter();
        var cl = RwkvFlinkCli.commandLine();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        assertEquals(
                0,
                cl.execute("fit", "--data", data.toString(), "--out", head.toString(), "--holdout", "0.1"),
                err.toString());
        assertTrue(
                err.toString().contains("training: mini-batches of 256, 256 sampled labels per step, 10 epochs"),
                err.toString());
        assertTrue(
                out.toString()
                        .startsWith("labels 20000 [L0, L1, L10, L100, L1000, L10000, L10001, L10002, L10003, "
                                + "L10004, ...]; 18000 training, 2000 held out; training accuracy "),
                out.toString());
        assertTrue(out.toString().contains("(on 10000 of 18000), held-out accuracy 0.000\n"), out.toString());
        try (RwkvModel demo = RandomModels.demo(Backends.defaultBackend())) {
            LinearHead h = LinearHead.load(head, demo.fingerprint(), Pooling.HIDDEN);
            assertEquals(20_000, h.labels().size());
        }
    }

    /** Runs fit expecting exit code 1 and returns its first stderr line. */
    private static String fitError(String... args) {
        var err = new StringWriter();
        var cl = RwkvFlinkCli.commandLine();
        cl.setErr(new PrintWriter(err));
        String[] all = new String[args.length + 1];
        all[0] = "fit";
        System.arraycopy(args, 0, all, 1, args.length);
        assertEquals(1, cl.execute(all), err.toString());
        return err.toString().lines().findFirst().orElse("");
    }

    private static int[] toBytes(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        int[] t = new int[b.length];
        for (int i = 0; i < b.length; i++) {
            t[i] = b[i] & 0xFF;
        }
        return t;
    }
}
