package dev.rwkvflink.jobs.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code bin/rwkv-flink}: the engine's command line. Each subcommand is its own small class. */
@Command(name = "rwkv-flink", mixinStandardHelpOptions = true, version = "rwkv-flink 0.1.0",
        description = "RWKV recurrent language models for stream processing.",
        subcommands = {LogitsCommand.class, TokenizeCommand.class, GenerateCommand.class, InfoCommand.class,
                BenchCommand.class, EmbedCommand.class, FitCommand.class, LocalCommand.class})
public final class RwkvFlinkCli implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /** The configured command line (also used by tests). */
    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new RwkvFlinkCli());
        cl.setExecutionExceptionHandler((e, cmd, parsed) -> {
            cmd.getErr().println("error: " + (e.getMessage() == null ? e.toString() : e.getMessage()));
            if (Boolean.getBoolean("rwkv.debug")) {
                e.printStackTrace(cmd.getErr());
            }
            return 1;
        });
        return cl;
    }
}
