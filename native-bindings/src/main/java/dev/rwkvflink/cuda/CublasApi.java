package dev.rwkvflink.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * The cuBLAS functions this project calls ({@code libcublas.so.13}), one downcall handle each, with the C prototype
 * from CUDA 13's {@code cublas_api.h} above it. {@code cublas_v2.h} maps the handle functions to {@code _v2}
 * symbols ({@code #define cublasCreate cublasCreate_v2}); the handles bind those. Each method checks the
 * {@code cublasStatus_t} and throws {@link CudaException} (named by {@code cublasGetStatusName} and
 * {@code cublasGetStatusString}) for anything but {@code CUBLAS_STATUS_SUCCESS}.
 *
 * <p>The class loads cuBLAS when it is initialised: callers reach it only after {@link NativeLibraries#cublas()}
 * succeeded (see {@link Cublas}).
 */
final class CublasApi {
    private static final NativeLibrary LIB = NativeLibraries.cublas();

    /** {@code CUBLAS_COMPUTE_32F}: float accumulation, no down-conversion of float inputs. */
    static final int CUBLAS_COMPUTE_32F = 68;
    /** {@code CUBLAS_GEMM_DEFAULT}: cuBLAS picks the algorithm (tensor cores where the types allow). */
    static final int CUBLAS_GEMM_DEFAULT = -1;
    /** {@code CUBLAS_POINTER_MODE_HOST}: alpha and beta are read from host memory at the call. */
    static final int CUBLAS_POINTER_MODE_HOST = 0;

    private CublasApi() {}

    // const char* cublasGetStatusName(cublasStatus_t status);
    private static final MethodHandle CUBLAS_GET_STATUS_NAME =
            LIB.downcall(FunctionDescriptor.of(ADDRESS, JAVA_INT), "cublasGetStatusName");

    // const char* cublasGetStatusString(cublasStatus_t status);
    private static final MethodHandle CUBLAS_GET_STATUS_STRING =
            LIB.downcall(FunctionDescriptor.of(ADDRESS, JAVA_INT), "cublasGetStatusString");

    /** Throws {@link CudaException} unless {@code status} is {@code CUBLAS_STATUS_SUCCESS}. */
    static void check(String call, int status) {
        if (status != 0) {
            throw new CudaException(
                    call,
                    status,
                    statusText(CUBLAS_GET_STATUS_NAME, status, "cublasStatus_t " + status),
                    statusText(CUBLAS_GET_STATUS_STRING, status, ""),
                    "");
        }
    }

    private static String statusText(MethodHandle lookup, int status, String fallback) {
        try {
            return Native.string((MemorySegment) lookup.invokeExact(status), fallback);
        } catch (Throwable t) {
            return fallback;
        }
    }

    // cublasStatus_t cublasGetProperty(libraryPropertyType type, int* value);
    private static final MethodHandle CUBLAS_GET_PROPERTY =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS), "cublasGetProperty");

    /** A {@code libraryPropertyType}: MAJOR_VERSION = 0, MINOR_VERSION = 1, PATCH_LEVEL = 2. */
    static int cublasGetProperty(int property) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = arena.allocate(JAVA_INT);
            check("cublasGetProperty", (int) CUBLAS_GET_PROPERTY.invokeExact(property, value));
            return value.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // cublasStatus_t cublasCreate_v2(cublasHandle_t* handle);
    private static final MethodHandle CUBLAS_CREATE =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS), "cublasCreate_v2");

    static MemorySegment cublasCreate() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment handle = arena.allocate(ADDRESS);
            check("cublasCreate_v2", (int) CUBLAS_CREATE.invokeExact(handle));
            return handle.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // cublasStatus_t cublasDestroy_v2(cublasHandle_t handle);
    private static final MethodHandle CUBLAS_DESTROY =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS), "cublasDestroy_v2");

    static void cublasDestroy(MemorySegment handle) {
        try {
            check("cublasDestroy_v2", (int) CUBLAS_DESTROY.invokeExact(handle));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // cublasStatus_t cublasGetVersion_v2(cublasHandle_t handle, int* version);
    private static final MethodHandle CUBLAS_GET_VERSION =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), "cublasGetVersion_v2");

    static int cublasGetVersion(MemorySegment handle) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment version = arena.allocate(JAVA_INT);
            check("cublasGetVersion_v2", (int) CUBLAS_GET_VERSION.invokeExact(handle, version));
            return version.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId);
    private static final MethodHandle CUBLAS_SET_STREAM =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), "cublasSetStream_v2");

    static void cublasSetStream(MemorySegment handle, MemorySegment stream) {
        try {
            check("cublasSetStream_v2", (int) CUBLAS_SET_STREAM.invokeExact(handle, stream));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace, size_t workspaceSizeInBytes);
    private static final MethodHandle CUBLAS_SET_WORKSPACE =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG), "cublasSetWorkspace_v2");

    static void cublasSetWorkspace(MemorySegment handle, long workspace, long bytes) {
        try {
            check("cublasSetWorkspace_v2", (int)
                    CUBLAS_SET_WORKSPACE.invokeExact(handle, MemorySegment.ofAddress(workspace), bytes));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t mode);
    private static final MethodHandle CUBLAS_SET_POINTER_MODE =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT), "cublasSetPointerMode_v2");

    static void cublasSetPointerMode(MemorySegment handle, int mode) {
        try {
            check("cublasSetPointerMode_v2", (int) CUBLAS_SET_POINTER_MODE.invokeExact(handle, mode));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
    //                             int m, int n, int k, const void* alpha,
    //                             const void* A, cudaDataType Atype, int lda,
    //                             const void* B, cudaDataType Btype, int ldb, const void* beta,
    //                             void* C, cudaDataType Ctype, int ldc,
    //                             cublasComputeType_t computeType, cublasGemmAlgo_t algo);
    private static final MethodHandle CUBLAS_GEMM_EX = LIB.downcall(
            FunctionDescriptor.of(
                    JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT,
                    JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT),
            "cublasGemmEx");

    static void cublasGemmEx(
            MemorySegment handle,
            int transA,
            int transB,
            int m,
            int n,
            int k,
            MemorySegment alpha,
            long a,
            int aType,
            int lda,
            long b,
            int bType,
            int ldb,
            MemorySegment beta,
            long c,
            int cType,
            int ldc,
            int computeType,
            int algo) {
        try {
            check("cublasGemmEx", (int) CUBLAS_GEMM_EX.invokeExact(
                    handle,
                    transA,
                    transB,
                    m,
                    n,
                    k,
                    alpha,
                    MemorySegment.ofAddress(a),
                    aType,
                    lda,
                    MemorySegment.ofAddress(b),
                    bType,
                    ldb,
                    beta,
                    MemorySegment.ofAddress(c),
                    cType,
                    ldc,
                    computeType,
                    algo));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa,
    //                             cublasOperation_t transb, int m, int n, int k, const void* alpha,
    //                             const void* A, cudaDataType Atype, int lda, long long int strideA,
    //                             const void* B, cudaDataType Btype, int ldb, long long int strideB,
    //                             const void* beta, void* C, cudaDataType Ctype, int ldc, long long int strideC,
    //                             int batchCount, cublasComputeType_t computeType, cublasGemmAlgo_t algo);
    private static final MethodHandle CUBLAS_GEMM_STRIDED_BATCHED_EX = LIB.downcall(
            FunctionDescriptor.of(
                    JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT,
                    JAVA_INT, JAVA_LONG, ADDRESS, JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT,
                    JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT),
            "cublasGemmStridedBatchedEx");

    static void cublasGemmStridedBatchedEx(
            MemorySegment handle,
            int transA,
            int transB,
            int m,
            int n,
            int k,
            MemorySegment alpha,
            long a,
            int aType,
            int lda,
            long strideA,
            long b,
            int bType,
            int ldb,
            long strideB,
            MemorySegment beta,
            long c,
            int cType,
            int ldc,
            long strideC,
            int batchCount,
            int computeType,
            int algo) {
        try {
            check("cublasGemmStridedBatchedEx", (int) CUBLAS_GEMM_STRIDED_BATCHED_EX.invokeExact(
                    handle,
                    transA,
                    transB,
                    m,
                    n,
                    k,
                    alpha,
                    MemorySegment.ofAddress(a),
                    aType,
                    lda,
                    strideA,
                    MemorySegment.ofAddress(b),
                    bType,
                    ldb,
                    strideB,
                    beta,
                    MemorySegment.ofAddress(c),
                    cType,
                    ldc,
                    strideC,
                    batchCount,
                    computeType,
                    algo));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }
}
