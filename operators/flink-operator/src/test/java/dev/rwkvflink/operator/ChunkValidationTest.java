package dev.rwkvflink.operator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** The chunk checks alone, without a harness: each bad chunk named with its reason, good ones pass. */
class ChunkValidationTest {

    private final ChunkValidation v = new ChunkValidation(8, 10, 100);

    private static TextChunk text(String key, long seq, String text) {
        return new TextChunk(key, seq, text, false, 0);
    }

    private static TextChunk tokens(String key, int... ids) {
        TextChunk c = new TextChunk(key, 0, null, false, 0);
        c.tokens = ids;
        return c;
    }

    @Test
    void eachRuleHasItsReason() {
        assertNull(v.problem(text("doc", 0, "0123456789")), "10 bytes: at the limit");
        assertNull(v.problem(tokens("doc", 0, 99)));
        assertEquals("chunk has no key", v.problem(text("", 0, "x")));
        assertEquals("chunk has no key", v.problem(text(null, 0, "x")));
        assertEquals("key of 9 bytes exceeds the limit of 8 bytes", v.problem(text("ééééa", 0, "x")));
        assertEquals("negative seq -1", v.problem(text("doc", -1, "x")));
        assertEquals("chunk has neither text nor tokens", v.problem(text("doc", 0, null)));
        TextChunk both = text("doc", 0, "x");
        both.tokens = new int[] {1};
        assertEquals("chunk has both text and tokens", v.problem(both));
        assertEquals("token id 100 outside the model's vocabulary [0, 100)", v.problem(tokens("doc", 1, 100)));
        assertEquals("token id -1 outside the model's vocabulary [0, 100)", v.problem(tokens("doc", -1)));
        assertEquals("chunk of 11 tokens exceeds the limit of 10", v.problem(tokens("doc", new int[11])));
        assertEquals("chunk text of 12 bytes exceeds the limit of 10 bytes", v.problem(text("doc", 0, "ü".repeat(6))));
    }

    @Test
    void utf8LengthsAndUnpairedSurrogates() {
        String s = "aé状🙂";
        assertEquals(s.getBytes(StandardCharsets.UTF_8).length, ChunkValidation.utf8Length(s));
        assertArrayEquals(s.getBytes(StandardCharsets.UTF_8), ChunkValidation.utf8(s));
        assertNull(ChunkValidation.utf8("a\uD83D"), "an unpaired high surrogate is not valid Unicode");
        assertEquals(4, ChunkValidation.utf8Length("a\uD83D"), "counted as the 3 bytes of its replacement");
    }
}
