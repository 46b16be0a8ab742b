package dev.rwkvflink.cuda;

/**
 * A CUDA driver, cuBLAS or NVRTC call returned a status other than success.
 *
 * <p>The message names the call, the status name and the library's text for it, for example
 * {@code cuModuleGetFunction failed: CUDA_ERROR_NOT_FOUND (named symbol not found) [kernel "scale"]}. NVRTC
 * compile errors carry the compiler's log after the first line.
 */
public class CudaException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final String call;
    private final int status;
    private final String statusName;

    /**
     * @param call       the C function that failed, e.g. {@code cuMemAlloc_v2}
     * @param status     its return value
     * @param statusName the status as the library names it, e.g. {@code CUDA_ERROR_OUT_OF_MEMORY}
     * @param statusText the library's description of the status
     * @param detail     what the call was doing (may be empty), e.g. the kernel name or a compile log
     */
    public CudaException(String call, int status, String statusName, String statusText, String detail) {
        super(message(call, statusName, statusText, detail));
        this.call = call;
        this.status = status;
        this.statusName = statusName;
    }

    private static String message(String call, String statusName, String statusText, String detail) {
        StringBuilder sb = new StringBuilder(call).append(" failed: ").append(statusName);
        if (statusText != null && !statusText.isEmpty() && !statusText.equals(statusName)) {
            sb.append(" (").append(statusText).append(')');
        }
        if (detail != null && !detail.isEmpty()) {
            sb.append(detail.startsWith("\n") ? "" : " ").append(detail);
        }
        return sb.toString();
    }

    /** The C function that failed, e.g. {@code cuLaunchKernel}. */
    public String call() {
        return call;
    }

    /** The numeric status it returned ({@code CUresult}, {@code cublasStatus_t} or {@code nvrtcResult}). */
    public int status() {
        return status;
    }

    /** The status's name, e.g. {@code CUDA_ERROR_NOT_FOUND}. */
    public String statusName() {
        return statusName;
    }
}
