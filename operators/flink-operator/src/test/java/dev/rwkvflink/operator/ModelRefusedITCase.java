package dev.rwkvflink.operator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.connector.source.lib.NumberSequenceSource;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * A model file the loaders refuse fails the whole job at start, with the loader's reason in its causes, and no
 * restart: with a restart strategy of 10 attempts, the tasks are opened once. A missing file, by contrast, is left
 * to the restart strategy (a mount may appear): all 1 + 2 attempts are made.
 *
 * <p>Attempts are counted by a map chained after the RWKV operator: Flink opens a chain from its tail, so the
 * counter opens in the failing task itself, just before the model is loaded. (A counter in the upstream task raced
 * with the cancellation that each failure sends there, and could miss an attempt.)
 */
class ModelRefusedITCase {
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = new MiniClusterExtension(new MiniClusterResourceConfiguration.Builder()
            .setNumberTaskManagers(1)
            .setNumberSlotsPerTaskManager(1)
            .build());

    static final AtomicInteger OPENS = new AtomicInteger();

    @TempDir
    Path dir;

    private Throwable run(Path model, int attempts) {
        OPENS.set(0);
        Configuration conf = new Configuration();
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, attempts);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ofMillis(50));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(1);
        var chunks = env.fromSource(new NumberSequenceSource(0, 9), WatermarkStrategy.noWatermarks(), "numbers")
                .map(i -> new TextChunk("doc-" + i, 0, "text " + i, true, 0L))
                .returns(TextChunk.class)
                .name("chunks");
        RwkvStreams.embed(
                        chunks, new RwkvOperatorConfig().model(model.toString()).batch(8, 1024, 10))
                .map(new CountingOpens())
                .name("count attempts")
                .sinkTo(new DiscardingSink<>());
        return assertThrows(Exception.class, () -> env.execute("model refused"));
    }

    @Test
    void aRefusedModelFailsTheJobOnceWithItsReason() throws Exception {
        byte[] b = Files.readAllBytes(Path.of(OneShot.tinyModel("FP32")));
        Path truncated = dir.resolve("truncated.bin");
        Files.write(truncated, Arrays.copyOf(b, b.length / 2));
        Throwable e = run(truncated, 10);
        IOException reason = null;
        for (Throwable c = e; c != null; c = c.getCause()) {
            if (c instanceof IOException io
                    && io.getMessage() != null
                    && io.getMessage().startsWith(truncated.toString())) {
                reason = io;
            }
        }
        assertTrue(reason != null, "the loader's reason is in the causes of " + e);
        assertEquals(1, OPENS.get(), "opened once: no restarts despite 10 allowed");
    }

    @Test
    void aMissingModelIsLeftToTheRestartStrategy() {
        Throwable e = run(dir.resolve("absent.bin"), 2);
        assertEquals(3, OPENS.get(), "the first attempt and 2 restarts; cause " + e);
    }

    /** Passes embeddings through and counts how often its task is opened (attempts). */
    static final class CountingOpens extends RichMapFunction<EmbeddingRecord, EmbeddingRecord> {
        @Override
        public void open(OpenContext context) {
            OPENS.incrementAndGet();
        }

        @Override
        public EmbeddingRecord map(EmbeddingRecord e) {
            return e;
        }
    }
}
