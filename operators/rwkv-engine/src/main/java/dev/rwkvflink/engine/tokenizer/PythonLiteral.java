package dev.rwkvflink.engine.tokenizer;

import java.nio.charset.StandardCharsets;

/**
 * Reads one Python string or bytes literal, as Python's {@code repr()} writes them, into the bytes it stands for.
 * A {@code str} literal yields the UTF-8 encoding of its text; a {@code bytes} literal yields its bytes. This is a
 * small hand-written parser: nothing is ever evaluated.
 *
 * <p>The grammar follows the Python 3 reference, "Lexical analysis: String and Bytes literals":
 * <pre>
 *   literal := prefix? quote body quote
 *   prefix  := "" | r | u | b | br | rb          (any letter case)
 *   quote   := '  |  "  |  '''  |  """
 * </pre>
 * Escape sequences understood in both kinds of literal: {@code \<newline>} (dropped), {@code \\}, {@code \'},
 * {@code \"}, {@code \a}, {@code \b}, {@code \f}, {@code \n}, {@code \r}, {@code \t}, {@code \v}, {@code \ooo}
 * (one to three octal digits) and {@code \xhh} (exactly two hex digits). Only in {@code str} literals:
 * {@code \N{name}} (a Unicode character name), <code>&#92;uxxxx</code> and {@code \Uxxxxxxxx}. Any other backslash
 * sequence is kept as written, backslash included, as Python does. In a raw literal (prefix {@code r}) every
 * backslash is kept, though a backslash still stops the character after it from closing the literal.
 *
 * <p>In a {@code str} literal, {@code \xhh} and {@code \ooo} name code points (so {@code '\xe9'} is "é", two
 * bytes in UTF-8); in a {@code bytes} literal they name single bytes.
 */
final class PythonLiteral {

    private final String source;
    private int pos;
    private boolean bytes;
    private boolean raw;
    /** Code points (str literal) or byte values (bytes literal), in order. */
    private final IntList units = new IntList(16);

    private PythonLiteral(String source) {
        this.source = source;
    }

    /**
     * The bytes {@code literal} stands for.
     *
     * @throws IllegalArgumentException describing the first problem found
     */
    static byte[] toBytes(String literal) {
        PythonLiteral parser = new PythonLiteral(literal);
        parser.parse();
        return parser.bytes ? parser.unitsAsBytes() : parser.unitsAsUtf8();
    }

    private void parse() {
        readPrefix();
        String quote = readOpeningQuote();
        while (true) {
            if (pos >= source.length()) {
                throw problem("no closing " + quote);
            }
            if (source.startsWith(quote, pos)) {
                pos += quote.length();
                if (pos != source.length()) {
                    throw problem("unexpected text after the closing quote: " + source.substring(pos));
                }
                return;
            }
            int c = source.codePointAt(pos);
            if (c == '\\') {
                readEscape();
            } else if (c == '\n' && quote.length() == 1) {
                throw problem("line break inside a single-quoted literal");
            } else {
                addSourceCharacter(c);
                pos += Character.charCount(c);
            }
        }
    }

    private void readPrefix() {
        boolean unicode = false;
        while (pos < source.length() && Character.isLetter(source.charAt(pos))) {
            char letter = source.charAt(pos);
            switch (Character.toLowerCase(letter)) {
                case 'b' -> bytes = setOnce(bytes, letter);
                case 'r' -> raw = setOnce(raw, letter);
                case 'u' -> unicode = setOnce(unicode, letter);
                default -> throw problem("unsupported prefix letter '" + letter + "'");
            }
            pos++;
        }
        if (unicode && (bytes || raw)) {
            throw problem("prefix u cannot be combined with b or r");
        }
    }

    private boolean setOnce(boolean alreadySet, char letter) {
        if (alreadySet) {
            throw problem("prefix letter '" + letter + "' given twice");
        }
        return true;
    }

    private String readOpeningQuote() {
        if (pos >= source.length() || (source.charAt(pos) != '\'' && source.charAt(pos) != '"')) {
            throw problem("expected a quote (' or \") to open the literal");
        }
        char q = source.charAt(pos);
        String triple = String.valueOf(new char[] {q, q, q});
        String quote = source.startsWith(triple, pos) ? triple : String.valueOf(q);
        pos += quote.length();
        return quote;
    }

    /** Reads the escape sequence at {@code pos}, which holds a backslash. */
    private void readEscape() {
        if (pos + 1 >= source.length()) {
            throw problem("backslash at the end of the literal");
        }
        char next = source.charAt(pos + 1);
        if (raw) {
            units.add('\\');
            addSourceCharacter(source.codePointAt(pos + 1));
            pos += 1 + Character.charCount(source.codePointAt(pos + 1));
            return;
        }
        pos += 2;
        switch (next) {
            case '\n' -> {} // line continuation: both characters vanish
            case '\\', '\'', '"' -> units.add(next);
            case 'a' -> units.add(0x07);
            case 'b' -> units.add(0x08);
            case 'f' -> units.add(0x0C);
            case 'n' -> units.add(0x0A);
            case 'r' -> units.add(0x0D);
            case 't' -> units.add(0x09);
            case 'v' -> units.add(0x0B);
            case '0', '1', '2', '3', '4', '5', '6', '7' -> readOctal();
            case 'x' -> units.add(readHex(2, "\\x"));
            case 'u' -> addEscapedCodePoint(bytes ? -1 : readHex(4, "\\u"), "\\u");
            case 'U' -> addEscapedCodePoint(bytes ? -1 : readHex(8, "\\U"), "\\U");
            case 'N' -> addEscapedCodePoint(bytes ? -1 : readCharacterName(), "\\N");
            default -> {
                // Not an escape: Python keeps the backslash and the character.
                units.add('\\');
                pos -= 1;
            }
        }
    }

    /** \ooo: one to three octal digits; the first was consumed with the backslash. */
    private void readOctal() {
        int value = source.charAt(pos - 1) - '0';
        for (int digits = 1; digits < 3 && pos < source.length(); digits++) {
            char c = source.charAt(pos);
            if (c < '0' || c > '7') {
                break;
            }
            value = value * 8 + (c - '0');
            pos++;
        }
        if (bytes && value > 0xFF) {
            throw problem("octal escape \\" + Integer.toOctalString(value) + " is larger than a byte");
        }
        units.add(value);
    }

    /** Exactly {@code count} hex digits after an escape such as \x; Python rejects fewer. */
    private int readHex(int count, String escape) {
        int value = 0;
        for (int i = 0; i < count; i++) {
            int digit = pos + i < source.length() ? hexDigit(source.charAt(pos + i)) : -1;
            if (digit < 0) {
                throw problem("truncated " + escape + " escape: needs " + count + " hex digits");
            }
            value = value * 16 + digit;
        }
        pos += count;
        return value;
    }

    /** The value of an ASCII hex digit, or -1. */
    private static int hexDigit(char c) {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        if (c >= 'A' && c <= 'F') {
            return c - 'A' + 10;
        }
        return -1;
    }

    /** \N{NAME}: the character with that Unicode name. */
    private int readCharacterName() {
        if (pos >= source.length() || source.charAt(pos) != '{') {
            throw problem("malformed \\N escape: expected {");
        }
        int close = source.indexOf('}', pos);
        if (close < 0) {
            throw problem("malformed \\N escape: no closing }");
        }
        String name = source.substring(pos + 1, close);
        pos = close + 1;
        try {
            return Character.codePointOf(name);
        } catch (IllegalArgumentException e) {
            throw problem("unknown Unicode character name \\N{" + name + "}");
        }
    }

    /**
     * Adds the code point of a \\u, \\U or \\N escape. In a bytes literal these are not escapes ({@code codePoint}
     * is -1): the backslash and letter are kept and the rest is read as ordinary text.
     */
    private void addEscapedCodePoint(int codePoint, String escape) {
        if (codePoint < 0) {
            units.add('\\');
            units.add(escape.charAt(1));
            return;
        }
        if (codePoint > Character.MAX_CODE_POINT) {
            throw problem(escape + " escape beyond U+10FFFF: " + Integer.toHexString(codePoint));
        }
        units.add(codePoint);
    }

    private void addSourceCharacter(int codePoint) {
        if (bytes && codePoint > 0x7F) {
            throw problem("bytes literal holds a non-ASCII character U+" + Integer.toHexString(codePoint));
        }
        units.add(codePoint);
    }

    private byte[] unitsAsBytes() {
        byte[] out = new byte[units.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) units.get(i);
        }
        return out;
    }

    /** UTF-8 of the code points; a surrogate code point has no UTF-8 form (Python raises here too). */
    private byte[] unitsAsUtf8() {
        StringBuilder text = new StringBuilder(units.size());
        for (int i = 0; i < units.size(); i++) {
            int cp = units.get(i);
            if (cp >= Character.MIN_SURROGATE && cp <= Character.MAX_SURROGATE) {
                throw problem("surrogate U+" + Integer.toHexString(cp).toUpperCase() + " cannot be encoded as UTF-8");
            }
            text.appendCodePoint(cp);
        }
        return text.toString().getBytes(StandardCharsets.UTF_8);
    }

    private IllegalArgumentException problem(String what) {
        return new IllegalArgumentException(what + " in literal " + source);
    }
}
