package dev.rwkvflink.cuda;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.function.Function;

/**
 * Where the CUDA libraries are looked for, in order. Only finds files; {@link NativeLibraries} loads them.
 *
 * <p>Toolkit libraries (cuBLAS, cuBLASLt, NVRTC): the directories named by the system property
 * {@value #PATH_PROPERTY} (or, when it is unset, the environment variable {@value #PATH_ENV}), then
 * {@code $CUDA_HOME/lib64}, {@code $CUDA_PATH/lib64}, {@code /usr/local/cuda/lib64},
 * {@code /usr/local/cuda/targets/x86_64-linux/lib} and the {@code LD_LIBRARY_PATH} entries.
 *
 * <p>The driver ({@code libcuda.so.1}, installed with the kernel module rather than the toolkit): the explicit
 * directories, then {@code /usr/lib}, {@code /usr/lib64}, {@code /usr/lib/x86_64-linux-gnu},
 * {@code /usr/local/nvidia/lib64} and {@code LD_LIBRARY_PATH}; {@link NativeLibraries} finally asks the dynamic
 * linker for the bare name.
 */
final class LibrarySearch {
    /** System property: directories to search first, separated by {@link File#pathSeparator}. */
    static final String PATH_PROPERTY = "rwkv.cuda.lib.path";
    /** Environment variable read when {@value #PATH_PROPERTY} is unset. */
    static final String PATH_ENV = "RWKV_CUDA_LIB_PATH";

    private static final List<String> TOOLKIT_DEFAULTS =
            List.of("/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib");
    private static final List<String> DRIVER_DEFAULTS =
            List.of("/usr/lib", "/usr/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/local/nvidia/lib64");

    private final List<Path> explicit;
    private final List<Path> toolkit;
    private final List<Path> driver;

    private LibrarySearch(List<Path> explicit, List<Path> toolkit, List<Path> driver) {
        this.explicit = explicit;
        this.toolkit = toolkit;
        this.driver = driver;
    }

    /** The search this process uses: system properties and environment variables as they are now. */
    static LibrarySearch fromEnvironment() {
        return of(System::getProperty, System::getenv);
    }

    /**
     * A search built from the given lookups (tests pass maps; {@link #fromEnvironment()} passes the real ones).
     *
     * @param properties system property lookup (may return null)
     * @param environment environment variable lookup (may return null)
     */
    static LibrarySearch of(Function<String, String> properties, Function<String, String> environment) {
        String listed = properties.apply(PATH_PROPERTY);
        if (listed == null || listed.isBlank()) {
            listed = environment.apply(PATH_ENV);
        }
        List<Path> explicit = directories(listed);
        List<Path> ldPath = directories(environment.apply("LD_LIBRARY_PATH"));

        Set<Path> toolkit = new LinkedHashSet<>(explicit);
        for (String home : new String[] {environment.apply("CUDA_HOME"), environment.apply("CUDA_PATH")}) {
            if (home != null && !home.isBlank()) {
                addIfValid(toolkit, home.strip() + "/lib64");
            }
        }
        TOOLKIT_DEFAULTS.forEach(d -> addIfValid(toolkit, d));
        toolkit.addAll(ldPath);

        Set<Path> driver = new LinkedHashSet<>(explicit);
        DRIVER_DEFAULTS.forEach(d -> addIfValid(driver, d));
        driver.addAll(ldPath);
        return new LibrarySearch(explicit, List.copyOf(toolkit), List.copyOf(driver));
    }

    /** The directories named by {@value #PATH_PROPERTY} or {@value #PATH_ENV}, in order. */
    List<Path> explicitDirectories() {
        return explicit;
    }

    /** Where cuBLAS, cuBLASLt and NVRTC are looked for, in order. */
    List<Path> toolkitDirectories() {
        return toolkit;
    }

    /** Where {@code libcuda.so.1} is looked for, in order (before the dynamic linker's own search). */
    List<Path> driverDirectories() {
        return driver;
    }

    /** The first directory of {@code dirs} that holds a file called {@code fileName}. */
    static Optional<Path> find(String fileName, List<Path> dirs) {
        for (Path dir : dirs) {
            Path candidate = dir.resolve(fileName);
            if (Files.isRegularFile(candidate)) { // follows symbolic links
                return Optional.of(candidate);
            }
        }
        return Optional.empty();
    }

    /** {@code dirs} as one comma-separated line for messages. */
    static String describe(List<Path> dirs) {
        List<String> names = new ArrayList<>();
        dirs.forEach(d -> names.add(d.toString()));
        return names.isEmpty() ? "no directories" : String.join(", ", names);
    }

    private static List<Path> directories(String pathList) {
        Set<Path> dirs = new LinkedHashSet<>();
        if (pathList != null) {
            for (String entry : pathList.split(File.pathSeparator)) {
                if (!entry.isBlank()) {
                    addIfValid(dirs, entry.strip());
                }
            }
        }
        return List.copyOf(dirs);
    }

    private static void addIfValid(Set<Path> dirs, String dir) {
        try {
            dirs.add(Path.of(dir).normalize());
        } catch (InvalidPathException e) {
            // an unusable entry in a user-supplied list is skipped, as the dynamic linker skips it
        }
    }
}
