package dev.rwkvflink.jobs;

import dev.rwkvflink.cuda.Cuda;
import dev.rwkvflink.kafka.local.EmbeddedKafka;
import java.nio.file.Path;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.test.junit5.InjectMiniCluster;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link EmbedJob} on the GPU, Kafka to Kafka: the failure test of {@link EmbedJobITCase} (20 documents out of
 * order with duplicates and malformed records, a failure injected after completed checkpoints, a restart from the
 * latest) with {@code --backend cuda} and {@code cuda:f32}, at parallelism 2 in one TaskManager of two slots, so
 * two operator instances share one loaded model and one GPU state pool (each reserves its half of the pool's slots
 * for hot states). Every document's committed (read_committed) embedding is there exactly once and within the
 * tolerance of the one-shot embedding of its whole text on the same backend: fp32 matrices 1e-5 relative, bf16
 * 2e-2 (the stated GPU tolerances: README "The GPU backend"). Skips itself without CUDA.
 */
class CudaEmbedJobITCase {

    @RegisterExtension
    static final MiniClusterExtension FLINK = new MiniClusterExtension(new MiniClusterResourceConfiguration.Builder()
            .setNumberTaskManagers(1)
            .setNumberSlotsPerTaskManager(2)
            .build());

    private static EmbeddedKafka kafka;

    @BeforeAll
    static void startKafka() {
        if (Cuda.availability().available()) {
            kafka = EmbeddedKafka.builder().start();
        }
    }

    @BeforeEach
    void assumeCuda() {
        Assumptions.assumeTrue(
                Cuda.availability().available(),
                "skipped: " + Cuda.availability().reason());
    }

    @AfterAll
    static void stopKafka() {
        if (kafka != null) {
            kafka.close();
        }
    }

    @ParameterizedTest
    @CsvSource({"cuda:f32, gpu-f32, 1e-5", "cuda, gpu-bf16, 2e-2"})
    void aFailureAfterCompletedCheckpointsChangesNothingOnTheGpu(
            String backend,
            String prefix,
            double tolerance,
            @InjectMiniCluster MiniCluster cluster,
            @TempDir Path checkpoints)
            throws Exception {
        EmbedJobITCase.failureAfterCompletedCheckpoints(cluster, kafka, checkpoints, backend, prefix, tolerance);
    }
}
