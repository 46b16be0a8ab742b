package dev.rwkvflink.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * The CUDA driver API functions this project calls ({@code libcuda.so.1}), one downcall handle each, with the C
 * prototype from CUDA 13's {@code cuda.h} above it. Where {@code cuda.h} maps a name to a versioned symbol
 * ({@code #define cuMemAlloc cuMemAlloc_v2}) the handle binds the versioned symbol, which is what a C program
 * compiled against that header calls.
 *
 * <p>Each method checks the returned {@code CUresult} and throws {@link CudaException} for anything but
 * {@code CUDA_SUCCESS}. Handles ({@code CUcontext}, {@code CUstream}, ...) are pointers, passed as
 * {@link MemorySegment}; {@code CUdeviceptr} is an unsigned 64-bit integer, passed as {@code long}.
 *
 * <p>The class loads the driver when it is initialised: callers reach it only after {@link NativeLibraries#driver()}
 * succeeded (see {@link Cuda}).
 *
 * <p>Long on purpose: one entry per driver function (its descriptor, its handle, a wrapper that checks the status),
 * a table that reads best in one place; the classes that use the driver ({@link CudaDevice}, {@link CudaStream},
 * ...) stay small because of it.
 */
final class DriverApi {
    private static final NativeLibrary LIB = NativeLibraries.driver();

    /** {@code CU_STREAM_NON_BLOCKING}: the stream does not synchronise with the legacy default stream. */
    static final int CU_STREAM_NON_BLOCKING = 0x1;
    /** {@code CU_EVENT_DEFAULT}: an event that records timing. */
    static final int CU_EVENT_DEFAULT = 0x0;
    /** {@code CU_MEMHOSTALLOC_PORTABLE}: pinned memory usable from every context. */
    static final int CU_MEMHOSTALLOC_PORTABLE = 0x01;
    /** {@code CU_STREAM_CAPTURE_MODE_THREAD_LOCAL}: only this thread's unsafe calls are refused during capture. */
    static final int CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1;

    /** {@code CUdevice_attribute} values used by {@link CudaDevice}. */
    static final int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;

    static final int CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE = 38;
    static final int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
    static final int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
    static final int CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;

    private DriverApi() {}

    // ---- errors

    // CUresult cuGetErrorName(CUresult error, const char **pStr);
    private static final MethodHandle CU_GET_ERROR_NAME =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS), "cuGetErrorName");

    // CUresult cuGetErrorString(CUresult error, const char **pStr);
    private static final MethodHandle CU_GET_ERROR_STRING =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS), "cuGetErrorString");

    /** Throws {@link CudaException} unless {@code status} is {@code CUDA_SUCCESS}. */
    static void check(String call, int status) {
        check(call, status, "");
    }

    /** As {@link #check(String, int)}, adding {@code detail} (what was being done) to the message. */
    static void check(String call, int status, String detail) {
        if (status != 0) {
            throw new CudaException(
                    call,
                    status,
                    errorText(CU_GET_ERROR_NAME, status, "CUresult " + status),
                    errorText(CU_GET_ERROR_STRING, status, ""),
                    detail);
        }
    }

    private static String errorText(MethodHandle lookup, int status, String fallback) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment text = arena.allocate(ADDRESS);
            int found = (int) lookup.invokeExact(status, text);
            return found == 0 ? Native.string(text.get(ADDRESS, 0), fallback) : fallback;
        } catch (Throwable t) {
            return fallback;
        }
    }

    // ---- initialisation and devices

    // CUresult cuInit(unsigned int Flags);
    private static final MethodHandle CU_INIT = LIB.downcall(FunctionDescriptor.of(JAVA_INT, JAVA_INT), "cuInit");

    static void cuInit(int flags) {
        try {
            check("cuInit", (int) CU_INIT.invokeExact(flags));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuDriverGetVersion(int *driverVersion);
    private static final MethodHandle CU_DRIVER_GET_VERSION =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS), "cuDriverGetVersion");

    /** The driver's CUDA version, 1000 * major + 10 * minor (13000 for CUDA 13.0). Works before {@code cuInit}. */
    static int cuDriverGetVersion() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment version = arena.allocate(JAVA_INT);
            check("cuDriverGetVersion", (int) CU_DRIVER_GET_VERSION.invokeExact(version));
            return version.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuDeviceGetCount(int *count);
    private static final MethodHandle CU_DEVICE_GET_COUNT =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS), "cuDeviceGetCount");

    static int cuDeviceGetCount() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment count = arena.allocate(JAVA_INT);
            check("cuDeviceGetCount", (int) CU_DEVICE_GET_COUNT.invokeExact(count));
            return count.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuDeviceGet(CUdevice *device, int ordinal);
    private static final MethodHandle CU_DEVICE_GET =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT), "cuDeviceGet");

    static int cuDeviceGet(int ordinal) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment device = arena.allocate(JAVA_INT);
            check("cuDeviceGet", (int) CU_DEVICE_GET.invokeExact(device, ordinal), "[ordinal " + ordinal + "]");
            return device.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuDeviceGetName(char *name, int len, CUdevice dev);
    private static final MethodHandle CU_DEVICE_GET_NAME =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), "cuDeviceGetName");

    static String cuDeviceGetName(int device) {
        try (Arena arena = Arena.ofConfined()) {
            int length = 256;
            MemorySegment name = arena.allocate(length);
            check("cuDeviceGetName", (int) CU_DEVICE_GET_NAME.invokeExact(name, length, device));
            return name.getString(0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuDeviceTotalMem(size_t *bytes, CUdevice dev);   (cuda.h: #define cuDeviceTotalMem cuDeviceTotalMem_v2)
    private static final MethodHandle CU_DEVICE_TOTAL_MEM =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT), "cuDeviceTotalMem_v2");

    static long cuDeviceTotalMem(int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment bytes = arena.allocate(JAVA_LONG);
            check("cuDeviceTotalMem_v2", (int) CU_DEVICE_TOTAL_MEM.invokeExact(bytes, device));
            return bytes.get(JAVA_LONG, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev);
    private static final MethodHandle CU_DEVICE_GET_ATTRIBUTE =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), "cuDeviceGetAttribute");

    static int cuDeviceGetAttribute(int attribute, int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = arena.allocate(JAVA_INT);
            check(
                    "cuDeviceGetAttribute",
                    (int) CU_DEVICE_GET_ATTRIBUTE.invokeExact(value, attribute, device),
                    "[attribute " + attribute + "]");
            return value.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // ---- contexts

    // CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev);
    private static final MethodHandle CU_DEVICE_PRIMARY_CTX_RETAIN =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT), "cuDevicePrimaryCtxRetain");

    static MemorySegment cuDevicePrimaryCtxRetain(int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment context = arena.allocate(ADDRESS);
            check("cuDevicePrimaryCtxRetain", (int) CU_DEVICE_PRIMARY_CTX_RETAIN.invokeExact(context, device));
            return context.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuDevicePrimaryCtxRelease(CUdevice dev);   (cuda.h: #define ... cuDevicePrimaryCtxRelease_v2)
    private static final MethodHandle CU_DEVICE_PRIMARY_CTX_RELEASE =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, JAVA_INT), "cuDevicePrimaryCtxRelease_v2");

    static void cuDevicePrimaryCtxRelease(int device) {
        try {
            check("cuDevicePrimaryCtxRelease_v2", (int) CU_DEVICE_PRIMARY_CTX_RELEASE.invokeExact(device));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuCtxSetCurrent(CUcontext ctx);
    private static final MethodHandle CU_CTX_SET_CURRENT =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS), "cuCtxSetCurrent");

    static void cuCtxSetCurrent(MemorySegment context) {
        try {
            check("cuCtxSetCurrent", (int) CU_CTX_SET_CURRENT.invokeExact(context));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuCtxSynchronize(void);
    private static final MethodHandle CU_CTX_SYNCHRONIZE =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT), "cuCtxSynchronize");

    static void cuCtxSynchronize() {
        try {
            check("cuCtxSynchronize", (int) CU_CTX_SYNCHRONIZE.invokeExact());
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // ---- memory

    // CUresult cuMemGetInfo(size_t *free, size_t *total);   (cuda.h: #define cuMemGetInfo cuMemGetInfo_v2)
    private static final MethodHandle CU_MEM_GET_INFO =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), "cuMemGetInfo_v2");

    /** {free, total} bytes of the current context's device. */
    static long[] cuMemGetInfo() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment free = arena.allocate(JAVA_LONG);
            MemorySegment total = arena.allocate(JAVA_LONG);
            check("cuMemGetInfo_v2", (int) CU_MEM_GET_INFO.invokeExact(free, total));
            return new long[] {free.get(JAVA_LONG, 0), total.get(JAVA_LONG, 0)};
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuMemAlloc(CUdeviceptr *dptr, size_t bytesize);   (cuda.h: #define cuMemAlloc cuMemAlloc_v2)
    private static final MethodHandle CU_MEM_ALLOC =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG), "cuMemAlloc_v2");

    static long cuMemAlloc(long bytes) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pointer = arena.allocate(JAVA_LONG);
            check("cuMemAlloc_v2", (int) CU_MEM_ALLOC.invokeExact(pointer, bytes), "[" + bytes + " bytes]");
            return pointer.get(JAVA_LONG, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuMemFree(CUdeviceptr dptr);   (cuda.h: #define cuMemFree cuMemFree_v2)
    private static final MethodHandle CU_MEM_FREE =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, JAVA_LONG), "cuMemFree_v2");

    static void cuMemFree(long pointer) {
        try {
            check("cuMemFree_v2", (int) CU_MEM_FREE.invokeExact(pointer));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuMemHostAlloc(void **pp, size_t bytesize, unsigned int Flags);
    private static final MethodHandle CU_MEM_HOST_ALLOC =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT), "cuMemHostAlloc");

    static MemorySegment cuMemHostAlloc(long bytes, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pointer = arena.allocate(ADDRESS);
            check(
                    "cuMemHostAlloc",
                    (int) CU_MEM_HOST_ALLOC.invokeExact(pointer, bytes, flags),
                    "[" + bytes + " bytes]");
            return pointer.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuMemFreeHost(void *p);
    private static final MethodHandle CU_MEM_FREE_HOST =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS), "cuMemFreeHost");

    static void cuMemFreeHost(MemorySegment pointer) {
        try {
            check("cuMemFreeHost", (int) CU_MEM_FREE_HOST.invokeExact(pointer));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuMemcpyHtoDAsync(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount, CUstream hStream);
    //   (cuda.h: #define cuMemcpyHtoDAsync cuMemcpyHtoDAsync_v2)
    private static final MethodHandle CU_MEMCPY_HTOD_ASYNC = LIB.downcall(
            FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS), "cuMemcpyHtoDAsync_v2");

    static void cuMemcpyHtoDAsync(long dst, MemorySegment src, long bytes, MemorySegment stream) {
        try {
            check("cuMemcpyHtoDAsync_v2", (int) CU_MEMCPY_HTOD_ASYNC.invokeExact(dst, src, bytes, stream));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuMemcpyDtoHAsync(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream);
    //   (cuda.h: #define cuMemcpyDtoHAsync cuMemcpyDtoHAsync_v2)
    private static final MethodHandle CU_MEMCPY_DTOH_ASYNC = LIB.downcall(
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS), "cuMemcpyDtoHAsync_v2");

    static void cuMemcpyDtoHAsync(MemorySegment dst, long src, long bytes, MemorySegment stream) {
        try {
            check("cuMemcpyDtoHAsync_v2", (int) CU_MEMCPY_DTOH_ASYNC.invokeExact(dst, src, bytes, stream));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuMemcpyDtoDAsync(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream);
    //   (cuda.h: #define cuMemcpyDtoDAsync cuMemcpyDtoDAsync_v2)
    private static final MethodHandle CU_MEMCPY_DTOD_ASYNC = LIB.downcall(
            FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS), "cuMemcpyDtoDAsync_v2");

    static void cuMemcpyDtoDAsync(long dst, long src, long bytes, MemorySegment stream) {
        try {
            check("cuMemcpyDtoDAsync_v2", (int) CU_MEMCPY_DTOD_ASYNC.invokeExact(dst, src, bytes, stream));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuMemsetD32Async(CUdeviceptr dstDevice, unsigned int ui, size_t N, CUstream hStream);
    private static final MethodHandle CU_MEMSET_D32_ASYNC =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG, ADDRESS), "cuMemsetD32Async");

    static void cuMemsetD32Async(long dst, int value, long count, MemorySegment stream) {
        try {
            check("cuMemsetD32Async", (int) CU_MEMSET_D32_ASYNC.invokeExact(dst, value, count, stream));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // ---- streams and graphs

    // CUresult cuStreamCreate(CUstream *phStream, unsigned int Flags);
    private static final MethodHandle CU_STREAM_CREATE =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT), "cuStreamCreate");

    static MemorySegment cuStreamCreate(int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment stream = arena.allocate(ADDRESS);
            check("cuStreamCreate", (int) CU_STREAM_CREATE.invokeExact(stream, flags));
            return stream.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuStreamDestroy(CUstream hStream);   (cuda.h: #define cuStreamDestroy cuStreamDestroy_v2)
    private static final MethodHandle CU_STREAM_DESTROY =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS), "cuStreamDestroy_v2");

    static void cuStreamDestroy(MemorySegment stream) {
        try {
            check("cuStreamDestroy_v2", (int) CU_STREAM_DESTROY.invokeExact(stream));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuStreamSynchronize(CUstream hStream);
    private static final MethodHandle CU_STREAM_SYNCHRONIZE =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS), "cuStreamSynchronize");

    static void cuStreamSynchronize(MemorySegment stream) {
        try {
            check("cuStreamSynchronize", (int) CU_STREAM_SYNCHRONIZE.invokeExact(stream));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuStreamWaitEvent(CUstream hStream, CUevent hEvent, unsigned int Flags);
    private static final MethodHandle CU_STREAM_WAIT_EVENT =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT), "cuStreamWaitEvent");

    static void cuStreamWaitEvent(MemorySegment stream, MemorySegment event) {
        try {
            check("cuStreamWaitEvent", (int) CU_STREAM_WAIT_EVENT.invokeExact(stream, event, 0));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuStreamBeginCapture(CUstream hStream, CUstreamCaptureMode mode);
    //   (cuda.h: #define cuStreamBeginCapture cuStreamBeginCapture_v2)
    private static final MethodHandle CU_STREAM_BEGIN_CAPTURE =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT), "cuStreamBeginCapture_v2");

    static void cuStreamBeginCapture(MemorySegment stream, int mode) {
        try {
            check("cuStreamBeginCapture_v2", (int) CU_STREAM_BEGIN_CAPTURE.invokeExact(stream, mode));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuStreamEndCapture(CUstream hStream, CUgraph *phGraph);
    private static final MethodHandle CU_STREAM_END_CAPTURE =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), "cuStreamEndCapture");

    static MemorySegment cuStreamEndCapture(MemorySegment stream) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment graph = arena.allocate(ADDRESS);
            check("cuStreamEndCapture", (int) CU_STREAM_END_CAPTURE.invokeExact(stream, graph));
            return graph.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuGraphInstantiate(CUgraphExec *phGraphExec, CUgraph hGraph, unsigned long long flags);
    //   (cuda.h: #define cuGraphInstantiate cuGraphInstantiateWithFlags)
    private static final MethodHandle CU_GRAPH_INSTANTIATE =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG), "cuGraphInstantiateWithFlags");

    static MemorySegment cuGraphInstantiate(MemorySegment graph, long flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment exec = arena.allocate(ADDRESS);
            check("cuGraphInstantiateWithFlags", (int) CU_GRAPH_INSTANTIATE.invokeExact(exec, graph, flags));
            return exec.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuGraphDestroy(CUgraph hGraph);
    private static final MethodHandle CU_GRAPH_DESTROY =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS), "cuGraphDestroy");

    static void cuGraphDestroy(MemorySegment graph) {
        try {
            check("cuGraphDestroy", (int) CU_GRAPH_DESTROY.invokeExact(graph));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream);
    private static final MethodHandle CU_GRAPH_LAUNCH =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), "cuGraphLaunch");

    static void cuGraphLaunch(MemorySegment exec, MemorySegment stream) {
        try {
            check("cuGraphLaunch", (int) CU_GRAPH_LAUNCH.invokeExact(exec, stream));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuGraphExecDestroy(CUgraphExec hGraphExec);
    private static final MethodHandle CU_GRAPH_EXEC_DESTROY =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS), "cuGraphExecDestroy");

    static void cuGraphExecDestroy(MemorySegment exec) {
        try {
            check("cuGraphExecDestroy", (int) CU_GRAPH_EXEC_DESTROY.invokeExact(exec));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // ---- events

    // CUresult cuEventCreate(CUevent *phEvent, unsigned int Flags);
    private static final MethodHandle CU_EVENT_CREATE =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT), "cuEventCreate");

    static MemorySegment cuEventCreate(int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment event = arena.allocate(ADDRESS);
            check("cuEventCreate", (int) CU_EVENT_CREATE.invokeExact(event, flags));
            return event.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuEventRecord(CUevent hEvent, CUstream hStream);
    private static final MethodHandle CU_EVENT_RECORD =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), "cuEventRecord");

    static void cuEventRecord(MemorySegment event, MemorySegment stream) {
        try {
            check("cuEventRecord", (int) CU_EVENT_RECORD.invokeExact(event, stream));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuEventSynchronize(CUevent hEvent);
    private static final MethodHandle CU_EVENT_SYNCHRONIZE =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS), "cuEventSynchronize");

    static void cuEventSynchronize(MemorySegment event) {
        try {
            check("cuEventSynchronize", (int) CU_EVENT_SYNCHRONIZE.invokeExact(event));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuEventElapsedTime(float *pMilliseconds, CUevent hStart, CUevent hEnd);
    //   (cuda.h 13: #define cuEventElapsedTime cuEventElapsedTime_v2; the unversioned symbol is the pre-12.8 one)
    private static final MethodHandle CU_EVENT_ELAPSED_TIME = LIB.downcall(
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS), "cuEventElapsedTime_v2", "cuEventElapsedTime");

    static float cuEventElapsedTime(MemorySegment start, MemorySegment end) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment millis = arena.allocate(JAVA_FLOAT);
            check("cuEventElapsedTime_v2", (int) CU_EVENT_ELAPSED_TIME.invokeExact(millis, start, end));
            return millis.get(JAVA_FLOAT, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuEventDestroy(CUevent hEvent);   (cuda.h: #define cuEventDestroy cuEventDestroy_v2)
    private static final MethodHandle CU_EVENT_DESTROY =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS), "cuEventDestroy_v2");

    static void cuEventDestroy(MemorySegment event) {
        try {
            check("cuEventDestroy_v2", (int) CU_EVENT_DESTROY.invokeExact(event));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // ---- modules and kernels

    // CUresult cuModuleLoadData(CUmodule *module, const void *image);
    private static final MethodHandle CU_MODULE_LOAD_DATA =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), "cuModuleLoadData");

    static MemorySegment cuModuleLoadData(MemorySegment image) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment module = arena.allocate(ADDRESS);
            check(
                    "cuModuleLoadData",
                    (int) CU_MODULE_LOAD_DATA.invokeExact(module, image),
                    "[" + image.byteSize() + " byte image]");
            return module.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuModuleUnload(CUmodule hmod);
    private static final MethodHandle CU_MODULE_UNLOAD =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS), "cuModuleUnload");

    static void cuModuleUnload(MemorySegment module) {
        try {
            check("cuModuleUnload", (int) CU_MODULE_UNLOAD.invokeExact(module));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name);
    private static final MethodHandle CU_MODULE_GET_FUNCTION =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS), "cuModuleGetFunction");

    static MemorySegment cuModuleGetFunction(MemorySegment module, String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment function = arena.allocate(ADDRESS);
            check(
                    "cuModuleGetFunction",
                    (int) CU_MODULE_GET_FUNCTION.invokeExact(function, module, arena.allocateFrom(name)),
                    "[kernel \"" + name + "\"]");
            return function.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuFuncSetAttribute(CUfunction hfunc, CUfunction_attribute attrib, int value);
    private static final MethodHandle CU_FUNC_SET_ATTRIBUTE =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), "cuFuncSetAttribute");

    static void cuFuncSetAttribute(MemorySegment function, int attribute, int value, String kernel) {
        try {
            check(
                    "cuFuncSetAttribute",
                    (int) CU_FUNC_SET_ATTRIBUTE.invokeExact(function, attribute, value),
                    "[kernel \"" + kernel + "\", attribute " + attribute + " = " + value + "]");
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuFuncGetAttribute(int *pi, CUfunction_attribute attrib, CUfunction hfunc);
    private static final MethodHandle CU_FUNC_GET_ATTRIBUTE =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS), "cuFuncGetAttribute");

    static int cuFuncGetAttribute(int attribute, MemorySegment function, String kernel) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = arena.allocate(JAVA_INT);
            check(
                    "cuFuncGetAttribute",
                    (int) CU_FUNC_GET_ATTRIBUTE.invokeExact(value, attribute, function),
                    "[kernel \"" + kernel + "\", attribute " + attribute + "]");
            return value.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // CUresult cuLaunchKernel(CUfunction f,
    //                         unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
    //                         unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
    //                         unsigned int sharedMemBytes, CUstream hStream, void **kernelParams, void **extra);
    private static final MethodHandle CU_LAUNCH_KERNEL = LIB.downcall(
            FunctionDescriptor.of(
                    JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS,
                    ADDRESS, ADDRESS),
            "cuLaunchKernel");

    static void cuLaunchKernel(
            MemorySegment function,
            int gridX,
            int gridY,
            int gridZ,
            int blockX,
            int blockY,
            int blockZ,
            int sharedBytes,
            MemorySegment stream,
            MemorySegment params,
            String kernel) {
        int status;
        try {
            status = (int) CU_LAUNCH_KERNEL.invokeExact(
                    function,
                    gridX,
                    gridY,
                    gridZ,
                    blockX,
                    blockY,
                    blockZ,
                    sharedBytes,
                    stream,
                    params,
                    MemorySegment.NULL);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
        if (status != 0) {
            check(
                    "cuLaunchKernel",
                    status,
                    launchDetail(kernel, "", gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes));
        }
    }

    /** What an error names about a launch: {@code [kernel "k", grid XxYxZ, block XxYxZ, N shared bytes]}. */
    private static String launchDetail(
            String kernel,
            String kind,
            int gridX,
            int gridY,
            int gridZ,
            int blockX,
            int blockY,
            int blockZ,
            int sharedBytes) {
        return "[kernel \"" + kernel + "\"" + kind + ", grid " + gridX + "x" + gridY + "x" + gridZ + ", block " + blockX
                + "x" + blockY + "x" + blockZ + ", " + sharedBytes + " shared bytes]";
    }

    // CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f, void **kernelParams, void **extra);
    // CUlaunchConfig: 7 unsigned ints (grid x y z, block x y z, shared bytes) at 0..27, CUstream at 32,
    // CUlaunchAttribute *attrs at 40, unsigned int numAttrs at 48 (56 bytes). CUlaunchAttribute: the id (an enum)
    // at 0, 4 bytes of padding, a 64-byte value union at 8 (72 bytes).
    private static final MethodHandle CU_LAUNCH_KERNEL_EX =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS), "cuLaunchKernelEx");
    /** {@code CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION}. */
    static final int CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6;

    private static final long LAUNCH_CONFIG_BYTES = 56;
    private static final long LAUNCH_ATTRIBUTE_BYTES = 72;

    /**
     * {@code cuLaunchKernelEx} with one attribute, {@code CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 1}:
     * the kernel may start while the previous kernel on the stream still runs, once that kernel allows it
     * ({@code griddepcontrol.launch_dependents}); it must wait ({@code griddepcontrol.wait}) before it reads that
     * kernel's results.
     */
    static void cuLaunchKernelProgrammatic(
            MemorySegment function,
            int gridX,
            int gridY,
            int gridZ,
            int blockX,
            int blockY,
            int blockZ,
            int sharedBytes,
            MemorySegment stream,
            MemorySegment params,
            String kernel) {
        int status;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment attr = arena.allocate(LAUNCH_ATTRIBUTE_BYTES, 8);
            attr.set(JAVA_INT, 0, CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION);
            attr.set(JAVA_INT, 8, 1);
            MemorySegment config = arena.allocate(LAUNCH_CONFIG_BYTES, 8);
            int[] dims = {gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes};
            for (int i = 0; i < dims.length; i++) {
                config.set(JAVA_INT, 4L * i, dims[i]);
            }
            config.set(ADDRESS, 32, stream);
            config.set(ADDRESS, 40, attr);
            config.set(JAVA_INT, 48, 1);
            status = (int) CU_LAUNCH_KERNEL_EX.invokeExact(config, function, params, MemorySegment.NULL);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
        if (status != 0) {
            check(
                    "cuLaunchKernelEx",
                    status,
                    launchDetail(kernel, ", programmatic", gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes));
        }
    }
}
