package dev.rwkvflink.jobs;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.rwkvflink.kafka.local.EmbeddedKafka;
import dev.rwkvflink.operator.RwkvEmbedFunction;
import dev.rwkvflink.operator.RwkvOptions;
import dev.rwkvflink.schema.DocumentChunk;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.Test;

/**
 * {@code RWKV_EMBED} on Kafka tables, in SQL alone as the SQL client runs it: JSON chunks in a Kafka topic (two
 * partitions, shuffled, 10% repeated; seed 11), the function created from its class name with the model in the job
 * parameters, embeddings written to another topic by {@code INSERT INTO}. Every document gets exactly one LAST
 * embedding (the chunks topic is read to its end, so the job ends), bit for bit the one-shot embedding.
 */
class SqlKafkaITCase {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void kafkaTablesInAndOut() throws Exception {
        Path model = EmbedJobITCase.tinyModel();
        Map<String, String> docs = EmbedJobITCase.documents();
        Random random = new Random(11);
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (var doc : docs.entrySet()) {
            for (DocumentChunk c : EmbedJobITCase.chunks(doc.getKey(), doc.getValue(), random)) {
                ObjectNode row = JSON.createObjectNode()
                        .put("doc", c.getKey())
                        .put("seq", c.getSeq())
                        .put("text", c.getText())
                        .put("last", c.getLast());
                records.add(new ProducerRecord<>(
                        "sql-chunks", c.getKey().getBytes(StandardCharsets.UTF_8), JSON.writeValueAsBytes(row)));
            }
        }
        for (int i = 0, n = records.size() / 10; i < n; i++) {
            records.add(records.get(random.nextInt(records.size())));
        }
        Collections.shuffle(records, random);

        try (EmbeddedKafka kafka = EmbeddedKafka.builder().start()) {
            kafka.createTopics(2, "sql-chunks");
            kafka.createTopics("sql-embeddings");
            KafkaTopics.send(kafka, records);

            TableEnvironment sql = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
            sql.getConfig()
                    .set(PipelineOptions.GLOBAL_JOB_PARAMETERS, Map.of(RwkvOptions.MODEL.key(), model.toString()));
            sql.getConfig().set("parallelism.default", "2");
            sql.executeSql("CREATE FUNCTION RWKV_EMBED AS '" + RwkvEmbedFunction.class.getName() + "'");
            sql.executeSql("CREATE TABLE chunks (doc STRING, seq BIGINT, text STRING, `last` BOOLEAN) WITH ("
                    + "'connector' = 'kafka', 'topic' = 'sql-chunks', "
                    + "'properties.bootstrap.servers' = '" + kafka.bootstrapServers() + "', "
                    + "'properties.group.id' = 'sql', 'scan.startup.mode' = 'earliest-offset', "
                    + "'scan.bounded.mode' = 'latest-offset', 'format' = 'json')");
            sql.executeSql("CREATE TABLE embeddings (doc STRING, seq BIGINT, tokens BIGINT, embedding ARRAY<FLOAT>, "
                    + "reason STRING, error STRING) WITH ("
                    + "'connector' = 'kafka', 'topic' = 'sql-embeddings', "
                    + "'properties.bootstrap.servers' = '" + kafka.bootstrapServers() + "', 'format' = 'json')");
            sql.executeSql("INSERT INTO embeddings SELECT doc, seq, tokens, embedding, reason, error "
                            + "FROM RWKV_EMBED(input => TABLE chunks PARTITION BY doc)")
                    .await();

            Map<String, EmbedJobITCase.OneShot> expected = EmbedJobITCase.oneShot(model, "cpu", docs);
            Map<String, JsonNode> byDoc = new HashMap<>();
            for (ConsumerRecord<byte[], byte[]> r : KafkaTopics.readCommitted(kafka, "sql-embeddings")) {
                JsonNode row = JSON.readTree(r.value());
                assertEquals("LAST", row.get("reason").asText(), row.toString());
                assertEquals(null, byDoc.put(row.get("doc").asText(), row), "one embedding per document: " + row);
            }
            assertEquals(docs.keySet(), byDoc.keySet());
            for (var e : expected.entrySet()) {
                JsonNode row = byDoc.get(e.getKey());
                float[] actual = new float[row.get("embedding").size()];
                for (int i = 0; i < actual.length; i++) {
                    actual[i] = Float.parseFloat(row.get("embedding").get(i).asText());
                }
                assertArrayEquals(e.getValue().vector(), actual, "bit for bit the one-shot embedding of " + e.getKey());
                assertEquals(e.getValue().tokens(), row.get("tokens").asLong());
            }
        }
    }
}
