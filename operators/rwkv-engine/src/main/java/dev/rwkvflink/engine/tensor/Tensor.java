package dev.rwkvflink.engine.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * A named weight tensor: a shape in PyTorch order (row-major, last dimension contiguous), an element type and the
 * raw bytes in a {@link MemorySegment} (often a slice of a model file read into memory or mapped). A tensor of any rank is also
 * seen as a matrix of {@link #rows()} x {@link #cols()} where {@code cols} is the last dimension; matrices used in
 * projections are "out x in", so output {@code r} is the dot product of row {@code r} with the input.
 */
public final class Tensor {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;

    private final String name;
    private final WeightType type;
    private final long[] shape;
    private final MemorySegment data;
    /** {@link #halvesFinite}, once scanned: 0 not yet, 1 yes, 2 no. */
    private volatile byte finiteHalves;

    private Tensor(String name, WeightType type, long[] shape, MemorySegment data) {
        this.name = name;
        this.type = type;
        this.shape = shape.clone();
        this.data = data;
    }

    /** Wraps {@code data}, checking that its size is exactly what {@code type} and {@code shape} need. */
    public static Tensor of(String name, WeightType type, long[] shape, MemorySegment data) {
        long n = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException(name + ": negative dimension in " + Arrays.toString(shape));
            }
            n = Math.multiplyExact(n, d);
        }
        if (type.isQuantized() && shape.length > 0 && shape[shape.length - 1] % type.blockSize != 0) {
            throw new IllegalArgumentException(name + ": " + type + " rows must be a multiple of " + type.blockSize
                    + " elements, shape " + Arrays.toString(shape));
        }
        long bytes = type.bytesFor(n);
        if (data.byteSize() != bytes) {
            throw new IllegalArgumentException(name + ": " + type + " " + Arrays.toString(shape) + " needs " + bytes
                    + " bytes, got " + data.byteSize());
        }
        return new Tensor(name, type, shape, data);
    }

    /** A float32 tensor on the heap holding {@code values}. */
    public static Tensor ofFloats(String name, float[] values, long... shape) {
        MemorySegment seg = Arena.ofAuto().allocate((long) values.length * 4, 64);
        MemorySegment.copy(values, 0, seg, F32, 0, values.length);
        return of(name, WeightType.F32, shape, seg);
    }

    public String name() {
        return name;
    }

    public WeightType type() {
        return type;
    }

    public long[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    public long dim(int i) {
        return shape[i < 0 ? shape.length + i : i];
    }

    public MemorySegment data() {
        return data;
    }

    public long size() {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    /** Length of the last dimension (1 for a scalar). */
    public int cols() {
        return shape.length == 0 ? 1 : Math.toIntExact(shape[shape.length - 1]);
    }

    /** Product of all dimensions but the last. */
    public int rows() {
        return Math.toIntExact(size() / Math.max(1, cols()));
    }

    /**
     * Whether this is an F16 tensor none of whose elements is Inf or NaN (exponent field 31), so that a kernel may
     * convert its halves without handling those (VectorBackend). Scanned once, on first call; false for other
     * types.
     */
    public boolean halvesFinite() {
        byte known = finiteHalves;
        if (known == 0) {
            known = type == WeightType.F16 && noInfOrNaNHalf(data) ? (byte) 1 : (byte) 2;
            finiteHalves = known;
        }
        return known == 1;
    }

    private static boolean noInfOrNaNHalf(MemorySegment halves) {
        long n = halves.byteSize() / 2;
        for (long i = 0; i < n; i++) {
            if ((halves.get(U16, 2 * i) & 0x7C00) == 0x7C00) {
                return false;
            }
        }
        return true;
    }

    /** Bytes of one row (of {@link #cols()} elements). */
    public long rowBytes() {
        return type.bytesFor(cols());
    }

    /** The same bytes seen with another shape of the same element count. */
    public Tensor reshape(long... newShape) {
        return of(name, type, newShape, data);
    }

    /** The same tensor under another name. */
    public Tensor rename(String newName) {
        return new Tensor(newName, type, shape, data);
    }

    /** Rows {@code [from, from + count)} of the matrix view, as a 2-D tensor sharing the bytes. */
    public Tensor rowSlice(int from, int count) {
        long rb = rowBytes();
        return of(
                name + "[" + from + ":" + (from + count) + "]",
                type,
                new long[] {count, cols()},
                data.asSlice(from * rb, count * rb));
    }

    /** Element {@code i} (flat index) as a float; quantized elements are dequantized ({@code d * q + m}). */
    public float getFloat(long i) {
        return switch (type) {
            case F32 -> data.get(F32, i * 4);
            case F16 -> Float.float16ToFloat(data.get(U16, i * 2));
            case BF16 -> Float.intBitsToFloat((data.get(U16, i * 2) & 0xFFFF) << 16);
            default -> {
                long off = (i / QuantBlock.SIZE) * type.blockBytes;
                int[] q = new int[QuantBlock.SIZE];
                QuantBlock.quants(type, data, off, q);
                yield QuantBlock.scale(data, off) * q[(int) (i % QuantBlock.SIZE)] + QuantBlock.min(type, data, off);
            }
        };
    }

    /** Dequantizes row {@code r} of the matrix view into {@code dst[off .. off + cols)}. */
    public void readRow(int r, float[] dst, int off) {
        int n = cols();
        long base = r * rowBytes();
        switch (type) {
            case F32 -> MemorySegment.copy(data, F32, base, dst, off, n);
            case F16 -> {
                for (int j = 0; j < n; j++) {
                    dst[off + j] = Float.float16ToFloat(data.get(U16, base + 2L * j));
                }
            }
            case BF16 -> {
                for (int j = 0; j < n; j++) {
                    dst[off + j] = Float.intBitsToFloat((data.get(U16, base + 2L * j) & 0xFFFF) << 16);
                }
            }
            default -> {
                int[] q = new int[QuantBlock.SIZE];
                for (int b = 0; b < n / QuantBlock.SIZE; b++) {
                    long bo = base + (long) b * type.blockBytes;
                    QuantBlock.quants(type, data, bo, q);
                    float d = QuantBlock.scale(data, bo);
                    float m = QuantBlock.min(type, data, bo);
                    for (int j = 0; j < QuantBlock.SIZE; j++) {
                        dst[off + b * QuantBlock.SIZE + j] = d * q[j] + m;
                    }
                }
            }
        }
    }

    /** All elements as floats. Exact for every type except Q4_1/Q5_1, where {@code d*q + m} rounds once to fp32. */
    public float[] toFloatArray() {
        float[] out = new float[Math.toIntExact(size())];
        int c = cols();
        for (int r = 0; r < rows(); r++) {
            readRow(r, out, r * c);
        }
        return out;
    }

    /** All elements as doubles, exactly (quantized values are {@code d * q + m} evaluated in double). */
    public double[] toDoubleArray() {
        double[] out = new double[Math.toIntExact(size())];
        if (!type.isQuantized()) {
            for (int i = 0; i < out.length; i++) {
                out[i] = getFloat(i);
            }
            return out;
        }
        int[] q = new int[QuantBlock.SIZE];
        for (int b = 0; b < out.length / QuantBlock.SIZE; b++) {
            long bo = (long) b * type.blockBytes;
            QuantBlock.quants(type, data, bo, q);
            double d = QuantBlock.scale(data, bo);
            double m = QuantBlock.min(type, data, bo);
            for (int j = 0; j < QuantBlock.SIZE; j++) {
                out[b * QuantBlock.SIZE + j] = d * q[j] + m;
            }
        }
        return out;
    }

    /** A float32 copy on the heap (same name and shape). */
    public Tensor toF32() {
        return type == WeightType.F32 ? this : ofFloats(name, toFloatArray(), shape);
    }

    /** A 2-D tensor's transpose as a float32 copy (for small matrices whose file orientation is "in x out"). */
    public Tensor transposed() {
        if (shape.length != 2) {
            throw new IllegalArgumentException(name + ": transpose needs 2-D, shape " + Arrays.toString(shape));
        }
        int r = rows();
        int c = cols();
        float[] src = toFloatArray();
        float[] t = new float[src.length];
        for (int i = 0; i < r; i++) {
            for (int j = 0; j < c; j++) {
                t[j * r + i] = src[i * c + j];
            }
        }
        return ofFloats(name, t, c, r);
    }

    @Override
    public String toString() {
        return name + " " + type + " " + Arrays.toString(shape);
    }
}
