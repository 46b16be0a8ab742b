package dev.rwkvflink.operator;

/** The files and choices that make a loaded model: equal specs share one model per JVM. */
record ModelSpec(String modelPath, String vocabPath, String backend, String pooling, String statsPath,
                 String headPath) {
}
