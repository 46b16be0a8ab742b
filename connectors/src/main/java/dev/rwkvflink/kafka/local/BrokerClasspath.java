package dev.rwkvflink.kafka.local;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The jars of the Kafka broker (kafka_2.13 and its dependencies), as resolved by Maven when this module was built.
 *
 * <p>The build (maven-dependency-plugin {@code build-classpath}, see connectors/pom.xml) writes the absolute paths of
 * those jars in the local Maven repository into the resource {@value #RESOURCE}; the broker's child JVM gets exactly
 * them, independent of whatever classpath the calling JVM has (a test, a Flink job, a shaded CLI). The system
 * property {@value #OVERRIDE_PROPERTY} may name another classpath instead.
 */
final class BrokerClasspath {

    static final String RESOURCE = "kafka-broker.classpath";
    static final String OVERRIDE_PROPERTY = "rwkv.kafka.classpath";

    private BrokerClasspath() {}

    /**
     * The broker's jars, each checked to exist.
     *
     * @throws IllegalStateException when the list is missing or names a jar that is gone, saying how to fix it
     */
    static List<Path> jars() {
        String listed = System.getProperty(OVERRIDE_PROPERTY);
        String origin = "system property " + OVERRIDE_PROPERTY;
        if (listed == null || listed.isBlank()) {
            listed = readResource();
            origin = "resource " + RESOURCE + " (written when rwkv-flink-connectors was built)";
        }
        List<Path> jars = new ArrayList<>();
        for (String entry : listed.trim().split(File.pathSeparator)) {
            if (entry.isBlank()) {
                continue;
            }
            Path jar = Path.of(entry.trim());
            if (!Files.exists(jar)) {
                throw new IllegalStateException("the Kafka broker's classpath from " + origin + " names " + jar
                        + ", which does not exist (local Maven repository cleaned or moved?): rebuild with "
                        + "'mvn -pl connectors -am install' or set -D" + OVERRIDE_PROPERTY + "=<jars>");
            }
            jars.add(jar);
        }
        if (jars.stream().noneMatch(jar -> jar.getFileName().toString().startsWith("kafka_2.13-"))) {
            throw new IllegalStateException(
                    "the Kafka broker's classpath from " + origin + " has no kafka_2.13 jar: " + listed);
        }
        return jars;
    }

    private static String readResource() {
        try (InputStream in = BrokerClasspath.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                throw new IllegalStateException(
                        "resource " + RESOURCE + " is missing next to " + BrokerClasspath.class.getName()
                                + ": build rwkv-flink-connectors with Maven (it writes the broker's classpath at generate-resources) or "
                                + "set -D" + OVERRIDE_PROPERTY + "=<jars>");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException("cannot read resource " + RESOURCE, e);
        }
    }
}
