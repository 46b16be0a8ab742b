package dev.rwkvflink.engine.format;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.tokenizer.Tokenizers;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Input files that are not files, or too big, are refused by name before anything is read (issue 18). A FIFO needs
 * {@code mkfifo} (skipped without it).
 */
class InputFilesTest {
    @TempDir
    Path dir;

    private static String refusal(Path file, long max) {
        return assertThrows(IOException.class, () -> InputFiles.read(file, "--x", max))
                .getMessage();
    }

    @Test
    void aRegularFileWithinTheBoundIsRead() throws IOException {
        Path f = Files.write(dir.resolve("ok.txt"), new byte[] {1, 2, 3});
        assertArrayEquals(new byte[] {1, 2, 3}, InputFiles.read(f, "--x", 3));
        assertTrue(refusal(f, 2).contains("3 bytes, more than the 2 bytes --x may have"));
    }

    @Test
    void directoriesDevicesAndMissingPathsAreRefusedByName() {
        assertTrue(refusal(dir, 100).contains("not a regular file (--x must be a file, not a directory)"));
        assertTrue(refusal(dir.resolve("absent"), 100).contains("not a missing path"));
        Path zero = Path.of("/dev/zero");
        Assumptions.assumeTrue(Files.exists(zero), "no /dev/zero");
        assertTrue(refusal(zero, 100).contains("device or pipe"));
    }

    @Test
    void aFifoIsRefusedWithoutBlocking() throws Exception {
        Path fifo = dir.resolve("in.fifo");
        int rc;
        try {
            rc = new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor();
        } catch (IOException e) {
            rc = -1;
        }
        Assumptions.assumeTrue(rc == 0, "mkfifo unavailable");
        String m = assertTimeoutPreemptively(Duration.ofSeconds(10), () -> refusal(fifo, 100));
        assertEquals(fifo + ": not a regular file (--x must be a file, not a device or pipe)", m);
        // the same for a vocabulary, whose format is sniffed from its first bytes
        String vocab = assertTimeoutPreemptively(
                Duration.ofSeconds(10),
                () -> assertThrows(IOException.class, () -> Tokenizers.load(fifo))
                        .getMessage());
        assertTrue(vocab.contains("not a regular file (a vocabulary must be a file"), vocab);
    }
}
