package dev.rwkvflink.engine.format;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reader for safetensors files (Hugging Face's format), read into memory or mapped ({@link WeightFile.Access}),
 * converted to the canonical form.
 *
 * <pre>
 * u64 LE  N                  header length
 * N bytes JSON header        {"name": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...,
 *                             "__metadata__": {"key": "string", ...}}      (optional, ignored)
 * data                       raw little-endian, row-major; offsets are relative to the start of this region
 * </pre>
 * Accepted dtypes: F32, F16, BF16. Every tensor's {@code end - begin} must equal its element count times the
 * element size, and lie inside the data region. Tensors named the fla way ({@code model.layers.N...}) are first
 * renamed to BlinkDL names by {@link FlaRwkv7Names}; then {@link BlinkDlCanonicalizer} applies the load-time
 * transforms.
 */
public final class SafetensorsFile {
    /** Headers larger than this are refused (the reference implementation uses the same limit). */
    static final long MAX_HEADER = 100L * 1024 * 1024;

    private static final ObjectMapper JSON = new ObjectMapper().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    private SafetensorsFile() {}

    public static WeightFile read(Path path) throws IOException {
        return WeightFile.load(path, "safetensors", WeightFile.Origin.BLINKDL, (file, arena) -> {
            Map<String, Tensor> raw = parse(path, file);
            try {
                if (FlaRwkv7Names.isFla(raw.keySet())) {
                    raw = FlaRwkv7Names.toBlinkDl(raw);
                }
            } catch (IllegalArgumentException e) {
                throw new IOException(path + ": " + e.getMessage(), e);
            }
            return BlinkDlCanonicalizer.canonicalize(path, raw);
        });
    }

    /** The tensors exactly as stored (names, shapes and types of the file), slices of {@code file}. */
    static Map<String, Tensor> parse(Path path, MemorySegment file) throws IOException {
        long size = file.byteSize();
        if (size < 8) {
            throw new IOException(path + ": not a safetensors file (shorter than its 8-byte header length)");
        }
        long headerLen = file.get(ValueLayout.JAVA_LONG_UNALIGNED, 0);
        if (headerLen < 2 || headerLen > MAX_HEADER || headerLen > size - 8) {
            throw new IOException(path + ": bad safetensors header length " + Long.toUnsignedString(headerLen)
                    + " (file has " + size + " bytes; limit " + MAX_HEADER + ")");
        }
        byte[] headerBytes = file.asSlice(8, headerLen).toArray(ValueLayout.JAVA_BYTE);
        JsonNode header;
        try {
            header = JSON.readTree(new String(headerBytes, StandardCharsets.UTF_8));
        } catch (JsonProcessingException e) {
            throw new IOException(path + ": safetensors header is not valid JSON: " + e.getOriginalMessage(), e);
        }
        if (header == null || !header.isObject()) {
            throw new IOException(path + ": safetensors header is not a JSON object");
        }
        long dataStart = 8 + headerLen;
        MemorySegment data = file.asSlice(dataStart);
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        Iterator<Map.Entry<String, JsonNode>> it = header.properties().iterator();
        while (it.hasNext()) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!e.getKey().equals("__metadata__")) {
                tensors.put(e.getKey(), tensor(path, e.getKey(), e.getValue(), data));
            }
        }
        if (tensors.isEmpty()) {
            throw new IOException(path + ": safetensors file holds no tensors");
        }
        refuseOverlaps(path, tensors, data);
        return tensors;
    }

    /**
     * Tensors may not share bytes (as the reference implementation requires): a file whose entries overlap would
     * make a few MB of data stand for many tensors, and is malformed anyway. Sorted by start, each tensor must
     * begin at or after the previous one's end.
     */
    private static void refuseOverlaps(Path path, Map<String, Tensor> tensors, MemorySegment data) throws IOException {
        record Span(String name, long begin, long end) {}
        List<Span> spans = new ArrayList<>();
        long base = data.address();
        for (Tensor t : tensors.values()) {
            long begin = t.data().address() - base;
            spans.add(new Span(t.name(), begin, begin + t.data().byteSize()));
        }
        spans.sort(Comparator.comparingLong(Span::begin).thenComparingLong(Span::end));
        for (int i = 1; i < spans.size(); i++) {
            Span a = spans.get(i - 1);
            Span b = spans.get(i);
            if (b.begin() < a.end() && b.end() > b.begin()) {
                throw new IOException(path + ": tensors '" + a.name() + "' [" + a.begin() + ", " + a.end()
                        + ") and '" + b.name() + "' [" + b.begin() + ", " + b.end() + ") overlap: tensors may not "
                        + "share bytes");
            }
        }
    }

    private static Tensor tensor(Path path, String name, JsonNode info, MemorySegment data) throws IOException {
        String where = path + ": tensor '" + name + "'";
        if (!info.isObject()) {
            throw new IOException(where + ": header entry is not an object");
        }
        WeightType type = dtype(where, info.get("dtype"));
        long[] shape = shape(where, info.get("shape"));
        JsonNode offsets = info.get("data_offsets");
        if (offsets == null
                || !offsets.isArray()
                || offsets.size() != 2
                || !offsets.get(0).canConvertToLong()
                || !offsets.get(1).canConvertToLong()
                || !offsets.get(0).isIntegralNumber()
                || !offsets.get(1).isIntegralNumber()) {
            throw new IOException(where + ": data_offsets must be [begin, end], got " + offsets);
        }
        long begin = offsets.get(0).longValue();
        long end = offsets.get(1).longValue();
        if (begin < 0 || end < begin || end > data.byteSize()) {
            throw new IOException(where + ": data_offsets [" + begin + ", " + end + "] lie outside the "
                    + data.byteSize() + "-byte data region");
        }
        long bytes = type.blockBytes;
        try {
            for (long d : shape) {
                bytes = Math.multiplyExact(bytes, d);
            }
        } catch (ArithmeticException e) {
            throw new IOException(where + ": shape " + Arrays.toString(shape) + " is too large", e);
        }
        if (end - begin != bytes) {
            throw new IOException(where + ": " + type + " " + Arrays.toString(shape) + " needs " + bytes
                    + " bytes, data_offsets give " + (end - begin));
        }
        return Tensor.of(name, type, shape, data.asSlice(begin, bytes));
    }

    private static WeightType dtype(String where, JsonNode node) throws IOException {
        String dtype = node == null ? "(missing)" : node.asText();
        return switch (dtype) {
            case "F32" -> WeightType.F32;
            case "F16" -> WeightType.F16;
            case "BF16" -> WeightType.BF16;
            default ->
                throw new IOException(
                        where + ": unsupported dtype " + dtype + " (only F32, F16 and BF16 are supported)");
        };
    }

    private static long[] shape(String where, JsonNode node) throws IOException {
        if (node == null || !node.isArray() || node.size() > 8) {
            throw new IOException(where + ": shape must be an array of at most 8 sizes, got " + node);
        }
        long[] shape = new long[node.size()];
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = node.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.longValue() < 0) {
                throw new IOException(where + ": bad dimension " + d + " in shape " + node);
            }
            shape[i] = d.longValue();
        }
        return shape;
    }
}
