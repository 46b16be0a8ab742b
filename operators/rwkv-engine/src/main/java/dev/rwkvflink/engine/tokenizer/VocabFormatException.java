package dev.rwkvflink.engine.tokenizer;

import java.io.IOException;
import java.nio.file.Path;

/** A vocabulary or tokenizer file that cannot be read; the message names the file and, where known, the line. */
public final class VocabFormatException extends IOException {

    private static final long serialVersionUID = 1L;

    public VocabFormatException(String message) {
        super(message);
    }

    public VocabFormatException(String message, Throwable cause) {
        super(message, cause);
    }

    /** "{@code file} line {@code lineNumber}: {@code problem}" (line numbers count from 1). */
    static VocabFormatException atLine(Path file, int lineNumber, String problem) {
        return new VocabFormatException(file + " line " + lineNumber + ": " + problem);
    }
}
