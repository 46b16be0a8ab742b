package dev.rwkvflink.engine.tokenizer;

/**
 * A hash map from {@code long} keys to non-negative {@code long} values, for the lookups on a tokenizer's hot
 * path (trie edges, BPE merge pairs) where {@code HashMap<Long, Long>} would box on every probe.
 *
 * <p>Open addressing with linear probing: a key lives in the first free slot at or after its hash; a lookup
 * walks from the hash until it finds the key or an empty slot. The table is a power of two and kept at most half
 * full, so probe runs stay short. Entries are never removed.
 */
final class LongLongMap {

    /** What {@link #get} returns for a key that is not in the map. */
    static final long MISSING = -1;

    private long[] keys;
    private long[] values;
    private boolean[] used;
    private int size;

    LongLongMap(int expectedSize) {
        int capacity = Integer.highestOneBit(Math.max(16, expectedSize * 2 - 1)) << 1;
        allocate(capacity);
    }

    /** Stores {@code value} (which must be {@code >= 0}) under {@code key}, replacing any earlier value. */
    void put(long key, long value) {
        if (value < 0) {
            throw new IllegalArgumentException("negative value " + value);
        }
        if (2 * (size + 1) > keys.length) {
            grow();
        }
        int slot = slotOf(key);
        if (!used[slot]) {
            used[slot] = true;
            keys[slot] = key;
            size++;
        }
        values[slot] = value;
    }

    /** The value stored under {@code key}, or {@link #MISSING}. */
    long get(long key) {
        int slot = slotOf(key);
        return used[slot] ? values[slot] : MISSING;
    }

    int size() {
        return size;
    }

    /** The slot holding {@code key}, or the empty slot where it would go. */
    private int slotOf(long key) {
        int mask = keys.length - 1;
        int slot = mix(key) & mask;
        while (used[slot] && keys[slot] != key) {
            slot = (slot + 1) & mask;
        }
        return slot;
    }

    /** Spreads the key's bits so that keys differing only in high bits land in different slots. */
    private static int mix(long key) {
        long h = key * 0x9E3779B97F4A7C15L;
        return (int) (h ^ (h >>> 32));
    }

    private void allocate(int capacity) {
        keys = new long[capacity];
        values = new long[capacity];
        used = new boolean[capacity];
        size = 0;
    }

    private void grow() {
        long[] oldKeys = keys;
        long[] oldValues = values;
        boolean[] oldUsed = used;
        allocate(oldKeys.length * 2);
        for (int i = 0; i < oldKeys.length; i++) {
            if (oldUsed[i]) {
                put(oldKeys[i], oldValues[i]);
            }
        }
    }
}
