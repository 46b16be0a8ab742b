package dev.rwkvflink.operator;

import java.util.ArrayList;
import java.util.List;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;

/**
 * The open documents and the chunks waiting for a missing predecessor, per key group, behind the statesHeld and
 * bufferedChunks gauges. Kept up to date as the operator runs and checkpointed as operator state of
 * {@code [keyGroup, open, buffered]} entries (a union list: after a restore every subtask reads all entries and keeps
 * those of its key groups), so that a restore, or a rescale, knows the counts without reading any keyed state: no
 * scan of every key at every start.
 */
final class DocumentCounts {
    private final KeyGroupRange range;
    private final int numberOfKeyGroups;
    private final long[] open;
    private final long[] buffered;
    private long openTotal;
    private long bufferedTotal;

    DocumentCounts(KeyGroupRange range, int numberOfKeyGroups) {
        this.range = range;
        this.numberOfKeyGroups = numberOfKeyGroups;
        this.open = new long[range.getNumberOfKeyGroups()];
        this.buffered = new long[range.getNumberOfKeyGroups()];
    }

    void documentOpened(Object key) {
        int i = index(key);
        open[i]++;
        openTotal++;
    }

    void documentEnded(Object key) {
        int i = index(key);
        open[i]--;
        openTotal--;
    }

    /** {@code delta} more (or fewer) chunks of {@code key} wait for a predecessor. */
    void buffered(Object key, int delta) {
        int i = index(key);
        buffered[i] += delta;
        bufferedTotal += delta;
    }

    long openDocuments() {
        return openTotal;
    }

    long bufferedChunks() {
        return bufferedTotal;
    }

    private int index(Object key) {
        return KeyGroupRangeAssignment.assignToKeyGroup(key, numberOfKeyGroups) - range.getStartKeyGroup();
    }

    /** The counts to checkpoint: one {@code [keyGroup, open, buffered]} entry per key group that has any. */
    List<long[]> entries() {
        List<long[]> out = new ArrayList<>();
        for (int i = 0; i < open.length; i++) {
            if (open[i] != 0 || buffered[i] != 0) {
                out.add(new long[] {range.getStartKeyGroup() + i, open[i], buffered[i]});
            }
        }
        return out;
    }

    /**
     * Takes the entries of this subtask's key groups from all subtasks' checkpointed entries; false when there were
     * none at all (a checkpoint from before the counts were checkpointed, or no checkpoint).
     */
    boolean restore(Iterable<long[]> entries) {
        boolean any = false;
        for (long[] e : entries) {
            any = true;
            int keyGroup = (int) e[0];
            if (range.contains(keyGroup)) {
                int i = keyGroup - range.getStartKeyGroup();
                open[i] += e[1];
                buffered[i] += e[2];
                openTotal += e[1];
                bufferedTotal += e[2];
            }
        }
        return any;
    }

    /** Counts one restored key's progress (for a checkpoint written before the counts were checkpointed). */
    void count(Object key, DocumentProgress p) {
        if (!p.finished) {
            documentOpened(key);
        }
        buffered(key, p.buffered);
    }
}
