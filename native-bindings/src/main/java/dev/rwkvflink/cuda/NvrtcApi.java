package dev.rwkvflink.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * The NVRTC functions this project calls ({@code libnvrtc.so.13}), one downcall handle each, with the C prototype
 * from {@code nvrtc.h} above it. Each method checks the {@code nvrtcResult} and throws {@link CudaException}
 * (named by {@code nvrtcGetErrorString}) for anything but {@code NVRTC_SUCCESS}, except
 * {@link #nvrtcCompileProgram}, whose status the caller reads together with the log.
 *
 * <p>The class loads NVRTC when it is initialised: callers reach it only after {@link NativeLibraries#nvrtc()}
 * succeeded (see {@link Nvrtc}).
 */
final class NvrtcApi {
    private static final NativeLibrary LIB = NativeLibraries.nvrtc();

    private NvrtcApi() {}

    // const char *nvrtcGetErrorString(nvrtcResult result);
    private static final MethodHandle NVRTC_GET_ERROR_STRING =
            LIB.downcall(FunctionDescriptor.of(ADDRESS, JAVA_INT), "nvrtcGetErrorString");

    /** The result's name, e.g. {@code NVRTC_ERROR_COMPILATION} (NVRTC has no separate description). */
    static String errorString(int status) {
        try {
            return Native.string((MemorySegment) NVRTC_GET_ERROR_STRING.invokeExact(status), "nvrtcResult " + status);
        } catch (Throwable t) {
            return "nvrtcResult " + status;
        }
    }

    /** Throws {@link CudaException} unless {@code status} is {@code NVRTC_SUCCESS}. */
    static void check(String call, int status, String detail) {
        if (status != 0) {
            throw new CudaException(call, status, errorString(status), "", detail);
        }
    }

    // nvrtcResult nvrtcVersion(int *major, int *minor);
    private static final MethodHandle NVRTC_VERSION =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), "nvrtcVersion");

    static int[] nvrtcVersion() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment major = arena.allocate(JAVA_INT);
            MemorySegment minor = arena.allocate(JAVA_INT);
            check("nvrtcVersion", (int) NVRTC_VERSION.invokeExact(major, minor), "");
            return new int[] {major.get(JAVA_INT, 0), minor.get(JAVA_INT, 0)};
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // nvrtcResult nvrtcCreateProgram(nvrtcProgram *prog, const char *src, const char *name, int numHeaders,
    //                                const char * const *headers, const char * const *includeNames);
    private static final MethodHandle NVRTC_CREATE_PROGRAM = LIB.downcall(
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS),
            "nvrtcCreateProgram");

    /** A program from one source text, no headers; returns the {@code nvrtcProgram}. */
    static MemorySegment nvrtcCreateProgram(String source, String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment program = arena.allocate(ADDRESS);
            check(
                    "nvrtcCreateProgram",
                    (int) NVRTC_CREATE_PROGRAM.invokeExact(
                            program,
                            arena.allocateFrom(source),
                            arena.allocateFrom(name),
                            0,
                            MemorySegment.NULL,
                            MemorySegment.NULL),
                    "[program " + name + "]");
            return program.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // nvrtcResult nvrtcDestroyProgram(nvrtcProgram *prog);
    private static final MethodHandle NVRTC_DESTROY_PROGRAM =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS), "nvrtcDestroyProgram");

    static void nvrtcDestroyProgram(MemorySegment program) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment holder = arena.allocate(ADDRESS);
            holder.set(ADDRESS, 0, program);
            check("nvrtcDestroyProgram", (int) NVRTC_DESTROY_PROGRAM.invokeExact(holder), "");
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // nvrtcResult nvrtcCompileProgram(nvrtcProgram prog, int numOptions, const char * const *options);
    private static final MethodHandle NVRTC_COMPILE_PROGRAM =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS), "nvrtcCompileProgram");

    /** Compiles; returns the {@code nvrtcResult} unchecked so that a failure can be reported with the log. */
    static int nvrtcCompileProgram(MemorySegment program, String[] options) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment array = options.length == 0 ? MemorySegment.NULL : arena.allocate(ADDRESS, options.length);
            for (int i = 0; i < options.length; i++) {
                array.setAtIndex(ADDRESS, i, arena.allocateFrom(options[i]));
            }
            return (int) NVRTC_COMPILE_PROGRAM.invokeExact(program, options.length, array);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // nvrtcResult nvrtcGetProgramLogSize(nvrtcProgram prog, size_t *logSizeRet);
    private static final MethodHandle NVRTC_GET_PROGRAM_LOG_SIZE =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), "nvrtcGetProgramLogSize");

    // nvrtcResult nvrtcGetProgramLog(nvrtcProgram prog, char *log);
    private static final MethodHandle NVRTC_GET_PROGRAM_LOG =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), "nvrtcGetProgramLog");

    /** The compiler's messages for the last compile (errors, warnings), without the trailing NUL. */
    static String programLog(MemorySegment program) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment size = arena.allocate(JAVA_LONG);
            check("nvrtcGetProgramLogSize", (int) NVRTC_GET_PROGRAM_LOG_SIZE.invokeExact(program, size), "");
            MemorySegment log = arena.allocate(Math.max(1, size.get(JAVA_LONG, 0)));
            check("nvrtcGetProgramLog", (int) NVRTC_GET_PROGRAM_LOG.invokeExact(program, log), "");
            return log.getString(0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // nvrtcResult nvrtcGetCUBINSize(nvrtcProgram prog, size_t *cubinSizeRet);
    private static final MethodHandle NVRTC_GET_CUBIN_SIZE =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), "nvrtcGetCUBINSize");

    // nvrtcResult nvrtcGetCUBIN(nvrtcProgram prog, char *cubin);
    private static final MethodHandle NVRTC_GET_CUBIN =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), "nvrtcGetCUBIN");

    /** The compiled CUBIN (only produced when compiling for a real architecture, {@code sm_XX}). */
    static byte[] cubin(MemorySegment program) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment size = arena.allocate(JAVA_LONG);
            check("nvrtcGetCUBINSize", (int) NVRTC_GET_CUBIN_SIZE.invokeExact(program, size), "");
            long bytes = size.get(JAVA_LONG, 0);
            MemorySegment cubin = arena.allocate(Math.max(1, bytes));
            check("nvrtcGetCUBIN", (int) NVRTC_GET_CUBIN.invokeExact(program, cubin), "");
            return cubin.asSlice(0, bytes).toArray(JAVA_BYTE);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // nvrtcResult nvrtcGetPTXSize(nvrtcProgram prog, size_t *ptxSizeRet);
    private static final MethodHandle NVRTC_GET_PTX_SIZE =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), "nvrtcGetPTXSize");

    // nvrtcResult nvrtcGetPTX(nvrtcProgram prog, char *ptx);
    private static final MethodHandle NVRTC_GET_PTX =
            LIB.downcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), "nvrtcGetPTX");

    /** The compiled PTX text as bytes, without the trailing NUL that NVRTC includes in its size. */
    static byte[] ptx(MemorySegment program) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment size = arena.allocate(JAVA_LONG);
            check("nvrtcGetPTXSize", (int) NVRTC_GET_PTX_SIZE.invokeExact(program, size), "");
            long bytes = size.get(JAVA_LONG, 0);
            MemorySegment ptx = arena.allocate(Math.max(1, bytes));
            check("nvrtcGetPTX", (int) NVRTC_GET_PTX.invokeExact(program, ptx), "");
            long length = bytes > 0 && ptx.get(JAVA_BYTE, bytes - 1) == 0 ? bytes - 1 : bytes;
            return ptx.asSlice(0, length).toArray(JAVA_BYTE);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }
}
