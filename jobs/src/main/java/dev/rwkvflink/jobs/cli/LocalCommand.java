package dev.rwkvflink.jobs.cli;

import dev.rwkvflink.engine.model.RandomModels;
import dev.rwkvflink.jobs.Settings;
import dev.rwkvflink.jobs.local.Documents;
import dev.rwkvflink.jobs.local.LocalRun;
import dev.rwkvflink.schema.Embedding;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code rwkv-flink local}: the whole pipeline on this machine (embedded Kafka, Flink MiniCluster with web UI,
 * the embedding job), fed with a sample corpus, files or standard input. See {@link LocalRun}.
 */
@Command(
        name = "local",
        mixinStandardHelpOptions = true,
        description = {
            "Run the whole pipeline on this machine: an embedded Kafka broker, a Flink MiniCluster with "
                    + "its web UI and the embedding job. Feeds a bundled sample corpus (or --input files, or - for "
                    + "standard input) in chunks and prints each committed embedding as it appears, then stops."
        })
final class LocalCommand implements Callable<Integer> {

    @Option(
            names = "--model",
            paramLabel = "FILE",
            description = "Model file (.bin, .pth, .safetensors). Default: the built-in demo model (random "
                    + "weights: its embeddings carry NO learned meaning).")
    Path model;

    @Option(names = "--vocab", paramLabel = "FILE", description = "Vocabulary; not needed for byte-level models.")
    Path vocab;

    @Mixin
    PoolingOption pooling = new PoolingOption();

    @Option(
            names = "--head",
            paramLabel = "FILE",
            description = "A classification head (from `fit`): also classify, to the classifications topic.")
    Path head;

    @Option(
            names = "--stats",
            paramLabel = "FILE",
            description = "Normalisation statistics (from `fit --stats-out`); a head from `fit` needs them.")
    Path stats;

    @Mixin
    BackendOption backend = new BackendOption();

    @Option(
            names = "--input",
            arity = "1..*",
            paramLabel = "FILE",
            description = "Text files, or a directory of them, to embed, one document each (key: the file name); "
                    + "- reads standard input as one document. Default: the bundled sample corpus.")
    List<String> inputs;

    @Option(
            names = "--chunk-bytes",
            defaultValue = "64",
            paramLabel = "N",
            description = "Largest chunk in UTF-8 bytes. Default: ${DEFAULT-VALUE}.")
    int chunkBytes;

    @Option(
            names = "--ui-port",
            defaultValue = "8081",
            paramLabel = "PORT",
            description = "Port of the Flink web UI (0: any free port). Default: ${DEFAULT-VALUE}.")
    int uiPort;

    @Option(
            names = "--metrics-port",
            defaultValue = "9249",
            paramLabel = "PORT",
            description = "Port of the Prometheus metrics endpoint (0: any free port, -1: none). "
                    + "Default: ${DEFAULT-VALUE}.")
    int metricsPort;

    @Option(
            names = "--parallelism",
            defaultValue = "2",
            paramLabel = "N",
            description = "Job parallelism (slots of the MiniCluster). Default: ${DEFAULT-VALUE}.")
    int parallelism;

    @Option(
            names = "--checkpoint-ms",
            defaultValue = "500",
            paramLabel = "MS",
            description = "Checkpoint interval; output is committed at checkpoints. Default: ${DEFAULT-VALUE}.")
    long checkpointMillis;

    @Option(
            names = "--dims",
            defaultValue = "4",
            paramLabel = "N",
            description = "How many leading dimensions of each embedding to print. Default: ${DEFAULT-VALUE}.")
    int dims;

    @Option(
            names = "--timeout",
            defaultValue = "300",
            paramLabel = "SECONDS",
            description = "Give up if the documents are not all embedded by then. Default: ${DEFAULT-VALUE}.")
    long timeoutSeconds;

    @Option(names = "--shuffle-chunks", description = "Send all chunks in a random order (seeded by --seed).")
    boolean shuffleChunks;

    @Option(
            names = "--duplicates",
            defaultValue = "0",
            paramLabel = "FRACTION",
            description = "Send this fraction of the chunks twice (e.g. 0.1). Default: ${DEFAULT-VALUE}.")
    double duplicates;

    @Option(
            names = "--seed",
            defaultValue = "1",
            description = "Seed of --shuffle-chunks and --duplicates. Default: ${DEFAULT-VALUE}.")
    long seed;

    @Option(
            names = "--hot-state-bytes",
            defaultValue = "268435456",
            paramLabel = "N",
            description = "Memory for keys' states kept where the model runs between batches (GPU memory with cuda, "
                    + "else the heap); 0: every key's state goes back to Flink state after each batch (and is read "
                    + "again for the next). Default: ${DEFAULT-VALUE}.")
    long hotStateBytes;

    @Option(
            names = "--snapshot-tokens",
            defaultValue = "-1",
            paramLabel = "K",
            description = "Token-log budget: a key's Flink state is a state snapshot plus the token ids applied since; "
                    + "a new snapshot is written once K tokens have accumulated (0: at every write-back; -1: chosen "
                    + "per backend and model size). Default: ${DEFAULT-VALUE}.")
    long snapshotTokens;

    @Mixin
    FormatOptions format = new FormatOptions();

    @Option(
            names = "--until-done",
            description = "When every document's embedding is committed, print them as JSON "
                    + "lines exactly like `embed` (stdout; progress goes to stderr) and exit 0.")
    boolean untilDone;

    @Option(
            names = "--keep-running",
            description = "Keep Kafka, Flink and the job running afterwards (stop with "
                    + "Ctrl-C): feed more chunks to the topic, look around in the web UI.")
    boolean keepRunning;

    @Override
    public Integer call() throws Exception {
        // names are checked here, before Kafka and Flink start: a typo would otherwise surface only when the
        // operator opens on a TaskManager, and the job would restart in a loop
        Settings.checkNames(backend.name, pooling.name, "--");
        format.parsed();
        requireFile("--model", model);
        requireFile("--vocab", vocab);
        requireFile("--head", head);
        requireFile("--stats", stats);
        if (chunkBytes < 1) {
            throw new IllegalArgumentException("--chunk-bytes must be >= 1, got " + chunkBytes);
        }
        if (parallelism < 1) {
            throw new IllegalArgumentException("--parallelism must be >= 1, got " + parallelism);
        }
        if (uiPort < 0 || uiPort > 65535) {
            throw new IllegalArgumentException("--ui-port must be 0..65535, got " + uiPort);
        }
        if (metricsPort < -1 || metricsPort > 65535) {
            throw new IllegalArgumentException("--metrics-port must be 0..65535, or -1 for none, got " + metricsPort);
        }
        if (hotStateBytes < 0) {
            throw new IllegalArgumentException("--hot-state-bytes must be >= 0, got " + hotStateBytes);
        }
        if (snapshotTokens < -1) {
            throw new IllegalArgumentException(
                    "--snapshot-tokens must be >= 0, or -1 for automatic, got " + snapshotTokens);
        }
        if (duplicates < 0 || duplicates > 1) {
            throw new IllegalArgumentException("--duplicates must be in [0, 1], got " + duplicates);
        }
        Map<String, String> documents = documents();
        PrintStream log = untilDone ? System.err : System.out;
        if (model == null) {
            log.println("""
                    ******************************************************************************************
                    NOTE: no --model given, so this runs the built-in DEMO model (RWKV-7, random weights, seed %d).
                    ITS EMBEDDINGS CARRY NO LEARNED MEANING: similar texts do not get similar vectors. It only
                    shows the pipeline working. Pass --model FILE [--vocab FILE] for real embeddings.
                    ******************************************************************************************""".formatted(RandomModels.DEMO_SEED));
        }
        LocalRun.Options options = new LocalRun.Options(
                documents,
                absolute(model),
                absolute(vocab),
                pooling.name,
                absolute(head),
                absolute(stats),
                backend.name,
                chunkBytes,
                uiPort,
                metricsPort,
                parallelism,
                checkpointMillis,
                Duration.ofSeconds(timeoutSeconds),
                dims,
                shuffleChunks,
                duplicates,
                seed,
                hotStateBytes,
                snapshotTokens,
                format.parsed(),
                format.schemaRegistryUrl);
        LocalRun run = new LocalRun(options, log);
        Thread stopper = new Thread(run::close, "rwkv-local-stop");
        Runtime.getRuntime().addShutdownHook(stopper);
        try {
            Map<String, Embedding> finals = run.run();
            if (untilDone) {
                if (finals.size() != documents.size()) {
                    throw new IllegalStateException(
                            (documents.size() - finals.size()) + " document(s) got no embedding");
                }
                for (String key : documents.keySet()) {
                    List<Float> v = finals.get(key).getVector();
                    float[] vector = new float[v.size()];
                    for (int i = 0; i < vector.length; i++) {
                        vector[i] = v.get(i);
                    }
                    System.out.println(EmbedCommand.jsonLine(key, vector));
                }
            }
            if (keepRunning) {
                log.printf("Still running (--keep-running): web UI %s, Ctrl-C to stop.%n", run.webUi());
                run.awaitJob();
            }
        } finally {
            log.println("Stopping Flink and Kafka...");
            run.close();
            try {
                Runtime.getRuntime().removeShutdownHook(stopper);
            } catch (IllegalStateException shuttingDown) {
                // already running the hooks
            }
        }
        return 0;
    }

    private Map<String, String> documents() throws Exception {
        if (inputs == null || inputs.isEmpty()) {
            return Documents.sample();
        }
        if (inputs.equals(List.of("-"))) {
            return Documents.stdin(System.in);
        }
        if (inputs.contains("-")) {
            throw new IllegalArgumentException("--input - (standard input) cannot be mixed with files");
        }
        List<Path> files = new ArrayList<>();
        for (String input : inputs) {
            Path p = Path.of(input);
            if (Files.isDirectory(p)) {
                try (var listing = Files.list(p)) {
                    listing.filter(Files::isRegularFile).sorted().forEach(files::add);
                }
            } else {
                files.add(p);
            }
        }
        if (files.isEmpty()) {
            throw new IllegalArgumentException("--input " + inputs + " holds no files");
        }
        return Documents.files(files);
    }

    /**
     * A file option names a file that is there: checked before anything starts (in a local run the TaskManager
     * reads the same files). The built-in model names ({@code demo}, {@code random:...}) are not files.
     */
    private static void requireFile(String option, Path file) {
        if (file == null || file.toString().equals("demo") || file.toString().startsWith("random:")) {
            return;
        }
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException(option + ": no such file: " + file.toAbsolutePath());
        }
    }

    private static String absolute(Path p) {
        return p == null ? null : p.toAbsolutePath().toString();
    }
}
