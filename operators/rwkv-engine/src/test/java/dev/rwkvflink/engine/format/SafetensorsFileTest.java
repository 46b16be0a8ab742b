package dev.rwkvflink.engine.format;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.tensor.Tensor;
import dev.rwkvflink.engine.tensor.WeightType;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SortedMap;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsFileTest {
    @TempDir
    Path dir;

    /** Writes u64 header length, the header text as given, then {@code data}. */
    private Path write(String name, String header, byte[] data) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(ByteBuffer.allocate(8)
                .order(ByteOrder.LITTLE_ENDIAN)
                .putLong(h.length)
                .array());
        out.writeBytes(h);
        out.writeBytes(data);
        Path p = dir.resolve(name);
        Files.write(p, out.toByteArray());
        return p;
    }

    private static byte[] f32(float... v) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) {
            b.putFloat(x);
        }
        return b.array();
    }

    private static byte[] u16(int... v) {
        ByteBuffer b = ByteBuffer.allocate(2 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (int x : v) {
            b.putShort((short) x);
        }
        return b.array();
    }

    private static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] p : parts) {
            out.writeBytes(p);
        }
        return out.toByteArray();
    }

    @Test
    void readsFloatTypesWithMetadata() throws IOException {
        // F16 0x3C00 = 1, 0xC000 = -2; BF16 0x3FC0 = 1.5, 0x4049 = 3.140625
        byte[] data =
                concat(f32(1.5f, -2f, 3.25f, 0f, 7f, -0.5f), u16(0x3C00, 0xC000), u16(0x3FC0, 0x4049), f32(-0.5f));
        Path p = write("plain.safetensors", """
                {"__metadata__":{"format":"pt"},
                 "a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},
                 "b":{"dtype":"F16","shape":[2],"data_offsets":[24,28]},
                 "c":{"dtype":"BF16","shape":[1,2],"data_offsets":[28,32]},
                 "s":{"dtype":"F32","shape":[],"data_offsets":[32,36]}}""", data);
        try (WeightFile wf = SafetensorsFile.read(p)) {
            assertEquals("safetensors", wf.format());
            assertEquals(WeightFile.Origin.BLINKDL, wf.origin());
            Tensor a = wf.get("a");
            assertEquals(WeightType.F32, a.type());
            assertArrayEquals(new long[] {2, 3}, a.shape());
            assertArrayEquals(new float[] {1.5f, -2f, 3.25f, 0f, 7f, -0.5f}, a.toFloatArray());
            assertEquals(WeightType.F16, wf.get("b").type());
            assertArrayEquals(new float[] {1f, -2f}, wf.get("b").toFloatArray());
            assertEquals(WeightType.BF16, wf.get("c").type());
            assertArrayEquals(new float[] {1.5f, 3.140625f}, wf.get("c").toFloatArray());
            assertArrayEquals(new long[0], wf.get("s").shape());
            assertArrayEquals(new float[] {-0.5f}, wf.get("s").toFloatArray());
        }
    }

    @Test
    void openDispatchesSafetensorsByContent() throws IOException {
        Path p = write("model.bin", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", f32(42f));
        try (WeightFile wf = WeightFile.open(p)) {
            assertEquals("safetensors", wf.format());
            assertArrayEquals(new float[] {42f}, wf.get("x").toFloatArray());
        }
    }

    private void assertRefused(String fileName, byte[] content, String... fragments) throws IOException {
        Path p = dir.resolve(fileName);
        Files.write(p, content);
        IOException e = assertThrows(IOException.class, () -> SafetensorsFile.read(p));
        assertTrue(e.getMessage().contains(p.toString()), "message names the file: " + e.getMessage());
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "message should mention '" + f + "': " + e.getMessage());
        }
    }

    private byte[] file(String header, byte[] data) throws IOException {
        return Files.readAllBytes(write("tmp", header, data));
    }

    @Test
    void corruptFilesAreRefusedWithClearMessages() throws IOException {
        String ok = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        assertRefused("short.safetensors", new byte[] {1, 2, 3}, "shorter than its 8-byte header length");
        byte[] huge = file(ok, f32(1, 2));
        ByteBuffer.wrap(huge).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 1L << 40);
        assertRefused("huge-header.safetensors", huge, "bad safetensors header length 1099511627776");
        byte[] past = file(ok, f32(1, 2));
        ByteBuffer.wrap(past).order(ByteOrder.LITTLE_ENDIAN).putLong(0, past.length);
        assertRefused("header-past-end.safetensors", past, "bad safetensors header length");
        byte[] negative = file(ok, f32(1, 2));
        ByteBuffer.wrap(negative).order(ByteOrder.LITTLE_ENDIAN).putLong(0, -8);
        assertRefused("negative-header.safetensors", negative, "bad safetensors header length");
        assertRefused("bad-json.safetensors", file("{\"x\":{\"dtype\":", f32(1, 2)), "not valid JSON");
        assertRefused("array.safetensors", file("[1,2]", f32(1, 2)), "not a JSON object");
        assertRefused("dup.safetensors", file("{\"x\":{},\"x\":{}}", f32(1, 2)), "not valid JSON");
        assertRefused(
                "outside.safetensors",
                file("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", f32(1, 2)),
                "tensor 'x'",
                "data_offsets [4, 12] lie outside the 8-byte data region");
        assertRefused(
                "reversed.safetensors",
                file("{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", f32(1, 2)),
                "data_offsets [8, 0]");
        assertRefused(
                "size.safetensors",
                file("{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", f32(1, 2)),
                "tensor 'x'",
                "F32 [3] needs 12 bytes, data_offsets give 8");
        assertRefused(
                "dtype.safetensors",
                file("{\"x\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", f32(1, 2)),
                "unsupported dtype I64");
        assertRefused(
                "dim.safetensors",
                file("{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", f32(1, 2)),
                "bad dimension -2");
        assertRefused(
                "overflow.safetensors",
                file(
                        "{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296," + "4294967296],\"data_offsets\":[0,8]}}",
                        f32(1, 2)),
                "too large");
        assertRefused(
                "offsets.safetensors",
                file("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", f32(1, 2)),
                "data_offsets must be [begin, end]");
        assertRefused("empty.safetensors", file("{\"__metadata__\":{}}", new byte[0]), "no tensors");
        // issue 18: overlapping entries (many tensors from the same bytes) are refused, naming both
        assertRefused(
                "overlap.safetensors",
                file(
                        "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                + "\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                        f32(1, 2)),
                "tensors 'x' [0, 8) and 'y' [4, 8) overlap");
        assertRefused(
                "same.safetensors",
                file(
                        "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                + "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                        f32(1, 2)),
                "overlap");
    }

    @Test
    void blinkDlAndFlaNamingGiveTheSameCanonicalModel() throws Exception {
        PythonFixtures.run("numpy", "make_safetensors_fixtures.py", dir.toString());
        try (WeightFile blink = SafetensorsFile.read(dir.resolve("blinkdl.safetensors"));
                WeightFile fla = SafetensorsFile.read(dir.resolve("fla.safetensors"));
                WeightFile flaXx = SafetensorsFile.read(dir.resolve("fla_xx.safetensors"))) {
            TensorAsserts.assertMatchesJson(
                    TensorAsserts.readJson(dir.resolve("expected.json")), blink.tensors(), "blinkdl.safetensors");
            assertEquals(WeightType.BF16, blink.get("blocks.0.att.key.weight").type(), "types are kept");
            assertEquals(WeightType.F16, blink.get("blocks.1.ffn.value.weight").type());
            assertArrayEquals(
                    new long[] {6, 64}, blink.get("blocks.1.att.x_rwkvag").shape());
            assertArrayEquals(new long[] {32, 64}, blink.get("blocks.1.att.w1").shape(), "out x in");
            assertArrayEquals(new long[] {64, 16}, blink.get("blocks.1.att.v2").shape(), "out x in");
            TensorAsserts.assertIdentical(sorted(blink), sorted(fla), "fla.safetensors");
            TensorAsserts.assertIdentical(sorted(blink), sorted(flaXx), "fla_xx.safetensors");
        }
    }

    private static SortedMap<String, Tensor> sorted(WeightFile wf) {
        return new TreeMap<>(wf.tensors());
    }

    @Test
    void unknownFlaNamesAreReportedWithTheFile() throws IOException {
        Path p = write(
                "hybrid.safetensors",
                "{\"model.layers.0.attn.q_proj.weight\":{\"dtype\":\"F32\"," + "\"shape\":[1],\"data_offsets\":[0,4]}}",
                f32(1));
        IOException e = assertThrows(IOException.class, () -> SafetensorsFile.read(p));
        assertTrue(e.getMessage().startsWith(p.toString()), e.getMessage());
        assertTrue(
                e.getMessage().contains("unknown fla RWKV-7 tensor name 'model.layers.0.attn.q_proj.weight'"),
                e.getMessage());
    }
}
