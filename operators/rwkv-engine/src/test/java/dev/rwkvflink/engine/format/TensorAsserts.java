package dev.rwkvflink.engine.format;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.rwkvflink.engine.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/** Tensor comparisons shared by the format tests. */
final class TensorAsserts {
    private static final ObjectMapper JSON = new ObjectMapper();

    private TensorAsserts() {}

    static JsonNode readJson(Path p) throws IOException {
        return JSON.readTree(p.toFile());
    }

    /** Same names (in the same order), shapes, element types and bit-identical values. */
    static void assertIdentical(Map<String, Tensor> expected, Map<String, Tensor> actual, String what) {
        assertEquals(List.copyOf(expected.keySet()), List.copyOf(actual.keySet()), what + ": tensor names");
        for (Map.Entry<String, Tensor> e : expected.entrySet()) {
            Tensor x = e.getValue();
            Tensor y = actual.get(e.getKey());
            String where = what + ": " + e.getKey();
            assertArrayEquals(x.shape(), y.shape(), where + " shape");
            assertEquals(x.type(), y.type(), where + " type");
            assertBitsEqual(x.toFloatArray(), y.toFloatArray(), where);
        }
    }

    /** {@code actual} holds exactly the tensors of a JSON {name: {shape, values}} file, bit for bit. */
    static void assertMatchesJson(JsonNode expected, Map<String, Tensor> actual, String what) {
        TreeSet<String> names = new TreeSet<>();
        expected.fieldNames().forEachRemaining(names::add);
        assertEquals(names, new TreeSet<>(actual.keySet()), what + ": tensor names");
        for (String name : names) {
            JsonNode node = expected.get(name);
            Tensor t = actual.get(name);
            long[] shape = new long[node.get("shape").size()];
            for (int i = 0; i < shape.length; i++) {
                shape[i] = node.get("shape").get(i).longValue();
            }
            assertArrayEquals(shape, t.shape(), what + ": " + name + " shape");
            JsonNode values = node.get("values");
            float[] want = new float[values.size()];
            for (int i = 0; i < want.length; i++) {
                want[i] = (float) values.get(i).doubleValue();
            }
            assertBitsEqual(want, t.toFloatArray(), what + ": " + name);
        }
    }

    static void assertBitsEqual(float[] expected, float[] actual, String where) {
        assertEquals(expected.length, actual.length, where + " element count");
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToIntBits(expected[i]) != Float.floatToIntBits(actual[i])) {
                fail(where + " element " + i + ": expected " + expected[i] + ", got " + actual[i]
                        + (expected.length <= 16
                                ? " (expected " + Arrays.toString(expected) + ", got " + Arrays.toString(actual) + ")"
                                : ""));
            }
        }
    }
}
