package dev.rwkvflink.engine.embed;

import dev.rwkvflink.engine.model.RwkvConfig;
import dev.rwkvflink.engine.state.RwkvState;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * What an embedding is made of, after a text has been run through the model. Used like an enum ({@link #HIDDEN},
 * {@link #STATE}, {@link #BOTH}), but a state pooling may also name its layers.
 * <ul>
 *   <li>{@code HIDDEN}: the last token's normalised hidden vector {@code ln_out(x)}, width C: what
 *       {@code RwkvModel.hidden()} and {@code advance()} return;</li>
 *   <li>{@code STATE}: the WKV state of the selected layers (default: the last layer), flattened in the state's own
 *       order and concatenated in increasing layer order; per layer:
 *       <ul>
 *         <li>v5, v6, v7: the H x N x N matrix, H*N*N floats;</li>
 *         <li>v4: the running weighted average of the values, {@code aa[i] / bb[i]} per channel (C floats).
 *             {@code aa} and {@code bb} are the WKV numerator and denominator, both scaled by {@code exp(-pp)};
 *             their ratio removes that scale. It is 0 where {@code bb} is 0, i.e. before any token;</li>
 *       </ul></li>
 *   <li>{@code BOTH}: {@code HIDDEN} followed by {@code STATE}.</li>
 * </ul>
 * Text form ({@link #parse}, {@link #toString}): {@code hidden}, {@code state}, {@code both}, or with layers
 * {@code state:0,11}, {@code both:11}.
 *
 * @param mode   which parts make up the vector
 * @param layers the state's layers, in increasing order, without repeats; empty for {@code HIDDEN} and for "the
 *               default" (the last layer, fixed by {@link #resolve})
 */
public record Pooling(Mode mode, List<Integer> layers) {

    /** The parts of a pooling. */
    public enum Mode {
        HIDDEN,
        STATE,
        BOTH;

        String label() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** The last token's hidden vector. */
    public static final Pooling HIDDEN = new Pooling(Mode.HIDDEN, List.of());
    /** The last layer's WKV state. */
    public static final Pooling STATE = new Pooling(Mode.STATE, List.of());
    /** The hidden vector, then the last layer's WKV state. */
    public static final Pooling BOTH = new Pooling(Mode.BOTH, List.of());

    public Pooling {
        layers = List.copyOf(layers);
        if (mode == Mode.HIDDEN && !layers.isEmpty()) {
            throw new IllegalArgumentException("hidden pooling takes no layers, got " + layers);
        }
        for (int i = 0; i < layers.size(); i++) {
            if (layers.get(i) < 0) {
                throw new IllegalArgumentException("layer " + layers.get(i) + " is negative");
            }
            if (i > 0 && layers.get(i) <= layers.get(i - 1)) {
                throw new IllegalArgumentException("layers must be increasing and distinct, got " + layers);
            }
        }
    }

    /**
     * Reads {@code hidden}, {@code state}, {@code both}, {@code state:L1,L2,...} or {@code both:L1,L2,...}
     * (case-insensitive, blanks ignored). Layers may be given in any order; they are sorted.
     *
     * @throws IllegalArgumentException with a message that shows the accepted forms
     */
    public static Pooling parse(String spec) {
        String text = spec == null ? "" : spec.replace(" ", "").toLowerCase(Locale.ROOT);
        int colon = text.indexOf(':');
        String name = colon < 0 ? text : text.substring(0, colon);
        Mode mode = switch (name) {
            case "hidden" -> Mode.HIDDEN;
            case "state" -> Mode.STATE;
            case "both" -> Mode.BOTH;
            default -> throw new IllegalArgumentException("unknown pooling \"" + spec + "\": " + FORMS);
        };
        if (colon < 0) {
            return new Pooling(mode, List.of());
        }
        if (mode == Mode.HIDDEN) {
            throw new IllegalArgumentException("pooling \"" + spec + "\": hidden takes no layer list; " + FORMS);
        }
        List<Integer> layers = new ArrayList<>();
        for (String part : text.substring(colon + 1).split(",", -1)) {
            if (!part.matches("\\d{1,6}")) {
                throw new IllegalArgumentException(
                        "pooling \"" + spec + "\": \"" + part + "\" is not a layer number; " + FORMS);
            }
            int layer = Integer.parseInt(part);
            if (layers.contains(layer)) {
                throw new IllegalArgumentException("pooling \"" + spec + "\": layer " + layer + " is named twice");
            }
            layers.add(layer);
        }
        layers.sort(null);
        return new Pooling(mode, layers);
    }

    private static final String FORMS = "expected hidden, state, both, state:L1,L2,... or both:L1,L2,... "
            + "(L = layer number from 0; state without layers means the last layer)";

    /**
     * This pooling with its layers made explicit for a model: the default becomes the last layer; named layers
     * are checked against the model's depth.
     *
     * @throws IllegalArgumentException if a layer does not exist in the model
     */
    public Pooling resolve(RwkvConfig config) {
        if (mode == Mode.HIDDEN) {
            return this;
        }
        if (layers.isEmpty()) {
            return new Pooling(mode, List.of(config.layers() - 1));
        }
        int last = layers.get(layers.size() - 1);
        if (last >= config.layers()) {
            throw new IllegalArgumentException("pooling " + this + ": layer " + last + " does not exist, the model has "
                    + config.layers() + " layers (0.." + (config.layers() - 1) + ")");
        }
        return this;
    }

    /**
     * Whether this and {@code other} may be the same pooling: the same mode, and the same layers unless either
     * names no layers (the default, the last layer, which only the model's depth settles: compare the
     * {@link #resolve resolved} forms for certainty). {@code state} is thus compatible with {@code state:11}.
     */
    public boolean compatibleWith(Pooling other) {
        return mode == other.mode && (layers.isEmpty() || other.layers.isEmpty() || layers.equals(other.layers));
    }

    /** Whether the vector starts with the hidden vector. */
    public boolean usesHidden() {
        return mode != Mode.STATE;
    }

    /** Whether the vector holds WKV state. */
    public boolean usesState() {
        return mode != Mode.HIDDEN;
    }

    /** Floats of one layer's pooled state: C for v4 (aa / bb), H*N*N for v5 and later. */
    public static int stateFloatsPerLayer(RwkvConfig config) {
        return config.version().hasMatrixState() ? RwkvState.wkvFloats(config) : config.embd();
    }

    /** The length of the pooled vector for a model (default layers resolved first). */
    public int dimension(RwkvConfig config) {
        Pooling resolved = resolve(config);
        long dim = (usesHidden() ? config.embd() : 0)
                + (long) resolved.layers.size() * (usesState() ? stateFloatsPerLayer(config) : 0);
        return Math.toIntExact(dim);
    }

    /** The text form that {@link #parse} reads back. */
    @Override
    public String toString() {
        if (layers.isEmpty()) {
            return mode.label();
        }
        StringBuilder sb = new StringBuilder(mode.label()).append(':');
        for (int i = 0; i < layers.size(); i++) {
            sb.append(i == 0 ? "" : ",").append(layers.get(i));
        }
        return sb.toString();
    }
}
