package dev.rwkvflink.jobs.cli;

import dev.rwkvflink.engine.format.InputFiles;
import dev.rwkvflink.engine.tokenizer.ChunkTokenizer;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Reads a text file piece by piece and tokenizes it with a {@link ChunkTokenizer}, handing each piece's final
 * tokens to a consumer: the tokens of all pieces are exactly those of the whole file, and memory is one piece plus
 * the tokenizer's bounded carry, whatever the file's size. The file's size when reading begins is what is read: a
 * file that shrinks meanwhile is refused (it is being replaced); bytes appended meanwhile are left for the caller
 * to mention ({@link #grew()}).
 */
final class TextPieces {

    /** Receives the tokens of one piece (never empty) after {@code bytesRead} bytes of the file. */
    @FunctionalInterface
    interface Consumer {
        void accept(int[] tokens, long bytesRead) throws IOException;
    }

    private final Path file;
    private final String option;
    private final int pieceBytes;
    private long size = -1;

    TextPieces(Path file, String option, int pieceBytes) {
        if (pieceBytes < 1) {
            throw new IllegalArgumentException("piece size must be >= 1 byte, got " + pieceBytes);
        }
        this.file = file;
        this.option = option;
        this.pieceBytes = pieceBytes;
    }

    /** The file's size in bytes (checked: a regular file, not empty). */
    long size() throws IOException {
        if (size < 0) {
            InputFiles.check(file, option, Long.MAX_VALUE);
            size = Files.size(file);
            if (size == 0) {
                throw new IllegalArgumentException(file + " is empty: there is no text to embed");
            }
        }
        return size;
    }

    /** Reads and tokenizes the whole file; returns the number of tokens handed to {@code consumer}. */
    long tokenize(ChunkTokenizer tokenizer, Consumer consumer) throws IOException {
        long total = size();
        byte[] carry = new byte[0];
        long read = 0;
        long tokens = 0;
        try (InputStream in = Files.newInputStream(file)) {
            boolean last = false;
            while (!last) {
                int want = (int) Math.min(pieceBytes, total - read);
                byte[] piece = in.readNBytes(want);
                if (piece.length < want) {
                    throw new IOException(file + ": the file shrank while it was read (" + (read + piece.length)
                            + " of its " + total + " bytes): it is being replaced; read it once it is complete");
                }
                read += piece.length;
                last = read == total;
                ChunkTokenizer.Step step = tokenizer.feed(carry, piece, last);
                carry = step.carry();
                if (step.tokens().length > 0) {
                    tokens += step.tokens().length;
                    consumer.accept(step.tokens(), read);
                }
            }
        }
        return tokens;
    }

    /** True when the file is now longer than when {@link #tokenize} began (its first {@link #size()} were read). */
    boolean grew() throws IOException {
        return Files.size(file) > size();
    }
}
