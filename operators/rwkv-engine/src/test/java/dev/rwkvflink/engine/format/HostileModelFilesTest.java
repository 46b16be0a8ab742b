package dev.rwkvflink.engine.format;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.rwkvflink.engine.backend.ScalarBackend;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.testing.SharedData;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Stream;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Damaged and hostile model files of every format (issue 7, item 4): truncated at many offsets, bit-flipped at
 * seeded random positions, headers forged with absurd shapes, sizes and offsets, and {@code .pth} pickles that run
 * code under Python. Every load through {@link RwkvModel#load} (what the operator calls at open) ends in one of two
 * ways:
 * <ul>
 *   <li><b>loaded</b>: a model that runs (a few tokens through it, no exception). A flipped bit in the weights of a
 *       {@code .bin} or {@code .safetensors} file is undetectable (the formats carry no checksum), so such loads are
 *       legitimately clean; {@code .pth} archives carry a CRC-32 per entry, so there any flipped data bit is
 *       refused;</li>
 *   <li><b>refused</b>: an {@link IOException} or {@link IllegalArgumentException} whose message names the file and
 *       the problem, with no programming error (null pointer, index, cast, overflow) anywhere in its causes.</li>
 * </ul>
 * Anything else (another exception type, an {@link OutOfMemoryError}, a JVM crash) fails the test. The forged sizes
 * are chosen so that allocating what they claim would exceed the test JVM's heap and native memory.
 */
class HostileModelFilesTest {
    @TempDir
    Path dir;

    private static final long SEED = 20261123L;

    // ------------------------------------------------------------------ outcome of one load

    /** Loads {@code p} as the operator would, runs it a little, and classifies the outcome. */
    private static String load(Path p) {
        try (RwkvModel m = RwkvModel.load(p, new ScalarBackend())) {
            float[] h = m.hidden(m.newState(), SharedData.PROMPT);
            assertEquals(m.config().embd(), h.length, p + ": hidden vector width");
            return "loaded";
        } catch (IOException | IllegalArgumentException e) {
            checkRefusal(p, e);
            return "refused";
        } catch (Throwable t) {
            throw new AssertionError(p + ": load ended with " + t + " instead of a clear refusal", t);
        }
    }

    private static void checkRefusal(Path p, Throwable e) {
        String msg = String.valueOf(e.getMessage());
        assertTrue(msg.contains(p.toString()), "the message names the file: " + msg);
        String problem = msg.replace(p.toString(), "").replace(":", "").trim();
        assertTrue(problem.length() >= 8, "the message names the problem: " + msg);
        assertTrue(!msg.endsWith("integer overflow") && !msg.endsWith("long overflow"), "a bare overflow: " + msg);
        for (Throwable c = e; c != null; c = c.getCause()) {
            // ArithmeticException: the readers' exact-arithmetic guards, wrapped with a message of their own
            if (c instanceof RuntimeException
                    && !(c instanceof IllegalArgumentException)
                    && !(c instanceof ArithmeticException)) {
                throw new AssertionError(p + ": refusal caused by a programming error " + c, e);
            }
        }
    }

    private static String refusal(Path p) {
        try (RwkvModel m = RwkvModel.load(p, new ScalarBackend())) {
            throw new AssertionError(p + " loaded (" + m.config() + "); it should have been refused");
        } catch (IOException | IllegalArgumentException e) {
            checkRefusal(p, e);
            return e.getMessage();
        } catch (Throwable t) {
            throw new AssertionError(p + ": load ended with " + t + " instead of a clear refusal", t);
        }
    }

    private static void assertRefused(Path p, String fragment) {
        String msg = refusal(p);
        assertTrue(msg.contains(fragment), p.getFileName() + ": message should mention '" + fragment + "': " + msg);
    }

    // ------------------------------------------------------------------ truncation and bit flips, every format

    /** Truncates {@code original} at every offset of {@code offsets}: each must be refused. */
    private Map<String, Integer> truncations(Path original, TreeSet<Long> offsets) throws IOException {
        byte[] bytes = Files.readAllBytes(original);
        Map<String, Integer> outcomes = new TreeMap<>();
        Path p = dir.resolve("truncated-" + original.getFileName());
        for (long off : offsets) {
            if (off >= bytes.length) {
                continue;
            }
            Files.write(p, Arrays.copyOf(bytes, (int) off));
            refusal(p);
            outcomes.merge("refused", 1, Integer::sum);
        }
        return outcomes;
    }

    /** Flips one bit at each position: each load is clean or refused; returns the counts, by region. */
    private Map<String, Integer> bitFlips(Path original, List<Long> positions, Region region) throws IOException {
        byte[] bytes = Files.readAllBytes(original);
        Map<String, Integer> outcomes = new TreeMap<>();
        Path p = dir.resolve("flipped-" + original.getFileName());
        Random rnd = new Random(SEED ^ original.getFileName().hashCode());
        for (long pos : positions) {
            byte[] b = bytes.clone();
            b[(int) pos] ^= (byte) (1 << rnd.nextInt(8));
            Files.write(p, b);
            String r = region.of(pos);
            String outcome = load(p);
            if (r.equals("crc-checked data") && !outcome.equals("refused")) {
                fail(original.getFileName() + ": a flipped bit at byte " + pos + " inside a CRC-checked entry loaded");
            }
            outcomes.merge(r + " -> " + outcome, 1, Integer::sum);
        }
        return outcomes;
    }

    @FunctionalInterface
    private interface Region {
        String of(long position);
    }

    private static TreeSet<Long> randomOffsets(long size, int n, Random rnd) {
        TreeSet<Long> out = new TreeSet<>();
        while (out.size() < n) {
            out.add((long) rnd.nextInt((int) size));
        }
        return out;
    }

    // ------------------------------------------------------------------ rwkv.cpp .bin

    /** (start, header length) of each tensor record of an rwkv.cpp file, read independently of RwkvCppFile. */
    private static List<long[]> binRecords(byte[] b) {
        ByteBuffer buf = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        List<long[]> records = new ArrayList<>();
        int off = 24;
        int[] blockBytes = new int[20];
        int[] blockSize = new int[20];
        Arrays.fill(blockSize, 32);
        blockBytes[0] = 4;
        blockSize[0] = 1;
        blockBytes[1] = 2;
        blockSize[1] = 1;
        blockBytes[2] = 18;
        blockBytes[3] = 20;
        blockBytes[7] = 22;
        blockBytes[8] = 24;
        blockBytes[9] = 34;
        while (off < b.length) {
            int dims = buf.getInt(off);
            int keyLen = buf.getInt(off + 4);
            int type = buf.getInt(off + 8);
            long n = 1;
            for (int i = 0; i < dims; i++) {
                n *= buf.getInt(off + 12 + 4 * i);
            }
            int header = 12 + 4 * dims + keyLen;
            records.add(new long[] {off, header});
            off += header + (int) (n / blockSize[type] * blockBytes[type]);
        }
        return records;
    }

    private static final String[] BIN_MODELS = {
        "4v0-660K:FP32", "5v1-730K:Q5_0", "5v2-730K:FP16", "6v0-3m:Q5_1", "7v0-834K:FP32", "7v0-834K:Q5_0"
    };

    @Test
    void rwkvCppFilesTruncatedAnywhereAreRefused() throws IOException {
        Random rnd = new Random(SEED);
        for (String m : BIN_MODELS) {
            Path model = SharedData.tinyModel(m.split(":")[0], m.split(":")[1]);
            byte[] b = Files.readAllBytes(model);
            TreeSet<Long> offsets = new TreeSet<>(List.of(0L, 1L, 3L, 4L, 8L, 20L, 23L, 24L, 25L, b.length - 1L));
            List<long[]> records = binRecords(b);
            for (long[] r : records.subList(0, 4)) {
                for (long d : new long[] {0, 4, 11, 12, 13, r[1] - 1, r[1], r[1] + 1, r[1] + 100}) {
                    offsets.add(r[0] + d);
                }
            }
            long lastRecord = records.getLast()[0];
            offsets.addAll(List.of(lastRecord, lastRecord + 1, lastRecord + records.getLast()[1]));
            offsets.addAll(randomOffsets(b.length, 30, rnd));
            Map<String, Integer> outcomes = truncations(model, offsets);
            System.out.printf("truncated %s at %d offsets: %s%n", model.getFileName(), offsets.size(), outcomes);
        }
    }

    @Test
    void rwkvCppFilesWithFlippedBitsLoadCleanlyOrAreRefused() throws IOException {
        Random rnd = new Random(SEED + 1);
        for (String m : BIN_MODELS) {
            Path model = SharedData.tinyModel(m.split(":")[0], m.split(":")[1]);
            byte[] b = Files.readAllBytes(model);
            List<long[]> records = binRecords(b);
            List<Long> positions = new ArrayList<>();
            for (int i = 0; i < 24; i++) {
                positions.add((long) i); // the file header, every byte
            }
            for (int i = 0; i < 40; i++) { // record headers (dims, key length, type, shape, name)
                long[] r = records.get(rnd.nextInt(records.size()));
                positions.add(r[0] + rnd.nextInt((int) r[1]));
            }
            for (int i = 0; i < 20; i++) {
                positions.add((long) rnd.nextInt(b.length)); // anywhere: mostly weight data
            }
            Map<String, Integer> outcomes = bitFlips(model, positions, pos -> {
                if (pos < 24) {
                    return "file header";
                }
                for (long[] r : records) {
                    if (pos >= r[0] && pos < r[0] + r[1]) {
                        return "record header";
                    }
                }
                return "weight data";
            });
            System.out.printf("bit flips in %s: %s%n", model.getFileName(), outcomes);
            // flipped weights are not detectable in this format (no checksum): those loads are legitimately clean
        }
    }

    private Path forgeBin(String name, byte[] original, int at, int... ints) throws IOException {
        byte[] b = original.clone();
        ByteBuffer buf = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < ints.length; i++) {
            buf.putInt(at + 4 * i, ints[i]);
        }
        Path p = dir.resolve(name + ".bin");
        Files.write(p, b);
        return p;
    }

    @Test
    void rwkvCppFilesWithAbsurdHeadersAreRefusedBeforeAllocating() throws IOException {
        byte[] b = Files.readAllBytes(SharedData.tinyModel("7v0-834K", "FP32"));
        byte[] q = Files.readAllBytes(SharedData.tinyModel("7v0-834K", "Q5_0"));
        long[] first = binRecords(b).getFirst(); // emb.weight, 2 dims
        int rec = (int) first[0];
        int max = Integer.MAX_VALUE;
        assertRefused(forgeBin("version", b, 4, 102), "unsupported rwkv.cpp file version 102");
        assertRefused(forgeBin("vocab-negative", b, 8, -5), "non-positive sizes");
        assertRefused(forgeBin("vocab-huge", b, 8, max), "disagrees with header vocab 2147483647");
        assertRefused(forgeBin("dims-5", b, rec, 5), "corrupt tensor record at byte 24 (dims 5");
        assertRefused(forgeBin("dims-negative", b, rec, -1), "corrupt tensor record");
        assertRefused(forgeBin("key-negative", b, rec + 4, -1), "key length -1");
        assertRefused(forgeBin("key-huge", b, rec + 4, max), "key length 2147483647");
        assertRefused(forgeBin("type-99", b, rec + 8, 99), "99");
        assertRefused(forgeBin("shape-zero", b, rec + 12, 0), "non-positive dimension 0");
        assertRefused(forgeBin("shape-2g-x-2g", b, rec + 12, max, max), "is too large");
        // four dimensions of 2^31 - 1 overflow a long: refused, not an ArithmeticException
        byte[] four = Arrays.copyOf(b, b.length + 8);
        System.arraycopy(b, rec + 12, four, rec + 20, b.length - rec - 12);
        ByteBuffer.wrap(four)
                .order(ByteOrder.LITTLE_ENDIAN)
                .putInt(rec, 4)
                .putInt(rec + 12, max)
                .putInt(rec + 16, max)
                .putInt(rec + 20, max)
                .putInt(rec + 24, max);
        assertRefused(forgeBin("shape-overflow", four, 0), "too large");
        // a quantized record whose element count is not a multiple of the block
        long[] qRecord = binRecords(q).stream()
                .filter(r -> ByteBuffer.wrap(q).order(ByteOrder.LITTLE_ENDIAN).getInt((int) r[0] + 8) == 6
                        || ByteBuffer.wrap(q).order(ByteOrder.LITTLE_ENDIAN).getInt((int) r[0] + 8) == 7)
                .findFirst()
                .orElseThrow();
        assertRefused(forgeBin("q-block", q, (int) qRecord[0] + 12, 33), "rows must be a multiple of 32 elements");
        assertRefused(forgeBin("v100-quantized", q, 4, 100), "file version 100 uses the old Q5_0 layout");
    }

    // ------------------------------------------------------------------ .pth and .safetensors written by Python

    @TempDir
    static Path fixtures;

    private static boolean fixturesMade;

    /** rwkv.cpp's tiny v7 model as .pth (torch.save) and .safetensors (BlinkDL and fla naming). */
    private static Path pyFixtures() throws Exception {
        if (!fixturesMade) {
            Path bin = PythonFixtures.rwkvCppModel("tiny-rwkv-7v0-834K-FP32.bin");
            PythonFixtures.run("torch", "rwkvcpp_to_blinkdl.py", fixtures.toString(), bin.toString());
            fixturesMade = true;
        }
        return fixtures;
    }

    @Test
    void pthAndSafetensorsFilesTruncatedAnywhereAreRefused() throws Exception {
        Random rnd = new Random(SEED + 2);
        for (String name : new String[] {
            "tiny-rwkv-7v0-834K-FP32.pth",
            "tiny-rwkv-7v0-834K-FP32.safetensors",
            "tiny-rwkv-7v0-834K-FP32.fla.safetensors"
        }) {
            Path model = pyFixtures().resolve(name);
            assertEquals("loaded", load(model), name + " itself loads");
            long size = Files.size(model);
            TreeSet<Long> offsets = new TreeSet<>(List.of(0L, 1L, 4L, 7L, 8L, 9L, 64L, size - 22, size - 21, size - 1));
            offsets.addAll(randomOffsets(size, 40, rnd));
            Map<String, Integer> outcomes = truncations(model, offsets);
            System.out.printf("truncated %s at %d offsets: %s%n", name, offsets.size(), outcomes);
        }
    }

    @Test
    void safetensorsFilesWithFlippedBitsLoadCleanlyOrAreRefused() throws Exception {
        Random rnd = new Random(SEED + 3);
        for (String name :
                new String[] {"tiny-rwkv-7v0-834K-FP32.safetensors", "tiny-rwkv-7v0-834K-FP32.fla.safetensors"}) {
            Path model = pyFixtures().resolve(name);
            byte[] b = Files.readAllBytes(model);
            long headerEnd =
                    8 + ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
            List<Long> positions = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                positions.add((long) i);
            }
            for (int i = 0; i < 60; i++) {
                positions.add(8 + (long) rnd.nextInt((int) headerEnd - 8));
            }
            for (int i = 0; i < 15; i++) {
                positions.add(headerEnd + rnd.nextInt((int) (b.length - headerEnd)));
            }
            Map<String, Integer> outcomes = bitFlips(
                    model, positions, pos -> pos < 8 ? "length" : pos < headerEnd ? "JSON header" : "weight data");
            System.out.printf("bit flips in %s: %s%n", name, outcomes);
        }
    }

    @Test
    void pthFilesWithFlippedBitsAreRefusedWhereverTheCrcCovers() throws Exception {
        Path model = pyFixtures().resolve("tiny-rwkv-7v0-834K-FP32.pth");
        byte[] b = Files.readAllBytes(model);
        List<long[]> entries = zipEntryData(b);
        Random rnd = new Random(SEED + 4);
        List<Long> positions = new ArrayList<>();
        for (int i = 0; i < 80; i++) {
            positions.add((long) rnd.nextInt(b.length));
        }
        for (int i = 0; i < 20; i++) { // data.pkl and the first storages
            long[] e = entries.get(rnd.nextInt(Math.min(4, entries.size())));
            positions.add(e[0] + rnd.nextInt((int) Math.max(1, e[1])));
        }
        Map<String, Integer> outcomes = bitFlips(model, positions, pos -> {
            for (long[] e : entries) {
                if (pos >= e[0] && pos < e[0] + e[1]) {
                    return "crc-checked data";
                }
            }
            return "zip structure";
        });
        System.out.printf("bit flips in %s: %s%n", model.getFileName(), outcomes);
    }

    /** (data start, length) of every entry, from the central directory (independent of PthFile's reader). */
    private static List<long[]> zipEntryData(byte[] b) {
        ByteBuffer buf = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        List<long[]> out = new ArrayList<>();
        int eocd = b.length - 22;
        while (buf.getInt(eocd) != 0x06054b50) {
            eocd--;
        }
        int p = buf.getInt(eocd + 16);
        for (int i = 0; i < (buf.getShort(eocd + 10) & 0xFFFF); i++) {
            long csize = buf.getInt(p + 20) & 0xFFFFFFFFL;
            int local = buf.getInt(p + 42);
            long start = local + 30L + (buf.getShort(local + 26) & 0xFFFF) + (buf.getShort(local + 28) & 0xFFFF);
            out.add(new long[] {start, csize});
            p += 46
                    + (buf.getShort(p + 28) & 0xFFFF)
                    + (buf.getShort(p + 30) & 0xFFFF)
                    + (buf.getShort(p + 32) & 0xFFFF);
        }
        assertTrue(out.size() > 3, "found the archive's entries");
        return out;
    }

    // ------------------------------------------------------------------ forged safetensors headers

    private Path safetensors(String name, String header, byte[] data) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        return safetensors(name, h.length, h, data);
    }

    private Path safetensors(String name, long headerLen, byte[] header, byte[] data) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(ByteBuffer.allocate(8)
                .order(ByteOrder.LITTLE_ENDIAN)
                .putLong(headerLen)
                .array());
        out.writeBytes(header);
        out.writeBytes(data);
        Path p = dir.resolve(name + ".safetensors");
        Files.write(p, out.toByteArray());
        return p;
    }

    @Test
    void safetensorsWithAbsurdHeadersAreRefusedBeforeAllocating() throws IOException {
        byte[] d = new byte[64];
        assertRefused(
                safetensors("len-huge", Long.MAX_VALUE, "{}".getBytes(StandardCharsets.UTF_8), d),
                "bad safetensors header length 9223372036854775807");
        assertRefused(
                safetensors("len-negative", -8, "{}".getBytes(StandardCharsets.UTF_8), d),
                "bad safetensors header length 18446744073709551608");
        assertRefused(
                safetensors(
                        "shape-huge",
                        "{\"emb.weight\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904],"
                                + "\"data_offsets\":[0,64]}}",
                        d),
                "is too large");
        assertRefused(
                safetensors(
                        "shape-2g",
                        "{\"emb.weight\":{\"dtype\":\"F32\",\"shape\":[2147483647,2147483647],"
                                + "\"data_offsets\":[0,64]}}",
                        d),
                "is too large");
        assertRefused(
                safetensors(
                        "offsets-beyond",
                        "{\"emb.weight\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[0," + Long.MAX_VALUE
                                + "]}}",
                        d),
                "lie outside the 64-byte data region");
        assertRefused(
                safetensors(
                        "offsets-negative",
                        "{\"emb.weight\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[-64,0]}}",
                        d),
                "lie outside");
        assertRefused(
                safetensors(
                        "offsets-float",
                        "{\"emb.weight\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[0.0,64.0]}}",
                        d),
                "data_offsets must be [begin, end]");
        assertRefused(
                safetensors(
                        "number-huge",
                        "{\"emb.weight\":{\"dtype\":\"F32\",\"shape\":[1e999,4],\"data_offsets\":[0,64]}}",
                        d),
                "bad dimension");
        assertRefused(
                safetensors(
                        "dims-9",
                        "{\"emb.weight\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,16],"
                                + "\"data_offsets\":[0,64]}}",
                        d),
                "at most 8 sizes");
        assertRefused(
                safetensors(
                        "dtype-i64", "{\"emb.weight\":{\"dtype\":\"I64\",\"shape\":[8],\"data_offsets\":[0,64]}}", d),
                "unsupported dtype I64");
        assertRefused(
                safetensors(
                        "duplicate",
                        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                + "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                        d),
                "Duplicate field 'a'");
        assertRefused(safetensors("deep", "[".repeat(100_000) + "]".repeat(100_000), d), "not valid JSON");
        assertRefused(safetensors("not-utf8", 4, new byte[] {'{', (byte) 0xC3, (byte) 0x28, '}'}, d), "not valid JSON");
        assertRefused(
                safetensors("not-a-model", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[0,64]}}", d),
                "w");
        Path empty = dir.resolve("empty.bin");
        Files.write(empty, new byte[0]);
        assertRefused(empty, "too short to be a model file (0 bytes)");
        assertRefused(dir.resolve("absent.pth"), "no such file");
    }

    // ------------------------------------------------------------------ forged .pth archives

    /** A torch-like archive with the entries of {@code original} (a real torch.save file), rewritten. */
    private Path rezip(String name, Path original, boolean deflateStorages) throws IOException {
        Path p = dir.resolve(name + ".pth");
        try (ZipFile in = new ZipFile(original.toFile());
                OutputStream fo = Files.newOutputStream(p);
                ZipOutputStream z = new ZipOutputStream(fo)) {
            for (ZipEntry e : Collections.list(in.entries())) {
                byte[] data = in.getInputStream(e).readAllBytes();
                ZipEntry ze = new ZipEntry(e.getName());
                if (!(deflateStorages && e.getName().contains("/data/"))) {
                    CRC32 crc = new CRC32();
                    crc.update(data);
                    ze.setMethod(ZipEntry.STORED);
                    ze.setSize(data.length);
                    ze.setCompressedSize(data.length);
                    ze.setCrc(crc.getValue());
                }
                z.putNextEntry(ze);
                z.write(data);
                z.closeEntry();
            }
        }
        return p;
    }

    @Test
    void pthArchivesWithAbsurdSizesAreRefusedBeforeAllocating() throws Exception {
        Path model = pyFixtures().resolve("tiny-rwkv-7v0-834K-FP32.pth");
        Path deflated = rezip("deflated", model, true);
        assertEquals("loaded", load(deflated), "a deflated archive loads");
        // each storage's uncompressed size in the central directory claims the most deflate allows (1032:1)
        byte[] b = Files.readAllBytes(deflated);
        ByteBuffer buf = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        int claimed = 0;
        for (int p = 0; p + 46 <= b.length; p++) {
            if (buf.getInt(p) == 0x02014b50 && buf.getShort(p + 10) == 8) {
                long csize = buf.getInt(p + 20) & 0xFFFFFFFFL;
                buf.putInt(p + 24, (int) Math.min(0xFFFFFFFEL, 1032 * csize + 1024));
                claimed++;
            }
        }
        assertTrue(claimed > 10, "forged " + claimed + " sizes");
        Path inflated = dir.resolve("claims-1032x.pth");
        Files.write(inflated, b);
        assertRefused(inflated, "does not inflate to the");
        // sizes beyond what deflate can produce, and beyond what a deflated entry may hold
        for (int[] claim : new int[][] {{0x7FFFFFF0, 0}, {0xFFFFFFF0, 1}}) {
            for (int p = 0; p + 46 <= b.length; p++) {
                if (buf.getInt(p) == 0x02014b50 && buf.getShort(p + 10) == 8) {
                    buf.putInt(p + 24, claim[0]);
                }
            }
            Path bomb = dir.resolve("claims-" + Integer.toUnsignedString(claim[0]) + ".pth");
            Files.write(bomb, b);
            assertRefused(bomb, claim[1] == 0 ? "claims 2147483632 bytes from" : "is over 2 GiB");
        }
    }

    @Test
    void pthFilesThatAskForMoreMemoryThanTheirSizeAllowsAreRefused() throws Exception {
        Path out = Files.createDirectories(dir.resolve("budget"));
        PythonFixtures.run("torch", "make_budget_pth.py", out.toString());
        // 96 x 4 MiB declared by a 4 MiB file: strided views (each would be copied) and one storage under 96 names
        assertRefused(out.resolve("strided-views.pth"), "its tensors declare 402653184 bytes");
        assertRefused(out.resolve("shared-storage.pth"), "its tensors declare 402653184 bytes");
        // 3 deflated storages of 96 MiB of zeros in a 0.3 MB file: each entry's ratio is possible, their sum is not
        Path zeros = out.resolve("deflated-zeros.pth");
        assertTrue(Files.size(zeros) < 1 << 20, "deflated-zeros.pth is " + Files.size(zeros) + " bytes");
        assertRefused(zeros, "inflating zip entry");
        assertRefused(zeros, "more than the " + LoadBudget.limitFor(Files.size(zeros)));
    }

    @Test
    void pthArchivesWhoseEntriesShareBytesAreRefused() throws Exception {
        Path model = pyFixtures().resolve("tiny-rwkv-7v0-834K-FP32.pth");
        Path deflated = rezip("deflated-shared", model, true);
        // point every storage's central-directory entry at the first storage's local header and data
        byte[] b = Files.readAllBytes(deflated);
        ByteBuffer buf = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        int first = -1;
        int forged = 0;
        for (int p = 0; p + 46 <= b.length; p++) {
            if (buf.getInt(p) == 0x02014b50 && buf.getShort(p + 10) == 8) {
                if (first < 0) {
                    first = buf.getInt(p + 42);
                } else {
                    buf.putInt(p + 42, first);
                    forged++;
                }
            }
        }
        assertTrue(forged > 10, "forged " + forged + " offsets");
        Path shared = dir.resolve("shared-data.pth");
        Files.write(shared, b);
        assertRefused(shared, "overlap; an archive that reuses bytes for several entries is refused");
    }

    // ------------------------------------------------------------------ pickles that run code under Python

    @Test
    void pthPicklesThatRunCodeUnderPythonAreRefusedAndNothingRuns() throws Exception {
        Path out = Files.createDirectories(dir.resolve("hostile"));
        Path markers = Files.createDirectories(dir.resolve("markers"));
        Path proof = Files.createDirectories(dir.resolve("proof"));
        // the script also loads each file with torch.load and fails unless its payload ran there
        PythonFixtures.run("torch", "make_hostile_pth.py", out.toString(), markers.toString(), proof.toString());
        List<Path> files;
        try (Stream<Path> s = Files.list(out)) {
            files = s.sorted().toList();
        }
        assertEquals(12, files.size(), "payload files written");
        Map<String, Integer> reasons = new TreeMap<>();
        for (Path p : files) {
            String name = p.getFileName().toString().replace(".pth", "");
            assertTrue(Files.exists(proof.resolve(name + ".created")), name + " is live under torch.load");
            String msg = refusal(p);
            String reason = msg.contains("refusing global")
                    ? msg.substring(msg.indexOf("refusing global")).replaceAll(":.*", "")
                    : msg.substring(msg.indexOf("data.pkl byte"));
            assertTrue(
                    msg.contains("refusing global") || msg.contains("cannot be called"),
                    name + ": refused for its payload: " + msg);
            reasons.merge(reason.replaceAll("data.pkl byte \\d+: ", ""), 1, Integer::sum);
            // the lower-level reader says the same
            try {
                WeightFile.open(p).close();
                fail(name + " opened");
            } catch (IOException e) {
                assertTrue(e.getMessage().startsWith(p.toString()), e.getMessage());
            }
        }
        System.out.println("pickle payloads refused: " + reasons);
        try (Stream<Path> s = Files.list(markers)) {
            assertEquals(List.of(), s.toList(), "no payload ran");
        }
    }
}
