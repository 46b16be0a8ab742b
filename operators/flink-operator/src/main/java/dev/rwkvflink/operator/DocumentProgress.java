package dev.rwkvflink.operator;

/**
 * Where a key stands (small; read for every chunk): the next seq to apply, the bytes the chunk tokenizer holds
 * back, and whether the document has finished. A Flink POJO, so its schema can evolve.
 */
public class DocumentProgress {
    /** The seq of the next chunk to apply. */
    public long nextSeq;
    /** Tokens applied or queued so far. */
    public long tokens;
    /** Bytes the chunk tokenizer carries to the next chunk (never more than a few hundred). */
    public byte[] carry = new byte[0];
    /** Processing time of the last chunk (for the idle timeout). */
    public long lastActivity;
    /** Event time of the newest chunk applied. */
    public long eventTime;
    /** The document was finished (last chunk or idle); kept as a tombstone to reject late chunks. */
    public boolean finished;
    /** Chunks buffered because they arrived before their predecessors. */
    public int buffered;
    /** Whether chunks carried token ids rather than text (a document must not mix both). */
    public boolean tokenInput;

    public DocumentProgress() {}
}
