package dev.rwkvflink.jobs.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.rwkvflink.cuda.Cuda;
import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.embed.Embedder;
import dev.rwkvflink.engine.embed.EmbeddingStats;
import dev.rwkvflink.engine.embed.Pooling;
import dev.rwkvflink.engine.format.RwkvCppWriter;
import dev.rwkvflink.engine.model.RandomModels;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tensor.WeightType;
import dev.rwkvflink.engine.tokenizer.ByteTokenizer;
import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code rwkv-flink embed}, run through picocli as a user runs it, checked against the engine run in the test. */
class EmbedCommandTest {

    @TempDir
    Path tmp;

    private static final String TEXT = "Streams of text arrive chunk by chunk; the state remembers them all. "
            + "Ünïcödé, 以下は, emoji 😊 and a \"quote\".\n";

    /** stdout, stderr and the exit code of one command line. */
    private record Run(int rc, String out, String err) {}

    private static Run run(String... args) {
        PrintStream oldOut = System.out;
        PrintStream oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        StringWriter picocliErr = new StringWriter();
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        try {
            var cl = RwkvFlinkCli.commandLine();
            cl.setErr(new PrintWriter(picocliErr, true));
            int rc = cl.execute(args);
            return new Run(rc, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8) + picocliErr);
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    private static Path reference(String relative) {
        Path p = Path.of(System.getProperty("rwkv.shared.dir", "../../shared"), "reference", relative);
        Assumptions.assumeTrue(Files.isRegularFile(p), "reference data absent, skipping: " + p);
        return p;
    }

    /** What the command should print: the engine run on the file's bytes (byte-level model), embedded. */
    private static float[] expectedEmbedding(RwkvModel model, byte[] text, Embedder embedder) {
        int[] tokens = new int[text.length];
        for (int i = 0; i < text.length; i++) {
            tokens[i] = text[i] & 0xFF;
        }
        RwkvState state = model.newState();
        float[] hidden = model.hidden(state, tokens);
        return embedder.embed(hidden, state);
    }

    /** Checks the JSON line: key, dim, and every float written as Float.toString and equal bit for bit. */
    private static void assertJsonLine(String line, String key, float[] expected) throws Exception {
        assertEquals(1, line.strip().lines().count(), "one line: " + line);
        JsonNode json = new ObjectMapper().readTree(line);
        assertEquals(key, json.get("key").asText());
        assertEquals(expected.length, json.get("dim").asInt());
        JsonNode vector = json.get("vector");
        assertEquals(expected.length, vector.size());
        String numbers = line.substring(line.indexOf('[') + 1, line.lastIndexOf(']'));
        String[] texts = numbers.split(",");
        assertEquals(expected.length, texts.length);
        double norm = 0;
        for (int i = 0; i < expected.length; i++) {
            assertEquals(Float.toString(expected[i]), texts[i], "float " + i + " printed by Float.toString");
            float parsed = Float.parseFloat(texts[i]);
            assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(parsed), "float " + i);
            assertEquals(expected[i], (float) vector.get(i).asDouble(), "a JSON reader gets the same float");
            norm += (double) parsed * parsed;
        }
        assertEquals(1.0, Math.sqrt(norm), 1e-5, "unit length");
    }

    @Test
    void embedsWithTheDemoModelAndSaysItHasNoMeaning() throws Exception {
        Path file = tmp.resolve("doc.txt");
        byte[] text = TEXT.getBytes(StandardCharsets.UTF_8);
        Files.write(file, text);
        Run r = run("embed", "--text-file", file.toString(), "--backend", "scalar");
        assertEquals(0, r.rc(), r.err());
        try (RwkvModel demo = RandomModels.demo(Backends.byName("scalar"))) {
            float[] expected = expectedEmbedding(demo, text, new Embedder(demo.config(), Pooling.HIDDEN, null));
            assertEquals(32, expected.length);
            assertJsonLine(r.out(), "doc.txt", expected);
        }
        assertTrue(r.err().contains("DEMO model") && r.err().contains("NO LEARNED MEANING"), r.err());
        assertTrue(r.err().contains("embedded " + text.length + " bytes (" + text.length + " tokens)"), r.err());
    }

    /** The default backend (cpu = vector) and another pooling; the vector backend is deterministic, too. */
    @Test
    void embedsWithTheDefaultBackendAndStatePooling() throws Exception {
        Path file = tmp.resolve("doc.txt");
        byte[] text = TEXT.repeat(5).getBytes(StandardCharsets.UTF_8);
        Files.write(file, text);
        Run r = run("embed", "--text-file", file.toString(), "--pooling", "both:0,3");
        assertEquals(0, r.rc(), r.err());
        try (RwkvModel demo = RandomModels.demo(Backends.defaultBackend())) {
            Embedder embedder = new Embedder(demo.config(), Pooling.parse("both:0,3"), null);
            assertEquals(32 + 2 * 32 * 32, embedder.dimension());
            assertJsonLine(r.out(), "doc.txt", expectedEmbedding(demo, text, embedder));
        }
    }

    /**
     * A file read in pieces (1, 5 and 64 Ki bytes: pieces end inside multi-byte characters and inside World tokens)
     * embeds to the bits of one engine call over the whole text, on the byte-level demo model and on a World model.
     */
    @Test
    void aTextReadInPiecesEmbedsToTheBitsOfOneCall() throws Exception {
        Path file = tmp.resolve("pieces.txt");
        byte[] text = TEXT.repeat(7).getBytes(StandardCharsets.UTF_8);
        Files.write(file, text);
        try (RwkvModel demo = RandomModels.demo(Backends.defaultBackend())) {
            float[] expected = expectedEmbedding(demo, text, new Embedder(demo.config(), Pooling.HIDDEN, null));
            for (String piece : new String[] {"1", "5", "65536"}) {
                Run r = run("embed", "--text-file", file.toString(), "--read-bytes", piece, "--no-progress");
                assertEquals(0, r.rc(), r.err());
                assertJsonLine(r.out(), "pieces.txt", expected);
            }
        }
        Path vocab = reference("rwkv_vocab_v20230424.txt");
        // a small random model over the World vocabulary (65,536 tokens), written as an rwkv.cpp file
        Path model = tmp.resolve("world-random.bin");
        try (var weights =
                RandomModels.rwkv7(new RandomModels.Rwkv7Shape(2, 32, 32, 65536, 64, 8, 8, 8, 8), 11, WeightType.F32)) {
            RwkvCppWriter.write(weights, model);
        }
        String whole = run(
                        "embed",
                        "--text-file",
                        file.toString(),
                        "--model",
                        model.toString(),
                        "--vocab",
                        vocab.toString(),
                        "--read-bytes",
                        String.valueOf(text.length))
                .out();
        assertTrue(whole.startsWith("{\"key\":\"pieces.txt\""), whole);
        for (String piece : new String[] {"1", "5"}) {
            assertEquals(
                    whole,
                    run(
                                    "embed",
                                    "--text-file",
                                    file.toString(),
                                    "--model",
                                    model.toString(),
                                    "--vocab",
                                    vocab.toString(),
                                    "--read-bytes",
                                    piece)
                            .out(),
                    "pieces of " + piece + " bytes");
        }
    }

    /**
     * Reading and tokenizing run in bounded memory: a child JVM with a 32 MiB heap reads a 200 MB file (seeded
     * random bytes) in pieces and counts its tokens; read whole, the bytes alone would need 200 MB of heap.
     */
    @Test
    void a200MbTextIsReadInBoundedMemory() throws Exception {
        Path file = tmp.resolve("big.txt");
        long size = 200_000_000L;
        Random rnd = new Random(20261207L);
        byte[] block = new byte[1 << 20];
        int lastByte = 0;
        try (OutputStream out = Files.newOutputStream(file)) {
            for (long written = 0; written < size; written += block.length) {
                rnd.nextBytes(block);
                int n = (int) Math.min(block.length, size - written);
                out.write(block, 0, n);
                lastByte = block[n - 1] & 0xFF;
            }
        }
        Process p = new ProcessBuilder(
                        Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                        "-Xmx32m",
                        "-cp",
                        System.getProperty("java.class.path"),
                        CountTokens.class.getName(),
                        file.toString())
                .redirectErrorStream(true)
                .start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(300, TimeUnit.SECONDS), out);
        assertEquals(0, p.exitValue(), out);
        assertEquals("tokens " + size + " last " + lastByte + " maxHeap<=32MiB true", out.strip());
    }

    /** The child of {@link #a200MbTextIsReadInBoundedMemory}: byte tokens of a file, counted piece by piece. */
    public static final class CountTokens {
        public static void main(String[] args) throws Exception {
            TextPieces pieces = new TextPieces(Path.of(args[0]), "--text-file", 65536);
            int[] last = {-1};
            long n = pieces.tokenize(
                    new ByteTokenizer().chunked(), (tokens, read) -> last[0] = tokens[tokens.length - 1]);
            System.out.println("tokens " + n + " last " + last[0] + " maxHeap<=32MiB "
                    + (Runtime.getRuntime().maxMemory() <= 32L << 20));
        }
    }

    /** A real model file and standardization statistics computed here. */
    @Test
    void embedsWithAModelFileAndStatistics() throws Exception {
        Path modelFile = reference("rwkv-cpp-tests/tiny-rwkv-7v0-834K-FP32.bin");
        Path file = tmp.resolve("doc.txt");
        byte[] text = TEXT.getBytes(StandardCharsets.UTF_8);
        Files.write(file, text);
        Path statsFile = tmp.resolve("stats.json");
        try (RwkvModel model = RwkvModel.load(modelFile, Backends.byName("scalar"))) {
            Embedder raw = new Embedder(model.config(), Pooling.STATE, null);
            EmbeddingStats stats = new EmbeddingStats(model.fingerprint(), raw.pooling(), raw.dimension());
            for (String sample : new String[] {"hello there", "some other text", "12345 67890", "ÄÖÜ äöü"}) {
                byte[] b = sample.getBytes(StandardCharsets.UTF_8);
                int[] tokens = new int[b.length];
                for (int i = 0; i < b.length; i++) {
                    tokens[i] = b[i] & 0xFF;
                }
                RwkvState s = model.newState();
                stats.add(raw.pool(model.hidden(s, tokens), s));
            }
            stats.save(statsFile);

            Run r = run(
                    "embed",
                    "--model",
                    modelFile.toString(),
                    "--text-file",
                    file.toString(),
                    "--pooling",
                    "state",
                    "--stats",
                    statsFile.toString(),
                    "--backend",
                    "scalar");
            assertEquals(0, r.rc(), r.err());
            Embedder standardized = new Embedder(model.config(), Pooling.STATE, stats);
            assertJsonLine(r.out(), "doc.txt", expectedEmbedding(model, text, standardized));
            assertTrue(!r.err().contains("DEMO"), "no demo note with --model: " + r.err());

            Run wrongPooling = run(
                    "embed",
                    "--model",
                    modelFile.toString(),
                    "--text-file",
                    file.toString(),
                    "--pooling",
                    "hidden",
                    "--stats",
                    statsFile.toString(),
                    "--backend",
                    "scalar");
            assertEquals(1, wrongPooling.rc());
            assertTrue(
                    wrongPooling.err().contains("are for pooling state:11, but the embedder uses hidden"),
                    wrongPooling.err());
        }
    }

    /** A file name with a quote, a backslash and non-ASCII characters comes back exactly from the JSON key. */
    @Test
    void escapesTheKeyProperly() throws Exception {
        String name = "a \"quoted\" \\ näme 😊.txt";
        Path file;
        try {
            file = tmp.resolve(name);
            Files.writeString(file, "hello");
        } catch (InvalidPathException e) {
            Assumptions.abort("this file system cannot name a file " + name + ": " + e.getMessage());
            return;
        }
        Run r = run("embed", "--text-file", file.toString(), "--backend", "scalar");
        assertEquals(0, r.rc(), r.err());
        assertTrue(
                r.out().startsWith("{\"key\":\"a \\\"quoted\\\" \\\\ n\\u00E4me \\uD83D\\uDE0A.txt\",\"dim\":32,"),
                r.out());
        assertTrue(r.out().chars().allMatch(c -> c < 128), "plain ASCII output");
        assertEquals(name, new ObjectMapper().readTree(r.out()).get("key").asText());
    }

    @Test
    void jsonLineEscapesControlCharactersToo() throws Exception {
        String line = EmbedCommand.jsonLine("tab\there\nnewline\u0001", new float[] {1.0f, -0.5f, 1.0E-5f});
        assertEquals("{\"key\":\"tab\\there\\nnewline\\u0001\",\"dim\":3,\"vector\":[1.0,-0.5,1.0E-5]}", line);
        assertEquals(
                "tab\there\nnewline\u0001",
                new ObjectMapper().readTree(line).get("key").asText());
    }

    @Test
    void anEmptyFileIsAClearError() throws Exception {
        Path file = tmp.resolve("empty.txt");
        Files.write(file, new byte[0]);
        Run r = run("embed", "--text-file", file.toString());
        assertEquals(1, r.rc());
        assertTrue(r.err().contains("error: " + file + " is empty: there is no text to embed"), r.err());
        assertEquals("", r.out());
    }

    /**
     * Without CUDA (CI, this machine) {@code --backend cuda} runs on the CPU and says why; with CUDA the GPU
     * embedding (bf16 matrices) agrees with the CPU one to 2e-2 relative.
     */
    @Test
    void theCudaBackendFallsBackToTheCpuWhenCudaIsAbsent() throws Exception {
        Path file = tmp.resolve("doc.txt");
        byte[] text = TEXT.getBytes(StandardCharsets.UTF_8);
        Files.write(file, text);
        Run r = run("embed", "--text-file", file.toString(), "--backend", "cuda");
        assertEquals(0, r.rc(), r.err());
        try (RwkvModel demo = RandomModels.demo(Backends.byName("vector"))) {
            float[] expected = expectedEmbedding(demo, text, new Embedder(demo.config(), Pooling.HIDDEN, null));
            if (!Cuda.availability().available()) {
                assertJsonLine(r.out(), "doc.txt", expected);
            } else {
                assertTrue(r.out().contains("\"dim\":32,"), r.out());
            }
        }
    }

    @Test
    void aBadPoolingIsAClearError() throws Exception {
        Path file = tmp.resolve("doc.txt");
        Files.writeString(file, "hello");
        Run r = run("embed", "--text-file", file.toString(), "--pooling", "mean");
        assertEquals(1, r.rc());
        assertTrue(r.err().contains("error: unknown pooling \"mean\": expected hidden, state, both"), r.err());
        Run layer = run("embed", "--text-file", file.toString(), "--pooling", "state:7");
        assertEquals(1, layer.rc());
        assertTrue(layer.err().contains("layer 7 does not exist, the model has 4 layers (0..3)"), layer.err());
    }
}
