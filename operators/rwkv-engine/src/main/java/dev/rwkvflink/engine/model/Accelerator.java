package dev.rwkvflink.engine.model;

import java.util.Optional;
import java.util.function.Consumer;

/**
 * A backend that can take over whole models (the GPU backend). {@link RwkvModel} asks it once, on first use, for a
 * {@link ModelRunner}; when it declines (a version or shape it does not run) the model runs on the CPU path and
 * the reason is logged.
 */
public interface Accelerator {

    /** A runner for {@code model}, or empty with the reason given to {@code declined}. */
    Optional<ModelRunner> open(RwkvModel model, Consumer<String> declined);
}
