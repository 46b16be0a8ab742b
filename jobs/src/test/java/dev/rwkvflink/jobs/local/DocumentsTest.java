package dev.rwkvflink.jobs.local;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.schema.DocumentChunk;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class DocumentsTest {

    @Test
    void chunksStayWithinTheByteLimitAndNeverSplitACharacter() {
        String text = "héllo wörld ✓ 𝄞 end"; // 1-, 2-, 3- and 4-byte characters
        List<DocumentChunk> chunks = Documents.chunks("k", text, 4, Instant.EPOCH);
        StringBuilder joined = new StringBuilder();
        for (int i = 0; i < chunks.size(); i++) {
            DocumentChunk c = chunks.get(i);
            assertEquals(i, c.getSeq());
            assertEquals(i == chunks.size() - 1, c.getLast());
            assertEquals("k", c.getKey());
            assertTrue(c.getText().getBytes(StandardCharsets.UTF_8).length <= 4, c.getText());
            assertFalse(Character.isHighSurrogate(c.getText().charAt(c.getText().length() - 1)), "split pair");
            joined.append(c.getText());
        }
        assertEquals(text, joined.toString());
        assertEquals(
                List.of("hél", "lo w", "örl", "d ", "✓ ", "𝄞", " end"),
                chunks.stream().map(DocumentChunk::getText).toList());
    }

    @Test
    void aShortTextIsOneLastChunk() {
        List<DocumentChunk> chunks = Documents.chunks("k", "abc", 64, Instant.EPOCH);
        assertEquals(1, chunks.size());
        assertTrue(chunks.get(0).getLast());
        assertThrows(IllegalArgumentException.class, () -> Documents.chunks("k", "abc", 0, Instant.EPOCH));
    }

    @Test
    void theSampleCorpusHasTwelveParagraphs() throws Exception {
        Map<String, String> sample = Documents.sample();
        assertEquals(12, sample.size());
        assertTrue(sample.get("sample-01").startsWith("The lighthouse keeper"), sample.get("sample-01"));
        assertEquals(Map.of("p01", "a b", "p02", "c"), Documents.paragraphs("a b\n\n\nc\n", "p"));
    }
}
