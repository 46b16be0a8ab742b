package dev.rwkvflink.kafka.local;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

/**
 * A schema registry in a child JVM, for tests and local runs: Apicurio Registry's released server (the build
 * unpacks it from Maven Central, see connectors/pom.xml), in-memory storage, on a free port of 127.0.0.1, serving
 * the Confluent Schema Registry API at {@link #url()} ({@code http://127.0.0.1:PORT/apis/ccompat/v7}), the API
 * {@link SchemaRegistryClient} speaks. {@link #close()} stops it; it also stops when this JVM dies (see
 * {@link BrokerLauncher}). Schemas live as long as the process.
 *
 * <pre>{@code
 * try (EmbeddedSchemaRegistry registry = EmbeddedSchemaRegistry.start()) {
 *   AvroCodec<DocumentChunk> codec = AvroCodec.forTopic(DocumentChunk.class, "chunks", RecordFormat.CONFLUENT,
 *       registry.url());
 * }
 * }</pre>
 */
public final class EmbeddedSchemaRegistry implements AutoCloseable {

    static final String RESOURCE = "schema-registry.properties";
    /** The Confluent-compatible API of Apicurio Registry 3.x. */
    static final String API_PATH = "/apis/ccompat/v7";

    private static final Duration STARTUP_TIMEOUT = Duration.ofMinutes(2);

    private final Path directory;
    private final Process process;
    private final String url;
    private final Thread shutdownHook;

    private EmbeddedSchemaRegistry(Path directory, Process process, String url) {
        this.directory = directory;
        this.process = process;
        this.url = url;
        this.shutdownHook = new Thread(process::destroyForcibly, "schema-registry-shutdown");
        Runtime.getRuntime().addShutdownHook(shutdownHook);
    }

    /** Starts a registry and waits until it answers (a few seconds; up to two minutes on a busy machine). */
    public static EmbeddedSchemaRegistry start() {
        Path home = home();
        Path directory = null;
        Process process = null;
        try {
            directory = Files.createTempDirectory("rwkv-schema-registry-");
            int[] ports = ChildJvm.freePorts(2);
            String classpath = ChildJvm.launcherClasspath(directory, List.of(home.resolve("quarkus-run.jar")));
            List<String> command = ChildJvm.command(
                    "64m",
                    "256m",
                    List.of(
                            "-Dquarkus.http.host=127.0.0.1",
                            "-Dquarkus.http.port=" + ports[0],
                            "-Dquarkus.management.host=127.0.0.1",
                            "-Dquarkus.management.port=" + ports[1]),
                    classpath,
                    "io.quarkus.bootstrap.runner.QuarkusEntryPoint");
            process = new ProcessBuilder(command)
                    .directory(directory.toFile())
                    .redirectErrorStream(true)
                    .redirectOutput(directory.resolve("registry.log").toFile())
                    .start();
            EmbeddedSchemaRegistry registry =
                    new EmbeddedSchemaRegistry(directory, process, "http://127.0.0.1:" + ports[0] + API_PATH);
            try {
                registry.awaitReady();
            } catch (RuntimeException e) {
                registry.close();
                throw e;
            }
            return registry;
        } catch (IOException e) {
            if (process != null) {
                process.destroyForcibly();
            }
            if (directory != null) {
                ChildJvm.deleteRecursively(directory);
            }
            throw new UncheckedIOException("cannot start the embedded schema registry: " + e.getMessage(), e);
        }
    }

    /** The base URL of the Confluent-compatible API, e.g. {@code http://127.0.0.1:41234/apis/ccompat/v7}. */
    public String url() {
        return url;
    }

    /** The last lines of the registry's log. */
    public String logTail() {
        return ChildJvm.tail(directory.resolve("registry.log"), 40);
    }

    /** Where the build unpacked the registry server; checked to hold its launcher jar. */
    static Path home() {
        Properties p = new Properties();
        try (InputStream in = EmbeddedSchemaRegistry.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                throw new IllegalStateException("resource " + RESOURCE + " is missing next to "
                        + EmbeddedSchemaRegistry.class.getName() + ": build rwkv-flink-connectors with Maven");
            }
            p.load(in);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read resource " + RESOURCE, e);
        }
        Path home = Path.of(p.getProperty("home"));
        if (!Files.isRegularFile(home.resolve("quarkus-run.jar"))) {
            throw new IllegalStateException("the schema registry (Apicurio Registry " + p.getProperty("version")
                    + ") is not unpacked at " + home + ": rebuild with 'mvn -pl connectors -am install'");
        }
        return home;
    }

    private void awaitReady() {
        HttpClient http =
                HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
        HttpRequest subjects = HttpRequest.newBuilder(URI.create(url + "/subjects"))
                .timeout(Duration.ofSeconds(5))
                .GET()
                .build();
        long deadline = System.nanoTime() + STARTUP_TIMEOUT.toNanos();
        Exception last = null;
        try {
            while (System.nanoTime() < deadline) {
                if (!process.isAlive()) {
                    throw new IllegalStateException("the schema registry exited with " + process.exitValue()
                            + " while starting; the end of its log:\n" + logTail());
                }
                try {
                    if (http.send(subjects, HttpResponse.BodyHandlers.discarding())
                                    .statusCode()
                            == 200) {
                        return;
                    }
                } catch (IOException e) {
                    last = e;
                }
                Thread.sleep(200);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for the schema registry", e);
        }
        throw new IllegalStateException("the schema registry at " + url + " did not answer within " + STARTUP_TIMEOUT
                + (last == null ? "" : " (last error: " + last + ")") + "; the end of its log:\n" + logTail());
    }

    @Override
    public void close() {
        process.destroy();
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            process.destroyForcibly();
        }
        try {
            Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException ignored) {
            // the JVM is shutting down: the hook runs anyway
        }
        ChildJvm.deleteRecursively(directory);
    }

    @Override
    public String toString() {
        return "EmbeddedSchemaRegistry[" + url + "]";
    }
}
