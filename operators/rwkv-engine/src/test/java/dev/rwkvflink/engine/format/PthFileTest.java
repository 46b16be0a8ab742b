package dev.rwkvflink.engine.format;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PthFileTest {
    @TempDir
    Path dir;

    /** Builds pickle bytes opcode by opcode (protocol 2 unless said otherwise). */
    private static final class Pickle {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();

        Pickle op(int... bytes) {
            for (int b : bytes) {
                out.write(b);
            }
            return this;
        }

        Pickle raw(byte[] bytes) {
            out.writeBytes(bytes);
            return this;
        }

        Pickle global(String module, String name) {
            op('c');
            out.writeBytes((module + "\n" + name + "\n").getBytes(StandardCharsets.UTF_8));
            return this;
        }

        Pickle str(String s) {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            op('X').i32(b.length);
            out.writeBytes(b);
            return this;
        }

        Pickle int1(int v) {
            return op('K', v);
        }

        Pickle i32(int v) {
            out.writeBytes(ByteBuffer.allocate(4)
                    .order(ByteOrder.LITTLE_ENDIAN)
                    .putInt(v)
                    .array());
            return this;
        }

        /** {@code _rebuild_tensor_v2(('storage', FloatStorage, key, 'cpu', numel), offset, size, stride, False,
         * OrderedDict())} with one-byte ints. */
        Pickle tensor(String storageType, String key, int numel, int offset, int[] size, int[] stride) {
            global("torch._utils", "_rebuild_tensor_v2").op('(');
            op('(').str("storage")
                    .global("torch", storageType)
                    .str(key)
                    .str("cpu")
                    .int1(numel)
                    .op('t', 'Q');
            int1(offset);
            op('(');
            for (int s : size) {
                int1(s);
            }
            op('t', '(');
            for (int s : stride) {
                int1(s);
            }
            op('t', 0x89).global("collections", "OrderedDict").op(')', 'R', 't', 'R');
            return this;
        }

        byte[] bytes() {
            return out.toByteArray();
        }
    }

    private static byte[] f32(float... v) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) {
            b.putFloat(x);
        }
        return b.array();
    }

    /** A torch-like archive "archive/..." with the given entries, STORED or DEFLATED. */
    private Path zip(String name, boolean stored, Map<String, byte[]> entries) throws IOException {
        Path p = dir.resolve(name);
        try (OutputStream fo = new BufferedOutputStream(Files.newOutputStream(p));
                ZipOutputStream z = new ZipOutputStream(fo)) {
            for (Map.Entry<String, byte[]> e : entries.entrySet()) {
                ZipEntry ze = new ZipEntry("archive/" + e.getKey());
                if (stored) {
                    CRC32 crc = new CRC32();
                    crc.update(e.getValue());
                    ze.setMethod(ZipEntry.STORED);
                    ze.setSize(e.getValue().length);
                    ze.setCompressedSize(e.getValue().length);
                    ze.setCrc(crc.getValue());
                }
                z.putNextEntry(ze);
                z.write(e.getValue());
                z.closeEntry();
            }
        }
        return p;
    }

    private Path pth(String name, boolean stored, byte[] pickle, byte[] storage0) throws IOException {
        Map<String, byte[]> entries = new LinkedHashMap<>();
        entries.put("data.pkl", pickle);
        if (storage0 != null) {
            entries.put("data/0", storage0);
        }
        entries.put("version", "3\n".getBytes(StandardCharsets.US_ASCII));
        return zip(name, stored, entries);
    }

    /** {'w': (2, 3) view at offset 1 of a 7-float storage, 't': its transpose} as a protocol-2 pickle. */
    private static byte[] twoTensorPickle() {
        return new Pickle()
                .op(0x80, 2)
                .global("collections", "OrderedDict")
                .op(')', 'R', '(')
                .str("w")
                .tensor("FloatStorage", "0", 7, 1, new int[] {2, 3}, new int[] {3, 1})
                .str("t")
                .tensor("FloatStorage", "0", 7, 1, new int[] {3, 2}, new int[] {1, 3})
                .op('u', '.')
                .bytes();
    }

    @Test
    void readsAHandMadeCheckpointStoredAndDeflated() throws IOException {
        byte[] storage = f32(99f, 1f, 2f, 3f, 4f, 5f, 6f);
        for (boolean stored : new boolean[] {true, false}) {
            Path p = pth("hand-" + stored + ".pth", stored, twoTensorPickle(), storage);
            try (WeightFile wf = WeightFile.open(p)) {
                assertEquals("pth", wf.format());
                assertEquals(WeightFile.Origin.BLINKDL, wf.origin());
                Tensor w = wf.get("w");
                assertEquals(WeightType.F32, w.type());
                assertArrayEquals(new long[] {2, 3}, w.shape());
                assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, w.toFloatArray());
                Tensor t = wf.get("t");
                assertArrayEquals(new long[] {3, 2}, t.shape());
                assertArrayEquals(new float[] {1, 4, 2, 5, 3, 6}, t.toFloatArray());
            }
        }
    }

    @Test
    void readsTorch2UntypedStoragesWithRebuildTensorV3() throws IOException {
        // torch 2.x: _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype); numel in bytes
        byte[] pickle = new Pickle()
                .op(0x80, 2, '}', '(')
                .str("b")
                .global("torch._utils", "_rebuild_tensor_v3")
                .op('(')
                .op('(')
                .str("storage")
                .global("torch", "UntypedStorage")
                .str("0")
                .str("cpu")
                .int1(8)
                .op('t', 'Q')
                .int1(1)
                .op('(')
                .int1(3)
                .op('t', '(')
                .int1(1)
                .op('t', 0x89)
                .global("collections", "OrderedDict")
                .op(')', 'R')
                .global("torch", "bfloat16")
                .op('t', 'R')
                .op('u', '.')
                .bytes();
        // bf16 0x3F80 = 1, 0x4000 = 2, 0xC040 = -3 after one element of padding
        byte[] storage = ByteBuffer.allocate(8)
                .order(ByteOrder.LITTLE_ENDIAN)
                .putShort((short) 0x7F7F)
                .putShort((short) 0x3F80)
                .putShort((short) 0x4000)
                .putShort((short) 0xC040)
                .array();
        try (WeightFile wf = PthFile.read(pth("v3.pth", true, pickle, storage))) {
            Tensor b = wf.get("b");
            assertEquals(WeightType.BF16, b.type());
            assertArrayEquals(new float[] {1f, 2f, -3f}, b.toFloatArray());
        }
    }

    @Test
    void readsZip64Archives() throws IOException {
        // more than 65535 entries make ZipOutputStream write the zip64 end-of-central-directory records
        Map<String, byte[]> entries = new LinkedHashMap<>();
        entries.put("data.pkl", twoTensorPickle());
        entries.put("data/0", f32(0, 1, 2, 3, 4, 5, 6));
        for (int i = 0; i < 65_600; i++) {
            entries.put("filler/" + i, new byte[0]);
        }
        Path p = zip("zip64.pth", true, entries);
        byte[] bytes = Files.readAllBytes(p);
        assertTrue(indexOf(bytes, new byte[] {'P', 'K', 6, 6}) > 0, "the archive uses zip64 records");
        try (WeightFile wf = PthFile.read(p)) {
            assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, wf.get("w").toFloatArray());
        }
    }

    @Test
    void refusesBigEndianCheckpoints() throws IOException {
        Map<String, byte[]> entries = new LinkedHashMap<>();
        entries.put("byteorder", "big".getBytes(StandardCharsets.US_ASCII));
        entries.put("data.pkl", twoTensorPickle());
        entries.put("data/0", f32(0, 1, 2, 3, 4, 5, 6));
        assertRefused(zip("big.pth", true, entries), "byteorder is 'big'; only little-endian");
    }

    private void assertRefused(Path p, String... fragments) {
        IOException e = assertThrows(IOException.class, () -> PthFile.read(p));
        assertTrue(e.getMessage().startsWith(p.toString()), "message names the file: " + e.getMessage());
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "message should mention '" + f + "': " + e.getMessage());
        }
    }

    @Test
    void refusesHandMadeCodeExecutionPickles() throws IOException {
        Path marker = dir.resolve("pwned");
        byte[] osSystem = new Pickle()
                .op(0x80, 2)
                .global("os", "system")
                .str("touch " + marker)
                .op(0x85, 'R', '.')
                .bytes();
        assertRefused(
                pth("os-system.pth", true, osSystem, null),
                "refusing global os.system: model files may only contain tensors");
        // protocol 4 spells the same attack with STACK_GLOBAL
        byte[] stackGlobal = new Pickle()
                .op(0x80, 4)
                .op(0x8c, 8)
                .raw("builtins".getBytes(StandardCharsets.US_ASCII))
                .op(0x8c, 4)
                .raw("eval".getBytes(StandardCharsets.US_ASCII))
                .op(0x93)
                .str("open('" + marker + "', 'w')")
                .op(0x85, 'R', '.')
                .bytes();
        assertRefused(pth("eval.pth", true, stackGlobal, null), "refusing global builtins.eval");
        // a state dict whose second value is the attack: refused as a whole, the tensor before it does not help
        byte[] hidden = new Pickle()
                .op(0x80, 2)
                .global("collections", "OrderedDict")
                .op(')', 'R', '(')
                .str("w")
                .tensor("FloatStorage", "0", 7, 1, new int[] {2, 3}, new int[] {3, 1})
                .str("x")
                .global("subprocess", "Popen")
                .op(']')
                .str("touch")
                .op('a')
                .op(0x85, 'R')
                .op('u', '.')
                .bytes();
        assertRefused(pth("popen.pth", true, hidden, f32(0, 1, 2, 3, 4, 5, 6)), "refusing global subprocess.Popen");
        // INST imports and calls in one opcode; it is not among the opcodes a state dict needs
        byte[] inst = new Pickle()
                .op(0x80, 2)
                .op('(')
                .str("touch")
                .op('i')
                .raw("os\nsystem\n".getBytes(StandardCharsets.US_ASCII))
                .op('.')
                .bytes();
        assertRefused(pth("inst.pth", true, inst, null), "unsupported pickle opcode 0x69 ('i')");
        // an allowed global may still not be called with anything
        byte[] storageCall = new Pickle()
                .op(0x80, 2)
                .global("torch", "FloatStorage")
                .op(')', 'R', '.')
                .bytes();
        assertRefused(pth("call.pth", true, storageCall, null), "torch.FloatStorage cannot be called");
        assertFalse(Files.exists(marker));
    }

    @Test
    void refusesHostilePickleStructures() throws IOException {
        byte[] memo = new Pickle().op(0x80, 2).op('j').i32(0xFFFFFFF0).op('.').bytes();
        assertRefused(pth("memo.pth", true, memo, null), "memo entry 4294967280 was never stored");
        // a tuple nested a million deep: built without recursion, described without recursion
        Pickle deep = new Pickle().op(0x80, 2, ')');
        for (int i = 0; i < 1_000_000; i++) {
            deep.op(0x85);
        }
        assertRefused(pth("deep.pth", false, deep.op('.').bytes(), null), "holds a tuple of 1, not a state dict");
        Pickle marks = new Pickle().op(0x80, 2);
        for (int i = 0; i < (1 << 20) + 1; i++) {
            marks.op('(');
        }
        assertRefused(pth("marks.pth", false, marks.bytes(), null), "too many nested marks");
        byte[] truncated = Arrays.copyOf(twoTensorPickle(), 40);
        assertRefused(pth("truncated-pickle.pth", true, truncated, null), "truncated");
        byte[] tupleKey =
                new Pickle().op(0x80, 2, '}').op(')').int1(1).op('s', '.').bytes();
        assertRefused(pth("tuple-key.pth", true, tupleKey, null), "dict key a tuple of 0");
    }

    @Test
    void checksStoragesAgainstTheirTensors() throws IOException {
        assertRefused(
                pth("short-storage.pth", true, twoTensorPickle(), f32(1, 2, 3)),
                "tensor 'w'",
                "storage 0 has 12 bytes, its 7 elements of torch.FloatStorage need 28");
        assertRefused(pth("no-storage.pth", true, twoTensorPickle(), null), "archive/data/0 is missing");
        byte[] outOfRange = new Pickle()
                .op(0x80, 2, '}', '(')
                .str("w")
                .tensor("FloatStorage", "0", 4, 2, new int[] {3}, new int[] {1})
                .op('u', '.')
                .bytes();
        assertRefused(pth("range.pth", true, outOfRange, f32(1, 2, 3, 4)), "reach element 4 of a storage of 4");
        byte[] longs = new Pickle()
                .op(0x80, 2, '}', '(')
                .str("w")
                .tensor("LongStorage", "0", 2, 0, new int[] {2}, new int[] {1})
                .op('u', '.')
                .bytes();
        assertRefused(pth("long.pth", true, longs, new byte[16]), "tensor 'w' has type torch.LongStorage");
        byte[] expanded = new Pickle()
                .op(0x80, 2, '}', '(')
                .str("w")
                .tensor("FloatStorage", "0", 1, 0, new int[] {200, 200}, new int[] {0, 0})
                .op('u', '.')
                .bytes();
        assertRefused(pth("expand.pth", true, expanded, f32(1)), "reuse storage elements");
        byte[] badKey = new Pickle()
                .op(0x80, 2, '}', '(')
                .str("w")
                .tensor("FloatStorage", "../0", 1, 0, new int[] {1}, new int[] {1})
                .op('u', '.')
                .bytes();
        assertRefused(pth("key.pth", true, badKey, f32(1)), "bad storage key '../0'");
    }

    @Test
    void refusesCorruptArchives() throws IOException {
        Path good = pth("good.pth", true, twoTensorPickle(), f32(0, 1, 2, 3, 4, 5, 6));
        byte[] bytes = Files.readAllBytes(good);

        Path half = dir.resolve("half.pth");
        Files.write(half, Arrays.copyOf(bytes, bytes.length / 2));
        assertRefused(half, "no end-of-central-directory record");

        Path flipped = dir.resolve("flipped.pth");
        byte[] f = bytes.clone();
        int at = indexOf(f, "storage".getBytes(StandardCharsets.US_ASCII));
        f[at] ^= 0x20;
        Files.write(flipped, f);
        assertRefused(flipped, "archive/data.pkl fails its CRC-32 check");

        Path moved = dir.resolve("moved.pth");
        byte[] m = bytes.clone();
        // the central directory comes last, so the name's last occurrence is in its central header (name at +46)
        int central = lastIndexOf(m, "archive/data/0".getBytes(StandardCharsets.US_ASCII)) - 46;
        ByteBuffer.wrap(m).order(ByteOrder.LITTLE_ENDIAN).putInt(central + 42, 0x7FFFFFF0);
        Files.write(moved, m);
        assertRefused(moved, "zip entry archive/data/0 has no local header at byte 2147483632");

        Path notZip = dir.resolve("random.pth");
        Files.write(notZip, "PK\u0003\u0004 but nothing else of a zip archive".getBytes(StandardCharsets.US_ASCII));
        assertRefused(notZip, "not a zip archive, or truncated");

        Path noPickle = zip("nopickle.pth", true, Map.of("data/0", f32(1)));
        assertRefused(noPickle, "expected one <prefix>/data.pkl entry in the archive, found 0");
    }

    private static int indexOf(byte[] hay, byte[] needle) {
        return indexOf(hay, needle, 0);
    }

    private static int indexOf(byte[] hay, byte[] needle, int from) {
        outer:
        for (int i = Math.max(0, from); i <= hay.length - needle.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (hay[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    private static int lastIndexOf(byte[] hay, byte[] needle) {
        int last = -1;
        for (int i = indexOf(hay, needle); i >= 0; i = indexOf(hay, needle, i + 1)) {
            last = i;
        }
        return last;
    }

    // ------------------------------------------------------------------ fixtures written by torch.save

    @TempDir
    static Path torchDir;

    private static boolean torchFixturesMade;

    /** Runs make_pth_fixtures.py once for the class; skips the test without python3 + torch. */
    private static Path torchFixtures() throws Exception {
        if (!torchFixturesMade) {
            Path markers = Files.createDirectories(torchDir.resolve("markers"));
            PythonFixtures.run("torch", "make_pth_fixtures.py", torchDir.toString(), markers.toString());
            torchFixturesMade = true;
        }
        return torchDir;
    }

    @Test
    void readsEveryLayoutTorchWrites() throws Exception {
        Path fx = torchFixtures();
        JsonNode expected = TensorAsserts.readJson(fx.resolve("basic.json"));
        for (String file : new String[] {"basic.pth", "basic_p4.pth"}) {
            try (WeightFile wf = PthFile.read(fx.resolve(file))) {
                assertEquals(expected.size(), wf.tensors().size(), file + ": every tensor, and only tensors");
                for (Map.Entry<String, JsonNode> e : expected.properties()) {
                    Tensor t = wf.get(e.getKey());
                    String where = file + ": " + e.getKey();
                    JsonNode node = e.getValue();
                    assertEquals(
                            switch (node.get("dtype").asText()) {
                                case "float32" -> WeightType.F32;
                                case "float16" -> WeightType.F16;
                                case "bfloat16" -> WeightType.BF16;
                                default -> throw new AssertionError(node.get("dtype"));
                            },
                            t.type(),
                            where + " type");
                    long[] shape = new long[node.get("shape").size()];
                    for (int i = 0; i < shape.length; i++) {
                        shape[i] = node.get("shape").get(i).longValue();
                    }
                    assertArrayEquals(shape, t.shape(), where + " shape");
                    float[] want = new float[node.get("values").size()];
                    for (int i = 0; i < want.length; i++) {
                        want[i] = (float) node.get("values").get(i).doubleValue();
                    }
                    TensorAsserts.assertBitsEqual(want, t.toFloatArray(), where);
                }
                assertEquals(3.25f, wf.get("scalar").getFloat(0));
                assertEquals(0, wf.get("empty").size());
                // contiguous views share the mapped storage: row2 starts 12 floats into base
                assertEquals(
                        wf.get("base").data().address() + 48,
                        wf.get("row2").data().address());
            }
        }
    }

    @Test
    void refusesTorchSavedCodeExecution() throws Exception {
        Path fx = torchFixtures();
        Path markers = fx.resolve("markers");
        // pickle protocol 2 (torch's default) writes Python 2 module names: builtins -> __builtin__,
        // subprocess -> commands; os.system is posix.system on Linux
        String[][] cases = {
            {"evil_system", "refusing global posix.system: model files may only contain tensors"},
            {"evil_eval", "refusing global __builtin__.eval: model files may only contain tensors"},
            {"evil_popen", "refusing global commands.Popen: model files may only contain tensors"}
        };
        for (String[] c : cases) {
            Path p = fx.resolve(c[0] + ".pth");
            assertRefused(p, c[1]);
            IOException viaOpen = assertThrows(IOException.class, () -> WeightFile.open(p));
            assertTrue(viaOpen.getMessage().contains(c[1]), viaOpen.getMessage());
            assertFalse(Files.exists(markers.resolve(c[0] + ".created")), c[0] + " must not run");
        }
        // the payload is live: Python's own unpickler runs it (it only touches a file in the temp folder)
        String python = PythonFixtures.interpreterWith("torch").orElseThrow();
        String load = "import sys, torch\ntry:\n    torch.load(sys.argv[1], weights_only=False)\n"
                + "except TypeError:\n    torch.load(sys.argv[1])\n";
        Process p = new ProcessBuilder(
                        python, "-c", load, fx.resolve("evil_system.pth").toString())
                .redirectErrorStream(true)
                .start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        p.waitFor();
        assertTrue(Files.exists(markers.resolve("evil_system.created")), "torch.load should run it: " + output);
    }
}
