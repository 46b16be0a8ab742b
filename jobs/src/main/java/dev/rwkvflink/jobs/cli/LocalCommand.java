package dev.rwkvflink.jobs.cli;

import dev.rwkvflink.engine.model.RandomModels;
import dev.rwkvflink.jobs.local.Documents;
import dev.rwkvflink.jobs.local.LocalRun;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code rwkv-flink local}: the whole pipeline on this machine (embedded Kafka, Flink MiniCluster with web UI,
 * the embedding job), fed with a sample corpus, files or standard input. See {@link LocalRun}.
 */
@Command(name = "local", mixinStandardHelpOptions = true,
        description = {"Run the whole pipeline on this machine: an embedded Kafka broker, a Flink MiniCluster with "
                + "its web UI and the embedding job. Feeds a bundled sample corpus (or --input files, or - for "
                + "standard input) in chunks and prints each committed embedding as it appears, then stops."})
final class LocalCommand implements Callable<Integer> {

    @Option(names = "--model", paramLabel = "FILE",
            description = "Model file (.bin, .pth, .safetensors). Default: the built-in demo model (random "
                    + "weights: its embeddings carry NO learned meaning).")
    Path model;

    @Option(names = "--vocab", paramLabel = "FILE", description = "Vocabulary; not needed for byte-level models.")
    Path vocab;

    @Option(names = "--pooling", defaultValue = "hidden", paramLabel = "NAME",
            description = "hidden, state, both (with layers: state:0,11). Default: ${DEFAULT-VALUE}.")
    String pooling;

    @Option(names = "--head", paramLabel = "FILE",
            description = "A classification head (from `fit`): also classify, to the classifications topic.")
    Path head;

    @Option(names = "--backend", defaultValue = "cpu", paramLabel = "NAME",
            description = "Engine backend: cpu, vector, scalar. Default: ${DEFAULT-VALUE}.")
    String backend;

    @Option(names = "--input", arity = "1..*", paramLabel = "FILE",
            description = "Text files to embed, one document each (key: the file name); - reads standard input "
                    + "as one document. Default: the bundled sample corpus.")
    List<String> inputs;

    @Option(names = "--chunk-bytes", defaultValue = "64", paramLabel = "N",
            description = "Largest chunk in UTF-8 bytes. Default: ${DEFAULT-VALUE}.")
    int chunkBytes;

    @Option(names = "--ui-port", defaultValue = "8081", paramLabel = "PORT",
            description = "Port of the Flink web UI (0: any free port). Default: ${DEFAULT-VALUE}.")
    int uiPort;

    @Option(names = "--parallelism", defaultValue = "2", paramLabel = "N",
            description = "Job parallelism (slots of the MiniCluster). Default: ${DEFAULT-VALUE}.")
    int parallelism;

    @Option(names = "--checkpoint-ms", defaultValue = "500", paramLabel = "MS",
            description = "Checkpoint interval; output is committed at checkpoints. Default: ${DEFAULT-VALUE}.")
    long checkpointMillis;

    @Option(names = "--dims", defaultValue = "4", paramLabel = "N",
            description = "How many leading dimensions of each embedding to print. Default: ${DEFAULT-VALUE}.")
    int dims;

    @Option(names = "--timeout", defaultValue = "300", paramLabel = "SECONDS",
            description = "Give up if the documents are not all embedded by then. Default: ${DEFAULT-VALUE}.")
    long timeoutSeconds;

    @Option(names = "--keep-running", description = "Keep Kafka, Flink and the job running afterwards (stop with "
            + "Ctrl-C): feed more chunks to the topic, look around in the web UI.")
    boolean keepRunning;

    @Override
    public Integer call() throws Exception {
        if (chunkBytes < 1) {
            throw new IllegalArgumentException("--chunk-bytes must be >= 1, got " + chunkBytes);
        }
        if (parallelism < 1) {
            throw new IllegalArgumentException("--parallelism must be >= 1, got " + parallelism);
        }
        if (uiPort < 0 || uiPort > 65535) {
            throw new IllegalArgumentException("--ui-port must be 0..65535, got " + uiPort);
        }
        Map<String, String> documents = documents();
        if (model == null) {
            System.out.println("""
                    ******************************************************************************************
                    NOTE: no --model given, so this runs the built-in DEMO model (RWKV-7, random weights, seed %d).
                    ITS EMBEDDINGS CARRY NO LEARNED MEANING: similar texts do not get similar vectors. It only
                    shows the pipeline working. Pass --model FILE [--vocab FILE] for real embeddings.
                    ******************************************************************************************"""
                    .formatted(RandomModels.DEMO_SEED));
        }
        LocalRun.Options options = new LocalRun.Options(documents, absolute(model), absolute(vocab), pooling,
                absolute(head), backend, chunkBytes, uiPort, parallelism, checkpointMillis,
                Duration.ofSeconds(timeoutSeconds), dims);
        LocalRun run = new LocalRun(options, System.out);
        Thread stopper = new Thread(run::close, "rwkv-local-stop");
        Runtime.getRuntime().addShutdownHook(stopper);
        try {
            run.run();
            if (keepRunning) {
                System.out.printf("Still running (--keep-running): web UI %s, Ctrl-C to stop.%n", run.webUi());
                run.awaitJob();
            }
        } finally {
            System.out.println("Stopping Flink and Kafka...");
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
        return Documents.files(inputs.stream().map(Path::of).toList());
    }

    private static String absolute(Path p) {
        return p == null ? null : p.toAbsolutePath().toString();
    }
}
