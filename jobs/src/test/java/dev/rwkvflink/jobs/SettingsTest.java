package dev.rwkvflink.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.kafka.RecordFormat;
import dev.rwkvflink.operator.RwkvOperatorConfig;
import java.util.List;
import java.util.Map;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.junit.jupiter.api.Test;

class SettingsTest {

    @Test
    void argumentsAndDefaults() {
        Settings s = Settings.fromArgs(
                "--bootstrap-servers",
                "127.0.0.1:9092",
                "--model",
                "/m.bin",
                "--pooling",
                "state:1",
                "--checkpoint-interval-ms",
                "2000",
                "--parallelism",
                "3",
                "--format",
                "binary");
        assertEquals("127.0.0.1:9092", s.bootstrapServers());
        assertEquals("chunks", s.chunksTopic());
        assertEquals("embeddings", s.embeddingsTopic());
        assertEquals("chunks-dead-letters", s.deadLettersTopic());
        assertEquals("rwkv-embed", s.groupId());
        assertEquals("rwkv-embed", s.transactionalIdPrefix());
        assertEquals(RecordFormat.BINARY, s.format());
        assertEquals(2000, s.checkpointIntervalMillis());
        assertEquals(3, s.parallelism());
        RwkvOperatorConfig config = s.operatorConfig();
        assertEquals("/m.bin", config.modelPath);
        assertEquals("state:1", config.pooling);
        assertNull(config.headPath);
        assertNull(config.statsPath);
        assertTrue(!s.classifies());
        assertTrue(s.kafkaProperties().isEmpty());
    }

    @Test
    void bufferingLimitsAndIdleTimeoutReachTheOperator() {
        RwkvOperatorConfig defaults = new RwkvOperatorConfig();
        RwkvOperatorConfig unchanged =
                Settings.fromArgs("--bootstrap-servers", "b:9092").operatorConfig();
        assertEquals(defaults.idleTimeoutMillis, unchanged.idleTimeoutMillis);
        assertEquals(defaults.maxSeqAhead, unchanged.maxSeqAhead);
        assertEquals(defaults.maxBufferedChunks, unchanged.maxBufferedChunks);
        assertEquals(defaults.maxChunkBytes, unchanged.maxChunkBytes);
        assertEquals(defaults.hotStateBytes, unchanged.hotStateBytes);
        assertEquals(-1, unchanged.snapshotTokens, "automatic token-log budget");
        RwkvOperatorConfig config = Settings.fromArgs(
                        "--bootstrap-servers",
                        "b:9092",
                        "--idle-timeout-ms",
                        "3000",
                        "--max-seq-ahead",
                        "100",
                        "--max-buffered-chunks",
                        "5",
                        "--max-chunk-bytes",
                        "65536",
                        "--hot-state-bytes",
                        "0",
                        "--snapshot-tokens",
                        "4096")
                .operatorConfig();
        assertEquals(0, config.hotStateBytes);
        assertEquals(4096, config.snapshotTokens);
        assertThrows(
                IllegalArgumentException.class,
                () -> Settings.fromArgs("--bootstrap-servers", "b:9092", "--snapshot-tokens", "-2")
                        .operatorConfig());
        assertEquals(3000, config.idleTimeoutMillis);
        assertEquals(100, config.maxSeqAhead);
        assertEquals(5, config.maxBufferedChunks);
        assertEquals(65536, config.maxChunkBytes);
        assertThrows(
                IllegalArgumentException.class,
                () -> Settings.fromArgs("--bootstrap-servers", "b:9092", "--max-seq-ahead", "0")
                        .operatorConfig());
    }

    @Test
    void batchingProgressGpuAndDeliverySettings() {
        Settings defaults = Settings.fromArgs("--bootstrap-servers", "b:9092");
        assertEquals(DeliveryGuarantee.EXACTLY_ONCE, defaults.delivery());
        assertEquals(-1, defaults.operatorConfig().cudaDevice);
        assertEquals(false, defaults.operatorConfig().emitEveryChunk);
        assertTrue(defaults.separateSinks());
        assertEquals(
                false,
                Settings.fromArgs("--bootstrap-servers", "b:9092", "--separate-sinks", "false")
                        .separateSinks());
        Settings s = Settings.fromArgs(
                "--bootstrap-servers",
                "b:9092",
                "--max-batch-keys",
                "1024",
                "--max-batch-tokens",
                "131072",
                "--emit-every-chunk",
                "true",
                "--cuda-device",
                "1",
                "--delivery",
                "at-least-once",
                "--max-wait-ms",
                "7");
        RwkvOperatorConfig c = s.operatorConfig();
        assertEquals(1024, c.maxBatchKeys);
        assertEquals(131072, c.maxBatchTokens);
        assertEquals(7, c.maxWaitMillis);
        assertTrue(c.emitEveryChunk);
        assertEquals(1, c.cudaDevice);
        assertEquals(DeliveryGuarantee.AT_LEAST_ONCE, s.delivery());
        IllegalArgumentException delivery = assertThrows(
                IllegalArgumentException.class,
                () -> Settings.fromArgs("--bootstrap-servers", "b", "--delivery", "at-most-once"));
        assertTrue(
                delivery.getMessage().contains("exactly-once")
                        && delivery.getMessage().contains("at-least-once"),
                delivery.getMessage());
        IllegalArgumentException flag = assertThrows(
                IllegalArgumentException.class,
                () -> Settings.fromArgs("--bootstrap-servers", "b", "--emit-every-chunk", "yes"));
        assertTrue(
                flag.getMessage().contains("--emit-every-chunk (rwkv.emit.every-chunk): 'yes'")
                        && flag.getMessage().contains("true or false"),
                flag.getMessage());
        IllegalArgumentException keys = assertThrows(
                IllegalArgumentException.class,
                () -> Settings.fromArgs("--bootstrap-servers", "b", "--max-batch-keys", "0")
                        .operatorConfig());
        assertTrue(keys.getMessage().contains("maxBatchKeys"), keys.getMessage());
    }

    @Test
    void statsAndHeadReachTheOperator() {
        Settings s = Settings.fromArgs(
                "--bootstrap-servers",
                "b:9092",
                "--head",
                "/h.json",
                "--stats",
                "/s.json",
                "--classifications-topic",
                "classes");
        assertEquals("/s.json", s.stats());
        assertEquals("/s.json", s.operatorConfig().statsPath);
        assertEquals("/h.json", s.operatorConfig().headPath);
        assertEquals("classes", s.classificationsTopic());
        assertTrue(s.classifies());
    }

    @Test
    void kafkaPropertiesRepeatInOrderAndKeepEqualsSignsInValues() {
        Settings s = Settings.fromArgs(
                "--bootstrap-servers",
                "broker:9093",
                "--kafka-property",
                "security.protocol=SASL_SSL",
                "--kafka-property",
                "sasl.mechanism=PLAIN",
                "--kafka-property",
                "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule "
                        + "required username=\"u\" password=\"p==\";",
                "--kafka-property",
                "ssl.truststore.password=",
                "--kafka-property",
                "sasl.mechanism=SCRAM-SHA-512");
        assertEquals(
                List.of("security.protocol", "sasl.mechanism", "sasl.jaas.config", "ssl.truststore.password"),
                List.copyOf(s.kafkaProperties().keySet()));
        assertEquals("SCRAM-SHA-512", s.kafkaProperties().get("sasl.mechanism"), "a later value replaces an earlier");
        assertTrue(s.kafkaProperties().get("sasl.jaas.config").endsWith("password=\"p==\";"));
        assertEquals("", s.kafkaProperties().get("ssl.truststore.password"));
        assertThrows(
                UnsupportedOperationException.class, () -> s.kafkaProperties().put("x", "y"));
        assertTrue(s.toString().contains("security.protocol"), s.toString());
        assertTrue(!s.toString().contains("p=="), "values (secrets) stay out of toString: " + s);
        assertEquals(Map.entry("a.b", "c=d"), Settings.kafkaProperty("a.b=c=d"));
    }

    @Test
    void badKafkaPropertiesAreClearErrors() {
        IllegalArgumentException noEquals = assertThrows(
                IllegalArgumentException.class,
                () -> Settings.fromArgs("--bootstrap-servers", "b", "--kafka-property", "security.protocol"));
        assertEquals(
                "a Kafka property is key=value (e.g. security.protocol=SASL_SSL), got 'security.protocol'",
                noEquals.getMessage());
        assertThrows(
                IllegalArgumentException.class,
                () -> Settings.fromArgs("--bootstrap-servers", "b", "--kafka-property", "=x"));
        IllegalArgumentException servers = assertThrows(
                IllegalArgumentException.class,
                () -> Settings.fromArgs("--bootstrap-servers", "b", "--kafka-property", "bootstrap.servers=c:9092"));
        assertTrue(
                servers.getMessage()
                        .startsWith("Kafka property bootstrap.servers is set by the job itself "
                                + "(use --bootstrap-servers)"),
                servers.getMessage());
        IllegalArgumentException isolation = assertThrows(
                IllegalArgumentException.class,
                () -> Settings.builder().bootstrapServers("b").kafkaProperty("isolation.level", "read_uncommitted"));
        assertTrue(isolation.getMessage().contains("isolation.level is set by the job itself"), isolation.getMessage());
    }

    /**
     * Flink's configuration (config.yaml, -D on flink run) sets every option, including those without a flag; a
     * flag wins over its option; defaults come from the options.
     */
    @Test
    void theFlinkConfigurationSetsEveryOptionAndFlagsWin() {
        Configuration flink = Configuration.fromMap(Map.of(
                "rwkv.kafka.bootstrap-servers",
                "cluster:9092",
                "rwkv.emit.every-tokens",
                "512",
                "rwkv.batch.max-keys",
                "1024",
                "rwkv.hot-states.size",
                "2gb",
                "rwkv.batch.max-wait",
                "20ms",
                "execution.checkpointing.interval",
                "3s",
                "rwkv.sinks.separate",
                "false",
                "rwkv.limits.max-key-bytes",
                "100"));
        Settings s = Settings.fromArgs(flink, "--max-batch-keys", "64", "--model", "/m.bin");
        assertEquals("cluster:9092", s.bootstrapServers());
        RwkvOperatorConfig c = s.operatorConfig();
        assertEquals(512, c.emitEveryTokens, "an option without a flag");
        assertEquals(64, c.maxBatchKeys, "the flag wins");
        assertEquals(2L << 30, c.hotStateBytes);
        assertEquals(20, c.maxWaitMillis);
        assertEquals(100, c.maxKeyBytes);
        assertEquals("/m.bin", c.modelPath);
        assertEquals(3000, s.checkpointIntervalMillis(), "Flink's own checkpoint interval");
        assertTrue(!s.separateSinks());
        assertEquals(1024, Settings.from(flink).operatorConfig().maxBatchKeys, "from() alone: the configuration's");
        // defaults: the operator's field initialisers and the options agree (one place: the options)
        RwkvOperatorConfig defaults =
                Settings.fromArgs("--bootstrap-servers", "b").operatorConfig();
        RwkvOperatorConfig plain = new RwkvOperatorConfig();
        assertEquals(plain.maxBatchKeys, defaults.maxBatchKeys);
        assertEquals(plain.hotStateBytes, defaults.hotStateBytes);
        assertEquals(plain.idleTimeoutMillis, defaults.idleTimeoutMillis);
        assertEquals(plain.finishedRetentionMillis, defaults.finishedRetentionMillis);
        assertEquals(
                Settings.DEFAULT_CHECKPOINT_INTERVAL.toMillis(),
                Settings.fromArgs("--bootstrap-servers", "b").checkpointIntervalMillis());
        IllegalArgumentException size = assertThrows(
                IllegalArgumentException.class,
                () -> Settings.fromArgs("--bootstrap-servers", "b", "--hot-state-bytes", "lots"));
        assertTrue(size.getMessage().startsWith("--hot-state-bytes (rwkv.hot-states.size): 'lots'"), size.getMessage());
    }

    @Test
    void clearErrors() {
        IllegalArgumentException missing = assertThrows(
                IllegalArgumentException.class, () -> Settings.builder().build());
        assertEquals("missing setting: bootstrap servers", missing.getMessage());
        IllegalArgumentException unknown = assertThrows(
                IllegalArgumentException.class, () -> Settings.fromArgs("--bootstrap-servers", "x", "--modle", "m"));
        assertTrue(
                unknown.getMessage().startsWith("unknown settings [--modle]; known: --bootstrap-servers"),
                unknown.getMessage());
        IllegalArgumentException noTopic = assertThrows(
                IllegalArgumentException.class,
                () -> Settings.builder()
                        .bootstrapServers("x")
                        .head("h.json")
                        .classificationsTopic(null)
                        .build());
        assertTrue(noTopic.getMessage().contains("no classifications topic"), noTopic.getMessage());
        assertThrows(
                IllegalArgumentException.class,
                () -> Settings.builder()
                        .bootstrapServers("x")
                        .checkpointIntervalMillis(0)
                        .build());
        IllegalArgumentException noRegistry = assertThrows(
                IllegalArgumentException.class,
                () -> Settings.fromArgs("--bootstrap-servers", "x", "--format", "confluent"));
        assertEquals(
                "the confluent format needs a schema registry: set rwkv.kafka.schema-registry-url "
                        + "(--schema-registry-url)",
                noRegistry.getMessage());
        assertEquals(
                "http://r:8081",
                Settings.fromArgs(
                                "--bootstrap-servers",
                                "x",
                                "--format",
                                "confluent",
                                "--schema-registry-url",
                                "http://r:8081")
                        .schemaRegistryUrl());
    }

    /** EmbedJob's client refuses unknown names before submitting (the job would restart in a loop otherwise). */
    @Test
    void unknownBackendOrPoolingIsRefusedWhereTheJobIsBuilt() {
        var backend = assertThrows(
                IllegalArgumentException.class,
                () -> Settings.fromArgs("--bootstrap-servers", "b:9092", "--backend", "gpu"));
        assertTrue(
                backend.getMessage().startsWith("backend: unknown backend \"gpu\"; known: cpu, scalar, vector, cuda"),
                backend.getMessage());
        var pooling = assertThrows(
                IllegalArgumentException.class,
                () -> Settings.fromArgs("--bootstrap-servers", "b:9092", "--pooling", "state:x"));
        assertTrue(
                pooling.getMessage().startsWith("pooling: pooling \"state:x\": \"x\" is not a layer number"),
                pooling.getMessage());
        Settings.fromArgs("--bootstrap-servers", "b:9092", "--backend", "CUDA:F32", "--pooling", "both:0,2");
    }
}
