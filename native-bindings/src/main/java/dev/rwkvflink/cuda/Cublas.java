package dev.rwkvflink.cuda;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * A cuBLAS handle on one device: matrix products of float, half and bfloat16 matrices with float accumulation
 * ({@code CUBLAS_COMPUTE_32F}, algorithm {@code CUBLAS_GEMM_DEFAULT}).
 *
 * <p>Matrices are column-major, as in BLAS. A row-major product {@code Y = X W^T} with {@code X} of shape
 * [tokens, in], {@code W} of shape [out, in] and {@code Y} of shape [tokens, out] is
 * {@code gemmEx(Op.T, Op.N, out, tokens, in, 1, W, ., in, X, ., in, 0, Y, ., out)}.
 *
 * <p>{@code alpha} and {@code beta} are host floats (pointer mode host) written into two native floats that this
 * object owns, so a handle must be used by one thread at a time; give each thread its own handle. Calls are
 * queued on the stream set by {@link #setStream(CudaStream)} (the legacy default stream until then) and may be
 * captured into a {@link CudaGraph}; for capture, set a workspace first.
 */
public final class Cublas implements AutoCloseable {
    /** Whether an operand is used as stored or transposed ({@code cublasOperation_t}). */
    public enum Op {
        /** {@code CUBLAS_OP_N}: as stored. */
        N(0),
        /** {@code CUBLAS_OP_T}: transposed. */
        T(1);

        final int code;

        Op(int code) {
            this.code = code;
        }
    }

    /** Element types of the matrices ({@code cudaDataType} from {@code library_types.h}). */
    public enum DataType {
        /** {@code CUDA_R_32F}: float. */
        F32(0, 4),
        /** {@code CUDA_R_16F}: IEEE half. */
        F16(2, 2),
        /** {@code CUDA_R_16BF}: bfloat16. */
        BF16(14, 2);

        final int code;
        private final int bytes;

        DataType(int code, int bytes) {
            this.code = code;
            this.bytes = bytes;
        }

        /** Bytes per element. */
        public int bytes() {
            return bytes;
        }
    }

    private final CudaDevice device;
    private final MemorySegment handle;
    private final Arena arena;
    private final MemorySegment alpha;
    private final MemorySegment beta;
    private DeviceMemory workspace;
    private boolean closed;

    private Cublas(CudaDevice device, MemorySegment handle) {
        this.device = device;
        this.handle = handle;
        this.arena = Arena.ofShared();
        this.alpha = arena.allocate(JAVA_FLOAT);
        this.beta = arena.allocate(JAVA_FLOAT);
    }

    /** A new handle on {@code device} ({@code cublasCreate_v2} with the device's context current). */
    public static Cublas create(CudaDevice device) {
        NativeLibraries.cublas();
        device.makeCurrent();
        MemorySegment handle = CublasApi.cublasCreate();
        try {
            CublasApi.cublasSetPointerMode(handle, CublasApi.CUBLAS_POINTER_MODE_HOST);
        } catch (RuntimeException e) {
            CublasApi.cublasDestroy(handle);
            throw e;
        }
        return new Cublas(device, handle);
    }

    /** The loaded library's version, {@code major.minor.patch} ({@code cublasGetProperty}), e.g. {@code 13.0.0}. */
    public static String libraryVersion() {
        NativeLibraries.cublas();
        return CublasApi.cublasGetProperty(0) + "." + CublasApi.cublasGetProperty(1) + "."
                + CublasApi.cublasGetProperty(2);
    }

    /**
     * Queues later calls on {@code stream} ({@code cublasSetStream_v2}; {@code null}: the legacy default stream).
     * cuBLAS forgets a user workspace when the stream changes; this method sets it again.
     */
    public void setStream(CudaStream stream) {
        checkOpen();
        device.ensureCurrent();
        CublasApi.cublasSetStream(handle, CudaStream.handleOf(stream));
        if (workspace != null) {
            CublasApi.cublasSetWorkspace(handle, workspace.address(), workspace.bytes());
        }
    }

    /**
     * Gives cuBLAS its scratch memory ({@code cublasSetWorkspace_v2}) instead of its own pool, which graph capture
     * needs; NVIDIA suggests 32 MiB on Hopper. The memory must outlive its use by this handle.
     */
    public void setWorkspace(DeviceMemory workspace) {
        Objects.requireNonNull(workspace, "workspace");
        checkOpen();
        device.ensureCurrent();
        CublasApi.cublasSetWorkspace(handle, workspace.address(), workspace.bytes());
        this.workspace = workspace;
    }

    /** The version of the library behind this handle ({@code cublasGetVersion_v2}), e.g. 130000. */
    public int version() {
        checkOpen();
        return CublasApi.cublasGetVersion(handle);
    }

    /**
     * {@code C = alpha * op(A) op(B) + beta * C} for column-major matrices at device addresses
     * ({@code cublasGemmEx}): {@code op(A)} is m x k, {@code op(B)} is k x n, {@code C} is m x n.
     */
    public void gemmEx(
            Op transA,
            Op transB,
            int m,
            int n,
            int k,
            float alpha,
            long a,
            DataType aType,
            int lda,
            long b,
            DataType bType,
            int ldb,
            float beta,
            long c,
            DataType cType,
            int ldc) {
        checkOpen();
        device.ensureCurrent();
        this.alpha.set(JAVA_FLOAT, 0, alpha);
        this.beta.set(JAVA_FLOAT, 0, beta);
        CublasApi.cublasGemmEx(
                handle,
                transA.code,
                transB.code,
                m,
                n,
                k,
                this.alpha,
                a,
                aType.code,
                lda,
                b,
                bType.code,
                ldb,
                this.beta,
                c,
                cType.code,
                ldc,
                CublasApi.CUBLAS_COMPUTE_32F,
                CublasApi.CUBLAS_GEMM_DEFAULT);
    }

    /**
     * {@link #gemmEx} over {@code batchCount} matrix triples, the i-th at {@code a + i * strideA} etc. (strides in
     * elements, not bytes) ({@code cublasGemmStridedBatchedEx}).
     */
    public void gemmStridedBatchedEx(
            Op transA,
            Op transB,
            int m,
            int n,
            int k,
            float alpha,
            long a,
            DataType aType,
            int lda,
            long strideA,
            long b,
            DataType bType,
            int ldb,
            long strideB,
            float beta,
            long c,
            DataType cType,
            int ldc,
            long strideC,
            int batchCount) {
        checkOpen();
        device.ensureCurrent();
        this.alpha.set(JAVA_FLOAT, 0, alpha);
        this.beta.set(JAVA_FLOAT, 0, beta);
        CublasApi.cublasGemmStridedBatchedEx(
                handle,
                transA.code,
                transB.code,
                m,
                n,
                k,
                this.alpha,
                a,
                aType.code,
                lda,
                strideA,
                b,
                bType.code,
                ldb,
                strideB,
                this.beta,
                c,
                cType.code,
                ldc,
                strideC,
                batchCount,
                CublasApi.CUBLAS_COMPUTE_32F,
                CublasApi.CUBLAS_GEMM_DEFAULT);
    }

    /** Destroys the handle ({@code cublasDestroy_v2}); idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        device.ensureCurrent();
        CublasApi.cublasDestroy(handle);
        arena.close();
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("cuBLAS handle already destroyed");
        }
    }
}
