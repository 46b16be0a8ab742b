package dev.rwkvflink.jobs.cli;

import java.io.PrintStream;
import picocli.CommandLine.Option;

/** The {@code --[no-]progress} option of the commands whose work grows with their input ({@code embed}, {@code fit}). */
final class ProgressOption {
    @Option(
            names = "--progress",
            negatable = true,
            paramLabel = "",
            description = "Show progress on stderr (--no-progress: never). Default: when stderr is a terminal.")
    Boolean progress;

    /** A progress line on {@code err}, shown as the option says (by default: when stderr is a terminal). */
    TerminalProgress on(PrintStream err) {
        return new TerminalProgress(err, progress);
    }
}
