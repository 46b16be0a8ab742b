package dev.rwkvflink.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.schema.Schemas;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.JobID;
import org.apache.flink.runtime.jobgraph.JobGraph;
import org.apache.flink.runtime.jobgraph.JobVertex;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.junit.jupiter.api.Test;

/** The job's shape: where the operator's chain ends, with the sinks in a task of their own or chained to it. */
class EmbedJobGraphTest {

    @Test
    void theSinksRunInATaskOfTheirOwnUnlessChainingIsAskedFor() throws Exception {
        String separate = operatorChain(true);
        assertTrue(!separate.contains("embeddings to") && !separate.contains("classes to"), separate);
        List<String> embeddings = verticesNamed("embeddings to", true);
        assertTrue(
                embeddings.stream().anyMatch(n -> n.contains("Writer") && !n.contains("RWKV embed")),
                embeddings + ": a task of its own converts and sends the embeddings");
        List<String> classes = verticesNamed("classes to", true);
        assertTrue(
                classes.stream().anyMatch(n -> n.contains("Writer") && !n.contains("RWKV embed")),
                classes + ": a task of its own converts and sends the classes");

        String chained = operatorChain(false);
        assertTrue(chained.contains("embeddings to") && chained.contains("classes to"), chained);
    }

    /** The name of the job vertex (chain of operators) that holds the RWKV operator. */
    private static String operatorChain(boolean separateSinks) throws Exception {
        List<String> names = verticesNamed("RWKV embed", separateSinks);
        assertEquals(1, names.size(), names.toString());
        return names.getFirst();
    }

    private static List<String> verticesNamed(String part, boolean separateSinks) throws Exception {
        Schemas.trustGeneratedClasses();
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        Settings s = Settings.builder()
                .bootstrapServers("127.0.0.1:1")
                .head(headFile().toString())
                .classificationsTopic("classes")
                .separateSinks(separateSinks)
                .build();
        EmbedJob.build(env, s);
        JobGraph graph = env.getStreamGraph().getJobGraph(EmbedJobGraphTest.class.getClassLoader(), new JobID());
        List<String> names = new ArrayList<>();
        for (JobVertex v : graph.getVertices()) {
            if (v.getName().contains(part)) {
                names.add(v.getName());
            }
        }
        return names;
    }

    /** A head file as far as building the job reads it (its labels; the weights are read by the operator). */
    private static Path headFile() throws Exception {
        Path head = Files.createTempFile("head", ".json");
        head.toFile().deleteOnExit();
        Files.writeString(head, "{\"labels\": [\"rain\", \"sun\"]}");
        return head;
    }
}
