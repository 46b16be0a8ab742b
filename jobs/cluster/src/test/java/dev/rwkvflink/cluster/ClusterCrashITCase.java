package dev.rwkvflink.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.kafka.KafkaJobs;
import dev.rwkvflink.kafka.local.EmbeddedKafka;
import dev.rwkvflink.schema.Schemas;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.LocalTime;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.Test;

/**
 * Crash (issue 7, item 1): the standalone cluster of {@code bin/cluster.sh} (a JobManager and 2 TaskManagers, each
 * its own JVM; RocksDB state, incremental unaligned checkpoints every second) runs {@code EmbedJob} from the job jar while a
 * producer feeds documents in random chunks, interleaved, with about 3% duplicate chunks. The test kills a
 * TaskManager that runs tasks of the job with {@code kill -9} several times (the first kill while a checkpoint is
 * in progress, the others at random moments) and, like a process supervisor, starts it again once the job has
 * recovered. Nobody touches the job: Flink restarts it from the latest completed checkpoint on its own.
 *
 * <p>The committed output (read_committed) must hold exactly one LAST embedding per document, none missing, none
 * duplicated, each bit for bit the engine's one-shot embedding of the whole document on the CPU backend (which is
 * what an uninterrupted run gives, bit for bit: {@code EmbedJobITCase}); the dead-letter topic must be empty.
 * Recovery times are measured per kill: from the kill to the job's RUNNING state with every task running again, and
 * to the first checkpoint completed after the kill (REST API).
 *
 * <p>Reduced form (CI, the default): 500 documents, 2 kills. Full form: {@code -Drwkv.crash.documents=10000
 * -Drwkv.crash.kills=5} (see docs/reliability.md).
 */
class ClusterCrashITCase {

    private static final Pattern JOB_ID = Pattern.compile("JobID ([0-9a-f]{32})");
    private ClusterSupport cluster;
    /** TaskManager indexes the test is killing and will start again itself (the supervisor leaves them alone). */
    private final Set<Integer> deliberate = ConcurrentHashMap.newKeySet();
    /** TaskManagers that died without being killed by the test, restarted by the supervisor (what and when). */
    private final List<String> unplannedExits = Collections.synchronizedList(new ArrayList<>());

    /** One kill and what followed it. */
    record Kill(
            String taskManager,
            boolean duringCheckpoint,
            long runningMillis,
            long checkpointMillis,
            long restoredCheckpoint) {}

    @Test
    void killingTaskManagersLosesAndDuplicatesNothing() throws Exception {
        int documents = Integer.getInteger("rwkv.crash.documents", 500);
        int kills = Integer.getInteger("rwkv.crash.kills", 2);
        // a lost TaskManager is noticed within seconds; one task per TaskManager while both are there; barriers
        // overtake the backlog a restored job replays (unaligned checkpoints, debloated buffers)
        ClusterSupport.Setup setup = ClusterSupport.Setup.of(
                "it-crash",
                Map.of(
                        "RWKV_CLUSTER_CONF_EXTRA",
                        String.join(
                                "\n",
                                "heartbeat.interval: 1000",
                                "heartbeat.timeout: 5000",
                                "restart-strategy.type: fixed-delay",
                                "restart-strategy.fixed-delay.attempts: 1000",
                                "restart-strategy.fixed-delay.delay: 500 ms",
                                "taskmanager.load-balance.mode: SLOTS",
                                "execution.checkpointing.unaligned.enabled: true",
                                "web.refresh-interval: 200",
                                "taskmanager.network.memory.buffer-debloat.enabled: true"),
                        "RWKV_CLUSTER_LOG_EXTRA",
                        ClusterSupport.TRACE_LOGGING));
        cluster = setup.rest();
        Map<String, String> env = setup.env();
        Path bin = setup.bin();
        Path model = setup.model();
        Path work = setup.work();

        Schemas.trustGeneratedClasses();
        Map<String, String> docs = ClusterSupport.documents(documents);
        List<ProducerRecord<byte[], byte[]>> records = ClusterSupport.records(docs, new Random(2027));
        long started = System.nanoTime();
        List<Kill> done = new ArrayList<>();
        List<ConsumerRecord<byte[], byte[]>> embeddings;
        List<ConsumerRecord<byte[], byte[]>> deadLetters;
        String summary;
        try (EmbeddedKafka kafka = ClusterSupport.broker()) {
            ClusterSupport.Setup.createTopics(kafka);
            String jobId = null;
            Thread producer = null;
            Thread supervisor = null;
            AtomicReference<Throwable> producerFailure = new AtomicReference<>();
            AtomicInteger sent = new AtomicInteger();
            try {
                setup.startCluster();
                String out = ClusterSupport.submit(
                        bin,
                        env,
                        kafka,
                        "crash-it",
                        "--starting-offsets",
                        "earliest",
                        "--model",
                        model.toString(),
                        "--checkpoint-interval-ms",
                        "1000",
                        "--max-wait-ms",
                        "20",
                        "--parallelism",
                        "2");
                Matcher m = JOB_ID.matcher(out);
                assertTrue(m.find(), "submit.sh prints the JobID: " + out);
                jobId = m.group(1);
                cluster.awaitRunning(jobId, Duration.ofSeconds(60));
                supervisor = superviseTaskManagers(bin, env, work);

                // the stream: all records spread over about 8 s per kill, so that every kill hits a busy job
                long produceMillis = 8_000L * Math.max(1, kills);
                producer = Thread.ofPlatform().name("crash-producer").start(() -> {
                    try {
                        ClusterSupport.produce(kafka, records, produceMillis, sent);
                    } catch (Throwable t) {
                        producerFailure.set(t);
                    }
                });

                Random random = new Random(31);
                for (int k = 0; k < kills; k++) {
                    Thread.sleep(1_500 + random.nextInt(3_000));
                    done.add(killAndRecover(jobId, k % 2 == 0, bin, env));
                    System.out.printf("kill %d: %s%n", k + 1, done.getLast());
                }
                producer.join(TimeUnit.MINUTES.toMillis(10));
                assertEquals(null, producerFailure.get(), "the producer ran through");
                // a transaction left open by a TaskManager that died pins read_committed readers until the
                // broker aborts it (the sinks' transaction.timeout.ms): a stall shorter than that is no loss
                ClusterSupport.awaitCommittedWhileProgressing(
                        kafka, "embeddings", documents, KafkaJobs.TRANSACTION_TIMEOUT.plusMinutes(1));
                long completed =
                        cluster.checkpointCounts(jobId).path("completed").asLong();
                // anything extra would be visible now
                cluster.awaitCheckpoints(jobId, completed + 2, Duration.ofSeconds(60));
                embeddings = ClusterSupport.readCommittedUntil(kafka, "embeddings", Integer.MAX_VALUE, Duration.ZERO);
                deadLetters =
                        ClusterSupport.readCommittedUntil(kafka, "dead-letters", Integer.MAX_VALUE, Duration.ZERO);
                summary = cluster.checkpointSummary(jobId);
                ClusterSupport.diagnoseMissing(kafka, docs, embeddings, work.resolve("log"));
            } catch (Throwable t) {
                System.err.println(ClusterSupport.logTails(work));
                throw t;
            } finally {
                if (supervisor != null) {
                    supervisor.interrupt();
                    supervisor.join(TimeUnit.MINUTES.toMillis(2));
                }
                if (producer != null) {
                    producer.interrupt();
                }
                if (jobId != null) {
                    cluster.cancel(jobId);
                }
                ClusterSupport.run(bin.resolve("cluster.sh"), env, Duration.ofSeconds(60), "stop");
            }
        }
        double seconds = (System.nanoTime() - started) / 1e9;

        ClusterSupport.Outcome o = ClusterSupport.compare(embeddings, docs, model);
        int duplicates = o.duplicated();
        int missing = o.missing();
        int mismatched = o.mismatched();
        System.out.printf(
                "crash test: %d documents, %d chunk records in (%d duplicates), %d embeddings out, "
                        + "%d duplicated, %d missing, %d not bit-identical, %d dead letters; kills %s; TaskManagers that "
                        + "died on their own (restarted by the supervisor): %s; %s; %.1f s%n",
                documents,
                records.size(),
                records.size() - ClusterSupport.chunkCount(records),
                embeddings.size(),
                duplicates,
                missing,
                mismatched,
                deadLetters.size(),
                done,
                unplannedExits,
                summary,
                seconds);
        assertEquals(kills, done.size(), "kills");
        assertEquals(0, duplicates, "duplicated documents");
        assertEquals(0, missing, "missing documents");
        assertEquals(0, mismatched, "embeddings not bit for bit the one-shot embedding");
        assertEquals(documents, embeddings.size(), "one embedding per document");
        assertEquals(0, deadLetters.size(), "no dead letters");
        assertFalse(
                diedOfOutOfMemory(work, 1) || diedOfOutOfMemory(work, 2),
                "a TaskManager ran out of memory (see its .out and .log): " + unplannedExits);
        for (Kill k : done) {
            assertTrue(k.restoredCheckpoint() > 0 || k.restoredCheckpoint() == -1, "restored from a checkpoint: " + k);
        }
    }

    /**
     * A process supervisor, as Kubernetes or systemd would be: every second, any TaskManager that is not running and
     * that the test is not killing on purpose is started again ({@code cluster.sh start-taskmanager I}) and
     * recorded. (Flink shuts a TaskManager down when a task fails while it is being cancelled; the Kafka sink's
     * writer can do that after a restore fenced its producer.)
     */
    private Thread superviseTaskManagers(Path bin, Map<String, String> env, Path work) {
        return Thread.ofPlatform().name("tm-supervisor").daemon().start(() -> {
            try {
                while (!Thread.currentThread().isInterrupted()) {
                    Thread.sleep(1_000);
                    for (int i = 1; i <= 2; i++) {
                        synchronized (deliberate) {
                            Path pidFile = work.resolve("pid").resolve("taskmanager-" + i + ".pid");
                            if (deliberate.contains(i) || !Files.isRegularFile(pidFile)) {
                                continue;
                            }
                            long pid = Long.parseLong(Files.readString(pidFile).strip());
                            if (ProcessHandle.of(pid)
                                    .map(ProcessHandle::isAlive)
                                    .orElse(false)) {
                                continue;
                            }
                            unplannedExits.add("taskmanager-" + i + " at " + LocalTime.now()
                                    + (diedOfOutOfMemory(work, i) ? " (OutOfMemoryError)" : ""));
                            ClusterSupport.run(
                                    bin.resolve("cluster.sh"),
                                    env,
                                    Duration.ofSeconds(60),
                                    "start-taskmanager",
                                    Integer.toString(i));
                        }
                    }
                }
            } catch (InterruptedException stop) {
                // the test is over
            } catch (Exception e) {
                System.err.println("TaskManager supervisor failed: " + e);
            }
        });
    }

    /**
     * Whether a TaskManager's logs (appended to across its restarts) report an OutOfMemoryError: a TaskManager that
     * ran out of memory is our defect (the operator's memory is bounded by design), not a fault we caused.
     */
    private static boolean diedOfOutOfMemory(Path work, int taskManager) throws IOException {
        for (String suffix : List.of(".out", ".log")) {
            Path f = work.resolve("log").resolve("taskmanager-" + taskManager + suffix);
            if (Files.isRegularFile(f)) {
                try (var lines = Files.lines(f, StandardCharsets.ISO_8859_1)) {
                    if (lines.anyMatch(l -> l.contains("OutOfMemoryError"))) {
                        return true;
                    }
                }
            }
        }
        return false;
    }

    /** Kills (-9) a TaskManager that runs tasks of the job, waits for recovery, starts the TaskManager again. */
    private Kill killAndRecover(String jobId, boolean duringCheckpoint, Path bin, Map<String, String> env)
            throws Exception {
        String victim = cluster.busyTaskManagers(jobId).getFirst();
        Path pidFile = Path.of(env.get("RWKV_CLUSTER_DIR"), "pid", victim + ".pid");
        long pid = Long.parseLong(Files.readString(pidFile).strip());
        boolean inCheckpoint = false;
        if (duringCheckpoint) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
            while (!inCheckpoint && System.nanoTime() < deadline) {
                inCheckpoint =
                        cluster.checkpointCounts(jobId).path("in_progress").asInt() > 0;
                if (!inCheckpoint) {
                    Thread.sleep(10);
                }
            }
            assertTrue(inCheckpoint, "a checkpoint in progress to kill into");
        }
        int index = Integer.parseInt(victim.substring("taskmanager-".length()));
        deliberate.add(index);
        long killedAt = System.currentTimeMillis();
        ProcessHandle.of(pid)
                .orElseThrow(() -> new AssertionError(victim + " (pid " + pid + ") is not running"))
                .destroyForcibly();
        // the job goes down and comes back: switched to RUNNING after the kill, every task running (the REST
        // API's job view is at most web.refresh-interval = 200 ms old; with the default 3 s a stale RUNNING view
        // once made a kill look recovered in 68 ms, and the times were multiples of 3 s)
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (System.nanoTime() < deadline
                && (cluster.runningSince(jobId) <= killedAt || !cluster.allTasksRunning(jobId))) {
            Thread.sleep(50);
        }
        assertTrue(cluster.allTasksRunning(jobId), "the job recovered within 120 s of killing " + victim);
        long runningMillis = System.currentTimeMillis() - killedAt;
        deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(300);
        while (System.nanoTime() < deadline && cluster.latestCompletedTrigger(jobId) <= killedAt) {
            Thread.sleep(50);
        }
        assertTrue(
                cluster.latestCompletedTrigger(jobId) > killedAt, "a checkpoint completed within 300 s after the kill");
        long checkpointMillis = System.currentTimeMillis() - killedAt;
        long restored = cluster.restoredCheckpoint(jobId);
        synchronized (deliberate) {
            ClusterSupport.run(
                    bin.resolve("cluster.sh"),
                    env,
                    Duration.ofSeconds(60),
                    "start-taskmanager",
                    Integer.toString(index));
            deliberate.remove(index);
        }
        cluster.waitForTaskManagers(2, Duration.ofSeconds(60));
        return new Kill(victim, inCheckpoint, runningMillis, checkpointMillis, restored);
    }
}
