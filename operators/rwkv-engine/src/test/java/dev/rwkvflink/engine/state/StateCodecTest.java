package dev.rwkvflink.engine.state;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.backend.ScalarBackend;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.testing.SharedData;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The state's binary form is exact, self-describing and refuses to be applied to another model. */
class StateCodecTest {
    private static final byte[] TEXT =
            "This is a port of [BlinkDL/RWKV-LM](https://github.com/BlinkDL/RWKV-LM".getBytes(StandardCharsets.UTF_8);

    private static int[] tokens(int from, int to) {
        int[] t = new int[to - from];
        for (int i = from; i < to; i++) {
            t[i - from] = TEXT[i] & 0xFF;
        }
        return t;
    }

    @ParameterizedTest
    @CsvSource({
        "4v0-660K, scalar",
        "5v1-730K, scalar",
        "5v2-730K, scalar",
        "7v0-834K, scalar",
        "4v0-660K, vector",
        "5v1-730K, vector",
        "5v2-730K, vector",
        "7v0-834K, vector"
    })
    void splittingAcrossASerialisedStateIsBitIdentical(String name, String backend) throws Exception {
        try (RwkvModel m = RwkvModel.load(SharedData.tinyModel(name, "FP32"), Backends.byName(backend))) {
            int n = TEXT.length;
            RwkvState whole = m.newState();
            float[] oneCall = m.forward(whole, tokens(0, n));

            for (int split : new int[] {1, 7, n / 2, n - 1}) {
                RwkvState first = m.newState();
                m.forward(first, tokens(0, split));
                byte[] bytes = StateCodec.encode(first, m.fingerprint());
                RwkvState restored = StateCodec.decode(bytes, m.config(), m.fingerprint());
                assertTrue(restored.sameBits(first), "round trip must be bit-exact");
                float[] resumed = m.forward(restored, tokens(split, n));
                assertArrayEquals(oneCall, resumed, 0f, "split at " + split);
                assertTrue(restored.sameBits(whole), "state after split at " + split);
            }
        }
    }

    @Test
    void roundTripKeepsEveryBitIncludingSpecialValues() throws Exception {
        try (RwkvModel m = RwkvModel.load(SharedData.tinyModel("4v0-660K", "FP32"), new ScalarBackend())) {
            RwkvState s = m.newState();
            float[] d = s.data();
            d[0] = Float.intBitsToFloat(0x7fc00123); // NaN with a payload
            d[1] = -0.0f;
            d[2] = Float.MIN_VALUE;
            d[3] = Float.NEGATIVE_INFINITY;
            RwkvState back = StateCodec.decode(StateCodec.encode(s, m.fingerprint()), m.config(), m.fingerprint());
            assertTrue(back.sameBits(s));
            assertEquals(
                    RwkvState.V4_PP_INIT,
                    back.data()[back.wkvOffset(0) + 2 * m.config().embd()]);
        }
    }

    @Test
    void refusesAStateFromAnotherModel() throws Exception {
        try (RwkvModel fp32 = RwkvModel.load(SharedData.tinyModel("7v0-834K", "FP32"), new ScalarBackend());
                RwkvModel fp16 = RwkvModel.load(SharedData.tinyModel("7v0-834K", "FP16"), new ScalarBackend());
                RwkvModel v5 = RwkvModel.load(SharedData.tinyModel("5v2-730K", "FP32"), new ScalarBackend())) {
            assertFalse(fp32.fingerprint().equals(fp16.fingerprint()));
            byte[] bytes = StateCodec.encode(fp32.newState(), fp32.fingerprint());

            IllegalArgumentException sameShape = assertThrows(
                    IllegalArgumentException.class, () -> StateCodec.decode(bytes, fp16.config(), fp16.fingerprint()));
            assertTrue(
                    sameShape.getMessage().contains(fp32.fingerprint().shortHex())
                            && sameShape
                                    .getMessage()
                                    .contains(fp16.fingerprint().shortHex()),
                    sameShape.getMessage());

            IllegalArgumentException otherShape = assertThrows(
                    IllegalArgumentException.class, () -> StateCodec.decode(bytes, v5.config(), v5.fingerprint()));
            assertTrue(
                    otherShape.getMessage().contains("RWKV 7.0")
                            && otherShape.getMessage().contains("RWKV 5.2"),
                    otherShape.getMessage());
        }
    }

    @Test
    void corruptBytesGiveClearErrors() throws Exception {
        try (RwkvModel m = RwkvModel.load(SharedData.tinyModel("7v0-834K", "FP32"), new ScalarBackend())) {
            byte[] good = StateCodec.encode(m.newState(), m.fingerprint());
            byte[] truncated = Arrays.copyOf(good, good.length - 1);
            assertTrue(assertThrows(
                            IllegalArgumentException.class,
                            () -> StateCodec.decode(truncated, m.config(), m.fingerprint()))
                    .getMessage()
                    .contains("floats"));
            byte[] header = Arrays.copyOf(good, 10);
            assertTrue(assertThrows(
                            IllegalArgumentException.class,
                            () -> StateCodec.decode(header, m.config(), m.fingerprint()))
                    .getMessage()
                    .contains("truncated"));
            byte[] magic = good.clone();
            magic[0] = 'X';
            assertTrue(assertThrows(
                            IllegalArgumentException.class, () -> StateCodec.decode(magic, m.config(), m.fingerprint()))
                    .getMessage()
                    .contains("magic"));
            byte[] version = good.clone();
            version[4] = 9;
            assertTrue(assertThrows(
                            IllegalArgumentException.class,
                            () -> StateCodec.decode(version, m.config(), m.fingerprint()))
                    .getMessage()
                    .contains("version 9"));
        }
    }

    /** Inputs longer than one block (RwkvModel.MAX_BLOCK_TOKENS) give the bits of token-by-token RNN mode. */
    @Test
    void longInputsGoThroughInBlocksWithoutChangingABit() throws Exception {
        try (RwkvModel m = RwkvModel.load(SharedData.tinyModel("7v0-834K", "FP32"), Backends.byName("vector"))) {
            int n = 2 * RwkvModel.MAX_BLOCK_TOKENS + 37;
            int[] tokens = new int[n];
            for (int i = 0; i < n; i++) {
                tokens[i] = TEXT[i % TEXT.length] & 0xFF;
            }
            RwkvState blocked = m.newState();
            float[] h1 = m.hidden(blocked, tokens);
            RwkvState stepwise = m.newState();
            float[] h2 = null;
            for (int t : tokens) {
                h2 = m.hidden(stepwise, new int[] {t});
            }
            assertArrayEquals(h2, h1, 0f);
            assertTrue(blocked.sameBits(stepwise));
        }
    }
}
