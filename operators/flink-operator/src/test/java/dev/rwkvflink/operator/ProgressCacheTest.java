package dev.rwkvflink.operator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The write-behind progress cache against a map standing in for keyed state (the operator's tests run it against
 * Flink's heap and RocksDB backends): reads once, writes only at write-back or eviction, never shares objects.
 */
class ProgressCacheTest {

    /** Keyed state as a map, counting reads and writes. */
    private static final class MapStore implements ProgressCache.Store {
        final Map<String, DocumentProgress> state = new HashMap<>();
        int reads;
        int writes;

        @Override
        public DocumentProgress read(String key) {
            reads++;
            return state.get(key);
        }

        @Override
        public void write(String key, DocumentProgress p) {
            writes++;
            if (p == null) {
                state.remove(key);
            } else {
                state.put(key, p);
            }
        }
    }

    private static DocumentProgress at(long nextSeq) {
        DocumentProgress p = new DocumentProgress();
        p.nextSeq = nextSeq;
        p.carry = new byte[] {(byte) nextSeq};
        return p;
    }

    @Test
    void aKeyIsReadOnceAndWrittenOncePerWriteBack() throws Exception {
        MapStore store = new MapStore();
        store.state.put("a", at(3));
        ProgressCache cache = new ProgressCache(store);
        for (int chunk = 0; chunk < 5; chunk++) {
            DocumentProgress p = cache.get("a");
            assertEquals(3 + chunk, p.nextSeq);
            p.nextSeq++;
            cache.put("a", p);
        }
        assertNull(cache.get("new"), "a key without a record");
        assertEquals(2, store.reads, "one read per key, the miss included");
        assertEquals(0, store.writes, "nothing written between barriers");
        assertEquals(3, store.state.get("a").nextSeq, "Flink state still holds the record of the last checkpoint");

        assertEquals(1, cache.writeBack());
        assertEquals(8, store.state.get("a").nextSeq);
        assertEquals(0, cache.writeBack(), "nothing changed since");
        assertEquals(1, store.writes);
    }

    @Test
    void noObjectIsSharedWithTheStateBackend() throws Exception {
        MapStore store = new MapStore();
        DocumentProgress stored = at(1);
        store.state.put("a", stored);
        ProgressCache cache = new ProgressCache(store);
        DocumentProgress p = cache.get("a");
        assertNotSame(stored, p, "what is read is copied");
        assertNotSame(stored.carry, p.carry);
        p.nextSeq = 2;
        cache.put("a", p);
        cache.writeBack();
        DocumentProgress written = store.state.get("a");
        assertNotSame(p, written, "what is written back is copied");
        p.nextSeq = 3; // a chunk after the barrier: the heap backend's snapshot must not see it
        p.carry[0] = 99;
        assertEquals(2, written.nextSeq);
        assertEquals(1, written.carry[0]);
        assertSame(p, cache.get("a"), "the cache keeps its own record");
    }

    @Test
    void beyondItsCapacityTheLeastRecentlyUsedKeyLeavesWrittenBack() throws Exception {
        MapStore store = new MapStore();
        ProgressCache cache = new ProgressCache(store, 2);
        cache.put("a", at(1));
        cache.put("b", at(2));
        cache.get("a"); // b is now the least recently used
        cache.put("c", at(3));
        assertEquals(2, cache.size());
        assertEquals(1, store.writes, "b left, written first");
        assertEquals(2, store.state.get("b").nextSeq);
        assertFalse(store.state.containsKey("a"), "a stays cached, not yet written");
        assertEquals(2, cache.dirtyCount());
        assertEquals(2, cache.get("b").nextSeq, "read back from state");
        cache.writeBack();
        assertEquals(1, store.state.get("a").nextSeq);
        assertEquals(3, store.state.get("c").nextSeq);
    }

    @Test
    void clearingRemovesTheRecordAtOnce() throws Exception {
        MapStore store = new MapStore();
        ProgressCache cache = new ProgressCache(store);
        cache.put("a", at(5));
        cache.writeBack();
        cache.get("a").finished = true;
        cache.clear("a");
        assertFalse(store.state.containsKey("a"));
        assertEquals(0, cache.writeBack(), "a cleared record is not written again");
        assertNull(cache.get("a"));
        assertTrue(store.reads >= 1);
    }
}
