package dev.rwkvflink.operator;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Work waiting for the next engine call, across keys: for each key, its token segments in seq order. A segment
 * ends where an embedding must be emitted (a progress point, the last chunk, an idle timeout) so that the
 * engine can report the hidden vector there; consecutive tokens without an emission point share a segment.
 * Held in memory only between a chunk's arrival and the next flush, which always happens before a checkpoint
 * barrier.
 */
final class Batch {
    /** Tokens to apply, then what to emit after them. */
    static final class Segment {
        final List<int[]> pieces = new ArrayList<>();
        int tokens;
        /** Null: nothing to emit after this segment. */
        EmbeddingRecord.Reason emit;

        long seq;
        long eventTime;
        /** Processing time when the segment's first tokens were queued (its chunk reached the operator). */
        long queuedAt;

        int[] tokenArray() {
            int[] all = new int[tokens];
            int pos = 0;
            for (int[] p : pieces) {
                System.arraycopy(p, 0, all, pos, p.length);
                pos += p.length;
            }
            return all;
        }
    }

    /** One key's pending work. */
    static final class KeyWork {
        final String key;
        final List<Segment> segments = new ArrayList<>();
        /** The key's hot state during a flush. */
        HotStates.Entry hot;
        /** The chunk that ended the document, for the dead-letter record of an empty document. */
        TextChunk lastChunk;

        KeyWork(String key) {
            this.key = key;
        }

        /** Appends tokens of chunk {@code seq}; {@code emit} non-null closes the segment with an emission. */
        void add(int[] tokens, long seq, long eventTime, EmbeddingRecord.Reason emit, long now) {
            Segment s;
            if (segments.isEmpty() || segments.getLast().emit != null) {
                s = newSegment();
                s.queuedAt = now;
            } else {
                s = segments.getLast();
            }
            if (tokens.length > 0) {
                s.pieces.add(tokens);
                s.tokens += tokens.length;
            }
            s.seq = seq;
            s.eventTime = Math.max(s.eventTime, eventTime);
            s.emit = emit;
        }

        boolean finishes() {
            return !segments.isEmpty()
                    && segments.getLast().emit != null
                    && segments.getLast().emit != EmbeddingRecord.Reason.PROGRESS;
        }

        private Segment newSegment() {
            Segment s = new Segment();
            segments.add(s);
            return s;
        }
    }

    private final Map<String, KeyWork> work = new LinkedHashMap<>();
    private long tokens;

    KeyWork forKey(String key) {
        return work.computeIfAbsent(key, KeyWork::new);
    }

    void countTokens(int n) {
        tokens += n;
    }

    boolean isEmpty() {
        return work.isEmpty();
    }

    int keys() {
        return work.size();
    }

    long tokens() {
        return tokens;
    }

    boolean contains(String key) {
        return work.containsKey(key);
    }

    Collection<KeyWork> all() {
        return work.values();
    }

    void clear() {
        work.clear();
        tokens = 0;
    }
}
