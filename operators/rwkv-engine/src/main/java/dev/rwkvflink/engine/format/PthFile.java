package dev.rwkvflink.engine.format;

import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.zip.CRC32;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

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
 * <p>Pickles can run arbitrary code when Python loads them. This reader cannot: {@link Unpickler} knows only the
 * opcodes a state dict uses and only the globals in {@link Unpickler#ALLOWED}; anything else is refused before any
 * object is built, and the objects it builds are plain Java values (strings, numbers, lists, maps, records).
 */
public final class PthFile {
    /** Largest {@code data.pkl} accepted; a state dict's pickle is a few hundred bytes per tensor. */
    static final int MAX_PICKLE = 64 << 20;

    private static final Pattern STORAGE_KEY = Pattern.compile("[A-Za-z0-9_]{1,64}");

    private PthFile() {
    }

    public static WeightFile read(Path path) throws IOException {
        return WeightFile.load(path, "pth", WeightFile.Origin.BLINKDL,
                (file, budget) -> BlinkDlCanonicalizer.canonicalize(path, readStateDict(path, file, budget)));
    }

    /**
     * The state dict's tensors as stored (BlinkDL's raw names, shapes and types); heap copies go to {@code arena}.
     * Values of the top-level dict that are not tensors (strings, nested dicts) are skipped. The tensors may declare
     * no more bytes, all together, than the file's {@link LoadBudget}, which every copy is also charged to.
     */
    static Map<String, Tensor> readStateDict(Path path, MemorySegment file, LoadBudget arena) throws IOException {
        Zip zip = Zip.open(path, file);
        String prefix = findPrefix(path, zip);
        Zip.Entry order = zip.entry(prefix + "byteorder");
        if (order != null) {
            String value = new String(zip.bytes(order, 16), StandardCharsets.US_ASCII).trim();
            if (!value.equals("little")) {
                throw new IOException(path + ": byteorder is '" + value + "'; only little-endian checkpoints are "
                        + "supported");
            }
        }
        Zip.Entry pkl = zip.entry(prefix + "data.pkl");
        Object root = new Unpickler(path, zip.bytes(pkl, MAX_PICKLE)).load();
        if (!(root instanceof Map<?, ?> dict)) {
            throw new IOException(path + ": data.pkl holds " + Unpickler.describe(root) + ", not a state dict");
        }
        checkDeclaredBytes(path, dict, arena);
        Map<String, MemorySegment> storages = new HashMap<>();
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : dict.entrySet()) {
            if (e.getValue() instanceof Unpickler.TensorRef ref) {
                if (!(e.getKey() instanceof String name)) {
                    throw new IOException(path + ": state dict key " + Unpickler.describe(e.getKey())
                            + " is not a string");
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
                if (value instanceof Unpickler.TensorRef ref) {
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
    private static String findPrefix(Path path, Zip zip) throws IOException {
        List<String> found = new ArrayList<>();
        for (String name : zip.names()) {
            if (name.equals("data.pkl") || (name.endsWith("/data.pkl") && name.indexOf('/') == name.length() - 9)) {
                found.add(name.substring(0, name.length() - "data.pkl".length()));
            }
        }
        if (found.size() != 1) {
            throw new IOException(path + ": expected one <prefix>/data.pkl entry in the archive, found "
                    + found.size() + " (is this a torch.save checkpoint?)");
        }
        return found.getFirst();
    }

    private static Tensor tensor(Path path, String name, Unpickler.TensorRef ref, Zip zip, String prefix,
                                 Map<String, MemorySegment> storages, LoadBudget arena) throws IOException {
        String where = path + ": tensor '" + name + "'";
        Unpickler.StorageRef storage = ref.storage();
        String dtype = ref.dtype() != null ? ref.dtype() : storage.type();
        WeightType type = switch (dtype) {
            case "torch.FloatStorage", "torch.float32", "torch.float" -> WeightType.F32;
            case "torch.HalfStorage", "torch.float16", "torch.half" -> WeightType.F16;
            case "torch.BFloat16Storage", "torch.bfloat16" -> WeightType.BF16;
            default -> throw new IOException(where + " has type " + dtype
                    + "; only float32, float16 and bfloat16 tensors can be loaded");
        };
        if (!STORAGE_KEY.matcher(storage.key()).matches()) {
            throw new IOException(where + ": bad storage key '" + storage.key() + "'");
        }
        MemorySegment bytes = storages.get(storage.key());
        if (bytes == null) {
            Zip.Entry entry = zip.entry(prefix + "data/" + storage.key());
            if (entry == null) {
                throw new IOException(where + ": its storage " + prefix + "data/" + storage.key()
                        + " is missing from the archive");
            }
            bytes = zip.data(entry, arena);
            int elementSize = Unpickler.storageElementSize(storage.type());
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
    static Tensor view(String where, String name, WeightType type, MemorySegment storage, long offset,
                       long[] shape, long[] stride, Arena arena) throws IOException {
        int es = type.blockBytes;
        long capacity = storage.byteSize() / es;
        if (shape.length != stride.length) {
            throw new IOException(where + ": size " + Arrays.toString(shape) + " and stride "
                    + Arrays.toString(stride) + " differ in rank");
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

    /**
     * The central directory of a ZIP archive (PKWARE APPNOTE 4.3: end-of-central-directory record, its zip64
     * variant, central file headers with zip64 extra fields, local file headers). Only STORED (0) and DEFLATED (8)
     * entries; every offset is checked to lie inside the archive before the central directory.
     */
    static final class Zip {
        private static final int EOCD = 0x06054b50;
        private static final int EOCD64 = 0x06064b50;
        private static final int EOCD64_LOCATOR = 0x07064b50;
        private static final int CENTRAL = 0x02014b50;
        private static final int LOCAL = 0x04034b50;
        private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        private static final ValueLayout.OfLong I64 =
                ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        private static final ValueLayout.OfShort I16 =
                ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

        /** One archive member as the central directory describes it. */
        record Entry(String name, int method, long compressedSize, long size, long localHeader, int crc) {
        }

        private final Path path;
        private final MemorySegment file;
        private final long centralStart;
        private final Map<String, Entry> entries;

        private Zip(Path path, MemorySegment file, long centralStart, Map<String, Entry> entries) {
            this.path = path;
            this.file = file;
            this.centralStart = centralStart;
            this.entries = entries;
        }

        static Zip open(Path path, MemorySegment file) throws IOException {
            long size = file.byteSize();
            long eocd = -1;
            for (long p = size - 22; p >= Math.max(0, size - 22 - 0xFFFF); p--) {
                if (file.get(I32, p) == EOCD) {
                    eocd = p;
                    break;
                }
            }
            if (eocd < 0) {
                throw new IOException(path + ": not a zip archive, or truncated (no end-of-central-directory "
                        + "record); PyTorch checkpoints from torch before 1.6 are not supported");
            }
            long count = u16(file, eocd + 10);
            long cdSize = u32(file, eocd + 12);
            long cdOffset = u32(file, eocd + 16);
            long cdEnd = eocd;
            if (count == 0xFFFF || cdSize == 0xFFFFFFFFL || cdOffset == 0xFFFFFFFFL) {
                long locator = eocd - 20;
                if (locator < 0 || file.get(I32, locator) != EOCD64_LOCATOR) {
                    throw new IOException(path + ": zip64 archive without its zip64 locator");
                }
                long eocd64 = file.get(I64, locator + 8);
                if (eocd64 < 0 || eocd64 > locator - 56 || file.get(I32, eocd64) != EOCD64) {
                    throw new IOException(path + ": bad zip64 end-of-central-directory offset " + eocd64);
                }
                count = file.get(I64, eocd64 + 32);
                cdSize = file.get(I64, eocd64 + 40);
                cdOffset = file.get(I64, eocd64 + 48);
                cdEnd = eocd64;
            }
            if (cdOffset < 0 || cdSize < 0 || cdOffset > cdEnd || cdSize > cdEnd - cdOffset || count < 0
                    || count > cdSize / 46) {
                throw new IOException(path + ": corrupt zip central directory (offset " + cdOffset + ", size "
                        + cdSize + ", " + count + " entries, file " + size + " bytes)");
            }
            Map<String, Entry> entries = new LinkedHashMap<>();
            long p = cdOffset;
            long end = cdOffset + cdSize;
            for (long i = 0; i < count; i++) {
                if (end - p < 46 || file.get(I32, p) != CENTRAL) {
                    throw new IOException(path + ": corrupt zip central directory entry at byte " + p);
                }
                int method = u16(file, p + 10);
                int crc = file.get(I32, p + 16);
                long csize = u32(file, p + 20);
                long usize = u32(file, p + 24);
                int nameLen = u16(file, p + 28);
                int extraLen = u16(file, p + 30);
                int commentLen = u16(file, p + 32);
                long local = u32(file, p + 42);
                if (46L + nameLen + extraLen + commentLen > end - p) {
                    throw new IOException(path + ": zip central directory entry at byte " + p
                            + " runs past the directory");
                }
                String name = new String(file.asSlice(p + 46, nameLen).toArray(ValueLayout.JAVA_BYTE),
                        StandardCharsets.UTF_8);
                long[] big = {usize, csize, local};
                zip64(path, file, p + 46 + nameLen, extraLen, big);
                Entry entry = new Entry(name, method, big[1], big[0], big[2], crc);
                if (entries.put(name, entry) != null) {
                    throw new IOException(path + ": zip entry " + name + " appears twice");
                }
                p += 46L + nameLen + extraLen + commentLen;
            }
            Zip zip = new Zip(path, file, cdOffset, entries);
            zip.checkDisjoint();
            return zip;
        }

        /**
         * Refuses entries whose bytes (local header to end of data) overlap: torch never writes such archives, and
         * entries that share one compressed blob let a small file inflate to any size, or take any time.
         */
        private void checkDisjoint() throws IOException {
            List<long[]> ranges = new ArrayList<>(); // {start, end, index}
            List<Entry> list = new ArrayList<>(entries.values());
            for (int i = 0; i < list.size(); i++) {
                Entry e = list.get(i);
                ranges.add(new long[] {e.localHeader(), dataStart(e) + e.compressedSize(), i});
            }
            ranges.sort((a, b) -> Long.compare(a[0], b[0]));
            for (int i = 1; i < ranges.size(); i++) {
                long[] before = ranges.get(i - 1);
                long[] here = ranges.get(i);
                if (here[0] < before[1]) {
                    throw new IOException(path + ": zip entries " + list.get((int) before[2]).name() + " (bytes "
                            + before[0] + ".." + before[1] + ") and " + list.get((int) here[2]).name() + " (bytes "
                            + here[0] + ".." + here[1] + ") overlap; an archive that reuses bytes for several "
                            + "entries is refused");
                }
            }
        }

        /** Replaces the 0xFFFFFFFF fields of {@code vals} (usize, csize, local offset) from a zip64 extra field. */
        private static void zip64(Path path, MemorySegment file, long extra, int len, long[] vals) throws IOException {
            long p = extra;
            long end = extra + len;
            while (end - p >= 4) {
                int id = u16(file, p);
                int size = u16(file, p + 2);
                if (size > end - p - 4) {
                    throw new IOException(path + ": corrupt zip extra field at byte " + p);
                }
                if (id == 0x0001) {
                    long q = p + 4;
                    for (int i = 0; i < vals.length; i++) {
                        if (vals[i] == 0xFFFFFFFFL) {
                            if (q + 8 > p + 4 + size) {
                                throw new IOException(path + ": short zip64 extra field at byte " + p);
                            }
                            vals[i] = file.get(I64, q);
                            q += 8;
                        }
                    }
                }
                p += 4 + size;
            }
        }

        Set<String> names() {
            return entries.keySet();
        }

        /** The entry called {@code name}, or null. */
        Entry entry(String name) {
            return entries.get(name);
        }

        /**
         * The entry's stored bytes, CRC-checked: a slice of the file for STORED entries, an inflated copy otherwise,
         * allocated from {@code arena} (a {@link LoadBudget} refuses a size past the file's budget before any
         * inflating is done).
         */
        MemorySegment data(Entry e, Arena arena) throws IOException {
            long start = dataStart(e);
            MemorySegment raw = file.asSlice(start, e.compressedSize());
            if (e.method() == 0) {
                if (e.size() != e.compressedSize()) {
                    throw new IOException(path + ": stored zip entry " + e.name() + " has differing sizes "
                            + e.size() + " and " + e.compressedSize());
                }
                checkCrc(e, raw); // a flipped bit in the weights is caught here, as torch's own reader would
                return raw;
            }
            if (e.method() != 8) {
                throw new IOException(path + ": zip entry " + e.name() + " uses compression method " + e.method()
                        + " (only stored and deflated are supported)");
            }
            if (e.size() > Integer.MAX_VALUE || e.compressedSize() > Integer.MAX_VALUE) {
                throw new IOException(path + ": deflated zip entry " + e.name() + " is over 2 GiB; only stored "
                        + "entries may be that large");
            }
            // deflate cannot expand more than 1032:1; anything claiming more is corrupt or hostile
            if (e.size() < 0 || e.size() > 1032 * e.compressedSize() + 1024) {
                throw new IOException(path + ": zip entry " + e.name() + " claims " + e.size() + " bytes from "
                        + e.compressedSize() + " compressed");
            }
            MemorySegment out;
            try {
                out = arena.allocate(Math.max(1, e.size()), 64).asSlice(0, e.size());
            } catch (IllegalArgumentException tooMuch) {
                throw new IOException(path + ": inflating zip entry " + e.name() + ": " + tooMuch.getMessage(),
                        tooMuch);
            }
            Inflater inflater = new Inflater(true);
            try {
                inflater.setInput(raw.asByteBuffer());
                ByteBuffer dst = out.asByteBuffer();
                while (!inflater.finished()) {
                    if (inflater.inflate(dst) == 0 && (inflater.needsInput() || inflater.needsDictionary()
                            || !dst.hasRemaining())) {
                        break;
                    }
                }
                if (!inflater.finished() || dst.hasRemaining()) {
                    throw new IOException(path + ": zip entry " + e.name() + " does not inflate to the "
                            + e.size() + " bytes its header gives (" + (dst.hasRemaining()
                            ? dst.position() + " bytes" : "more") + ")");
                }
            } catch (DataFormatException ex) {
                throw new IOException(path + ": zip entry " + e.name() + " is corrupt: " + ex.getMessage(), ex);
            } finally {
                inflater.end();
            }
            checkCrc(e, out);
            return out;
        }

        /** The entry's bytes on the heap (CRC-checked), refusing entries larger than {@code limit}. */
        byte[] bytes(Entry e, int limit) throws IOException {
            if (e.size() > limit) {
                throw new IOException(path + ": zip entry " + e.name() + " is " + e.size() + " bytes, more than "
                        + "the " + limit + " allowed");
            }
            return data(e, Arena.ofAuto()).toArray(ValueLayout.JAVA_BYTE); // data() checks the CRC
        }

        private void checkCrc(Entry e, MemorySegment data) throws IOException {
            CRC32 crc = new CRC32();
            crc.update(data.asByteBuffer());
            if ((int) crc.getValue() != e.crc()) {
                throw new IOException(path + ": zip entry " + e.name() + " fails its CRC-32 check (corrupt file)");
            }
        }

        private long dataStart(Entry e) throws IOException {
            long local = e.localHeader();
            if (local < 0 || local > centralStart - 30 || file.get(I32, local) != LOCAL) {
                throw new IOException(path + ": zip entry " + e.name() + " has no local header at byte " + local);
            }
            long start = local + 30 + u16(file, local + 26) + u16(file, local + 28);
            if (e.compressedSize() < 0 || start > centralStart || e.compressedSize() > centralStart - start) {
                throw new IOException(path + ": zip entry " + e.name() + " (" + e.compressedSize() + " bytes at "
                        + start + ") lies outside the archive's data area");
            }
            return start;
        }

        private static int u16(MemorySegment seg, long off) {
            return seg.get(I16, off) & 0xFFFF;
        }

        private static long u32(MemorySegment seg, long off) {
            return seg.get(I32, off) & 0xFFFFFFFFL;
        }
    }

    /**
     * A restricted pickle reader: just the opcodes and globals a {@code torch.save}d state dict needs. Python
     * objects become Java values: str -&gt; {@link String}, int -&gt; {@link Long}, float -&gt; {@link Double},
     * bool -&gt; {@link Boolean}, None -&gt; {@link #NONE}, tuple -&gt; {@link Tuple}, list -&gt; {@link ArrayList},
     * dict / OrderedDict -&gt; {@link LinkedHashMap}, tensors -&gt; {@link TensorRef}. Nothing is ever executed:
     * REDUCE may only call the whitelisted constructors below, which build these records.
     */
    static final class Unpickler {
        /** Globals a model file may reference, with what they mean here. */
        static final Set<String> ALLOWED = Set.of(
                "collections.OrderedDict",
                "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3",
                "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
                "torch.FloatStorage", "torch.HalfStorage", "torch.BFloat16Storage", "torch.DoubleStorage",
                "torch.LongStorage", "torch.IntStorage", "torch.ShortStorage", "torch.CharStorage",
                "torch.ByteStorage", "torch.BoolStorage", "torch.UntypedStorage", "torch.storage.UntypedStorage",
                "torch.float32", "torch.float", "torch.float16", "torch.half", "torch.bfloat16");

        static final int MAX_STACK = 1 << 20;
        static final int MAX_MEMO = 1 << 22;

        /** Python's None (the stack and collections here hold no Java nulls). */
        static final Object NONE = new Object() {
            @Override
            public String toString() {
                return "None";
            }
        };

        private static final Object MARK = new Object();

        /** A module-level name, such as {@code torch._utils._rebuild_tensor_v2}. */
        record Global(String qualifiedName) {
        }

        /** An immutable Python tuple. */
        record Tuple(List<Object> items) {
        }

        /** A persistent id {@code ('storage', type, key, location, numel)}: entry {@code data/<key>}. */
        record StorageRef(String type, String key, long numel) {
        }

        /** A rebuilt tensor; {@code dtype} is null unless {@code _rebuild_tensor_v3} gave one. */
        record TensorRef(StorageRef storage, long offset, long[] shape, long[] stride, String dtype) {
        }

        private final Path path;
        private final byte[] in;
        private int pos;
        private final ArrayList<Object> stack = new ArrayList<>();
        private final ArrayList<Integer> marks = new ArrayList<>();
        private final Map<Long, Object> memo = new HashMap<>();

        Unpickler(Path path, byte[] pickle) {
            this.path = path;
            this.in = pickle;
        }

        /** Bytes per element of a storage type ({@code UntypedStorage} counts bytes). */
        static int storageElementSize(String type) {
            return switch (type) {
                case "torch.DoubleStorage", "torch.LongStorage" -> 8;
                case "torch.FloatStorage", "torch.IntStorage" -> 4;
                case "torch.HalfStorage", "torch.BFloat16Storage", "torch.ShortStorage" -> 2;
                default -> 1;
            };
        }

        /** A short description of a value for error messages (never recursive). */
        static String describe(Object o) {
            return switch (o) {
                case String s -> "'" + (s.length() > 60 ? s.substring(0, 60) + "..." : s) + "'";
                case Global g -> g.qualifiedName();
                case Tuple t -> "a tuple of " + t.items().size();
                case Map<?, ?> m -> "a dict of " + m.size();
                case List<?> l -> "a list of " + l.size();
                case TensorRef _ -> "a tensor";
                case StorageRef _ -> "a storage";
                case Long l -> "int " + l;
                default -> o == NONE ? "None" : o.getClass().getSimpleName();
            };
        }

        Object load() throws IOException {
            while (true) {
                int at = pos;
                int op = u8();
                switch (op) {
                    case 0x80 -> { // PROTO
                        int proto = u8();
                        if (proto < 2 || proto > 5) {
                            throw error(at, "unsupported pickle protocol " + proto);
                        }
                    }
                    case 0x95 -> skip(8); // FRAME: a length hint only
                    case '}' -> push(new LinkedHashMap<>()); // EMPTY_DICT
                    case ')' -> push(new Tuple(List.of())); // EMPTY_TUPLE
                    case ']' -> push(new ArrayList<>()); // EMPTY_LIST
                    case '(' -> { // MARK
                        if (marks.size() >= MAX_STACK) {
                            throw error(at, "too many nested marks");
                        }
                        marks.add(stack.size());
                    }
                    case 'X' -> push(utf8(at, u32())); // BINUNICODE
                    case 0x8c -> push(utf8(at, u8())); // SHORT_BINUNICODE
                    case 0x8d -> push(utf8(at, i64())); // BINUNICODE8
                    case 'J' -> push((long) i32()); // BININT
                    case 'K' -> push((long) u8()); // BININT1
                    case 'M' -> push((long) (u8() | u8() << 8)); // BININT2
                    case 0x8a -> push(long1(at)); // LONG1
                    case 'G' -> push(Double.longBitsToDouble(Long.reverseBytes(i64()))); // BINFLOAT, big-endian
                    case 0x88 -> push(Boolean.TRUE); // NEWTRUE
                    case 0x89 -> push(Boolean.FALSE); // NEWFALSE
                    case 'N' -> push(NONE);
                    case 'q' -> memoPut(at, u8()); // BINPUT
                    case 'r' -> memoPut(at, u32()); // LONG_BINPUT
                    case 0x94 -> memoPut(at, memo.size()); // MEMOIZE
                    case 'h' -> push(memoGet(at, u8())); // BINGET
                    case 'j' -> push(memoGet(at, u32())); // LONG_BINGET
                    case 't' -> push(new Tuple(popToMark(at))); // TUPLE
                    case 0x85 -> push(tupleOf(1, at)); // TUPLE1
                    case 0x86 -> push(tupleOf(2, at)); // TUPLE2
                    case 0x87 -> push(tupleOf(3, at)); // TUPLE3
                    case '0' -> pop(at); // POP
                    case 's' -> { // SETITEM
                        Object value = pop(at);
                        Object key = pop(at);
                        setItem(at, peek(at), key, value);
                    }
                    case 'u' -> { // SETITEMS
                        List<Object> items = popToMark(at);
                        if (items.size() % 2 != 0) {
                            throw error(at, "SETITEMS with an odd number of items");
                        }
                        Object dict = peek(at);
                        for (int i = 0; i < items.size(); i += 2) {
                            setItem(at, dict, items.get(i), items.get(i + 1));
                        }
                    }
                    case 'a' -> { // APPEND
                        Object value = pop(at);
                        list(at, peek(at)).add(value);
                    }
                    case 'e' -> { // APPENDS
                        List<Object> items = popToMark(at);
                        list(at, peek(at)).addAll(items);
                    }
                    case 'c' -> push(global(at, line(at), line(at))); // GLOBAL "module\nname\n"
                    case 0x93 -> { // STACK_GLOBAL
                        Object name = pop(at);
                        Object module = pop(at);
                        if (!(module instanceof String m) || !(name instanceof String n)) {
                            throw error(at, "STACK_GLOBAL needs two strings");
                        }
                        push(global(at, m, n));
                    }
                    case 'Q' -> push(persistentLoad(at, pop(at))); // BINPERSID
                    case 'R' -> { // REDUCE
                        Object args = pop(at);
                        Object callable = pop(at);
                        push(reduce(at, callable, args));
                    }
                    case 'b' -> { // BUILD: object state (OrderedDict._metadata, parameter state) is not needed
                        Object state = pop(at);
                        Object target = peek(at);
                        if (!(target instanceof Map<?, ?>) && !(target instanceof TensorRef)) {
                            throw error(at, "BUILD on " + describe(target) + " with " + describe(state));
                        }
                    }
                    case '.' -> { // STOP
                        if (stack.size() != 1 || !marks.isEmpty()) {
                            throw error(at, "STOP with " + stack.size() + " values on the stack");
                        }
                        return stack.getFirst();
                    }
                    default -> throw error(at, String.format("unsupported pickle opcode 0x%02x%s: model files may "
                            + "only contain tensors", op, op >= 0x20 && op < 0x7f ? " ('" + (char) op + "')" : ""));
                }
            }
        }

        private Global global(int at, String module, String name) throws IOException {
            String qualified = module + "." + name;
            if (!ALLOWED.contains(qualified)) {
                throw error(at, "refusing global " + qualified + ": model files may only contain tensors");
            }
            return new Global(qualified);
        }

        private Object reduce(int at, Object callable, Object argsObj) throws IOException {
            if (!(callable instanceof Global g)) {
                throw error(at, "REDUCE on " + describe(callable) + ", which is not a function");
            }
            if (!(argsObj instanceof Tuple(List<Object> args))) {
                throw error(at, "REDUCE arguments for " + g.qualifiedName() + " are not a tuple");
            }
            return switch (g.qualifiedName()) {
                case "collections.OrderedDict" -> {
                    if (!args.isEmpty()) {
                        throw error(at, "OrderedDict with constructor arguments");
                    }
                    yield new LinkedHashMap<>();
                }
                case "torch._utils._rebuild_tensor" -> tensor(at, args, 4, 4, null);
                case "torch._utils._rebuild_tensor_v2" -> tensor(at, args, 6, 7, null);
                case "torch._utils._rebuild_tensor_v3" -> {
                    if (args.size() < 7 || !(args.get(6) instanceof Global dtype)) {
                        throw error(at, "_rebuild_tensor_v3 without a dtype");
                    }
                    yield tensor(at, args, 7, 8, dtype.qualifiedName());
                }
                case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state" -> {
                    if (args.isEmpty() || !(args.getFirst() instanceof TensorRef t)) {
                        throw error(at, g.qualifiedName() + " without a tensor");
                    }
                    yield t;
                }
                default -> throw error(at, g.qualifiedName() + " cannot be called");
            };
        }

        private TensorRef tensor(int at, List<Object> args, int min, int max, String dtype) throws IOException {
            if (args.size() < min || args.size() > max) {
                throw error(at, "tensor rebuild with " + args.size() + " arguments, expected " + min + ".." + max);
            }
            if (!(args.get(0) instanceof StorageRef storage) || !(args.get(1) instanceof Long offset)) {
                throw error(at, "tensor rebuild without (storage, offset, ...)");
            }
            return new TensorRef(storage, offset, longs(at, args.get(2)), longs(at, args.get(3)), dtype);
        }

        private long[] longs(int at, Object o) throws IOException {
            if (!(o instanceof Tuple(List<Object> items)) || items.size() > 16) {
                throw error(at, "tensor size/stride is " + describe(o) + ", not a tuple of at most 16 ints");
            }
            long[] out = new long[items.size()];
            for (int i = 0; i < out.length; i++) {
                if (!(items.get(i) instanceof Long v)) {
                    throw error(at, "tensor size/stride holds " + describe(items.get(i)));
                }
                out[i] = v;
            }
            return out;
        }

        private StorageRef persistentLoad(int at, Object pid) throws IOException {
            if (pid instanceof Tuple(List<Object> f) && f.size() == 5 && "storage".equals(f.get(0))
                    && f.get(1) instanceof Global type && type.qualifiedName().contains("Storage")
                    && f.get(2) instanceof String key && f.get(3) instanceof String && f.get(4) instanceof Long n
                    && n >= 0) {
                return new StorageRef(type.qualifiedName(), key, n);
            }
            throw error(at, "persistent id " + describe(pid) + " is not ('storage', type, key, location, numel)");
        }

        private void setItem(int at, Object dict, Object key, Object value) throws IOException {
            if (!(dict instanceof Map<?, ?>)) {
                throw error(at, "SETITEM on " + describe(dict));
            }
            if (!(key instanceof String) && !(key instanceof Long) && !(key instanceof Boolean)) {
                throw error(at, "dict key " + describe(key) + " (only str and int keys are supported)");
            }
            @SuppressWarnings("unchecked")
            Map<Object, Object> map = (Map<Object, Object>) dict;
            map.put(key, value);
        }

        @SuppressWarnings("unchecked")
        private List<Object> list(int at, Object o) throws IOException {
            if (!(o instanceof ArrayList<?>)) {
                throw error(at, "APPEND on " + describe(o));
            }
            return (List<Object>) o;
        }

        private Tuple tupleOf(int n, int at) throws IOException {
            Object[] items = new Object[n];
            for (int i = n - 1; i >= 0; i--) {
                items[i] = pop(at);
            }
            return new Tuple(List.of(items));
        }

        private void memoPut(int at, long index) throws IOException {
            if (stack.isEmpty()) {
                throw error(at, "memo store from an empty stack");
            }
            if (memo.size() >= MAX_MEMO && !memo.containsKey(index)) {
                throw error(at, "more than " + MAX_MEMO + " memo entries");
            }
            memo.put(index, stack.getLast());
        }

        private Object memoGet(int at, long index) throws IOException {
            Object o = memo.get(index);
            if (o == null) {
                throw error(at, "memo entry " + index + " was never stored");
            }
            return o;
        }

        private void push(Object o) throws IOException {
            if (stack.size() >= MAX_STACK) {
                throw error(pos, "pickle stack deeper than " + MAX_STACK);
            }
            stack.add(o);
        }

        private Object pop(int at) throws IOException {
            int floor = marks.isEmpty() ? 0 : marks.getLast();
            if (stack.size() <= floor) {
                throw error(at, "pickle stack underflow");
            }
            return stack.removeLast();
        }

        private Object peek(int at) throws IOException {
            int floor = marks.isEmpty() ? 0 : marks.getLast();
            if (stack.size() <= floor) {
                throw error(at, "pickle stack underflow");
            }
            return stack.getLast();
        }

        private List<Object> popToMark(int at) throws IOException {
            if (marks.isEmpty()) {
                throw error(at, "no MARK to pop to");
            }
            int mark = marks.removeLast();
            List<Object> top = stack.subList(mark, stack.size());
            List<Object> items = List.copyOf(top);
            top.clear();
            return items;
        }

        private int u8() throws IOException {
            need(1);
            return in[pos++] & 0xFF;
        }

        private int i32() throws IOException {
            need(4);
            int v = (in[pos] & 0xFF) | (in[pos + 1] & 0xFF) << 8 | (in[pos + 2] & 0xFF) << 16 | in[pos + 3] << 24;
            pos += 4;
            return v;
        }

        private long u32() throws IOException {
            return i32() & 0xFFFFFFFFL;
        }

        private long i64() throws IOException {
            long lo = u32();
            long hi = u32();
            return lo | hi << 32;
        }

        private Long long1(int at) throws IOException {
            int n = u8();
            if (n > 8) {
                throw error(at, "integer of " + n + " bytes is too large");
            }
            need(n);
            long v = 0;
            for (int i = n - 1; i >= 0; i--) {
                v = v << 8 | (in[pos + i] & 0xFF);
            }
            if (n > 0 && n < 8 && in[pos + n - 1] < 0) {
                v |= -1L << (8 * n); // sign-extend two's complement
            }
            pos += n;
            return v;
        }

        private void skip(int n) throws IOException {
            need(n);
            pos += n;
        }

        private String utf8(int at, long n) throws IOException {
            if (n < 0 || n > in.length - pos) {
                throw error(at, "string of " + n + " bytes runs past the end of data.pkl");
            }
            String s = new String(in, pos, (int) n, StandardCharsets.UTF_8);
            pos += (int) n;
            return s;
        }

        private String line(int at) throws IOException {
            int start = pos;
            while (pos < in.length && in[pos] != '\n') {
                if (pos - start > 256) {
                    throw error(at, "GLOBAL name longer than 256 bytes");
                }
                pos++;
            }
            need(1);
            String s = new String(in, start, pos - start, StandardCharsets.UTF_8);
            pos++;
            return s;
        }

        private void need(int n) throws IOException {
            if (n > in.length - pos) {
                throw error(pos, "data.pkl ends in the middle of an instruction (truncated)");
            }
        }

        private IOException error(int at, String what) {
            return new IOException(path + ": data.pkl byte " + at + ": " + what);
        }
    }
}
