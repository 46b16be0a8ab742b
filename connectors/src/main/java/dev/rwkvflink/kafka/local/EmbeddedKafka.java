package dev.rwkvflink.kafka.local;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.Uuid;

/**
 * A single-node Kafka cluster (KRaft, broker and controller in one process) in a child JVM, for tests and local runs.
 *
 * <p>{@link #start()} creates a working directory, picks two free ports on 127.0.0.1 (clients, controller), writes
 * {@code server.properties} with single-node settings (every internal topic with replication factor 1 and min ISR 1),
 * formats the storage ({@code kafka.tools.StorageTool format}), starts {@code kafka.Kafka} and waits until an admin
 * client sees the broker. The broker's jars come from {@link BrokerClasspath}, so the calling JVM needs no broker
 * classes. {@link #close()} kills the child and deletes the directory; the child also stops by itself when this JVM
 * dies (see {@link BrokerLauncher}).
 *
 * <pre>{@code
 * try (EmbeddedKafka kafka = EmbeddedKafka.builder().start()) {
 *   kafka.createTopics(3, "chunks");
 *   String bootstrap = kafka.bootstrapServers();   // 127.0.0.1:port
 * }
 * }</pre>
 */
public final class EmbeddedKafka implements AutoCloseable {

    private static final int LOG_TAIL_LINES = 60;

    private final Path directory;
    private final int brokerPort;
    /** Starts the broker's JVM (again, for {@link #restart()}). */
    private final ProcessBuilder command;

    private final Duration startupTimeout;
    private volatile Process process;
    private final Thread shutdownHook;
    private boolean closed;

    private EmbeddedKafka(
            Path directory, int brokerPort, ProcessBuilder command, Process process, Duration startupTimeout) {
        this.directory = directory;
        this.brokerPort = brokerPort;
        this.command = command;
        this.process = process;
        this.startupTimeout = startupTimeout;
        this.shutdownHook = new Thread(this::destroy, "embedded-kafka-shutdown");
        Runtime.getRuntime().addShutdownHook(shutdownHook);
    }

    /** Starts building a broker; {@link Builder#start()} starts it. */
    public static Builder builder() {
        return new Builder();
    }

    /** {@code 127.0.0.1:port} of the broker's client listener. */
    public String bootstrapServers() {
        return "127.0.0.1:" + brokerPort;
    }

    /** The broker's working directory (configuration, data, {@code broker.log}); deleted by {@link #close()}. */
    public Path directory() {
        return directory;
    }

    /** The broker's log so far ({@code broker.log}): handy in assertion messages. */
    public String logTail() {
        return ChildJvm.tail(directory.resolve("broker.log"), LOG_TAIL_LINES);
    }

    /** True while the broker's JVM runs. */
    public boolean isRunning() {
        return process.isAlive();
    }

    /** The broker JVM's process id. */
    public long pid() {
        return process.pid();
    }

    /**
     * Kills the broker's JVM at once (SIGKILL: no clean shutdown, as a crash or a pulled plug would); clients see
     * connection errors until {@link #restart()}.
     */
    public synchronized void kill() {
        process.destroyForcibly();
        try {
            process.waitFor(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while killing the Kafka broker", e);
        }
    }

    /**
     * Starts the broker again after {@link #kill()}: same ports, configuration and data (the log recovers what was
     * written, as after a crash); returns when it answers.
     *
     * @throws IllegalStateException when the broker still runs, is closed, or does not come up in time
     */
    public synchronized void restart() {
        if (closed || process.isAlive()) {
            throw new IllegalStateException(closed ? "the broker is closed" : "the broker still runs: kill() it first");
        }
        try {
            process = command.start();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot restart the Kafka broker: " + e.getMessage(), e);
        }
        awaitReady(startupTimeout);
    }

    /** Creates topics with one partition each. */
    public void createTopics(String... topics) {
        createTopics(1, topics);
    }

    /**
     * Creates topics (replication factor 1) and waits until the controller has them.
     *
     * @throws IllegalStateException when a topic cannot be created (e.g. it exists), with the broker's reason
     */
    public void createTopics(int partitions, String... topics) {
        List<NewTopic> newTopics = Arrays.stream(topics)
                .map(name -> new NewTopic(name, partitions, (short) 1))
                .toList();
        try (Admin admin = Admin.create(adminProperties())) {
            admin.createTopics(newTopics).all().get(30, TimeUnit.SECONDS);
        } catch (ExecutionException | TimeoutException e) {
            Throwable cause = e instanceof ExecutionException ? e.getCause() : e;
            throw new IllegalStateException(
                    "cannot create topics " + String.join(", ", topics) + " on " + bootstrapServers() + ": " + cause,
                    cause);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while creating topics", e);
        }
    }

    /** Properties for an admin client of this broker. */
    public Properties adminProperties() {
        Properties properties = new Properties();
        properties.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers());
        return properties;
    }

    /** Kills the broker's JVM and deletes its directory. Idempotent. */
    @Override
    public void close() {
        destroy();
        try {
            Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException shuttingDown) {
            // the hook runs (or ran) anyway
        }
    }

    private synchronized void destroy() {
        if (closed) {
            return;
        }
        closed = true;
        process.destroyForcibly();
        try {
            process.waitFor(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        ChildJvm.deleteRecursively(directory);
    }

    @Override
    public String toString() {
        return "EmbeddedKafka[" + bootstrapServers() + ", pid " + process.pid() + ", " + directory + "]";
    }

    /** Options of an {@link EmbeddedKafka}; every one has a default. */
    public static final class Builder {
        private Path parentDirectory;
        private Duration startupTimeout = Duration.ofSeconds(90);
        private boolean autoCreateTopics;
        private String maxHeap = "1g";
        private final Map<String, String> extraProperties = new LinkedHashMap<>();
        private final Map<String, Integer> features = new LinkedHashMap<>();

        private Builder() {}

        /** Where the broker's temporary working directory is created (default: {@code java.io.tmpdir}). */
        public Builder parentDirectory(Path directory) {
            this.parentDirectory = directory;
            return this;
        }

        /** How long {@link #start()} waits for the broker (default 90 s). */
        public Builder startupTimeout(Duration timeout) {
            this.startupTimeout = timeout;
            return this;
        }

        /** Whether producers and consumers may create topics by naming them (default false: create them explicitly). */
        public Builder autoCreateTopics(boolean enabled) {
            this.autoCreateTopics = enabled;
            return this;
        }

        /** The broker JVM's maximum heap, as for {@code -Xmx} (default {@code 1g}). */
        public Builder maxHeap(String size) {
            this.maxHeap = size;
            return this;
        }

        /**
         * Formats the storage with a feature at the given level ({@code StorageTool format --feature NAME=LEVEL}), e.g.
         * {@code transaction.version} 1 (default: the broker's defaults for a new cluster; Kafka 4.x: version 2).
         */
        public Builder feature(String name, int level) {
            features.put(name, level);
            return this;
        }

        /** Sets or overrides a line of {@code server.properties}. */
        public Builder brokerProperty(String key, String value) {
            extraProperties.put(key, value);
            return this;
        }

        /**
         * Formats the storage, starts the broker and waits until it answers.
         *
         * @throws IllegalStateException when formatting fails or the broker does not come up in time, with the last
         *     lines of its output
         */
        public EmbeddedKafka start() {
            List<Path> jars = BrokerClasspath.jars();
            Path directory = null;
            Process process = null;
            try {
                directory = parentDirectory == null
                        ? Files.createTempDirectory("rwkv-kafka-")
                        : Files.createTempDirectory(Files.createDirectories(parentDirectory), "rwkv-kafka-");
                int[] ports = ChildJvm.freePorts(2);
                Path config = directory.resolve("server.properties");
                Files.writeString(config, serverProperties(directory, ports[0], ports[1]));
                Files.writeString(directory.resolve("log4j2.properties"), LOG4J_CONFIG);
                String classpath = ChildJvm.launcherClasspath(directory, jars);
                Path log = directory.resolve("broker.log");

                format(directory, classpath, config);
                ProcessBuilder command = javaProcess(directory, classpath, "kafka.Kafka", config.toString())
                        .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
                process = command.start();
                EmbeddedKafka kafka = new EmbeddedKafka(directory, ports[0], command, process, startupTimeout);
                try {
                    kafka.awaitReady(startupTimeout);
                } catch (RuntimeException e) {
                    kafka.close();
                    throw e;
                }
                return kafka;
            } catch (IOException | RuntimeException e) {
                if (process != null) {
                    process.destroyForcibly();
                }
                if (directory != null) {
                    ChildJvm.deleteRecursively(directory);
                }
                if (e instanceof RuntimeException runtime) {
                    throw runtime;
                }
                throw new UncheckedIOException(
                        "cannot start the embedded Kafka broker: " + e.getMessage(), (IOException) e);
            }
        }

        private String serverProperties(Path directory, int brokerPort, int controllerPort) {
            Map<String, String> settings = new LinkedHashMap<>();
            settings.put("process.roles", "broker,controller");
            settings.put("node.id", "1");
            settings.put("controller.quorum.voters", "1@127.0.0.1:" + controllerPort);
            settings.put(
                    "listeners", "PLAINTEXT://127.0.0.1:" + brokerPort + ",CONTROLLER://127.0.0.1:" + controllerPort);
            settings.put("advertised.listeners", "PLAINTEXT://127.0.0.1:" + brokerPort);
            settings.put("controller.listener.names", "CONTROLLER");
            settings.put("inter.broker.listener.name", "PLAINTEXT");
            settings.put("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT");
            settings.put("log.dirs", directory.resolve("data").toString());
            settings.put("auto.create.topics.enable", Boolean.toString(autoCreateTopics));
            settings.put("num.partitions", "1");
            settings.put("default.replication.factor", "1");
            settings.put("min.insync.replicas", "1");
            // One node: every internal topic with one replica, one in-sync replica, and few partitions (fast start).
            settings.put("offsets.topic.replication.factor", "1");
            settings.put("offsets.topic.num.partitions", "1");
            settings.put("transaction.state.log.replication.factor", "1");
            settings.put("transaction.state.log.min.isr", "1");
            settings.put("transaction.state.log.num.partitions", "1");
            settings.put("share.coordinator.state.topic.replication.factor", "1");
            settings.put("share.coordinator.state.topic.min.isr", "1");
            settings.put("group.initial.rebalance.delay.ms", "0");
            // The broker's limit for producer transactions; KafkaJobs' sinks ask for less
            // (KafkaJobs.TRANSACTION_TIMEOUT).
            settings.put(
                    "transaction.max.timeout.ms",
                    Long.toString(Duration.ofMinutes(15).toMillis()));
            settings.putAll(extraProperties);
            return settings.entrySet().stream()
                    .map(e -> e.getKey() + "=" + e.getValue())
                    .collect(Collectors.joining("\n", "# written by rwkv-flink EmbeddedKafka\n", "\n"));
        }

        /** {@code kafka.tools.StorageTool format}: writes meta.properties for a new cluster id into log.dirs. */
        private void format(Path directory, String classpath, Path config) throws IOException {
            Path output = directory.resolve("format.log");
            List<String> args =
                    new ArrayList<>(List.of("format", "-t", Uuid.randomUuid().toString(), "-c", config.toString()));
            features.forEach((name, level) -> args.addAll(List.of("--feature", name + "=" + level)));
            Process format = javaProcess(directory, classpath, "kafka.tools.StorageTool", args.toArray(String[]::new))
                    .redirectOutput(output.toFile())
                    .start();
            boolean finished;
            try {
                finished = format.waitFor(startupTimeout.toMillis(), TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                format.destroyForcibly();
                throw new IllegalStateException("interrupted while formatting Kafka storage", e);
            }
            if (!finished || format.exitValue() != 0) {
                format.destroyForcibly();
                String why = finished ? "exited with " + format.exitValue() : "did not finish within " + startupTimeout;
                throw new IllegalStateException("formatting the Kafka storage failed (" + why + ") in " + directory
                        + "; its output:\n" + ChildJvm.tail(output, LOG_TAIL_LINES));
            }
        }

        private ProcessBuilder javaProcess(Path directory, String classpath, String mainClass, String... args) {
            // A small broker for tests and local runs: about 3 s to a running broker on two busy cores, not 5-8 s.
            List<String> command = ChildJvm.command(
                    "128m",
                    maxHeap,
                    List.of(
                            "-Djava.awt.headless=true",
                            "-Dlog4j2.configurationFile="
                                    + directory.resolve("log4j2.properties").toUri()),
                    classpath,
                    mainClass,
                    args);
            return new ProcessBuilder(command).directory(directory.toFile()).redirectErrorStream(true);
        }
    }

    /** Polls with an admin client until the broker lists itself, the process dies, or time runs out. */
    private void awaitReady(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        Properties properties = adminProperties();
        properties.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "2000");
        properties.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "2000");
        properties.put(AdminClientConfig.RECONNECT_BACKOFF_MS_CONFIG, "50");
        properties.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "200");
        try (Admin admin = Admin.create(properties)) {
            Exception last = null;
            while (System.nanoTime() < deadline) {
                if (!process.isAlive()) {
                    throw new IllegalStateException("the Kafka broker exited with " + process.exitValue()
                            + " while starting; the end of " + directory.resolve("broker.log") + ":\n" + logTail());
                }
                try {
                    if (!admin.describeCluster()
                            .nodes()
                            .get(2, TimeUnit.SECONDS)
                            .isEmpty()) {
                        return;
                    }
                } catch (ExecutionException | TimeoutException e) {
                    last = e;
                }
                Thread.sleep(100);
            }
            throw new IllegalStateException("the Kafka broker at " + bootstrapServers() + " did not answer within "
                    + timeout + (last == null ? "" : " (last error: " + last + ")") + "; the end of "
                    + directory.resolve("broker.log") + ":\n" + logTail());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for the Kafka broker", e);
        }
    }

    /** Broker logging: INFO to standard output, which goes to broker.log; the chattiest loggers at WARN. */
    private static final String LOG4J_CONFIG = """
      status = warn
      appender.out.type = Console
      appender.out.name = out
      appender.out.layout.type = PatternLayout
      appender.out.layout.pattern = %d{HH:mm:ss.SSS} %-5p [%t] %c{1}: %m%n
      rootLogger.level = INFO
      rootLogger.appenderRef.out.ref = out
      logger.state.name = state.change.logger
      logger.state.level = WARN
      logger.kafka.name = kafka.server.KafkaConfig
      logger.kafka.level = WARN
      logger.config.name = AbstractConfig
      logger.config.level = WARN
      """;
}
