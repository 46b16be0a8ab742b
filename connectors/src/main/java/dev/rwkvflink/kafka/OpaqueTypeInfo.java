package dev.rwkvflink.kafka;

import java.io.Serial;
import java.util.Objects;
import org.apache.flink.api.common.typeinfo.TypeInformation;

/**
 * Flink type information for a type that Flink sees as one opaque value (no fields it can address, not a key type)
 * and that a dedicated serializer writes: what {@link AvroRecordTypeInfo} and {@link DecodedTypeInfo} share. Two are
 * equal when they are of the same class for the same type class.
 */
public abstract class OpaqueTypeInfo<T> extends TypeInformation<T> {

    @Serial
    private static final long serialVersionUID = 1L;

    private final Class<T> typeClass;

    protected OpaqueTypeInfo(Class<T> typeClass) {
        this.typeClass = Objects.requireNonNull(typeClass, "typeClass");
    }

    @Override
    public final boolean isBasicType() {
        return false;
    }

    @Override
    public final boolean isTupleType() {
        return false;
    }

    @Override
    public final int getArity() {
        return 1;
    }

    @Override
    public final int getTotalFields() {
        return 1;
    }

    @Override
    public final Class<T> getTypeClass() {
        return typeClass;
    }

    @Override
    public final boolean isKeyType() {
        return false;
    }

    @Override
    public final boolean equals(Object other) {
        return other instanceof OpaqueTypeInfo<?> info && info.canEqual(this) && info.typeClass == typeClass;
    }

    @Override
    public final int hashCode() {
        return typeClass.hashCode();
    }

    @Override
    public final boolean canEqual(Object other) {
        return other != null && other.getClass() == getClass();
    }
}
