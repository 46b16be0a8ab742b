package dev.rwkvflink.engine.embed;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.rwkvflink.engine.format.InputFiles;
import dev.rwkvflink.engine.state.ModelFingerprint;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.Locale;
import java.util.Objects;

/**
 * Per-channel mean and standard deviation of raw pooled vectors ({@link Embedder#pool}), collected from varied
 * text, so that embeddings can be standardized: raw RWKV channels differ in scale by orders of magnitude, and
 * without standardization a few large channels would dominate every cosine similarity.
 *
 * <p><b>Accumulation</b> (Welford), per channel {@code i}, for each new vector {@code v}:
 * <pre>
 *   n    = n + 1
 *   d    = v[i] - mean[i]
 *   mean[i] += d / n
 *   m2[i]   += d * (v[i] - mean[i])            // sum of squared deviations from the mean
 *   std[i]  = sqrt(m2[i] / n)                  // population standard deviation
 * </pre>
 * Two collections merge exactly as if their vectors had been added to one (Chan et al.):
 * {@code n = na + nb}, {@code d = mean_b - mean_a}, {@code mean = mean_a + d nb / n},
 * {@code m2 = m2_a + m2_b + d^2 na nb / n}. Everything is accumulated in double precision.
 *
 * <p><b>Standardization</b>: {@code z[i] = (v[i] - mean[i]) / max(std[i], 1e-6)}.
 *
 * <p><b>File format</b> (JSON, UTF-8, version 1):
 * <pre>
 * {"format": "rwkv-flink-embedding-stats", "version": 1,
 *  "model": "&lt;64 hex digits: the model's fingerprint&gt;", "pooling": "state:11", "dimension": 4096,
 *  "count": 12345, "mean": [...], "m2": [...]}
 * </pre>
 * {@code m2} rather than the standard deviation is stored so that loading gives back exactly the same numbers
 * (doubles are written in their shortest exact decimal form) and loaded statistics can be merged further.
 * Statistics belong to one model and one pooling: {@link #load(Path, ModelFingerprint, Pooling)} refuses a file
 * made for another. They should be collected with the pooling's layers explicit ({@link Embedder#pooling()}).
 *
 * <p>Not thread-safe while accumulating.
 */
public final class EmbeddingStats {

    public static final String FORMAT = "rwkv-flink-embedding-stats";
    public static final int VERSION = 1;
    /** Standard deviations below this are treated as this, so constant channels do not divide by zero. */
    public static final double MIN_STD = 1e-6;

    private final String modelHex;
    private final Pooling pooling;
    private final double[] mean;
    private final double[] m2;
    private long count;

    /**
     * Empty statistics for vectors of {@code dimension} floats pooled with {@code pooling} (explicit layers, as
     * {@link Embedder#pooling()} gives them) from the model {@code model}.
     */
    public EmbeddingStats(ModelFingerprint model, Pooling pooling, int dimension) {
        this(model.hex(), pooling, new double[dimension], new double[dimension], 0);
    }

    private EmbeddingStats(String modelHex, Pooling pooling, double[] mean, double[] m2, long count) {
        if (mean.length == 0) {
            throw new IllegalArgumentException("dimension must be positive");
        }
        this.modelHex = modelHex;
        this.pooling = Objects.requireNonNull(pooling, "pooling");
        this.mean = mean;
        this.m2 = m2;
        this.count = count;
    }

    /** Adds one raw pooled vector. */
    public void add(float[] v) {
        if (v.length != mean.length) {
            throw new IllegalArgumentException("vector of " + v.length + " floats, the statistics have " + mean.length);
        }
        for (int i = 0; i < v.length; i++) {
            if (!Float.isFinite(v[i])) {
                throw new IllegalArgumentException("value " + v[i] + " at index " + i + " is not finite");
            }
        }
        count++;
        for (int i = 0; i < v.length; i++) {
            double d = v[i] - mean[i];
            mean[i] += d / count;
            m2[i] += d * (v[i] - mean[i]);
        }
    }

    /** Adds all vectors that {@code other} has seen, as if they had been added here. */
    public void merge(EmbeddingStats other) {
        requireSameKind(other.modelHex, other.pooling, other.mean.length, "merge statistics");
        if (other.count == 0) {
            return;
        }
        long n = count + other.count;
        for (int i = 0; i < mean.length; i++) {
            double d = other.mean[i] - mean[i];
            mean[i] += d * other.count / n;
            m2[i] += other.m2[i] + d * d * ((double) count * other.count / n);
        }
        count = n;
    }

    /** {@code (v - mean) / max(std, 1e-6)} per channel. */
    public float[] standardize(float[] v) {
        if (v.length != mean.length) {
            throw new IllegalArgumentException("vector of " + v.length + " floats, the statistics have " + mean.length);
        }
        if (count == 0) {
            throw new IllegalStateException("the statistics hold no vectors yet");
        }
        float[] z = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            z[i] = (float) ((v[i] - mean[i]) / Math.max(std(i), MIN_STD));
        }
        return z;
    }

    /** Population standard deviation of channel {@code i}: {@code sqrt(m2 / n)}. */
    public double std(int i) {
        return count == 0 ? 0 : Math.sqrt(m2[i] / count);
    }

    public double mean(int i) {
        return mean[i];
    }

    /** Vectors added (and merged) so far. */
    public long count() {
        return count;
    }

    public int dimension() {
        return mean.length;
    }

    public Pooling pooling() {
        return pooling;
    }

    /** The fingerprint (hex) of the model the vectors came from. */
    public String modelFingerprintHex() {
        return modelHex;
    }

    /**
     * Checks that these statistics were made for this model and pooling. A pooling with the default layer
     * ({@code state}) is accepted for statistics of one explicit layer ({@code state:11}); {@link Embedder}, which
     * knows the model's depth, then checks that it is the last layer.
     *
     * @throws IllegalArgumentException naming both sides if not
     */
    public void requireMatches(ModelFingerprint model, Pooling expectedPooling) {
        if (!modelHex.equals(model.hex())) {
            throw new IllegalArgumentException("embedding statistics were computed for model " + shortHex(modelHex)
                    + ", not for this model " + model.shortHex());
        }
        if (!pooling.compatibleWith(expectedPooling)) {
            throw new IllegalArgumentException(
                    "embedding statistics are for pooling " + pooling + ", but the embedder uses " + expectedPooling);
        }
    }

    /** Writes the statistics as JSON (see the class comment). */
    public void save(Path file) throws IOException {
        if (count == 0) {
            throw new IllegalStateException("refusing to save statistics that hold no vectors");
        }
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = json.createObjectNode();
        root.put("format", FORMAT);
        root.put("version", VERSION);
        root.put("model", modelHex);
        root.put("pooling", pooling.toString());
        root.put("dimension", mean.length);
        root.put("count", count);
        ArrayNode meanNode = root.putArray("mean");
        ArrayNode m2Node = root.putArray("m2");
        for (int i = 0; i < mean.length; i++) {
            meanNode.add(mean[i]);
            m2Node.add(m2[i]);
        }
        Files.write(file, json.writeValueAsBytes(root));
    }

    /**
     * Reads a statistics file and checks it is for {@code model} and {@code pooling} (explicit layers).
     *
     * @throws IOException if the file is unreadable or malformed, or made for another model or pooling; the
     *                     message names the file
     */
    public static EmbeddingStats load(Path file, ModelFingerprint model, Pooling pooling) throws IOException {
        EmbeddingStats stats = load(file);
        try {
            stats.requireMatches(model, pooling);
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": " + e.getMessage(), e);
        }
        return stats;
    }

    /**
     * Reads a statistics file without checking which model it belongs to.
     *
     * @throws IOException if the file is unreadable or malformed; the message names the file and the problem
     */
    public static EmbeddingStats load(Path file) throws IOException {
        JsonNode root;
        byte[] bytes = InputFiles.read(file, "a statistics file", InputFiles.SIDE_FILE_BYTES);
        try {
            root = new ObjectMapper().readTree(bytes);
        } catch (JacksonException e) {
            throw new IOException(file + ": not a JSON embedding-statistics file: " + e.getOriginalMessage(), e);
        }
        if (root == null
                || !root.isObject()
                || !FORMAT.equals(root.path("format").asText())) {
            throw new IOException(file + ": not an embedding-statistics file (\"format\" is not \"" + FORMAT + "\")");
        }
        int version = root.path("version").asInt(-1);
        if (version != VERSION) {
            throw new IOException(file + ": statistics format version " + root.path("version")
                    + " is not supported (this build reads version " + VERSION + ")");
        }
        String model = root.path("model").asText();
        if (model.length() != 2 * ModelFingerprint.BYTES || !model.chars().allMatch(HexFormat::isHexDigit)) {
            throw new IOException(file + ": \"model\" must be a " + 2 * ModelFingerprint.BYTES
                    + "-digit hex fingerprint, got \"" + model + "\"");
        }
        Pooling pooling;
        try {
            pooling = Pooling.parse(root.path("pooling").asText());
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": " + e.getMessage(), e);
        }
        int dimension = root.path("dimension").asInt(0);
        long count = root.path("count").asLong(0);
        if (dimension <= 0 || count <= 0) {
            throw new IOException(
                    file + ": \"dimension\" and \"count\" must be positive, got " + dimension + " and " + count);
        }
        double[] mean = readDoubles(file, root, "mean", dimension);
        double[] m2 = readDoubles(file, root, "m2", dimension);
        for (double v : m2) {
            if (v < 0) {
                throw new IOException(file + ": \"m2\" holds a negative sum of squares " + v);
            }
        }
        return new EmbeddingStats(model.toLowerCase(Locale.ROOT), pooling, mean, m2, count);
    }

    private static double[] readDoubles(Path file, JsonNode root, String field, int dimension) throws IOException {
        JsonNode node = root.path(field);
        if (!node.isArray() || node.size() != dimension) {
            throw new IOException(file + ": \"" + field + "\" must be an array of " + dimension + " numbers (the"
                    + " dimension), got " + (node.isArray() ? node.size() + " values" : node.getNodeType()));
        }
        double[] values = new double[dimension];
        for (int i = 0; i < dimension; i++) {
            JsonNode v = node.get(i);
            if (!v.isNumber() || !Double.isFinite(v.asDouble())) {
                throw new IOException(file + ": \"" + field + "\"[" + i + "] is not a finite number: " + v);
            }
            values[i] = v.asDouble();
        }
        return values;
    }

    private void requireSameKind(String otherModel, Pooling otherPooling, int otherDimension, String what) {
        if (!modelHex.equals(otherModel) || !pooling.equals(otherPooling) || mean.length != otherDimension) {
            throw new IllegalArgumentException("cannot " + what + " of model " + shortHex(otherModel) + ", pooling "
                    + otherPooling + ", dimension " + otherDimension + " into model " + shortHex(modelHex)
                    + ", pooling " + pooling + ", dimension " + mean.length);
        }
    }

    private static String shortHex(String hex) {
        return hex.substring(0, Math.min(12, hex.length()));
    }
}
