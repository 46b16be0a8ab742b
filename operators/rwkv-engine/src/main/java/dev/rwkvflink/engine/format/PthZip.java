package dev.rwkvflink.engine.format;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.zip.CRC32;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * The central directory of a ZIP archive (PKWARE APPNOTE 4.3: end-of-central-directory record, its zip64
 * variant, central file headers with zip64 extra fields, local file headers). Only STORED (0) and DEFLATED (8)
 * entries; every offset is checked to lie inside the archive before the central directory.
 */
final class PthZip {
    private static final int EOCD = 0x06054b50;
    private static final int EOCD64 = 0x06064b50;
    private static final int EOCD64_LOCATOR = 0x07064b50;
    private static final int CENTRAL = 0x02014b50;
    private static final int LOCAL = 0x04034b50;
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** One archive member as the central directory describes it. */
    record Entry(String name, int method, long compressedSize, long size, long localHeader, int crc) {}

    private final Path path;
    private final MemorySegment file;
    private final long centralStart;
    private final Map<String, Entry> entries;

    private PthZip(Path path, MemorySegment file, long centralStart, Map<String, Entry> entries) {
        this.path = path;
        this.file = file;
        this.centralStart = centralStart;
        this.entries = entries;
    }

    static PthZip open(Path path, MemorySegment file) throws IOException {
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
        if (cdOffset < 0
                || cdSize < 0
                || cdOffset > cdEnd
                || cdSize > cdEnd - cdOffset
                || count < 0
                || count > cdSize / 46) {
            throw new IOException(path + ": corrupt zip central directory (offset " + cdOffset + ", size " + cdSize
                    + ", " + count + " entries, file " + size + " bytes)");
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
                throw new IOException(path + ": zip central directory entry at byte " + p + " runs past the directory");
            }
            String name =
                    new String(file.asSlice(p + 46, nameLen).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
            long[] big = {usize, csize, local};
            zip64(path, file, p + 46 + nameLen, extraLen, big);
            Entry entry = new Entry(name, method, big[1], big[0], big[2], crc);
            if (entries.put(name, entry) != null) {
                throw new IOException(path + ": zip entry " + name + " appears twice");
            }
            p += 46L + nameLen + extraLen + commentLen;
        }
        PthZip zip = new PthZip(path, file, cdOffset, entries);
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
                throw new IOException(
                        path + ": zip entries " + list.get((int) before[2]).name() + " (bytes "
                                + before[0] + ".." + before[1] + ") and "
                                + list.get((int) here[2]).name() + " (bytes "
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
                throw new IOException(path + ": stored zip entry " + e.name() + " has differing sizes " + e.size()
                        + " and " + e.compressedSize());
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
            throw new IOException(path + ": inflating zip entry " + e.name() + ": " + tooMuch.getMessage(), tooMuch);
        }
        Inflater inflater = new Inflater(true);
        try {
            inflater.setInput(raw.asByteBuffer());
            ByteBuffer dst = out.asByteBuffer();
            while (!inflater.finished()) {
                if (inflater.inflate(dst) == 0
                        && (inflater.needsInput() || inflater.needsDictionary() || !dst.hasRemaining())) {
                    break;
                }
            }
            if (!inflater.finished() || dst.hasRemaining()) {
                throw new IOException(path + ": zip entry " + e.name() + " does not inflate to the "
                        + e.size() + " bytes its header gives ("
                        + (dst.hasRemaining() ? dst.position() + " bytes" : "more") + ")");
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
            throw new IOException(path + ": zip entry " + e.name() + " is " + e.size() + " bytes, more than " + "the "
                    + limit + " allowed");
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
            throw new IOException(path + ": zip entry " + e.name() + " (" + e.compressedSize() + " bytes at " + start
                    + ") lies outside the archive's data area");
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
