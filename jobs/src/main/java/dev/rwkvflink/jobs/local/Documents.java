package dev.rwkvflink.jobs.local;

import dev.rwkvflink.engine.format.InputFiles;
import dev.rwkvflink.schema.DocumentChunk;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The documents of a local run (key to text) and how they are cut into chunks. */
public final class Documents {

    /** The bundled sample corpus: short paragraphs written for this project, one document each. */
    public static final String SAMPLE_RESOURCE = "/dev/rwkvflink/jobs/local/sample-corpus.txt";

    private Documents() {}

    /** The sample corpus: each paragraph (separated by blank lines) is a document {@code sample-01}, ... */
    public static Map<String, String> sample() throws IOException {
        try (InputStream in = Documents.class.getResourceAsStream(SAMPLE_RESOURCE)) {
            if (in == null) {
                throw new IOException("the sample corpus " + SAMPLE_RESOURCE + " is missing from the classpath");
            }
            return paragraphs(new String(in.readAllBytes(), StandardCharsets.UTF_8), "sample-");
        }
    }

    /** Paragraphs (separated by blank lines) as documents {@code prefix01}, {@code prefix02}, ... */
    public static Map<String, String> paragraphs(String text, String prefix) {
        Map<String, String> docs = new LinkedHashMap<>();
        for (String paragraph : text.split("\\R\\s*\\R")) {
            String p = paragraph.strip();
            if (!p.isEmpty()) {
                docs.put(String.format("%s%02d", prefix, docs.size() + 1), p);
            }
        }
        return docs;
    }

    /** Each file is one document keyed by its file name (a path if two names collide). Files must be UTF-8. */
    public static Map<String, String> files(List<Path> files) throws IOException {
        Map<String, String> docs = new LinkedHashMap<>();
        for (Path file : files) {
            String key = file.getFileName().toString();
            if (docs.containsKey(key)) {
                key = file.toString();
            }
            docs.put(
                    key,
                    utf8(InputFiles.read(file, "an input document", InputFiles.WHOLE_FILE_BYTES), file.toString()));
        }
        return docs;
    }

    /** Standard input as one document keyed {@code stdin}. */
    public static Map<String, String> stdin(InputStream in) throws IOException {
        return Map.of("stdin", utf8(in.readAllBytes(), "standard input"));
    }

    private static String utf8(byte[] bytes, String where) throws IOException {
        if (bytes.length == 0) {
            throw new IOException(where + " is empty: there is nothing to embed");
        }
        try {
            return StandardCharsets.UTF_8
                    .newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes))
                    .toString();
        } catch (CharacterCodingException e) {
            throw new IOException(where + " is not valid UTF-8: " + e.getMessage(), e);
        }
    }

    /**
     * Cuts a text into chunks of at most {@code maxBytes} UTF-8 bytes (a single character longer than that makes a
     * chunk of its own), never inside a character; seq 0, 1, 2, ..., the last one marked {@code last}.
     */
    public static List<DocumentChunk> chunks(String key, String text, int maxBytes, Instant eventTime) {
        if (maxBytes < 1) {
            throw new IllegalArgumentException("chunk size must be >= 1 byte, got " + maxBytes);
        }
        List<String> pieces = new ArrayList<>();
        int start = 0;
        int bytes = 0;
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            int size = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
            if (bytes + size > maxBytes && i > start) {
                pieces.add(text.substring(start, i));
                start = i;
                bytes = 0;
            }
            bytes += size;
            i += Character.charCount(cp);
        }
        pieces.add(text.substring(start));
        List<DocumentChunk> out = new ArrayList<>(pieces.size());
        for (int seq = 0; seq < pieces.size(); seq++) {
            out.add(DocumentChunk.newBuilder()
                    .setKey(key)
                    .setSeq(seq)
                    .setText(pieces.get(seq))
                    .setLast(seq == pieces.size() - 1)
                    .setEventTime(eventTime)
                    .build());
        }
        return out;
    }
}
