package dev.rwkvflink.engine.format;

import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Writes canonical tensors as an rwkv.cpp model file (version 101), the layout {@link RwkvCppFile} reads and
 * memory-maps: so a model built in memory (e.g. {@code RandomModels}) can be loaded from a file like a real one.
 * Only types with a ggml id (F32, F16, the ggml block types) can be written.
 */
public final class RwkvCppWriter {
    private static final int VERSION = 101;

    private RwkvCppWriter() {
    }

    /** Writes {@code weights} to {@code out}; the header's sizes come from {@code emb.weight} and the block count. */
    public static void write(WeightFile weights, Path out) throws IOException {
        Tensor emb = weights.get("emb.weight");
        int layers = 0;
        while (weights.has("blocks." + layers + ".ln1.weight")) {
            layers++;
        }
        WeightType matrices = weights.get("blocks.0.att.key.weight").type();
        try (OutputStream o = new BufferedOutputStream(Files.newOutputStream(out), 1 << 20)) {
            o.write(ints(RwkvCppFile.MAGIC, VERSION, (int) emb.dim(0), (int) emb.dim(1), layers,
                    ggmlId(matrices, "blocks.0.att.key.weight")));
            for (Tensor t : weights.tensors().values()) {
                byte[] key = t.name().getBytes(StandardCharsets.UTF_8);
                int[] header = new int[3 + t.rank()];
                header[0] = t.rank();
                header[1] = key.length;
                header[2] = ggmlId(t.type(), t.name());
                for (int i = 0; i < t.rank(); i++) {
                    header[3 + i] = Math.toIntExact(t.dim(t.rank() - 1 - i)); // ggml order is reversed
                }
                o.write(ints(header));
                o.write(key);
                byte[] buf = new byte[1 << 20];
                long size = t.data().byteSize();
                for (long off = 0; off < size; off += buf.length) {
                    int n = (int) Math.min(buf.length, size - off);
                    java.lang.foreign.MemorySegment.copy(t.data(), ValueLayout.JAVA_BYTE, off, buf, 0, n);
                    o.write(buf, 0, n);
                }
            }
        }
    }

    private static int ggmlId(WeightType type, String tensor) throws IOException {
        if (type.ggmlId < 0) {
            throw new IOException("tensor " + tensor + " is " + type + ", which rwkv.cpp files cannot hold");
        }
        return type.ggmlId;
    }

    private static byte[] ints(int... v) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (int x : v) {
            b.putInt(x);
        }
        return b.array();
    }
}
