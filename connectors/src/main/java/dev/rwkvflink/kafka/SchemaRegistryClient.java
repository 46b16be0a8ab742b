package dev.rwkvflink.kafka;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.avro.Schema;

/**
 * A client of the Confluent Schema Registry REST API, the two calls the Confluent wire format needs: register a
 * writer schema under a subject ({@code POST /subjects/{subject}/versions}, which returns the id of an identical
 * schema already there), and fetch a schema by id ({@code GET /schemas/ids/{id}}). Both answers are cached: a schema
 * id never changes its schema. Served by Confluent's registry, Apicurio Registry ({@code /apis/ccompat/v7}),
 * Karapace and Redpanda. Thread-safe.
 *
 * <p>An id the registry does not know is an {@link UnknownSchemaIdException} (the record that carries it is a
 * dead letter); a registry that cannot be reached or answers with an error is a {@link SchemaRegistryException}
 * (the job fails and its restart strategy retries: a registry outage must not turn good records into dead letters).
 */
public final class SchemaRegistryClient {

    private static final String CONTENT_TYPE = "application/vnd.schemaregistry.v1+json";
    private static final ObjectMapper JSON = new ObjectMapper();

    private final String url;
    private final HttpClient http;
    private final Map<Integer, Schema> schemas = new ConcurrentHashMap<>();
    private final Map<String, Integer> registered = new ConcurrentHashMap<>();

    /** A client of the registry whose API is at {@code url} (e.g. {@code http://registry:8081}). */
    public SchemaRegistryClient(String url) {
        this.url = stripSlash(url);
        this.http =
                HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    }

    private static String stripSlash(String url) {
        if (url == null || url.isBlank()) {
            throw new IllegalArgumentException("no schema registry URL given");
        }
        String u = url.strip();
        URI parsed = URI.create(u);
        if (!"http".equals(parsed.getScheme()) && !"https".equals(parsed.getScheme())) {
            throw new IllegalArgumentException("schema registry URL must be http:// or https://, got '" + url + "'");
        }
        return u.endsWith("/") ? u.substring(0, u.length() - 1) : u;
    }

    /** The registry's base URL. */
    public String url() {
        return url;
    }

    /** Registers {@code schema} under {@code subject} (or finds it there) and returns its id. */
    public int register(String subject, Schema schema) {
        String json = schema.toString();
        return registered.computeIfAbsent(subject + '\n' + json, k -> {
            String body = JSON.createObjectNode().put("schema", json).toString();
            JsonNode answer = call(
                    HttpRequest.newBuilder(URI.create(url + "/subjects/"
                                    + URLEncoder.encode(subject, StandardCharsets.UTF_8)
                                            .replace("+", "%20") + "/versions"))
                            .header("Content-Type", CONTENT_TYPE)
                            .POST(HttpRequest.BodyPublishers.ofString(body)),
                    "registering the schema of " + schema.getFullName() + " under subject '" + subject + "'",
                    -1);
            int id = answer.path("id").asInt(-1);
            if (id < 0) {
                throw new SchemaRegistryException("the schema registry at " + url + " answered the registration of "
                        + schema.getFullName() + " under '" + subject + "' without an id: " + answer);
            }
            schemas.putIfAbsent(id, schema);
            return id;
        });
    }

    /**
     * The schema with id {@code id}.
     *
     * @throws UnknownSchemaIdException when the registry has no schema with that id
     */
    public Schema schema(int id) {
        Schema known = schemas.get(id);
        if (known != null) {
            return known;
        }
        JsonNode answer = call(
                HttpRequest.newBuilder(URI.create(url + "/schemas/ids/" + id)).GET(), "fetching schema id " + id, id);
        String type = answer.path("schemaType").asText("AVRO");
        if (!"AVRO".equals(type)) {
            throw new UnknownSchemaIdException(id, url, "it is a " + type + " schema, not Avro");
        }
        Schema schema;
        try {
            schema = new Schema.Parser().parse(answer.path("schema").asText());
        } catch (RuntimeException e) {
            throw new UnknownSchemaIdException(id, url, "its text is not an Avro schema: " + e.getMessage());
        }
        Schema first = schemas.putIfAbsent(id, schema);
        return first != null ? first : schema;
    }

    private JsonNode call(HttpRequest.Builder request, String what, int schemaId) {
        HttpResponse<String> response;
        try {
            response = http.send(
                    request.timeout(Duration.ofSeconds(10))
                            .header("Accept", CONTENT_TYPE)
                            .build(),
                    HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new SchemaRegistryException("schema registry at " + url + " unreachable while " + what + ": " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new SchemaRegistryException("interrupted while " + what + " at " + url, e);
        }
        if (response.statusCode() == 404 && schemaId >= 0) {
            throw new UnknownSchemaIdException(schemaId, url, "the registry does not know it");
        }
        if (response.statusCode() / 100 != 2) {
            throw new SchemaRegistryException("schema registry at " + url + " answered HTTP " + response.statusCode()
                    + " while " + what + ": " + response.body());
        }
        try {
            return JSON.readTree(response.body());
        } catch (IOException e) {
            throw new SchemaRegistryException(
                    "schema registry at " + url + " answered " + what + " with no JSON: " + response.body(), e);
        }
    }

    /** The registry cannot be reached, or answered with an error. */
    public static class SchemaRegistryException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        SchemaRegistryException(String message) {
            super(message);
        }

        SchemaRegistryException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** A record names a schema id the registry does not have (or not as an Avro schema). */
    public static final class UnknownSchemaIdException extends SchemaRegistryException {
        private static final long serialVersionUID = 1L;

        UnknownSchemaIdException(int id, String url, String why) {
            super("schema id " + id + " cannot be used from the registry at " + url + ": " + why);
        }
    }
}
