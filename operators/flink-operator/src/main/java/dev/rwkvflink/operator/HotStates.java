package dev.rwkvflink.operator;

import dev.rwkvflink.engine.model.ResidentStates;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Set;

/**
 * The keys whose RWKV state stays where the model runs between batches (a slot of {@link ResidentStates}: GPU
 * memory with the CUDA backend, the Java heap on the CPU), least recently used first.
 *
 * <p>A hot key's slot is newer than its Flink state while it is <em>dirty</em>: the tokens applied since its
 * Flink state was last written (the tail) are only here. The operator writes every dirty key back before each
 * checkpoint barrier (so a checkpoint holds exactly the states after the chunks it acknowledged, as without this
 * cache) and when a key is evicted to make room: the tail appended to the key's token log, or a new state
 * snapshot when the log has grown past its budget (see {@code RwkvEmbeddingOperator}); a key whose document ends
 * leaves without a write (its state is cleared). A failure loses only hot contents newer than the last
 * checkpoint, which the restore replays anyway.
 *
 * <p>So a key advanced in many batches between two checkpoints reads its state once (when it becomes hot) and
 * writes a few bytes per new token per checkpoint, not its whole state (2.4 MB for RWKV-7 0.1B) twice per batch.
 */
final class HotStates implements AutoCloseable {

    /**
     * A hot key: its slot, the hidden vector and token count after its last token, the token count of its state
     * snapshot in Flink state, the tokens applied since its Flink state was last written (the log's tail), and
     * whether it is dirty (the tail is not empty).
     */
    static final class Entry {
        final String key;
        final int slot;
        float[] hidden;
        long tokens;
        /** Tokens covered by the key's snapshot in Flink state (0: none, the model's initial state). */
        long snapshotTokens;

        boolean dirty;
        private int[] tail = new int[0];
        private int tailLength;

        Entry(String key, int slot) {
            this.key = key;
            this.slot = slot;
        }

        /** Records tokens just applied to the slot: they are in neither the snapshot nor the log yet. */
        void applied(int[] tokens) {
            if (tailLength + tokens.length > tail.length) {
                tail = Arrays.copyOf(tail, Math.max(tailLength + tokens.length, 2 * tail.length));
            }
            System.arraycopy(tokens, 0, tail, tailLength, tokens.length);
            tailLength += tokens.length;
            this.tokens += tokens.length;
            dirty = true;
        }

        /** Tokens since the snapshot: the log in Flink state plus the tail. */
        long sinceSnapshot() {
            return tokens - snapshotTokens;
        }

        /** The tail (a copy) and forgets it: it is now in Flink state. */
        int[] takeTail() {
            int[] t = Arrays.copyOf(tail, tailLength);
            tailLength = 0;
            if (tail.length > 4096) {
                tail = new int[0]; // a long tail's buffer is not kept for the next one
            }
            return t;
        }

        /** After a snapshot: the log and the tail are covered by it. */
        void snapshotted() {
            snapshotTokens = tokens;
            tailLength = 0;
        }
    }

    /** Writes an entry's slot back to the key's Flink state (called for dirty entries only). */
    interface WriteBack {
        void write(Entry e) throws Exception;
    }

    /**
     * Share of the JVM heap that hot states may fill on the CPU backend, divided among the TaskManager's slots: a
     * quarter leaves the rest for Flink, the Kafka clients, batches and the serialized states a checkpoint writes.
     * Without this bound the default 256 MiB per operator instance, times two slots, overran a 402 MiB task heap
     * once 10,000 documents were open at once (TaskManagers died of OutOfMemoryError in the full crash run).
     */
    static final double HEAP_SHARE = 0.25;

    /**
     * Slots to ask for: {@code hotStateBytes} worth of states of {@code stateBytes} each, at least {@code minKeys}
     * (one batch's keys); 0 bytes means one batch. Bounded by where the states live: on the GPU by this
     * TaskManager slot's share of the device pool ({@code deviceSlots} > 0), on the heap by this TaskManager
     * slot's share of {@link #HEAP_SHARE} of {@code maxHeapBytes} (never below one batch: a batch's states must
     * fit somewhere, and they did before hot states existed).
     */
    static int capacity(
            long hotStateBytes, long stateBytes, int minKeys, int taskSlots, int deviceSlots, long maxHeapBytes) {
        long wanted = hotStateBytes == 0 ? minKeys : Math.max(minKeys, hotStateBytes / stateBytes);
        long slotsPerTask = Math.max(1, taskSlots);
        if (deviceSlots > 0) {
            wanted = Math.max(1, Math.min(wanted, deviceSlots / slotsPerTask));
        } else {
            long heapKeys = (long) (maxHeapBytes * HEAP_SHARE) / slotsPerTask / stateBytes;
            wanted = Math.max(Math.min(minKeys, wanted), Math.min(wanted, heapKeys));
        }
        return (int) Math.min(wanted, 1 << 16);
    }

    private final ResidentStates slots;
    private final LinkedHashMap<String, Entry> byKey = new LinkedHashMap<>(16, 0.75f, true);
    private final ArrayDeque<Integer> free = new ArrayDeque<>();

    HotStates(ResidentStates slots) {
        this.slots = slots;
        for (int i = 0; i < slots.capacity(); i++) {
            free.add(i);
        }
    }

    ResidentStates slots() {
        return slots;
    }

    int capacity() {
        return slots.capacity();
    }

    int size() {
        return byKey.size();
    }

    /** The key's entry (now most recently used), or null when it is not hot. */
    Entry get(String key) {
        return byKey.get(key);
    }

    /**
     * A slot for a key that is not hot: a free one, or the least recently used key's that is not in
     * {@code pinned} (written back first when dirty). The caller fills the slot.
     */
    Entry admit(String key, Set<String> pinned, WriteBack writeBack) throws Exception {
        if (byKey.containsKey(key)) {
            throw new IllegalStateException("key '" + key + "' is already hot");
        }
        Integer slot = free.poll();
        if (slot == null) {
            Entry victim = null;
            for (Entry e : byKey.values()) {
                if (!pinned.contains(e.key)) {
                    victim = e;
                    break;
                }
            }
            if (victim == null) {
                throw new IllegalStateException(
                        "all " + capacity() + " hot-state slots hold keys of the current " + "engine call");
            }
            if (victim.dirty) {
                writeBack.write(victim);
            }
            byKey.remove(victim.key);
            slot = victim.slot;
        }
        Entry e = new Entry(key, slot);
        byKey.put(key, e);
        return e;
    }

    /** Forgets a key without writing it back (its document ended) and frees its slot. */
    void drop(String key) {
        Entry e = byKey.remove(key);
        if (e != null) {
            free.add(e.slot);
        }
    }

    /** Writes every dirty key back; they stay hot, now clean. Returns how many were written. */
    int writeBackDirty(WriteBack writeBack) throws Exception {
        List<Entry> dirty = new ArrayList<>();
        for (Entry e : byKey.values()) {
            if (e.dirty) {
                dirty.add(e);
            }
        }
        for (Entry e : dirty) {
            writeBack.write(e);
            e.dirty = false;
        }
        return dirty.size();
    }

    /** Writes every dirty key back, then forgets all keys. */
    void evictAll(WriteBack writeBack) throws Exception {
        writeBackDirty(writeBack);
        for (Iterator<Entry> it = byKey.values().iterator(); it.hasNext(); ) {
            free.add(it.next().slot);
            it.remove();
        }
    }

    Collection<Entry> entries() {
        return byKey.values();
    }

    @Override
    public void close() {
        byKey.clear();
        free.clear();
        slots.close();
    }
}
