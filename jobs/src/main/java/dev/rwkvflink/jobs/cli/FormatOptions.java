package dev.rwkvflink.jobs.cli;

import dev.rwkvflink.jobs.JobOptions;
import dev.rwkvflink.kafka.RecordFormat;
import picocli.CommandLine.Option;

/**
 * {@code --format} and {@code --schema-registry-url}, declared once for every command that reads or writes topics
 * (their texts are the rwkv.kafka.format and rwkv.kafka.schema-registry-url options').
 */
final class FormatOptions {
    @Option(
            names = "--format",
            defaultValue = "single-object",
            paramLabel = "FORMAT",
            description = JobOptions.FORMAT_DESCRIPTION + " Default: ${DEFAULT-VALUE}.")
    String format;

    @Option(
            names = "--schema-registry-url",
            paramLabel = "URL",
            description = JobOptions.SCHEMA_REGISTRY_URL_DESCRIPTION)
    String schemaRegistryUrl;

    /** The format, refusing an unknown name with the option's name and the known ones. */
    RecordFormat parsed() {
        try {
            return RecordFormat.parse(format);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--format: " + e.getMessage(), e);
        }
    }
}
