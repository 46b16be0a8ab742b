package dev.rwkvflink.engine.backend.cuda;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** CudaBench's --rows list (no GPU needed): the rows it names, in order, and a clear error for a typo. */
class CudaBenchTest {
    @Test
    void rowsAreTakenInOrder() {
        assertEquals(List.of("prefill", "256x16", "1024x128", "decode"),
                List.copyOf(CudaBench.rows("prefill,256x16,1024x128,decode")));
    }

    @Test
    void anUnknownRowIsRefusedWithTheKnownOnes() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> CudaBench.rows("prefill,256x61"));
        assertTrue(e.getMessage().contains("unknown row 256x61"), e.getMessage());
        assertTrue(e.getMessage().contains("1024x128"), e.getMessage());
    }
}
