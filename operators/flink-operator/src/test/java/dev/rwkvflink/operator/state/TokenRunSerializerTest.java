package dev.rwkvflink.operator.state;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.EOFException;
import java.io.IOException;
import java.util.Arrays;
import java.util.Random;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.junit.jupiter.api.Test;

class TokenRunSerializerTest {
    private static byte[] bytes(int[] run) throws IOException {
        DataOutputSerializer out = new DataOutputSerializer(64);
        TokenRunSerializer.INSTANCE.serialize(run, out);
        return out.getCopyOfBuffer();
    }

    private static int[] read(byte[] b) throws IOException {
        return TokenRunSerializer.INSTANCE.deserialize(new DataInputDeserializer(b));
    }

    @Test
    void runsRoundTripIncludingTheVarintBoundaries() throws IOException {
        int[] edges = {0, 1, 127, 128, 16_383, 16_384, 65_535, 2_097_151, 2_097_152, Integer.MAX_VALUE};
        assertArrayEquals(edges, read(bytes(edges)));
        assertArrayEquals(new int[0], read(bytes(new int[0])));
        Random rnd = new Random(7); // seeded: a failure replays
        int[] world = new int[10_000];
        for (int i = 0; i < world.length; i++) {
            world[i] = rnd.nextInt(65_536);
        }
        assertArrayEquals(world, read(bytes(world)));
    }

    @Test
    void worldTokenIdsTakeOneToThreeBytes() throws IOException {
        assertEquals(1 + 1, bytes(new int[] {127}).length);
        assertEquals(1 + 2, bytes(new int[] {128}).length);
        assertEquals(1 + 3, bytes(new int[] {65_535}).length);
        int[] run = new int[1000];
        Arrays.fill(run, 10_000); // a typical word token: 2 bytes, half of an int
        assertEquals(2 + 2 * 1000, bytes(run).length);
    }

    @Test
    void corruptRunsFailWithAReasonBeforeAllocating() {
        IOException tooLong = assertThrows(
                IOException.class, () -> read(new byte[] {(byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, 0x07}));
        assertTrue(tooLong.getMessage().contains("tokens"), tooLong.getMessage());
        IOException endless = assertThrows(
                IOException.class,
                () -> read(new byte[] {1, (byte) 0x80, (byte) 0x80, (byte) 0x80, (byte) 0x80, (byte) 0x80, 0}));
        assertTrue(endless.getMessage().contains("longer than 5 bytes"), endless.getMessage());
        IOException negative = assertThrows(
                IOException.class,
                () -> read(new byte[] {1, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, 0x0F}));
        assertTrue(negative.getMessage().contains("out of range"), negative.getMessage());
        assertThrows(EOFException.class, () -> read(new byte[] {3, 1, 2}));
        assertThrows(IOException.class, () -> bytes(new int[] {-1}));
    }
}
