package dev.rwkvflink.operator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.apache.flink.api.common.externalresource.ExternalResourceInfo;
import org.junit.jupiter.api.Test;

/** Which CUDA device an operator instance takes (no GPU needed: the choice is made before any device is opened). */
class GpuChoiceTest {

    /** A GPU as Flink's GPU plugin describes one: its properties. */
    private static ExternalResourceInfo gpu(Map<String, String> properties) {
        return new ExternalResourceInfo() {
            @Override
            public Optional<String> getProperty(String key) {
                return Optional.ofNullable(properties.get(key));
            }

            @Override
            public Collection<String> getKeys() {
                return properties.keySet();
            }
        };
    }

    private static ExternalResourceInfo index(String i) {
        return gpu(Map.of("index", i));
    }

    @Test
    void theOperatorSettingWins() {
        assertEquals(3, GpuChoice.device(3, List.of(index("0"), index("1")), 0));
    }

    @Test
    void withoutSettingOrResourceTheEngineDefaultIsUsed() {
        assertEquals(-1, GpuChoice.device(-1, List.of(), 5));
        assertEquals(-1, GpuChoice.device(-1, null, 0));
    }

    @Test
    void subtasksSpreadOverTheTaskManagersGpusInIndexOrder() {
        List<ExternalResourceInfo> gpus = List.of(index("6"), index(" 2"), index("4"));
        assertEquals(2, GpuChoice.device(-1, gpus, 0));
        assertEquals(4, GpuChoice.device(-1, gpus, 1));
        assertEquals(6, GpuChoice.device(-1, gpus, 2));
        assertEquals(2, GpuChoice.device(-1, gpus, 3));
        assertEquals(7, GpuChoice.device(-1, List.of(index("7")), 9));
    }

    @Test
    void aResourceWithoutAUsableIndexIsRefusedNamingIt() {
        var none = assertThrows(
                IllegalArgumentException.class, () -> GpuChoice.device(-1, List.of(gpu(Map.of("uuid", "GPU-1"))), 0));
        assertTrue(
                none.getMessage().contains("'gpu' has no 'index' property")
                        && none.getMessage().contains("uuid"),
                none.getMessage());
        var bad = assertThrows(IllegalArgumentException.class, () -> GpuChoice.device(-1, List.of(index("x1")), 0));
        assertTrue(bad.getMessage().contains("index 'x1', not a device number"), bad.getMessage());
    }

    @Test
    void onlyCudaBackendsAreGpuBackends() {
        assertTrue(GpuChoice.isGpu("cuda"));
        assertTrue(GpuChoice.isGpu(" CUDA:f32"));
        assertFalse(GpuChoice.isGpu("cpu"));
        assertFalse(GpuChoice.isGpu(null));
    }

    @Test
    void aNegativeDeviceSettingOtherThanAutomaticIsRefused() {
        var e = assertThrows(
                IllegalArgumentException.class,
                () -> new RwkvOperatorConfig().cudaDevice(-2).validate());
        assertTrue(e.getMessage().contains("cudaDevice"), e.getMessage());
    }
}
