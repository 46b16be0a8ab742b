package dev.rwkvflink.engine.format;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.testing.SharedData;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A model file truncated in place while a model loaded from it runs (what {@code cp new.bin model.bin} does during
 * a rolling update). The run is a child JVM, because a mapped file's truncation can kill the whole JVM with SIGBUS:
 * it loads the model, advances states in a loop (so the kernels are compiled), the test truncates the file to 4 KiB,
 * and the child goes on for another second and then recomputes the hidden state of a fixed text.
 *
 * <p>Default access (read into memory): the child finishes, and its hidden state after the truncation is bit for
 * bit the one before it and the one this JVM computes from the intact file. Control, {@code -Drwkv.model.access=map}:
 * the same truncation must break the mapped run (an InternalError "a fault occurred in an unsafe memory access", or
 * the JVM's death by SIGBUS once the kernels are compiled), which shows that the truncation is real.
 */
class ModelFileReplacedTest {

    private static final int[] TEXT = {34, 105, 110, 32, 116, 104, 101, 32, 98, 101, 103, 105, 110};

    @Test
    void aModelReadIntoMemoryKeepsRunningBitForBitWhenItsFileIsTruncated(@TempDir Path dir) throws Exception {
        Path model = copyOfTinyModel(dir);
        String expected = hiddenOf(model);
        ChildRun run = runAndTruncate(dir, model, "read");
        assertEquals(0, run.exit, "child exit status; its output:\n" + run.output);
        assertTrue(
                run.output.contains("after " + expected), "hidden state after the truncation; output:\n" + run.output);
        assertTrue(run.output.contains("before " + expected), run.output);
        assertEquals(4096, Files.size(model), "the file was truncated");
    }

    @Test
    void controlAMappedModelBreaksWhenItsFileIsTruncated(@TempDir Path dir) throws Exception {
        Path model = copyOfTinyModel(dir);
        String expected = hiddenOf(model);
        ChildRun run = runAndTruncate(dir, model, "map");
        assertTrue(run.output.contains("before " + expected), run.output);
        assertFalse(
                run.exit == 0 && run.output.contains("after " + expected),
                "a mapped model ran on unharmed after its file was truncated: the test does not truncate; output:\n"
                        + run.output);
    }

    @Test
    void readAndMappedAccessLoadTheSameWeights() throws Exception {
        Path model = SharedData.tinyModel("7v0-834K", "FP16");
        try (WeightFile read = WeightFile.load(
                        model,
                        "rwkv.cpp",
                        WeightFile.Origin.RWKV_CPP,
                        (file, arena) -> RwkvCppFile.parse(model, file),
                        WeightFile.Access.READ);
                WeightFile mapped = WeightFile.load(
                        model,
                        "rwkv.cpp",
                        WeightFile.Origin.RWKV_CPP,
                        (file, arena) -> RwkvCppFile.parse(model, file),
                        WeightFile.Access.MAP)) {
            assertEquals(mapped.tensors().keySet(), read.tensors().keySet());
            for (String name : read.tensors().keySet()) {
                assertTrue(read.get(name).data().mismatch(mapped.get(name).data()) < 0, name);
            }
        }
    }

    @Test
    void anUnknownAccessIsRefusedByName() {
        String old = System.getProperty(WeightFile.Access.PROPERTY);
        System.setProperty(WeightFile.Access.PROPERTY, "mmap");
        try {
            IllegalArgumentException e =
                    Assertions.assertThrows(IllegalArgumentException.class, WeightFile.Access::configured);
            assertEquals("-Drwkv.model.access=mmap: expected read or map", e.getMessage());
        } finally {
            if (old == null) {
                System.clearProperty(WeightFile.Access.PROPERTY);
            } else {
                System.setProperty(WeightFile.Access.PROPERTY, old);
            }
        }
    }

    private static Path copyOfTinyModel(Path dir) throws IOException {
        Path model = dir.resolve("model.bin");
        Files.copy(SharedData.tinyModel("7v0-834K", "FP32"), model);
        return model;
    }

    /** The hidden state after {@link #TEXT}, as the bits of its floats in hex (so "equal" means bit for bit). */
    static String hiddenOf(Path model) throws IOException {
        try (RwkvModel m = RwkvModel.load(model, Backends.byName("cpu"))) {
            return bits(m.hidden(m.newState(), TEXT));
        }
    }

    private static String bits(float[] v) {
        StringBuilder sb = new StringBuilder();
        for (float f : v) {
            sb.append(Integer.toHexString(Float.floatToRawIntBits(f)));
        }
        return sb.toString();
    }

    private record ChildRun(int exit, String output) {}

    /** Starts {@link Child}, truncates the model file once the child says it is warm, and collects its output. */
    private static ChildRun runAndTruncate(Path dir, Path model, String access) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(Arrays.asList(
                "--add-modules",
                "jdk.incubator.vector",
                "--enable-native-access=ALL-UNNAMED",
                "-Xmx256m",
                "-XX:-CreateCoredumpOnCrash",
                "-XX:ErrorFile=" + dir.resolve("hs_err_%p.log"),
                "-D" + WeightFile.Access.PROPERTY + "=" + access,
                "-cp",
                System.getProperty("java.class.path"),
                Child.class.getName(),
                model.toString()));
        Process p = new ProcessBuilder(cmd)
                .directory(dir.toFile())
                .redirectErrorStream(true)
                .start();
        StringBuilder out = new StringBuilder();
        try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = r.readLine()) != null) {
                out.append(line).append('\n');
                if (line.equals("warm")) {
                    try (FileChannel ch = FileChannel.open(model, StandardOpenOption.WRITE)) {
                        ch.truncate(4096);
                    }
                    Files.writeString(dir.resolve("truncated"), "yes");
                }
            }
        }
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "child did not finish:\n" + out);
        return new ChildRun(p.exitValue(), out.toString());
    }

    /** The child JVM: load, print the hidden state, run until the file is truncated, run on, print it again. */
    public static final class Child {
        public static void main(String[] args) throws Exception {
            Path model = Path.of(args[0]);
            Path truncated = model.resolveSibling("truncated");
            try (RwkvModel m = RwkvModel.load(model, Backends.byName("cpu"))) {
                System.out.println("before " + bits(m.hidden(m.newState(), TEXT)));
                int[][] tokens = new int[4][64];
                for (int[] t : tokens) {
                    Arrays.setAll(t, i -> (i * 7 + 1) % 256);
                }
                long warmUntil = System.nanoTime() + TimeUnit.SECONDS.toNanos(3);
                while (System.nanoTime() < warmUntil) {
                    advance(m, tokens);
                }
                System.out.println("warm");
                while (!Files.exists(truncated)) {
                    advance(m, tokens);
                }
                long runUntil = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
                while (System.nanoTime() < runUntil) {
                    advance(m, tokens);
                }
                System.out.println("after " + bits(m.hidden(m.newState(), TEXT)));
            }
        }

        private static void advance(RwkvModel m, int[][] tokens) {
            RwkvState[] states = new RwkvState[tokens.length];
            Arrays.setAll(states, i -> m.newState());
            m.advance(states, tokens);
        }
    }
}
