package dev.rwkvflink.engine.model;

import dev.rwkvflink.engine.format.WeightFile;
import dev.rwkvflink.engine.tensor.Tensor;

/** Reads one layer's tensors from a canonical {@link WeightFile}: small ones as float arrays, matrices as is. */
final class LayerWeights {
    private final WeightFile file;
    private final String prefix;

    LayerWeights(WeightFile file, int layer) {
        this.file = file;
        this.prefix = "blocks." + layer + ".";
    }

    /** A vector (any shape, read flat) as fp32, e.g. {@code vec("att.time_mix_k")}. */
    float[] vec(String name) {
        return file.get(prefix + name).toFloatArray();
    }

    /** A vector of exactly {@code n} values. */
    float[] vec(String name, int n) {
        float[] v = vec(name);
        if (v.length != n) {
            throw new IllegalArgumentException(file.path() + ": " + prefix + name + " has " + v.length
                    + " values, expected " + n);
        }
        return v;
    }

    /** A projection matrix, "out x in", checked against the expected shape. */
    Tensor mat(String name, int out, int in) {
        Tensor t = file.get(prefix + name);
        if (t.rows() != out || t.cols() != in) {
            throw new IllegalArgumentException(file.path() + ": " + t + " is not " + out + " x " + in);
        }
        return t;
    }

    /** A matrix whose shape is read from the file (LoRA ranks vary by model size). */
    Tensor mat(String name) {
        return file.get(prefix + name);
    }

    boolean has(String name) {
        return file.has(prefix + name);
    }
}
