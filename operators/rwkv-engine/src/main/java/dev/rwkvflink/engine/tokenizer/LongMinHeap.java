package dev.rwkvflink.engine.tokenizer;

import java.util.Arrays;

/**
 * A binary min-heap of {@code long}s: the array {@code heap[0..size)} is kept so that every parent is at most
 * its children ({@code heap[(i - 1) / 2] <= heap[i]}), so the minimum sits at index 0. Insertion sifts the new
 * element up, removal moves the last element to the top and sifts it down; both take O(log n).
 */
final class LongMinHeap {

    private long[] heap;
    private int size;

    LongMinHeap(int initialCapacity) {
        heap = new long[Math.max(4, initialCapacity)];
    }

    boolean isEmpty() {
        return size == 0;
    }

    void add(long value) {
        if (size == heap.length) {
            heap = Arrays.copyOf(heap, size * 2);
        }
        int i = size++;
        while (i > 0) {
            int parent = (i - 1) / 2;
            if (heap[parent] <= value) {
                break;
            }
            heap[i] = heap[parent];
            i = parent;
        }
        heap[i] = value;
    }

    /** Removes and returns the smallest element; the heap must not be empty. */
    long removeMin() {
        long min = heap[0];
        long last = heap[--size];
        int i = 0;
        while (true) {
            int child = 2 * i + 1;
            if (child >= size) {
                break;
            }
            if (child + 1 < size && heap[child + 1] < heap[child]) {
                child++;
            }
            if (last <= heap[child]) {
                break;
            }
            heap[i] = heap[child];
            i = child;
        }
        heap[i] = last;
        return min;
    }
}
