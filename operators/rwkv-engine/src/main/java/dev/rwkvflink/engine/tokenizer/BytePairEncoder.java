package dev.rwkvflink.engine.tokenizer;

/**
 * Byte-pair encoding of one pre-token: the word starts as one symbol per byte, then the adjacent pair with the
 * best (lowest) merge rank is replaced by the merged token, again and again, until no adjacent pair has a merge.
 * Among pairs of equal rank (the same pair occurring several times) the leftmost is merged first, so "aaa" with
 * the merge "a a" becomes "aa a". This is the rule of GPT-2's {@code bpe()} and of Hugging Face
 * {@code tokenizers}.
 *
 * <p>Finding the best pair by rescanning the word after every merge costs O(n²); instead the candidate pairs
 * wait in a min-heap ordered by (rank, position), as in {@code tokenizers}. The symbols form a doubly linked list
 * over the original byte positions. Merging the pair that starts at symbol {@code p} absorbs its right
 * neighbour into {@code p} and pushes the two new pairs that {@code p} now forms with its neighbours. Heap
 * entries made stale by earlier merges are recognised when popped (the pair at that position no longer has
 * that rank) and dropped. The whole word then costs O(n log n).
 */
final class BytePairEncoder {

    private static final int NONE = -1;

    /** Token id of each single byte, or {@link #NONE} if the vocabulary has no such token. */
    private final int[] idOfByte;
    /** (left id, right id) packed by {@link #pair} to (rank, merged id) packed by {@link #merge}. */
    private final LongLongMap merges;

    BytePairEncoder(int[] idOfByte, LongLongMap merges) {
        this.idOfByte = idOfByte.clone();
        this.merges = merges;
    }

    static long pair(int leftId, int rightId) {
        return ((long) leftId << 32) | (rightId & 0xFFFFFFFFL);
    }

    static long merge(int rank, int mergedId) {
        return ((long) rank << 32) | (mergedId & 0xFFFFFFFFL);
    }

    /**
     * Token ids of one word. Bytes without a single-byte token are dropped, as {@code tokenizers} does for a BPE
     * model without an unknown token (for GPT-NeoX these are the bytes that never occur in UTF-8).
     */
    int[] encode(byte[] word) {
        int n = word.length;
        int[] id = new int[n];
        int[] prev = new int[n];
        int[] next = new int[n];
        int count = 0;
        for (byte b : word) {
            int tokenId = idOfByte[b & 0xFF];
            if (tokenId != NONE) {
                id[count] = tokenId;
                prev[count] = count - 1;
                next[count] = count + 1;
                count++;
            }
        }
        if (count == 0) {
            return new int[0];
        }
        next[count - 1] = NONE;

        LongMinHeap candidates = new LongMinHeap(count);
        for (int p = 0; p + 1 < count; p++) {
            offer(candidates, id, next, p);
        }
        int symbols = count;
        while (!candidates.isEmpty()) {
            long entry = candidates.removeMin();
            int rank = (int) (entry >>> 32);
            int p = (int) entry;
            if (id[p] == NONE || next[p] == NONE) {
                continue; // p was absorbed, or its right neighbour was
            }
            long merge = merges.get(pair(id[p], id[next[p]]));
            if (merge == LongLongMap.MISSING || (int) (merge >>> 32) != rank) {
                continue; // stale: the pair at p has changed since this entry was pushed
            }
            int right = next[p];
            id[p] = (int) merge;
            id[right] = NONE;
            next[p] = next[right];
            if (next[p] != NONE) {
                prev[next[p]] = p;
            }
            symbols--;
            if (prev[p] != NONE) {
                offer(candidates, id, next, prev[p]);
            }
            offer(candidates, id, next, p);
        }

        int[] out = new int[symbols];
        int k = 0;
        for (int p = 0; p != NONE; p = next[p]) {
            out[k++] = id[p];
        }
        return out;
    }

    /** Pushes the pair starting at symbol {@code p} if the pair has a merge. */
    private void offer(LongMinHeap candidates, int[] id, int[] next, int p) {
        if (next[p] == NONE) {
            return;
        }
        long merge = merges.get(pair(id[p], id[next[p]]));
        if (merge != LongLongMap.MISSING) {
            candidates.add(((merge >>> 32) << 32) | p);
        }
    }
}
