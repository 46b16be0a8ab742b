package dev.rwkvflink.engine.format;

import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Reader for rwkv.cpp model files (its {@code docs/FILE_FORMAT.md}), read into memory or mapped
 * ({@link WeightFile.Access}).
 *
 * <pre>
 * header : int32 magic 0x67676d66 ("ggmf"), version (100 or 101), n_vocab, n_embed, n_layer, data_type
 * record : int32 dim_count, key_length, data_type; int32[dim_count] shape (ggml order = PyTorch reversed);
 *          key bytes (UTF-8); raw data    -- repeated until end of file, no padding
 * </pre>
 * Version 100 files used an older quantized layout: only their FP32/FP16 tensors are accepted.
 */
public final class RwkvCppFile {
    public static final int MAGIC = 0x67676d66;
    private static final int MAX_DIMS = 4;
    private static final int MAX_KEY = 1024;

    private RwkvCppFile() {}

    public static WeightFile read(Path path) throws IOException {
        return WeightFile.load(path, "rwkv.cpp", WeightFile.Origin.RWKV_CPP, (file, arena) -> parse(path, file));
    }

    static Map<String, Tensor> parse(Path path, MemorySegment file) throws IOException {
        long size = file.byteSize();
        if (size < 24) {
            throw new IOException(path + ": not an rwkv.cpp file (shorter than its 24-byte header)");
        }
        int magic = i32(file, 0);
        if (magic != MAGIC) {
            throw new IOException(path + ": bad magic 0x" + Integer.toHexString(magic) + ", expected 0x67676d66");
        }
        int version = i32(file, 4);
        if (version != 100 && version != 101) {
            throw new IOException(path + ": unsupported rwkv.cpp file version " + version + " (100 and 101 are known)");
        }
        int nVocab = i32(file, 8);
        int nEmbed = i32(file, 12);
        int nLayer = i32(file, 16);
        if (nVocab <= 0 || nEmbed <= 0 || nLayer <= 0) {
            throw new IOException(path + ": header has non-positive sizes: vocab " + nVocab + ", embed " + nEmbed
                    + ", layers " + nLayer);
        }
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        long off = 24;
        while (off < size) {
            if (size - off < 12) {
                throw new IOException(path + ": truncated tensor record at byte " + off);
            }
            int dims = i32(file, off);
            int keyLen = i32(file, off + 4);
            int typeId = i32(file, off + 8);
            off += 12;
            if (dims < 1 || dims > MAX_DIMS || keyLen < 1 || keyLen > MAX_KEY) {
                throw new IOException(path + ": corrupt tensor record at byte " + (off - 12) + " (dims " + dims
                        + ", key length " + keyLen + ")");
            }
            WeightType type;
            try {
                type = WeightType.fromGgmlId(typeId);
            } catch (IllegalArgumentException e) {
                throw new IOException(path + ": " + e.getMessage(), e);
            }
            if (version == 100 && type.isQuantized()) {
                throw new IOException(path + ": file version 100 uses the old " + type
                        + " layout, which is not supported; re-quantize it with a current rwkv.cpp (version 101)");
            }
            if (size - off < 4L * dims + keyLen) {
                throw new IOException(path + ": truncated tensor header at byte " + off);
            }
            long[] shape = new long[dims];
            for (int i = 0; i < dims; i++) {
                long d = i32(file, off + 4L * i);
                if (d < 1) {
                    throw new IOException(path + ": non-positive dimension " + d + " at byte " + (off + 4L * i));
                }
                shape[dims - 1 - i] = d; // ggml order is reversed
            }
            off += 4L * dims;
            String key = new String(file.asSlice(off, keyLen).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
            off += keyLen;
            long n = 1;
            long bytes;
            try {
                for (long d : shape) {
                    n = Math.multiplyExact(n, d);
                }
                if (n % type.blockSize != 0) {
                    throw new IOException(path + ": tensor " + key + " has " + n + " elements, not a multiple of "
                            + "the " + type + " block size");
                }
                bytes = Math.multiplyExact(n / type.blockSize, (long) type.blockBytes);
            } catch (ArithmeticException e) {
                throw new IOException(
                        path + ": tensor " + key + " of shape " + Arrays.toString(shape)
                                + " is too large (corrupt record at byte " + (off - keyLen - 4L * dims - 12) + ")",
                        e);
            }
            if (bytes > size - off) {
                throw new IOException(path + ": tensor " + key + " needs " + bytes + " bytes, only " + (size - off)
                        + " left in the file");
            }
            if (tensors.containsKey(key)) {
                throw new IOException(path + ": tensor " + key + " appears twice");
            }
            tensors.put(key, Tensor.of(key, type, shape, file.asSlice(off, bytes)));
            off += bytes;
        }
        Tensor emb = tensors.get("emb.weight");
        if (emb == null) {
            throw new IOException(path + ": no emb.weight tensor");
        }
        if (emb.rank() != 2 || emb.dim(0) != nVocab || emb.dim(1) != nEmbed) {
            throw new IOException(path + ": emb.weight shape " + emb + " disagrees with header vocab " + nVocab
                    + " x embed " + nEmbed);
        }
        return tensors;
    }

    private static int i32(MemorySegment seg, long off) {
        return seg.get(ValueLayout.JAVA_INT_UNALIGNED, off);
    }
}
