package dev.rwkvflink.jobs.cli;

import dev.rwkvflink.operator.RwkvOptions;
import picocli.CommandLine.Option;

/** {@code --pooling}, declared once for every command (its text is the rwkv.pooling option's). */
final class PoolingOption {
    @Option(
            names = "--pooling",
            defaultValue = "hidden",
            paramLabel = "NAME",
            description = RwkvOptions.POOLING_DESCRIPTION + " Default: ${DEFAULT-VALUE}.")
    String name;
}
