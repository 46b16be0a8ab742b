package dev.rwkvflink.jobs.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.cuda.Cuda;
import dev.rwkvflink.engine.format.RwkvCppWriter;
import dev.rwkvflink.engine.format.WeightFile;
import dev.rwkvflink.engine.model.RandomModels;
import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import dev.rwkvflink.engine.tokenizer.Tokenizers;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The commands the issue names, run as a user runs them (through picocli), checked against rwkv.cpp's outputs. */
class RwkvFlinkCliTest {
    @TempDir
    Path tmp;

    private static Path reference(String relative) {
        Path p = Path.of(System.getProperty("rwkv.shared.dir", "../../shared"), "reference", relative);
        Assumptions.assumeTrue(Files.isRegularFile(p), "reference data absent, skipping: " + p);
        return p;
    }

    private static float[] floats(Path p) throws Exception {
        byte[] b = Files.readAllBytes(p);
        float[] f = new float[b.length / 4];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(f);
        return f;
    }

    @ParameterizedTest(name = "{0} {1} --mode {2} --backend {3}")
    @CsvSource({
        "7v0-834K, FP32, rnn, cpu",
        "7v0-834K, FP32, seq, scalar",
        "5v2-730K, FP32, seq, cpu",
        "4v0-660K, FP32, rnn, scalar"
    })
    void logitsWritesRawFloatsMatchingRwkvCpp(String model, String format, String mode, String backend)
            throws Exception {
        Path file = reference("rwkv-cpp-tests/tiny-rwkv-" + model + "-" + format + ".bin");
        float[] expected = floats(reference("rwkv-cpp-tests/expected-logits-" + model + ".bin"));
        Path out = tmp.resolve("logits.bin");
        int rc = RwkvFlinkCli.commandLine()
                .execute(
                        "logits",
                        "--model",
                        file.toString(),
                        "--tokens",
                        "34,105,110",
                        "--mode",
                        mode,
                        "--backend",
                        backend,
                        "--out",
                        out.toString());
        assertEquals(0, rc);
        float[] got = floats(out);
        assertEquals(256, got.length);
        for (int i = 0; i < got.length; i++) {
            assertEquals(expected[i], got[i], 1e-4, "logit " + i);
        }
    }

    @Test
    void logitsFromTextOfAByteLevelModelNeedsNoVocab() throws Exception {
        Path file = reference("rwkv-cpp-tests/tiny-rwkv-7v0-834K-FP32.bin");
        Path viaText = tmp.resolve("text.bin");
        Path viaIds = tmp.resolve("ids.bin");
        assertEquals(
                0,
                RwkvFlinkCli.commandLine()
                        .execute("logits", "--model", file.toString(), "--text", "\"in", "--out", viaText.toString()));
        assertEquals(
                0,
                RwkvFlinkCli.commandLine()
                        .execute(
                                "logits",
                                "--model",
                                file.toString(),
                                "--tokens",
                                "34,105,110",
                                "--out",
                                viaIds.toString()));
        assertEquals(ByteBuffer.wrap(Files.readAllBytes(viaIds)), ByteBuffer.wrap(Files.readAllBytes(viaText)));
    }

    @Test
    void tokenizePrintsWorldIds() throws Exception {
        Path vocab = reference("rwkv_vocab_v20230424.txt");
        String out = stdout(() -> RwkvFlinkCli.commandLine()
                .execute("tokenize", "--vocab", vocab.toString(), "--text", "\nElon Musk has"));
        assertEquals("11,994,2098,29435,21800", out.strip());
    }

    @Test
    void infoDescribesTheModel() throws Exception {
        Path file = reference("rwkv-cpp-tests/tiny-rwkv-6v0-3m-Q5_1.bin");
        String out = stdout(() -> RwkvFlinkCli.commandLine().execute("info", "--model", file.toString()));
        assertTrue(
                out.contains("RWKV 6.0")
                        && out.contains("16 x 8")
                        && out.contains("Q5_1")
                        && out.contains("state bytes:   61440"),
                out);
    }

    @Test
    void aMissingModelIsAClearErrorNotAStackTrace() {
        StringWriter err = new StringWriter();
        var cl = RwkvFlinkCli.commandLine();
        cl.setErr(new PrintWriter(err));
        int rc = cl.execute(
                "logits",
                "--model",
                tmp.resolve("nope.bin").toString(),
                "--tokens",
                "1",
                "--out",
                tmp.resolve("x").toString());
        assertEquals(1, rc);
        assertTrue(err.toString().startsWith("error: ") && err.toString().contains("nope.bin"), err.toString());
    }

    @Test
    void generateContinuesAPrompt() throws Exception {
        Path file = reference("rwkv-cpp-tests/tiny-rwkv-7v0-834K-FP32.bin");
        String out = stdout(() -> RwkvFlinkCli.commandLine()
                .execute(
                        "generate", "--model", file.toString(), "--prompt", "In the", "--tokens", "20", "--temp", "0"));
        assertTrue(out.startsWith("In the") && out.strip().length() > "In the".length(), out);
    }

    @Test
    void benchReportsEveryMode() throws Exception {
        Path file = reference("rwkv-cpp-tests/tiny-rwkv-7v0-834K-FP32.bin");
        int[] rc = new int[1];
        String out = stdout(() -> rc[0] = RwkvFlinkCli.commandLine()
                .execute(
                        "bench",
                        "--model",
                        file.toString(),
                        "--modes",
                        "decode,head,memory,seq8,seq8/3,streams4x3/2",
                        "--decode-tokens",
                        "2",
                        "--reps",
                        "1",
                        "--warmup",
                        "0",
                        "--warmup-seconds",
                        "0.2"));
        assertEquals(0, rc[0], out);
        for (String mode : new String[] {"| decode |", "| head |", "| seq8 |", "| seq8/3 |", "| streams4x3/2 |"}) {
            assertTrue(out.contains(mode), mode + " missing from:\n" + out);
        }
        // the tiny model's head: 256 x 64 fp32 = 65,536 bytes per product
        assertTrue(out.contains("head: 256 x 64 F32, 0.1 MB read per product: "), out);
        assertTrue(
                out.contains("| memory |") && out.contains("memory: 512 MiB read with the backend's threads: "), out);
        assertTrue(
                RwkvFlinkCli.commandLine().execute("bench", "--model", file.toString(), "--modes", "sequence") != 0,
                "an unknown mode fails");
    }

    @Test
    void benchOnCudaWithoutCudaExitsWithStatus2() {
        Assumptions.assumeFalse(Cuda.availability().available(), "CUDA is available here");
        assertEquals(
                2, RwkvFlinkCli.commandLine().execute("bench", "--backend", "cuda", "--shapes", "0.1b", "--reps", "1"));
    }

    /** Hostile command lines (issue 18): free text is never a file name, bad numbers are refused by name. */
    @Test
    void atSignTextIsTextNotAFileToRead() throws Exception {
        Path vocab = reference("rwkv_vocab_v20230424.txt");
        Path secret = Files.writeString(tmp.resolve("notes.txt"), "the secret content");
        String out = stdout(() ->
                RwkvFlinkCli.commandLine().execute("tokenize", "--vocab", vocab.toString(), "--text", "@" + secret));
        int[] literal = Tokenizers.load(vocab).encode("@" + secret);
        assertEquals(Arrays.stream(literal).mapToObj(Integer::toString).collect(Collectors.joining(",")), out.strip());
    }

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({
        "--lr, NaN, --lr must be a finite number > 0",
        "--lr, Infinity, --lr must be a finite number > 0",
        "--lr, 0, --lr must be a finite number > 0",
        "--l2, NaN, --l2 must be a finite number >= 0",
        "--l2, -1, --l2 must be a finite number >= 0",
        "--holdout, NaN, --holdout must be in [0, 1)",
        "--epochs, 0, --epochs must be >= 1"
    })
    void fitRefusesNonFiniteOrOutOfRangeNumbersNamingTheOption(String option, String value, String message) {
        StringWriter err = new StringWriter();
        var cl = RwkvFlinkCli.commandLine();
        cl.setErr(new PrintWriter(err));
        int rc = RwkvFlinkCli.run(
                cl,
                "fit",
                "--data",
                tmp.resolve("absent.jsonl").toString(),
                "--out",
                tmp.resolve("head.json").toString(),
                option,
                value);
        assertEquals(1, rc);
        assertTrue(err.toString().startsWith("error: " + message), err.toString());
        assertTrue(!Files.exists(tmp.resolve("head.json")), "no head written");
    }

    /**
     * A backend, pooling or format name that does not exist, or a model, vocabulary, head or statistics file that
     * is not there, stops {@code local} before Kafka and Flink start (within seconds), naming the option and the
     * allowed values: a typo must not reach a TaskManager.
     */
    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({
        "--backend, nonsense, '--backend: unknown backend \"nonsense\"; known: cpu, scalar, vector, cuda, cuda:bf16, cuda:f32'",
        "--pooling, mean, '--pooling: unknown pooling \"mean\": '",
        "--format, json, '--format: unknown record format ''json'': expected one of binary, single-object, confluent'",
        "--model, /nonexistent/model.bin, '--model: no such file: /nonexistent/model.bin'",
        "--vocab, /nonexistent/vocab.txt, '--vocab: no such file: /nonexistent/vocab.txt'"
    })
    void localRefusesUnknownNamesBeforeStartingAnything(String option, String value, String message) throws Exception {
        StringWriter err = new StringWriter();
        var cl = RwkvFlinkCli.commandLine();
        cl.setErr(new PrintWriter(err));
        int[] rc = new int[1];
        String out = stdout(() -> rc[0] = RwkvFlinkCli.run(cl, "local", option, value));
        assertEquals(1, rc[0]);
        assertTrue(err.toString().startsWith("error: " + message), err.toString());
        assertEquals("", out, "nothing started: no demo-model notice, no broker or cluster lines");
    }

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({
        "--temp, NaN, --temp must be a finite number >= 0",
        "--temp, -1, --temp must be a finite number >= 0",
        "--top-p, 0, --top-p must be in (0, 1]",
        "--top-p, NaN, --top-p must be in (0, 1]",
        "--tokens, -5, --tokens must be >= 0"
    })
    void generateRefusesBadSamplingNumbers(String option, String value, String message) {
        Path file = reference("rwkv-cpp-tests/tiny-rwkv-7v0-834K-FP32.bin");
        StringWriter err = new StringWriter();
        var cl = RwkvFlinkCli.commandLine();
        cl.setErr(new PrintWriter(err));
        assertEquals(
                1, RwkvFlinkCli.run(cl, "generate", "--model", file.toString(), "--prompt", "In the", option, value));
        assertTrue(err.toString().startsWith("error: " + message), err.toString());
    }

    /** An Error (here the OutOfMemoryError a huge input causes) is one line naming its type, never a stack trace. */
    @Test
    void anErrorIsReportedInOneLine() {
        StringWriter err = new StringWriter();
        RwkvFlinkCli.report(new PrintWriter(err), new OutOfMemoryError("Java heap space"));
        assertEquals(
                "error: OutOfMemoryError: Java heap space (the input or model needs more memory than -Xmx " + "allows)",
                err.toString().strip());
        StringWriter err2 = new StringWriter();
        RwkvFlinkCli.report(new PrintWriter(err2), new StackOverflowError());
        assertEquals(1, err2.toString().strip().lines().count(), err2.toString());
        assertTrue(err2.toString().startsWith("error: StackOverflowError"), err2.toString());
    }

    /** Logits that are not finite are still written, with a warning that says how many and where (issue 18). */
    @Test
    void logitsWarnsWhenItWritesNaN() throws Exception {
        var shape = new RandomModels.Rwkv7Shape(2, 64, 32, 256, 128, 8, 8, 8, 8);
        var original = RandomModels.rwkv7(shape, 11, WeightType.F32);
        var tensors = new LinkedHashMap<>(original.tensors());
        var head = tensors.get("head.weight");
        float[] w = head.toFloatArray();
        w[3 * 64 + 5] = Float.NaN; // one weight of row 3: logit 3 becomes NaN
        tensors.put("head.weight", Tensor.ofFloats("head.weight", w, head.shape()));
        Path file = tmp.resolve("nan-head.bin");
        RwkvCppWriter.write(new WeightFile(file, "test", WeightFile.Origin.RWKV_CPP, tensors, Arena.ofAuto()), file);
        Path out = tmp.resolve("logits.bin");
        PrintStream old = System.err;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setErr(new PrintStream(buf, true, StandardCharsets.UTF_8));
        int rc;
        try {
            rc = RwkvFlinkCli.commandLine()
                    .execute("logits", "--model", file.toString(), "--tokens", "1,2", "--out", out.toString());
        } finally {
            System.setErr(old);
        }
        assertEquals(0, rc);
        assertTrue(Float.isNaN(floats(out)[3]), "logit 3 is NaN as computed");
        String err = buf.toString(StandardCharsets.UTF_8);
        assertTrue(
                err.contains("warning: 1 of 256 logits are not finite (1 NaN, 0 infinite; the first at index 3)"), err);
    }

    /** An output in a folder that does not exist is named as such, not as a bare path (NIO's message). */
    @Test
    void aMissingOutputDirectoryIsNamedAsSuch() throws Exception {
        Path missing = tmp.resolve("no-such-dir");
        Path model = Path.of(
                System.getProperty("rwkv.shared.dir", "../../shared"),
                "reference",
                "rwkv-cpp-tests",
                "tiny-rwkv-7v0-834K-FP32.bin");
        Assumptions.assumeTrue(Files.isRegularFile(model), "reference model absent: " + model);
        StringWriter err = new StringWriter();
        var cl = RwkvFlinkCli.commandLine();
        cl.setErr(new PrintWriter(err));
        int rc = RwkvFlinkCli.run(
                cl,
                "logits",
                "--model",
                model.toString(),
                "--tokens",
                "3",
                "--out",
                missing.resolve("l.bin").toString());
        assertEquals(1, rc, err.toString());
        assertEquals(
                "error: " + missing.resolve("l.bin") + ": no such directory " + missing + " (create it first)",
                err.toString().strip());
    }

    /** File options are files: /dev/zero (endless), a directory or a FIFO is one line, never an OOM or a hang. */
    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"embed, --text-file", "fit, --data"})
    void endlessOrNonFileInputsAreRefusedByName(String command, String option) throws Exception {
        Path zero = Path.of("/dev/zero");
        Assumptions.assumeTrue(Files.exists(zero), "no /dev/zero");
        for (Path input : new Path[] {zero, tmp}) {
            StringWriter err = new StringWriter();
            var cl = RwkvFlinkCli.commandLine();
            cl.setErr(new PrintWriter(err));
            int rc = Assertions.assertTimeoutPreemptively(
                    Duration.ofSeconds(60),
                    () -> command.equals("fit")
                            ? RwkvFlinkCli.run(
                                    cl,
                                    command,
                                    option,
                                    input.toString(),
                                    "--out",
                                    tmp.resolve("out.json").toString())
                            : RwkvFlinkCli.run(cl, command, option, input.toString()));
            assertEquals(1, rc, err.toString());
            assertTrue(
                    err.toString()
                            .startsWith("error: " + input + ": not a regular file (" + option + " must be a file"),
                    err.toString());
        }
    }

    /**
     * Under a non-UTF-8 locale the JVM turns non-ASCII argument bytes into U+FFFD (checked: LANG=C, "é" arrives as
     * two U+FFFD); such a command line is refused naming the fix, never embedded as replacement characters.
     */
    @Test
    void argumentsMangledByANonUtf8LocaleAreRefused() {
        assertEquals(null, RwkvFlinkCli.lostArguments("UTF-8", "caf\u00e9", "\uFFFD"));
        assertEquals(null, RwkvFlinkCli.lostArguments("ANSI_X3.4-1968", "--text", "plain ascii"));
        String why = RwkvFlinkCli.lostArguments("ANSI_X3.4-1968", "--text", "caf\uFFFD\uFFFD");
        assertTrue(
                why != null
                        && why.contains("decoded as ANSI_X3.4-1968")
                        && why.contains("'caf??'")
                        && why.contains("LC_ALL=C.UTF-8"),
                why);
    }

    private static String stdout(Runnable r) {
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
        try {
            r.run();
        } finally {
            System.setOut(old);
        }
        return buf.toString(StandardCharsets.UTF_8);
    }
}
