package dev.rwkvflink.jobs;

import static dev.rwkvflink.jobs.EmbedJobITCase.assertOneShotEmbeddings;
import static dev.rwkvflink.jobs.EmbedJobITCase.awaitCompletedCheckpoints;
import static dev.rwkvflink.jobs.EmbedJobITCase.documents;
import static dev.rwkvflink.jobs.EmbedJobITCase.keys;
import static dev.rwkvflink.jobs.EmbedJobITCase.tinyModel;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.kafka.local.EmbeddedKafka;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.JobStatus;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.runtime.checkpoint.CheckpointStatsCounts;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.InjectMiniCluster;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Resource fault (issue 7, item 5): the checkpoint storage fills up. {@link EmbedJob} on a MiniCluster with RocksDB
 * state and incremental checkpoints every 300 ms into a directory on its own small file system (a 32 MiB tmpfs, a
 * real one: {@code mount -t tmpfs}, so the test needs root with CAP_SYS_ADMIN and is skipped, saying so, without).
 * The first half of a chunk stream goes through; then the file system is filled to the last byte while the second
 * half arrives, and stays full for {@value #FULL_MILLIS} ms; then the filler is deleted. Nobody touches the job.
 *
 * <p>What must happen: while the disk is full no checkpoint completes, so no output of the second half is
 * committed (exactly-once output appears at checkpoints) and nothing is lost either (the job goes back to its last
 * completed checkpoint, on the same full disk, and replays); once there is room again checkpoints complete on their
 * own, and the committed output is exactly one LAST embedding per document, bit for bit the one-shot embedding.
 */
class CheckpointDiskFullITCase {
    private static final long FULL_MILLIS = 8_000;

    @RegisterExtension
    static final MiniClusterExtension FLINK = new MiniClusterExtension(new MiniClusterResourceConfiguration.Builder()
            .setNumberTaskManagers(1)
            .setNumberSlotsPerTaskManager(2)
            .build());

    @Test
    void aFullCheckpointDiskHoldsOutputBackAndLosesNothing(@InjectMiniCluster MiniCluster cluster, @TempDir Path dir)
            throws Exception {
        Path disk = Files.createDirectories(dir.resolve("small-disk"));
        Assumptions.assumeTrue(
                run("mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", disk.toString()),
                "needs root with CAP_SYS_ADMIN to mount a 32 MiB tmpfs as the full checkpoint disk");
        try {
            fillTheDiskMidRun(cluster, disk);
        } finally {
            run("umount", disk.toString());
        }
    }

    private void fillTheDiskMidRun(MiniCluster cluster, Path disk) throws Exception {
        Path model = tinyModel();
        Path checkpoints = Files.createDirectories(disk.resolve("checkpoints"));
        try (EmbeddedKafka kafka = EmbeddedKafka.builder().start()) {
            String chunksTopic = "df-chunks";
            String embeddingsTopic = "df-embeddings";
            kafka.createTopics(2, chunksTopic, embeddingsTopic);
            kafka.createTopics("df-dead-letters");

            Map<String, String> docs = documents();
            Random random = new Random(4321);
            EmbedJobITCase.TwoPhases phases = EmbedJobITCase.twoPhases(chunksTopic, docs, 3, random);
            List<ProducerRecord<byte[], byte[]>> before = phases.before();
            List<ProducerRecord<byte[], byte[]>> after = phases.after();
            Collections.shuffle(before, random);
            Collections.shuffle(after, random);

            Configuration conf = EmbedJobITCase.restartingJob(checkpoints);
            conf.set(StateBackendOptions.STATE_BACKEND, "rocksdb");
            conf.set(CheckpointingOptions.INCREMENTAL_CHECKPOINTS, true);
            StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
            Settings settings = Settings.builder()
                    .bootstrapServers(kafka.bootstrapServers())
                    .chunksTopic(chunksTopic)
                    .embeddingsTopic(embeddingsTopic)
                    .deadLettersTopic("df-dead-letters")
                    .groupId("it-disk-full")
                    .startingOffsets("earliest")
                    .model(model.toString())
                    .checkpointIntervalMillis(300)
                    .parallelism(2)
                    .maxWaitMillis(5)
                    .build();
            EmbedJob.build(env, settings);
            long start = System.nanoTime();
            KafkaTopics.send(kafka, before);
            JobClient job = env.executeAsync(EmbedJob.jobName(settings));
            JobID id = job.getJobID();
            long committedBefore;
            long committedWhileFull;
            CheckpointStatsCounts atFull;
            CheckpointStatsCounts atFreed;
            long recoveredMillis;
            long filler;
            boolean restarted;
            try {
                committedBefore = KafkaTopics.readCommittedUntil(
                                kafka,
                                embeddingsTopic,
                                read -> keys(read).containsAll(phases.wholeBefore()),
                                Duration.ofSeconds(240))
                        .size();
                awaitCompletedCheckpoints(cluster, id, 2);

                filler = fill(disk.resolve("filler"));
                atFull = counts(cluster, id);
                KafkaTopics.send(kafka, after);
                Thread.sleep(FULL_MILLIS);
                atFreed = counts(cluster, id);
                committedWhileFull = KafkaTopics.readCommittedUntil(
                                kafka, embeddingsTopic, read -> true, Duration.ofSeconds(10))
                        .size();
                Files.delete(disk.resolve("filler"));

                long freedAt = System.nanoTime();
                awaitCompletedCheckpoints(cluster, id, atFreed.getNumberOfCompletedCheckpoints() + 1);
                recoveredMillis = (System.nanoTime() - freedAt) / 1_000_000;
                KafkaTopics.readCommittedUntil(
                        kafka, embeddingsTopic, read -> read.size() >= docs.size(), Duration.ofSeconds(240));
                var graph = cluster.getExecutionGraph(id).get(30, TimeUnit.SECONDS);
                restarted = graph.getStatusTimestamp(JobStatus.RESTARTING) > 0;
                // two more checkpoints: anything extra would be committed by now
                awaitCompletedCheckpoints(
                        cluster,
                        id,
                        graph.getCheckpointStatsSnapshot().getCounts().getNumberOfCompletedCheckpoints() + 2);
                assertEquals(JobStatus.RUNNING, job.getJobStatus().get(), "the job runs on");
                System.out.printf(
                        "checkpoint disk full test: %d documents, %d + %d chunk records; %d embeddings "
                                + "committed before the disk filled (filler %d bytes); while full (%d ms): %d "
                                + "checkpoints completed, %d failed, %d embeddings committed in all; first checkpoint "
                                + "%d ms after the filler was deleted; job restarted: %s; %.1f s%n",
                        docs.size(),
                        before.size(),
                        after.size(),
                        committedBefore,
                        filler,
                        FULL_MILLIS,
                        atFreed.getNumberOfCompletedCheckpoints() - atFull.getNumberOfCompletedCheckpoints(),
                        atFreed.getNumberOfFailedCheckpoints() - atFull.getNumberOfFailedCheckpoints(),
                        committedWhileFull,
                        recoveredMillis,
                        restarted,
                        (System.nanoTime() - start) / 1e9);
            } finally {
                job.cancel().get();
            }
            assertTrue(
                    atFreed.getNumberOfFailedCheckpoints() > atFull.getNumberOfFailedCheckpoints(),
                    "checkpoints failed while the disk was full");
            // at most the one checkpoint that was being written when the filler took the last bytes
            assertTrue(
                    atFreed.getNumberOfCompletedCheckpoints() - atFull.getNumberOfCompletedCheckpoints() <= 1,
                    "no checkpoint completed on the full disk");
            assertEquals(
                    phases.wholeBefore().size(),
                    committedWhileFull,
                    "nothing of the second half committed while the disk was full");
            assertOneShotEmbeddings(kafka, model, docs, embeddingsTopic);
        }
    }

    private static CheckpointStatsCounts counts(MiniCluster cluster, JobID id) throws Exception {
        return cluster.getExecutionGraph(id)
                .get(30, TimeUnit.SECONDS)
                .getCheckpointStatsSnapshot()
                .getCounts();
    }

    /** Writes the file until the file system has no byte left; returns its size. */
    private static long fill(Path file) throws IOException {
        byte[] block = new byte[1 << 16];
        long written = 0;
        try (OutputStream out = Files.newOutputStream(file)) {
            while (true) {
                out.write(block);
                written += block.length;
            }
        } catch (IOException full) {
            if (!String.valueOf(full.getMessage()).contains("No space left")) {
                throw full;
            }
        }
        // the last partial block may still fit: fill byte by byte in small steps
        try (OutputStream out = Files.newOutputStream(file, StandardOpenOption.APPEND)) {
            while (true) {
                out.write(block, 0, 512);
                out.flush();
                written += 512;
            }
        } catch (IOException full) {
            return written;
        }
    }

    private static boolean run(String... command) {
        try {
            Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
            String output = new String(p.getInputStream().readAllBytes());
            boolean ok = p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0;
            if (!ok) {
                System.err.println(String.join(" ", command) + ": " + output.strip());
            }
            return ok;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }
}
