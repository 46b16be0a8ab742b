package dev.rwkvflink.cuda;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.cuda.Cublas.DataType;
import dev.rwkvflink.cuda.Cublas.Op;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * cuBLAS products against a float64 reference on the host. Needs a GPU; skips itself elsewhere.
 *
 * <p>Inputs are rounded to the upload type on the host first, so the reference multiplies exactly the values the
 * GPU sees; what remains is float accumulation. Tolerance: |gpu - ref| <= 1e-5 * sum_p |alpha a_ip b_pj| +
 * |beta c_ij|, i.e. 1e-5 relative to the magnitude of the terms (k <= 256: k * 2^-24 < 1.6e-5 is the worst case
 * for a plain float sum, the observed error is far smaller).
 */
class CublasTest {
    private static final double TOLERANCE = 1e-5;

    /** A column-major matrix as stored on the host (already rounded to its type) and on the device. */
    private record Matrix(int rows, int cols, float[] values, DeviceMemory device) implements AutoCloseable {
        float at(int row, int col) {
            return values[row + col * rows];
        }

        @Override
        public void close() {
            device.close();
        }
    }

    private static float round(float v, DataType type) {
        return switch (type) {
            case F32 -> v;
            case BF16 -> HalfFloat.BF16.round(v);
            case F16 -> HalfFloat.FP16.round(v);
        };
    }

    private static Matrix matrix(CudaDevice gpu, Random random, int rows, int cols, DataType type) {
        float[] values = Gpu.randomFloats(random, rows * cols);
        for (int i = 0; i < values.length; i++) {
            values[i] = round(values[i], type);
        }
        DeviceMemory memory = gpu.alloc((long) type.bytes() * values.length);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate((long) type.bytes() * values.length);
            switch (type) {
                case F32 -> MemorySegment.copy(values, 0, host, JAVA_FLOAT, 0, values.length);
                case BF16 -> HalfFloat.BF16.write(values, host, 0);
                case F16 -> HalfFloat.FP16.write(values, host, 0);
            }
            memory.copyFromHost(host, 0, host.byteSize(), null);
            gpu.synchronize();
        }
        return new Matrix(rows, cols, values, memory);
    }

    private static float opAt(Matrix m, Op op, int row, int col) {
        return op == Op.N ? m.at(row, col) : m.at(col, row);
    }

    /** C = alpha op(A) op(B) + beta C0 on the GPU, checked element by element against float64. */
    private static void checkGemm(Op transA, Op transB, int m, int n, int k, DataType inType, float alpha, float beta) {
        CudaDevice gpu = Gpu.device();
        long seed = Gpu.seed();
        Random random = new Random(seed);
        try (Cublas blas = Cublas.create(gpu);
                Matrix a = transA == Op.N ? matrix(gpu, random, m, k, inType) : matrix(gpu, random, k, m, inType);
                Matrix b = transB == Op.N ? matrix(gpu, random, k, n, inType) : matrix(gpu, random, n, k, inType);
                Matrix c = matrix(gpu, random, m, n, DataType.F32)) {
            blas.gemmEx(
                    transA,
                    transB,
                    m,
                    n,
                    k,
                    alpha,
                    a.device().address(),
                    inType,
                    a.rows(),
                    b.device().address(),
                    inType,
                    b.rows(),
                    beta,
                    c.device().address(),
                    DataType.F32,
                    m);
            float[] result = Gpu.download(c.device(), m * n);
            for (int j = 0; j < n; j++) {
                for (int i = 0; i < m; i++) {
                    double sum = 0;
                    double magnitude = 0;
                    for (int p = 0; p < k; p++) {
                        double term = (double) alpha * opAt(a, transA, i, p) * opAt(b, transB, p, j);
                        sum += term;
                        magnitude += Math.abs(term);
                    }
                    sum += (double) beta * c.at(i, j);
                    magnitude += Math.abs((double) beta * c.at(i, j));
                    double error = Math.abs(result[i + j * m] - sum);
                    if (!(error <= TOLERANCE * magnitude + 1e-30)) {
                        throw new AssertionError(String.format(
                                "%s%s %s m=%d n=%d k=%d: C(%d,%d) = %s, expected %s"
                                        + " (error %.3g, allowed %.3g), %s",
                                transA,
                                transB,
                                inType,
                                m,
                                n,
                                k,
                                i,
                                j,
                                result[i + j * m],
                                sum,
                                error,
                                TOLERANCE * magnitude,
                                Gpu.seedText(seed)));
                    }
                }
            }
        }
    }

    @Test
    void floatProductsInEveryTransposeCombination() {
        for (Op transA : Op.values()) {
            for (Op transB : Op.values()) {
                checkGemm(transA, transB, 96, 5, 128, DataType.F32, 1f, 0f);
            }
        }
    }

    @Test
    void bfloat16ProductsAccumulateInFloat() {
        checkGemm(Op.T, Op.N, 96, 5, 128, DataType.BF16, 1f, 0f);
        checkGemm(Op.N, Op.N, 64, 33, 256, DataType.BF16, 1f, 0f);
        checkGemm(Op.T, Op.N, 256, 64, 256, DataType.BF16, 1f, 0f);
    }

    @Test
    void halfProductsAccumulateInFloat() {
        checkGemm(Op.T, Op.N, 96, 5, 128, DataType.F16, 1f, 0f);
    }

    @Test
    void alphaAndBetaScaleTheProductAndTheOldResult() {
        checkGemm(Op.T, Op.N, 48, 7, 64, DataType.F32, 0.5f, 2f);
        checkGemm(Op.T, Op.N, 48, 7, 64, DataType.BF16, -1.25f, 1f);
    }

    /** The layout of a linear layer on row-major tensors: Y[tokens, out] = X[tokens, in] W[out, in]^T. */
    @Test
    void aRowMajorLinearLayerIsTransposeANoTransposeB() {
        CudaDevice gpu = Gpu.device();
        long seed = Gpu.seed();
        Random random = new Random(seed);
        int tokens = 3, in = 64, out = 40;
        float[] x = Gpu.randomFloats(random, tokens * in); // row-major [tokens, in]
        float[] w = Gpu.randomFloats(random, out * in); // row-major [out, in]
        for (int i = 0; i < w.length; i++) {
            w[i] = HalfFloat.BF16.round(w[i]);
        }
        for (int i = 0; i < x.length; i++) {
            x[i] = HalfFloat.BF16.round(x[i]);
        }
        try (Arena arena = Arena.ofConfined();
                Cublas blas = Cublas.create(gpu);
                DeviceMemory dx = gpu.alloc(2L * x.length);
                DeviceMemory dw = gpu.alloc(2L * w.length);
                DeviceMemory dy = gpu.alloc(4L * tokens * out)) {
            MemorySegment hx = arena.allocate(2L * x.length);
            MemorySegment hw = arena.allocate(2L * w.length);
            HalfFloat.BF16.write(x, hx, 0);
            HalfFloat.BF16.write(w, hw, 0);
            dx.copyFromHost(hx, 0, hx.byteSize(), null);
            dw.copyFromHost(hw, 0, hw.byteSize(), null);
            blas.gemmEx(
                    Op.T,
                    Op.N,
                    out,
                    tokens,
                    in,
                    1f,
                    dw.address(),
                    DataType.BF16,
                    in,
                    dx.address(),
                    DataType.BF16,
                    in,
                    0f,
                    dy.address(),
                    DataType.F32,
                    out);
            float[] y = Gpu.download(dy, tokens * out); // row-major [tokens, out]
            for (int t = 0; t < tokens; t++) {
                for (int o = 0; o < out; o++) {
                    double sum = 0, magnitude = 0;
                    for (int i = 0; i < in; i++) {
                        double term = (double) x[t * in + i] * w[o * in + i];
                        sum += term;
                        magnitude += Math.abs(term);
                    }
                    assertEquals(
                            sum,
                            y[t * out + o],
                            TOLERANCE * magnitude,
                            "Y[" + t + "," + o + "], " + Gpu.seedText(seed));
                }
            }
        }
    }

    @Test
    void stridedBatchesAreIndependentProducts() {
        CudaDevice gpu = Gpu.device();
        long seed = Gpu.seed();
        Random random = new Random(seed);
        int m = 32, n = 9, k = 64, batches = 3;
        long strideA = (long) k * m + 8, strideB = (long) k * n + 8, strideC = (long) m * n + 4; // elements, padded
        try (Cublas blas = Cublas.create(gpu);
                Matrix a = matrix(gpu, random, (int) strideA, batches, DataType.BF16); // batches side by side
                Matrix b = matrix(gpu, random, (int) strideB, batches, DataType.BF16);
                DeviceMemory c = gpu.alloc(4L * strideC * batches)) {
            c.fill32(0, strideC * batches, Float.floatToRawIntBits(Float.NaN), null);
            blas.gemmStridedBatchedEx(
                    Op.T,
                    Op.N,
                    m,
                    n,
                    k,
                    1f,
                    a.device().address(),
                    DataType.BF16,
                    k,
                    strideA,
                    b.device().address(),
                    DataType.BF16,
                    k,
                    strideB,
                    0f,
                    c.address(),
                    DataType.F32,
                    m,
                    strideC,
                    batches);
            float[] result = Gpu.download(c, (int) (strideC * batches));
            for (int batch = 0; batch < batches; batch++) {
                for (int j = 0; j < n; j++) {
                    for (int i = 0; i < m; i++) {
                        double sum = 0, magnitude = 0;
                        for (int p = 0; p < k; p++) {
                            // op(A) = A^T with A stored k x m (lda = k); B stored k x n (ldb = k)
                            double term = (double) a.values()[(int) (batch * strideA) + p + i * k]
                                    * b.values()[(int) (batch * strideB) + p + j * k];
                            sum += term;
                            magnitude += Math.abs(term);
                        }
                        assertEquals(
                                sum,
                                result[(int) (batch * strideC) + i + j * m],
                                TOLERANCE * magnitude,
                                "batch " + batch + " C(" + i + "," + j + "), " + Gpu.seedText(seed));
                    }
                }
                for (long pad = batch * strideC + (long) m * n; pad < (batch + 1) * strideC; pad++) {
                    assertTrue(
                            Float.isNaN(result[(int) pad]), "padding untouched at " + pad + ", " + Gpu.seedText(seed));
                }
            }
        }
    }

    @Test
    void aProductCanBeCapturedIntoAGraphOnAStream() {
        CudaDevice gpu = Gpu.device();
        long seed = Gpu.seed();
        Random random = new Random(seed);
        int m = 64, n = 8, k = 128;
        try (Cublas blas = Cublas.create(gpu);
                CudaStream stream = gpu.newStream();
                DeviceMemory workspace = gpu.alloc(32L << 20);
                Matrix a = matrix(gpu, random, k, m, DataType.BF16);
                Matrix b = matrix(gpu, random, k, n, DataType.BF16);
                DeviceMemory c = gpu.alloc(4L * m * n)) {
            blas.setWorkspace(workspace);
            blas.setStream(stream);
            // one call before capturing, as frameworks do: cuBLAS and lazy kernel loading set themselves up
            blas.gemmEx(
                    Op.T,
                    Op.N,
                    m,
                    n,
                    k,
                    1f,
                    a.device().address(),
                    DataType.BF16,
                    k,
                    b.device().address(),
                    DataType.BF16,
                    k,
                    0f,
                    c.address(),
                    DataType.F32,
                    m);
            c.fill32(0, (long) m * n, 0, stream);
            stream.beginCapture();
            blas.gemmEx(
                    Op.T,
                    Op.N,
                    m,
                    n,
                    k,
                    1f,
                    a.device().address(),
                    DataType.BF16,
                    k,
                    b.device().address(),
                    DataType.BF16,
                    k,
                    1f,
                    c.address(),
                    DataType.F32,
                    m); // C += A^T B
            try (CudaGraph graph = stream.endCapture()) {
                stream.synchronize();
                float[] untouched = Gpu.download(c, m * n);
                assertEquals(0f, untouched[0], "capturing does not run the product, " + Gpu.seedText(seed));
                graph.launch(stream);
                graph.launch(stream);
                stream.synchronize();
            }
            float[] result = Gpu.download(c, m * n);
            for (int j = 0; j < n; j++) {
                for (int i = 0; i < m; i++) {
                    double sum = 0, magnitude = 0;
                    for (int p = 0; p < k; p++) {
                        double term = (double) a.at(p, i) * b.at(p, j);
                        sum += term;
                        magnitude += Math.abs(term);
                    }
                    assertEquals(
                            2 * sum,
                            result[i + j * m],
                            2 * TOLERANCE * magnitude,
                            "C(" + i + "," + j + "), " + Gpu.seedText(seed));
                }
            }
            blas.setStream(null);
        }
    }

    @Test
    void versionsAreReported() {
        CudaDevice gpu = Gpu.device();
        try (Cublas blas = Cublas.create(gpu)) {
            assertTrue(blas.version() >= 120000, "cublasGetVersion " + blas.version());
            assertTrue(Cublas.libraryVersion().matches("1[2-9]\\.\\d+\\.\\d+"), Cublas.libraryVersion());
            System.out.println("cuBLAS " + Cublas.libraryVersion() + " (" + blas.version() + ")");
        }
    }

    @Test
    void invalidArgumentsNameTheCallAndTheStatus() {
        CudaDevice gpu = Gpu.device();
        try (Cublas blas = Cublas.create(gpu);
                DeviceMemory memory = gpu.alloc(4096)) {
            CudaException e = assertThrows(
                    CudaException.class,
                    () -> blas.gemmEx(
                            Op.N,
                            Op.N,
                            16,
                            16,
                            16,
                            1f,
                            memory.address(),
                            DataType.F32,
                            8,
                            memory.address(),
                            DataType.F32,
                            16,
                            0f,
                            memory.address(),
                            DataType.F32,
                            16)); // lda 8 < m 16
            assertEquals("cublasGemmEx", e.call());
            assertEquals("CUBLAS_STATUS_INVALID_VALUE", e.statusName());
            assertEquals(7, e.status());
        }
    }
}
