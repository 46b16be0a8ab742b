package dev.rwkvflink.engine.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/** Explicit engine settings win over the JVM properties, which win over the built-in values; negatives are refused. */
class EngineSettingsTest {

    @Test
    void explicitThenPropertyThenBuiltIn() {
        assertEquals(3, new EngineSettings(3, 0, 0).threadsOrDefault());
        assertEquals(1024, new EngineSettings(0, 1024, 0).cudaSlotsOrDefault());
        assertEquals(512, new EngineSettings(0, 0, 512).cudaMaxRowsOrDefault());
        String before = System.getProperty("rwkv.cuda.slots");
        try {
            System.setProperty("rwkv.cuda.slots", "77");
            assertEquals(77, EngineSettings.DEFAULTS.cudaSlotsOrDefault());
            assertEquals(5, new EngineSettings(0, 5, 0).cudaSlotsOrDefault());
            System.clearProperty("rwkv.cuda.slots");
            assertEquals(256, EngineSettings.DEFAULTS.cudaSlotsOrDefault());
        } finally {
            if (before != null) {
                System.setProperty("rwkv.cuda.slots", before);
            }
        }
        assertEquals(16_384, EngineSettings.DEFAULTS.cudaMaxRowsOrDefault());
        assertThrows(IllegalArgumentException.class, () -> new EngineSettings(-1, 0, 0));
    }
}
