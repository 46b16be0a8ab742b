package dev.rwkvflink.cuda;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.regex.Pattern;

/**
 * NVRTC, the runtime CUDA C++ compiler: source text in, device code out, no {@code nvcc} needed on the machine.
 *
 * <p>Typical options: {@code --gpu-architecture=sm_90} (a real architecture: the result is a CUBIN that loads
 * without JIT; a virtual one such as {@code compute_90}, or none, gives PTX), {@code -default-device},
 * {@code --std=c++17}, {@code -lineinfo}; {@code --use_fast_math} only when asked for. Kernels are easiest to
 * find when declared {@code extern "C"}. {@link KernelCache} adds the device's architecture and caches the
 * result on disk.
 */
public final class Nvrtc {
    private static final Pattern REAL_ARCH = Pattern.compile("(--gpu-architecture|-arch)=sm_\\d+[a-z]?");

    private static int[] version; // guarded by Nvrtc.class

    private Nvrtc() {}

    /**
     * The compiled image and the compiler's log.
     *
     * @param image the CUBIN, or the PTX text as UTF-8 bytes without a trailing NUL
     * @param cubin true for a CUBIN (a real architecture was requested), false for PTX
     * @param log   warnings, usually empty
     */
    public record Result(byte[] image, boolean cubin, String log) {}

    /** NVRTC's version {major, minor} ({@code nvrtcVersion}), e.g. {13, 0}. */
    public static synchronized int[] version() {
        if (version == null) {
            NativeLibraries.nvrtc();
            version = NvrtcApi.nvrtcVersion();
        }
        return version.clone();
    }

    /**
     * Compiles one CUDA C++ source without headers ({@code nvrtcCreateProgram}, {@code nvrtcCompileProgram});
     * returns the CUBIN for a real architecture option ({@code --gpu-architecture=sm_XX}), else the PTX.
     *
     * @param programName a name for messages and {@code __FILE__}, e.g. {@code rwkv7.cu}
     * @throws CudaException         with the compiler's log when the source does not compile
     * @throws IllegalStateException when NVRTC is not present
     */
    public static byte[] compile(String source, String programName, List<String> options) {
        return compileWithLog(source, programName, options).image();
    }

    /** As {@link #compile(String, String, List)}, also returning the log (warnings). */
    public static Result compileWithLog(String source, String programName, List<String> options) {
        NativeLibraries.nvrtc();
        String[] opts = options.toArray(String[]::new);
        boolean cubin = options.stream().anyMatch(o -> REAL_ARCH.matcher(o).matches());
        MemorySegment program = NvrtcApi.nvrtcCreateProgram(source, programName);
        try {
            int status = NvrtcApi.nvrtcCompileProgram(program, opts);
            String log = NvrtcApi.programLog(program).strip();
            NvrtcApi.check(
                    "nvrtcCompileProgram", status, "[program " + programName + ", options " + options + "]\n" + log);
            byte[] image = cubin ? NvrtcApi.cubin(program) : NvrtcApi.ptx(program);
            return new Result(image, cubin, log);
        } finally {
            NvrtcApi.nvrtcDestroyProgram(program);
        }
    }
}
