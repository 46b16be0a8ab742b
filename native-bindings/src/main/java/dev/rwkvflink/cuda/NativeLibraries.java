package dev.rwkvflink.cuda;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.function.Supplier;

/**
 * Finds and loads the CUDA driver, cuBLAS (with cuBLASLt) and NVRTC, each once per process.
 *
 * <p>A library that is absent is a normal condition (a machine without a GPU): the first attempt records why it
 * failed, and every later call throws an {@link IllegalStateException} with the same message, for example
 * {@code libcuda.so.1 not found (searched: /usr/lib, ..., then the dynamic linker's default search)}. Search
 * order: {@link LibrarySearch}.
 */
final class NativeLibraries {
    /** Newest first: the toolkit on the GPU machine is CUDA 13; 12 is accepted where 13 is absent. */
    private static final int[] TOOLKIT_MAJORS = {13, 12};

    private static final String DRIVER = "libcuda.so.1";

    private static final Once<NativeLibrary> DRIVER_LIBRARY = new Once<>(() -> loadDriver(search()));
    private static final Once<NativeLibrary> CUBLAS_LIBRARY = new Once<>(() -> loadCublas(search()));
    private static final Once<NativeLibrary> NVRTC_LIBRARY = new Once<>(() -> loadNvrtc(search()));

    private NativeLibraries() {}

    /** The CUDA driver API, {@code libcuda.so.1}. */
    static NativeLibrary driver() {
        return DRIVER_LIBRARY.get();
    }

    /** cuBLAS, {@code libcublas.so.13} (loaded after its {@code libcublasLt.so.13}). */
    static NativeLibrary cublas() {
        return CUBLAS_LIBRARY.get();
    }

    /** NVRTC, {@code libnvrtc.so.13}. */
    static NativeLibrary nvrtc() {
        return NVRTC_LIBRARY.get();
    }

    private static LibrarySearch search() {
        return LibrarySearch.fromEnvironment();
    }

    /** Loads the driver from the first search directory that has it, else by bare name through the dynamic linker. */
    static NativeLibrary loadDriver(LibrarySearch search) {
        List<Path> dirs = search.driverDirectories();
        Optional<Path> found = LibrarySearch.find(DRIVER, dirs);
        if (found.isPresent()) {
            return open(found.get());
        }
        try {
            return NativeLibrary.openByName(DRIVER);
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException(notFound(DRIVER, dirs));
        }
    }

    /**
     * Loads cuBLASLt and then cuBLAS of the same major version: cuBLAS needs cuBLASLt, and loading it first
     * does not depend on cuBLAS's RUNPATH.
     */
    static NativeLibrary loadCublas(LibrarySearch search) {
        List<Path> dirs = search.toolkitDirectories();
        for (int major : TOOLKIT_MAJORS) {
            Optional<Path> lt = LibrarySearch.find("libcublasLt.so." + major, dirs);
            Optional<Path> blas = LibrarySearch.find("libcublas.so." + major, dirs);
            if (lt.isPresent() && blas.isPresent()) {
                open(lt.get());
                return open(blas.get());
            }
        }
        for (int major : TOOLKIT_MAJORS) {
            try {
                NativeLibrary.openByName("libcublasLt.so." + major);
                return NativeLibrary.openByName("libcublas.so." + major);
            } catch (IllegalArgumentException e) {
                // try the next version, then report the search
            }
        }
        throw new IllegalStateException(notFound("libcublas.so.13 with libcublasLt.so.13 (or .12)", dirs));
    }

    /** Loads NVRTC, after its builtins library from the same directory where that is present. */
    static NativeLibrary loadNvrtc(LibrarySearch search) {
        List<Path> dirs = search.toolkitDirectories();
        for (int major : TOOLKIT_MAJORS) {
            Optional<Path> nvrtc = LibrarySearch.find("libnvrtc.so." + major, dirs);
            if (nvrtc.isPresent()) {
                preloadBuiltins(nvrtc.get().getParent(), major);
                return open(nvrtc.get());
            }
        }
        for (int major : TOOLKIT_MAJORS) {
            try {
                return NativeLibrary.openByName("libnvrtc.so." + major);
            } catch (IllegalArgumentException e) {
                // try the next version, then report the search
            }
        }
        throw new IllegalStateException(notFound("libnvrtc.so.13 (or .12)", dirs));
    }

    /**
     * NVRTC opens {@code libnvrtc-builtins.so.<major>.<minor>} itself when it first compiles; loading it here
     * from NVRTC's own directory makes that independent of {@code LD_LIBRARY_PATH}. Best effort.
     */
    private static void preloadBuiltins(Path dir, int major) {
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, "libnvrtc-builtins.so." + major + ".*")) {
            for (Path file : files) {
                if (file.getFileName().toString().chars().filter(c -> c == '.').count() == 3) { // .so.13.0
                    NativeLibrary.open(file);
                    return;
                }
            }
        } catch (IOException | IllegalArgumentException e) {
            // NVRTC will report a missing builtins library itself when it compiles
        }
    }

    private static NativeLibrary open(Path file) {
        try {
            return NativeLibrary.open(file);
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException(file + " was found but could not be loaded: " + e.getMessage(), e);
        }
    }

    static String notFound(String what, List<Path> dirs) {
        return what + " not found (searched: " + LibrarySearch.describe(dirs)
                + ", then the dynamic linker's default search)";
    }

    /** A value computed once; a failure is remembered and rethrown with the same message on every call. */
    private static final class Once<T> {
        private final Supplier<T> loader;
        private T value;
        private String failure;

        Once(Supplier<T> loader) {
            this.loader = loader;
        }

        synchronized T get() {
            if (value == null && failure == null) {
                try {
                    value = loader.get();
                } catch (RuntimeException e) {
                    failure = e.getMessage();
                }
            }
            if (failure != null) {
                throw new IllegalStateException(failure);
            }
            return value;
        }
    }
}
