package dev.rwkvflink.kafka;

import dev.rwkvflink.schema.DeadLetter;
import dev.rwkvflink.schema.DocumentChunk;
import java.io.Serial;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * Splits decoded records: chunks go on, dead letters go to the side output {@link #DEAD_LETTERS}.
 *
 * <pre>{@code
 * SingleOutputStreamOperator<DocumentChunk> chunks = env
 *     .fromSource(KafkaJobs.chunkSource(...), WatermarkStrategy.noWatermarks(), "chunks")
 *     .process(new DeadLetterSplitter()).uid("split-dead-letters");
 * chunks.getSideOutput(DeadLetterSplitter.DEAD_LETTERS).sinkTo(KafkaJobs.deadLetterSink(...));
 * }</pre>
 */
public final class DeadLetterSplitter extends ProcessFunction<Decoded, DocumentChunk>
        implements ResultTypeQueryable<DocumentChunk> {

    @Serial
    private static final long serialVersionUID = 1L;

    /** Records that did not decode. */
    public static final OutputTag<DeadLetter> DEAD_LETTERS =
            new OutputTag<>("dead-letters", new AvroRecordTypeInfo<>(DeadLetter.class));

    @Override
    public void processElement(Decoded decoded, Context context, Collector<DocumentChunk> out) {
        if (decoded.isChunk()) {
            out.collect(decoded.chunk());
        } else {
            context.output(DEAD_LETTERS, decoded.deadLetter());
        }
    }

    @Override
    public TypeInformation<DocumentChunk> getProducedType() {
        return new AvroRecordTypeInfo<>(DocumentChunk.class);
    }
}
