package dev.rwkvflink.engine.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Expected bytes were checked against CPython 3.11: {@code ast.literal_eval(s)}, then {@code .encode()} for str. */
class PythonLiteralTest {

    private static void assertBytes(String literal, int... expected) {
        byte[] bytes = new byte[expected.length];
        for (int i = 0; i < expected.length; i++) {
            bytes[i] = (byte) expected[i];
        }
        assertArrayEquals(bytes, PythonLiteral.toBytes(literal), literal);
    }

    @Test
    void plainAndQuotedText() {
        assertBytes("'abc'", 'a', 'b', 'c');
        assertBytes("\"it's\"", 'i', 't', '\'', 's');
        assertBytes("'\\''", '\'');
        assertBytes("'\\\"'", '"');
        assertBytes("'é'", 0xC3, 0xA9);
        assertBytes("'''a'b'''", 'a', '\'', 'b');
    }

    @Test
    void simpleEscapes() {
        assertBytes("'\\n '", 0x0A, 0x20);
        assertBytes("'\\a\\b\\f\\v\\t\\r'", 7, 8, 12, 11, 9, 13);
        assertBytes("'\\\\$'", '\\', '$');
        assertBytes("'\\101\\0'", 'A', 0);
    }

    @Test
    void unknownEscapeKeepsTheBackslash() {
        assertBytes("'\\q'", '\\', 'q');
        assertBytes("b'\\u1234'", '\\', 'u', '1', '2', '3', '4');
    }

    @Test
    void hexEscapeIsACodePointInStrButAByteInBytes() {
        assertBytes("'\\xe9'", 0xC3, 0xA9);
        assertBytes("b'\\x82\\xac'", 0x82, 0xAC);
    }

    @Test
    void unicodeEscapes() {
        assertBytes("'\\u200b'", 0xE2, 0x80, 0x8B);
        assertBytes("'\\U0001F600'", 0xF0, 0x9F, 0x98, 0x80);
        assertBytes("'\\N{EM DASH}'", 0xE2, 0x80, 0x94);
    }

    @Test
    void rawLiteralKeepsBackslashes() {
        assertBytes("r'\\n'", '\\', 'n');
        assertBytes("r'\\''", '\\', '\'');
    }

    @Test
    void malformedLiteralsAreRejectedWithAReason() {
        assertProblem("'abc", "no closing");
        assertProblem("'a'b", "after the closing quote");
        assertProblem("'\\x4'", "\\x");
        assertProblem("b'é'", "non-ASCII");
        assertProblem("'\\ud800'", "surrogate");
        assertProblem("f'x'", "prefix");
        assertProblem("'\\N{NO SUCH CHARACTER NAME}'", "NO SUCH CHARACTER NAME");
        assertProblem("b'\\777'", "larger than a byte");
        assertProblem("123", "quote");
        assertProblem("abc", "unsupported prefix");
    }

    private static void assertProblem(String literal, String expectedInMessage) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PythonLiteral.toBytes(literal));
        assertTrue(e.getMessage().contains(expectedInMessage), literal + " -> " + e.getMessage());
    }
}
