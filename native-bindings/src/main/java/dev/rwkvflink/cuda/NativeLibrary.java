package dev.rwkvflink.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.file.Path;
import java.util.Optional;

/**
 * One shared library loaded into this process for good (the global arena: it is never unloaded), and the
 * downcall handles made from its symbols.
 */
final class NativeLibrary {
    private static final Linker LINKER = Linker.nativeLinker();

    private final String name;
    private final String origin;
    private final SymbolLookup symbols;

    private NativeLibrary(String name, String origin, SymbolLookup symbols) {
        this.name = name;
        this.origin = origin;
        this.symbols = symbols;
    }

    /** Loads the file at {@code path} ({@code dlopen}); throws {@link IllegalArgumentException} if it cannot. */
    @SuppressWarnings("restricted") // loads a native library
    static NativeLibrary open(Path path) {
        return new NativeLibrary(
                path.getFileName().toString(), path.toString(), SymbolLookup.libraryLookup(path, Arena.global()));
    }

    /**
     * Loads a library by bare name through the dynamic linker's own search ({@code ld.so.cache}, the default
     * directories); throws {@link IllegalArgumentException} if it is not found.
     */
    @SuppressWarnings("restricted") // loads a native library
    static NativeLibrary openByName(String fileName) {
        return new NativeLibrary(
                fileName, fileName + " (dynamic linker search)", SymbolLookup.libraryLookup(fileName, Arena.global()));
    }

    /** The library's file name, e.g. {@code libcuda.so.1}. */
    String name() {
        return name;
    }

    /** Where it was loaded from: a path, or the bare name when the dynamic linker found it. */
    String origin() {
        return origin;
    }

    /**
     * A downcall handle for the first of {@code symbols} the library exports (newest versioned name first, e.g.
     * {@code cuEventElapsedTime_v2} then {@code cuEventElapsedTime}).
     *
     * <p>When none is exported the handle still has the descriptor's type, so the caller's {@code static final}
     * field initialises; calling it throws {@link UnsatisfiedLinkError} naming the symbol and the library. One
     * symbol missing from an older library thus disables one function, not the whole binding.
     */
    @SuppressWarnings("restricted") // a downcall into the loaded library
    MethodHandle downcall(FunctionDescriptor descriptor, String... symbols) {
        for (String symbol : symbols) {
            Optional<MemorySegment> address = this.symbols.find(symbol);
            if (address.isPresent()) {
                return LINKER.downcallHandle(address.get(), descriptor);
            }
        }
        MethodType type = descriptor.toMethodType();
        UnsatisfiedLinkError missing =
                new UnsatisfiedLinkError(String.join(" / ", symbols) + " is not exported by " + origin);
        MethodHandle thrower = MethodHandles.throwException(type.returnType(), UnsatisfiedLinkError.class)
                .bindTo(missing);
        return MethodHandles.dropArguments(thrower, 0, type.parameterList());
    }

    @Override
    public String toString() {
        return origin;
    }
}
