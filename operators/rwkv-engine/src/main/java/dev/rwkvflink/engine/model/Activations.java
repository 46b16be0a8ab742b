package dev.rwkvflink.engine.model;

import java.util.Arrays;

/**
 * The temporary arrays of a layer's forward pass (normalised input, token-shifted rows, mixes, projections),
 * kept per thread and handed out again in the next layer and the next call. A pass over R rows asks for the same
 * sizes in the same order in every layer, so after its first layer a forward pass allocates no activations: no
 * zeroing of fresh arrays, no first touch of new heap pages (in a short-lived JVM whose heap is still growing,
 * that alone cost a 512-token prefill about a fifth of its time), no garbage.
 *
 * <p>Rules: {@link #startLayer} at the start of each layer frees what the previous layer took, so nothing taken
 * may outlive its layer (the residual stream, RWKV-7's first-layer values and every returned vector are allocated
 * normally); and arrays come back with old contents, so every user writes all of an array before reading it.
 * Arrays keep exactly the asked length (callers use {@code length}); a size that changes from call to call (a
 * batch of another row count) replaces the kept array. At most {@link #MAX_FLOATS} floats are kept per thread;
 * beyond that, arrays are allocated as usual.
 */
final class Activations {
    /** 64 MiB per thread: RWKV-7 0.1B needs about 78 KB per row and layer (768 wide, FFN 3072). */
    static final long MAX_FLOATS = 16L << 20;

    private static final ThreadLocal<Activations> OF_THREAD = ThreadLocal.withInitial(Activations::new);

    private float[][] arrays = new float[32][];
    private int next;
    private long kept;

    private Activations() {}

    /** Starts a layer on this thread: the arrays taken since the last start are free again. */
    static void startLayer() {
        OF_THREAD.get().next = 0;
    }

    /** n floats with arbitrary contents, not handed out since this thread's last {@link #startLayer}. */
    static float[] floats(int n) {
        return OF_THREAD.get().take(n);
    }

    private float[] take(int n) {
        if (next == arrays.length) {
            arrays = Arrays.copyOf(arrays, 2 * arrays.length);
        }
        float[] a = arrays[next];
        if (a == null || a.length != n) {
            long keptAfter = kept - (a == null ? 0 : a.length) + n;
            if (keptAfter > MAX_FLOATS) {
                next++; // this slot stays as it is; the caller gets an ordinary array
                return new float[n];
            }
            a = new float[n];
            arrays[next] = a;
            kept = keptAfter;
        }
        next++;
        return a;
    }
}
