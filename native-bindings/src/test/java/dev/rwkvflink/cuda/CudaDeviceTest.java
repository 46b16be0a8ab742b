package dev.rwkvflink.cuda;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/** Device properties, memory and copies. Needs a GPU; skips itself elsewhere. */
class CudaDeviceTest {

    @Test
    void propertiesAreSane() {
        CudaDevice gpu = Gpu.device();
        assertSame(gpu, Cuda.device(0));
        assertEquals(0, gpu.ordinal());
        assertFalse(gpu.name().isBlank());
        assertTrue(gpu.multiprocessors() > 0, "SMs " + gpu.multiprocessors());
        assertTrue(gpu.totalMemory() >= 1L << 30, "memory " + gpu.totalMemory());
        assertTrue(gpu.computeMajor() >= 5 && gpu.computeMinor() >= 0);
        assertEquals("sm_" + gpu.computeMajor() + gpu.computeMinor(), gpu.arch());
        assertTrue(gpu.l2CacheBytes() > 0, "L2 " + gpu.l2CacheBytes());
        assertTrue(gpu.maxSharedMemoryPerBlockOptin() >= 48 * 1024, "smem " + gpu.maxSharedMemoryPerBlockOptin());
        long[] memory = gpu.memoryInfo();
        assertTrue(memory[0] > 0 && memory[0] <= memory[1], memory[0] + " free of " + memory[1]);
        assertTrue(Cuda.driverVersion() >= 12000, "driver " + Cuda.driverVersion());
        assertTrue(Cuda.deviceCount() >= 1);
        assertTrue(
                Cuda.availability().reason().contains(gpu.name() + ", " + gpu.arch()),
                Cuda.availability().reason());
        System.out.println(gpu + ": " + gpu.multiprocessors() + " SMs, " + (gpu.totalMemory() >> 20) + " MiB, L2 "
                + (gpu.l2CacheBytes() >> 10) + " KiB, smem opt-in " + gpu.maxSharedMemoryPerBlockOptin()
                + " B, driver " + Cuda.driverVersion() + "; "
                + Cuda.availability().reason());
    }

    @Test
    void bytesRoundTripThroughDeviceMemory() {
        CudaDevice gpu = Gpu.device();
        long seed = Gpu.seed();
        int n = (1 << 20) + 3; // not a multiple of anything convenient
        byte[] data = new byte[n];
        new Random(seed).nextBytes(data);
        try (Arena arena = Arena.ofConfined();
                DeviceMemory memory = gpu.alloc(n + 100L);
                CudaStream stream = gpu.newStream()) {
            MemorySegment src = arena.allocate(n);
            MemorySegment.copy(data, 0, src, JAVA_BYTE, 0, n);
            MemorySegment dst = arena.allocate(n);
            dst.fill((byte) 0xA5);
            memory.copyFromHost(src, 100, n, stream);
            memory.copyToHost(100, dst, n, stream);
            stream.synchronize();
            assertArrayEquals(data, dst.toArray(JAVA_BYTE), Gpu.seedText(seed));
        }
    }

    @Test
    void pinnedMemoryCopiesAsynchronously() {
        CudaDevice gpu = Gpu.device();
        long seed = Gpu.seed();
        int n = 4 << 20;
        try (PinnedMemory up = gpu.allocPinned(n);
                PinnedMemory down = gpu.allocPinned(n);
                DeviceMemory memory = gpu.alloc(n);
                CudaStream stream = gpu.newStream()) {
            assertEquals(n, up.segment().byteSize());
            assertEquals(up.address(), up.segment().address());
            byte[] data = new byte[n];
            new Random(seed).nextBytes(data);
            MemorySegment.copy(data, 0, up.segment(), JAVA_BYTE, 0, n);
            down.segment().fill((byte) 0x5A);
            memory.copyFromHost(up.segment(), 0, n, stream);
            memory.copyToHost(0, down.segment(), n, stream);
            stream.synchronize();
            assertArrayEquals(data, down.segment().toArray(JAVA_BYTE), Gpu.seedText(seed));
        }
        PinnedMemory freed = gpu.allocPinned(64);
        freed.close();
        freed.close();
        assertThrows(IllegalStateException.class, () -> freed.segment().get(JAVA_BYTE, 0), "freed memory is unusable");
    }

    @Test
    void fill32SetsExactlyTheWordsAsked() {
        CudaDevice gpu = Gpu.device();
        int words = 1000;
        try (Arena arena = Arena.ofConfined();
                DeviceMemory memory = gpu.alloc(4L * words)) {
            memory.fill32(0, words, 0x11111111, null);
            memory.fill32(4L * 10, 500, Float.floatToRawIntBits(-1.5f), null);
            MemorySegment host = arena.allocate(JAVA_INT, words);
            memory.copyToHost(0, host, 4L * words, null);
            gpu.synchronize();
            for (int i = 0; i < words; i++) {
                int expected = i >= 10 && i < 510 ? Float.floatToRawIntBits(-1.5f) : 0x11111111;
                assertEquals(expected, host.getAtIndex(JAVA_INT, i), "word " + i);
            }
            assertThrows(IllegalArgumentException.class, () -> memory.fill32(2, 1, 0, null), "unaligned");
            assertThrows(IndexOutOfBoundsException.class, () -> memory.fill32(4, words, 0, null), "past the end");
        }
    }

    @Test
    void deviceToDeviceCopiesRespectOffsets() {
        CudaDevice gpu = Gpu.device();
        long seed = Gpu.seed();
        float[] values = Gpu.randomFloats(new Random(seed), 256);
        try (DeviceMemory src = Gpu.upload(gpu, values);
                DeviceMemory dst = gpu.alloc(4L * 256)) {
            dst.fill32(0, 256, 0, null);
            dst.copyFromDevice(src, 4L * 16, 4L * 32, 4L * 64, null); // src[16..80) -> dst[32..96)
            float[] out = Gpu.download(dst, 256);
            for (int i = 0; i < 256; i++) {
                float expected = i >= 32 && i < 96 ? values[i - 16] : 0f;
                assertEquals(expected, out[i], "element " + i + ", " + Gpu.seedText(seed));
            }
        }
    }

    @Test
    void copiesAreBoundsCheckedAndNeedNativeHostMemory() {
        CudaDevice gpu = Gpu.device();
        try (Arena arena = Arena.ofConfined();
                DeviceMemory memory = gpu.alloc(64)) {
            MemorySegment host = arena.allocate(64);
            assertThrows(IndexOutOfBoundsException.class, () -> memory.copyFromHost(host, 1, 64, null));
            assertThrows(IndexOutOfBoundsException.class, () -> memory.copyToHost(0, host.asSlice(0, 32), 64, null));
            assertThrows(IndexOutOfBoundsException.class, () -> memory.copyFromDevice(memory, 32, 0, 33, null));
            assertThrows(IndexOutOfBoundsException.class, () -> memory.address(65));
            assertEquals(memory.address() + 64, memory.address(64));
            assertThrows(
                    IllegalArgumentException.class,
                    () -> memory.copyFromHost(MemorySegment.ofArray(new byte[64]), 0, 64, null));
        }
    }

    @Test
    void freedMemoryIsRefusedAndFreeingTwiceIsHarmless() {
        CudaDevice gpu = Gpu.device();
        DeviceMemory memory = gpu.alloc(16);
        memory.close();
        memory.close();
        assertThrows(IllegalStateException.class, () -> memory.fill32(0, 1, 0, null));
    }

    @Test
    void anImpossibleAllocationIsACudaException() {
        CudaDevice gpu = Gpu.device();
        CudaException e = assertThrows(CudaException.class, () -> gpu.alloc(1L << 50));
        assertEquals("cuMemAlloc_v2", e.call());
        assertEquals("CUDA_ERROR_OUT_OF_MEMORY", e.statusName());
        assertEquals(2, e.status());
        assertTrue(e.getMessage().startsWith("cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY ("), e.getMessage());
    }

    @Test
    void anyThreadMayUseTheDevice() throws InterruptedException {
        CudaDevice gpu = Gpu.device();
        long seed = Gpu.seed();
        float[] values = Gpu.randomFloats(new Random(seed), 1000);
        for (Thread.Builder builder : new Thread.Builder[] {Thread.ofPlatform(), Thread.ofVirtual()}) {
            AtomicReference<Object> result = new AtomicReference<>();
            Thread thread = builder.start(() -> {
                try (DeviceMemory memory = Gpu.upload(gpu, values)) {
                    result.set(Gpu.download(memory, values.length));
                } catch (Throwable t) {
                    result.set(t);
                }
            });
            thread.join();
            if (result.get() instanceof Throwable t) {
                throw new AssertionError("on " + thread + ", " + Gpu.seedText(seed), t);
            }
            assertArrayEquals(values, (float[]) result.get(), "on " + thread + ", " + Gpu.seedText(seed));
        }
    }
}
