package dev.rwkvflink.jobs;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.rwkvflink.engine.format.InputFiles;
import dev.rwkvflink.kafka.AvroCodec;
import dev.rwkvflink.kafka.AvroConversion;
import dev.rwkvflink.kafka.AvroRecordTypeInfo;
import dev.rwkvflink.kafka.DeadLetterSplitter;
import dev.rwkvflink.kafka.KafkaJobs;
import dev.rwkvflink.kafka.RecordFormat;
import dev.rwkvflink.operator.EmbeddingRecord;
import dev.rwkvflink.operator.RejectedChunk;
import dev.rwkvflink.operator.RwkvStreams;
import dev.rwkvflink.operator.TextChunk;
import dev.rwkvflink.schema.Classification;
import dev.rwkvflink.schema.DeadLetter;
import dev.rwkvflink.schema.DocumentChunk;
import dev.rwkvflink.schema.Embedding;
import dev.rwkvflink.schema.Schemas;
import java.io.IOException;
import java.io.Serial;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.DataStreamSink;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * The embedding job: document chunks from Kafka in, embeddings (and, with a head, classes) to Kafka out,
 * exactly once (or, with {@code --delivery at-least-once}, at once and possibly again after a failure).
 *
 * <pre>
 *   chunks topic -> decode (malformed -> dead letters) -> TextChunk -> RWKV embed (keyed by document)
 *       -> Embedding -> embeddings topic
 *       -> Classification -> classifications topic        (only with a head)
 *   operator rejects (bad seq, oversize, late chunk ...) -> dead letters
 *   dead letters (both kinds) -> dead-letters topic
 * </pre>
 *
 * Every operator has a stable uid so checkpoints and savepoints find their state again. Output becomes visible to
 * {@code read_committed} consumers when the checkpoint that covers it completes.
 */
public final class EmbedJob {

    /** Uids of the job's operators (stable: savepoints are matched by them). */
    public static final String SOURCE_UID = "chunks-source";

    public static final String SPLIT_UID = "split-dead-letters";
    public static final String TO_TEXT_CHUNK_UID = "to-text-chunk";
    public static final String EMBEDDINGS_SINK_UID = "embeddings-sink";
    public static final String CLASSIFICATIONS_SINK_UID = "classifications-sink";
    public static final String REJECTED_UID = "rejected-to-dead-letter";
    public static final String DEAD_LETTERS_SINK_UID = "dead-letters-sink";

    private EmbedJob() {}

    /**
     * Runs the job on the environment of the cluster it is submitted to. Settings: the flags ({@link Settings#FLAGS})
     * over the cluster's Flink configuration ({@code config.yaml}, {@code -D} on {@code flink run}), where every
     * {@code rwkv.*} option can be set too.
     */
    public static void main(String[] args) throws Exception {
        Schemas.trustGeneratedClasses();
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        Settings settings = Settings.fromArgs(env.getConfiguration(), args);
        build(env, settings);
        env.execute(jobName(settings));
    }

    /** A readable job name. */
    public static String jobName(Settings s) {
        return (s.classifies() ? "rwkv classify " : "rwkv embed ") + s.chunksTopic() + " -> " + s.embeddingsTopic();
    }

    /**
     * Wires the pipeline into {@code env} (checkpointing and parallelism included); the caller executes it.
     *
     * @return the embeddings sink
     */
    public static DataStreamSink<EmbeddingRecord> build(StreamExecutionEnvironment env, Settings s) throws IOException {
        return build(env, s, chunks -> chunks);
    }

    /**
     * {@link #build(StreamExecutionEnvironment, Settings)} with {@code beforeEmbedding} applied to the decoded chunk
     * stream just before the RWKV operator. For tests that must act inside the running job (e.g. inject a failure
     * after some checkpoints); the function must pass every chunk on unchanged.
     */
    public static DataStreamSink<EmbeddingRecord> build(
            StreamExecutionEnvironment env, Settings s, UnaryOperator<DataStream<TextChunk>> beforeEmbedding)
            throws IOException {
        Schemas.trustGeneratedClasses();
        env.enableCheckpointing(s.checkpointIntervalMillis());
        if (s.parallelism() > 0) {
            env.setParallelism(s.parallelism());
        }
        List<String> labels = s.classifies() ? headLabels(Path.of(s.head())) : List.of();

        var source = KafkaJobs.chunkSourceBuilder(
                s.bootstrapServers(),
                s.chunksTopic(),
                s.groupId(),
                s.format(),
                s.schemaRegistryUrl(),
                KafkaJobs.startingOffsets(s.startingOffsets()));
        s.kafkaProperties().forEach(source::setProperty);
        SingleOutputStreamOperator<DocumentChunk> chunks = env.fromSource(
                        source.build(), WatermarkStrategy.noWatermarks(), "chunks")
                .uid(SOURCE_UID)
                .process(new DeadLetterSplitter())
                .uid(SPLIT_UID)
                .name("split dead letters");

        DataStream<TextChunk> textChunks =
                beforeEmbedding.apply(chunks.map(Records::textChunk, TypeInformation.of(TextChunk.class))
                        .uid(TO_TEXT_CHUNK_UID)
                        .name("to TextChunk"));
        SingleOutputStreamOperator<EmbeddingRecord> records = RwkvStreams.embed(textChunks, s.operatorConfig());

        // The sinks convert to Avro while serialising (no operator between, so no deep copy of each record); with
        // separateSinks they run in a task of their own, so Avro and the producer overlap the model's next batch.
        var embeddingsSink = KafkaJobs.avroSinkBuilder(
                s.bootstrapServers(),
                s.embeddingsTopic(),
                s.transactionalIdPrefix() + "-embeddings",
                s.codec(Embedding.class, s.embeddingsTopic()),
                s.format(),
                new ToEmbedding(),
                Embedding::getKey,
                s.delivery());
        s.kafkaProperties().forEach(embeddingsSink::setProperty);
        DataStreamSink<EmbeddingRecord> embeddings = records.sinkTo(embeddingsSink.build())
                .uid(EMBEDDINGS_SINK_UID)
                .name("embeddings to " + s.embeddingsTopic());
        if (s.separateSinks()) {
            embeddings.disableChaining();
        }

        if (s.classifies()) {
            String head = Path.of(s.head()).getFileName().toString();
            var classesSink = KafkaJobs.avroSinkBuilder(
                    s.bootstrapServers(),
                    s.classificationsTopic(),
                    s.transactionalIdPrefix() + "-classifications",
                    s.codec(Classification.class, s.classificationsTopic()),
                    s.format(),
                    new ToClassification(labels, head),
                    Classification::getKey,
                    s.delivery());
            s.kafkaProperties().forEach(classesSink::setProperty);
            DataStreamSink<EmbeddingRecord> classes = records.filter(r -> r.label != null)
                    .uid("labelled-only")
                    .name("labelled only")
                    .sinkTo(classesSink.build())
                    .uid(CLASSIFICATIONS_SINK_UID)
                    .name("classes to " + s.classificationsTopic());
            if (s.separateSinks()) {
                classes.disableChaining();
            }
        }

        DataStream<DeadLetter> rejected = records.getSideOutput(RwkvStreams.REJECTED)
                .map(new ToDeadLetter(s.chunksTopic(), s.format(), s.codec(DocumentChunk.class, s.chunksTopic())))
                .uid(REJECTED_UID)
                .name("rejected to DeadLetter");
        var deadLettersSink = KafkaJobs.deadLetterSinkBuilder(
                s.bootstrapServers(), s.deadLettersTopic(), s.transactionalIdPrefix() + "-dead-letters", s.delivery());
        s.kafkaProperties().forEach(deadLettersSink::setProperty);
        chunks.getSideOutput(DeadLetterSplitter.DEAD_LETTERS)
                .union(rejected)
                .sinkTo(deadLettersSink.build())
                .uid(DEAD_LETTERS_SINK_UID)
                .name("dead letters to " + s.deadLettersTopic());
        return embeddings;
    }

    /** The labels of a head file (its {@code labels} array, in order), read when the job is built. */
    static List<String> headLabels(Path head) throws IOException {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(InputFiles.read(head, "a head file", InputFiles.SIDE_FILE_BYTES));
        } catch (IOException e) {
            throw new IOException(head + ": not a readable classification head: " + e.getMessage(), e);
        }
        List<String> labels = new ArrayList<>();
        root.path("labels").forEach(label -> labels.add(label.asText()));
        if (labels.isEmpty()) {
            throw new IOException(head + ": the head names no labels");
        }
        return labels;
    }

    /** EmbeddingRecord to the Avro Embedding, in the embeddings sink. */
    static final class ToEmbedding implements AvroConversion<EmbeddingRecord, Embedding> {
        @Serial
        private static final long serialVersionUID = 1L;

        @Override
        public void open() {
            Schemas.trustGeneratedClasses();
        }

        @Override
        public Embedding convert(EmbeddingRecord record) {
            return Records.embedding(record, Instant.now());
        }
    }

    /** A labelled EmbeddingRecord to the Avro Classification, in the classifications sink. */
    static final class ToClassification implements AvroConversion<EmbeddingRecord, Classification> {
        @Serial
        private static final long serialVersionUID = 1L;

        private final ArrayList<String> labels;
        private final String head;

        ToClassification(List<String> labels, String head) {
            this.labels = new ArrayList<>(labels);
            this.head = head;
        }

        @Override
        public void open() {
            Schemas.trustGeneratedClasses();
        }

        @Override
        public Classification convert(EmbeddingRecord record) {
            return Records.classification(record, labels, head, Instant.now());
        }
    }

    /** A chunk the operator rejected to a DeadLetter carrying the chunk re-encoded in the topic's format. */
    static final class ToDeadLetter extends RichMapFunction<RejectedChunk, DeadLetter>
            implements ResultTypeQueryable<DeadLetter> {
        @Serial
        private static final long serialVersionUID = 1L;

        private final String chunksTopic;
        private final RecordFormat format;
        private final AvroCodec<DocumentChunk> codec;

        ToDeadLetter(String chunksTopic, RecordFormat format, AvroCodec<DocumentChunk> codec) {
            this.chunksTopic = chunksTopic;
            this.format = format;
            this.codec = codec;
        }

        @Override
        public void open(OpenContext context) {
            Schemas.trustGeneratedClasses();
        }

        @Override
        public DeadLetter map(RejectedChunk rejected) {
            return Records.deadLetter(rejected, chunksTopic, Records.encode(codec, rejected, format));
        }

        @Override
        public TypeInformation<DeadLetter> getProducedType() {
            return new AvroRecordTypeInfo<>(DeadLetter.class);
        }
    }
}
