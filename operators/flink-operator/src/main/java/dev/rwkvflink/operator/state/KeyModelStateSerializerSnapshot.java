package dev.rwkvflink.operator.state;

import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.model.RwkvVersion;
import dev.rwkvflink.engine.state.ModelFingerprint;
import dev.rwkvflink.engine.tensor.WeightType;
import java.io.IOException;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSchemaCompatibility;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

/**
 * What a checkpoint records about {@link KeyModelStateSerializer}: the model's shape and fingerprint. On restore,
 * a checkpoint of another model is refused (an exception naming both models), never silently reinterpreted.
 *
 * <p>Versions: 1, the whole-state layout (release 0.5 and before: the value was the key's state after every
 * token); 2, the snapshot + token log layout (the value is the key's last snapshot, the tokens since are in the
 * {@code rwkv-token-log} list state). The value's bytes are the same in both, and a version-1 value is a snapshot
 * with an empty log, so a checkpoint or savepoint of either version restores as it is.
 */
public final class KeyModelStateSerializerSnapshot implements TypeSerializerSnapshot<KeyModelState> {
    /** The whole-state layout of release 0.5 and before. */
    static final int WHOLE_STATE = 1;
    /** A snapshot plus the token log. */
    static final int SNAPSHOT_AND_LOG = 2;

    private static final int VERSION = SNAPSHOT_AND_LOG;

    private RwkvConfig config;
    private ModelFingerprint fingerprint;

    /** For Flink's reflective instantiation on restore. */
    public KeyModelStateSerializerSnapshot() {}

    KeyModelStateSerializerSnapshot(KeyModelStateSerializer serializer) {
        this.config = serializer.config();
        this.fingerprint = serializer.fingerprint();
    }

    @Override
    public int getCurrentVersion() {
        return VERSION;
    }

    @Override
    public void writeSnapshot(DataOutputView out) throws IOException {
        out.writeUTF(config.version().label());
        out.writeInt(config.layers());
        out.writeInt(config.embd());
        out.writeInt(config.heads());
        out.writeInt(config.headSize());
        out.writeInt(config.vocab());
        out.writeInt(config.ffn());
        out.writeFloat(config.groupNormEps());
        out.writeUTF(config.matrixType().name());
        out.write(fingerprint.bytes());
    }

    @Override
    public void readSnapshot(int readVersion, DataInputView in, ClassLoader classLoader) throws IOException {
        if (readVersion != WHOLE_STATE && readVersion != SNAPSHOT_AND_LOG) {
            throw new IOException("RWKV state serializer snapshot version " + readVersion + " is not supported "
                    + "(this release reads " + WHOLE_STATE + " and " + SNAPSHOT_AND_LOG + ")");
        }
        RwkvVersion v = RwkvVersion.fromLabel(in.readUTF());
        config = new RwkvConfig(
                v,
                in.readInt(),
                in.readInt(),
                in.readInt(),
                in.readInt(),
                in.readInt(),
                in.readInt(),
                in.readFloat(),
                WeightType.valueOf(in.readUTF()));
        byte[] fp = new byte[ModelFingerprint.BYTES];
        in.readFully(fp);
        fingerprint = ModelFingerprint.ofBytes(fp);
    }

    @Override
    public TypeSerializer<KeyModelState> restoreSerializer() {
        return new KeyModelStateSerializer(config, fingerprint);
    }

    /** Called on the new serializer's snapshot with the checkpoint's snapshot. */
    @Override
    public TypeSerializerSchemaCompatibility<KeyModelState> resolveSchemaCompatibility(
            TypeSerializerSnapshot<KeyModelState> oldSnapshot) {
        if (!(oldSnapshot instanceof KeyModelStateSerializerSnapshot old)) {
            return TypeSerializerSchemaCompatibility.incompatible();
        }
        if (!old.fingerprint.equals(fingerprint) || !old.config.equals(config)) {
            throw new IllegalStateException("refusing to restore RWKV states: the checkpoint holds states computed by "
                    + describe(old.config, old.fingerprint) + ", but the job now loads " + describe(config, fingerprint)
                    + ". States of one model are meaningless to another; restore with the original model, or start "
                    + "the job without this state (a new job or --allowNonRestoredState with a new operator uid).");
        }
        return TypeSerializerSchemaCompatibility.compatibleAsIs();
    }

    private static String describe(RwkvConfig c, ModelFingerprint f) {
        return "RWKV " + c.version().label() + " L" + c.layers() + " D" + c.embd() + " " + c.matrixType() + " (" + f
                + ")";
    }
}
