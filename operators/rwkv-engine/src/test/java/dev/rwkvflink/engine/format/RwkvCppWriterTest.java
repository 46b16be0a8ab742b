package dev.rwkvflink.engine.format;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.rwkvflink.engine.backend.ScalarBackend;
import dev.rwkvflink.engine.model.RandomModels;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.tensor.WeightType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class RwkvCppWriterTest {
    @TempDir
    Path dir;

    /**
     * rwkv.cpp's own files, read and written again, come out byte for byte the same, but for the format version
     * (bytes 4-7): the writer writes 101, and version 100 files (only F32/F16 tensors) are the same layout.
     */
    @ParameterizedTest
    @ValueSource(
            strings = {
                "tiny-rwkv-4v0-660K-FP16",
                "tiny-rwkv-5v2-730K-FP32",
                "tiny-rwkv-6v0-3m-Q5_0",
                "tiny-rwkv-7v0-834K-FP32",
                "tiny-rwkv-7v0-834K-FP16"
            })
    void rwkvCppFilesRoundTripByteForByte(String model) throws Exception {
        Path original = PythonFixtures.rwkvCppModel(model + ".bin");
        Path copy = dir.resolve(model + ".bin");
        try (WeightFile w = RwkvCppFile.read(original)) {
            RwkvCppWriter.write(w, copy);
        }
        byte[] a = Files.readAllBytes(original);
        byte[] b = Files.readAllBytes(copy);
        assertEquals(
                101, ByteBuffer.wrap(b, 4, 4).order(ByteOrder.LITTLE_ENDIAN).getInt());
        System.arraycopy(a, 4, b, 4, 4);
        assertArrayEquals(a, b, model + ": the same bytes apart from the version");
    }

    /** A model built in memory, written and loaded from the file, computes the same bits. */
    @Test
    void aRandomModelWrittenAndLoadedComputesTheSameHiddenVectors() throws Exception {
        var shape = new RandomModels.Rwkv7Shape(2, 64, 32, 256, 128, 8, 8, 8, 8);
        Path file = dir.resolve("random.bin");
        RwkvCppWriter.write(RandomModels.rwkv7(shape, 5, WeightType.F16), file);
        int[] tokens = {1, 200, 45, 7, 255, 0, 12};
        try (RwkvModel memory = RwkvModel.of(RandomModels.rwkv7(shape, 5, WeightType.F16), new ScalarBackend());
                RwkvModel mapped = RwkvModel.load(file, new ScalarBackend())) {
            assertArrayEquals(memory.hidden(memory.newState(), tokens), mapped.hidden(mapped.newState(), tokens), 0f);
            assertEquals(memory.config(), mapped.config());
        }
    }

    /**
     * A model built in memory is written as rwkv.cpp writes its own: the same tensor names as rwkv.cpp's converted
     * tiny RWKV-7 (no value residual in layer 0) with the same ranks (x_rwkvag (6, 1, C), per-channel vectors
     * (1, 1, C)), so rwkv.cpp itself can load it.
     */
    @Test
    void aRandomModelIsWrittenWithRwkvCppsNamesAndRanks() throws Exception {
        Path reference = PythonFixtures.rwkvCppModel("tiny-rwkv-7v0-834K-FP32.bin");
        var shape = new RandomModels.Rwkv7Shape(2, 64, 32, 256, 128, 8, 8, 8, 8);
        Path file = dir.resolve("random.bin");
        RwkvCppWriter.write(RandomModels.rwkv7(shape, 5, WeightType.F32), file);
        Map<String, Integer> expected = new TreeMap<>();
        try (WeightFile ref = RwkvCppFile.read(reference)) {
            ref.tensors().forEach((name, t) -> {
                if (!name.startsWith("blocks.") || name.startsWith("blocks.0.") || name.startsWith("blocks.1.")) {
                    expected.put(name, t.rank());
                }
            });
        }
        Map<String, Integer> written = new TreeMap<>();
        try (WeightFile w = RwkvCppFile.read(file)) {
            w.tensors().forEach((name, t) -> written.put(name, t.rank()));
        }
        assertEquals(expected, written);
    }
}
