package dev.rwkvflink.engine.embed;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.rwkvflink.engine.format.InputFiles;
import dev.rwkvflink.engine.state.ModelFingerprint;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * A softmax classifier over embeddings: {@code p = softmax(W e + b)}, label = argmax. Trained by the {@code fit}
 * job for one model and one pooling, and refused with any other.
 *
 * <p>File (JSON): {@code {"format": "rwkv-flink-linear-head", "version": 1, "model": "<fingerprint hex>",
 * "pooling": "hidden", "labels": [...K], "weights": [[...D] x K], "bias": [...K]}}.
 */
public final class LinearHead {
    public static final String FORMAT = "rwkv-flink-linear-head";
    public static final int VERSION = 1;
    private static final ObjectMapper JSON = new ObjectMapper();

    private final ModelFingerprint model;
    private final Pooling pooling;
    private final List<String> labels;
    private final float[][] weights;
    private final float[] bias;

    public LinearHead(ModelFingerprint model, Pooling pooling, List<String> labels, float[][] weights, float[] bias) {
        if (labels.size() < 2 || weights.length != labels.size() || bias.length != labels.size()) {
            throw new IllegalArgumentException("a head needs >= 2 labels with one weight row and one bias each (labels "
                    + labels.size() + ", rows " + weights.length + ", biases " + bias.length + ")");
        }
        for (float[] row : weights) {
            if (row.length != weights[0].length || row.length == 0) {
                throw new IllegalArgumentException("weight rows must all have the embedding's dimension");
            }
        }
        this.model = model;
        this.pooling = pooling;
        this.labels = List.copyOf(labels);
        this.weights = weights;
        this.bias = bias;
    }

    public List<String> labels() {
        return labels;
    }

    public int dimension() {
        return weights[0].length;
    }

    public ModelFingerprint model() {
        return model;
    }

    public Pooling pooling() {
        return pooling;
    }

    /** Class probabilities of an embedding, in {@link #labels()} order. */
    public float[] probabilities(float[] embedding) {
        if (embedding.length != dimension()) {
            throw new IllegalArgumentException(
                    "embedding of dimension " + embedding.length + ", head expects " + dimension());
        }
        double[] z = new double[labels.size()];
        for (int k = 0; k < z.length; k++) {
            double acc = bias[k];
            float[] w = weights[k];
            for (int i = 0; i < w.length; i++) {
                acc += (double) w[i] * embedding[i];
            }
            z[k] = acc;
        }
        softmaxInPlace(z);
        float[] p = new float[z.length];
        for (int k = 0; k < z.length; k++) {
            p[k] = (float) z[k];
        }
        return p;
    }

    /** {@code z <- exp(z - max z) / sum exp(z - max z)}: the numerically stable softmax. */
    static void softmaxInPlace(double[] z) {
        double max = Double.NEGATIVE_INFINITY;
        for (double v : z) {
            max = Math.max(max, v);
        }
        double sum = 0;
        for (int k = 0; k < z.length; k++) {
            z[k] = Math.exp(z[k] - max);
            sum += z[k];
        }
        for (int k = 0; k < z.length; k++) {
            z[k] /= sum;
        }
    }

    /** The most probable label for these probabilities (the first on ties). */
    public String label(float[] probabilities) {
        int best = 0;
        for (int k = 1; k < probabilities.length; k++) {
            if (probabilities[k] > probabilities[best]) {
                best = k;
            }
        }
        return labels.get(best);
    }

    public void save(Path file) throws IOException {
        ObjectNode root = JSON.createObjectNode();
        root.put("format", FORMAT);
        root.put("version", VERSION);
        root.put("model", model.hex());
        root.put("pooling", pooling.toString());
        ArrayNode l = root.putArray("labels");
        labels.forEach(l::add);
        ArrayNode w = root.putArray("weights");
        for (float[] row : weights) {
            ArrayNode r = w.addArray();
            for (float f : row) {
                r.add(f);
            }
        }
        ArrayNode b = root.putArray("bias");
        for (float f : bias) {
            b.add(f);
        }
        Files.writeString(file, JSON.writeValueAsString(root));
    }

    /** Reads a head and checks it was trained for {@code expectedModel} and {@code expectedPooling}. */
    public static LinearHead load(Path file, ModelFingerprint expectedModel, Pooling expectedPooling)
            throws IOException {
        JsonNode root;
        try {
            root = JSON.readTree(InputFiles.read(file, "a head file", InputFiles.SIDE_FILE_BYTES));
        } catch (IOException e) {
            throw new IOException(file + ": not a readable head file: " + e.getMessage(), e);
        }
        if (!FORMAT.equals(root.path("format").asText()) || root.path("version").asInt() != VERSION) {
            throw new IOException(file + ": not a " + FORMAT + " version " + VERSION + " file");
        }
        ModelFingerprint model;
        try {
            model = ModelFingerprint.ofBytes(
                    HexFormat.of().parseHex(root.path("model").asText()));
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": bad model fingerprint", e);
        }
        if (!model.equals(expectedModel)) {
            throw new IOException(file + ": head was trained on " + model + ", the loaded model is " + expectedModel);
        }
        Pooling pooling = Pooling.parse(root.path("pooling").asText());
        if (!pooling.compatibleWith(expectedPooling)) {
            throw new IOException(
                    file + ": head was trained on pooling " + pooling + ", the job uses " + expectedPooling);
        }
        List<String> labels = new ArrayList<>();
        root.path("labels").forEach(n -> labels.add(n.asText()));
        JsonNode w = root.path("weights");
        float[][] weights = new float[w.size()][];
        for (int k = 0; k < w.size(); k++) {
            weights[k] = floats(w.get(k));
        }
        try {
            return new LinearHead(model, pooling, labels, weights, floats(root.path("bias")));
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": " + e.getMessage(), e);
        }
    }

    private static float[] floats(JsonNode array) {
        float[] out = new float[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) array.get(i).asDouble();
        }
        return out;
    }
}
