package dev.rwkvflink.operator;

import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.lib.NumberSequenceSource;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.minicluster.MiniClusterConfiguration;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.util.TestStreamEnvironment;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.types.Row;

/**
 * The two ways this project embeds a stream of text chunks, side by side on one Flink MiniCluster in this JVM (not
 * a unit test: run with the test classpath, see {@code bin/bench-operator}):
 *
 * <ul>
 *   <li>DataStream: {@link RwkvStreams#embed} with the operator's default batching, which advances the chunks of
 *       many keys in one engine call;</li>
 *   <li>SQL: the process table function {@link RwkvEmbedFunction},
 *       {@code SELECT * FROM RWKV_EMBED(input => TABLE chunks PARTITION BY doc)}, which advances one key per
 *       row.</li>
 * </ul>
 *
 * Both read the same input: D documents of C chunks of random text, about W words per chunk (uniform in W/2..3W/2,
 * from a seeded {@link Random}), interleaved round-robin (chunk 0 of every document, then chunk 1, ...), each
 * document's last chunk marked {@code last}; from a bounded source (a number sequence mapped to the chunks), at
 * parallelism 1, on the heap state backend, without checkpoints, both with the same {@link RwkvOperatorConfig}
 * ({@code idleTimeout(0)}, defaults otherwise). The model is loaded once before the first job and stays loaded, so
 * no job pays for loading it.
 *
 * <p>Measured per job: its runtime as Flink reports it ({@link JobExecutionResult#getNetRuntime}: scheduling,
 * deployment and the run, not the submission) and the wall time of the blocking {@code execute()}; tokens/s and
 * documents/s are over the runtime. One warm-up job of each variant, then R measured jobs alternating DataStream
 * and SQL; each run printed, then the medians and the ratio SQL / DataStream. Every job is checked: exactly D final
 * embeddings, nothing rejected, each document's token count and embedding bit-identical to the one-shot reference
 * (the whole text tokenized at once and run through the engine in one call, as {@link OneShot} does) and to the
 * other variant's; a difference stops the benchmark with the details.
 *
 * <p>Arguments: MODEL (the tiny byte-level RWKV-7 of rwkv.cpp's tests, FP32; or e.g. {@code random:0.1b:F32}) D
 * (200) C (8) W (12) R (3) SEED (2028). Models with a 65536-token vocabulary read system property
 * {@code rwkv.vocab} (default: the World vocabulary in the shared reference directory). Reference files are found
 * under system property {@code rwkv.shared.dir}, else {@code ../shared} (from the repository root, as
 * {@code bin/bench-operator} runs) or {@code ../../shared} (from the module directory).
 */
public final class SqlFunctionBench {
    /** The words of the random texts: the ITCase's, non-ASCII included. */
    private static final String[] WORDS = RwkvEmbeddingITCase.WORDS;

    /** What the jobs' sinks collected, by sink name: the MiniCluster runs in this JVM. */
    private static final String DATASTREAM = "DataStream";

    private static final String SQL = "SQL";

    private SqlFunctionBench() {}

    public static void main(String[] args) throws Exception {
        String model = args.length > 0 ? args[0] : shared("reference/rwkv-cpp-tests/tiny-rwkv-7v0-834K-FP32.bin");
        int docs = args.length > 1 ? Integer.parseInt(args[1]) : 200;
        int chunks = args.length > 2 ? Integer.parseInt(args[2]) : 8;
        int words = args.length > 3 ? Integer.parseInt(args[3]) : 12;
        int runs = args.length > 4 ? Integer.parseInt(args[4]) : 3;
        long seed = args.length > 5 ? Long.parseLong(args[5]) : 2028;
        String vocab = System.getProperty(
                "rwkv.vocab", model.startsWith("random:") ? shared("reference/rwkv_vocab_v20230424.txt") : null);
        RwkvOperatorConfig config = new RwkvOperatorConfig()
                .model(model)
                .vocab(vocab)
                .idleTimeout(0)
                .validate();

        long loadStart = System.nanoTime();
        // kept loaded for all jobs: the operator and the function find it in SharedModels (same ModelSpec)
        SharedModels.LoadedModel loaded = SharedModels.acquire(config.modelSpec());
        try {
            RwkvModel m = loaded.model();
            System.out.printf(
                    Locale.ROOT,
                    "model %s: RWKV %s L%d D%d %s, backend %s, %s tokenizer, pooling %s," + " loaded in %.1f s%n",
                    model,
                    m.config().version().label(),
                    m.config().layers(),
                    m.config().embd(),
                    m.config().matrixType(),
                    m.backend().name(),
                    loaded.tokenizer().name(),
                    config.pooling,
                    (System.nanoTime() - loadStart) / 1e9);
            Corpus corpus = Corpus.random(docs, chunks, words, new Random(seed));
            Reference reference = Reference.of(loaded, corpus);
            System.out.printf(
                    Locale.ROOT,
                    "input: seed %d, %d documents x %d chunks of ~%d words, interleaved"
                            + " round-robin: %d chunks, %d tokens (%.1f per chunk); one-shot reference (one engine call per"
                            + " document, no Flink): %.2f s, %.0f tokens/s%n",
                    seed,
                    docs,
                    chunks,
                    words,
                    corpus.chunks().length,
                    reference.totalTokens(),
                    (double) reference.totalTokens() / corpus.chunks().length,
                    reference.seconds(),
                    reference.totalTokens() / reference.seconds());
            System.out.printf(
                    "runs: 1 warm-up of each variant, then %d of each alternating; parallelism 1, heap state"
                            + " backend, no checkpoints; DataStream batching: %d keys / %d tokens / %d ms%n",
                    runs, config.maxBatchKeys, config.maxBatchTokens, config.maxWaitMillis);

            List<Result> measured = new ArrayList<>();
            try (MiniCluster flink = new MiniCluster(new MiniClusterConfiguration.Builder()
                    .setNumTaskManagers(1)
                    .setNumSlotsPerTaskManager(1)
                    .build())) {
                flink.start();
                Result warmDataStream = dataStream(flink, config, corpus);
                check(warmDataStream, reference, null);
                Result warmSql = sql(flink, config, corpus);
                check(warmSql, reference, warmDataStream);
                System.out.printf(
                        Locale.ROOT,
                        "warm-up: DataStream %d ms, SQL %d ms; both gave %d final embeddings,"
                                + " bit-identical to each other and to the one-shot reference per document%n",
                        warmDataStream.runtimeMillis(),
                        warmSql.runtimeMillis(),
                        docs);
                System.out.println();
                System.out.println(
                        "| run | variant | job runtime (ms) | execute() wall (ms) | tokens/s" + " | documents/s |");
                System.out.println("|---|---|---|---|---|---|");
                for (int r = 1; r <= runs; r++) {
                    for (String variant : List.of(DATASTREAM, SQL)) {
                        Result result = variant.equals(DATASTREAM)
                                ? dataStream(flink, config, corpus)
                                : sql(flink, config, corpus);
                        check(result, reference, variant.equals(DATASTREAM) ? warmSql : warmDataStream);
                        measured.add(result);
                        System.out.printf(
                                Locale.ROOT,
                                "| %d | %s | %d | %.0f | %.0f | %.1f |%n",
                                r,
                                variant,
                                result.runtimeMillis(),
                                result.wallNanos() / 1e6,
                                reference.totalTokens() / result.seconds(),
                                docs / result.seconds());
                    }
                }
            }
            summary(measured, reference.totalTokens(), docs);
        } finally {
            SharedModels.release(loaded);
        }
    }

    /** Medians per variant and the ratio SQL / DataStream. */
    private static void summary(List<Result> measured, long tokens, int docs) {
        double dataStream = medianSeconds(measured, DATASTREAM);
        double sql = medianSeconds(measured, SQL);
        System.out.println();
        System.out.println(
                "| variant | median job runtime (ms) | median execute() wall (ms) | tokens/s" + " | documents/s |");
        System.out.println("|---|---|---|---|---|");
        for (String variant : List.of(DATASTREAM, SQL)) {
            double s = medianSeconds(measured, variant);
            double wall = median(measured.stream()
                    .filter(r -> r.variant().equals(variant))
                    .mapToDouble(r -> r.wallNanos() / 1e6)
                    .toArray());
            System.out.printf(
                    Locale.ROOT, "| %s | %.0f | %.0f | %.0f | %.1f |%n", variant, 1000 * s, wall, tokens / s, docs / s);
        }
        System.out.printf(
                Locale.ROOT, "SQL / DataStream: runtime x%.2f, throughput x%.2f%n", sql / dataStream, dataStream / sql);
    }

    private static double medianSeconds(List<Result> measured, String variant) {
        return median(measured.stream()
                .filter(r -> r.variant().equals(variant))
                .mapToDouble(Result::seconds)
                .toArray());
    }

    /** One job of the DataStream operator over the corpus. */
    private static Result dataStream(MiniCluster flink, RwkvOperatorConfig config, Corpus corpus) throws Exception {
        StreamExecutionEnvironment env = environment(flink);
        DataStream<TextChunk> chunks = source(env, corpus)
                .map(new ChunkAt(corpus.chunks()))
                .returns(TextChunk.class)
                .name("chunks");
        SingleOutputStreamOperator<EmbeddingRecord> embeddings = RwkvStreams.embed(chunks, config);
        embeddings.sinkTo(new QueueSink<>("embeddings"));
        embeddings.getSideOutput(RwkvStreams.REJECTED).sinkTo(new QueueSink<>("rejected"));
        Timed timed = execute(env, "SqlFunctionBench DataStream");

        Result result = new Result(DATASTREAM, timed.runtimeMillis(), timed.wallNanos());
        for (Object o : QueueSink.<Object>queue("embeddings")) {
            EmbeddingRecord r = (EmbeddingRecord) o;
            result.add(
                    r.key, r.reason == EmbeddingRecord.Reason.LAST ? null : "reason " + r.reason, r.tokens, r.vector);
        }
        for (Object o : QueueSink.<Object>queue("rejected")) {
            result.problems.add("rejected: " + o);
        }
        return result;
    }

    /** One job of {@code RWKV_EMBED} over the corpus. */
    private static Result sql(MiniCluster flink, RwkvOperatorConfig config, Corpus corpus) throws Exception {
        StreamExecutionEnvironment env = environment(flink);
        StreamTableEnvironment tEnv = StreamTableEnvironment.create(env);
        DataStream<Row> rows = source(env, corpus)
                .map(new RowAt(corpus.chunks()))
                .returns(Types.ROW_NAMED(
                        new String[] {"doc", "seq", "text", "last"},
                        Types.STRING,
                        Types.LONG,
                        Types.STRING,
                        Types.BOOLEAN))
                .name("chunks");
        tEnv.createTemporaryView("chunks", tEnv.fromDataStream(rows));
        tEnv.createTemporarySystemFunction("RWKV_EMBED", new RwkvEmbedFunction(config));
        tEnv.toDataStream(tEnv.sqlQuery("SELECT * FROM RWKV_EMBED(input => TABLE chunks PARTITION BY doc)"))
                .sinkTo(new QueueSink<>("rows"));
        Timed timed = execute(env, "SqlFunctionBench SQL");

        Result result = new Result(SQL, timed.runtimeMillis(), timed.wallNanos());
        for (Object o : QueueSink.<Object>queue("rows")) {
            Row r = (Row) o;
            Object error = r.getField("error");
            Object reason = r.getField("reason");
            Long tokens = (Long) r.getField("tokens");
            result.add(
                    (String) r.getField("doc"),
                    error != null ? "error " + error : "LAST".equals(reason) ? null : "reason " + reason,
                    tokens == null ? -1 : tokens,
                    unboxed((Float[]) r.getField("embedding")));
        }
        return result;
    }

    /** A job environment on the shared MiniCluster: parallelism 1, heap state, no checkpoints, no restarts. */
    private static StreamExecutionEnvironment environment(MiniCluster flink) {
        Configuration conf = new Configuration();
        conf.set(StateBackendOptions.STATE_BACKEND, "hashmap");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "none");
        return new TestStreamEnvironment(flink, conf, 1, List.of(), List.of());
    }

    /** The chunks' positions 0 .. n-1, bounded (mapped to the chunks by the caller). */
    private static DataStream<Long> source(StreamExecutionEnvironment env, Corpus corpus) {
        return env.fromSource(
                new NumberSequenceSource(0, corpus.chunks().length - 1), WatermarkStrategy.noWatermarks(), "positions");
    }

    /** Runs the job to its end with empty queues; its runtime as Flink reports it and the wall time of the call. */
    private static Timed execute(StreamExecutionEnvironment env, String name) throws Exception {
        for (String queue : List.of("embeddings", "rejected", "rows")) {
            QueueSink.queue(queue).clear();
        }
        long start = System.nanoTime();
        JobExecutionResult result = env.execute(name);
        long wall = System.nanoTime() - start;
        return new Timed(result.getNetRuntime(TimeUnit.MILLISECONDS), wall);
    }

    private record Timed(long runtimeMillis, long wallNanos) {}

    /**
     * Stops the benchmark unless {@code result} has exactly one final embedding per document, nothing rejected, and
     * per document the reference's token count and embedding, and {@code other}'s embedding (when given), bit for
     * bit.
     */
    private static void check(Result result, Reference reference, Result other) {
        List<String> problems = new ArrayList<>(result.problems);
        if (result.vectors.size() != reference.vectors().size()) {
            problems.add(result.vectors.size() + " documents embedded, expected "
                    + reference.vectors().size());
        }
        for (Map.Entry<String, float[]> e : reference.vectors().entrySet()) {
            String doc = e.getKey();
            float[] got = result.vectors.get(doc);
            if (got == null) {
                problems.add(doc + ": no embedding");
                continue;
            }
            long tokens = result.tokens.get(doc);
            if (tokens != reference.tokens().get(doc)) {
                problems.add(doc + ": " + tokens + " tokens, the tokenizer counts "
                        + reference.tokens().get(doc));
            }
            String vsReference = difference(got, e.getValue());
            if (vsReference != null) {
                problems.add(doc + ": differs from the one-shot reference: " + vsReference);
            }
            float[] theirs = other == null ? null : other.vectors.get(doc);
            String vsOther = theirs == null ? null : difference(got, theirs);
            if (vsOther != null) {
                problems.add(doc + ": differs from " + other.variant() + ": " + vsOther);
            }
        }
        if (!problems.isEmpty()) {
            throw new IllegalStateException(result.variant() + " run: " + problems.size() + " problem(s), the first "
                    + Math.min(20, problems.size()) + ":\n  "
                    + String.join("\n  ", problems.subList(0, Math.min(20, problems.size()))));
        }
    }

    /** Null when {@code a} and {@code b} are the same bits, else where and how they first differ. */
    private static String difference(float[] a, float[] b) {
        if (a.length != b.length) {
            return "dimension " + a.length + " vs " + b.length;
        }
        int differing = 0;
        int first = -1;
        for (int i = 0; i < a.length; i++) {
            if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i])) {
                differing++;
                first = first < 0 ? i : first;
            }
        }
        return differing == 0
                ? null
                : String.format(
                        Locale.ROOT,
                        "%d of %d values, first [%d] %s vs %s (%08x vs %08x)",
                        differing,
                        a.length,
                        first,
                        a[first],
                        b[first],
                        Float.floatToRawIntBits(a[first]),
                        Float.floatToRawIntBits(b[first]));
    }

    /** One job's outcome: final embeddings and token counts per document, and what was wrong with its output. */
    private static final class Result {
        private final String variant;
        private final long runtimeMillis;
        private final long wallNanos;
        final Map<String, float[]> vectors = new HashMap<>();
        final Map<String, Long> tokens = new HashMap<>();
        final List<String> problems = new ArrayList<>();

        Result(String variant, long runtimeMillis, long wallNanos) {
            this.variant = variant;
            this.runtimeMillis = runtimeMillis;
            this.wallNanos = wallNanos;
        }

        /** A record of the output: a final embedding, or (problem not null) something that should not be there. */
        void add(String doc, String problem, long tokenCount, float[] vector) {
            if (problem != null) {
                problems.add(doc + ": " + problem);
            } else if (vectors.put(doc, vector) != null) {
                problems.add(doc + ": more than one final embedding");
            } else {
                tokens.put(doc, tokenCount);
            }
        }

        String variant() {
            return variant;
        }

        long runtimeMillis() {
            return runtimeMillis;
        }

        long wallNanos() {
            return wallNanos;
        }

        double seconds() {
            return runtimeMillis / 1e3;
        }
    }

    /** The documents' texts ({@code doc-0}, ...) and their chunks in arrival order. */
    private record Corpus(Map<String, String> texts, TextChunk[] chunks) {
        static Corpus random(int docs, int chunksPerDoc, int words, Random rnd) {
            Map<String, String> texts = new LinkedHashMap<>();
            String[][] pieces = new String[docs][chunksPerDoc];
            for (int d = 0; d < docs; d++) {
                StringBuilder text = new StringBuilder();
                for (int c = 0; c < chunksPerDoc; c++) {
                    StringBuilder piece = new StringBuilder();
                    for (int w = 0, n = Math.max(1, words / 2 + rnd.nextInt(words + 1)); w < n; w++) {
                        piece.append(WORDS[rnd.nextInt(WORDS.length)]).append(rnd.nextInt(8) == 0 ? ".\n" : " ");
                    }
                    pieces[d][c] = piece.toString();
                    text.append(piece);
                }
                texts.put("doc-" + d, text.toString());
            }
            TextChunk[] chunks = new TextChunk[docs * chunksPerDoc];
            int i = 0;
            for (int c = 0; c < chunksPerDoc; c++) { // round-robin: chunk c of every document, then chunk c + 1
                for (int d = 0; d < docs; d++) {
                    chunks[i++] = new TextChunk("doc-" + d, c, pieces[d][c], c == chunksPerDoc - 1, 0);
                }
            }
            return new Corpus(texts, chunks);
        }
    }

    /** Per document the one-shot embedding and token count (the whole text in one engine call), and its time. */
    private record Reference(Map<String, float[]> vectors, Map<String, Long> tokens, long totalTokens, double seconds) {
        static Reference of(SharedModels.LoadedModel loaded, Corpus corpus) {
            long start = System.nanoTime();
            Map<String, float[]> vectors = new HashMap<>();
            Map<String, Long> tokens = new HashMap<>();
            long total = 0;
            for (Map.Entry<String, String> e : corpus.texts().entrySet()) {
                int[] ids = loaded.tokenizer().encodeBytes(e.getValue().getBytes(StandardCharsets.UTF_8));
                RwkvState state = loaded.model().newState();
                float[] hidden = loaded.model().hidden(state, ids);
                vectors.put(e.getKey(), loaded.embedder().embed(hidden, state));
                tokens.put(e.getKey(), (long) ids.length);
                total += ids.length;
            }
            return new Reference(vectors, tokens, total, (System.nanoTime() - start) / 1e9);
        }
    }

    /** Position i to chunk i (the DataStream variant's input). */
    private static final class ChunkAt implements MapFunction<Long, TextChunk> {
        private final TextChunk[] chunks;

        ChunkAt(TextChunk[] chunks) {
            this.chunks = chunks;
        }

        @Override
        public TextChunk map(Long i) {
            return chunks[(int) (long) i];
        }
    }

    /** Position i to chunk i as a row (doc, seq, text, last): the SQL variant's input. */
    private static final class RowAt implements MapFunction<Long, Row> {
        private final TextChunk[] chunks;

        RowAt(TextChunk[] chunks) {
            this.chunks = chunks;
        }

        @Override
        public Row map(Long i) {
            TextChunk c = chunks[(int) (long) i];
            return Row.of(c.key, c.seq, c.text, c.last);
        }
    }

    /** A file under the shared reference directory beside the checkout. */
    private static String shared(String relative) {
        String dir = System.getProperty("rwkv.shared.dir");
        if (dir == null) {
            dir = Files.isDirectory(Path.of("../shared/reference")) ? "../shared" : "../../shared";
        }
        return Path.of(dir, relative).toString();
    }

    private static float[] unboxed(Float[] v) {
        if (v == null) {
            return null;
        }
        float[] f = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            f[i] = v[i];
        }
        return f;
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }
}
