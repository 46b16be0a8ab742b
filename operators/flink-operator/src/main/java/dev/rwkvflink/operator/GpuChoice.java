package dev.rwkvflink.operator;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import org.apache.flink.api.common.externalresource.ExternalResourceInfo;

/**
 * Which CUDA device an operator instance runs on.
 *
 * <ol>
 *   <li>The operator's {@code cudaDevice} when set (>= 0).</li>
 *   <li>Otherwise Flink's external resource {@value #RESOURCE} when the TaskManager has one: Flink's GPU plugin
 *       ({@code external-resources: gpu}, {@code external-resource.gpu.driver-factory.class:
 *       org.apache.flink.externalresource.gpu.GPUDriverFactory}, {@code external-resource.gpu.amount: N}) assigns
 *       each TaskManager of a multi-GPU host its own devices and describes each by its {@value #INDEX} property.
 *       Instances (subtasks) in one TaskManager spread over its devices: subtask {@code i} takes the
 *       {@code i mod N}-th in index order.</li>
 *   <li>Otherwise -1: the engine's default, system property {@code rwkv.cuda.device} (default 0).</li>
 * </ol>
 *
 * Only the GPU backends use the result; a CPU backend ignores it.
 */
final class GpuChoice {
    /** Name of Flink's GPU external resource, as in {@code external-resources: gpu}. */
    static final String RESOURCE = "gpu";
    /** The property of a GPU resource that holds the device index. */
    static final String INDEX = "index";

    private GpuChoice() {}

    /**
     * The device ordinal for this instance, or -1 for the engine's default.
     *
     * @param configured the operator's {@code cudaDevice} (-1: not set)
     * @param gpus       the TaskManager's {@value #RESOURCE} resources (empty when none is configured)
     * @param subtask    this instance's subtask index
     * @throws IllegalArgumentException when a GPU resource has no or a malformed {@value #INDEX} property
     */
    static int device(int configured, Collection<ExternalResourceInfo> gpus, int subtask) {
        if (configured >= 0) {
            return configured;
        }
        if (gpus == null || gpus.isEmpty()) {
            return -1;
        }
        List<Integer> indices = new ArrayList<>();
        for (ExternalResourceInfo gpu : gpus) {
            String value = gpu.getProperty(INDEX)
                    .orElseThrow(() -> new IllegalArgumentException(
                            "Flink external resource '" + RESOURCE + "' has no '" + INDEX + "' property (keys: "
                                    + gpu.getKeys() + "): the RWKV operator needs the CUDA device index"));
            try {
                indices.add(Integer.parseInt(value.strip()));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(String.format(
                        Locale.ROOT,
                        "Flink external resource '%s' has %s '%s', not a device number",
                        RESOURCE,
                        INDEX,
                        value));
            }
        }
        indices.sort(null);
        return indices.get(Math.floorMod(subtask, indices.size()));
    }

    /** Whether {@code backend} names a GPU backend. */
    static boolean isGpu(String backend) {
        return backend != null && backend.strip().toLowerCase(Locale.ROOT).startsWith("cuda");
    }
}
