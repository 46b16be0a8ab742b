package dev.rwkvflink.engine.embed;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.testing.SharedData;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Embeddings of rwkv.cpp's tiny models (byte-level), one per RWKV generation. */
class EmbedderTest {

    private static final int[] TEXT = bytes("The quick brown fox jumps over the lazy dog.");

    private static int[] bytes(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        int[] ids = new int[b.length];
        for (int i = 0; i < b.length; i++) {
            ids[i] = b[i] & 0xFF;
        }
        return ids;
    }

    private static RwkvModel tiny(String name) throws IOException {
        String[] parts = name.split("/");
        return RwkvModel.load(SharedData.tinyModel(parts[0], parts[1]), Backends.byName("scalar"));
    }

    /** Width C; WKV state per layer H*N*N (v4: C); the default state layer is the last. */
    @ParameterizedTest(name = "{0}")
    @CsvSource({
        "4v0-660K/FP32, 128, 128", // v4: C = 128, aa/bb per channel
        "5v1-730K/FP32, 64, 512", // 8 heads of 8: 8*8*8
        "5v2-730K/FP32, 64, 512",
        "6v0-3m/Q5_1, 128, 1024", // 16 heads of 8
        "7v0-834K/FP32, 64, 4096", // 1 head of 64
    })
    void dimensionsPerVersion(String model, int hidden, int statePerLayer) throws IOException {
        try (RwkvModel m = tiny(model)) {
            assertEquals(hidden, new Embedder(m.config(), Pooling.HIDDEN, null).dimension());
            assertEquals(statePerLayer, new Embedder(m.config(), Pooling.STATE, null).dimension());
            assertEquals(hidden + statePerLayer, new Embedder(m.config(), Pooling.BOTH, null).dimension());
            assertEquals(2 * statePerLayer, new Embedder(m.config(), Pooling.parse("state:0,3"), null).dimension());
            assertEquals(
                    m.config().layers() - 1,
                    new Embedder(m.config(), Pooling.STATE, null)
                            .pooling()
                            .layers()
                            .get(0));

            RwkvState state = m.newState();
            float[] h = m.hidden(state, TEXT);
            for (Pooling p : new Pooling[] {Pooling.HIDDEN, Pooling.STATE, Pooling.BOTH, Pooling.parse("both:0,2")}) {
                float[] e = new Embedder(m.config(), p, null).embed(h, state);
                double norm = 0;
                for (float x : e) {
                    norm += (double) x * x;
                }
                assertEquals(1.0, Math.sqrt(norm), 1e-5, model + " " + p + ": unit length");
            }
        }
    }

    @Test
    void hiddenPoolingIsTheHiddenVectorScaledToUnitLength() throws IOException {
        try (RwkvModel m = tiny("7v0-834K/FP32")) {
            RwkvState state = m.newState();
            float[] h = m.hidden(state, TEXT);
            Embedder embedder = new Embedder(m.config(), Pooling.HIDDEN, null);
            assertArrayEquals(h, embedder.pool(h, state));
            double norm = Math.sqrt(Arrays.stream(toDoubles(h)).map(x -> x * x).sum());
            float[] e = embedder.embed(h, state);
            for (int i = 0; i < h.length; i++) {
                assertEquals((float) (h[i] / norm), e[i]);
            }
        }
    }

    /** v7: the last layer's H x N x N floats, exactly as the state holds them; "both" appends them to the hidden vector. */
    @Test
    void statePoolingIsTheStatesFloats() throws IOException {
        try (RwkvModel m = tiny("7v0-834K/FP32")) {
            RwkvState state = m.newState();
            float[] h = m.hidden(state, TEXT);
            int n = RwkvState.wkvFloats(m.config());
            int last = m.config().layers() - 1;
            float[] expected = Arrays.copyOfRange(state.data(), state.wkvOffset(last), state.wkvOffset(last) + n);
            assertArrayEquals(expected, new Embedder(m.config(), Pooling.STATE, null).pool(h, state));

            float[] both = new Embedder(m.config(), Pooling.parse("both:0,11"), null).pool(h, state);
            assertArrayEquals(h, Arrays.copyOfRange(both, 0, 64));
            assertArrayEquals(
                    Arrays.copyOfRange(state.data(), state.wkvOffset(0), state.wkvOffset(0) + n),
                    Arrays.copyOfRange(both, 64, 64 + n));
            assertArrayEquals(expected, Arrays.copyOfRange(both, 64 + n, 64 + 2 * n));
            assertTrue(Arrays.stream(toDoubles(expected)).anyMatch(x -> x != 0), "the state is not empty");
        }
    }

    /** v4: per channel aa / bb, the WKV numerator over its denominator. */
    @Test
    void v4StatePoolingIsTheRatioAaOverBb() throws IOException {
        try (RwkvModel m = tiny("4v0-660K/FP32")) {
            RwkvState state = m.newState();
            float[] h = m.hidden(state, TEXT);
            int c = m.config().embd();
            int wkv = state.wkvOffset(m.config().layers() - 1);
            float[] pooled = new Embedder(m.config(), Pooling.STATE, null).pool(h, state);
            for (int i = 0; i < c; i++) {
                float aa = state.data()[wkv + i];
                float bb = state.data()[wkv + c + i];
                assertTrue(bb > 0, "bb > 0 after a token");
                assertEquals(aa / bb, pooled[i]);
            }
            // before any token aa = bb = 0: pooled as 0, not NaN
            RwkvState fresh = m.newState();
            float[] zero = new Embedder(m.config(), Pooling.STATE, null).pool(new float[c], fresh);
            assertArrayEquals(new float[c], zero);
            assertArrayEquals(
                    new float[c],
                    new Embedder(m.config(), Pooling.STATE, null).embed(new float[c], fresh),
                    "a zero vector stays zero");
        }
    }

    @Test
    void standardizesWithStatisticsBeforeNormalizing() throws IOException {
        try (RwkvModel m = tiny("5v2-730K/FP32")) {
            Embedder raw = new Embedder(m.config(), Pooling.BOTH, null);
            EmbeddingStats stats = new EmbeddingStats(m.fingerprint(), raw.pooling(), raw.dimension());
            for (String s : new String[] {"hello", "a longer sentence about nothing", "12345", "zzz zzz", "Ünïcödé"}) {
                RwkvState st = m.newState();
                stats.add(raw.pool(m.hidden(st, bytes(s)), st));
            }
            Embedder standardized = new Embedder(m.config(), Pooling.BOTH, stats);
            RwkvState state = m.newState();
            float[] h = m.hidden(state, TEXT);
            float[] z = stats.standardize(raw.pool(h, state));
            assertArrayEquals(Embedder.l2Normalize(z), standardized.embed(h, state));
            assertArrayEquals(standardized.embed(h, state), standardized.finish(raw.pool(h, state)));

            Embedder hiddenOnly = new Embedder(m.config(), Pooling.HIDDEN, null);
            IllegalArgumentException e =
                    assertThrows(IllegalArgumentException.class, () -> new Embedder(m.config(), Pooling.HIDDEN, stats));
            assertTrue(e.getMessage().contains("statistics are for pooling both:11"), e.getMessage());
            assertEquals(64, hiddenOnly.dimension());
        }
    }

    /** Statistics of "state:11" serve a request for "state" on a 12-layer model, those of "state:3" do not. */
    @Test
    void statisticsOfTheLastLayerServeTheDefaultPooling() throws IOException {
        try (RwkvModel m = tiny("7v0-834K/FP32")) {
            RwkvState state = m.newState();
            float[] h = m.hidden(state, TEXT);
            Embedder explicit = new Embedder(m.config(), Pooling.parse("state:11"), null);
            EmbeddingStats last = new EmbeddingStats(m.fingerprint(), explicit.pooling(), explicit.dimension());
            last.add(explicit.pool(h, state));
            last.add(new float[explicit.dimension()]);
            assertEquals(Pooling.parse("state:11"), new Embedder(m.config(), Pooling.STATE, last).pooling());

            EmbeddingStats layer3 = new EmbeddingStats(m.fingerprint(), Pooling.parse("state:3"), explicit.dimension());
            IllegalArgumentException e =
                    assertThrows(IllegalArgumentException.class, () -> new Embedder(m.config(), Pooling.STATE, layer3));
            assertTrue(
                    e.getMessage().contains("are for pooling state:3 (dimension 4096), but the embedder uses state:11"),
                    e.getMessage());
        }
    }

    /** Same inputs, same bits: twice from scratch, and through a state split across two engine calls. */
    @Test
    void embeddingsAreBitReproducible() throws IOException {
        try (RwkvModel m = tiny("7v0-834K/FP32")) {
            Embedder embedder = new Embedder(m.config(), Pooling.BOTH, null);
            RwkvState a = m.newState();
            float[] ea = embedder.embed(m.hidden(a, TEXT), a);
            RwkvState b = m.newState();
            m.hidden(b, Arrays.copyOfRange(TEXT, 0, 17));
            float[] eb = embedder.embed(m.hidden(b, Arrays.copyOfRange(TEXT, 17, TEXT.length)), b);
            assertEquals(Arrays.toString(ea), Arrays.toString(eb));
        }
    }

    @Test
    void rejectsVectorsOfAnotherShape() throws IOException {
        try (RwkvModel v7 = tiny("7v0-834K/FP32");
                RwkvModel v4 = tiny("4v0-660K/FP32")) {
            Embedder embedder = new Embedder(v7.config(), Pooling.HIDDEN, null);
            assertThrows(IllegalArgumentException.class, () -> embedder.embed(new float[3], v7.newState()));
            assertThrows(IllegalArgumentException.class, () -> embedder.embed(new float[64], v4.newState()));
        }
    }

    private static double[] toDoubles(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            d[i] = v[i];
        }
        return d;
    }
}
