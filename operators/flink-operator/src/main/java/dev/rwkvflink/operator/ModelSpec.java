package dev.rwkvflink.operator;

import dev.rwkvflink.engine.backend.EngineSettings;

/**
 * The files and choices that make a loaded model: equal specs share one model per JVM. {@code cudaDevice} is the
 * CUDA device ordinal for the GPU backends (-1: the engine's default, system property {@code rwkv.cuda.device}), so
 * that operator instances on different GPUs of one TaskManager load one model each. {@code engine} sizes the
 * backend when this spec is the first to make it.
 */
record ModelSpec(
        String modelPath,
        String vocabPath,
        String backend,
        String pooling,
        String statsPath,
        String headPath,
        int cudaDevice,
        EngineSettings engine) {}
