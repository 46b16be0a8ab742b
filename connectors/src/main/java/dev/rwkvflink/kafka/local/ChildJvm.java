package dev.rwkvflink.kafka.local;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * What the local servers in child JVMs ({@link EmbeddedKafka}, {@link EmbeddedSchemaRegistry}) share: the launcher
 * on the classpath (the child stops when this JVM goes, see {@link BrokerLauncher}), free ports, the tail of a log,
 * removing a working directory.
 */
final class ChildJvm {

    private ChildJvm() {}

    /**
     * A child's classpath: a copy of {@link BrokerLauncher}'s class file (whatever jar this class came from) under
     * {@code directory}, then {@code jars}.
     */
    static String launcherClasspath(Path directory, List<Path> jars) throws IOException {
        Path launcherRoot = directory.resolve("launcher");
        String classFile = BrokerLauncher.class.getName().replace('.', '/') + ".class";
        Path target = launcherRoot.resolve(classFile);
        Files.createDirectories(target.getParent());
        try (InputStream in = BrokerLauncher.class.getClassLoader().getResourceAsStream(classFile)) {
            if (in == null) {
                throw new IOException("cannot find " + classFile + " on the classpath");
            }
            Files.copy(in, target);
        }
        return Stream.concat(Stream.of(launcherRoot), jars.stream())
                .map(Path::toString)
                .collect(Collectors.joining(File.pathSeparator));
    }

    /** Ports free on 127.0.0.1 right now (all held open together so they differ). */
    static int[] freePorts(int count) throws IOException {
        List<ServerSocket> sockets = new ArrayList<>();
        try {
            for (int i = 0; i < count; i++) {
                ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
                socket.setReuseAddress(true);
                sockets.add(socket);
            }
            return sockets.stream().mapToInt(ServerSocket::getLocalPort).toArray();
        } finally {
            for (ServerSocket socket : sockets) {
                socket.close();
            }
        }
    }

    /** The last lines of a text file, or a note that it cannot be read. */
    static String tail(Path file, int lines) {
        try {
            List<String> all = Files.readAllLines(file, StandardCharsets.UTF_8);
            return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
        } catch (IOException e) {
            return "(cannot read " + file + ": " + e.getMessage() + ")";
        }
    }

    static void deleteRecursively(Path root) {
        if (!Files.exists(root)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(root)) {
            paths.sorted(Comparator.reverseOrder())
                    .forEach(path -> path.toFile().delete());
        } catch (IOException | UncheckedIOException e) {
            // best effort: a temp directory left behind is not worth failing a close
        }
    }

    /**
     * The command that runs {@code mainClass} in a small child JVM: this JVM's java, C1 only and the serial collector
     * (a faster start on busy cores, which stay Flink's), {@code jvmOptions}, then {@link BrokerLauncher} (which
     * stops the child when this JVM goes) on {@code classpath} (see {@link #launcherClasspath}).
     */
    static List<String> command(
            String minHeap,
            String maxHeap,
            List<String> jvmOptions,
            String classpath,
            String mainClass,
            String... args) {
        List<String> command = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xms" + minHeap,
                "-Xmx" + maxHeap,
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "--enable-native-access=ALL-UNNAMED",
                "--sun-misc-unsafe-memory-access=allow"));
        command.addAll(jvmOptions);
        command.addAll(List.of("-cp", classpath, BrokerLauncher.class.getName(), mainClass));
        command.addAll(List.of(args));
        return command;
    }
}
