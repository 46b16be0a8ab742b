package dev.rwkvflink.jobs.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.function.LongSupplier;

/**
 * A one-line progress report on standard error, rewritten in place ({@code \r}) at most twice a second, for the
 * commands whose work grows with their input ({@code embed} of a long text, {@code fit}). By default it is shown
 * only when standard error is a terminal, so logs and pipes get the final summary line alone; {@code --progress}
 * and {@code --no-progress} decide it explicitly.
 */
final class TerminalProgress {
    private static final long INTERVAL_NANOS = 500_000_000L;

    private final PrintStream err;
    private final boolean shown;
    private final LongSupplier clock;
    private final long start;
    private long lastPrint;
    private int lastWidth;

    TerminalProgress(PrintStream err, Boolean requested) {
        this(err, requested != null ? requested : stderrIsATerminal(), System::nanoTime);
    }

    TerminalProgress(PrintStream err, boolean shown, LongSupplier clock) {
        this.err = err;
        this.shown = shown;
        this.clock = clock;
        this.start = clock.getAsLong();
        this.lastPrint = start;
    }

    /** Seconds since this report began. */
    double seconds() {
        return (clock.getAsLong() - start) / 1e9;
    }

    /** Rewrites the line with {@code text} if half a second passed since the last time. */
    void update(String text) {
        long now = clock.getAsLong();
        if (!shown || now - lastPrint < INTERVAL_NANOS) {
            return;
        }
        lastPrint = now;
        String line = String.format(Locale.ROOT, "%s (%.0f s)", text, seconds());
        err.print("\r" + line + " ".repeat(Math.max(0, lastWidth - line.length())));
        err.flush();
        lastWidth = line.length();
    }

    /** Clears the progress line, so the summary that follows starts on a clean line. */
    void done() {
        if (shown && lastWidth > 0) {
            err.print("\r" + " ".repeat(lastWidth) + "\r");
            err.flush();
        }
    }

    /** True when file descriptor 2 is a terminal (Linux: /proc/self/fd/2 links to /dev/pts/N or /dev/ttyN). */
    static boolean stderrIsATerminal() {
        try {
            String target = Files.readSymbolicLink(Path.of("/proc/self/fd/2")).toString();
            return target.startsWith("/dev/pts/") || target.startsWith("/dev/tty");
        } catch (IOException | UnsupportedOperationException | SecurityException e) {
            return false;
        }
    }

    /** {@code 12.3 MB} style sizes for progress lines. */
    static String megabytes(long bytes) {
        return String.format(Locale.ROOT, "%.1f MB", bytes / 1e6);
    }
}
