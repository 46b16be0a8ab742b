package dev.rwkvflink.operator.state;

import java.io.IOException;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.base.TypeSerializerSingleton;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

/**
 * Flink serializer of one run of token ids (an entry of a key's token log), compact: LEB128 varints, so a World
 * token id (< 65,536) takes 1 to 3 bytes instead of 4.
 * <pre>
 *   varint n           number of tokens (at most {@link #MAX_TOKENS})
 *   n varints          the token ids (>= 0)
 * </pre>
 * A corrupt record (a count or id out of range, a varint longer than 5 bytes) fails with an IOException naming what
 * is wrong, before anything is allocated from it.
 */
public final class TokenRunSerializer extends TypeSerializerSingleton<int[]> {
    private static final long serialVersionUID = 1L;

    public static final TokenRunSerializer INSTANCE = new TokenRunSerializer();

    /** Upper bound of a run's length when reading (a run is at most one batch's tokens of one key). */
    public static final int MAX_TOKENS = 1 << 26;

    private static final int[] EMPTY = new int[0];

    @Override
    public boolean isImmutableType() {
        return false;
    }

    @Override
    public int[] createInstance() {
        return EMPTY;
    }

    @Override
    public int[] copy(int[] from) {
        return from.clone();
    }

    @Override
    public int[] copy(int[] from, int[] reuse) {
        return from.clone();
    }

    @Override
    public int getLength() {
        return -1;
    }

    @Override
    public void serialize(int[] run, DataOutputView out) throws IOException {
        writeVarint(run.length, out);
        for (int t : run) {
            if (t < 0) {
                throw new IOException("negative token id " + t);
            }
            writeVarint(t, out);
        }
    }

    @Override
    public int[] deserialize(DataInputView in) throws IOException {
        int n = readVarint(in);
        if (n > MAX_TOKENS) {
            throw new IOException("corrupt token log entry: " + n + " tokens (at most " + MAX_TOKENS + ")");
        }
        int[] run = new int[n];
        for (int i = 0; i < n; i++) {
            run[i] = readVarint(in);
        }
        return run;
    }

    @Override
    public int[] deserialize(int[] reuse, DataInputView in) throws IOException {
        return deserialize(in);
    }

    @Override
    public void copy(DataInputView in, DataOutputView out) throws IOException {
        serialize(deserialize(in), out);
    }

    /** How many bytes {@link #serialize} writes for {@code run}. */
    public static long serializedBytes(int[] run) {
        long n = varintBytes(run.length);
        for (int t : run) {
            n += varintBytes(t);
        }
        return n;
    }

    private static int varintBytes(int v) {
        int n = 1;
        while ((v & ~0x7F) != 0) {
            v >>>= 7;
            n++;
        }
        return n;
    }

    /** Unsigned LEB128: 7 bits per byte, low bits first, the high bit set on every byte but the last. */
    static void writeVarint(int v, DataOutputView out) throws IOException {
        while ((v & ~0x7F) != 0) {
            out.writeByte((v & 0x7F) | 0x80);
            v >>>= 7;
        }
        out.writeByte(v);
    }

    static int readVarint(DataInputView in) throws IOException {
        int v = 0;
        for (int shift = 0; shift < 35; shift += 7) {
            int b = in.readUnsignedByte();
            v |= (b & 0x7F) << shift;
            if ((b & 0x80) == 0) {
                if (v < 0) {
                    throw new IOException(
                            "corrupt token log entry: varint " + Integer.toUnsignedString(v) + " out of range");
                }
                return v;
            }
        }
        throw new IOException("corrupt token log entry: varint longer than 5 bytes");
    }

    @Override
    public TypeSerializerSnapshot<int[]> snapshotConfiguration() {
        return new Snapshot();
    }

    /** Stateless: the snapshot only names the serializer (and its version). */
    public static final class Snapshot extends SimpleTypeSerializerSnapshot<int[]> {
        public Snapshot() {
            super(() -> INSTANCE);
        }
    }
}
