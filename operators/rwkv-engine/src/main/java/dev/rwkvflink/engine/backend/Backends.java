package dev.rwkvflink.engine.backend;

import java.util.List;
import java.util.Optional;

/**
 * Picks a {@link Backend} by name. Backends are shared, one instance per name per JVM (the vector backend owns a
 * worker pool, sized by system property {@code rwkv.threads}).
 *
 * <ul>
 *   <li>{@code "scalar"}: {@link ScalarBackend}, the plain-Java reference;</li>
 *   <li>{@code "vector"}: {@link VectorBackend}, SIMD and multi-threaded; needs the incubating module
 *       {@code jdk.incubator.vector} ({@code --add-modules jdk.incubator.vector} on the java command line).</li>
 *   <li>{@code "cuda"}: reserved for the GPU backend, which this build does not have yet; asking for it fails
 *       with an {@link IllegalStateException} that says so.</li>
 * </ul>
 */
public final class Backends {
    /** The names {@link #byName} knows. */
    public static final List<String> NAMES = List.of("cpu", "scalar", "vector");
    /** System property naming the default backend. */
    public static final String PROPERTY = "rwkv.backend";

    private static final System.Logger LOG = System.getLogger(Backends.class.getName());
    private static final String VECTOR_MODULE = "jdk.incubator.vector";
    /** Why {@code "cuda"} fails. */
    private static final String CUDA_UNAVAILABLE = "the GPU backend is not implemented yet (a later issue); "
            + "use the vector or scalar backend";

    private Backends() {
    }

    /**
     * The shared backend called {@code name} (case-insensitive, surrounding blanks ignored).
     *
     * @throws IllegalArgumentException for an unknown name (the message lists the known ones)
     * @throws IllegalStateException for "vector" when the Vector API module is not available, and for "cuda",
     *                               which this build does not include
     */
    public static Backend byName(String name) {
        String key = name == null ? "" : name.strip().toLowerCase(java.util.Locale.ROOT);
        return switch (key) {
            case "cpu" -> defaultBackend(); // the best CPU backend present (vector, else scalar with the reason logged)
            case "scalar" -> ScalarHolder.INSTANCE;
            case "cuda" -> throw new IllegalStateException("CUDA backend not available in this build: "
                    + CUDA_UNAVAILABLE);
            case "vector" -> {
                Optional<String> missing = vectorUnavailableReason();
                if (missing.isPresent()) {
                    throw new IllegalStateException("backend \"vector\" is not available: " + missing.get());
                }
                yield VectorHolder.INSTANCE;
            }
            default -> throw new IllegalArgumentException("unknown backend \"" + name + "\"; known: "
                    + String.join(", ", NAMES));
        };
    }

    /**
     * The backend named by system property {@value #PROPERTY} (default {@code "vector"}). When that is "vector" but
     * the Vector API is not available, logs why at WARNING and returns the scalar backend instead.
     *
     * @throws IllegalArgumentException if the property names an unknown backend
     */
    public static Backend defaultBackend() {
        String name = System.getProperty(PROPERTY, "vector");
        if ("vector".equalsIgnoreCase(name.strip())) {
            Optional<String> missing = vectorUnavailableReason();
            if (missing.isPresent()) {
                LOG.log(System.Logger.Level.WARNING, "rwkv: vector backend unavailable ({0}); using the scalar"
                        + " backend, which is several times slower", missing.get());
                return ScalarHolder.INSTANCE;
            }
        }
        return byName(name);
    }

    /** Empty when the vector backend can run here; otherwise why not. */
    static Optional<String> vectorUnavailableReason() {
        if (ModuleLayer.boot().findModule(VECTOR_MODULE).isEmpty()) {
            return Optional.of("module " + VECTOR_MODULE + " is not loaded; start java with --add-modules "
                    + VECTOR_MODULE);
        }
        try {
            VectorHolder.INSTANCE.name(); // runs VectorBackend's static initialisation
            return Optional.empty();
        } catch (LinkageError | RuntimeException e) { // e.g. an unsupported vector shape on this CPU
            return Optional.of("VectorBackend failed to initialise: " + e);
        }
    }

    /** Created on first use only, so that merely loading this class never touches the Vector API. */
    private static final class VectorHolder {
        static final VectorBackend INSTANCE = new VectorBackend();
    }

    private static final class ScalarHolder {
        static final ScalarBackend INSTANCE = new ScalarBackend();
    }
}
