package dev.rwkvflink.operator;

import dev.rwkvflink.engine.tokenizer.ChunkTokenizer;
import java.io.Serializable;

/**
 * A document's ordering and deduplication rules, pure (no Flink, no state of its own): where a valid chunk goes
 * given its key's {@link DocumentProgress} ({@link #arrive}), and what applying the chunk with the next seq does to
 * the progress ({@link #apply}: the tokens to run, exactly as if the whole text were tokenized at once). The
 * DataStream operator and the SQL function both follow these rules, so they accept, drop and reject the same chunks.
 */
final class ChunkOrder implements Serializable {
    private static final long serialVersionUID = 1L;

    /** What happens to an arriving chunk. */
    enum Kind {
        /** It has the next seq: apply it, then any buffered successors. */
        APPLY,
        /** It is early: keep it until its predecessors arrive. */
        BUFFER,
        /** It repeats a chunk already applied or buffered: drop it (not an error: at-least-once sources repeat). */
        DUPLICATE,
        /** It can never be applied: a dead letter with the reason. */
        REJECT
    }

    /** A decision; {@code why} is the dead letter's reason (REJECT) or what the chunk repeats (DUPLICATE). */
    record Verdict(Kind kind, String why) {
        static final Verdict APPLY = new Verdict(Kind.APPLY, null);
        static final Verdict BUFFER = new Verdict(Kind.BUFFER, null);

        static Verdict duplicate(String of) {
            return new Verdict(Kind.DUPLICATE, of);
        }

        static Verdict reject(String reason) {
            return new Verdict(Kind.REJECT, reason);
        }
    }

    /** The tokens of an applied chunk, and the reason to reject it when its content cannot be used (else null). */
    record Applied(int[] tokens, String rejection) {}

    /** Whether a seq is already buffered for the key (a keyed map state's contains, which may throw). */
    @FunctionalInterface
    interface Buffered {
        boolean contains(long seq) throws Exception;
    }

    private final long maxSeqAhead;
    private final int maxBufferedChunks;

    ChunkOrder(long maxSeqAhead, int maxBufferedChunks) {
        this.maxSeqAhead = maxSeqAhead;
        this.maxBufferedChunks = maxBufferedChunks;
    }

    /**
     * Where valid chunk {@code c} goes; {@code p} is its key's progress (a new one for a new key), {@code buffered}
     * says whether a seq is already buffered for the key.
     */
    Verdict arrive(DocumentProgress p, TextChunk c, Buffered buffered) throws Exception {
        if (p.finished && c.seq < p.nextSeq) {
            return Verdict.duplicate("finished");
        }
        if (p.finished) {
            return Verdict.reject("document '" + c.key + "' already ended before chunk " + c.seq
                    + " (its last chunk was " + (p.nextSeq - 1) + ")");
        }
        if (c.seq < p.nextSeq) {
            return Verdict.duplicate("applied");
        }
        if (c.seq == p.nextSeq) {
            return Verdict.APPLY;
        }
        if (c.seq - p.nextSeq > maxSeqAhead) {
            return Verdict.reject(
                    "seq " + c.seq + " is more than " + maxSeqAhead + " ahead of the next expected seq " + p.nextSeq);
        }
        if (buffered.contains(c.seq)) {
            return Verdict.duplicate("buffered");
        }
        if (p.buffered >= maxBufferedChunks) {
            return Verdict.reject(p.buffered + " chunks already wait for seq " + p.nextSeq);
        }
        return Verdict.BUFFER;
    }

    /**
     * Applies chunk {@code c}, which has the next seq, to {@code p}: tokenizes its text with the bytes the tokenizer
     * held back (or takes its token ids), and moves the progress past it. A chunk whose content cannot be used
     * (text after token ids or the reverse, an unpaired surrogate) still counts as applied, with no tokens and a
     * rejection, so that its successors are not held up forever.
     */
    static Applied apply(DocumentProgress p, TextChunk c, ChunkTokenizer tokenizer) {
        int[] tokens = new int[0];
        String rejection = null;
        if (c.tokens != null) {
            if (p.carry.length > 0 || (p.nextSeq > 0 && !p.tokenInput)) {
                rejection = "chunk carries token ids but earlier chunks of the document carried text";
            } else {
                p.tokenInput = true;
                tokens = c.tokens;
            }
        } else if (p.tokenInput) {
            rejection = "chunk carries text but earlier chunks of the document carried token ids";
        } else {
            byte[] utf8 = ChunkValidation.utf8(c.text);
            if (utf8 == null) {
                rejection = "text is not valid Unicode (unpaired surrogate)";
                utf8 = new byte[0];
            }
            ChunkTokenizer.Step step = tokenizer.feed(p.carry, utf8, c.last);
            p.carry = step.carry();
            tokens = step.tokens();
        }
        p.nextSeq = c.seq + 1;
        p.tokens += tokens.length;
        p.eventTime = Math.max(p.eventTime, c.eventTime);
        if (c.last) {
            p.finished = true;
        }
        return new Applied(tokens, rejection);
    }

    /**
     * Ends a document that no last chunk ended (idle timeout): the tokens of the bytes the tokenizer still holds,
     * and the progress marked finished.
     */
    static int[] end(DocumentProgress p, ChunkTokenizer tokenizer) {
        int[] rest = new int[0];
        if (!p.tokenInput) {
            ChunkTokenizer.Step step = tokenizer.feed(p.carry, new byte[0], true);
            rest = step.tokens();
            p.carry = step.carry();
        }
        p.tokens += rest.length;
        p.finished = true;
        return rest;
    }
}
