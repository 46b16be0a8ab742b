package dev.rwkvflink.jobs.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.rwkvflink.engine.backend.Backends;
import dev.rwkvflink.engine.embed.Embedder;
import dev.rwkvflink.engine.embed.EmbeddingStats;
import dev.rwkvflink.engine.embed.LinearHead;
import dev.rwkvflink.engine.embed.Pooling;
import dev.rwkvflink.engine.embed.SoftmaxTrainer;
import dev.rwkvflink.engine.format.InputFiles;
import dev.rwkvflink.engine.model.ModelSources;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tokenizer.Tokenizer;
import dev.rwkvflink.engine.tokenizer.Tokenizers;
import dev.rwkvflink.jobs.Settings;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * Trains a classification head from labelled text: embeds every text in one engine call, collects per-channel
 * normalisation statistics on the training split, trains a softmax head on the normalised embeddings and reports
 * held-out accuracy. The statistics and head files are what the operator's {@code stats} and {@code head}
 * settings read.
 *
 * <p>Labelled text comes from a JSONL file ({@code --data}) or from a Kafka topic of DocumentChunk records with the
 * label in an attribute ({@code --topic}, see {@link LabelledTopic}). Examples keep the file's order, or the key
 * order for a topic; a seeded shuffle of that order picks the held-out ones ({@link #split}).
 */
@Command(
        name = "fit",
        mixinStandardHelpOptions = true,
        description = {
            "Train a classification head (and normalisation statistics) from labelled text: JSONL "
                    + "{\"text\", \"label\"} lines (--data), or DocumentChunk records on a Kafka topic whose chunks "
                    + "carry the label in an attribute (--topic; reassembled per key in seq order, read from the "
                    + "earliest to the end offsets, committed records only)."
        })
final class FitCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", paramLabel = "FILE", description = "Model file; default: the built-in demo model.")
    String model;

    @Option(names = "--vocab", paramLabel = "FILE", description = "Vocabulary (not needed for byte-level models).")
    Path vocab;

    @Mixin
    BackendOption backend = new BackendOption();

    @Option(
            names = "--data",
            paramLabel = "FILE",
            description = "JSONL, one {\"text\": ..., \"label\": ...} per line. Exactly one of --data and --topic.")
    Path data;

    @Option(
            names = "--topic",
            paramLabel = "TOPIC",
            description = "Kafka topic of DocumentChunk records (Avro, as the embed job reads them) to train on; "
                    + "needs --bootstrap-servers.")
    String topic;

    @Option(
            names = "--bootstrap-servers",
            paramLabel = "HOST:PORT[,...]",
            description = "Kafka brokers (with --topic).")
    String bootstrapServers;

    @Option(
            names = "--label-attribute",
            defaultValue = "label",
            paramLabel = "NAME",
            description = "The chunk attribute holding a document's label (with --topic). Default: ${DEFAULT-VALUE}.")
    String labelAttribute;

    @Mixin
    FormatOptions format = new FormatOptions();

    @Option(
            names = "--kafka-property",
            paramLabel = "KEY=VALUE",
            description = "A Kafka consumer property, e.g. security.protocol=SASL_SSL (with --topic; repeatable).")
    List<String> kafkaProperties = new ArrayList<>();

    @Option(
            names = "--read-timeout",
            defaultValue = "120",
            paramLabel = "SECONDS",
            description = "Give up if the topic's end offsets are not reached by then. Default: ${DEFAULT-VALUE}.")
    long readTimeoutSeconds;

    @Mixin
    PoolingOption pooling = new PoolingOption();

    @Option(names = "--out", required = true, paramLabel = "FILE", description = "Where to write the head (JSON).")
    Path out;

    @Option(names = "--stats-out", paramLabel = "FILE", description = "Where to write the normalisation statistics.")
    Path statsOut;

    @Option(
            names = "--holdout",
            defaultValue = "0.2",
            description = "Fraction held out for accuracy. Default: ${DEFAULT-VALUE}.")
    double holdout;

    @Option(
            names = "--epochs",
            paramLabel = "N",
            description = "Passes over the training examples. Default: " + SoftmaxTrainer.DEFAULT_FULL_BATCH_EPOCHS
                    + " full-batch steps for small problems, else " + SoftmaxTrainer.DEFAULT_MINI_BATCH_EPOCHS
                    + " epochs of mini-batches.")
    Integer epochs;

    @Option(
            names = "--batch-size",
            paramLabel = "N",
            description = "Examples per Adam step; 0: all (full batch). Default: full batch for small problems, "
                    + "else " + SoftmaxTrainer.DEFAULT_BATCH + " (see --max-train-work).")
    Integer batchSize;

    @Option(
            names = "--negatives",
            paramLabel = "N",
            description = "With mini-batches, labels sampled per step besides the batch's own (0: all labels). "
                    + "Default: " + SoftmaxTrainer.DEFAULT_NEGATIVES + ".")
    Integer negatives;

    @Option(
            names = "--max-train-work",
            defaultValue = "3e11",
            paramLabel = "MACS",
            description = "Refuse a training plan of more multiply-adds than this (about 1e9 per second on one "
                    + "core). Default: ${DEFAULT-VALUE}.")
    double maxTrainWork;

    @Mixin
    ProgressOption progress = new ProgressOption();

    @Option(names = "--lr", defaultValue = "0.05", description = "Adam learning rate. Default: ${DEFAULT-VALUE}.")
    double learningRate;

    @Option(
            names = "--l2",
            defaultValue = "1e-4",
            description = "L2 penalty on the weights. Default: ${DEFAULT-VALUE}.")
    double l2;

    @Option(
            names = "--seed",
            defaultValue = "1",
            description = "Seed of the train/held-out split, the mini-batch order and the sampled labels. "
                    + "Default: ${DEFAULT-VALUE}.")
    long seed;

    /** A labelled text, or labelled token ids (from a topic whose chunks carry token ids). */
    record Example(String text, int[] tokens, String label) {
        Example(String text, String label) {
            this(text, null, label);
        }
    }

    @Override
    public Integer call() throws Exception {
        if (!(holdout >= 0 && holdout < 1)) { // written so that NaN fails too
            throw new IllegalArgumentException("--holdout must be in [0, 1), got " + holdout);
        }
        if (!(learningRate > 0) || Double.isInfinite(learningRate)) {
            throw new IllegalArgumentException("--lr must be a finite number > 0, got " + learningRate);
        }
        if (!(l2 >= 0) || Double.isInfinite(l2)) {
            throw new IllegalArgumentException("--l2 must be a finite number >= 0, got " + l2);
        }
        if (epochs != null && epochs < 1) {
            throw new IllegalArgumentException("--epochs must be >= 1, got " + epochs);
        }
        if (batchSize != null && batchSize < 0) {
            throw new IllegalArgumentException("--batch-size must be >= 0, got " + batchSize);
        }
        if (negatives != null && negatives < 0) {
            throw new IllegalArgumentException("--negatives must be >= 0, got " + negatives);
        }
        if (!(maxTrainWork >= 1)) {
            throw new IllegalArgumentException("--max-train-work must be a number >= 1, got " + maxTrainWork);
        }
        PrintWriter stdout = spec.commandLine().getOut();
        PrintWriter stderr = spec.commandLine().getErr();
        List<Example> examples = examples(stderr);
        String source = data != null ? data.toString() : "topic " + topic;
        List<String> labels = new ArrayList<>(
                new TreeSet<>(examples.stream().map(Example::label).toList()));
        if (labels.size() < 2) {
            throw new IllegalArgumentException(source + ": needs at least two different labels, found " + labels);
        }
        Map<String, Integer> labelIndex = new HashMap<>();
        for (String label : labels) {
            labelIndex.put(label, labelIndex.size());
        }
        try (RwkvModel m = ModelSources.open(model, Backends.byName(backend.name))) {
            Tokenizer tok = Tokenizers.forModel(m.config().vocab(), vocab);
            Pooling p = Pooling.parse(pooling.name);
            Embedder raw = new Embedder(m.config(), p, null);
            int trainCount = examples.size() - (int) Math.round(examples.size() * holdout);
            if (trainCount < 1) {
                throw new IllegalArgumentException(source + ": " + examples.size() + " examples leave none to train on"
                        + " with --holdout " + holdout);
            }
            SoftmaxTrainer.Plan plan = plan(trainCount, labels.size(), raw.dimension());
            checkAffordable(source, plan, examples.size(), raw.dimension());
            TerminalProgress shown = progress.on(System.err);
            long start = System.nanoTime();
            float[][] pooled = new float[examples.size()][];
            for (int i = 0; i < pooled.length; i++) {
                shown.update("embedding example " + (i + 1) + " of " + pooled.length);
                Example example = examples.get(i);
                int[] ids = example.tokens() != null
                        ? example.tokens()
                        : tok.encodeBytes(example.text().getBytes(StandardCharsets.UTF_8));
                if (ids.length == 0) {
                    throw new IllegalArgumentException(source + ": example " + (i + 1) + " has no tokens");
                }
                for (int id : ids) {
                    if (id < 0 || id >= m.config().vocab()) {
                        throw new IllegalArgumentException(source + ": example " + (i + 1) + " has token id " + id
                                + " outside the model's vocabulary [0, "
                                + m.config().vocab() + ")");
                    }
                }
                RwkvState s = m.newState();
                pooled[i] = raw.pool(m.hidden(s, ids), s);
            }
            shown.done();
            stderr.printf("embedded %d texts in %.1f s%n", pooled.length, (System.nanoTime() - start) / 1e9);

            boolean[] test = split(pooled.length, holdout, seed);
            EmbeddingStats stats = new EmbeddingStats(m.fingerprint(), raw.pooling(), raw.dimension());
            for (int i = 0; i < pooled.length; i++) {
                if (!test[i]) {
                    stats.add(pooled[i]);
                }
            }
            Embedder embedder = new Embedder(m.config(), p, stats);
            List<float[]> trainX = new ArrayList<>();
            List<float[]> testX = new ArrayList<>();
            List<Integer> trainY = new ArrayList<>();
            List<Integer> testY = new ArrayList<>();
            for (int i = 0; i < pooled.length; i++) {
                float[] e = embedder.finish(pooled[i]);
                int y = labelIndex.get(examples.get(i).label());
                (test[i] ? testX : trainX).add(e);
                (test[i] ? testY : trainY).add(y);
            }
            stderr.printf("training: %s (%.2g multiply-adds)%n", plan.describe(), (double) plan.work());
            long trainStart = System.nanoTime();
            LinearHead head = new SoftmaxTrainer(learningRate, l2, seed)
                    .fit(
                            plan,
                            trainX.toArray(float[][]::new),
                            trainY.stream().mapToInt(Integer::intValue).toArray(),
                            labels,
                            m.fingerprint(),
                            raw.pooling(),
                            epoch -> shown.update("training epoch " + epoch + " of " + plan.epochs()));
            shown.done();
            stderr.printf("trained in %.1f s%n", (System.nanoTime() - trainStart) / 1e9);
            head.save(out);
            if (statsOut != null) {
                stats.save(statsOut);
            }
            // accuracy costs examples x labels x dimension: with many of both it is measured on a seeded sample
            Sample trainSample = Sample.of(trainX, trainY, seed);
            Sample testSample = Sample.of(testX, testY, seed + 1);
            double trainAcc = SoftmaxTrainer.accuracy(head, trainSample.x(), trainSample.y());
            double testAcc = SoftmaxTrainer.accuracy(head, testSample.x(), testSample.y());
            stdout.printf(
                    Locale.ROOT,
                    "labels %s; %d training, %d held out; training accuracy %.3f%s, held-out " + "accuracy %s%n",
                    labelList(labels),
                    trainX.size(),
                    testX.size(),
                    trainAcc,
                    trainSample.of(trainX.size()),
                    testX.isEmpty()
                            ? "n/a"
                            : String.format(Locale.ROOT, "%.3f", testAcc) + testSample.of(testX.size()));
            stdout.printf("head written to %s%s%n", out, statsOut != null ? ", statistics to " + statsOut : "");
            return 0;
        }
    }

    /** Examples scored for accuracy at most (scoring costs examples x labels x dimension multiply-adds). */
    static final int ACCURACY_SAMPLE = 10_000;

    /** At most {@link #ACCURACY_SAMPLE} examples of a split, drawn by a seeded shuffle when there are more. */
    record Sample(float[][] x, int[] y) {
        static Sample of(List<float[]> x, List<Integer> y, long seed) {
            int[] pick = new int[x.size()];
            Arrays.setAll(pick, i -> i);
            if (pick.length > ACCURACY_SAMPLE) {
                SplittableRandom rnd = new SplittableRandom(seed);
                for (int i = 0; i < ACCURACY_SAMPLE; i++) {
                    int j = i + rnd.nextInt(pick.length - i);
                    int t = pick[i];
                    pick[i] = pick[j];
                    pick[j] = t;
                }
                pick = Arrays.copyOf(pick, ACCURACY_SAMPLE);
            }
            float[][] xs = new float[pick.length][];
            int[] ys = new int[pick.length];
            for (int i = 0; i < pick.length; i++) {
                xs[i] = x.get(pick[i]);
                ys[i] = y.get(pick[i]);
            }
            return new Sample(xs, ys);
        }

        /** " (on N of M)" when this is a sample, else nothing. */
        String of(int total) {
            return x.length < total ? " (on " + x.length + " of " + total + ")" : "";
        }
    }

    /** The labels, or their count and the first ten when there are many. */
    static String labelList(List<String> labels) {
        if (labels.size() <= 20) {
            return labels.toString();
        }
        return labels.size() + " " + labels.subList(0, 10).toString().replace("]", ", ...]");
    }

    /** The training plan: the options' batch size and negatives, or the automatic plan of this problem's size. */
    SoftmaxTrainer.Plan plan(int trainExamples, int labelCount, int dim) {
        if (batchSize == null && negatives == null) {
            return epochs == null
                    ? SoftmaxTrainer.Plan.auto(trainExamples, labelCount, dim)
                    : SoftmaxTrainer.Plan.auto(epochs, trainExamples, labelCount, dim);
        }
        int batch = batchSize != null ? batchSize : SoftmaxTrainer.DEFAULT_BATCH;
        int sampled = negatives != null ? negatives : SoftmaxTrainer.DEFAULT_NEGATIVES;
        int passes = epochs != null ? epochs : SoftmaxTrainer.Plan.defaultEpochs(batch == 0 || batch >= trainExamples);
        return new SoftmaxTrainer.Plan(passes, batch, sampled, trainExamples, labelCount, dim);
    }

    /**
     * Refuses, before anything is embedded, a plan whose training would take more than --max-train-work
     * multiply-adds or whose weights, moments and embeddings would not fit the heap, saying what to change.
     */
    private void checkAffordable(String source, SoftmaxTrainer.Plan plan, int exampleCount, int dim) {
        if (plan.work() > maxTrainWork) {
            throw new IllegalArgumentException(String.format(
                    Locale.ROOT,
                    "%s: training %d examples over %d labels "
                            + "(dimension %d; %s) takes %.2g multiply-adds, more than --max-train-work %.2g (about %.0f min "
                            + "at 1e9/s): use fewer --epochs%s, or raise --max-train-work",
                    source,
                    plan.examples(),
                    plan.labels(),
                    dim,
                    plan.describe(),
                    (double) plan.work(),
                    maxTrainWork,
                    plan.work() / 1e9 / 60,
                    plan.fullBatch()
                            ? ", mini-batches with sampled labels (--batch-size 256 --negatives 256)"
                            : ", fewer --negatives or a smaller --batch-size"));
        }
        Runtime rt = Runtime.getRuntime();
        long embeddings = 2L * exampleCount * dim * Float.BYTES; // pooled and normalised copies
        long needed = plan.memoryBytes() + embeddings;
        long available = rt.maxMemory() - (rt.totalMemory() - rt.freeMemory());
        if (needed > available) {
            throw new IllegalArgumentException(String.format(
                    Locale.ROOT,
                    "%s: training %d examples over %d labels "
                            + "(dimension %d) needs about %d MiB of heap (weights and Adam moments %d MiB, embeddings %d MiB),"
                            + " %d MiB are available: give the JVM more (RWKV_JAVA_OPTS=-Xmx...) or use fewer labels",
                    source,
                    exampleCount,
                    plan.labels(),
                    dim,
                    needed >> 20,
                    plan.memoryBytes() >> 20,
                    embeddings >> 20,
                    available >> 20));
        }
    }

    /** The labelled examples from --data or --topic (exactly one), with the options checked. */
    private List<Example> examples(PrintWriter err) throws IOException {
        if ((data == null) == (topic == null)) {
            throw new IllegalArgumentException("give exactly one of --data FILE and --topic TOPIC");
        }
        if (data != null) {
            if (bootstrapServers != null || !kafkaProperties.isEmpty()) {
                throw new IllegalArgumentException(
                        "--bootstrap-servers and --kafka-property go with --topic, not --data");
            }
            return read(data);
        }
        if (bootstrapServers == null || bootstrapServers.isBlank()) {
            throw new IllegalArgumentException("--topic needs --bootstrap-servers HOST:PORT");
        }
        if (readTimeoutSeconds < 1) {
            throw new IllegalArgumentException("--read-timeout must be >= 1 s, got " + readTimeoutSeconds);
        }
        Map<String, String> properties = new LinkedHashMap<>();
        for (String property : kafkaProperties) {
            Map.Entry<String, String> e = Settings.kafkaProperty(property);
            properties.put(e.getKey(), e.getValue());
        }
        return LabelledTopic.read(
                bootstrapServers,
                topic,
                format.parsed(),
                format.schemaRegistryUrl,
                labelAttribute,
                properties,
                Duration.ofSeconds(readTimeoutSeconds),
                err);
    }

    /**
     * Marks about {@code fraction} of n examples as held out, by a seeded shuffle: {@code round(n * fraction)}
     * examples, the first ones of a Fisher-Yates shuffle of 0..n-1 driven by {@code SplittableRandom(seed)}.
     */
    static boolean[] split(int n, double fraction, long seed) {
        int[] order = new int[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        SplittableRandom rnd = new SplittableRandom(seed);
        for (int i = n - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        boolean[] test = new boolean[n];
        int held = (int) Math.round(n * fraction);
        for (int i = 0; i < held; i++) {
            test[order[i]] = true;
        }
        return test;
    }

    static List<Example> read(Path file) throws IOException {
        ObjectMapper json = new ObjectMapper();
        List<Example> out = new ArrayList<>();
        List<String> lines = new String(
                        InputFiles.read(file, "--data", InputFiles.WHOLE_FILE_BYTES), StandardCharsets.UTF_8)
                .lines()
                .toList();
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i).strip();
            if (line.isEmpty()) {
                continue;
            }
            JsonNode n;
            try {
                n = json.readTree(line);
            } catch (IOException e) {
                throw new IOException(file + " line " + (i + 1) + ": not JSON: "
                        + e.getMessage().lines().findFirst().orElse(""));
            }
            if (!n.path("text").isTextual()
                    || n.path("label").isMissingNode()
                    || n.path("label").isNull()) {
                throw new IOException(file + " line " + (i + 1) + ": needs a string \"text\" and a \"label\"");
            }
            out.add(new Example(n.get("text").asText(), n.get("label").asText()));
        }
        if (out.isEmpty()) {
            throw new IOException(file + ": no examples");
        }
        return out;
    }
}
