package dev.rwkvflink.engine.embed;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.state.ModelFingerprint;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class EmbeddingStatsTest {

    @TempDir
    Path tmp;

    private static final ModelFingerprint MODEL = fingerprint(1);
    private static final Pooling POOLING = Pooling.parse("state:3");

    private static ModelFingerprint fingerprint(int fill) {
        byte[] digest = new byte[ModelFingerprint.BYTES];
        Arrays.fill(digest, (byte) fill);
        return ModelFingerprint.ofBytes(digest);
    }

    /**
     * By hand: vectors (1, 2), (3, 4), (5, 9). Means 3 and 5. Squared deviations 4+0+4 = 8 and 9+1+16 = 26,
     * population std sqrt(8/3) = 1.6329932 and sqrt(26/3) = 2.9439203. Standardizing (4, 5):
     * (4 - 3) / 1.6329932 = 0.6123724, (5 - 5) / 2.9439203 = 0.
     */
    @Test
    void standardizesAgainstAHandComputation() {
        EmbeddingStats stats = new EmbeddingStats(MODEL, POOLING, 2);
        stats.add(new float[] {1, 2});
        stats.add(new float[] {3, 4});
        stats.add(new float[] {5, 9});
        assertEquals(3, stats.count());
        assertEquals(3.0, stats.mean(0), 1e-12);
        assertEquals(5.0, stats.mean(1), 1e-12);
        assertEquals(Math.sqrt(8.0 / 3), stats.std(0), 1e-12);
        assertEquals(Math.sqrt(26.0 / 3), stats.std(1), 1e-12);
        float[] z = stats.standardize(new float[] {4, 5});
        assertEquals(0.6123724f, z[0], 1e-6f);
        assertEquals(0f, z[1]);
    }

    /** A channel that never varies is divided by 1e-6, not by zero. */
    @Test
    void constantChannelsUseTheMinimumStd() {
        EmbeddingStats stats = new EmbeddingStats(MODEL, POOLING, 1);
        stats.add(new float[] {2});
        stats.add(new float[] {2});
        assertEquals(0.0, stats.std(0));
        assertArrayEquals(new float[] {(float) (0.5 / 1e-6)}, stats.standardize(new float[] {2.5f}));
    }

    @Test
    void mergeEqualsAddingEverythingToOne() {
        Random rnd = new Random(1);
        EmbeddingStats all = new EmbeddingStats(MODEL, POOLING, 5);
        EmbeddingStats a = new EmbeddingStats(MODEL, POOLING, 5);
        EmbeddingStats b = new EmbeddingStats(MODEL, POOLING, 5);
        for (int i = 0; i < 300; i++) {
            float[] v = new float[5];
            for (int j = 0; j < v.length; j++) {
                v[j] = (float) (rnd.nextGaussian() * (j + 1) + 10 * j);
            }
            all.add(v);
            (i < 100 ? a : b).add(v);
        }
        a.merge(b);
        assertEquals(300, a.count());
        for (int j = 0; j < 5; j++) {
            assertEquals(all.mean(j), a.mean(j), 1e-9);
            assertEquals(all.std(j), a.std(j), 1e-9);
        }
        EmbeddingStats other = new EmbeddingStats(fingerprint(2), POOLING, 5);
        assertThrows(IllegalArgumentException.class, () -> a.merge(other));
    }

    @Test
    void saveAndLoadRoundTripBitForBit() throws IOException {
        Random rnd = new Random(2);
        EmbeddingStats stats = new EmbeddingStats(MODEL, POOLING, 64);
        for (int i = 0; i < 50; i++) {
            float[] v = new float[64];
            for (int j = 0; j < v.length; j++) {
                v[j] = (float) (rnd.nextGaussian() * 1e-3 * (j + 1));
            }
            stats.add(v);
        }
        Path file = tmp.resolve("stats.json");
        stats.save(file);
        EmbeddingStats loaded = EmbeddingStats.load(file, MODEL, POOLING);
        assertEquals(50, loaded.count());
        assertEquals(POOLING, loaded.pooling());
        assertEquals(MODEL.hex(), loaded.modelFingerprintHex());
        for (int j = 0; j < 64; j++) {
            assertEquals(Double.doubleToRawLongBits(stats.mean(j)), Double.doubleToRawLongBits(loaded.mean(j)));
            assertEquals(Double.doubleToRawLongBits(stats.std(j)), Double.doubleToRawLongBits(loaded.std(j)));
        }
        float[] probe = new float[64];
        Arrays.fill(probe, 0.01f);
        assertArrayEquals(stats.standardize(probe), loaded.standardize(probe));
        String text = Files.readString(file);
        assertTrue(text.startsWith("{\"format\":\"rwkv-flink-embedding-stats\",\"version\":1,\"model\":\"0101"), text);
    }

    @Test
    void loadRefusesAnotherModelOrPooling() throws IOException {
        EmbeddingStats stats = new EmbeddingStats(MODEL, POOLING, 2);
        stats.add(new float[] {1, 2});
        Path file = tmp.resolve("stats.json");
        stats.save(file);
        IOException otherModel =
                assertThrows(IOException.class, () -> EmbeddingStats.load(file, fingerprint(2), POOLING));
        assertTrue(
                otherModel.getMessage().contains("computed for model 010101010101, not for this model 020202020202"),
                otherModel.getMessage());
        IOException otherPooling =
                assertThrows(IOException.class, () -> EmbeddingStats.load(file, MODEL, Pooling.HIDDEN));
        assertTrue(
                otherPooling.getMessage().contains("are for pooling state:3, but the embedder uses hidden"),
                otherPooling.getMessage());
    }

    /** "state" (the default, last layer) fits statistics of "state:3"; the Embedder checks 3 is the last layer. */
    @Test
    void loadAcceptsTheDefaultLayerForStatisticsOfOneLayer() throws IOException {
        EmbeddingStats stats = new EmbeddingStats(MODEL, POOLING, 2);
        stats.add(new float[] {1, 2});
        Path file = tmp.resolve("stats.json");
        stats.save(file);
        assertEquals(POOLING, EmbeddingStats.load(file, MODEL, Pooling.STATE).pooling());
        IOException otherLayer =
                assertThrows(IOException.class, () -> EmbeddingStats.load(file, MODEL, Pooling.parse("state:2")));
        assertTrue(
                otherLayer.getMessage().contains("are for pooling state:3, but the embedder uses state:2"),
                otherLayer.getMessage());
        assertThrows(IOException.class, () -> EmbeddingStats.load(file, MODEL, Pooling.BOTH));
    }

    @Test
    void loadRefusesMalformedFiles() throws IOException {
        String hex = MODEL.hex();
        assertLoadFails("{\"format\":\"other\"}", "not an embedding-statistics file");
        assertLoadFails("{\"format\":\"rwkv-flink-embedding-stats\",\"version\":2}", "version 2 is not supported");
        assertLoadFails(
                "{\"format\":\"rwkv-flink-embedding-stats\",\"version\":1,\"model\":\"xyz\"}",
                "64-digit hex fingerprint");
        String head = "{\"format\":\"rwkv-flink-embedding-stats\",\"version\":1,\"model\":\"" + hex + "\",";
        assertLoadFails(head + "\"pooling\":\"mean\",\"dimension\":2,\"count\":1}", "unknown pooling");
        assertLoadFails(head + "\"pooling\":\"hidden\",\"dimension\":2,\"count\":0}", "must be positive");
        assertLoadFails(
                head + "\"pooling\":\"hidden\",\"dimension\":2,\"count\":1,\"mean\":[1],\"m2\":[1,1]}",
                "\"mean\" must be an array of 2 numbers");
        assertLoadFails(
                head + "\"pooling\":\"hidden\",\"dimension\":2,\"count\":1,\"mean\":[1,2],\"m2\":[1,-1]}",
                "negative sum of squares");
        assertLoadFails("not json", "not a JSON embedding-statistics file");
    }

    private void assertLoadFails(String content, String expectedPart) throws IOException {
        Path file = tmp.resolve("bad.json");
        Files.writeString(file, content);
        IOException e = assertThrows(IOException.class, () -> EmbeddingStats.load(file));
        assertTrue(e.getMessage().contains(expectedPart), "message: " + e.getMessage());
        assertTrue(e.getMessage().startsWith(file.toString()), "names the file: " + e.getMessage());
    }
}
