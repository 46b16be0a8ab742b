package dev.rwkvflink.engine.tokenizer;

import dev.rwkvflink.engine.format.InputFiles;
import java.io.IOException;
import java.nio.file.Path;

/**
 * How a vocabulary file is opened: only a regular file of at most {@link #MAX_BYTES}, so that a FIFO, a device
 * ({@code /dev/zero}), a directory or a file that grows without end is refused by name instead of blocking or
 * filling the heap.
 */
final class VocabularyFiles {
    /** Largest vocabulary file read (the World vocabulary has 1.1 MB, 20B_tokenizer.json 2.1 MB). */
    static final long MAX_BYTES = 64L << 20;

    private VocabularyFiles() {}

    /** Refuses what is not a regular file of at most {@link #MAX_BYTES} ({@link InputFiles}). */
    static void check(Path file) throws IOException {
        String problem = InputFiles.problem(file, "a vocabulary", MAX_BYTES);
        if (problem != null) {
            throw new VocabFormatException(problem);
        }
    }

    /** The bytes of a checked file, at most {@link #MAX_BYTES} even if it grows while being read. */
    static byte[] read(Path file) throws IOException {
        check(file);
        try {
            return InputFiles.read(file, "a vocabulary", MAX_BYTES);
        } catch (VocabFormatException e) {
            throw e;
        } catch (IOException e) {
            throw new VocabFormatException(e.getMessage(), e);
        }
    }
}
