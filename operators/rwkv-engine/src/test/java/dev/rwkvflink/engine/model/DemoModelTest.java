package dev.rwkvflink.engine.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.embed.Embedder;
import dev.rwkvflink.engine.embed.Pooling;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tensor.WeightType;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The built-in demo model: its shape, its reproducibility, and its long memory. */
class DemoModelTest {

    @Test
    void hasTheDemoShapeAndIsReproducible() {
        try (RwkvModel a = RandomModels.demo(Backends.byName("scalar"));
                RwkvModel b = RandomModels.demo(Backends.byName("vector"))) {
            RwkvConfig c = a.config();
            assertEquals(RwkvVersion.V7, c.version());
            assertEquals(4, c.layers());
            assertEquals(32, c.embd());
            assertEquals(1, c.heads());
            assertEquals(32, c.headSize());
            assertEquals(256, c.vocab());
            assertEquals(128, c.ffn());
            assertEquals(WeightType.F32, c.matrixType());
            assertEquals(a.fingerprint(), b.fingerprint(), "same seed, same weights");
            // Pinned: states and statistics saved with the demo model stay valid across builds and machines.
            assertEquals(
                    "2e35b0374c3fc6488c1b9092ca250b13c931eef912256df7eadf7088cdee2822",
                    a.fingerprint().hex());
        }
    }

    /**
     * Long memory: the first byte of a 2,000-byte text still moves the final embedding, the state's clearly
     * (cosine below 0.9999) and the hidden vector's far above float rounding. With the benchmark models' short
     * memory ({@link RandomModels.Memory#DEFAULT}) the same change is forgotten entirely.
     */
    @Test
    void theFirstByteOfALongTextStillMatters() {
        byte[] text = new byte[2000];
        Random rnd = new Random(42);
        for (int i = 0; i < text.length; i++) {
            text[i] = (byte) (32 + rnd.nextInt(95)); // printable ASCII
        }
        byte[] changed = text.clone();
        changed[0] = (byte) (text[0] == 'X' ? 'Y' : 'X');

        try (RwkvModel demo = RandomModels.demo(Backends.byName("vector"));
                RwkvModel forgetful = RwkvModel.of(
                        RandomModels.rwkv7(
                                RandomModels.Rwkv7Shape.DEMO_BYTES,
                                RandomModels.DEMO_SEED,
                                WeightType.F32,
                                RandomModels.Memory.DEFAULT),
                        Backends.byName("vector"))) {
            double demoState = cosine(demo, Pooling.STATE, text, changed);
            double demoHidden = cosine(demo, Pooling.HIDDEN, text, changed);
            double forgetfulState = cosine(forgetful, Pooling.STATE, text, changed);
            // measured: demo state 0.99977, hidden 0.999954; short memory 1 - cos below 1e-9
            assertTrue(demoState < 0.9999, "demo final state cosine " + demoState);
            assertTrue(
                    1 - demoHidden > 1e-5,
                    "demo final hidden vector cosine " + demoHidden
                            + ": the change must be far above float rounding (about 1e-7)");
            assertTrue(1 - forgetfulState < 1e-7, "short-memory cosine " + forgetfulState);
        }
    }

    private static double cosine(RwkvModel model, Pooling pooling, byte[] a, byte[] b) {
        float[] ea = embed(model, pooling, a);
        float[] eb = embed(model, pooling, b);
        double dot = 0;
        for (int i = 0; i < ea.length; i++) {
            dot += (double) ea[i] * eb[i];
        }
        return dot; // both have unit length
    }

    private static float[] embed(RwkvModel model, Pooling pooling, byte[] text) {
        int[] tokens = new int[text.length];
        for (int i = 0; i < text.length; i++) {
            tokens[i] = text[i] & 0xFF;
        }
        RwkvState state = model.newState();
        float[] hidden = model.hidden(state, tokens);
        return new Embedder(model.config(), pooling, null).embed(hidden, state);
    }
}
