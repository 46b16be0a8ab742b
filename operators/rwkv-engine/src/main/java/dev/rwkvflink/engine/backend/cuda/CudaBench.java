package dev.rwkvflink.engine.backend.cuda;

import dev.rwkvflink.cuda.Cublas;
import dev.rwkvflink.cuda.Cublas.Op;
import dev.rwkvflink.cuda.Cuda;
import dev.rwkvflink.cuda.CudaDevice;
import dev.rwkvflink.cuda.CudaEvent;
import dev.rwkvflink.cuda.CudaStream;
import dev.rwkvflink.cuda.DeviceMemory;
import dev.rwkvflink.engine.model.RandomModels.Rwkv7Shape;
import dev.rwkvflink.engine.model.ResidentStates;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tensor.WeightType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;

/**
 * GPU benchmark of the RWKV-7 runner on random weights of real shapes (drawn on the device), bf16 matrices:
 * the two ceilings measured in the same run (bf16 cuBLAS 8192^3 and device-to-device copy), then per shape prefill
 * of one stream (T = 4096), multi-stream steps (B keys x T tokens, hidden vectors only, states resident in the
 * pool), single-stream decode and host/device state transfer per key. Medians of the repetitions; wall time
 * around each step (which ends with the hidden vectors copied to the host), so host overhead is included.
 *
 * <pre>java ... dev.rwkvflink.engine.backend.cuda.CudaBench [--shapes 0.1b,1.5b,7b] [--reps 5] [--quick]
 *     [--rows prefill,256x16,1024x128,decode,batch,transfer] [--no-ceilings] [--decode-reps 200]</pre>
 * {@code --rows} picks the rows to measure (default: all; {@code BxT} a multi-stream step of B keys x T tokens);
 * {@code --no-ceilings} skips the two ceilings (profiling runs: MFU is then not printed).
 */
public final class CudaBench {
    private static final Rwkv7Shape S01 = Rwkv7Shape.RWKV7_0_1B;
    private static final Rwkv7Shape S15 = Rwkv7Shape.RWKV7_1_5B;
    private static final Rwkv7Shape S7 = new Rwkv7Shape(32, 4096, 64, 65536, 16384, 128, 128, 96, 480);

    private final CudaDevice device;
    private final int reps;
    private final boolean quick;
    private double peakFlops;
    private double copyBytesPerSecond;
    private final Random rnd = new Random(1);
    /** Steps per decode measurement (--decode-reps; a profiler wants few). */
    private final int decodeReps;
    /** The rows to measure, null for all. */
    private final Set<String> rows;

    /** Keys and tokens per key of the multi-stream rows; --quick measures 256 x 16 only. */
    private static final int[] STREAMS = {64, 256, 1024, 4096};

    private static final int[] STREAM_TOKENS = {16, 128};
    /** The rows CudaBench measures: prefill, BxT for the multi-stream steps, decode, batch, transfer. */
    static final List<String> ROWS = rowNames();

    private CudaBench(CudaDevice device, int reps, boolean quick, int decodeReps, Set<String> rows) {
        this.device = device;
        this.reps = reps;
        this.quick = quick;
        this.decodeReps = decodeReps;
        this.rows = rows;
    }

    private static List<String> rowNames() {
        List<String> names = new ArrayList<>(List.of("prefill"));
        for (int b : STREAMS) {
            for (int t : STREAM_TOKENS) {
                names.add(b + "x" + t);
            }
        }
        names.addAll(List.of("decode", "batch", "transfer"));
        return List.copyOf(names);
    }

    /** A --rows list, checked against {@link #ROWS} (a typo would otherwise measure nothing without a word). */
    static Set<String> rows(String list) {
        Set<String> picked = new LinkedHashSet<>(Arrays.asList(list.split(",")));
        for (String r : picked) {
            if (!ROWS.contains(r)) {
                throw new IllegalArgumentException("unknown row " + r + " (rows: " + String.join(",", ROWS) + ")");
            }
        }
        return picked;
    }

    private boolean wants(String row) {
        return rows == null || rows.contains(row);
    }

    /** The command line's settings; shapes by the name given, in order. */
    record Options(
            Map<String, Rwkv7Shape> shapes,
            int reps,
            boolean quick,
            boolean ceilings,
            int decodeReps,
            Set<String> rows) {
        static Options parse(String[] args) {
            String shapes = "0.1b,1.5b,7b";
            int reps = 5;
            boolean quick = false;
            boolean ceilings = true;
            int decodeReps = 200;
            Set<String> rows = null;
            for (int i = 0; i < args.length; i++) {
                String arg = args[i];
                switch (arg) {
                    case "--shapes" -> shapes = value(args, ++i, arg);
                    case "--reps" -> reps = number(value(args, ++i, arg), arg);
                    case "--quick" -> quick = true;
                    case "--no-ceilings" -> ceilings = false;
                    case "--decode-reps" -> decodeReps = number(value(args, ++i, arg), arg);
                    case "--rows" -> rows = CudaBench.rows(value(args, ++i, arg));
                    default -> throw new IllegalArgumentException("unknown argument " + arg);
                }
            }
            Map<String, Rwkv7Shape> picked = new LinkedHashMap<>();
            for (String s : shapes.split(",")) {
                picked.put(
                        s.strip(),
                        switch (s.strip().toLowerCase(Locale.ROOT)) {
                            case "0.1b" -> S01;
                            case "1.5b" -> S15;
                            case "7b" -> S7;
                            default -> throw new IllegalArgumentException("unknown shape " + s + " (0.1b, 1.5b, 7b)");
                        });
            }
            return new Options(picked, reps, quick, ceilings, decodeReps, rows);
        }

        private static String value(String[] args, int i, String option) {
            if (i >= args.length) {
                throw new IllegalArgumentException(option + " needs a value");
            }
            return args[i];
        }

        private static int number(String v, String option) {
            try {
                return Integer.parseInt(v);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(option + " takes a whole number, not " + v);
            }
        }
    }

    public static void main(String[] args) {
        Options o;
        try {
            o = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("CudaBench: " + e.getMessage());
            System.exit(2);
            return;
        }
        if (!Cuda.availability().available()) {
            System.err.println("CUDA unavailable: " + Cuda.availability().reason());
            System.exit(2);
        }
        CudaDevice d = Cuda.device(0);
        System.out.printf(
                "device: %s (%s, %d SMs, %.1f GiB)%n",
                d.name(), d.arch(), d.multiprocessors(), d.totalMemory() / (double) (1L << 30));
        CudaBench b = new CudaBench(d, o.reps(), o.quick(), o.decodeReps(), o.rows());
        if (o.ceilings()) {
            b.ceilings();
        } else {
            b.peakFlops = Double.NaN;
            b.copyBytesPerSecond = Double.NaN;
        }
        o.shapes().forEach(b::shape);
    }

    /** bf16 GEMM 8192^3 on random data, and a 2 GiB device-to-device copy (bytes read + written). */
    private void ceilings() {
        device.makeCurrent();
        int n = 8192;
        try (CudaStream st = device.newStream();
                Cublas blas = Cublas.create(device);
                Rwkv7Kernels k = new Rwkv7Kernels(device, Precision.BF16, 64);
                DeviceMemory f32 = device.alloc(4L * n * n);
                DeviceMemory a = device.alloc(2L * n * n);
                DeviceMemory b = device.alloc(2L * n * n);
                DeviceMemory c = device.alloc(4L * n * n);
                CudaEvent e0 = device.newEvent();
                CudaEvent e1 = device.newEvent()) {
            blas.setStream(st);
            k.randomFill(st, f32, (long) n * n, 1, 0, 1, 0);
            k.convertBf16(st, f32, a, (long) n * n);
            k.randomFill(st, f32, (long) n * n, 2, 0, 1, 0);
            k.convertBf16(st, f32, b, (long) n * n);
            double[] ms = new double[10];
            for (int i = -3; i < ms.length; i++) {
                e0.record(st);
                blas.gemmEx(
                        Op.N,
                        Op.N,
                        n,
                        n,
                        n,
                        1f,
                        a.address(),
                        Cublas.DataType.BF16,
                        n,
                        b.address(),
                        Cublas.DataType.BF16,
                        n,
                        0f,
                        c.address(),
                        Cublas.DataType.F32,
                        n);
                e1.record(st);
                e1.synchronize();
                if (i >= 0) {
                    ms[i] = e1.elapsedMillisSince(e0);
                }
            }
            peakFlops = 2.0 * n * n * n / (median(ms) / 1e3);
            long bytes = 1L << 30;
            try (DeviceMemory src = device.alloc(bytes);
                    DeviceMemory dst = device.alloc(bytes)) {
                src.fill32(0, bytes / 4, 0x3f800000, st);
                for (int i = -3; i < ms.length; i++) {
                    e0.record(st);
                    dst.copyFromDevice(src, 0, 0, bytes, st);
                    e1.record(st);
                    e1.synchronize();
                    if (i >= 0) {
                        ms[i] = e1.elapsedMillisSince(e0);
                    }
                }
                copyBytesPerSecond = 2.0 * bytes / (median(ms) / 1e3);
            }
        }
        System.out.printf(
                "ceilings: bf16 cuBLAS 8192^3 %.0f TFLOP/s; device copy %.0f GB/s (read + write)%n",
                peakFlops / 1e12, copyBytesPerSecond / 1e9);
    }

    private void shape(String name, Rwkv7Shape s) {
        long stateBytes = 4L * RwkvState.floats(s.config(WeightType.BF16));
        long[] mem = device.memoryInfo();
        long weightGuess = 2L * 14 * s.layers() * (long) s.embd() * s.embd() + 6L * s.vocab() * s.embd();
        long rowBytes = 62L * s.embd() + 6L * s.ffn();
        int maxRows = 16_384;
        // less the chunked recurrence's scratch (a few GB at 7B) and some slack
        long budget = (long) (mem[0] * 0.85) - weightGuess - rowBytes * maxRows - (4L << 30);
        int slots = (int) Math.min(4096, Math.max(1, budget / stateBytes));
        System.out.printf(
                "%n== RWKV-7 %s (L%d C%d F%d, vocab %d): state %.2f MB per key, pool of %d slots%n",
                name, s.layers(), s.embd(), s.ffn(), s.vocab(), stateBytes / 1e6, slots);
        long t0 = System.nanoTime();
        try (Rwkv7Cuda r = Rwkv7Cuda.random(device, s, 42, Precision.BF16, new Rwkv7Cuda.Limits(maxRows, slots))) {
            System.out.printf(
                    "weights drawn on the device in %.1f s: %.2f GB, body %d M parameters%n",
                    (System.nanoTime() - t0) / 1e9, r.weightBytes() / 1e9, r.bodyParameters() / 1_000_000);
            double flopsPerToken = 2.0 * r.bodyParameters();
            for (int i = 0; i < Math.min(slots, 4096); i++) {
                r.reset(i);
            }
            // prefill, one stream
            int T = 4096;
            if (wants("prefill")) {
                double ms = time(r, 1, T);
                report("prefill 1 x " + T, T / (ms / 1e3), flopsPerToken, ms);
                stages(r, 1, T);
            }
            // multi-stream
            int[] bs = quick ? new int[] {256} : STREAMS;
            int[] ts = quick ? new int[] {16} : STREAM_TOKENS;
            for (int B : bs) {
                for (int t : ts) {
                    if (!wants(B + "x" + t)) {
                        continue;
                    }
                    if (B > slots) {
                        System.out.printf(
                                "%-22s skipped: needs %d slots (%.1f GB of state), the pool holds %d%n",
                                "streams " + B + " x " + t, B, B * stateBytes / 1e9, slots);
                        continue;
                    }
                    double m = time(r, B, t);
                    report("streams " + B + " x " + t, (double) B * t / (m / 1e3), flopsPerToken, m);
                    if (B == 1024 && t == 128 || quick || rows != null) {
                        stages(r, B, t);
                    }
                }
            }
            if (!wants("decode")) {
                transfers(r, s, slots, stateBytes);
                return;
            }
            // decode, one stream, one token per step
            double dm = time(r, 1, 1, false);
            stages(r, 1, 1);
            long body = r.weightBytes() - 4L * s.vocab() * s.embd() - 2L * s.vocab() * s.embd();
            long head = 2L * s.vocab() * s.embd();
            // the bound as TARGETS.md states it: weight bytes over the measured device-copy rate (read + write)
            double bound = copyBytesPerSecond / body;
            System.out.printf(
                    "%-22s %10.0f tok/s   %.3f ms/token; bound (body weights %.2f GB / copy rate) %.0f tok/s"
                            + " -> %.1f%%%n",
                    "decode 1 x 1", 1e3 / dm, dm, body / 1e9, bound, 100 * (1e3 / dm) / bound);
            double dl = time(r, 1, 1, true);
            double boundL = copyBytesPerSecond / (body + head);
            System.out.printf(
                    "%-22s %10.0f tok/s   %.3f ms/token; bound (body + head %.2f GB) %.0f tok/s -> %.1f%%%n",
                    "decode + logits", 1e3 / dl, dl, (body + head) / 1e9, boundL, 100 * (1e3 / dl) / boundL);
            double d8 = time(r, 8, 1, false);
            System.out.printf("%-22s %10.0f tok/s   %.3f ms/step%n", "decode 8 x 1", 8e3 / d8, d8);
            transfers(r, s, slots, stateBytes);
        }
    }

    /** The rows "batch" (an operator's batch, states via the host vs resident) and "transfer" (per key). */
    private void transfers(Rwkv7Cuda r, Rwkv7Shape s, int slots, long stateBytes) {
        {
            // an operator's batch: K keys x 16 tokens, with the keys' states moved host <-> device around every
            // batch (the host-state API) or kept resident in reserved pool slots (what the operator does)
            int K = Math.min(256, slots / 2);
            if (K >= 1 && wants("batch")) {
                RwkvState[] hostStates = new RwkvState[K];
                int[] ids = new int[K];
                int[][] batch = new int[K][];
                Random rnd = new Random(5);
                for (int i = 0; i < K; i++) {
                    hostStates[i] = RwkvState.initial(r.config());
                    ids[i] = i;
                    batch[i] = new int[16];
                    for (int t = 0; t < 16; t++) {
                        batch[i][t] = rnd.nextInt(s.vocab());
                    }
                }
                double[] viaHost = new double[reps];
                double[] resident = new double[reps];
                try (ResidentStates res = r.reserve(K)) {
                    for (int i = 0; i < K; i++) {
                        res.reset(i);
                    }
                    r.advance(hostStates, batch);
                    res.advance(ids, batch);
                    for (int i = 0; i < reps; i++) {
                        long a = System.nanoTime();
                        r.advance(hostStates, batch);
                        long b = System.nanoTime();
                        res.advance(ids, batch);
                        long c = System.nanoTime();
                        viaHost[i] = (b - a) / 1e6;
                        resident[i] = (c - b) / 1e6;
                    }
                }
                System.out.printf(
                        "%-22s states via host %.2f ms (%.0f tok/s), resident %.2f ms (%.0f tok/s): %.2fx%n",
                        "batch " + K + " x 16",
                        median(viaHost),
                        K * 16e3 / median(viaHost),
                        median(resident),
                        K * 16e3 / median(resident),
                        median(viaHost) / median(resident));
            }
            // state transfer host <-> device per key
            if (!wants("transfer")) {
                return;
            }
            RwkvState st = RwkvState.initial(r.config());
            int n = 16;
            double[] up = new double[reps];
            double[] down = new double[reps];
            for (int i = 0; i < reps; i++) {
                long a = System.nanoTime();
                for (int j = 0; j < n; j++) {
                    r.upload(j, st);
                }
                long b = System.nanoTime();
                for (int j = 0; j < n; j++) {
                    r.download(j, st);
                }
                long c = System.nanoTime();
                up[i] = (b - a) / 1e6 / n;
                down[i] = (c - b) / 1e6 / n;
            }
            System.out.printf(
                    "%-22s upload %.3f ms, download %.3f ms per key (%.2f MB; %.1f / %.1f GB/s)%n",
                    "state transfer",
                    median(up),
                    median(down),
                    stateBytes / 1e6,
                    stateBytes / median(up) / 1e6,
                    stateBytes / median(down) / 1e6);
        }
    }

    /** Median wall milliseconds of one step of B streams x T tokens (after a warm-up step). */
    private double time(Rwkv7Cuda r, int B, int T) {
        return time(r, B, T, false);
    }

    private double time(Rwkv7Cuda r, int B, int T, boolean logits) {
        int[] slotIds = new int[B];
        int[][] tokens = new int[B][];
        for (int i = 0; i < B; i++) {
            slotIds[i] = i;
            tokens[i] = new int[T];
            for (int t = 0; t < T; t++) {
                tokens[i][t] = rnd.nextInt(r.config().vocab());
            }
        }
        int n = T == 1 ? Math.max(reps, decodeReps) : reps;
        double[] ms = new double[n];
        r.step(slotIds, tokens, logits);
        for (int i = 0; i < n; i++) {
            long a = System.nanoTime();
            r.step(slotIds, tokens, logits);
            ms[i] = (System.nanoTime() - a) / 1e6;
        }
        return median(ms);
    }

    /** One step of B x T with each stage timed by device events (no graph): where the time goes. */
    private void stages(Rwkv7Cuda r, int B, int T) {
        int[] slotIds = new int[B];
        int[][] tokens = new int[B][T];
        for (int i = 0; i < B; i++) {
            slotIds[i] = i;
            for (int t = 0; t < T; t++) {
                tokens[i][t] = rnd.nextInt(r.config().vocab());
            }
        }
        r.profile(true);
        r.step(slotIds, tokens, false);
        Map<String, Double> p = r.profile();
        r.profile(false);
        double total = p.values().stream().mapToDouble(Double::doubleValue).sum();
        StringBuilder sb = new StringBuilder(String.format("    stages of %d x %d (device %.2f ms):", B, T, total));
        p.forEach((k, v) -> sb.append(String.format(" %s %.2f (%.0f%%);", k, v, 100 * v / total)));
        System.out.println(sb);
    }

    private void report(String what, double tokPerSec, double flopsPerToken, double ms) {
        System.out.printf(
                "%-22s %10.0f tok/s   %8.2f ms/step   MFU %5.1f%%%n",
                what, tokPerSec, ms, 100 * tokPerSec * flopsPerToken / peakFlops);
    }

    static double median(double[] v) {
        double[] c = v.clone();
        Arrays.sort(c);
        int n = c.length;
        return n % 2 == 1 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
    }
}
