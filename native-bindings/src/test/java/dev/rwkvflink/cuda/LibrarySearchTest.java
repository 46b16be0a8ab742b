package dev.rwkvflink.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The order in which the CUDA libraries are looked for. Runs on every machine (loads nothing real). */
class LibrarySearchTest {

    private static LibrarySearch search(Map<String, String> properties, Map<String, String> environment) {
        return LibrarySearch.of(properties::get, environment::get);
    }

    @Test
    void toolkitLibrariesAreLookedForInTheDocumentedOrder() {
        LibrarySearch search = search(
                Map.of(LibrarySearch.PATH_PROPERTY, "/opt/a:/opt/b"),
                Map.of(
                        "CUDA_HOME",
                        "/opt/cuda-home",
                        "CUDA_PATH",
                        "/opt/cuda-path",
                        "LD_LIBRARY_PATH",
                        "/opt/ld1::/opt/ld2"));
        assertEquals(
                List.of(
                        Path.of("/opt/a"),
                        Path.of("/opt/b"),
                        Path.of("/opt/cuda-home/lib64"),
                        Path.of("/opt/cuda-path/lib64"),
                        Path.of("/usr/local/cuda/lib64"),
                        Path.of("/usr/local/cuda/targets/x86_64-linux/lib"),
                        Path.of("/opt/ld1"),
                        Path.of("/opt/ld2")),
                search.toolkitDirectories());
    }

    @Test
    void theDriverIsLookedForInTheSystemDirectories() {
        LibrarySearch search = search(
                Map.of(),
                Map.of(
                        LibrarySearch.PATH_ENV,
                        "/opt/explicit",
                        "CUDA_HOME",
                        "/opt/cuda-home",
                        "LD_LIBRARY_PATH",
                        "/opt/ld"));
        assertEquals(
                List.of(
                        Path.of("/opt/explicit"),
                        Path.of("/usr/lib"),
                        Path.of("/usr/lib64"),
                        Path.of("/usr/lib/x86_64-linux-gnu"),
                        Path.of("/usr/local/nvidia/lib64"),
                        Path.of("/opt/ld")),
                search.driverDirectories());
    }

    @Test
    void thePropertyWinsOverTheEnvironmentVariable() {
        LibrarySearch search = search(
                Map.of(LibrarySearch.PATH_PROPERTY, "/from/property"), Map.of(LibrarySearch.PATH_ENV, "/from/env"));
        assertEquals(List.of(Path.of("/from/property")), search.explicitDirectories());
        assertEquals(
                List.of(Path.of("/from/env")),
                search(Map.of(), Map.of(LibrarySearch.PATH_ENV, "/from/env")).explicitDirectories());
    }

    @Test
    void repeatedAndBlankEntriesAreDropped() {
        LibrarySearch search = search(
                Map.of(LibrarySearch.PATH_PROPERTY, "/usr/local/cuda/lib64: :/opt/x/"),
                Map.of("LD_LIBRARY_PATH", "/opt/x"));
        assertEquals(
                List.of(
                        Path.of("/usr/local/cuda/lib64"),
                        Path.of("/opt/x"),
                        Path.of("/usr/local/cuda/targets/x86_64-linux/lib")),
                search.toolkitDirectories());
    }

    @Test
    void theFirstDirectoryHoldingTheFileWins(@TempDir Path tmp) throws IOException {
        Path first = Files.createDirectories(tmp.resolve("first"));
        Path second = Files.createDirectories(tmp.resolve("second"));
        Files.createFile(second.resolve("libnvrtc.so.13"));
        assertEquals(
                Optional.of(second.resolve("libnvrtc.so.13")),
                LibrarySearch.find("libnvrtc.so.13", List.of(first, second)));
        Files.createFile(first.resolve("libnvrtc.so.13"));
        assertEquals(
                Optional.of(first.resolve("libnvrtc.so.13")),
                LibrarySearch.find("libnvrtc.so.13", List.of(first, second)));
        assertEquals(Optional.empty(), LibrarySearch.find("libnvrtc.so.12", List.of(first, second)));
    }

    @Test
    void aFileThatIsNotALibraryIsReportedWithItsPath(@TempDir Path dir) throws IOException {
        // Explicit directories come first, so these empty files are what the loader tries on any machine.
        Files.createFile(dir.resolve("libcuda.so.1"));
        Files.createFile(dir.resolve("libcublasLt.so.13"));
        Files.createFile(dir.resolve("libcublas.so.13"));
        LibrarySearch search = search(Map.of(LibrarySearch.PATH_PROPERTY, dir.toString()), Map.of());

        IllegalStateException driver =
                assertThrows(IllegalStateException.class, () -> NativeLibraries.loadDriver(search));
        assertTrue(
                driver.getMessage().startsWith(dir.resolve("libcuda.so.1") + " was found but could not be loaded"),
                driver.getMessage());
        IllegalStateException cublas =
                assertThrows(IllegalStateException.class, () -> NativeLibraries.loadCublas(search));
        assertTrue(
                cublas.getMessage().startsWith(dir.resolve("libcublasLt.so.13") + " was found but could not be loaded"),
                "cuBLASLt is loaded before cuBLAS: " + cublas.getMessage());
    }

    @Test
    void cublasIsTakenOnlyWithCublasLtOfTheSameVersion(@TempDir Path dir) throws IOException {
        // libcublas.so.13 without its libcublasLt.so.13: the .12 pair is used instead.
        Files.createFile(dir.resolve("libcublas.so.13"));
        Files.createFile(dir.resolve("libcublasLt.so.12"));
        Files.createFile(dir.resolve("libcublas.so.12"));
        LibrarySearch search = search(Map.of(LibrarySearch.PATH_PROPERTY, dir.toString()), Map.of());
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> NativeLibraries.loadCublas(search));
        boolean thirteenElsewhere = LibrarySearch.find("libcublasLt.so.13", search.toolkitDirectories())
                .isPresent();
        if (!thirteenElsewhere) {
            assertTrue(e.getMessage().startsWith(dir.resolve("libcublasLt.so.12") + " was found"), e.getMessage());
        }
    }
}
