package dev.rwkvflink.engine.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.backend.Backend;
import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tensor.WeightType;
import dev.rwkvflink.engine.testing.SharedData;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link RwkvModel#advance} on the CPU runs all streams of a batch through the layers together (one product per
 * projection over every stream's rows); each stream must still get exactly the bits it gets alone
 * ({@link RwkvModel#hidden} from the same starting state): hidden vector and whole state, compared with tolerance 0.
 * This is what the operator's promise rests on (a key's embedding does not depend on which keys shared its batch).
 */
class MultiStreamAdvanceTest {
    private static final String[] MODELS = {"4v0-660K", "5v1-730K", "5v2-730K", "6v0-3m", "7v0-834K"};
    private static final String[] FORMATS = {"FP32", "FP16", "Q5_0", "Q5_1"};
    /** Tokens per stream of the ragged batch; 0: no tokens (null result, state untouched). */
    private static final int[] RAGGED = {17, 0, 1, 70, 4, 0, 33};

    static Stream<Arguments> tinyModels() {
        List<Arguments> out = new ArrayList<>();
        for (String model : MODELS) {
            for (String format : FORMATS) {
                if (model.startsWith("6v0") && format.startsWith("FP")) {
                    continue; // not in ../shared (see RwkvCppParityTest)
                }
                for (String backend : new String[] {"scalar", "vector"}) {
                    out.add(Arguments.of(model, format, backend));
                }
            }
        }
        return out.stream();
    }

    /** rwkv.cpp's tiny models, every version and file format there, both CPU backends: a ragged batch of 7. */
    @ParameterizedTest(name = "{0} {1} {2}")
    @MethodSource("tinyModels")
    void raggedBatchEqualsEachStreamAlone(String model, String format, String backend) throws Exception {
        try (RwkvModel m = RwkvModel.load(SharedData.tinyModel(model, format), Backends.byName(backend))) {
            assertBatchEqualsAlone(m, RAGGED, new Random(model.hashCode() + format.hashCode()));
        }
    }

    /**
     * A stream longer than one pass ({@link RwkvModel#MAX_BLOCK_TOKENS} rows), so passes split streams at other
     * places than {@code hidden} alone does, on a small random RWKV-7 in float and quantized matrix types.
     */
    @ParameterizedTest
    @ValueSource(strings = {"F32:scalar", "F32:vector", "Q8_0:vector", "Q4_0:vector", "F16:vector"})
    void streamsLongerThanAPassEqualEachStreamAlone(String typeAndBackend) throws Exception {
        String[] p = typeAndBackend.split(":");
        Backend backend = Backends.byName(p[1]);
        int max = RwkvModel.MAX_BLOCK_TOKENS;
        int[] lengths = {5, max + 300, 0, 900, 40, 1, max - 346};
        try (RwkvModel m = RwkvModel.of(
                RandomModels.rwkv7(
                        new RandomModels.Rwkv7Shape(2, 64, 32, 128, 128, 16, 16, 16, 16), 3, WeightType.valueOf(p[0])),
                backend)) {
            assertBatchEqualsAlone(m, lengths, new Random(5));
        }
    }

    @Test
    void emptyBatchesAndStreamsGiveNull() throws Exception {
        try (RwkvModel m = smallModel()) {
            assertArrayEquals(new float[0][], m.advance(new RwkvState[0], new int[0][]));
            RwkvState s = m.newState();
            float[][] out = m.advance(new RwkvState[] {s, s}, new int[][] {{}, {}});
            assertNull(out[0]);
            assertNull(out[1]);
            assertArrayEquals(m.newState().data(), s.data(), 0f);
        }
    }

    /** Two streams with tokens may not share a state (alone they would run one after the other; together not). */
    @Test
    void aStateTwiceInOneBatchIsRefused() throws Exception {
        try (RwkvModel m = smallModel()) {
            RwkvState s = m.newState();
            assertThrows(
                    IllegalArgumentException.class,
                    () -> m.advance(new RwkvState[] {s, m.newState(), s}, new int[][] {{1}, {2}, {3}}));
            m.advance(new RwkvState[] {s, s}, new int[][] {{1}, {}}); // once with tokens is fine
        }
    }

    private static RwkvModel smallModel() {
        return RwkvModel.of(
                RandomModels.rwkv7(new RandomModels.Rwkv7Shape(1, 64, 64, 128, 64, 16, 16, 16, 16), 1, WeightType.F32),
                Backends.byName("vector"));
    }

    /**
     * Streams of the given lengths from different, already advanced states: {@code advance} on all at once must
     * equal {@code hidden} on each alone, bit for bit (hidden vectors and states).
     */
    private static void assertBatchEqualsAlone(RwkvModel m, int[] lengths, Random rnd) {
        int vocab = m.config().vocab();
        int n = lengths.length;
        RwkvState[] batch = new RwkvState[n];
        RwkvState[] alone = new RwkvState[n];
        int[][] tokens = new int[n][];
        for (int i = 0; i < n; i++) {
            batch[i] = m.newState();
            m.hidden(batch[i], tokens(rnd, 1 + rnd.nextInt(5), vocab)); // a history, different per stream
            alone[i] = batch[i].copy();
            tokens[i] = tokens(rnd, lengths[i], vocab);
        }
        float[][] together = m.advance(batch, tokens);
        for (int i = 0; i < n; i++) {
            String what = m.config().version() + " " + m.config().matrixType() + " "
                    + m.backend().name() + ": stream " + i + " (" + lengths[i] + " tokens)";
            if (lengths[i] == 0) {
                assertNull(together[i], what);
            } else {
                float[] expected = m.hidden(alone[i], tokens[i]);
                assertArrayEquals(expected, together[i], 0f, what + ", hidden vector");
                assertArrayEquals(bits(expected), bits(together[i]), what + ", hidden vector bits");
            }
            assertArrayEquals(alone[i].data(), batch[i].data(), 0f, what + ", state");
            assertTrue(alone[i].sameBits(batch[i]), what + ", state bits");
        }
    }

    private static int[] bits(float[] v) {
        int[] b = new int[v.length];
        for (int i = 0; i < v.length; i++) {
            b[i] = Float.floatToRawIntBits(v[i]);
        }
        return b;
    }

    private static int[] tokens(Random rnd, int n, int vocab) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = rnd.nextInt(vocab);
        }
        return t;
    }
}
