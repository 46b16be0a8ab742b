package dev.rwkvflink.operator;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;

/**
 * The progress records of recently seen keys, kept on the operator's heap between checkpoints (write-behind):
 * every chunk reads and changes its key's {@link DocumentProgress}, and with RocksDB each read is a lookup plus a
 * deserialisation and each change a serialisation plus a write, about as much work per chunk as a short GPU step.
 * Here a key's record is read from Flink state once, changed in memory by its chunks, and written back once per
 * checkpoint (before the barrier, with the hot states) or when it leaves the cache, so a checkpoint holds exactly
 * what it would hold without the cache.
 *
 * <p>The cache never shares an object with the state backend: what it reads it copies, what it writes back it
 * copies. The heap backend keeps the objects it is given and snapshots them asynchronously; a record changed in
 * place after being handed over could be serialised half-changed.
 *
 * <p>Bounded: past {@link #CAPACITY} keys the least recently used one leaves (written back first when changed).
 * Progress records are tens of bytes, so the bound costs a few MiB per operator instance.
 */
final class ProgressCache {

    /** Keys kept per operator instance (about 200 bytes each with the map's overhead: 13 MiB at most). */
    static final int CAPACITY = 65_536;

    /** Where records come from and go: the operator's keyed state, for any key (it switches the current key). */
    interface Store {
        /** The key's record in Flink state, or null. */
        DocumentProgress read(String key) throws Exception;

        /** Writes the key's record to Flink state (null: clears it). */
        void write(String key, DocumentProgress p) throws Exception;
    }

    /** A cached miss: the key has no record in Flink state (a new document). */
    private static final DocumentProgress ABSENT = new DocumentProgress();

    private final Store store;
    private final int capacity;
    private final LinkedHashMap<String, DocumentProgress> entries = new LinkedHashMap<>(1024, 0.75f, true);
    private final Set<String> dirty = new LinkedHashSet<>();

    ProgressCache(Store store) {
        this(store, CAPACITY);
    }

    ProgressCache(Store store, int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("capacity must be >= 1, got " + capacity);
        }
        this.store = store;
        this.capacity = capacity;
    }

    /** The key's record (to change in place, then {@link #put}), or null when the key has none. */
    DocumentProgress get(String key) throws Exception {
        DocumentProgress p = entries.get(key);
        if (p == null) {
            DocumentProgress read = store.read(key);
            p = read == null ? ABSENT : copy(read);
            entries.put(key, p);
            evictBeyondCapacity(key);
        }
        return p == ABSENT ? null : p;
    }

    /** The key's record changed (or is new): it goes to Flink state at the next {@link #writeBack}. */
    void put(String key, DocumentProgress p) throws Exception {
        entries.put(key, p);
        dirty.add(key);
        evictBeyondCapacity(key);
    }

    /** Clears the key's record in Flink state now and forgets it here. */
    void clear(String key) throws Exception {
        entries.remove(key);
        dirty.remove(key);
        store.write(key, null);
    }

    /** Writes every changed record to Flink state (before each checkpoint barrier); returns how many. */
    int writeBack() throws Exception {
        int n = 0;
        for (String key : dirty) {
            store.write(key, copy(entries.get(key)));
            n++;
        }
        dirty.clear();
        return n;
    }

    /** Keys held (for tests). */
    int size() {
        return entries.size();
    }

    /** Changed records not yet written (for tests). */
    int dirtyCount() {
        return dirty.size();
    }

    private void evictBeyondCapacity(String keep) throws Exception {
        Iterator<Map.Entry<String, DocumentProgress>> it = entries.entrySet().iterator();
        while (entries.size() > capacity && it.hasNext()) {
            Map.Entry<String, DocumentProgress> e = it.next();
            if (e.getKey().equals(keep)) {
                continue;
            }
            if (dirty.remove(e.getKey())) {
                store.write(e.getKey(), copy(e.getValue()));
            }
            it.remove();
        }
    }

    static DocumentProgress copy(DocumentProgress p) {
        DocumentProgress c = new DocumentProgress();
        c.nextSeq = p.nextSeq;
        c.tokens = p.tokens;
        c.carry = p.carry.clone();
        c.lastActivity = p.lastActivity;
        c.eventTime = p.eventTime;
        c.finished = p.finished;
        c.buffered = p.buffered;
        c.tokenInput = p.tokenInput;
        return c;
    }
}
