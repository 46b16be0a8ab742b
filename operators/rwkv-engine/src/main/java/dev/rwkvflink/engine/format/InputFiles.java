package dev.rwkvflink.engine.format;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * How every input file (vocabulary, head, statistics, training data, text) is opened: only a regular file, and at
 * most a stated number of bytes, so that a FIFO (which would block forever), a device such as {@code /dev/zero}
 * (which never ends), a directory or a file that grows without end is refused by name, never read into the heap.
 */
public final class InputFiles {
    /** Bound of the small JSON and text side files (heads, statistics, vocabularies). */
    public static final long SIDE_FILE_BYTES = 256L << 20;
    /** Bound of a text or data file read whole (a Java array holds at most 2 GB; this leaves heap to work). */
    public static final long WHOLE_FILE_BYTES = 1L << 30;

    private InputFiles() {}

    /** What is wrong with {@code file} as an input of at most {@code maxBytes} (null: nothing), for {@code what}. */
    public static String problem(Path file, String what, long maxBytes) throws IOException {
        if (!Files.isRegularFile(file)) {
            return file + ": not a regular file (" + what + " must be a file, not a "
                    + (Files.isDirectory(file) ? "directory" : Files.exists(file) ? "device or pipe" : "missing path")
                    + ")";
        }
        long size = Files.size(file);
        if (size > maxBytes) {
            return file + ": " + size + " bytes, more than the " + maxBytes + " bytes " + what + " may have";
        }
        return null;
    }

    /** Refuses a file with {@link #problem} (an IOException with that message). */
    public static void check(Path file, String what, long maxBytes) throws IOException {
        String p = problem(file, what, maxBytes);
        if (p != null) {
            throw new IOException(p);
        }
    }

    /** The bytes of a checked file, never more than {@code maxBytes} even if it grows while being read. */
    public static byte[] read(Path file, String what, long maxBytes) throws IOException {
        check(file, what, maxBytes);
        try (InputStream in = Files.newInputStream(file)) {
            byte[] content = in.readNBytes((int) Math.min(Integer.MAX_VALUE - 8, maxBytes + 1));
            if (content.length > maxBytes) {
                throw new IOException(file + ": grew past " + maxBytes + " bytes while being read (" + what + ")");
            }
            return content;
        }
    }
}
