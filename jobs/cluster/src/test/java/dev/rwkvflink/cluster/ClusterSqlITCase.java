package dev.rwkvflink.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import dev.rwkvflink.kafka.AvroCodec;
import dev.rwkvflink.kafka.local.EmbeddedKafka;
import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.Schemas;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.Test;

/**
 * SQL on the standalone cluster, as a SQL user runs it: {@code bin/sql-client.sh -f embed.sql} (Flink's SQL client,
 * embedded mode, the job jar on its classpath) creates {@code RWKV_EMBED} from its class name, a Kafka table of JSON
 * chunks (20 documents cut at random places, shuffled, some chunks twice; seed 23) and a Kafka table of embeddings,
 * and inserts the one into the other on the cluster's TaskManager ({@code table.dml-sync}: the script returns when
 * the bounded job has ended). Every document gets exactly one LAST embedding, bit for bit the one-shot embedding.
 */
class ClusterSqlITCase {

    @Test
    void sqlClientEmbedsAKafkaTableIntoAKafkaTable() throws Exception {
        ClusterSupport.Setup setup = ClusterSupport.Setup.of("it-sql", Map.of());
        Map<String, String> env = setup.env();
        Path bin = setup.bin();
        Schemas.trustGeneratedClasses();
        Map<String, String> docs = ClusterSupport.documents(20);
        AvroCodec<DocumentChunk> avro = AvroCodec.of(DocumentChunk.class);
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (ProducerRecord<byte[], byte[]> r : ClusterSupport.records(docs, new Random(23))) {
            DocumentChunk c = avro.decodeSingleObject(r.value());
            records.add(new ProducerRecord<>(
                    "sql-chunks",
                    r.key(),
                    ClusterSupport.JSON.writeValueAsBytes(ClusterSupport.JSON
                            .createObjectNode()
                            .put("doc", c.getKey())
                            .put("seq", c.getSeq())
                            .put("text", c.getText())
                            .put("last", c.getLast()))));
        }
        long started = System.nanoTime();
        try (EmbeddedKafka kafka = EmbeddedKafka.builder().start()) {
            kafka.createTopics(2, "sql-chunks");
            kafka.createTopics("sql-embeddings");
            ClusterSupport.produce(kafka, records, 0, new AtomicInteger());
            Files.createDirectories(setup.work());
            Path script = Files.writeString(
                    setup.work().resolve("embed.sql"),
                    String.join(
                            "\n",
                            "SET 'pipeline.global-job-parameters' = 'rwkv.model:" + setup.model() + "';",
                            "SET 'table.dml-sync' = 'true';",
                            "SET 'parallelism.default' = '2';",
                            "CREATE FUNCTION RWKV_EMBED AS 'dev.rwkvflink.operator.RwkvEmbedFunction';",
                            "CREATE TABLE chunks (doc STRING, seq BIGINT, text STRING, `last` BOOLEAN) WITH (",
                            "  'connector' = 'kafka', 'topic' = 'sql-chunks',",
                            "  'properties.bootstrap.servers' = '" + kafka.bootstrapServers() + "',",
                            "  'properties.group.id' = 'sql-it', 'scan.startup.mode' = 'earliest-offset',",
                            "  'scan.bounded.mode' = 'latest-offset', 'format' = 'json');",
                            "CREATE TABLE embeddings (doc STRING, seq BIGINT, tokens BIGINT, embedding ARRAY<FLOAT>,",
                            "  reason STRING, error STRING) WITH (",
                            "  'connector' = 'kafka', 'topic' = 'sql-embeddings',",
                            "  'properties.bootstrap.servers' = '" + kafka.bootstrapServers()
                                    + "', 'format' = 'json');",
                            "INSERT INTO embeddings SELECT doc, seq, tokens, embedding, reason, error",
                            "  FROM RWKV_EMBED(input => TABLE chunks PARTITION BY doc);",
                            ""));
            try {
                ClusterSupport.run(bin.resolve("cluster.sh"), env, Duration.ofSeconds(60), "start", "1");
                setup.rest().waitForTaskManagers(1, Duration.ofSeconds(60));
                ClusterSupport.run(bin.resolve("sql-client.sh"), env, Duration.ofSeconds(240), "-f", script.toString());

                Map<String, ClusterSupport.Emitted> byDoc = new HashMap<>();
                int duplicates = 0;
                for (ConsumerRecord<byte[], byte[]> r : ClusterSupport.read(
                        kafka, "sql-embeddings", docs.size(), Duration.ofSeconds(30), "read_uncommitted")) {
                    JsonNode row = ClusterSupport.JSON.readTree(r.value());
                    assertEquals("LAST", row.get("reason").asText(), row.toString());
                    float[] vector = new float[row.get("embedding").size()];
                    for (int i = 0; i < vector.length; i++) {
                        vector[i] = Float.parseFloat(row.get("embedding").get(i).asText());
                    }
                    if (byDoc.put(
                                    row.get("doc").asText(),
                                    new ClusterSupport.Emitted(
                                            vector, row.get("tokens").asLong()))
                            != null) {
                        duplicates++;
                    }
                }
                assertEquals(
                        new ClusterSupport.Outcome(0, 0, 0),
                        ClusterSupport.compare(byDoc, duplicates, docs, setup.model(), null),
                        "duplicated, missing, not bit for bit the one-shot embedding");
            } catch (Throwable t) {
                System.err.println(ClusterSupport.logTails(setup.work()));
                throw t;
            } finally {
                ClusterSupport.run(bin.resolve("cluster.sh"), env, Duration.ofSeconds(30), "stop");
            }
        }
        System.out.printf(
                "SQL client on the cluster: %d documents in %.1f s%n",
                docs.size(), (System.nanoTime() - started) / 1e9);
    }
}
