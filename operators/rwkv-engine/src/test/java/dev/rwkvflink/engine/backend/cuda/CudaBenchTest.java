package dev.rwkvflink.engine.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** CudaBench's command line (no GPU needed): what it takes, in order, and a one-line reason for what it refuses. */
class CudaBenchTest {
    @Test
    void rowsAreTakenInOrder() {
        assertEquals(
                List.of("prefill", "256x16", "1024x128", "decode"),
                List.copyOf(CudaBench.rows("prefill,256x16,1024x128,decode")));
    }

    @Test
    void anUnknownRowIsRefusedWithTheKnownOnes() {
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> CudaBench.rows("prefill,256x61"));
        assertTrue(e.getMessage().contains("unknown row 256x61"), e.getMessage());
        assertTrue(e.getMessage().contains("1024x128"), e.getMessage());
    }

    @Test
    void optionsAreParsedBeforeAnyGpuWork() {
        CudaBench.Options o = CudaBench.Options.parse(new String[] {
            "--shapes", "1.5b,0.1b", "--reps", "3", "--rows", "decode", "--no-ceilings", "--decode-reps", "7"
        });
        assertEquals(List.of("1.5b", "0.1b"), List.copyOf(o.shapes().keySet()));
        assertEquals(3, o.reps());
        assertEquals(7, o.decodeReps());
        assertEquals(List.of("decode"), List.copyOf(o.rows()));
        assertTrue(!o.ceilings() && !o.quick());
    }

    @Test
    void badArgumentsAreRefusedWithTheReason() {
        assertEquals("unknown shape 3b (0.1b, 1.5b, 7b)", refusal("--shapes", "0.1b,3b"));
        assertEquals("--reps takes a whole number, not five", refusal("--reps", "five"));
        assertEquals("--rows needs a value", refusal("--rows"));
        assertEquals("unknown argument --fast", refusal("--fast"));
    }

    private static String refusal(String... args) {
        return assertThrows(IllegalArgumentException.class, () -> CudaBench.Options.parse(args))
                .getMessage();
    }
}
