package dev.rwkvflink.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Streams, events and graphs. Needs a GPU; skips itself elsewhere. */
class CudaGraphTest {
    private static final int BLOCK = 256;

    @Test
    void aCapturedGraphReplaysItsWork(@TempDir Path cache) {
        CudaDevice gpu = Gpu.device();
        long seed = Gpu.seed();
        Random random = new Random(seed);
        int n = 100_003;
        float a = random.nextFloat() + 0.5f;
        float[] x = Gpu.randomFloats(random, n);
        float[] y = Gpu.randomFloats(random, n);
        try (CudaModule module = Gpu.testKernels(gpu, cache);
                CudaStream stream = gpu.newStream();
                DeviceMemory dx = Gpu.upload(gpu, x);
                DeviceMemory dy = Gpu.upload(gpu, y);
                DeviceMemory copy = gpu.alloc(4L * n)) {
            CudaKernel axpy = module.kernel("axpy_in_place");
            axpy.launch(stream, 1, 1, 1, BLOCK, 1, 1, 0, a, dx, dy, 0); // n = 0: loads the kernel, changes nothing
            stream.synchronize();
            stream.beginCapture();
            axpy.launch(stream, (n + BLOCK - 1) / BLOCK, 1, 1, BLOCK, 1, 1, 0, a, dx, dy, n); // y = a x + y
            copy.copyFromDevice(dy, 0, 0, 4L * n, stream); // copy = y
            try (CudaGraph graph = stream.endCapture()) {
                assertArrayEquals(y, Gpu.download(dy, n), "capturing runs nothing, " + Gpu.seedText(seed));
                for (int replay = 0; replay < 3; replay++) {
                    graph.launch(stream);
                }
                stream.synchronize();
            }
            float[] expected = y.clone();
            for (int replay = 0; replay < 3; replay++) {
                for (int i = 0; i < n; i++) {
                    expected[i] = Math.fma(a, x[i], expected[i]);
                }
            }
            assertArrayEquals(expected, Gpu.download(dy, n), Gpu.seedText(seed));
            assertArrayEquals(expected, Gpu.download(copy, n), Gpu.seedText(seed));
        }
    }

    @Test
    void eventsTimeDeviceWork(@TempDir Path cache) {
        CudaDevice gpu = Gpu.device();
        try (CudaModule module = Gpu.testKernels(gpu, cache);
                CudaStream stream = gpu.newStream();
                CudaEvent start = gpu.newEvent();
                CudaEvent end = gpu.newEvent()) {
            CudaKernel spin = module.kernel("spin");
            spin.launch(stream, 1, 1, 1, 1, 1, 1, 0, 1000L); // warm-up
            start.record(stream);
            spin.launch(stream, 1, 1, 1, 1, 1, 1, 0, 2_000_000L); // about a millisecond
            end.record(stream);
            end.synchronize();
            float millis = end.elapsedMillisSince(start);
            assertTrue(millis > 0 && millis < 10_000, millis + " ms");
            System.out.println("spin(2e6 cycles): " + millis + " ms");
        }
    }

    @Test
    void anEventOrdersOneStreamAfterAnother(@TempDir Path cache) {
        CudaDevice gpu = Gpu.device();
        int n = 1 << 20;
        try (CudaModule module = Gpu.testKernels(gpu, cache);
                CudaStream producer = gpu.newStream();
                CudaStream consumer = gpu.newStream();
                CudaEvent produced = gpu.newEvent();
                DeviceMemory source = gpu.alloc(4L * n);
                DeviceMemory target = gpu.alloc(4L * n)) {
            source.fill32(0, n, 0, null);
            target.fill32(0, n, 0, null);
            gpu.synchronize();
            module.kernel("spin").launch(producer, 1, 1, 1, 1, 1, 1, 0, 20_000_000L); // ~10 ms head start
            source.fill32(0, n, 7, producer);
            produced.record(producer);
            consumer.waitFor(produced);
            target.copyFromDevice(source, 0, 0, 4L * n, consumer);
            consumer.synchronize();
            float[] copied = Gpu.download(target, n);
            assertEquals(Float.intBitsToFloat(7), copied[0]);
            assertEquals(Float.intBitsToFloat(7), copied[n - 1]);
        }
    }
}
