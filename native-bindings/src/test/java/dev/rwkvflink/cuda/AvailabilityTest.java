package dev.rwkvflink.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** CUDA being absent is a normal condition: a reason, never an exception. Runs on every machine. */
class AvailabilityTest {

    @Test
    void availabilityNeverThrowsAndIsComputedOnce() {
        Availability first = Cuda.availability();
        assertSame(first, Cuda.availability());
        assertTrue(first.reason().startsWith(first.available() ? "available: " : "unavailable: "), first.reason());
        System.out.println("CUDA " + first.reason());
    }

    @Test
    void withoutTheDriverTheReasonNamesItAndEveryDirectorySearched() {
        LibrarySearch search = LibrarySearch.fromEnvironment();
        assumeFalse(driverLoadable(search), "libcuda.so.1 is installed here");

        Availability availability = Cuda.availability();
        assertFalse(availability.available());
        String reason = availability.reason();
        assertTrue(reason.startsWith("unavailable: libcuda.so.1 not found (searched: "), reason);
        for (Path dir : search.driverDirectories()) {
            assertTrue(reason.contains(dir.toString()), dir + " missing from: " + reason);
        }
        assertTrue(reason.contains("/usr/lib/x86_64-linux-gnu") && reason.contains("/usr/local/nvidia/lib64"), reason);
    }

    @Test
    void devicesAreRefusedWithTheReasonWhenUnavailable() {
        Availability availability = Cuda.availability();
        assumeFalse(availability.available(), availability.reason());
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Cuda.device(0));
        assertEquals(availability.reason(), e.getMessage());
    }

    @Test
    void anExplicitLibraryPathIsSearchedFirstAndNamedWhenNothingIsFound(@TempDir Path empty) {
        String previous = System.getProperty(LibrarySearch.PATH_PROPERTY);
        System.setProperty(LibrarySearch.PATH_PROPERTY, empty.toString());
        try {
            LibrarySearch search = LibrarySearch.fromEnvironment();
            assertEquals(empty, search.driverDirectories().getFirst());
            assertEquals(empty, search.toolkitDirectories().getFirst());
            assumeFalse(driverLoadable(search), "libcuda.so.1 is installed here, so it is found after " + empty);
            IllegalStateException e =
                    assertThrows(IllegalStateException.class, () -> NativeLibraries.loadDriver(search));
            assertTrue(
                    e.getMessage().startsWith("libcuda.so.1 not found (searched: " + empty + ", /usr/lib"),
                    e.getMessage());
        } finally {
            if (previous == null) {
                System.clearProperty(LibrarySearch.PATH_PROPERTY);
            } else {
                System.setProperty(LibrarySearch.PATH_PROPERTY, previous);
            }
        }
    }

    @Test
    void theReasonForAMissingToolkitLibraryListsTheToolkitDirectories(@TempDir Path empty) {
        LibrarySearch search = LibrarySearch.of(
                name -> name.equals(LibrarySearch.PATH_PROPERTY) ? empty.toString() : null, name -> null);
        assumeTrue(
                LibrarySearch.find("libnvrtc.so.13", search.toolkitDirectories())
                                .isEmpty()
                        && LibrarySearch.find("libnvrtc.so.12", search.toolkitDirectories())
                                .isEmpty(),
                "NVRTC is installed");
        try {
            NativeLibraries.loadNvrtc(search);
        } catch (IllegalStateException e) {
            assertEquals(
                    "libnvrtc.so.13 (or .12) not found (searched: " + empty
                            + ", /usr/local/cuda/lib64, /usr/local/cuda/targets/x86_64-linux/lib,"
                            + " then the dynamic linker's default search)",
                    e.getMessage());
            return;
        }
        // found by the dynamic linker's own search: nothing to check
    }

    private static boolean driverLoadable(LibrarySearch search) {
        if (LibrarySearch.find("libcuda.so.1", search.driverDirectories()).isPresent()) {
            return true;
        }
        try {
            NativeLibrary.openByName("libcuda.so.1");
            return true;
        } catch (IllegalArgumentException e) {
            return false;
        }
    }
}
