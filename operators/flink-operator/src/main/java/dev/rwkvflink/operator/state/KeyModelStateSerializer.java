package dev.rwkvflink.operator.state;

import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.state.ModelFingerprint;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.state.StateCodec;
import java.io.IOException;
import java.util.Arrays;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

/**
 * Flink serializer of {@link KeyModelState}, bound to one model (its shape and fingerprint).
 * <pre>
 *   int n, n bytes   the RWKV state in the engine's binary form ({@link StateCodec}: versioned, fingerprinted)
 *   long             tokens
 *   int h, h floats  the last hidden vector (h = -1: none)
 * </pre>
 * Reading a state written for another model fails with a message naming both fingerprints; so does restoring a
 * checkpoint taken with another model ({@link KeyModelStateSerializerSnapshot}).
 */
public final class KeyModelStateSerializer extends TypeSerializer<KeyModelState> {
    private static final long serialVersionUID = 1L;

    private final RwkvConfig config;
    private final byte[] fingerprint;
    private transient ModelFingerprint parsedFingerprint;

    public KeyModelStateSerializer(RwkvConfig config, ModelFingerprint fingerprint) {
        this.config = config;
        this.fingerprint = fingerprint.bytes();
    }

    public RwkvConfig config() {
        return config;
    }

    public ModelFingerprint fingerprint() {
        ModelFingerprint f = parsedFingerprint;
        if (f == null) {
            f = ModelFingerprint.ofBytes(fingerprint);
            parsedFingerprint = f;
        }
        return f;
    }

    @Override
    public boolean isImmutableType() {
        return false;
    }

    @Override
    public TypeSerializer<KeyModelState> duplicate() {
        return this; // stateless
    }

    @Override
    public KeyModelState createInstance() {
        return new KeyModelState(RwkvState.initial(config), null, 0);
    }

    @Override
    public KeyModelState copy(KeyModelState from) {
        return from.copy();
    }

    @Override
    public KeyModelState copy(KeyModelState from, KeyModelState reuse) {
        return from.copy();
    }

    @Override
    public int getLength() {
        return -1;
    }

    /** How many bytes {@link #serialize} writes for a state of this model whose hidden vector is {@code hidden}. */
    public long serializedBytes(float[] hidden) {
        return 4 + StateCodec.encodedBytes(config) + 8 + 4 + (hidden == null ? 0 : 4L * hidden.length);
    }

    @Override
    public void serialize(KeyModelState record, DataOutputView out) throws IOException {
        byte[] bytes = StateCodec.encode(record.state, fingerprint());
        out.writeInt(bytes.length);
        out.write(bytes);
        out.writeLong(record.tokens);
        if (record.hidden == null) {
            out.writeInt(-1);
        } else {
            out.writeInt(record.hidden.length);
            for (float f : record.hidden) {
                out.writeInt(Float.floatToRawIntBits(f));
            }
        }
    }

    @Override
    public KeyModelState deserialize(DataInputView in) throws IOException {
        int n = in.readInt();
        long expected = 4 * RwkvState.floats(config);
        if (n < expected || n > expected + 4096) {
            throw new IOException("corrupt RWKV state record: " + n + " bytes, the model's state takes " + expected);
        }
        byte[] bytes = new byte[n];
        in.readFully(bytes);
        RwkvState state;
        try {
            state = StateCodec.decode(bytes, config, fingerprint());
        } catch (IllegalArgumentException e) {
            throw new IOException("cannot read a checkpointed RWKV state: " + e.getMessage(), e);
        }
        long tokens = in.readLong();
        int h = in.readInt();
        if (h < -1 || h > config.embd()) {
            throw new IOException("corrupt RWKV state record: hidden vector of " + h + " floats");
        }
        float[] hidden = null;
        if (h >= 0) {
            hidden = new float[h];
            for (int i = 0; i < h; i++) {
                hidden[i] = Float.intBitsToFloat(in.readInt());
            }
        }
        return new KeyModelState(state, hidden, tokens);
    }

    @Override
    public KeyModelState deserialize(KeyModelState reuse, DataInputView in) throws IOException {
        return deserialize(in);
    }

    @Override
    public void copy(DataInputView in, DataOutputView out) throws IOException {
        int n = in.readInt();
        out.writeInt(n);
        out.write(in, n);
        out.writeLong(in.readLong());
        int h = in.readInt();
        out.writeInt(h);
        if (h > 0) {
            out.write(in, 4 * h);
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof KeyModelStateSerializer s
                && config.equals(s.config)
                && Arrays.equals(fingerprint, s.fingerprint);
    }

    @Override
    public int hashCode() {
        return config.hashCode() * 31 + Arrays.hashCode(fingerprint);
    }

    @Override
    public TypeSerializerSnapshot<KeyModelState> snapshotConfiguration() {
        return new KeyModelStateSerializerSnapshot(this);
    }
}
