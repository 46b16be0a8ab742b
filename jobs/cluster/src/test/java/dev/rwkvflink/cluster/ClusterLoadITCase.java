package dev.rwkvflink.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.rwkvflink.engine.format.RwkvCppWriter;
import dev.rwkvflink.engine.model.RandomModels;
import dev.rwkvflink.engine.tensor.WeightType;
import dev.rwkvflink.kafka.AvroCodec;
import dev.rwkvflink.kafka.local.EmbeddedKafka;
import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.Schemas;
import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * Load (issue 7, item 6), on demand ({@code bin/reliability --load}, {@code -Drwkv.load=true}): many open documents'
 * RWKV states in RocksDB on the standalone cluster (2 TaskManagers, incremental checkpoints).
 *
 * <p>{@code -Drwkv.load.keys} documents (default 50,000 of the tiny RWKV-7 model: about 200 KB of RocksDB state each,
 * about 10 GB)
 * get one chunk each that does not end them, so every key keeps its state. The test measures: RocksDB bytes on
 * the TaskManagers' disks per key; the checkpoint that first holds all keys (incremental: every SST file is new)
 * and one after 1% of the keys got another chunk (size, duration, from the REST API); a savepoint (stop with
 * savepoint: canonical format, all state rewritten) and its size on disk; a restore from it (submit to every task
 * RUNNING, and to the first completed checkpoint); then a restore from a retained incremental (native RocksDB)
 * checkpoint of that job, after cancelling it (the same timings); throughput while checkpointing. Then
 * {@value #SAMPLE} documents get their last chunk, and their embeddings must be bit for bit the one-shot embedding
 * of the whole text: states that went through RocksDB, checkpoints, a savepoint, a retained checkpoint and two
 * restores are intact.
 */
class ClusterLoadITCase {
    private static final Pattern JOB_ID = Pattern.compile("JobID ([0-9a-f]{32})");
    private static final int SAMPLE = 200;

    @Test
    void manyOpenDocumentsInRocksDb() throws Exception {
        Assumptions.assumeTrue(Boolean.getBoolean("rwkv.load"), "the load test runs on demand: bin/reliability --load");
        int keys = Integer.getInteger("rwkv.load.keys", 50_000);
        boolean big = System.getProperty("rwkv.load.model", "tiny").equals("0.1b");
        ClusterSupport.Setup setup = ClusterSupport.Setup.of(
                "it-load",
                Map.of(
                        "RWKV_CLUSTER_TM_MEMORY",
                        big ? "4096m" : "2560m",
                        "RWKV_CLUSTER_CONF_EXTRA",
                        String.join(
                                "\n",
                                "taskmanager.load-balance.mode: SLOTS",
                                "web.refresh-interval: 200",
                                "execution.checkpointing.timeout: 30 min",
                                "execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION")));
        ClusterSupport cluster = setup.rest();
        Map<String, String> env = setup.env();
        Path bin = setup.bin();
        Path work = setup.work();
        ModelFiles model = big ? ModelFiles.random01b(work) : new ModelFiles(setup.model(), null, null);
        Schemas.trustGeneratedClasses();

        Map<String, String> docs = ClusterSupport.documents(keys);
        AvroCodec<DocumentChunk> codec = AvroCodec.of(DocumentChunk.class);
        List<ProducerRecord<byte[], byte[]>> open = new ArrayList<>();
        List<ProducerRecord<byte[], byte[]>> more = new ArrayList<>();
        List<ProducerRecord<byte[], byte[]>> ends = new ArrayList<>();
        Map<String, String> sample = new LinkedHashMap<>();
        int d = 0;
        for (var doc : docs.entrySet()) {
            String key = doc.getKey();
            open.add(record(codec, key, 0, doc.getValue(), false));
            if (d % 100 == 0) { // 1% of the keys change between two checkpoints
                more.add(record(codec, key, 1, " And more.", false));
            }
            if (d % Math.max(1, keys / SAMPLE) == 0 && sample.size() < SAMPLE) {
                boolean hadMore = d % 100 == 0;
                ends.add(record(codec, key, hadMore ? 2 : 1, " The end.", true));
                sample.put(key, doc.getValue() + (hadMore ? " And more." : "") + " The end.");
            }
            d++;
        }

        StringBuilder report = new StringBuilder();
        List<ConsumerRecord<byte[], byte[]>> embeddings;
        long started = System.nanoTime();
        try (EmbeddedKafka kafka = ClusterSupport.broker()) {
            ClusterSupport.Setup.createTopics(kafka);
            String jobId = null;
            try {
                setup.startCluster();
                long t0 = System.nanoTime();
                ClusterSupport.produce(kafka, open, 0, new AtomicInteger());
                report.append(String.format("%d chunk records produced in %.1f s; ", open.size(), seconds(t0)));

                jobId = submit(bin, env, kafka, model, null);
                t0 = System.nanoTime();
                awaitRead(cluster, jobId, open.size(), Duration.ofMinutes(60));
                double processSeconds = seconds(t0);
                long rocksBytes = bytesUnder(work.resolve("tmp"), "/db/");
                report.append(String.format(
                        "all %d keys processed in %.1f s (%.0f chunks/s); RocksDB on disk %d B = " + "%d B per key; ",
                        keys, processSeconds, keys / processSeconds, rocksBytes, rocksBytes / keys));

                JsonNode full = awaitCheckpointAfter(cluster, jobId, System.currentTimeMillis());
                report.append("first checkpoint holding all keys: ")
                        .append(describe(full))
                        .append(String.format(
                                " (the periodic checkpoints while the keys arrived uploaded the rest; checkpoint directory "
                                        + "%d B); ",
                                bytesUnder(work.resolve("checkpoints"), "")));

                // 1% of the keys change: what the checkpoints after that upload
                long baseline = full.path("id").asLong();
                t0 = System.nanoTime();
                ClusterSupport.produce(kafka, more, 0, new AtomicInteger());
                awaitRead(cluster, jobId, open.size() + more.size(), Duration.ofMinutes(30));
                report.append(String.format("%d keys advanced in %.1f s; ", more.size(), seconds(t0)));
                JsonNode last = awaitCheckpointAfter(cluster, jobId, System.currentTimeMillis());
                long uploaded = 0;
                long longest = 0;
                int count = 0;
                for (JsonNode h : cluster.get("/jobs/" + jobId + "/checkpoints").path("history")) {
                    long id = h.path("id").asLong();
                    if (id > baseline
                            && id <= last.path("id").asLong()
                            && h.path("status").asText().equals("COMPLETED")) {
                        uploaded += h.path("checkpointed_size").asLong();
                        longest =
                                Math.max(longest, h.path("end_to_end_duration").asLong());
                        count++;
                    }
                }
                report.append(String.format(
                        "checkpoints after 1%% changed: %d, uploading %d B in all, the longest " + "%d ms; ",
                        count, uploaded, longest));

                t0 = System.nanoTime();
                String savepoint = cluster.stopWithSavepoint(jobId, work.resolve("savepoints"), Duration.ofMinutes(60));
                cluster.awaitJobState(jobId, "FINISHED", Duration.ofMinutes(5));
                jobId = null;
                double savepointSeconds = seconds(t0);
                long savepointBytes = bytesUnder(Path.of(URI.create(savepoint)), "");
                report.append(String.format(
                        "savepoint (stop with savepoint) %.1f s, %d B; ", savepointSeconds, savepointBytes));

                t0 = System.nanoTime();
                jobId = submit(bin, env, kafka, model, savepoint);
                cluster.awaitRunning(jobId, Duration.ofMinutes(30));
                double runningSeconds = seconds(t0);
                JsonNode afterRestore = awaitCheckpointAfter(cluster, jobId, System.currentTimeMillis());
                report.append(String.format(
                        "restore from the savepoint: every task RUNNING %.1f s after submit, a "
                                + "checkpoint completed %.1f s after submit (%s); ",
                        runningSeconds, seconds(t0), describe(afterRestore)));

                // a restore from a retained incremental checkpoint (RocksDB's native format), not from a savepoint
                String retained = afterRestore.path("external_path").asText();
                assertTrue(!retained.isEmpty(), "the completed checkpoint is retained: " + afterRestore);
                cluster.cancel(jobId);
                cluster.awaitJobState(jobId, "CANCELED", Duration.ofMinutes(5));
                jobId = null;
                long retainedBytes = bytesUnder(work.resolve("checkpoints"), "");
                t0 = System.nanoTime();
                jobId = submit(bin, env, kafka, model, retained);
                cluster.awaitRunning(jobId, Duration.ofMinutes(30));
                runningSeconds = seconds(t0);
                JsonNode afterCheckpointRestore = awaitCheckpointAfter(cluster, jobId, System.currentTimeMillis());
                report.append(String.format(
                        "restore from the retained incremental checkpoint (checkpoint directory "
                                + "%d B): every task RUNNING %.1f s after submit, a checkpoint completed %.1f s after submit "
                                + "(%s); ",
                        retainedBytes, runningSeconds, seconds(t0), describe(afterCheckpointRestore)));

                ClusterSupport.produce(kafka, ends, 0, new AtomicInteger());
                ClusterSupport.awaitCommittedWhileProgressing(
                        kafka, "embeddings", sample.size(), Duration.ofSeconds(180));
                embeddings = ClusterSupport.readCommittedUntil(kafka, "embeddings", Integer.MAX_VALUE, Duration.ZERO);
                List<ConsumerRecord<byte[], byte[]>> deadLetters =
                        ClusterSupport.readCommittedUntil(kafka, "dead-letters", Integer.MAX_VALUE, Duration.ZERO);
                assertEquals(0, deadLetters.size(), "no dead letters");
            } catch (Throwable t) {
                System.err.println(ClusterSupport.logTails(work));
                throw t;
            } finally {
                if (jobId != null) {
                    cluster.cancel(jobId);
                }
                ClusterSupport.run(bin.resolve("cluster.sh"), env, Duration.ofSeconds(120), "stop");
            }
        }
        ClusterSupport.Outcome o = ClusterSupport.compare(embeddings, sample, model.model(), model.vocab());
        System.out.printf(
                "load test: %d keys; %s%d sample documents ended: %d embeddings, %d missing, %d duplicated, "
                        + "%d not bit-identical; %.1f s%n",
                keys,
                report,
                sample.size(),
                embeddings.size(),
                o.missing(),
                o.duplicated(),
                o.mismatched(),
                seconds(started));
        assertEquals(0, o.missing(), "missing embeddings");
        assertEquals(0, o.duplicated(), "duplicated embeddings");
        assertEquals(0, o.mismatched(), "embeddings not bit for bit the one-shot embedding");
        assertEquals(sample.size(), embeddings.size(), "one embedding per ended document");
        deleteUnder(work.resolve("checkpoints"));
        deleteUnder(work.resolve("savepoints"));
    }

    private static ProducerRecord<byte[], byte[]> record(
            AvroCodec<DocumentChunk> codec, String key, int seq, String text, boolean last) throws IOException {
        DocumentChunk chunk = DocumentChunk.newBuilder()
                .setKey(key)
                .setSeq(seq)
                .setText(text)
                .setLast(last)
                .setEventTime(Instant.ofEpochMilli(1_700_000_000_000L + seq))
                .build();
        return new ProducerRecord<>("chunks", key.getBytes(StandardCharsets.UTF_8), codec.encodeSingleObject(chunk));
    }

    /**
     * The model the load runs: rwkv.cpp's tiny RWKV-7 (byte tokenizer), or with {@code -Drwkv.load.model=0.1b}
     * random weights of the RWKV-7 0.1B shape (seed 1, fp16 matrices) written once as an rwkv.cpp file beside the
     * work directory, so the TaskManagers memory-map it like a real model, with the World vocabulary, and batches
     * of at most {@code maxBatchKeys} keys (its 2.4 MB states must fit the TaskManagers' heaps).
     */
    record ModelFiles(Path model, Path vocab, String maxBatchKeys) {
        static ModelFiles random01b(Path work) throws IOException {
            Path file = work.resolveSibling("random-rwkv7-0.1b-F16-seed1.bin");
            if (!Files.isRegularFile(file)) {
                Files.createDirectories(file.getParent());
                Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
                try (var w = RandomModels.rwkv7(RandomModels.Rwkv7Shape.RWKV7_0_1B, 1, WeightType.F16)) {
                    RwkvCppWriter.write(w, tmp);
                }
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
            Path vocab = Path.of(
                            System.getProperty("rwkv.shared.dir", "../../../shared"),
                            "reference",
                            "rwkv_vocab_v20230424.txt")
                    .toAbsolutePath()
                    .normalize();
            Assumptions.assumeTrue(Files.isRegularFile(vocab), "World vocabulary absent, skipping: " + vocab);
            return new ModelFiles(file, vocab, "32");
        }
    }

    private static String submit(
            Path bin, Map<String, String> env, EmbeddedKafka kafka, ModelFiles model, String savepoint)
            throws Exception {
        Map<String, String> submitEnv = new HashMap<>(env);
        if (savepoint != null) {
            submitEnv.put("RWKV_SUBMIT_OPTS", "-s " + savepoint);
        }
        List<String> args = new ArrayList<>(ClusterSupport.submitArgs(
                kafka,
                "load-it",
                "--starting-offsets",
                "earliest",
                "--model",
                model.model().toString(),
                "--checkpoint-interval-ms",
                "30000",
                "--max-wait-ms",
                "20",
                "--parallelism",
                "2"));
        if (model.vocab() != null) {
            args.addAll(List.of("--vocab", model.vocab().toString(), "--max-batch-keys", model.maxBatchKeys()));
        }
        String out = ClusterSupport.run(
                bin.resolve("submit.sh"), submitEnv, Duration.ofSeconds(120), args.toArray(String[]::new));
        Matcher m = JOB_ID.matcher(out);
        assertTrue(m.find(), "submit.sh prints the JobID: " + out);
        return m.group(1);
    }

    /** Waits until the RWKV vertex has read {@code count} records (REST read-records, summed over subtasks). */
    private static void awaitRead(ClusterSupport cluster, String jobId, long count, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            long read = 0;
            for (JsonNode v : cluster.get("/jobs/" + jobId).path("vertices")) {
                if (v.path("name").asText().toLowerCase(Locale.ROOT).contains("rwkv")) {
                    read = v.path("metrics").path("read-records").asLong();
                }
            }
            if (read >= count) {
                return;
            }
            assertTrue(System.nanoTime() < deadline, "the RWKV vertex read " + read + " of " + count);
            Thread.sleep(1_000);
        }
    }

    /** The first checkpoint triggered after {@code wallMillis} to complete (its REST details). */
    private static JsonNode awaitCheckpointAfter(ClusterSupport cluster, String jobId, long wallMillis)
            throws Exception {
        long deadline = System.nanoTime() + Duration.ofMinutes(60).toNanos();
        while (System.nanoTime() < deadline) {
            JsonNode latest = cluster.get("/jobs/" + jobId + "/checkpoints")
                    .path("latest")
                    .path("completed");
            if (!latest.isMissingNode()
                    && !latest.isNull()
                    && latest.path("trigger_timestamp").asLong() >= wallMillis) {
                return latest;
            }
            Thread.sleep(1_000);
        }
        throw new AssertionError("no checkpoint completed within 60 min");
    }

    private static String describe(JsonNode checkpoint) {
        return String.format(
                "id %d, checkpointed %d B of %d B state, %d ms end to end",
                checkpoint.path("id").asLong(),
                checkpoint.path("checkpointed_size").asLong(),
                checkpoint.path("state_size").asLong(),
                checkpoint.path("end_to_end_duration").asLong());
    }

    /** Bytes of the regular files under {@code dir} whose path contains {@code part}. */
    private static long bytesUnder(Path dir, String part) throws IOException {
        if (!Files.isDirectory(dir)) {
            return 0;
        }
        try (Stream<Path> files = Files.walk(dir)) {
            return files.filter(Files::isRegularFile)
                    .filter(p -> p.toString().contains(part))
                    .mapToLong(p -> {
                        try {
                            return Files.size(p);
                        } catch (IOException e) {
                            return 0; // deleted meanwhile (compaction)
                        }
                    })
                    .sum();
        }
    }

    private static void deleteUnder(Path dir) throws IOException {
        if (Files.isDirectory(dir)) {
            try (Stream<Path> files = Files.walk(dir)) {
                files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    private static double seconds(long nanoStart) {
        return (System.nanoTime() - nanoStart) / 1e9;
    }
}
