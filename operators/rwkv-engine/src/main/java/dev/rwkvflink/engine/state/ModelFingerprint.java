package dev.rwkvflink.engine.state;

import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.Collection;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;

/**
 * SHA-256 of a model's shape and of every tensor's name, type, shape and bytes (in name order). Two files hold
 * the same fingerprint only if they hold the same weights in the same storage type, so a state saved with one
 * model is never silently applied to another.
 */
public final class ModelFingerprint {
    public static final int BYTES = 32;
    private static final long CHUNK = 1 << 24;

    private final byte[] digest;

    private ModelFingerprint(byte[] digest) {
        if (digest.length != BYTES) {
            throw new IllegalArgumentException("fingerprint must be " + BYTES + " bytes, got " + digest.length);
        }
        this.digest = digest.clone();
    }

    public static ModelFingerprint ofBytes(byte[] digest) {
        return new ModelFingerprint(digest);
    }

    public static ModelFingerprint of(RwkvConfig config, Collection<Tensor> tensors) {
        MessageDigest md;
        try {
            md = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 unavailable", e);
        }
        md.update(("rwkv-flink model fingerprint v1 " + config).getBytes(StandardCharsets.UTF_8));
        List<Tensor> sorted =
                tensors.stream().sorted(Comparator.comparing(Tensor::name)).toList();
        ByteBuffer header = ByteBuffer.allocate(64).order(ByteOrder.LITTLE_ENDIAN);
        for (Tensor t : sorted) {
            md.update(t.name().getBytes(StandardCharsets.UTF_8));
            header.clear();
            header.putInt(t.type().ordinal()).putInt(t.rank());
            for (long d : t.shape()) {
                header.putLong(d);
            }
            md.update(header.flip());
            MemorySegment data = t.data();
            for (long off = 0; off < data.byteSize(); off += CHUNK) {
                md.update(data.asSlice(off, Math.min(CHUNK, data.byteSize() - off))
                        .asByteBuffer());
            }
        }
        return new ModelFingerprint(md.digest());
    }

    public byte[] bytes() {
        return digest.clone();
    }

    /** Full hex form. */
    public String hex() {
        return HexFormat.of().formatHex(digest);
    }

    /** The first 12 hex digits, for messages. */
    public String shortHex() {
        return hex().substring(0, 12);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ModelFingerprint f && Arrays.equals(digest, f.digest);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(digest);
    }

    @Override
    public String toString() {
        return "model " + shortHex();
    }
}
