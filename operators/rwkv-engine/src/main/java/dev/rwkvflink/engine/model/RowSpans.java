package dev.rwkvflink.engine.model;

import dev.rwkvflink.engine.state.RwkvState;
import java.util.Arrays;
import java.util.Iterator;

/**
 * The rows of one forward pass: the tokens of several streams stacked into one activation array (R rows of C),
 * stream after stream, each stream a contiguous span of rows with its own state.
 * <pre>
 *   rows [0, 3)   stream a (state a)
 *   rows [3, 4)   stream b (state b)
 *   rows [4, 9)   stream c (state c)
 * </pre>
 * Row-wise work (LayerNorm, mixes, projections, activations, GroupNorm) runs over all R rows at once; the token
 * shift and the WKV recurrences, the only parts that need a state, run span by span. A single stream is the
 * one-span case.
 */
final class RowSpans implements Iterable<RowSpans.Span> {
    /** Rows {@code [first, first + rows)} belong to the stream whose state is {@code state}. */
    record Span(RwkvState state, int first, int rows) {
        /** One past the span's last row. */
        int end() {
            return first + rows;
        }
    }

    private final Span[] spans;
    private final int rows;

    private RowSpans(Span[] spans) {
        this.spans = spans;
        this.rows = spans.length == 0 ? 0 : spans[spans.length - 1].end();
    }

    /** One stream of {@code rows} rows. */
    static RowSpans single(RwkvState state, int rows) {
        return new RowSpans(new Span[] {new Span(state, 0, rows)});
    }

    /** Collects spans in row order; each span starts where the previous one ended. */
    static final class Builder {
        private Span[] spans = new Span[8];
        private int count;
        private int rows;

        /** Appends a stream of {@code n >= 1} rows after those already added. */
        Builder add(RwkvState state, int n) {
            if (n < 1) {
                throw new IllegalArgumentException("a span needs at least one row, got " + n);
            }
            if (count == spans.length) {
                spans = Arrays.copyOf(spans, 2 * count);
            }
            spans[count++] = new Span(state, rows, n);
            rows += n;
            return this;
        }

        /** Rows added so far. */
        int rows() {
            return rows;
        }

        /** Spans added so far. */
        int count() {
            return count;
        }

        RowSpans build() {
            return new RowSpans(Arrays.copyOf(spans, count));
        }
    }

    /** Total rows R, the sum of the spans' rows. */
    int rows() {
        return rows;
    }

    int count() {
        return spans.length;
    }

    Span get(int i) {
        return spans[i];
    }

    @Override
    public Iterator<Span> iterator() {
        return Arrays.asList(spans).iterator();
    }
}
