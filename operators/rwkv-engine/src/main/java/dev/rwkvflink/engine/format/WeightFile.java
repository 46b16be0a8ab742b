package dev.rwkvflink.engine.format;

import dev.rwkvflink.engine.tensor.Tensor;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * The tensors of one model file, in the project's canonical naming and conventions, plus the arena that owns
 * their memory (the file's bytes read into memory, or memory-mapped, see {@link Access}; plus heap copies).
 * Closing it frees that memory.
 *
 * <p>Canonical form = the BlinkDL state-dict names ({@code blocks.N.att.key.weight}, ...) with the load-time
 * transforms that BlinkDL's reference loaders and rwkv.cpp's converter apply, so that the model code needs one
 * form only:
 * <ul>
 *   <li>v4 {@code att.time_decay} holds {@code -exp(time_decay)};</li>
 *   <li>v5 {@code att.time_decay} holds {@code exp(-exp(time_decay))}; v5 {@code att.time_first} holds
 *       {@code exp(time_first)}; {@code att.time_faaaa} (v5.2, v6) is kept as is;</li>
 *   <li>v6 {@code time_maa_w1} is (5*D, C), {@code time_maa_w2} is (5, C, D), {@code time_decay_w1} is (D, C) and
 *       {@code time_decay_w2} is (C, D): every matrix is "out x in";</li>
 *   <li>v7 {@code att.x_r .. att.x_g} are packed into {@code att.x_rwkvag} (6, C) in the order r, w, k, v, a, g;
 *       {@code w1, w2, a1, a2, v1, v2, g1, g2} are "out x in".</li>
 * </ul>
 * rwkv.cpp files are already in this form; PyTorch and safetensors loaders convert to it.
 */
public final class WeightFile implements AutoCloseable {

    /** Where the weights came from; decides conventions the files disagree on (v5 GroupNorm eps). */
    public enum Origin {
        /** rwkv.cpp {@code .bin}: v5 GroupNorm eps 1e-5. */
        RWKV_CPP,
        /** BlinkDL {@code .pth} or safetensors: GroupNorm eps 64e-5 for v5 and later. */
        BLINKDL
    }

    /**
     * How a model file's bytes reach memory. {@link #READ} (the default) copies the file into memory owned by the
     * process: a file replaced, truncated or overwritten in place while a job runs (a {@code cp new.bin model.bin}
     * during a rolling update) cannot touch the loaded weights. {@link #MAP} memory-maps the file instead: no copy,
     * pages shared with other processes that map the same file; but the file must then never change in place while
     * it is loaded: a truncated mapped file kills the JVM with SIGBUS inside a compiled kernel, which no Java code
     * can catch. Deployment rule for MAP: publish a new model as a new file and rename it over the old name (the
     * old inode stays intact for its readers), never copy over it. Chosen with {@code -Drwkv.model.access=map}.
     */
    public enum Access {
        READ,
        MAP;

        /** The system property that chooses the access of {@link #open(Path)}: {@code read} or {@code map}. */
        public static final String PROPERTY = "rwkv.model.access";

        /** The access the property names; READ when it is not set; a clear error for any other value. */
        public static Access configured() {
            String v = System.getProperty(PROPERTY, "read").trim();
            return switch (v.toLowerCase(Locale.ROOT)) {
                case "read" -> READ;
                case "map" -> MAP;
                default -> throw new IllegalArgumentException("-D" + PROPERTY + "=" + v + ": expected read or map");
            };
        }
    }

    /** Bytes read per call when a file is read into memory (a ByteBuffer view is at most 2 GiB). */
    private static final long READ_SLICE = 1L << 30;

    private final Path path;
    private final String format;
    private final Origin origin;
    private final Map<String, Tensor> tensors;
    private final Arena arena;

    public WeightFile(Path path, String format, Origin origin, Map<String, Tensor> tensors, Arena arena) {
        this.path = path;
        this.format = format;
        this.origin = origin;
        this.tensors = Collections.unmodifiableMap(new LinkedHashMap<>(tensors));
        this.arena = arena;
    }

    /**
     * Reads the tensors of a file's bytes (in memory or mapped); copies, if any, go to {@code arena}, which
     * refuses more than the file's {@link LoadBudget}.
     */
    @FunctionalInterface
    interface BytesReader {
        Map<String, Tensor> read(MemorySegment file, LoadBudget arena) throws IOException;
    }

    /**
     * Brings {@code path} into a new shared arena ({@link Access#configured()}: read or mapped) and builds a
     * WeightFile from what {@code reader} finds in it; the arena is closed again if reading fails.
     */
    static WeightFile load(Path path, String format, Origin origin, BytesReader reader) throws IOException {
        return load(path, format, origin, reader, Access.configured());
    }

    static WeightFile load(Path path, String format, Origin origin, BytesReader reader, Access access)
            throws IOException {
        Arena arena = Arena.ofShared();
        try {
            MemorySegment file;
            try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
                file = access == Access.MAP
                        ? ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena)
                        : readAll(path, ch, arena);
            }
            LoadBudget budget = new LoadBudget(arena, format + " file", file.byteSize());
            return new WeightFile(path, format, origin, reader.read(file, budget), arena);
        } catch (IOException e) {
            arena.close();
            throw e;
        } catch (IllegalArgumentException e) {
            arena.close(); // a tensor that Tensor.of refuses (its message names the tensor and the problem)
            throw new IOException(path + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            // the readers check every size and offset they read; this net keeps a case they missed a clear refusal
            arena.close();
            throw new IOException(path + ": malformed " + format + " file (" + e + ")", e);
        }
    }

    /**
     * Copies the whole file into memory of {@code arena}, in slices; a file that shrinks or grows while it is read
     * (being replaced) is refused rather than loaded half old, half new.
     */
    private static MemorySegment readAll(Path path, FileChannel ch, Arena arena) throws IOException {
        long size = ch.size();
        MemorySegment bytes = arena.allocate(Math.max(size, 1), 64).asSlice(0, size);
        long at = 0;
        while (at < size) {
            ByteBuffer slice =
                    bytes.asSlice(at, Math.min(READ_SLICE, size - at)).asByteBuffer();
            while (slice.hasRemaining()) {
                int n = ch.read(slice, at + slice.position());
                if (n < 0) {
                    throw new IOException(path + ": the file shrank while it was read (" + (at + slice.position())
                            + " of " + size + " bytes): it is being replaced; load it again once it is complete");
                }
            }
            at += slice.capacity();
        }
        if (ch.size() != size) {
            throw new IOException(path + ": the file changed size while it was read (" + size + " -> " + ch.size()
                    + " bytes): it is being replaced; load it again once it is complete");
        }
        return bytes;
    }

    /** Opens a model file, choosing the reader from the file's first bytes (not its name). */
    public static WeightFile open(Path path) throws IOException {
        byte[] head = new byte[8];
        int n;
        if (!Files.exists(path)) {
            throw new NoSuchFileException(path.toString(), null, "no such file");
        }
        if (!Files.isRegularFile(path)) {
            throw new IOException(path + ": not a regular file");
        }
        try (InputStream in = Files.newInputStream(path)) {
            n = in.readNBytes(head, 0, 8);
        }
        if (n >= 4 && (head[0] & 0xFF) == 0x66 && head[1] == 0x6d && head[2] == 0x67 && head[3] == 0x67) {
            return RwkvCppFile.read(path);
        }
        if (n >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) {
            return PthFile.read(path);
        }
        if (n == 8) {
            return SafetensorsFile.read(path);
        }
        throw new IOException(path + ": too short to be a model file (" + n + " bytes)");
    }

    public Path path() {
        return path;
    }

    /** "rwkv.cpp", "pth" or "safetensors". */
    public String format() {
        return format;
    }

    public Origin origin() {
        return origin;
    }

    public Map<String, Tensor> tensors() {
        return tensors;
    }

    public boolean has(String name) {
        return tensors.containsKey(name);
    }

    /** The tensor called {@code name}; a clear error if the file has none. */
    public Tensor get(String name) {
        Tensor t = tensors.get(name);
        if (t == null) {
            throw new IllegalArgumentException(path + ": missing tensor '" + name + "'");
        }
        return t;
    }

    @Override
    public void close() {
        if (arena != null) {
            arena.close();
        }
    }
}
