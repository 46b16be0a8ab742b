package dev.rwkvflink.engine.testing;

import java.util.Random;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Seeds for tests that draw random inputs (the GPU tests). Each call of {@link #seed()} gives a fresh seed, printed
 * with the calling test's name, unless the system property {@value #PROPERTY} forces one: a failure message names
 * the seed, and {@code -Drwkv.test.seed=N} (Maven; on the GPU machine {@code GPU_JAVA_OPTS=-Drwkv.test.seed=N}) replays
 * it. The native-bindings tests have their own copy of this rule ({@code dev.rwkvflink.cuda.Gpu.seed()}).
 */
public final class TestSeeds {
    /** The system property that forces the seed of every test that asks for one. */
    public static final String PROPERTY = "rwkv.test.seed";

    private TestSeeds() {}

    /** A seed: {@link #toString()} names it with the way to replay it, for failure messages. */
    public record Seed(long value) {
        /**
         * The generator a test draws from. The seed is mixed first (SplitMix64): {@code java.util.Random}'s first
         * draws from nearby seeds (1, 2, 3, ...) are nearly equal, which would make a survey over consecutive seeds
         * see almost the same first input every time.
         */
        public Random random() {
            long z = value + 0x9E3779B97F4A7C15L;
            z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
            z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
            return new Random(z ^ (z >>> 31));
        }

        @Override
        public String toString() {
            return "seed " + value + " (replay: -D" + PROPERTY + "=" + value + ")";
        }
    }

    /** The seed for the calling test: {@value #PROPERTY} when set, else a fresh one; printed either way. */
    public static Seed seed() {
        String forced = System.getProperty(PROPERTY);
        Seed seed;
        if (forced == null || forced.isBlank()) {
            seed = new Seed(ThreadLocalRandom.current().nextLong() & Long.MAX_VALUE);
        } else {
            try {
                seed = new Seed(Long.parseLong(forced.strip()));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("-D" + PROPERTY + " must be a long, not \"" + forced + "\"", e);
            }
        }
        String caller = StackWalker.getInstance(StackWalker.Option.RETAIN_CLASS_REFERENCE)
                .walk(frames -> frames.skip(1)
                        .findFirst()
                        .map(f -> f.getDeclaringClass().getSimpleName() + "." + f.getMethodName())
                        .orElse("?"));
        System.out.println(caller + ": " + seed + (forced == null || forced.isBlank() ? "" : ", forced"));
        return seed;
    }

    /** A given seed (a survey over seeds 1..N, say); not printed. */
    public static Seed of(long value) {
        return new Seed(value);
    }
}
