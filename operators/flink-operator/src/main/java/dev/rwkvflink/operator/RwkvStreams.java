package dev.rwkvflink.operator;

import java.io.IOException;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.util.OutputTag;

/**
 * The public way to put the operator into a job:
 * <pre>
 *   SingleOutputStreamOperator&lt;EmbeddingRecord&gt; embeddings = RwkvStreams.embed(chunks, config);
 *   DataStream&lt;RejectedChunk&gt; deadLetters = embeddings.getSideOutput(RwkvStreams.REJECTED);
 * </pre>
 */
public final class RwkvStreams {
    /** Chunks that can never be applied, with the reason (to a dead-letter sink). */
    public static final OutputTag<RejectedChunk> REJECTED = RwkvEmbeddingOperator.REJECTED;

    /** Operator uid: keep it stable so checkpoints and savepoints find the states again. */
    public static final String UID = "rwkv-embed";

    private RwkvStreams() {}

    /** Keys chunks by document and embeds them (a chunk without key is rejected by the operator, not lost). */
    public static SingleOutputStreamOperator<EmbeddingRecord> embed(
            DataStream<TextChunk> chunks, RwkvOperatorConfig config) {
        return chunks.keyBy(c -> c.key == null ? "" : c.key, Types.STRING)
                .transform("rwkv-embed", TypeInformation.of(EmbeddingRecord.class), new RwkvEmbeddingOperator(config))
                .uid(UID)
                .name("RWKV embed");
    }

    /**
     * Loads the model of {@code config} in this JVM now and keeps it loaded until the returned handle is closed.
     * Operator instances share loaded models per JVM and release a model when the last one closes, so jobs run one
     * after another in one JVM (a MiniCluster: local runs, benchmarks) would each load it again; with this handle
     * open they find it loaded.
     */
    public static AutoCloseable keepLoaded(RwkvOperatorConfig config) throws IOException {
        SharedModels.LoadedModel loaded = SharedModels.acquire(config.validate().modelSpec());
        return () -> SharedModels.release(loaded);
    }
}
