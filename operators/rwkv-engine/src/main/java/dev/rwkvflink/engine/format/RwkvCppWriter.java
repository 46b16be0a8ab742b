package dev.rwkvflink.engine.format;

import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;

/**
 * Writes canonical tensors as an rwkv.cpp model file (version 101), the layout {@link RwkvCppFile} reads (and
 * rwkv.cpp itself): so a model built in memory (e.g. {@code RandomModels}) can be loaded from a file like a real one.
 * Only types with a ggml id (F32, F16, the ggml block types) can be written.
 */
public final class RwkvCppWriter {
    private static final int VERSION = 101;

    private RwkvCppWriter() {}

    /** Writes {@code weights} to {@code out}; the header's sizes come from {@code emb.weight} and the block count. */
    public static void write(WeightFile weights, Path out) throws IOException {
        Tensor emb = weights.get("emb.weight");
        int layers = 0;
        while (weights.has("blocks." + layers + ".ln1.weight")) {
            layers++;
        }
        WeightType matrices = weights.get("blocks.0.att.key.weight").type();
        try (OutputStream o = new BufferedOutputStream(Files.newOutputStream(out), 1 << 20)) {
            o.write(ints(
                    RwkvCppFile.MAGIC,
                    VERSION,
                    (int) emb.dim(0),
                    (int) emb.dim(1),
                    layers,
                    ggmlId(matrices, "blocks.0.att.key.weight")));
            for (Tensor t : weights.tensors().values()) {
                if (LAYER0_UNUSED.contains(t.name())) {
                    continue;
                }
                byte[] key = t.name().getBytes(StandardCharsets.UTF_8);
                long[] shape = rwkvCppShape(t);
                int[] header = new int[3 + shape.length];
                header[0] = shape.length;
                header[1] = key.length;
                header[2] = ggmlId(t.type(), t.name());
                for (int i = 0; i < shape.length; i++) {
                    header[3 + i] = Math.toIntExact(shape[shape.length - 1 - i]); // ggml order is reversed
                }
                o.write(ints(header));
                o.write(key);
                byte[] buf = new byte[1 << 20];
                long size = t.data().byteSize();
                for (long off = 0; off < size; off += buf.length) {
                    int n = (int) Math.min(buf.length, size - off);
                    MemorySegment.copy(t.data(), ValueLayout.JAVA_BYTE, off, buf, 0, n);
                    o.write(buf, 0, n);
                }
            }
        }
    }

    /**
     * rwkv.cpp's own shape for a tensor: its converter keeps RWKV-7's mixing and per-channel vectors with the
     * broadcast axes of BlinkDL's checkpoints ({@code x_rwkvag} (6, 1, C); {@code w0, a0, v0, k_k, k_a, ffn.x_k}
     * (1, 1, C)), and its graph relies on them. Our canonical form drops those axes (the reader accepts both).
     */
    static long[] rwkvCppShape(Tensor t) {
        String n = t.name();
        if (n.endsWith(".att.x_rwkvag") && t.rank() == 2) {
            return new long[] {t.dim(0), 1, t.dim(1)};
        }
        if (t.rank() == 1 && V7_VECTORS.stream().anyMatch(n::endsWith)) {
            return new long[] {1, 1, t.dim(0)};
        }
        return t.shape();
    }

    /** RWKV-7 per-channel vectors that rwkv.cpp stores as (1, 1, C). */
    private static final List<String> V7_VECTORS =
            List.of(".att.w0", ".att.a0", ".att.v0", ".att.k_k", ".att.k_a", ".ffn.x_k");

    /**
     * RWKV-7's value residual of layer 0, which the math never reads (layer 0's values are the residual); rwkv.cpp
     * files do not have it, and its loader fails on tensors it did not expect.
     */
    private static final Set<String> LAYER0_UNUSED = Set.of("blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2");

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
