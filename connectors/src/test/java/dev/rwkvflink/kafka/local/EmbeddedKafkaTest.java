package dev.rwkvflink.kafka.local;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.kafka.SharedKafka;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(SharedKafka.class)
class EmbeddedKafkaTest {

    @Test
    void servesTopicsAndTransactionsOnLoopback(EmbeddedKafka kafka) throws Exception {
        assertTrue(kafka.bootstrapServers().startsWith("127.0.0.1:"), kafka.bootstrapServers());
        kafka.createTopics(2, "embedded-a");
        try (Admin admin = Admin.create(kafka.adminProperties())) {
            assertTrue(admin.listTopics().names().get(10, TimeUnit.SECONDS).contains("embedded-a"));
            assertEquals(
                    2,
                    admin.describeTopics(List.of("embedded-a"))
                            .allTopicNames()
                            .get(10, TimeUnit.SECONDS)
                            .get("embedded-a")
                            .partitions()
                            .size());
        }

        // A committed and an aborted transaction: read_committed consumers see only the first (this needs the
        // single-node transaction settings: with the defaults the transaction coordinator never becomes available).
        Properties producerProperties = new Properties();
        producerProperties.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        producerProperties.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "embedded-test");
        try (KafkaProducer<String, String> producer =
                new KafkaProducer<>(producerProperties, new StringSerializer(), new StringSerializer())) {
            producer.initTransactions();
            producer.beginTransaction();
            producer.send(new ProducerRecord<>("embedded-a", 0, "k", "committed"));
            producer.commitTransaction();
            producer.beginTransaction();
            producer.send(new ProducerRecord<>("embedded-a", 0, "k", "aborted"));
            producer.abortTransaction();
        }
        assertEquals(List.of("committed"), readCommitted(kafka, new TopicPartition("embedded-a", 0), 1));
    }

    @Test
    void refusesToCreateATopicTwice(EmbeddedKafka kafka) {
        kafka.createTopics("embedded-twice");
        IllegalStateException error =
                assertThrows(IllegalStateException.class, () -> kafka.createTopics("embedded-twice"));
        assertTrue(error.getMessage().contains("TopicExistsException"), error.getMessage());
    }

    @Test
    void closeKillsTheBrokerAndDeletesItsDirectory(@org.junit.jupiter.api.io.TempDir Path parent) throws Exception {
        EmbeddedKafka kafka = EmbeddedKafka.builder().parentDirectory(parent).start();
        Path directory = kafka.directory();
        assertTrue(Files.isRegularFile(directory.resolve("server.properties")));
        String config = Files.readString(directory.resolve("server.properties"));
        assertTrue(config.contains("transaction.state.log.min.isr=1"), config);
        assertTrue(config.contains("listeners=PLAINTEXT://127.0.0.1:"), config);
        assertTrue(Files.exists(directory.resolve("data/meta.properties")), "storage formatted");
        ProcessHandle broker = ProcessHandle.of(kafka.pid()).orElseThrow();

        kafka.close();
        assertFalse(broker.isAlive());
        assertFalse(kafka.isRunning());
        assertFalse(Files.exists(directory), "directory deleted");
        kafka.close();
    }

    @Test
    void aKilledBrokerRestartsOnItsPortsWithItsData(@org.junit.jupiter.api.io.TempDir Path parent) throws Exception {
        try (EmbeddedKafka kafka =
                EmbeddedKafka.builder().parentDirectory(parent).start()) {
            kafka.createTopics("restart-a");
            Properties producerProperties = new Properties();
            producerProperties.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
            producerProperties.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "restart-test");
            try (KafkaProducer<String, String> producer =
                    new KafkaProducer<>(producerProperties, new StringSerializer(), new StringSerializer())) {
                producer.initTransactions();
                producer.beginTransaction();
                producer.send(new ProducerRecord<>("restart-a", 0, "k", "before the crash"));
                producer.commitTransaction();
            }
            long firstPid = kafka.pid();
            assertThrows(IllegalStateException.class, kafka::restart, "a running broker is not restarted");
            kafka.kill();
            assertFalse(kafka.isRunning());
            assertFalse(ProcessHandle.of(firstPid).map(ProcessHandle::isAlive).orElse(false));
            kafka.restart();
            assertTrue(kafka.isRunning());
            assertTrue(kafka.pid() != firstPid, "a new JVM");
            assertEquals(
                    List.of("before the crash"),
                    readCommitted(kafka, new TopicPartition("restart-a", 0), 1),
                    "the committed record survived the crash, on the same bootstrap servers");
        }
    }

    @Test
    void aBrokerThatCannotStartReportsItsOutput(@org.junit.jupiter.api.io.TempDir Path parent) throws Exception {
        IllegalStateException error = assertThrows(
                IllegalStateException.class,
                () -> EmbeddedKafka.builder()
                        .parentDirectory(parent)
                        .brokerProperty("num.io.threads", "0")
                        .startupTimeout(Duration.ofSeconds(60))
                        .start());
        assertTrue(error.getMessage().contains("num.io.threads"), error.getMessage());
        try (var left = Files.list(parent)) {
            assertEquals(List.of(), left.toList(), "nothing left behind");
        }
    }

    @Test
    void theBrokerJvmStopsWhenItsParentGoes() throws Exception {
        // The launcher the broker runs under, with a main class that would wait forever.
        List<String> command = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp",
                System.getProperty("java.class.path"),
                BrokerLauncher.class.getName(),
                WaitForever.class.getName()));
        Process child = new ProcessBuilder(command).redirectErrorStream(true).start();
        try {
            assertFalse(child.waitFor(1, TimeUnit.SECONDS), "still waiting");
            child.getOutputStream().close(); // what the OS does when the parent dies
            assertTrue(child.waitFor(20, TimeUnit.SECONDS), "stopped after its input closed");
            assertEquals(3, child.exitValue());
        } finally {
            child.destroyForcibly();
        }
    }

    /** A main class that never returns. */
    static final class WaitForever {
        public static void main(String[] args) throws InterruptedException {
            Thread.sleep(Long.MAX_VALUE);
        }
    }

    /**
     * The partition's committed values, polled until {@code expected} have come or 30 s have passed. (No longer
     * bounded by the end offset asked once before polling: asked right after a restart it can be stale, and one
     * pre-commit CI run read nothing that way, though the record was there.)
     */
    private static List<String> readCommitted(EmbeddedKafka kafka, TopicPartition partition, int expected) {
        Properties properties = new Properties();
        properties.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        properties.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        try (KafkaConsumer<String, String> consumer =
                new KafkaConsumer<>(properties, new StringDeserializer(), new StringDeserializer())) {
            consumer.assign(Set.of(partition));
            consumer.seekToBeginning(Set.of(partition));
            List<String> values = new ArrayList<>();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (values.size() < expected && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
                    values.add(record.value());
                }
            }
            return values;
        }
    }
}
