package dev.rwkvflink.schema;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.apache.avro.Schema;
import org.apache.avro.specific.SpecificData;
import org.apache.avro.specific.SpecificRecord;
import org.apache.avro.util.ClassSecurityValidator;

/**
 * The records of this module and the one piece of set-up every JVM that reads them needs.
 *
 * <p>Avro 1.12 refuses to instantiate a generated class while decoding unless the class is trusted, either through
 * the system property {@code org.apache.avro.SERIALIZABLE_PACKAGES} or through
 * {@link ClassSecurityValidator#setGlobal}. {@link #trust(Schema)} adds the classes a schema names to the global
 * validator (keeping whatever was trusted before), so decoders call it once and need no JVM flag.
 */
public final class Schemas {

    /** Every record type of the rwkv-flink topics. */
    public static final List<Class<? extends SpecificRecord>> RECORDS =
            List.of(DocumentChunk.class, Embedding.class, Classification.class, DeadLetter.class);

    private static final Set<String> TRUSTED = new HashSet<>();

    private Schemas() {}

    /** Trusts the generated classes of every record in {@link #RECORDS} (and the enums they use). */
    public static void trustGeneratedClasses() {
        for (Class<? extends SpecificRecord> type : RECORDS) {
            trust(SpecificData.get().getSchema(type));
        }
    }

    /**
     * Trusts the generated classes a schema names: the record itself and every record, enum and fixed type inside it.
     * Idempotent and thread-safe; classes trusted before (by system property or by other code) stay trusted.
     */
    public static synchronized void trust(Schema schema) {
        Set<String> names = new HashSet<>();
        collectNamedTypes(schema, names);
        names.removeAll(TRUSTED);
        if (names.isEmpty()) {
            return;
        }
        ClassSecurityValidator.Builder added = ClassSecurityValidator.builder();
        names.forEach(added::add);
        ClassSecurityValidator.setGlobal(
                ClassSecurityValidator.composite(ClassSecurityValidator.getGlobal(), added.build()));
        TRUSTED.addAll(names);
    }

    /** Adds the Java class names of the named types (record, enum, fixed) reachable from a schema. */
    private static void collectNamedTypes(Schema root, Set<String> names) {
        Deque<Schema> pending = new ArrayDeque<>(List.of(root));
        Set<Schema> seen = new HashSet<>();
        while (!pending.isEmpty()) {
            Schema schema = pending.pop();
            if (!seen.add(schema)) {
                continue;
            }
            switch (schema.getType()) {
                case RECORD -> {
                    names.add(SpecificData.getClassName(schema));
                    schema.getFields().forEach(field -> pending.push(field.schema()));
                }
                case ENUM, FIXED -> names.add(SpecificData.getClassName(schema));
                case ARRAY -> pending.push(schema.getElementType());
                case MAP -> pending.push(schema.getValueType());
                case UNION -> schema.getTypes().forEach(pending::push);
                default -> {}
            }
        }
    }
}
