package dev.rwkvflink.engine.embed;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.model.RwkvVersion;
import dev.rwkvflink.engine.tensor.WeightType;
import java.util.List;
import org.junit.jupiter.api.Test;

class PoolingTest {

    /** The shape of rwkv.cpp's tiny v7 model: 12 layers, width 64, one head of 64. */
    private static final RwkvConfig V7 =
            new RwkvConfig(RwkvVersion.V7, 12, 64, 1, 64, 256, 256, 64e-5f, WeightType.F32);

    @Test
    void parsesEveryForm() {
        assertEquals(Pooling.HIDDEN, Pooling.parse("hidden"));
        assertEquals(Pooling.STATE, Pooling.parse("state"));
        assertEquals(Pooling.BOTH, Pooling.parse(" BOTH "));
        assertEquals(new Pooling(Pooling.Mode.STATE, List.of(0, 11)), Pooling.parse("state:11,0"));
        assertEquals(new Pooling(Pooling.Mode.BOTH, List.of(11)), Pooling.parse("both:11"));
        assertEquals("state:0,11", Pooling.parse("state: 11, 0").toString());
        assertEquals("hidden", Pooling.HIDDEN.toString());
        for (String s : new String[] {"hidden", "state", "both", "state:3", "both:0,5,11"}) {
            assertEquals(s, Pooling.parse(s).toString(), "text form round trip");
        }
    }

    @Test
    void rejectsMalformedSpecsWithClearMessages() {
        assertMessage("unknown pooling \"mean\"", "mean");
        assertMessage("expected hidden, state, both", "");
        assertMessage("hidden takes no layer list", "hidden:1");
        assertMessage("\"x\" is not a layer number", "state:1,x");
        assertMessage("\"\" is not a layer number", "state:");
        assertMessage("\"-1\" is not a layer number", "both:-1");
        assertMessage("layer 2 is named twice", "state:2,2");
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class, () -> Pooling.parse("state:12").resolve(V7));
        assertEquals("pooling state:12: layer 12 does not exist, the model has 12 layers (0..11)", e.getMessage());
    }

    @Test
    void resolvesTheDefaultLayerAndCountsDimensions() {
        assertEquals(Pooling.parse("state:11"), Pooling.STATE.resolve(V7));
        assertEquals(Pooling.parse("both:11"), Pooling.BOTH.resolve(V7));
        assertEquals(Pooling.HIDDEN, Pooling.HIDDEN.resolve(V7));
        assertEquals(64, Pooling.HIDDEN.dimension(V7));
        assertEquals(4096, Pooling.STATE.dimension(V7));
        assertEquals(64 + 4096, Pooling.BOTH.dimension(V7));
        assertEquals(2 * 4096, Pooling.parse("state:0,11").dimension(V7));
        assertTrue(Pooling.BOTH.usesHidden() && Pooling.BOTH.usesState());
        assertFalse(Pooling.STATE.usesHidden());
        assertFalse(Pooling.HIDDEN.usesState());
    }

    @Test
    void compatibilityLeavesTheDefaultLayerOpen() {
        assertTrue(Pooling.STATE.compatibleWith(Pooling.parse("state:11")));
        assertTrue(Pooling.parse("state:11").compatibleWith(Pooling.STATE));
        assertTrue(Pooling.parse("both:0,3").compatibleWith(Pooling.parse("both:3,0")));
        assertFalse(Pooling.parse("state:3").compatibleWith(Pooling.parse("state:11")));
        assertFalse(Pooling.STATE.compatibleWith(Pooling.BOTH));
        assertFalse(Pooling.HIDDEN.compatibleWith(Pooling.STATE));
    }

    private static void assertMessage(String expectedPart, String spec) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Pooling.parse(spec));
        assertTrue(e.getMessage().contains(expectedPart), "message: " + e.getMessage());
    }
}
