package dev.rwkvflink.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.kafka.local.EmbeddedKafka;
import dev.rwkvflink.schema.Schemas;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.Test;

/**
 * Rescale (issue 7, item 2): {@code EmbedJob} on the standalone cluster (2 TaskManagers x 2 slots, RocksDB,
 * incremental checkpoints) runs at parallelism 2 while the first third of a chunk stream arrives, is stopped with a
 * savepoint while documents are half done, resumes from it at parallelism 4 for the second third, is stopped with a
 * savepoint again and resumes at parallelism 1 for the rest. Documents are cut into chunks that are shuffled over
 * the whole stream, so most documents' RWKV states move between subtasks (key groups are redistributed) at each
 * rescale.
 *
 * <p>The committed output must hold exactly one LAST embedding per document, bit for bit the one-shot embedding
 * (what an uninterrupted run gives), none missing, none duplicated, and no dead letters. Documents:
 * {@code -Drwkv.rescale.documents} (default 300; docs/reliability.md).
 */
class ClusterRescaleITCase {
    private static final Pattern JOB_ID = Pattern.compile("JobID ([0-9a-f]{32})");

    /** One phase of the run: its parallelism, the savepoint it started from, and the savepoint it ended with. */
    record Phase(int parallelism, String from, String savepoint, int records, double seconds) {}

    @Test
    void stopWithSavepointAndResumeAtParallelism4Then1ChangesNothing() throws Exception {
        int documents = Integer.getInteger("rwkv.rescale.documents", 300);
        ClusterSupport.Setup setup = ClusterSupport.Setup.of(
                "it-rescale",
                Map.of(
                        "RWKV_CLUSTER_CONF_EXTRA",
                        "taskmanager.load-balance.mode: SLOTS",
                        "RWKV_CLUSTER_LOG_EXTRA",
                        ClusterSupport.TRACE_LOGGING));
        ClusterSupport cluster = setup.rest();
        Map<String, String> env = setup.env();
        Path bin = setup.bin();
        Path model = setup.model();
        Path work = setup.work();

        Schemas.trustGeneratedClasses();
        Map<String, String> docs = ClusterSupport.documents(documents);
        List<ProducerRecord<byte[], byte[]>> records = ClusterSupport.records(docs, new Random(4049));
        int[] parallelism = {2, 4, 1};
        List<Phase> phases = new ArrayList<>();
        List<ConsumerRecord<byte[], byte[]>> embeddings;
        List<ConsumerRecord<byte[], byte[]>> deadLetters;
        long started = System.nanoTime();
        try (EmbeddedKafka kafka = ClusterSupport.broker()) {
            ClusterSupport.Setup.createTopics(kafka);
            String jobId = null;
            try {
                setup.startCluster();
                String savepoint = null;
                for (int phase = 0; phase < parallelism.length; phase++) {
                    long t0 = System.nanoTime();
                    List<String> args = new ArrayList<>(ClusterSupport.submitArgs(
                            kafka,
                            "rescale-it",
                            "--starting-offsets",
                            "earliest",
                            "--model",
                            model.toString(),
                            "--checkpoint-interval-ms",
                            "1000",
                            "--max-wait-ms",
                            "20",
                            "--parallelism",
                            Integer.toString(parallelism[phase])));
                    Map<String, String> submitEnv = new HashMap<>(env);
                    if (savepoint != null) {
                        submitEnv.put("RWKV_SUBMIT_OPTS", "-s " + savepoint);
                    }
                    String out = ClusterSupport.run(
                            bin.resolve("submit.sh"), submitEnv, Duration.ofSeconds(60), args.toArray(String[]::new));
                    Matcher m = JOB_ID.matcher(out);
                    assertTrue(m.find(), "submit.sh prints the JobID: " + out);
                    jobId = m.group(1);
                    cluster.awaitRunning(jobId, Duration.ofSeconds(60));
                    assertEquals(parallelism[phase], cluster.rwkvParallelism(jobId), "the RWKV vertex's parallelism");
                    List<ProducerRecord<byte[], byte[]>> part = records.subList(
                            records.size() * phase / parallelism.length,
                            records.size() * (phase + 1) / parallelism.length);
                    ClusterSupport.produce(kafka, part, 3_000, new AtomicInteger());
                    String from = savepoint;
                    if (phase < parallelism.length - 1) {
                        // stop while the job still works on what just arrived: half-done documents, queued chunks
                        savepoint =
                                cluster.stopWithSavepoint(jobId, work.resolve("savepoints"), Duration.ofSeconds(120));
                        cluster.awaitJobState(jobId, "FINISHED", Duration.ofSeconds(60));
                        jobId = null;
                        System.out.printf(
                                "phase %d: parallelism %d, %d records, savepoint %s%n",
                                phase + 1, parallelism[phase], part.size(), savepoint);
                    }
                    phases.add(new Phase(
                            parallelism[phase],
                            from,
                            phase < parallelism.length - 1 ? savepoint : null,
                            part.size(),
                            (System.nanoTime() - t0) / 1e9));
                }
                ClusterSupport.awaitCommittedWhileProgressing(kafka, "embeddings", documents, Duration.ofSeconds(180));
                long completed =
                        cluster.checkpointCounts(jobId).path("completed").asLong();
                cluster.awaitCheckpoints(jobId, completed + 2, Duration.ofSeconds(60)); // anything extra shows now
                embeddings = ClusterSupport.readCommittedUntil(kafka, "embeddings", Integer.MAX_VALUE, Duration.ZERO);
                deadLetters =
                        ClusterSupport.readCommittedUntil(kafka, "dead-letters", Integer.MAX_VALUE, Duration.ZERO);
                ClusterSupport.diagnoseMissing(kafka, docs, embeddings, work.resolve("log"));
            } catch (Throwable t) {
                System.err.println(ClusterSupport.logTails(work));
                throw t;
            } finally {
                if (jobId != null) {
                    cluster.cancel(jobId);
                }
                ClusterSupport.run(bin.resolve("cluster.sh"), env, Duration.ofSeconds(60), "stop");
            }
        }
        ClusterSupport.Outcome o = ClusterSupport.compare(embeddings, docs, model);
        // documents whose chunks arrived in more than one phase: their states crossed a rescale
        Map<String, Set<Integer>> phasesOf = new HashMap<>();
        for (int i = 0; i < records.size(); i++) {
            phasesOf.computeIfAbsent(new String(records.get(i).key(), StandardCharsets.UTF_8), k -> new HashSet<>())
                    .add(i * parallelism.length / records.size());
        }
        long crossing = phasesOf.values().stream().filter(p -> p.size() > 1).count();
        System.out.printf(
                "rescale test: %d documents, %d chunk records in (%d duplicates), %d embeddings out, "
                        + "%d duplicated, %d missing, %d not bit-identical, %d dead letters; %d documents across a "
                        + "rescale; phases %s; %.1f s%n",
                documents,
                records.size(),
                records.size() - ClusterSupport.chunkCount(records),
                embeddings.size(),
                o.duplicated(),
                o.missing(),
                o.mismatched(),
                deadLetters.size(),
                crossing,
                phases,
                (System.nanoTime() - started) / 1e9);
        assertEquals(0, o.duplicated(), "duplicated documents");
        assertEquals(0, o.missing(), "missing documents");
        assertEquals(0, o.mismatched(), "embeddings not bit for bit the one-shot embedding");
        assertEquals(documents, embeddings.size(), "one embedding per document");
        assertEquals(0, deadLetters.size(), "no dead letters");
        assertTrue(crossing > documents / 4, "many documents' states crossed a rescale: " + crossing);
    }
}
