package dev.rwkvflink.engine.state;

import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.model.RwkvVersion;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * The versioned binary form of a {@link RwkvState}: what Flink persists. Little-endian throughout.
 * <pre>
 *   offset size
 *   0      4    magic "RWKS"
 *   4      2    format version (1)
 *   6      2    model version label length n, then n bytes of the label (e.g. "7.0")
 *   8+n    4    layers, 4 embd, 4 heads, 4 head size
 *          32   model fingerprint (SHA-256)
 *          4    float count F
 *          4F   the state's floats (fp32 bits, NaN payloads kept)
 * </pre>
 * Decoding checks every header field against the model it is meant for and refuses a mismatch with a message
 * naming both sides.
 */
public final class StateCodec {
    public static final int MAGIC = 0x534B5752; // "RWKS" read as little-endian int
    public static final short FORMAT_VERSION = 1;

    private StateCodec() {}

    public static byte[] encode(RwkvState state, ModelFingerprint fingerprint) {
        RwkvConfig c = state.config();
        byte[] label = c.version().label().getBytes(StandardCharsets.US_ASCII);
        float[] data = state.data();
        ByteBuffer b =
                ByteBuffer.allocate(headerBytes(label.length) + 4 * data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(MAGIC).putShort(FORMAT_VERSION).putShort((short) label.length).put(label);
        b.putInt(c.layers()).putInt(c.embd()).putInt(c.heads()).putInt(c.headSize());
        b.put(fingerprint.bytes());
        b.putInt(data.length);
        b.asFloatBuffer().put(data);
        return b.array();
    }

    /** The length of {@link #encode}'s bytes for a state of a model with {@code c}. */
    public static long encodedBytes(RwkvConfig c) {
        return headerBytes(c.version().label().getBytes(StandardCharsets.US_ASCII).length) + 4 * RwkvState.floats(c);
    }

    private static int headerBytes(int labelLength) {
        return 4 + 2 + 2 + labelLength + 16 + ModelFingerprint.BYTES + 4;
    }

    /** Reads a state written by {@link #encode} for the model with {@code config} and {@code fingerprint}. */
    public static RwkvState decode(byte[] bytes, RwkvConfig config, ModelFingerprint fingerprint) {
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        try {
            int magic = b.getInt();
            if (magic != MAGIC) {
                throw new IllegalArgumentException("not an RWKV state (magic 0x" + Integer.toHexString(magic) + ")");
            }
            short version = b.getShort();
            if (version != FORMAT_VERSION) {
                throw new IllegalArgumentException("state format version " + version
                        + " is not supported (this build reads " + FORMAT_VERSION + ")");
            }
            int labelLength = b.getShort();
            if (labelLength < 0 || labelLength > 16) {
                throw new IllegalArgumentException("corrupt state header (version label length " + labelLength + ")");
            }
            byte[] label = new byte[labelLength];
            b.get(label);
            RwkvVersion v = RwkvVersion.fromLabel(new String(label, StandardCharsets.US_ASCII));
            int layers = b.getInt();
            int embd = b.getInt();
            int heads = b.getInt();
            int headSize = b.getInt();
            byte[] fp = new byte[ModelFingerprint.BYTES];
            b.get(fp);
            ModelFingerprint stateFingerprint = ModelFingerprint.ofBytes(fp);
            if (v != config.version()
                    || layers != config.layers()
                    || embd != config.embd()
                    || heads != config.heads()
                    || headSize != config.headSize()) {
                throw new IllegalArgumentException(
                        "state is for an RWKV " + v.label() + " model with " + layers + " layers, width "
                                + embd + ", " + heads + " heads of " + headSize + "; the loaded model is RWKV "
                                + config.version().label() + " with " + config.layers() + " layers, width "
                                + config.embd() + ", "
                                + config.heads() + " heads of " + config.headSize());
            }
            if (!stateFingerprint.equals(fingerprint)) {
                throw new IllegalArgumentException("state was computed by " + stateFingerprint
                        + " but the loaded model is " + fingerprint + ": refusing to mix models");
            }
            int count = b.getInt();
            if (count != RwkvState.floats(config) || b.remaining() != 4L * count) {
                throw new IllegalArgumentException("state holds " + count + " floats in " + b.remaining()
                        + " bytes; the model needs " + RwkvState.floats(config) + " floats");
            }
            float[] data = new float[count];
            b.asFloatBuffer().get(data);
            return RwkvState.of(config, data);
        } catch (BufferUnderflowException e) {
            throw new IllegalArgumentException("truncated RWKV state (" + bytes.length + " bytes)", e);
        }
    }
}
