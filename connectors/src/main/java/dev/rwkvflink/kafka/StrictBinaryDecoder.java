package dev.rwkvflink.kafka;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import org.apache.avro.io.Decoder;
import org.apache.avro.util.Utf8;

/**
 * An Avro binary decoder over one byte array that refuses what Avro's own decoder lets through:
 *
 * <ul>
 *   <li>strings that are not valid UTF-8 (Avro's decoder replaces bad bytes with U+FFFD and carries on);
 *   <li>lengths and item counts that cannot fit in the bytes left (Avro's decoder first allocates what a garbage
 *       length asks for, up to gigabytes), negative lengths, over-long or overflowing varints, booleans other than
 *       0 or 1;
 *   <li>reading past the end (an {@link MalformedAvroException} naming the offset, not a bare EOF).
 * </ul>
 *
 * <p>Every array or map item of the rwkv-flink schemas takes at least one byte, so a block may not claim more items
 * than bytes left; a schema with arrays of {@code null} would need a looser rule. Not thread-safe: one per record.
 */
final class StrictBinaryDecoder extends Decoder {

    private final byte[] bytes;
    private final int end;
    private int position;

    /** Decodes {@code bytes[offset, offset + length)}; errors give offsets within the whole array. */
    StrictBinaryDecoder(byte[] bytes, int offset, int length) {
        this.bytes = bytes;
        this.end = offset + length;
        this.position = offset;
    }

    /** True once every byte has been read. */
    boolean isEnd() {
        return position == end;
    }

    /** The offset of the next byte to read, counted from the start of the whole array. */
    int position() {
        return position;
    }

    @Override
    public int remainingBytes() {
        return end - position;
    }

    @Override
    public void readNull() {}

    @Override
    public boolean readBoolean() throws IOException {
        int at = position;
        int value = nextByte();
        if (value == 0 || value == 1) {
            return value == 1;
        }
        throw malformed(at, "a boolean must be byte 0 or 1, found 0x%02x", value);
    }

    @Override
    public int readInt() throws IOException {
        int at = position;
        long raw = readVarint(5);
        if ((raw >>> 32) != 0) {
            throw malformed(at, "varint does not fit in an int");
        }
        int zigzag = (int) raw;
        return (zigzag >>> 1) ^ -(zigzag & 1);
    }

    @Override
    public long readLong() throws IOException {
        long raw = readVarint(10);
        return (raw >>> 1) ^ -(raw & 1);
    }

    @Override
    public float readFloat() throws IOException {
        require(4, "float");
        int bits = (bytes[position] & 0xFF)
                | (bytes[position + 1] & 0xFF) << 8
                | (bytes[position + 2] & 0xFF) << 16
                | (bytes[position + 3] & 0xFF) << 24;
        position += 4;
        return Float.intBitsToFloat(bits);
    }

    @Override
    public double readDouble() throws IOException {
        require(8, "double");
        long bits = 0;
        for (int i = 7; i >= 0; i--) {
            bits = bits << 8 | (bytes[position + i] & 0xFF);
        }
        position += 8;
        return Double.longBitsToDouble(bits);
    }

    @Override
    public String readString() throws IOException {
        int length = readLength("string");
        String text = decodeUtf8(position, length);
        position += length;
        return text;
    }

    @Override
    public Utf8 readString(Utf8 old) throws IOException {
        int length = readLength("string");
        decodeUtf8(position, length);
        Utf8 result = old != null ? old : new Utf8();
        result.setByteLength(length);
        System.arraycopy(bytes, position, result.getBytes(), 0, length);
        position += length;
        return result;
    }

    @Override
    public void skipString() throws IOException {
        position += readLength("string");
    }

    @Override
    public ByteBuffer readBytes(ByteBuffer old) throws IOException {
        int length = readLength("bytes");
        byte[] copy = new byte[length];
        System.arraycopy(bytes, position, copy, 0, length);
        position += length;
        return ByteBuffer.wrap(copy);
    }

    @Override
    public void skipBytes() throws IOException {
        position += readLength("bytes");
    }

    @Override
    public void readFixed(byte[] target, int offset, int length) throws IOException {
        require(length, "fixed");
        System.arraycopy(bytes, position, target, offset, length);
        position += length;
    }

    @Override
    public void skipFixed(int length) throws IOException {
        require(length, "fixed");
        position += length;
    }

    @Override
    public int readEnum() throws IOException {
        int at = position;
        int index = readInt();
        if (index < 0) {
            throw malformed(at, "negative enum index %d", index);
        }
        return index;
    }

    @Override
    public long readArrayStart() throws IOException {
        return readBlockCount("array");
    }

    @Override
    public long arrayNext() throws IOException {
        return readBlockCount("array");
    }

    @Override
    public long skipArray() throws IOException {
        return skipSizedBlocks("array");
    }

    @Override
    public long readMapStart() throws IOException {
        return readBlockCount("map");
    }

    @Override
    public long mapNext() throws IOException {
        return readBlockCount("map");
    }

    @Override
    public long skipMap() throws IOException {
        return skipSizedBlocks("map");
    }

    @Override
    public int readIndex() throws IOException {
        int at = position;
        int index = readInt();
        if (index < 0) {
            throw malformed(at, "negative union branch %d", index);
        }
        return index;
    }

    /** Reads a zig-zag varint's raw bits (at most {@code maxBytes} bytes). */
    private long readVarint(int maxBytes) throws IOException {
        int at = position;
        long raw = 0;
        for (int i = 0; i < maxBytes; i++) {
            int b = nextByte();
            raw |= (long) (b & 0x7F) << (7 * i);
            if ((b & 0x80) == 0) {
                if (i == 9 && b > 1) {
                    throw malformed(at, "varint does not fit in a long");
                }
                return raw;
            }
        }
        throw malformed(at, "varint longer than %d bytes", maxBytes);
    }

    /** Reads a string or bytes length and checks that many bytes follow. */
    private int readLength(String what) throws IOException {
        int at = position;
        long length = readLong();
        if (length < 0) {
            throw malformed(at, "negative %s length %d", what, length);
        }
        if (length > remainingBytes()) {
            throw malformed(at, "%s of %d bytes runs past the end (%d bytes left)", what, length, remainingBytes());
        }
        return (int) length;
    }

    /** Reads the item count of the next array or map block (0 at the end); a negative count comes with a byte size. */
    private long readBlockCount(String what) throws IOException {
        int at = position;
        long count = readLong();
        if (count < 0) {
            long blockBytes = readLong();
            if (blockBytes < 0 || count == Long.MIN_VALUE) {
                throw malformed(at, "malformed %s block header", what);
            }
            count = -count;
        }
        if (count > remainingBytes()) {
            throw malformed(at, "%s block of %d items cannot fit in the %d bytes left", what, count, remainingBytes());
        }
        return count;
    }

    /** Skips blocks that carry their byte size; returns the item count of the first block the caller must skip. */
    private long skipSizedBlocks(String what) throws IOException {
        while (true) {
            int at = position;
            long count = readLong();
            if (count >= 0) {
                if (count > remainingBytes()) {
                    throw malformed(
                            at, "%s block of %d items cannot fit in the %d bytes left", what, count, remainingBytes());
                }
                return count;
            }
            long blockBytes = readLong();
            if (blockBytes < 0 || blockBytes > remainingBytes()) {
                throw malformed(
                        at,
                        "%s block of %d bytes does not fit in the %d bytes left",
                        what,
                        blockBytes,
                        remainingBytes());
            }
            position += (int) blockBytes;
        }
    }

    /** Decodes UTF-8 strictly: any malformed or truncated sequence is an error naming its offset. */
    private String decodeUtf8(int offset, int length) throws IOException {
        CharsetDecoder utf8 = StandardCharsets.UTF_8
                .newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.wrap(bytes, offset, length);
        CharBuffer out = CharBuffer.allocate(length);
        CoderResult result = utf8.decode(in, out, true);
        if (!result.isError()) {
            result = utf8.flush(out);
        }
        if (result.isError()) {
            int bad = in.position() - offset;
            throw malformed(
                    offset,
                    "string of %d bytes is not valid UTF-8: malformed sequence of %d byte(s) at byte %d "
                            + "of the string (0x%02x)",
                    length,
                    result.length(),
                    bad,
                    bytes[offset + bad] & 0xFF);
        }
        return out.flip().toString();
    }

    private int nextByte() throws IOException {
        require(1, "byte");
        return bytes[position++] & 0xFF;
    }

    private void require(int count, String what) throws IOException {
        if (count < 0 || count > remainingBytes()) {
            throw malformed(position, "truncated: a %s needs %d bytes, %d left", what, count, remainingBytes());
        }
    }

    private MalformedAvroException malformed(int at, String format, Object... args) {
        return new MalformedAvroException(String.format(format, args) + " (at byte " + at + ")");
    }

    /** Bytes that break the Avro binary encoding; the message names the offset. */
    static final class MalformedAvroException extends IOException {
        private static final long serialVersionUID = 1L;

        MalformedAvroException(String message) {
            super(message);
        }
    }
}
