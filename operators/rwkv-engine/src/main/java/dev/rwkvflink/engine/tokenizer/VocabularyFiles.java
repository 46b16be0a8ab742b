package dev.rwkvflink.engine.tokenizer;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * How a vocabulary file is opened: only a regular file of at most {@link #MAX_BYTES}, so that a FIFO, a device
 * ({@code /dev/zero}), a directory or a file that grows without end is refused by name instead of blocking or
 * filling the heap.
 */
final class VocabularyFiles {
    /** Largest vocabulary file read (the World vocabulary has 1.1 MB, 20B_tokenizer.json 2.1 MB). */
    static final long MAX_BYTES = 64L << 20;

    private VocabularyFiles() {
    }

    /** Refuses what is not a regular file of at most {@link #MAX_BYTES}. */
    static void check(Path file) throws VocabFormatException, IOException {
        if (!Files.isRegularFile(file)) {
            throw new VocabFormatException(file + ": not a regular file (a vocabulary must be a file, not a "
                    + (Files.isDirectory(file) ? "directory" : Files.exists(file) ? "device or pipe" : "missing path")
                    + ")");
        }
        long size = Files.size(file);
        if (size > MAX_BYTES) {
            throw new VocabFormatException(file + ": " + size + " bytes, more than the " + MAX_BYTES
                    + " a vocabulary file may have");
        }
    }

    /** The bytes of a checked file, at most {@link #MAX_BYTES} even if it grows while being read. */
    static byte[] read(Path file) throws IOException {
        check(file);
        try (var in = Files.newInputStream(file)) {
            byte[] content = in.readNBytes((int) MAX_BYTES + 1);
            if (content.length > MAX_BYTES) {
                throw new VocabFormatException(file + ": grew past " + MAX_BYTES + " bytes while being read");
            }
            return content;
        }
    }
}
