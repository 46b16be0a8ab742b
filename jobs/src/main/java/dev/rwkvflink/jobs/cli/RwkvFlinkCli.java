package dev.rwkvflink.jobs.cli;

import java.io.PrintWriter;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code bin/rwkv-flink}: the engine's command line. Each subcommand is its own small class. */
@Command(
        name = "rwkv-flink",
        mixinStandardHelpOptions = true,
        version = "rwkv-flink 0.1.0",
        description = "RWKV recurrent language models for stream processing.",
        subcommands = {
            LogitsCommand.class,
            TokenizeCommand.class,
            GenerateCommand.class,
            InfoCommand.class,
            BenchCommand.class,
            EmbedCommand.class,
            FitCommand.class,
            LocalCommand.class
        })
public final class RwkvFlinkCli implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    public static void main(String[] args) {
        System.exit(run(commandLine(), args));
    }

    /**
     * Runs the command line; an {@link Error} thrown by a command (OutOfMemoryError, StackOverflowError: picocli
     * handles only exceptions) is reported in one line like any failure, exit status 1, never as a stack trace
     * (with {@code -Drwkv.debug=true}, the trace too).
     */
    static int run(CommandLine cl, String... args) {
        String lost = lostArguments(System.getProperty("sun.jnu.encoding", "UTF-8"), args);
        if (lost != null) {
            cl.getErr().println("error: " + lost);
            cl.getErr().flush();
            return 2;
        }
        try {
            return cl.execute(args);
        } catch (Error e) {
            report(cl.getErr(), e);
            return 1;
        }
    }

    /**
     * Null, or why the arguments cannot be trusted: the JVM decodes the command line with the locale's charset
     * ({@code sun.jnu.encoding}); under a non-UTF-8 locale such as {@code LANG=C} every non-ASCII byte becomes
     * U+FFFD, so "é" would silently be embedded as replacement characters. Then the command is refused, naming the
     * fix ({@code bin/rwkv-flink} itself switches to {@code C.UTF-8} when the locale is not UTF-8).
     */
    static String lostArguments(String argumentCharset, String... args) {
        if (argumentCharset.equalsIgnoreCase("UTF-8") || argumentCharset.equalsIgnoreCase("UTF8")) {
            return null;
        }
        for (String a : args) {
            if (a.indexOf('\uFFFD') >= 0) {
                return "the command line was decoded as " + argumentCharset + " (the locale's charset), which lost "
                        + "its non-ASCII characters (in '" + a.replace('\uFFFD', '?') + "'): run under a UTF-8 "
                        + "locale, e.g. LC_ALL=C.UTF-8";
            }
        }
        return null;
    }

    /** The configured command line (also used by tests). */
    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new RwkvFlinkCli());
        // free text is free text: "--text @notes.txt" must not read a file (nor echo it in an error message)
        cl.setExpandAtFiles(false);
        cl.setExecutionExceptionHandler((e, cmd, parsed) -> {
            report(cmd.getErr(), e);
            return 1;
        });
        return cl;
    }

    /** One line: "error: " and the message (an Error with its type and cause, e.g. the heap space it ran out of). */
    static void report(PrintWriter err, Throwable e) {
        String message = e instanceof FileSystemException fs
                ? fileProblem(fs)
                : e.getMessage() == null ? e.toString() : e.getMessage();
        if (e instanceof Error) {
            message = e.getClass().getSimpleName() + ": " + message
                    + (e instanceof OutOfMemoryError ? " (the input or model needs more memory than -Xmx allows)" : "");
        }
        err.println(
                "error: " + (e instanceof Error ? message.lines().findFirst().orElse("") : message));
        if (Boolean.getBoolean("rwkv.debug")) {
            e.printStackTrace(err);
        }
        err.flush();
    }

    /**
     * A file-system failure as a sentence: NIO's messages are often the bare path ({@code NoSuchFileException:
     * /out/h.json}), which names neither the problem nor, for an output, the folder that is missing.
     */
    static String fileProblem(FileSystemException e) {
        String file = e.getFile();
        if (file == null) {
            return String.valueOf(e.getMessage());
        }
        Path path = Path.of(file);
        Path parent = path.toAbsolutePath().getParent();
        String other = e.getOtherFile() != null ? " -> " + e.getOtherFile() : "";
        if (e instanceof NoSuchFileException) {
            if (parent != null && !Files.isDirectory(parent)) {
                return file + other + ": no such directory " + parent + " (create it first)";
            }
            return file + other + ": no such file";
        }
        if (e instanceof AccessDeniedException) {
            return file + other + ": permission denied";
        }
        if (e instanceof FileAlreadyExistsException) {
            return file + other + ": already exists";
        }
        if (e instanceof NotDirectoryException) {
            return file + other + ": not a directory";
        }
        return file + other + ": "
                + (e.getReason() != null ? e.getReason() : e.getClass().getSimpleName());
    }
}
