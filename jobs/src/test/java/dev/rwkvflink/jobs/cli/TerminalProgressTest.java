package dev.rwkvflink.jobs.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** The progress line: rewritten in place at most twice a second, cleared at the end, silent when not shown. */
class TerminalProgressTest {

    private final ByteArrayOutputStream buf = new ByteArrayOutputStream();
    private final long[] now = {0};

    /** A progress report on {@link #buf} whose clock reads {@link #now}. */
    private TerminalProgress progress(boolean shown) {
        return new TerminalProgress(new PrintStream(buf, true, StandardCharsets.UTF_8), shown, () -> now[0]);
    }

    @Test
    void theLineIsRewrittenAtMostTwiceASecondAndClearedAtTheEnd() {
        TerminalProgress p = progress(true);
        p.update("a"); // t = 0: too soon
        now[0] = 400_000_000L;
        p.update("b"); // 0.4 s: too soon
        now[0] = 600_000_000L;
        p.update("step 1");
        now[0] = 800_000_000L;
        p.update("c"); // 0.2 s after the last print: too soon
        now[0] = 2_000_000_000L;
        p.update("s2");
        p.done();
        String line1 = "step 1 (1 s)"; // 0.6 s rounds to 1
        String line2 = "s2 (2 s)";
        assertEquals(
                "\r" + line1 + "\r" + line2 + " ".repeat(line1.length() - line2.length()) + "\r"
                        + " ".repeat(line2.length()) + "\r",
                buf.toString(StandardCharsets.UTF_8));
    }

    @Test
    void nothingIsPrintedWhenNotShown() {
        TerminalProgress p = progress(false);
        now[0] = 5_000_000_000L;
        p.update("x");
        p.done();
        assertEquals("", buf.toString(StandardCharsets.UTF_8));
        assertEquals(5.0, p.seconds());
    }
}
