package dev.rwkvflink.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.stream.Collectors;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.description.BlockElement;
import org.apache.flink.configuration.description.TextElement;
import org.apache.flink.util.TimeUtils;
import org.junit.jupiter.api.Test;

/**
 * docs/configuration.md is generated from the options ({@link JobOptions}, {@code RwkvOptions}, the flags of
 * {@link Settings#FLAGS}): this test fails when they differ. Regenerate with
 * {@code mvn -pl jobs test -Dtest=ConfigurationReferenceTest -Drwkv.docs.write=true}.
 */
class ConfigurationReferenceTest {

    private static final Path DOC = Path.of("..", "docs", "configuration.md");

    @Test
    void theReferenceInTheDocsIsGeneratedFromTheOptions() throws Exception {
        String expected = render();
        if (Boolean.getBoolean("rwkv.docs.write")) {
            Files.writeString(DOC, expected, StandardCharsets.UTF_8);
        }
        assertEquals(
                expected,
                Files.readString(DOC, StandardCharsets.UTF_8),
                "docs/configuration.md is out of date: regenerate it (see this test's comment)");
    }

    static String render() {
        Map<String, String> flags =
                Settings.FLAGS.stream().collect(Collectors.toMap(f -> f.option().key(), f -> "`--" + f.name() + "`"));
        StringBuilder sb = new StringBuilder();
        sb.append("""
                # Configuration reference

                Generated from the options in code (`JobOptions`, `RwkvOptions`) by `ConfigurationReferenceTest`;
                do not edit by hand. Every option can be set in Flink's configuration (`config.yaml` of the cluster,
                `-Dkey=value` on `flink run`, or a job's `Configuration`); `EmbedJob`'s flags (second column) set the
                same options and win over the configuration. Durations take a unit (`50 ms`, `1 h`; none:
                milliseconds), sizes too (`256 mb`; none: bytes). Besides these, `EmbedJob` reads Flink's own
                `execution.checkpointing.interval` (flag `--checkpoint-interval-ms`; default here %s) and
                `parallelism.default` (flag `--parallelism`), and takes Kafka client properties with
                `--kafka-property key=value`.

                | key | flag | default | description |
                |---|---|---|---|
                """.formatted(TimeUtils.formatWithHighestUnit(Settings.DEFAULT_CHECKPOINT_INTERVAL)));
        for (ConfigOption<?> o : Settings.OPTIONS) {
            sb.append("| `")
                    .append(o.key())
                    .append("` | ")
                    .append(flags.getOrDefault(o.key(), "-"))
                    .append(" | ")
                    .append(o.hasDefaultValue() ? "`" + text(o.defaultValue()) + "`" : "none")
                    .append(" | ")
                    .append(description(o).replace("|", "\\|"))
                    .append(" |\n");
        }
        return sb.toString();
    }

    private static String text(Object value) {
        return value instanceof Duration d ? TimeUtils.formatWithHighestUnit(d) : String.valueOf(value);
    }

    private static String description(ConfigOption<?> o) {
        StringBuilder sb = new StringBuilder();
        for (BlockElement b : o.description().getBlocks()) {
            sb.append(((TextElement) b).getFormat());
        }
        return sb.toString();
    }
}
