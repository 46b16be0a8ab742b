package dev.rwkvflink.operator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.rwkvflink.engine.backend.EngineSettings;
import java.time.Duration;
import org.apache.flink.configuration.Configuration;
import org.junit.jupiter.api.Test;

/** The operator's configuration is immutable: a setter returns a changed copy; a Flink configuration gives the same. */
class RwkvOperatorConfigTest {

    @Test
    void settersReturnChangedCopiesAndLeaveTheOriginal() {
        RwkvOperatorConfig defaults = new RwkvOperatorConfig();
        RwkvOperatorConfig changed = defaults.model("/m.pth").batch(8, 100, 5).idleTimeout(0);
        assertNotSame(defaults, changed);
        assertNull(defaults.modelPath);
        assertEquals(RwkvOptions.BATCH_MAX_KEYS.defaultValue(), defaults.maxBatchKeys);
        assertEquals(RwkvOptions.IDLE_TIMEOUT.defaultValue().toMillis(), defaults.idleTimeoutMillis);
        assertEquals("/m.pth", changed.modelPath);
        assertEquals(8, changed.maxBatchKeys);
        assertEquals(100, changed.maxBatchTokens);
        assertEquals(5, changed.maxWaitMillis);
        assertEquals(0, changed.idleTimeoutMillis);
        assertEquals(defaults.pooling, changed.pooling, "what is not set is copied");
    }

    @Test
    void aFlinkConfigurationGivesWhatTheSettersGive() {
        Configuration conf = new Configuration();
        conf.set(RwkvOptions.MODEL, "/m.pth");
        conf.set(RwkvOptions.BATCH_MAX_KEYS, 8);
        conf.set(RwkvOptions.IDLE_TIMEOUT, Duration.ofSeconds(3));
        RwkvOperatorConfig fromConf = RwkvOperatorConfig.from(conf);
        RwkvOperatorConfig fromSetters = new RwkvOperatorConfig()
                .model("/m.pth")
                .batch(
                        8,
                        RwkvOptions.BATCH_MAX_TOKENS.defaultValue(),
                        RwkvOptions.BATCH_MAX_WAIT.defaultValue().toMillis())
                .idleTimeout(3000);
        assertEquals(fromSetters.modelSpec(), fromConf.modelSpec());
        assertEquals(fromSetters.maxBatchKeys, fromConf.maxBatchKeys);
        assertEquals(fromSetters.idleTimeoutMillis, fromConf.idleTimeoutMillis);
        conf.set(RwkvOptions.THREADS, 3);
        conf.set(RwkvOptions.CUDA_SLOTS, 1024);
        assertEquals(new EngineSettings(3, 1024, 0), RwkvOperatorConfig.from(conf).engine);
        assertEquals(
                new EngineSettings(3, 1024, 0),
                RwkvOperatorConfig.from(conf).modelSpec().engine(),
                "the engine sizing travels with the model spec to the TaskManager");
        assertEquals(EngineSettings.DEFAULTS, new RwkvOperatorConfig().engine);
        conf.set(RwkvOptions.BATCH_MAX_KEYS, 0);
        IllegalArgumentException bad =
                assertThrows(IllegalArgumentException.class, () -> RwkvOperatorConfig.from(conf));
        assertEquals("maxBatchKeys must be >= 1", bad.getMessage());
    }
}
