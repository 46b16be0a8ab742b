package dev.rwkvflink.engine.backend;

import dev.rwkvflink.engine.backend.cuda.CudaBackend;
import dev.rwkvflink.engine.backend.cuda.CudaModelRunner;
import dev.rwkvflink.engine.backend.cuda.Precision;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Picks a {@link Backend} by name. Backends are shared, one instance per name per JVM (the vector backend owns a
 * worker pool), sized by the {@link EngineSettings} of the first request.
 *
 * <ul>
 *   <li>{@code "scalar"}: {@link ScalarBackend}, the plain-Java reference;</li>
 *   <li>{@code "vector"}: {@link VectorBackend}, SIMD and multi-threaded; needs the incubating module
 *       {@code jdk.incubator.vector} ({@code --add-modules jdk.incubator.vector} on the java command line).</li>
 *   <li>{@code "cuda"}, {@code "cuda:bf16"}, {@code "cuda:f32"}: {@link dev.rwkvflink.engine.backend.cuda.CudaBackend}
 *       on GPU 0 (bf16 or fp32 matrices); when CUDA is absent (no driver, no device, no libraries) the reason is
 *       logged at WARNING and the best CPU backend is returned instead.</li>
 * </ul>
 */
public final class Backends {
    /** The names {@link #byName} knows. */
    public static final List<String> NAMES = List.of("cpu", "scalar", "vector", "cuda", "cuda:bf16", "cuda:f32");
    /** System property naming the default backend. */
    public static final String PROPERTY = "rwkv.backend";

    private static final Logger LOG = LoggerFactory.getLogger(Backends.class);
    private static final String VECTOR_MODULE = "jdk.incubator.vector";

    private Backends() {}

    /**
     * The shared backend called {@code name} (case-insensitive, surrounding blanks ignored).
     *
     * @throws IllegalArgumentException for an unknown name (the message lists the known ones)
     * @throws IllegalStateException for "vector" when the Vector API module is not available
     */
    public static Backend byName(String name) {
        return byName(name, -1);
    }

    /**
     * {@link #byName(String)} with the CUDA device to use for the GPU backends: {@code cudaDevice} >= 0 picks that
     * device ordinal, -1 the system property {@code rwkv.cuda.device} (default 0). Ignored by the CPU backends.
     *
     * @throws IllegalArgumentException also for a device ordinal this machine does not have
     */
    public static Backend byName(String name, int cudaDevice) {
        return byName(name, cudaDevice, EngineSettings.DEFAULTS);
    }

    /**
     * {@link #byName(String, int)} sized by {@code settings} when this request makes the backend (the CPU backend's
     * threads, the GPU backend's pool slots and rows per pass); a backend already made keeps its size, and a
     * different explicit request is logged.
     */
    public static Backend byName(String name, int cudaDevice, EngineSettings settings) {
        String key = name == null ? "" : name.strip().toLowerCase(Locale.ROOT);
        return switch (key) {
            case "cpu" -> defaultBackend(settings); // the best CPU backend (vector, else scalar with the reason logged)
            case "scalar" -> ScalarHolder.INSTANCE;
            case "cuda", "cuda:bf16", "cuda:f32" ->
                cuda(
                        key.equals("cuda:f32") ? "f32" : "bf16",
                        cudaDevice >= 0 ? cudaDevice : CudaBackend.defaultDevice(),
                        settings);
            case "vector" -> {
                Optional<String> missing = vectorUnavailableReason();
                if (missing.isPresent()) {
                    throw new IllegalStateException("backend \"vector\" is not available: " + missing.get());
                }
                yield vector(settings);
            }
            default -> throw unknown(name);
        };
    }

    /**
     * Checks a backend name without opening the backend (no native library is loaded), so that a client can refuse
     * a typo before it submits a job.
     *
     * @throws IllegalArgumentException for an unknown name (the message lists the known ones)
     */
    public static void checkName(String name) {
        if (name == null || !NAMES.contains(name.strip().toLowerCase(Locale.ROOT))) {
            throw unknown(name);
        }
    }

    private static IllegalArgumentException unknown(String name) {
        return new IllegalArgumentException("unknown backend \"" + name + "\"; known: " + String.join(", ", NAMES));
    }

    /**
     * The backend named by system property {@value #PROPERTY} (default {@code "vector"}). When that is "vector" but
     * the Vector API is not available, logs why at WARNING and returns the scalar backend instead.
     *
     * @throws IllegalArgumentException if the property names an unknown backend
     */
    public static Backend defaultBackend() {
        return defaultBackend(EngineSettings.DEFAULTS);
    }

    private static Backend defaultBackend(EngineSettings settings) {
        String name = System.getProperty(PROPERTY, "vector");
        if ("vector".equalsIgnoreCase(name.strip())) {
            Optional<String> missing = vectorUnavailableReason();
            if (missing.isPresent()) {
                LOG.warn(
                        "rwkv: vector backend unavailable ({}); using the scalar"
                                + " backend, which is several times slower",
                        missing.get());
                return ScalarHolder.INSTANCE;
            }
        }
        return byName(name, -1, settings);
    }

    /**
     * The GPU backend (one per precision per JVM), or the best CPU backend with the reason logged when CUDA cannot
     * run here.
     */
    private static synchronized Backend cuda(String precision, int device, EngineSettings settings) {
        Precision p = Precision.parse(precision);
        String key = p + "@" + device;
        CudaModelRunner.Limits limits =
                new CudaModelRunner.Limits(settings.cudaMaxRowsOrDefault(), settings.cudaSlotsOrDefault());
        Backend b = CUDA.get(key);
        if (b != null) {
            if (b instanceof CudaBackend made
                    && !made.limits().equals(limits)
                    && (settings.cudaSlots() > 0 || settings.cudaMaxRows() > 0)) {
                LOG.warn(
                        "rwkv: the {} backend of this JVM was made with {}; {} asked for later is ignored",
                        key,
                        made.limits(),
                        limits);
            }
            return b;
        }
        Optional<String> missing = CudaBackend.unavailableReason();
        if (missing.isPresent()) {
            LOG.warn("rwkv: CUDA backend unavailable ({}); using the CPU backend", missing.get());
            return defaultCpu(settings);
        }
        b = CudaBackend.open(p, defaultCpu(settings), device, limits);
        CUDA.put(key, b);
        return b;
    }

    /** The GPU backends opened so far, by precision and device ordinal ("BF16@0"). */
    private static final Map<String, Backend> CUDA = new HashMap<>();

    /** The best CPU backend (the default backend unless that names the GPU). */
    private static Backend defaultCpu(EngineSettings settings) {
        Optional<String> missing = vectorUnavailableReason();
        return missing.isPresent() ? ScalarHolder.INSTANCE : vector(settings);
    }

    /** The vector backend of this JVM, made with {@code settings}' threads on first use. */
    private static synchronized VectorBackend vector(EngineSettings settings) {
        int threads = settings.threadsOrDefault();
        if (vector == null) {
            vector = new VectorBackend(threads);
        } else if (settings.threads() > 0 && vector.threads() != threads) {
            LOG.warn(
                    "rwkv: the vector backend of this JVM runs {} threads; {} asked for later is ignored",
                    vector.threads(),
                    threads);
        }
        return vector;
    }

    /** Made on first use only, so that merely loading this class never touches the Vector API. */
    private static VectorBackend vector;

    /** Empty when the vector backend can run here; otherwise why not. */
    static Optional<String> vectorUnavailableReason() {
        if (ModuleLayer.boot().findModule(VECTOR_MODULE).isEmpty()) {
            return Optional.of(
                    "module " + VECTOR_MODULE + " is not loaded; start java with --add-modules " + VECTOR_MODULE);
        }
        try {
            VectorBackend.vectorLanes(); // runs VectorBackend's static initialisation
            return Optional.empty();
        } catch (LinkageError | RuntimeException e) { // e.g. an unsupported vector shape on this CPU
            return Optional.of("VectorBackend failed to initialise: " + e);
        }
    }

    private static final class ScalarHolder {
        static final ScalarBackend INSTANCE = new ScalarBackend();
    }
}
