package dev.rwkvflink.kafka;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.kafka.local.EmbeddedKafka;
import dev.rwkvflink.schema.DeadLetter;
import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.Embedding;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.stream.LongStream;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * End to end on a Flink MiniCluster and a real broker: chunks (and malformed records) from a topic, good chunks to
 * one topic and dead letters to another through the exactly-once sinks, with checkpointing. Both outputs are read
 * with read_committed and must hold every input exactly once.
 *
 * <p>The source is unbounded (a bounded one finishes in milliseconds, after which checkpoints, and so the sinks'
 * commits, are declined); the test cancels the job once all expected output is committed.
 */
@ExtendWith(SharedKafka.class)
class KafkaPipelineITCase {

    private static final int DOCUMENTS = 3;
    private static final int CHUNKS_PER_DOCUMENT = 8;

    @RegisterExtension
    static final MiniClusterExtension FLINK = new MiniClusterExtension(new MiniClusterResourceConfiguration.Builder()
            .setNumberTaskManagers(1)
            .setNumberSlotsPerTaskManager(2)
            .build());

    @Test
    void goodChunksAndDeadLettersAreWrittenExactlyOnce(EmbeddedKafka kafka) throws Exception {
        String input = "pipeline-chunks";
        String output = "pipeline-chunks-out";
        String deadLetters = "pipeline-dead-letters";
        kafka.createTopics(2, input, output);
        kafka.createTopics(deadLetters);

        AvroCodec<DocumentChunk> codec = AvroCodec.of(DocumentChunk.class);
        List<DocumentChunk> chunks = new ArrayList<>();
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int seq = 0; seq < CHUNKS_PER_DOCUMENT; seq++) {
            for (int document = 0; document < DOCUMENTS; document++) {
                String key = "doc-" + document;
                DocumentChunk chunk = seq == CHUNKS_PER_DOCUMENT - 1
                        ? Chunks.lastTokens(key, seq, seq, document)
                        : Chunks.text(key, seq, "chunk " + seq + " of " + key + " ✓");
                chunks.add(chunk);
                records.add(new ProducerRecord<>(input, utf8(key), codec.encodeSingleObject(chunk)));
            }
        }
        byte[] good = codec.encodeSingleObject(Chunks.text("doc-x", 0, "abcd"));
        Map<String, byte[]> malformed = new HashMap<>();
        malformed.put("garbage", utf8("certainly not avro"));
        malformed.put("truncated", Chunks.truncated(good, 4));
        malformed.put("other-schema", AvroCodec.of(Embedding.class).encodeSingleObject(Chunks.embedding()));
        malformed.put("invalid-utf8", Chunks.withInvalidUtf8(good, "abcd"));
        malformed.put("empty", new byte[0]);
        malformed.forEach((name, value) -> records.add(new ProducerRecord<>(input, utf8("bad-" + name), value)));
        records.add(new ProducerRecord<>(input, utf8("bad-null"), null));
        List<RecordMetadata> written = Topics.send(kafka, records);

        String run = UUID.randomUUID().toString().substring(0, 8);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(2);
        env.enableCheckpointing(300);
        SingleOutputStreamOperator<DocumentChunk> decoded = env.fromSource(
                        KafkaJobs.chunkSource(
                                kafka.bootstrapServers(),
                                input,
                                "pipeline-" + run,
                                RecordFormat.SINGLE_OBJECT,
                                OffsetsInitializer.earliest()),
                        WatermarkStrategy.noWatermarks(),
                        "chunks")
                .process(new DeadLetterSplitter())
                .name("split dead letters");
        decoded.sinkTo(KafkaJobs.avroSink(
                        kafka.bootstrapServers(),
                        output,
                        "pipeline-chunks-" + run,
                        codec,
                        RecordFormat.SINGLE_OBJECT,
                        DocumentChunk::getKey))
                .name("chunks out");
        decoded.getSideOutput(DeadLetterSplitter.DEAD_LETTERS)
                .sinkTo(KafkaJobs.deadLetterSink(kafka.bootstrapServers(), deadLetters, "pipeline-dead-" + run))
                .name("dead letters out");
        JobClient job = env.executeAsync("kafka pipeline test");
        int expectedDead = malformed.size() + 1;
        try {
            Topics.readCommittedUntil(kafka, output, read -> read.size() >= chunks.size(), Duration.ofSeconds(60));
            Topics.readCommittedUntil(kafka, deadLetters, read -> read.size() >= expectedDead, Duration.ofSeconds(60));
        } finally {
            job.cancel().get();
        }

        // Everything committed, read again from the start: each input exactly once.
        List<ConsumerRecord<byte[], byte[]>> out = Topics.readCommitted(kafka, output);
        assertEquals(chunks.size(), out.size(), "chunks out");
        List<DocumentChunk> outChunks = out.stream()
                .map(record -> codec.decodeSingleObject(record.value()))
                .toList();
        Comparator<DocumentChunk> byKeyAndSeq =
                Comparator.comparing(DocumentChunk::getKey).thenComparingLong(DocumentChunk::getSeq);
        assertEquals(
                chunks.stream().sorted(byKeyAndSeq).toList(),
                outChunks.stream().sorted(byKeyAndSeq).toList());
        for (ConsumerRecord<byte[], byte[]> record : out) {
            assertEquals(
                    codec.decodeSingleObject(record.value()).getKey(),
                    new String(record.key(), StandardCharsets.UTF_8));
        }
        for (int document = 0; document < DOCUMENTS; document++) {
            String key = "doc-" + document;
            List<Long> seqs = outChunks.stream()
                    .filter(chunk -> chunk.getKey().equals(key))
                    .map(DocumentChunk::getSeq)
                    .toList();
            assertEquals(
                    LongStream.range(0, CHUNKS_PER_DOCUMENT).boxed().toList(),
                    seqs,
                    "a document's chunks stay in order");
        }

        List<ConsumerRecord<byte[], byte[]>> dead = Topics.readCommitted(kafka, deadLetters);
        assertEquals(expectedDead, dead.size(), "dead letters out");
        AvroCodec<DeadLetter> deadCodec = AvroCodec.of(DeadLetter.class);
        Map<String, DeadLetter> byKey = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> record : dead) {
            DeadLetter letter = deadCodec.decodeSingleObject(record.value());
            assertArrayEquals(record.key(), bytes(letter.getKey()), "dead letters keep the original key");
            byKey.put(new String(bytes(letter.getKey()), StandardCharsets.UTF_8), letter);
        }
        for (int i = chunks.size(); i < records.size(); i++) {
            ProducerRecord<byte[], byte[]> sent = records.get(i);
            DeadLetter letter = byKey.get(new String(sent.key(), StandardCharsets.UTF_8));
            assertEquals(input, letter.getSourceTopic());
            assertEquals(written.get(i).partition(), letter.getPartition());
            assertEquals(written.get(i).offset(), letter.getOffset());
            assertArrayEquals(sent.value(), bytes(letter.getValue()), "raw value of " + letter.getReason());
            assertEquals(AvroDecodingException.class.getName(), letter.getErrorClass());
        }
        assertTrue(
                byKey.get("bad-invalid-utf8").getReason().contains("field text: string of 4 bytes is not valid UTF-8"),
                byKey.get("bad-invalid-utf8").getReason());
        assertTrue(
                byKey.get("bad-other-schema").getReason().contains("written with schema fingerprint"),
                byKey.get("bad-other-schema").getReason());
        assertTrue(
                byKey.get("bad-null").getReason().endsWith("no bytes (null value)"),
                byKey.get("bad-null").getReason());
    }

    private static byte[] utf8(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    private static byte[] bytes(ByteBuffer buffer) {
        if (buffer == null) {
            return null;
        }
        byte[] bytes = new byte[buffer.remaining()];
        buffer.duplicate().get(bytes);
        return bytes;
    }
}
