package dev.rwkvflink.operator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.engine.tokenizer.ChunkTokenizer;
import dev.rwkvflink.engine.tokenizer.Tokenizer;
import dev.rwkvflink.engine.tokenizer.Tokenizers;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Set;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/** The ordering and deduplication rules alone, without Flink: every verdict, and what applying does. */
class ChunkOrderTest {
    private final ChunkOrder order = new ChunkOrder(10, 2);

    private static TextChunk chunk(long seq, boolean last) {
        return new TextChunk("d", seq, "x", last, 0);
    }

    private static DocumentProgress at(long nextSeq, int buffered, boolean finished) {
        DocumentProgress p = new DocumentProgress();
        p.nextSeq = nextSeq;
        p.buffered = buffered;
        p.finished = finished;
        return p;
    }

    @Test
    void everyVerdict() throws Exception {
        Set<Long> none = Set.of();
        assertEquals(
                ChunkOrder.Kind.APPLY,
                order.arrive(at(3, 0, false), chunk(3, false), none::contains).kind());
        assertEquals(
                ChunkOrder.Kind.BUFFER,
                order.arrive(at(3, 0, false), chunk(5, false), none::contains).kind());
        assertEquals(
                new ChunkOrder.Verdict(ChunkOrder.Kind.DUPLICATE, "applied"),
                order.arrive(at(3, 0, false), chunk(2, false), none::contains));
        assertEquals(
                new ChunkOrder.Verdict(ChunkOrder.Kind.DUPLICATE, "buffered"),
                order.arrive(at(3, 1, false), chunk(5, false), Set.of(5L)::contains));
        assertEquals(
                new ChunkOrder.Verdict(ChunkOrder.Kind.DUPLICATE, "finished"),
                order.arrive(at(3, 0, true), chunk(2, false), none::contains));
        assertEquals(
                new ChunkOrder.Verdict(
                        ChunkOrder.Kind.REJECT, "document 'd' already ended before chunk 3 (its last chunk was 2)"),
                order.arrive(at(3, 0, true), chunk(3, false), none::contains));
        assertEquals(
                new ChunkOrder.Verdict(
                        ChunkOrder.Kind.REJECT, "seq 14 is more than 10 ahead of the next expected seq 3"),
                order.arrive(at(3, 0, false), chunk(14, false), none::contains));
        assertEquals(
                ChunkOrder.Kind.BUFFER,
                order.arrive(at(3, 0, false), chunk(13, false), none::contains).kind());
        assertEquals(
                new ChunkOrder.Verdict(ChunkOrder.Kind.REJECT, "2 chunks already wait for seq 3"),
                order.arrive(at(3, 2, false), chunk(6, false), Set.of(4L, 5L)::contains));
    }

    @Test
    void applyingTokenizesAcrossChunksAsTheWholeText() throws Exception {
        ChunkTokenizer tokenizer = world().chunked();
        String text = "héllo wörld, streams";
        DocumentProgress p = new DocumentProgress();
        int[] all = new int[0];
        String[] pieces = {"hé", "llo w", "ö", "rld, streams"};
        for (int i = 0; i < pieces.length; i++) {
            ChunkOrder.Applied a =
                    ChunkOrder.apply(p, new TextChunk("d", i, pieces[i], i == pieces.length - 1, 10 + i), tokenizer);
            assertNull(a.rejection());
            all = concat(all, a.tokens());
        }
        assertArrayEquals(world().encodeBytes(text.getBytes(StandardCharsets.UTF_8)), all);
        assertEquals(4, p.nextSeq);
        assertEquals(all.length, p.tokens);
        assertEquals(13, p.eventTime);
        assertTrue(p.finished);
    }

    @Test
    void aDocumentMayNotMixTextAndTokenIds() throws Exception {
        ChunkTokenizer tokenizer = world().chunked();
        DocumentProgress p = new DocumentProgress();
        ChunkOrder.apply(p, new TextChunk("d", 0, "text", false, 0), tokenizer);
        ChunkOrder.Applied a = ChunkOrder.apply(p, TextChunk.ofTokens("d", 1, new int[] {5}, false, 0), tokenizer);
        assertEquals("chunk carries token ids but earlier chunks of the document carried text", a.rejection());
        assertEquals(0, a.tokens().length);
        assertEquals(2, p.nextSeq, "the chunk counts as applied, so its successors are not held up");
    }

    /** The World tokenizer (multi-byte tokens, so chunk borders fall inside tokens); skips without ../shared. */
    private static Tokenizer world() throws Exception {
        Path vocab =
                Path.of(System.getProperty("rwkv.shared.dir", "../../shared"), "reference", "rwkv_vocab_v20230424.txt");
        Assumptions.assumeTrue(Files.isRegularFile(vocab), "World vocabulary absent, skipping: " + vocab);
        return Tokenizers.forModel(65536, vocab);
    }

    private static int[] concat(int[] a, int[] b) {
        int[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
