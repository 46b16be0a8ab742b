package dev.rwkvflink.jobs;

import static dev.rwkvflink.jobs.EmbedJobITCase.assertMalformed;
import static dev.rwkvflink.jobs.EmbedJobITCase.assertOneShotEmbeddings;
import static dev.rwkvflink.jobs.EmbedJobITCase.awaitCompletedCheckpoints;
import static dev.rwkvflink.jobs.EmbedJobITCase.deadLettersByKey;
import static dev.rwkvflink.jobs.EmbedJobITCase.documents;
import static dev.rwkvflink.jobs.EmbedJobITCase.keys;
import static dev.rwkvflink.jobs.EmbedJobITCase.tinyModel;
import static dev.rwkvflink.jobs.EmbedJobITCase.utf8;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.kafka.local.EmbeddedKafka;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.JobStatus;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.runtime.checkpoint.CheckpointStatsSnapshot;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.InjectMiniCluster;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Resource fault (issue 7, item 5): the Kafka broker crashes mid-run. {@link EmbedJob} on a MiniCluster
 * (parallelism 2, checkpoints every 300 ms, fixed-delay restarts) reads the first half of a chunk stream (documents
 * whole and in part, a duplicate, a malformed record); once whole documents are committed and checkpoints have
 * completed, the broker's JVM is killed (SIGKILL), stays down for {@value #DOWN_MILLIS} ms while the job keeps
 * running against it, and is started again on the same ports and data; then the rest of the stream arrives. The
 * job recovers on its own (the test never touches it). The committed output must be exactly one LAST embedding per
 * document, bit for bit the one-shot embedding, and the 2 malformed records as dead letters, once each.
 */
class BrokerRestartITCase {
    private static final long DOWN_MILLIS = 8_000;

    @RegisterExtension
    static final MiniClusterExtension FLINK = new MiniClusterExtension(new MiniClusterResourceConfiguration.Builder()
            .setNumberTaskManagers(1)
            .setNumberSlotsPerTaskManager(2)
            .build());

    @Test
    void aBrokerCrashMidRunLosesAndDuplicatesNothing(@InjectMiniCluster MiniCluster cluster, @TempDir Path checkpoints)
            throws Exception {
        Path model = tinyModel();
        try (EmbeddedKafka kafka = EmbeddedKafka.builder().start()) {
            String chunksTopic = "br-chunks";
            String embeddingsTopic = "br-embeddings";
            String deadLettersTopic = "br-dead-letters";
            kafka.createTopics(2, chunksTopic, embeddingsTopic);
            kafka.createTopics(deadLettersTopic);

            Map<String, String> docs = documents();
            Random random = new Random(1234);
            EmbedJobITCase.TwoPhases phases = EmbedJobITCase.twoPhases(chunksTopic, docs, 3, random);
            List<ProducerRecord<byte[], byte[]>> before = phases.before();
            List<ProducerRecord<byte[], byte[]>> after = phases.after();
            Set<String> wholeBefore = phases.wholeBefore();
            Collections.shuffle(before, random);
            Collections.shuffle(after, random);
            before.add(before.size() / 2, before.get(1)); // a duplicate before the crash
            after.add(before.get(0)); // a chunk from before the crash again after it
            before.add(new ProducerRecord<>(chunksTopic, utf8("bad-garbage"), utf8("not an avro record")));
            after.add(new ProducerRecord<>(chunksTopic, utf8("bad-empty"), new byte[0]));

            Configuration conf = EmbedJobITCase.restartingJob(checkpoints);
            StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
            Settings settings = Settings.builder()
                    .bootstrapServers(kafka.bootstrapServers())
                    .chunksTopic(chunksTopic)
                    .embeddingsTopic(embeddingsTopic)
                    .deadLettersTopic(deadLettersTopic)
                    .groupId("it-broker")
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
            long completedBeforeCrash;
            long recoveredMillis;
            boolean restarted;
            try {
                KafkaTopics.readCommittedUntil(
                        kafka, embeddingsTopic, read -> keys(read).containsAll(wholeBefore), Duration.ofSeconds(240));
                completedBeforeCrash =
                        awaitCompletedCheckpoints(cluster, id, 2).getCounts().getNumberOfCompletedCheckpoints();

                kafka.kill();
                Thread.sleep(DOWN_MILLIS);
                kafka.restart();
                long backAt = System.nanoTime();
                KafkaTopics.send(kafka, after);
                // recovered: a checkpoint completes after the broker is back
                CheckpointStatsSnapshot stats = awaitCheckpointAfter(cluster, id, backAt);
                recoveredMillis = (System.nanoTime() - backAt) / 1_000_000;
                KafkaTopics.readCommittedUntil(
                        kafka, embeddingsTopic, read -> read.size() >= docs.size(), Duration.ofSeconds(240));
                KafkaTopics.readCommittedUntil(
                        kafka, deadLettersTopic, read -> read.size() >= 2, Duration.ofSeconds(60));
                var graph = cluster.getExecutionGraph(id).get();
                restarted = graph.getStatusTimestamp(JobStatus.RESTARTING) > 0;
                // two more checkpoints: anything extra would be committed by now
                awaitCompletedCheckpoints(
                        cluster,
                        id,
                        graph.getCheckpointStatsSnapshot().getCounts().getNumberOfCompletedCheckpoints() + 2);
                assertEquals(JobStatus.RUNNING, job.getJobStatus().get(), "the job runs on");
                System.out.printf(
                        "broker restart test: %d documents, %d + %d chunk records, %d checkpoints before "
                                + "the crash, broker down %d ms, first checkpoint %d ms after the broker was back "
                                + "(checkpoint %d), job restarted: %s, %.1f s%n",
                        docs.size(),
                        before.size(),
                        after.size(),
                        completedBeforeCrash,
                        DOWN_MILLIS,
                        recoveredMillis,
                        stats.getHistory().getLatestCompletedCheckpoint().getCheckpointId(),
                        restarted,
                        (System.nanoTime() - start) / 1e9);
            } finally {
                job.cancel().get();
            }
            assertTrue(completedBeforeCrash >= 2, "checkpoints before the crash: " + completedBeforeCrash);
            assertOneShotEmbeddings(kafka, model, docs, embeddingsTopic);
            assertMalformed(deadLettersByKey(kafka, deadLettersTopic, 2), chunksTopic);
        }
    }

    /** Waits for a checkpoint triggered after {@code nanoTime} (in System.nanoTime terms) to complete. */
    private static CheckpointStatsSnapshot awaitCheckpointAfter(MiniCluster cluster, JobID id, long nanoTime)
            throws Exception {
        long wallAfter = System.currentTimeMillis() - (System.nanoTime() - nanoTime) / 1_000_000;
        long deadline = System.nanoTime() + Duration.ofSeconds(240).toNanos();
        while (System.nanoTime() < deadline) {
            CheckpointStatsSnapshot s = cluster.getExecutionGraph(id).get().getCheckpointStatsSnapshot();
            var latest = s.getHistory().getLatestCompletedCheckpoint();
            if (latest != null && latest.getTriggerTimestamp() >= wallAfter) {
                return s;
            }
            Thread.sleep(50);
        }
        throw new AssertionError("no checkpoint completed within 240 s after the broker came back");
    }
}
