package dev.rwkvflink.engine.model;

import dev.rwkvflink.engine.backend.Backend;
import dev.rwkvflink.engine.format.WeightFile;
import dev.rwkvflink.engine.state.ModelFingerprint;
import dev.rwkvflink.engine.state.RwkvState;
import dev.rwkvflink.engine.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An RWKV language model of any supported version, ready to advance states.
 * <pre>
 *   x_t = LayerNorm_ln0(emb[token_t])
 *   for each layer: x = block(x, state)
 *   hidden = LayerNorm_ln_out(x_last);   logits = W_head hidden
 * </pre>
 * The model is immutable and thread-safe; all per-text memory is in {@link RwkvState}. It owns its weights'
 * memory (the file read into memory, or mapped: {@code WeightFile.Access}) until {@link #close()}.
 */
public final class RwkvModel implements AutoCloseable {
    /** Longest run of tokens pushed through the layers at once (bounds activation memory; results unchanged). */
    public static final int MAX_BLOCK_TOKENS = 1024;

    private final WeightFile file;
    private final RwkvConfig config;
    private final Backend backend;
    private final Tensor emb;
    private final float[] ln0w;
    private final float[] ln0b;
    private final RwkvBlock[] blocks;
    private final float[] lnOutW;
    private final float[] lnOutB;
    private final Tensor head;
    private volatile ModelFingerprint fingerprint;
    /** The accelerator's runner once asked for; {@link #NO_RUNNER} when the CPU path runs this model. */
    private volatile Object runner;

    private static final Object NO_RUNNER = new Object();
    private static final Logger LOG = LoggerFactory.getLogger(RwkvModel.class);

    private RwkvModel(WeightFile file, Backend backend) {
        this.file = file;
        this.backend = backend;
        this.config = RwkvConfig.detect(file);
        int C = config.embd();
        emb = file.get("emb.weight");
        ln0w = file.get("blocks.0.ln0.weight").toFloatArray();
        ln0b = file.get("blocks.0.ln0.bias").toFloatArray();
        blocks = new RwkvBlock[config.layers()];
        for (int l = 0; l < blocks.length; l++) {
            blocks[l] = RwkvBlock.of(config, new LayerWeights(file, l), l);
        }
        lnOutW = file.get("ln_out.weight").toFloatArray();
        lnOutB = file.get("ln_out.bias").toFloatArray();
        head = file.get("head.weight");
        if (head.rows() != config.vocab() || head.cols() != C || ln0w.length != C || lnOutW.length != C) {
            throw new IllegalArgumentException(file.path() + ": head/ln0/ln_out shapes disagree with width " + C
                    + " and vocabulary " + config.vocab());
        }
    }

    /** Opens a model file (rwkv.cpp .bin, .pth or .safetensors) and checks that every tensor the version needs is there. */
    public static RwkvModel load(Path path, Backend backend) throws IOException {
        WeightFile f = WeightFile.open(path);
        try {
            return new RwkvModel(f, backend);
        } catch (RuntimeException e) {
            f.close();
            throw new IOException(path + ": " + e.getMessage(), e);
        }
    }

    /** Wraps already-loaded canonical weights (the model takes ownership and closes them). */
    public static RwkvModel of(WeightFile f, Backend backend) {
        return new RwkvModel(f, backend);
    }

    public RwkvConfig config() {
        return config;
    }

    public Backend backend() {
        return backend;
    }

    public WeightFile weights() {
        return file;
    }

    /** A fresh state: what the model knows before any text. */
    public RwkvState newState() {
        return RwkvState.initial(config);
    }

    /** Identifies these exact weights; states record it so they are never applied to another model. */
    public ModelFingerprint fingerprint() {
        ModelFingerprint f = fingerprint;
        if (f == null) {
            synchronized (this) {
                f = fingerprint;
                if (f == null) {
                    f = ModelFingerprint.of(config, file.tensors().values());
                    fingerprint = f;
                }
            }
        }
        return f;
    }

    /**
     * Sequence mode: advances {@code state} by all {@code tokens} in one pass (projections as matrix-matrix
     * products) and returns the logits after the last token.
     */
    public float[] forward(RwkvState state, int[] tokens) {
        ModelRunner r = runner();
        if (r != null) {
            checkTokens(state, tokens);
            return r.advanceToLogits(new RwkvState[] {state}, new int[][] {tokens})[0];
        }
        return head(hidden(state, tokens));
    }

    /** RNN mode: one token at a time; the same result as {@link #forward} within fp32 rounding. */
    public float[] forwardRnn(RwkvState state, int[] tokens) {
        float[] h = null;
        for (int token : tokens) {
            h = hidden(state, new int[] {token});
        }
        return head(h);
    }

    /**
     * Advances {@code state} by {@code tokens} and returns the last token's normalised hidden vector
     * {@code ln_out(x)} (width C) without computing the vocabulary-wide head: what embeddings need.
     */
    public float[] hidden(RwkvState state, int[] tokens) {
        checkTokens(state, tokens);
        ModelRunner r = runner();
        if (r != null) {
            return r.advance(new RwkvState[] {state}, new int[][] {tokens})[0];
        }
        return advanceRows(new RwkvState[] {state}, new int[][] {tokens})[0];
    }

    /**
     * The CPU path of {@link #hidden} and {@link #advance}: the tokens of all streams are laid out as rows, stream
     * after stream, and go through the layers together in passes of at most {@link #MAX_BLOCK_TOKENS} rows (which
     * bounds the activations' memory), so each projection of a layer is one product over all the streams' rows. A
     * stream longer than what is left of a pass continues in the next one, its state carrying over. Every row's
     * arithmetic is independent of the other rows of a pass (the backends promise it for their products, the
     * blocks for the rest), so each stream gets the same bits as alone in one call, whatever shares its passes.
     * Returns each stream's hidden vector, null for a stream without tokens.
     */
    private float[][] advanceRows(RwkvState[] states, int[][] tokens) {
        int C = config.embd();
        float[][] hidden = new float[states.length][];
        int[] done = new int[states.length]; // tokens of each stream already through the layers
        int[] ids = new int[MAX_BLOCK_TOKENS];
        int[] streamOfSpan = new int[MAX_BLOCK_TOKENS];
        int next = 0; // the first stream with tokens left
        while (true) {
            while (next < states.length && done[next] == tokens[next].length) {
                next++;
            }
            if (next == states.length) {
                return hidden;
            }
            RowSpans.Builder pass = new RowSpans.Builder();
            for (int i = next; i < states.length && pass.rows() < MAX_BLOCK_TOKENS; i++) {
                int take = Math.min(tokens[i].length - done[i], MAX_BLOCK_TOKENS - pass.rows());
                if (take > 0) {
                    System.arraycopy(tokens[i], done[i], ids, pass.rows(), take);
                    streamOfSpan[pass.count()] = i;
                    pass.add(states[i], take);
                    done[i] += take;
                }
            }
            RowSpans spans = pass.build();
            float[] x = forwardRows(ids, spans);
            for (int p = 0; p < spans.count(); p++) {
                int i = streamOfSpan[p];
                if (done[i] == tokens[i].length) { // the stream's last token: ln_out of its row
                    hidden[i] = new float[C];
                    int last = spans.get(p).end() - 1;
                    Ops.layerNorm(x, last * C, lnOutW, lnOutB, RwkvConfig.LAYER_NORM_EPS, hidden[i], 0, C);
                }
            }
        }
    }

    /** Runs one pass (the rows of {@code spans}, token ids {@code ids[0 .. R)}) through every layer: R x C. */
    private float[] forwardRows(int[] ids, RowSpans spans) {
        int C = config.embd();
        int rows = spans.rows();
        float[] x = new float[rows * C];
        for (int t = 0; t < rows; t++) {
            emb.readRow(ids[t], x, t * C);
            Ops.layerNorm(x, t * C, ln0w, ln0b, RwkvConfig.LAYER_NORM_EPS, x, t * C, C);
        }
        RwkvBlock.Pass pass = new RwkvBlock.Pass();
        for (RwkvBlock block : blocks) {
            block.forward(x, spans, backend, pass);
        }
        return x;
    }

    /** Logits {@code W_head hidden} for a hidden vector from {@link #hidden}. */
    public float[] head(float[] hidden) {
        float[] logits = new float[config.vocab()];
        backend.matmul(head, hidden, 1, logits);
        return logits;
    }

    /**
     * Advances many states, each by its own tokens (a ragged batch), and returns each one's hidden vector.
     * An empty token array leaves its state as is and yields null. Each state may appear once among the streams
     * with tokens. On the CPU all streams go through the layers together (one product per projection for all
     * their tokens), and each result is bit-identical to {@link #hidden} on that stream alone.
     */
    public float[][] advance(RwkvState[] states, int[][] tokens) {
        if (states.length != tokens.length) {
            throw new IllegalArgumentException(states.length + " states but " + tokens.length + " token lists");
        }
        Set<RwkvState> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        for (int i = 0; i < states.length; i++) {
            if (tokens[i].length > 0) {
                checkTokens(states[i], tokens[i]);
                if (!seen.add(states[i])) {
                    throw new IllegalArgumentException(
                            "stream " + i + ": its state is already advanced by an" + " earlier stream of this batch");
                }
            }
        }
        ModelRunner r = runner();
        return r != null ? r.advance(states, tokens) : advanceRows(states, tokens);
    }

    /**
     * Up to {@code capacity} slots for states kept where the model runs (GPU memory when a runner runs it, else
     * the Java heap): see {@link ResidentStates}. A GPU runner may grant fewer (its pool is shared by every owner
     * in the process; {@link ResidentStates#capacity()} says how many) and throws when it has none left.
     */
    public ResidentStates residentStates(int capacity) {
        ModelRunner r = runner();
        return r != null ? r.reserve(capacity) : new HeapResidentStates(this, capacity);
    }

    /**
     * Whether an accelerator (a GPU runner) runs this model, rather than the CPU path: the engine's own costs
     * differ (replay is cheap on a GPU), so callers that balance replay against state reads ask this.
     */
    public boolean onAccelerator() {
        return runner() != null;
    }

    /**
     * How many {@link #residentStates resident states} this model can hold where it runs, over all owners in the
     * process: the slots of the accelerator's state pool, or 0 when states live on the Java heap (bounded by the
     * heap, not by the model).
     */
    public int residentStateLimit() {
        ModelRunner r = runner();
        return r == null ? 0 : r.slots();
    }

    /**
     * The accelerator's runner for this model (opened on first use), or null when the model runs on the CPU path:
     * the backend is no {@link Accelerator}, or it declined this model (the reason is logged once).
     */
    public ModelRunner runner() {
        Object r = runner;
        if (r == null) {
            synchronized (this) {
                r = runner;
                if (r == null) {
                    r = NO_RUNNER;
                    if (backend instanceof Accelerator a) {
                        r = a.open(
                                        this,
                                        why -> LOG.warn("rwkv: {} runs this model on the CPU: {}", backend.name(), why))
                                .map(Object.class::cast)
                                .orElse(NO_RUNNER);
                    }
                    runner = r;
                }
            }
        }
        return r == NO_RUNNER ? null : (ModelRunner) r;
    }

    private void checkTokens(RwkvState state, int[] tokens) {
        checkState(state);
        if (tokens.length == 0) {
            throw new IllegalArgumentException("no tokens to advance by");
        }
        for (int id : tokens) {
            if (id < 0 || id >= config.vocab()) {
                throw new IllegalArgumentException(
                        "token " + id + " outside the vocabulary [0, " + config.vocab() + ")");
            }
        }
    }

    private void checkState(RwkvState state) {
        if (!state.config().equals(config)) {
            throw new IllegalArgumentException(
                    "state belongs to a model of shape " + state.config() + ", this model is " + config);
        }
    }

    @Override
    public void close() {
        Object r = runner;
        if (r instanceof ModelRunner m) {
            m.close();
        }
        file.close();
    }
}
