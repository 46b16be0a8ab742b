package dev.rwkvflink.jobs.cli;

import dev.rwkvflink.jobs.Settings;
import dev.rwkvflink.kafka.AvroCodec;
import dev.rwkvflink.kafka.ChunkDeserializer;
import dev.rwkvflink.kafka.Decoded;
import dev.rwkvflink.kafka.RecordFormat;
import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.Schemas;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Labelled documents from a Kafka topic of {@link DocumentChunk} records, the product's input format: what
 * {@code fit --topic} trains on.
 *
 * <p>The topic is read from the earliest offsets up to the end offsets taken when reading starts, committed records
 * only ({@code isolation.level=read_committed}), without a consumer group (nothing is committed). Every record is
 * decoded as the embed job decodes it ({@link ChunkDeserializer}); chunks are reassembled per key in seq order:
 * <ul>
 *   <li>a document is complete when it has a {@code last} chunk and every seq from 0 up to it;</li>
 *   <li>a repeated seq with the same content is a duplicate and dropped; with other content the document is
 *       skipped (which one is right cannot be told);</li>
 *   <li>its label is the attribute {@code labelAttribute} (default {@code label}) of its chunks; chunks without it
 *       are fine, chunks that disagree make the document skipped, a document without any label is skipped;</li>
 *   <li>its text is its chunks' texts joined, or its token ids joined when the chunks carry token ids (mixing both
 *       skips the document).</li>
 * </ul>
 * Documents come out ordered by key, so the training/held-out split does not depend on partitioning. Everything
 * skipped (undecodable records, incomplete, unlabelled or inconsistent documents) is reported with its reason on
 * {@code err}.
 */
final class LabelledTopic {

    /** How many skipped items are named on stderr per kind, before "... and N more". */
    static final int NAMED = 10;

    private LabelledTopic() {}

    /**
     * Reads the topic and returns its complete, labelled documents by key.
     *
     * @throws IllegalArgumentException when the topic does not exist or holds no complete labelled document
     * @throws IllegalStateException when the end offsets are not reached within {@code timeout}
     */
    static List<FitCommand.Example> read(
            String bootstrapServers,
            String topic,
            RecordFormat format,
            String registryUrl,
            String labelAttribute,
            Map<String, String> kafkaProperties,
            Duration timeout,
            PrintWriter err) {
        Schemas.trustGeneratedClasses();
        Properties p = new Properties();
        kafkaProperties.forEach((k, v) -> {
            Map.Entry<String, String> e = Settings.kafkaProperty(k, v);
            p.put(e.getKey(), e.getValue());
        });
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        ChunkDeserializer decoder =
                new ChunkDeserializer(format, AvroCodec.forTopic(DocumentChunk.class, topic, format, registryUrl));
        TreeMap<String, Document> documents = new TreeMap<>();
        List<String> malformed = new ArrayList<>();
        long records = 0;
        long duplicates = 0;
        long deadline = System.nanoTime() + timeout.toNanos();
        try (KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<PartitionInfo> infos = consumer.partitionsFor(topic, timeout);
            if (infos == null || infos.isEmpty()) {
                throw new IllegalArgumentException("topic " + topic + " does not exist on " + bootstrapServers);
            }
            List<TopicPartition> partitions = infos.stream()
                    .map(info -> new TopicPartition(topic, info.partition()))
                    .toList();
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> end = consumer.endOffsets(partitions, timeout);
            while (partitions.stream().anyMatch(tp -> consumer.position(tp, timeout) < end.get(tp))) {
                if (System.nanoTime() > deadline) {
                    StringBuilder at = new StringBuilder();
                    partitions.forEach(tp -> at.append(' ')
                            .append(tp.partition())
                            .append(": ")
                            .append(consumer.position(tp))
                            .append('/')
                            .append(end.get(tp)));
                    throw new IllegalStateException("timed out after " + timeout.toSeconds() + " s reading " + topic
                            + " to its end offsets (partition: position/end" + at + ")");
                }
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    if (record.offset() >= end.get(new TopicPartition(record.topic(), record.partition()))) {
                        continue; // written after reading started
                    }
                    records++;
                    Decoded decoded = decoder.decode(record);
                    if (!decoded.isChunk()) {
                        malformed.add("partition " + record.partition() + " offset " + record.offset() + ": "
                                + decoded.deadLetter().getReason());
                        continue;
                    }
                    DocumentChunk chunk = decoded.chunk();
                    if (!documents
                            .computeIfAbsent(chunk.getKey(), k -> new Document())
                            .add(chunk)) {
                        duplicates++;
                    }
                }
            }
            Map<Integer, Long> endByPartition = new TreeMap<>(end.entrySet().stream()
                    .collect(Collectors.toMap(e -> e.getKey().partition(), Map.Entry::getValue)));
            err.printf("read %d records from %s (end offsets by partition %s)%n", records, topic, endByPartition);
        }

        List<FitCommand.Example> examples = new ArrayList<>();
        List<String> incomplete = new ArrayList<>();
        List<String> unlabelled = new ArrayList<>();
        List<String> inconsistent = new ArrayList<>();
        documents.forEach((key, doc) -> {
            String problem = doc.problem();
            if (problem != null) {
                inconsistent.add(key + " (" + problem + ")");
                return;
            }
            String missing = doc.missing();
            if (missing != null) {
                incomplete.add(key + " (" + missing + ")");
                return;
            }
            TreeSet<String> labels = new TreeSet<>();
            doc.chunks.values().forEach(c -> {
                String label = c.getAttributes().get(labelAttribute);
                if (label != null) {
                    labels.add(label);
                }
            });
            if (labels.isEmpty()) {
                unlabelled.add(key);
            } else if (labels.size() > 1) {
                inconsistent.add(key + " (chunks disagree on the label: " + labels + ")");
            } else {
                examples.add(doc.example(labels.first()));
            }
        });
        err.printf("%d complete labelled documents; %d duplicate chunks dropped%n", examples.size(), duplicates);
        report(err, malformed, "undecodable records skipped");
        report(err, incomplete, "incomplete documents skipped");
        report(err, unlabelled, "documents without a '" + labelAttribute + "' attribute skipped");
        report(err, inconsistent, "inconsistent documents skipped");
        if (examples.isEmpty()) {
            throw new IllegalArgumentException("topic " + topic + " holds no complete document labelled by the '"
                    + labelAttribute + "' attribute (" + records + " records read)");
        }
        return examples;
    }

    private static void report(PrintWriter err, List<String> items, String what) {
        if (items.isEmpty()) {
            return;
        }
        err.printf(
                "%d %s: %s%s%n",
                items.size(),
                what,
                String.join(", ", items.subList(0, Math.min(NAMED, items.size()))),
                items.size() > NAMED ? " ... and " + (items.size() - NAMED) + " more" : "");
    }

    /** The chunks of one key seen so far. */
    private static final class Document {
        final TreeMap<Long, DocumentChunk> chunks = new TreeMap<>();
        String problem;

        /** Adds a chunk; false for a duplicate (same seq, same content). */
        boolean add(DocumentChunk chunk) {
            if (chunk.getSeq() < 0) {
                problem = "negative seq " + chunk.getSeq();
                return true;
            }
            if ((chunk.getText() == null) == (chunk.getTokens() == null)) {
                problem = "seq " + chunk.getSeq() + " has " + (chunk.getText() == null ? "neither" : "both")
                        + " text and tokens";
                return true;
            }
            DocumentChunk before = chunks.putIfAbsent(chunk.getSeq(), chunk);
            if (before == null) {
                return true;
            }
            if (!sameContent(before, chunk)) {
                problem = "two different chunks with seq " + chunk.getSeq();
            }
            return false;
        }

        private static boolean sameContent(DocumentChunk a, DocumentChunk b) {
            return Objects.equals(a.getText(), b.getText())
                    && Objects.equals(a.getTokens(), b.getTokens())
                    && a.getLast() == b.getLast();
        }

        String problem() {
            if (problem != null) {
                return problem;
            }
            List<Long> lasts = chunks.values().stream()
                    .filter(DocumentChunk::getLast)
                    .map(DocumentChunk::getSeq)
                    .toList();
            if (lasts.size() > 1) {
                return "several last chunks: seq " + lasts;
            }
            if (lasts.size() == 1 && chunks.lastKey() > lasts.getFirst()) {
                return "seq " + chunks.lastKey() + " after the last chunk (seq " + lasts.getFirst() + ")";
            }
            long texts =
                    chunks.values().stream().filter(c -> c.getText() != null).count();
            if (texts != 0 && texts != chunks.size()) {
                return "text and token-id chunks mixed";
            }
            return null;
        }

        /** Why the document is not complete, or null. */
        String missing() {
            if (!chunks.lastEntry().getValue().getLast()) {
                return "no last chunk; has seq "
                        + chunks.keySet().stream().limit(NAMED).toList() + (chunks.size() > NAMED ? "..." : "");
            }
            List<Long> gaps = new ArrayList<>();
            for (long seq = 0; seq < chunks.lastKey() && gaps.size() < 5; seq++) {
                if (!chunks.containsKey(seq)) {
                    gaps.add(seq);
                }
            }
            return gaps.isEmpty() ? null : "missing seq " + gaps + (gaps.size() == 5 ? "..." : "");
        }

        FitCommand.Example example(String label) {
            if (chunks.firstEntry().getValue().getText() != null) {
                StringBuilder text = new StringBuilder();
                chunks.values().forEach(c -> text.append(c.getText()));
                return new FitCommand.Example(text.toString(), null, label);
            }
            int[] tokens = chunks.values().stream()
                    .flatMap(c -> c.getTokens().stream())
                    .mapToInt(Integer::intValue)
                    .toArray();
            return new FitCommand.Example(null, tokens, label);
        }
    }
}
