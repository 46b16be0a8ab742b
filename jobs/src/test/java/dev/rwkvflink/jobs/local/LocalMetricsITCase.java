package dev.rwkvflink.jobs.local;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rwkvflink.kafka.RecordFormat;
import dev.rwkvflink.operator.RwkvOperatorConfig;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** {@code local}'s Prometheus endpoint serves the operator's rwkv metrics while the job runs. */
class LocalMetricsITCase {

    @Test
    void thePrometheusEndpointServesTheRwkvMetrics() throws Exception {
        Map<String, String> documents = new LinkedHashMap<>();
        documents.put("a.txt", "Metrics of a small pipeline, scraped by Prometheus.");
        documents.put("b.txt", "A second document, so that two keys advance.");
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        LocalRun.Options options = new LocalRun.Options(
                documents,
                null,
                null,
                "hidden",
                null,
                null,
                "cpu",
                16,
                0,
                0,
                1,
                200,
                Duration.ofSeconds(120),
                4,
                false,
                0,
                1,
                new RwkvOperatorConfig().hotStateBytes,
                -1,
                RecordFormat.SINGLE_OBJECT,
                null);
        try (LocalRun run = new LocalRun(options, new PrintStream(captured, true, StandardCharsets.UTF_8))) {
            assertEquals(2, run.run().size());
            URI metrics = run.metrics();
            assertNotNull(metrics, "the endpoint is on unless --metrics-port -1");
            String out = captured.toString(StandardCharsets.UTF_8);
            assertTrue(out.contains("Prometheus metrics: " + metrics), out);
            HttpResponse<String> page = HttpClient.newHttpClient()
                    .send(
                            HttpRequest.newBuilder(metrics)
                                    .timeout(Duration.ofSeconds(10))
                                    .build(),
                            HttpResponse.BodyHandlers.ofString());
            assertEquals(200, page.statusCode());
            long total = documents.values().stream()
                    .mapToLong(t -> t.getBytes(StandardCharsets.UTF_8).length)
                    .sum();
            // the demo model reads bytes: one token per byte; the counter is reported per subtask
            assertEquals(total, sum(page.body(), "flink_taskmanager_job_task_operator_rwkv_tokens"), page.body());
            assertEquals(2, sum(page.body(), "flink_taskmanager_job_task_operator_rwkv_embeddings"));
            assertTrue(
                    page.body().contains("flink_taskmanager_job_task_operator_rwkv_batchLatencyMs"), "histograms too");
        }
    }

    /** The sum of a metric's samples over its label sets (one per subtask). */
    private static double sum(String page, String metric) {
        Matcher m =
                Pattern.compile("(?m)^" + metric + "\\{[^}]*\\} ([0-9.eE+-]+)$").matcher(page);
        double sum = 0;
        int samples = 0;
        while (m.find()) {
            sum += Double.parseDouble(m.group(1));
            samples++;
        }
        assertTrue(samples > 0, metric + " not served");
        return sum;
    }
}
