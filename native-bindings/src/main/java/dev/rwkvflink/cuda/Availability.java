package dev.rwkvflink.cuda;

/**
 * Whether CUDA can be used in this process, and why (not).
 *
 * <p>{@code reason} starts with {@code "available: "} followed by the device, its architecture and the driver
 * version, or with {@code "unavailable: "} followed by what is missing: a library that was not found (with the
 * directories searched), a failed {@code cuInit}, or no device.
 *
 * @param available true when the driver, cuBLAS and NVRTC were loaded and at least one device answered
 * @param reason    one line for logs and test skip messages
 */
public record Availability(boolean available, String reason) {

    static Availability yes(String what) {
        return new Availability(true, "available: " + what);
    }

    static Availability no(String why) {
        return new Availability(false, "unavailable: " + why);
    }
}
