package dev.rwkvflink.engine.format;

import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Reader for PyTorch checkpoints ({@code torch.save} of a state dict, torch 1.6 and later), used in place (read into
 * memory or mapped, {@link WeightFile.Access}) where the archive allows, converted to the canonical form by {@link BlinkDlCanonicalizer}.
 *
 * <p>The file is a ZIP archive (zip64 for large files) whose entries all sit under one folder {@code <prefix>/}:
 * <pre>
 * &lt;prefix&gt;/data.pkl      the state dict as a pickle (protocol 2 by default)
 * &lt;prefix&gt;/data/&lt;key&gt;    one entry per storage: its raw bytes, little-endian, normally STORED
 *                        (uncompressed) at a 64-byte aligned offset, so it can be used in place
 * &lt;prefix&gt;/version       serialization version; &lt;prefix&gt;/byteorder ("little" or "big", torch 2.1+); others
 * </pre>
 * In the pickle a tensor is {@code torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
 * requires_grad, backward_hooks[, metadata])}, where {@code storage} is a persistent id
 * {@code ('storage', torch.FloatStorage, key, location, numel)} that names the entry {@code data/<key>}.
 *
 * <p>Pickles can run arbitrary code when Python loads them. This reader cannot: {@link PthUnpickler} knows only the
 * opcodes a state dict uses and only the globals in {@link PthUnpickler#ALLOWED}; anything else is refused before any
 * object is built, and the objects it builds are plain Java values (strings, numbers, lists, maps, records).
 */
public final class PthFile {
    /** Largest {@code data.pkl} accepted; a state dict's pickle is a few hundred bytes per tensor. */
    static final int MAX_PICKLE = 64 << 20;

    private static final Pattern STORAGE_KEY = Pattern.compile("[A-Za-z0-9_]{1,64}");

    private PthFile() {}

    public static WeightFile read(Path path) throws IOException {
        return WeightFile.load(
                path,
                "pth",
                WeightFile.Origin.BLINKDL,
                (file, budget) -> BlinkDlCanonicalizer.canonicalize(path, readStateDict(path, file, budget)));
    }

    /**
     * The state dict's tensors as stored (BlinkDL's raw names, shapes and types); heap copies go to {@code arena}.
     * Values of the top-level dict that are not tensors (strings, nested dicts) are skipped. The tensors may declare
     * no more bytes, all together, than the file's {@link LoadBudget}, which every copy is also charged to.
     */
    static Map<String, Tensor> readStateDict(Path path, MemorySegment file, LoadBudget arena) throws IOException {
        PthZip zip = PthZip.open(path, file);
        String prefix = findPrefix(path, zip);
        PthZip.Entry order = zip.entry(prefix + "byteorder");
        if (order != null) {
            String value = new String(zip.bytes(order, 16), StandardCharsets.US_ASCII).trim();
            if (!value.equals("little")) {
                throw new IOException(
                        path + ": byteorder is '" + value + "'; only little-endian checkpoints are " + "supported");
            }
        }
        PthZip.Entry pkl = zip.entry(prefix + "data.pkl");
        Object root = new PthUnpickler(path, zip.bytes(pkl, MAX_PICKLE)).load();
        if (!(root instanceof Map<?, ?> dict)) {
            throw new IOException(path + ": data.pkl holds " + PthUnpickler.describe(root) + ", not a state dict");
        }
        checkDeclaredBytes(path, dict, arena);
        Map<String, MemorySegment> storages = new HashMap<>();
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : dict.entrySet()) {
            if (e.getValue() instanceof PthUnpickler.TensorRef ref) {
                if (!(e.getKey() instanceof String name)) {
                    throw new IOException(
                            path + ": state dict key " + PthUnpickler.describe(e.getKey()) + " is not a string");
                }
                tensors.put(name, tensor(path, name, ref, zip, prefix, storages, arena));
            }
        }
        if (tensors.isEmpty()) {
            throw new IOException(path + ": the state dict holds no tensors at its top level");
        }
        return tensors;
    }

    /**
     * The bytes all the state dict's tensors declare (elements x element size, views counted in full, for every
     * name: tied weights count twice), refused past the budget before any storage is read.
     */
    private static void checkDeclaredBytes(Path path, Map<?, ?> dict, LoadBudget budget) throws IOException {
        long total = 0;
        try {
            for (Object value : dict.values()) {
                if (value instanceof PthUnpickler.TensorRef ref) {
                    long numel = 1;
                    for (long d : ref.shape()) {
                        numel = Math.multiplyExact(numel, Math.max(d, 0));
                    }
                    total = Math.addExact(total, Math.multiplyExact(numel, 4)); // widest accepted type: fp32
                }
            }
        } catch (ArithmeticException e) {
            total = -1;
        }
        try {
            budget.checkDeclared(total);
        } catch (IllegalArgumentException e) {
            throw new IOException(path + ": " + e.getMessage(), e);
        }
    }

    /** "&lt;prefix&gt;/" of the one {@code data.pkl} entry (torch writes the archive name as the prefix). */
    private static String findPrefix(Path path, PthZip zip) throws IOException {
        List<String> found = new ArrayList<>();
        for (String name : zip.names()) {
            if (name.equals("data.pkl") || (name.endsWith("/data.pkl") && name.indexOf('/') == name.length() - 9)) {
                found.add(name.substring(0, name.length() - "data.pkl".length()));
            }
        }
        if (found.size() != 1) {
            throw new IOException(path + ": expected one <prefix>/data.pkl entry in the archive, found " + found.size()
                    + " (is this a torch.save checkpoint?)");
        }
        return found.getFirst();
    }

    private static Tensor tensor(
            Path path,
            String name,
            PthUnpickler.TensorRef ref,
            PthZip zip,
            String prefix,
            Map<String, MemorySegment> storages,
            LoadBudget arena)
            throws IOException {
        String where = path + ": tensor '" + name + "'";
        PthUnpickler.StorageRef storage = ref.storage();
        String dtype = ref.dtype() != null ? ref.dtype() : storage.type();
        WeightType type = switch (dtype) {
            case "torch.FloatStorage", "torch.float32", "torch.float" -> WeightType.F32;
            case "torch.HalfStorage", "torch.float16", "torch.half" -> WeightType.F16;
            case "torch.BFloat16Storage", "torch.bfloat16" -> WeightType.BF16;
            default ->
                throw new IOException(
                        where + " has type " + dtype + "; only float32, float16 and bfloat16 tensors can be loaded");
        };
        if (!STORAGE_KEY.matcher(storage.key()).matches()) {
            throw new IOException(where + ": bad storage key '" + storage.key() + "'");
        }
        MemorySegment bytes = storages.get(storage.key());
        if (bytes == null) {
            PthZip.Entry entry = zip.entry(prefix + "data/" + storage.key());
            if (entry == null) {
                throw new IOException(
                        where + ": its storage " + prefix + "data/" + storage.key() + " is missing from the archive");
            }
            bytes = zip.data(entry, arena);
            int elementSize = PthUnpickler.storageElementSize(storage.type());
            long expected = storage.numel() <= Long.MAX_VALUE / elementSize ? storage.numel() * elementSize : -1;
            if (bytes.byteSize() != expected) {
                throw new IOException(where + ": storage " + storage.key() + " has " + bytes.byteSize()
                        + " bytes, its " + storage.numel() + " elements of " + storage.type() + " need "
                        + expected);
            }
            storages.put(storage.key(), bytes);
        }
        return view(where, name, type, bytes, ref.offset(), ref.shape(), ref.stride(), arena);
    }

    /**
     * The tensor {@code shape} / {@code stride} / {@code offset} (in elements) selects from {@code storage}: a slice
     * of it when the view is contiguous, else a contiguous copy in {@code arena} (transposes, column slices).
     * Views that read an element twice (stride 0 from {@code expand}) are refused: their copy could be any size.
     */
    static Tensor view(
            String where,
            String name,
            WeightType type,
            MemorySegment storage,
            long offset,
            long[] shape,
            long[] stride,
            Arena arena)
            throws IOException {
        int es = type.blockBytes;
        long capacity = storage.byteSize() / es;
        if (shape.length != stride.length) {
            throw new IOException(where + ": size " + Arrays.toString(shape) + " and stride " + Arrays.toString(stride)
                    + " differ in rank");
        }
        long numel = 1;
        long last = offset;
        boolean contiguous = true;
        long expectedStride = 1;
        try {
            for (int i = shape.length - 1; i >= 0; i--) {
                if (shape[i] < 0 || stride[i] < 0) {
                    throw new IOException(where + ": negative size or stride " + Arrays.toString(shape) + " / "
                            + Arrays.toString(stride));
                }
                numel = Math.multiplyExact(numel, shape[i]);
                if (shape[i] > 0) {
                    last = Math.addExact(last, Math.multiplyExact(shape[i] - 1, stride[i]));
                }
                if (shape[i] != 1 && stride[i] != expectedStride) {
                    contiguous = false;
                }
                expectedStride = Math.multiplyExact(expectedStride, Math.max(shape[i], 1));
            }
        } catch (ArithmeticException e) {
            throw new IOException(where + ": size " + Arrays.toString(shape) + " overflows", e);
        }
        if (numel == 0) {
            return Tensor.of(name, type, shape, storage.asSlice(0, 0));
        }
        if (offset < 0 || last >= capacity) {
            throw new IOException(where + ": offset " + offset + ", size " + Arrays.toString(shape) + ", stride "
                    + Arrays.toString(stride) + " reach element " + last + " of a storage of " + capacity);
        }
        if (contiguous) {
            return Tensor.of(name, type, shape, storage.asSlice(offset * es, numel * es));
        }
        if (numel > capacity) {
            throw new IOException(where + ": strides " + Arrays.toString(stride) + " reuse storage elements "
                    + "(an expanded tensor); save a contiguous copy instead");
        }
        MemorySegment copy;
        try {
            copy = arena.allocate(numel * es, 64);
        } catch (IllegalArgumentException tooMuch) {
            throw new IOException(where + ": copying its strided view: " + tooMuch.getMessage(), tooMuch);
        }
        long[] index = new long[shape.length];
        for (long i = 0; i < numel; i++) {
            long src = offset;
            for (int d = 0; d < shape.length; d++) {
                src += index[d] * stride[d];
            }
            MemorySegment.copy(storage, src * es, copy, i * es, es);
            for (int d = shape.length - 1; d >= 0 && ++index[d] == shape[d]; d--) {
                index[d] = 0;
            }
        }
        return Tensor.of(name, type, shape, copy);
    }
}
