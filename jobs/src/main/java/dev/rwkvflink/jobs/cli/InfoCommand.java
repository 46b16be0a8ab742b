package dev.rwkvflink.jobs.cli;

import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.model.RwkvModel;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tensor.Tensor;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** Describes a model file: version, shape, weight type, state size. */
@Command(name = "info", mixinStandardHelpOptions = true, description = "Describe a model file.")
final class InfoCommand implements Callable<Integer> {
    @Mixin
    ModelOptions model;

    @Override
    public Integer call() throws Exception {
        try (RwkvModel m = model.load()) {
            RwkvConfig c = m.config();
            long params = 0;
            long bytes = 0;
            for (Tensor t : m.weights().tensors().values()) {
                params += t.size();
                bytes += t.data().byteSize();
            }
            System.out.printf(
                    "file:          %s (%s)%n", m.weights().path(), m.weights().format());
            System.out.printf("version:       RWKV %s%n", c.version().label());
            System.out.printf("layers:        %d%n", c.layers());
            System.out.printf("width:         %d%n", c.embd());
            System.out.printf("heads:         %d x %d%n", c.heads(), c.headSize());
            System.out.printf("ffn width:     %d%n", c.ffn());
            System.out.printf("vocab:         %d%n", c.vocab());
            System.out.printf("weight type:   %s%n", c.matrixType());
            System.out.printf("parameters:    %d (%.1f MB of weights)%n", params, bytes / 1e6);
            if (c.version().hasMatrixState()) {
                System.out.printf("groupnorm eps: %s%n", c.groupNormEps());
            }
            System.out.printf("state bytes:   %d per stream (fp32)%n", 4 * RwkvState.floats(c));
            System.out.printf("fingerprint:   %s%n", m.fingerprint().hex());
            return 0;
        }
    }
}
