package dev.rwkvflink.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Loads device code from CUDA C++ source, compiling with {@link Nvrtc} only when the disk cache has no CUBIN for
 * exactly this source, these options, this device architecture, driver and NVRTC version.
 *
 * <p>Cache directory: system property {@value #DIR_PROPERTY}, else environment variable {@value #DIR_ENV}, else
 * {@code ~/.cache/rwkv-flink/cuda}. Entries are written to a temporary file and moved into place atomically, so
 * concurrent processes never see half a file. An entry the driver refuses is deleted and compiled again. A
 * cache that cannot be written is not an error: the module is still compiled and loaded.
 */
public final class KernelCache {
    /** System property naming the cache directory. */
    public static final String DIR_PROPERTY = "rwkv.cuda.cache.dir";
    /** Environment variable naming the cache directory when the property is unset. */
    public static final String DIR_ENV = "RWKV_CUDA_CACHE_DIR";

    private static final Logger LOG = LoggerFactory.getLogger(KernelCache.class);
    private static final String ARCH_OPTION = "--gpu-architecture=";

    private KernelCache() {}

    /**
     * The module compiled from {@code source} for {@code device}: from the cache when present, else compiled
     * (adding {@code --gpu-architecture=<device arch>} unless the options name an architecture) and stored.
     *
     * @param programName names the program in compiler messages and the cache file, e.g. {@code rwkv7.cu}
     * @throws CudaException with the compiler log when the source does not compile
     */
    public static CudaModule load(CudaDevice device, String programName, String source, List<String> options) {
        return load(device, programName, source, options, directory());
    }

    /** As {@link #load(CudaDevice, String, String, List)} with an explicit cache directory. */
    public static CudaModule load(
            CudaDevice device, String programName, String source, List<String> options, Path cacheDir) {
        List<String> allOptions = withArchitecture(options, device.arch());
        int[] nvrtc = Nvrtc.version();
        String key = key(source, allOptions, device.arch(), Cuda.driverVersion(), nvrtc[0] + "." + nvrtc[1]);
        Path file = cacheDir.resolve(fileName(programName, key));

        byte[] cached = readIfPresent(file);
        if (cached != null) {
            try {
                CudaModule module = device.loadModule(cached);
                LOG.debug("loaded {} from {}", programName, file);
                return module;
            } catch (CudaException e) {
                LOG.warn("cached {} is unusable, compiling again: {}", file, e.getMessage());
                deleteQuietly(file);
            }
        }
        long start = System.nanoTime();
        byte[] image = Nvrtc.compile(source, programName, allOptions);
        LOG.debug("compiled {} for {} in {} ms", programName, device.arch(), (System.nanoTime() - start) / 1_000_000);
        store(file, image);
        return device.loadModule(image);
    }

    /** The cache directory as configured now (see the class comment). */
    public static Path directory() {
        String dir = System.getProperty(DIR_PROPERTY);
        if (dir == null || dir.isBlank()) {
            dir = System.getenv(DIR_ENV);
        }
        if (dir == null || dir.isBlank()) {
            return Path.of(System.getProperty("user.home"), ".cache", "rwkv-flink", "cuda");
        }
        return Path.of(dir);
    }

    /**
     * Reads a {@code .cu} source shipped as a class-path resource, as UTF-8.
     *
     * @param resourcePath relative to {@code owner}'s package, or absolute with a leading {@code /}
     * @throws IllegalArgumentException when there is no such resource
     */
    public static String loadResource(Class<?> owner, String resourcePath) {
        try (InputStream in = owner.getResourceAsStream(resourcePath)) {
            if (in == null) {
                throw new IllegalArgumentException("no resource " + resourcePath + " next to " + owner.getName());
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read resource " + resourcePath, e);
        }
    }

    /** {@code options} with {@code --gpu-architecture=<arch>} appended unless they already name an architecture. */
    static List<String> withArchitecture(List<String> options, String arch) {
        boolean named = options.stream().anyMatch(o -> o.startsWith(ARCH_OPTION) || o.startsWith("-arch="));
        List<String> all = new ArrayList<>(options);
        if (!named) {
            all.add(ARCH_OPTION + arch);
        }
        return List.copyOf(all);
    }

    /**
     * The cache key: SHA-256, in hex, over the source, each option, the device architecture, the driver version
     * and the NVRTC version, each prefixed by its length so that no two different inputs run together.
     */
    static String key(String source, List<String> options, String arch, int driverVersion, String nvrtcVersion) {
        MessageDigest sha;
        try {
            sha = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java runtime has SHA-256", e);
        }
        update(sha, source);
        sha.update(ByteBuffer.allocate(4).putInt(options.size()).array());
        options.forEach(o -> update(sha, o));
        update(sha, arch);
        update(sha, Integer.toString(driverVersion));
        update(sha, nvrtcVersion);
        return HexFormat.of().formatHex(sha.digest());
    }

    /** The cache file name: the program name made file-safe, then the key. */
    static String fileName(String programName, String key) {
        return programName.replaceAll("[^A-Za-z0-9._-]", "_") + "-" + key + ".cubin";
    }

    private static void update(MessageDigest sha, String field) {
        byte[] bytes = field.getBytes(StandardCharsets.UTF_8);
        sha.update(ByteBuffer.allocate(4).putInt(bytes.length).array());
        sha.update(bytes);
    }

    private static byte[] readIfPresent(Path file) {
        try {
            return Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            return null;
        } catch (IOException e) {
            LOG.warn("cannot read cached {}: {}", file, e.toString());
            return null;
        }
    }

    private static void store(Path file, byte[] image) {
        Path tmp = null;
        try {
            Files.createDirectories(file.getParent());
            tmp = Files.createTempFile(file.getParent(), file.getFileName().toString(), ".tmp");
            Files.write(tmp, image);
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            LOG.warn("cannot write kernel cache {}: {}", file, e.toString());
            if (tmp != null) {
                deleteQuietly(tmp);
            }
        }
    }

    private static void deleteQuietly(Path file) {
        try {
            Files.deleteIfExists(file);
        } catch (IOException e) {
            LOG.warn("cannot delete {}: {}", file, e.toString());
        }
    }
}
