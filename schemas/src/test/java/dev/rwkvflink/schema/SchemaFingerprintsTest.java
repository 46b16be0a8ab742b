package dev.rwkvflink.schema;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.junit.jupiter.api.Test;

/**
 * The fingerprints and canonical forms listed in schemas/README.md are those of the generated classes, and the
 * fingerprint is the Avro specification's CRC-64-AVRO of the canonical form, computed here from the specification
 * (not from Avro's code), as a producer in another language would.
 */
class SchemaFingerprintsTest {

    private static final List<Schema> SCHEMAS = List.of(
            DocumentChunk.getClassSchema(),
            Embedding.getClassSchema(),
            Classification.getClassSchema(),
            DeadLetter.getClassSchema());

    /** The specification's "Schema Fingerprints": the Rabin fingerprint with this empty value, table-driven. */
    private static final long EMPTY = 0xc15d213aa4d7a795L;

    private static long crc64Avro(byte[] bytes) {
        long[] table = new long[256];
        for (int i = 0; i < 256; i++) {
            long fp = i;
            for (int j = 0; j < 8; j++) {
                fp = (fp >>> 1) ^ (EMPTY & -(fp & 1L));
            }
            table[i] = fp;
        }
        long fp = EMPTY;
        for (byte b : bytes) {
            fp = (fp >>> 8) ^ table[(int) (fp ^ b) & 0xff];
        }
        return fp;
    }

    @Test
    void theReadmeListsEachSchemasFingerprintHeaderAndCanonicalForm() throws Exception {
        String readme = Files.readString(Path.of("README.md"), StandardCharsets.UTF_8);
        for (Schema s : SCHEMAS) {
            String form = SchemaNormalization.toParsingForm(s);
            long fingerprint = crc64Avro(form.getBytes(StandardCharsets.UTF_8));
            assertEquals(
                    SchemaNormalization.parsingFingerprint64(s),
                    fingerprint,
                    s.getName() + ": the specification's CRC-64-AVRO and Avro's agree");
            StringBuilder header = new StringBuilder("C3 01");
            for (int i = 0; i < 8; i++) {
                header.append(String.format(" %02X", (fingerprint >>> (8 * i)) & 0xff));
            }
            String row = String.format("| `%s` | `%016x` | `%s` |", s.getName(), fingerprint, header);
            assertTrue(readme.contains(row), "schemas/README.md lists " + row);
            assertTrue(
                    readme.contains("`" + s.getName() + "`:\n```json\n" + form + "\n```"),
                    "schemas/README.md lists the canonical form of " + s.getName() + ": " + form);
        }
    }
}
