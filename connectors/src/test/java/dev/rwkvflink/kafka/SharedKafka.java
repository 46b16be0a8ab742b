package dev.rwkvflink.kafka;

import dev.rwkvflink.kafka.local.EmbeddedKafka;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * Gives test methods (and constructors, {@code @BeforeAll} methods) an {@link EmbeddedKafka} parameter: one broker
 * for the whole test run, started on first use and closed when JUnit finishes. Tests share it, so each uses its own
 * topics.
 */
public final class SharedKafka implements ParameterResolver {

    @Override
    public boolean supportsParameter(ParameterContext parameter, ExtensionContext context) {
        return parameter.getParameter().getType() == EmbeddedKafka.class;
    }

    @Override
    public Object resolveParameter(ParameterContext parameter, ExtensionContext context) {
        return context.getRoot()
                .getStore(ExtensionContext.Namespace.GLOBAL)
                .getOrComputeIfAbsent(
                        EmbeddedKafka.class, type -> EmbeddedKafka.builder().start(), EmbeddedKafka.class);
    }
}
