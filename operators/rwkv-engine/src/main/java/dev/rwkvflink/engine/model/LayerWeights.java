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
            throw new IllegalArgumentException(
                    file.path() + ": " + prefix + name + " has " + v.length + " values, expected " + n);
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

    /**
     * The first matrix of a low-rank (LoRA) pair, "rank x in": its rank is read from the file (ranks vary by model
     * size), its input width must be {@code in} (a narrower matrix would be read past its rows).
     */
    Tensor lora(String name, int in) {
        Tensor t = file.get(prefix + name);
        if (t.rank() != 2 || t.rows() < 1 || t.cols() != in) {
            throw new IllegalArgumentException(file.path() + ": " + t + " is not rank x " + in
                    + " (a low-rank matrix over the model's width " + in + ")");
        }
        return t;
    }

    boolean has(String name) {
        return file.has(prefix + name);
    }
}
