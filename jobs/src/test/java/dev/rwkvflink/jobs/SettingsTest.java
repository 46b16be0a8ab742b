package dev.rwkvflink.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.kafka.RecordFormat;
import dev.rwkvflink.operator.RwkvOperatorConfig;
import org.junit.jupiter.api.Test;

class SettingsTest {

    @Test
    void argumentsAndDefaults() {
        Settings s = Settings.fromArgs("--bootstrap-servers", "127.0.0.1:9092", "--model", "/m.bin",
                "--pooling", "state:1", "--checkpoint-interval-ms", "2000", "--parallelism", "3", "--format", "binary");
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
        assertTrue(!s.classifies());
    }

    @Test
    void clearErrors() {
        IllegalArgumentException missing = assertThrows(IllegalArgumentException.class,
                () -> Settings.builder().build());
        assertEquals("missing setting: bootstrap servers", missing.getMessage());
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class,
                () -> Settings.fromArgs("--bootstrap-servers", "x", "--modle", "m"));
        assertEquals("unknown settings [--modle]", unknown.getMessage());
        IllegalArgumentException noTopic = assertThrows(IllegalArgumentException.class,
                () -> Settings.builder().bootstrapServers("x").head("h.json").classificationsTopic(null).build());
        assertTrue(noTopic.getMessage().contains("no classifications topic"), noTopic.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> Settings.builder().bootstrapServers("x").checkpointIntervalMillis(0).build());
    }
}
