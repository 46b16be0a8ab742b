package dev.rwkvflink.jobs.cli;

import dev.rwkvflink.operator.RwkvOptions;
import picocli.CommandLine.Option;

/** {@code --backend}, declared once for every command (its text is the rwkv.backend option's). */
final class BackendOption {
    @Option(
            names = "--backend",
            defaultValue = "cpu",
            paramLabel = "NAME",
            description = RwkvOptions.BACKEND_DESCRIPTION + " Default: ${DEFAULT-VALUE}.")
    String name;
}
