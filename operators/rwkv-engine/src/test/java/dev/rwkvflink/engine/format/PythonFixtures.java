package dev.rwkvflink.engine.format;

import java.io.IOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/**
 * Runs the fixture generators in {@code src/test/resources/dev/rwkvflink/engine/format/} with a python3 that has
 * the needed modules. The interpreter is {@code -Drwkv.python=...} if set (and then only that one), else the first
 * of {@code python3} and {@code /usr/bin/python3} (Debian's python3-torch lives there) that imports them; tests
 * are skipped, with a message, when there is none.
 */
final class PythonFixtures {
    private static final Map<String, Optional<String>> INTERPRETERS = new HashMap<>();

    private PythonFixtures() {}

    /** Runs {@code script} with {@code args}; skips the calling test if no python3 can import {@code module}. */
    static void run(String module, String script, String... args) throws IOException, InterruptedException {
        Optional<String> python = interpreterWith(module);
        Assumptions.assumeTrue(
                python.isPresent(),
                "skipped: no python3 that can 'import " + module
                        + "' (tried -Drwkv.python, else python3 and /usr/bin/python3)");
        List<String> cmd =
                new ArrayList<>(List.of(python.get(), resource(script).toString()));
        cmd.addAll(List.of(args));
        Result r = exec(cmd, 300);
        if (r.exit != 0) {
            throw new IllegalStateException(String.join(" ", cmd) + " failed with exit " + r.exit + ":\n" + r.output);
        }
    }

    /** A python3 that can import {@code module}, if any. */
    static synchronized Optional<String> interpreterWith(String module) {
        return INTERPRETERS.computeIfAbsent(module, m -> {
            List<String> candidates = new ArrayList<>();
            String configured = System.getProperty("rwkv.python");
            if (configured != null && !configured.isBlank()) {
                candidates.add(configured);
            } else {
                candidates.add("python3");
                candidates.add("/usr/bin/python3");
            }
            for (String c : candidates) {
                try {
                    if (exec(List.of(c, "-c", "import " + m), 120).exit == 0) {
                        return Optional.of(c);
                    }
                } catch (IOException | InterruptedException e) {
                    // not there: try the next one
                }
            }
            return Optional.empty();
        });
    }

    /** The file of a resource next to this class (resources are plain files under target/test-classes). */
    static Path resource(String name) {
        URL url = PythonFixtures.class.getResource(name);
        if (url == null) {
            throw new IllegalStateException("test resource " + name + " not found");
        }
        try {
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The rwkv.cpp tiny test model {@code name}; skips the calling test if the reference data is absent. */
    static Path rwkvCppModel(String name) {
        String shared = System.getProperty("rwkv.shared.dir");
        Assumptions.assumeTrue(shared != null, "skipped: system property rwkv.shared.dir is not set");
        Path p = Path.of(shared, "reference", "rwkv-cpp-tests", name);
        Assumptions.assumeTrue(Files.isRegularFile(p), "skipped: reference model " + p + " is missing");
        return p;
    }

    private record Result(int exit, String output) {}

    private static Result exec(List<String> cmd, int timeoutSeconds) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IOException(String.join(" ", cmd) + " timed out");
        }
        return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8));
    }
}
