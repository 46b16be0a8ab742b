package dev.rwkvflink.kafka;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.kafka.local.EmbeddedKafka;
import dev.rwkvflink.schema.Embedding;
import dev.rwkvflink.schema.Schemas;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.Test;

/**
 * Output records are stamped with the time they are sent, not with the document's event time, so that a topic's
 * time-based retention cannot delete committed output (the defect our crash and rescale tests found; see
 * {@link AvroRecordSerializationSchema}). Against a real broker whose retention check runs every second
 * (retention.ms is Kafka's default, 7 days): two transactions of records as our sinks serialize them, with a Flink
 * timestamp from 2023, all survive; the same records stamped with that timestamp (what the sinks did before) lose
 * the first transaction's data: its log segment, rolled because its first timestamp was older than segment.ms,
 * holds no newer timestamp and is deleted by the first retention check.
 */
class OutputTimestampRetentionTest {
    private static final long EVENT_TIME_2023 = 1_700_000_000_000L;

    @Test
    void outputStampedWithSendTimeSurvivesRetentionEventTimeDoesNot() throws Exception {
        Schemas.trustGeneratedClasses();
        AvroRecordSerializationSchema<Embedding> schema = new AvroRecordSerializationSchema<>(
                "unused",
                AvroCodec.of(Embedding.class),
                RecordFormat.SINGLE_OBJECT,
                e -> e.getKey().getBytes());
        ProducerRecord<byte[], byte[]> serialized = schema.serialize(Chunks.embedding(), null, EVENT_TIME_2023);
        assertNull(serialized.timestamp(), "the producer stamps the record when it sends it");

        try (EmbeddedKafka kafka = EmbeddedKafka.builder()
                .brokerProperty("log.retention.check.interval.ms", "1000")
                .brokerProperty("log.initial.task.delay.ms", "0")
                .start()) {
            kafka.createTopics(1, "send-time", "event-time");
            long before = System.currentTimeMillis();
            produceTwoTransactions(kafka, "send-time", null);
            produceTwoTransactions(kafka, "event-time", EVENT_TIME_2023);
            Thread.sleep(4_000); // several retention checks

            List<ConsumerRecord<byte[], byte[]>> sendTime = readAll(kafka, "send-time");
            assertEquals(List.of("a", "b"), values(sendTime), "both transactions' records survive");
            assertTrue(sendTime.stream().allMatch(r -> r.timestamp() >= before), "stamped when sent");
            // control: the old behaviour, which the test would catch if it came back
            assertEquals(
                    List.of("b"),
                    values(readAll(kafka, "event-time")),
                    "stamped with a 2023 event time, the first transaction's record is deleted by retention");
        }
    }

    private static void produceTwoTransactions(EmbeddedKafka kafka, String topic, Long timestamp) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "retention-test-" + topic);
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
            producer.initTransactions();
            for (String value : new String[] {"a", "b"}) {
                producer.beginTransaction();
                producer.send(new ProducerRecord<>(topic, 0, timestamp, null, value.getBytes()));
                producer.commitTransaction();
            }
        }
    }

    private static List<ConsumerRecord<byte[], byte[]>> readAll(EmbeddedKafka kafka, String topic) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_uncommitted");
        try (KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            TopicPartition tp = new TopicPartition(topic, 0);
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            long end = consumer.endOffsets(List.of(tp)).get(tp);
            List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (consumer.position(tp) < end && System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(200)).forEach(out::add);
            }
            return out;
        }
    }

    private static List<String> values(List<ConsumerRecord<byte[], byte[]>> records) {
        return records.stream().map(r -> new String(r.value())).toList();
    }
}
