package dev.rwkvflink.engine.reference;

import dev.rwkvflink.engine.format.WeightFile;
import dev.rwkvflink.engine.tensor.Tensor;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * An independent, deliberately plain float64 implementation of the published RWKV math (v4, v5.0, v5.1, v5.2, v6,
 * v7), RNN mode only, for use as a test oracle. It shares nothing with the project's model code: every tensor is
 * read once with {@link Tensor#toDoubleArray()} (exact dequantization) and all arithmetic is done in double.
 *
 * <p>Written from BlinkDL's reference scripts (ChatRWKV {@code RWKV_in_150_lines.py}, {@code RWKV_v5_demo.py},
 * {@code RWKV_v6_demo.py}, {@code rwkv/model.py}; RWKV-LM {@code RWKV-v7/rwkv_v7_demo_rnn.py}) and rwkv.cpp's graph
 * ({@code rwkv_graph.inc}) for how the canonical, pre-transformed tensors of {@link WeightFile} are laid out:
 * <ul>
 *   <li>v4 {@code time_decay} = -exp(w); {@code time_first} = u as is;</li>
 *   <li>v5.0/5.1 {@code time_decay} = exp(-exp(w)) per head, {@code time_first} = exp(u) per head;
 *       v5.2 {@code time_decay} = exp(-exp(w)) per channel (H,N,1), {@code time_faaaa} = u per channel;</li>
 *   <li>v6 {@code time_maa_w1} (5D, C), {@code time_maa_w2} (5, C, D), {@code time_decay_w1} (D, C),
 *       {@code time_decay_w2} (C, D), {@code time_decay} raw w (H,N,1), {@code time_faaaa} u (H,N,1);
 *       the five maa rows are in the order w, k, v, r, g;</li>
 *   <li>v7 {@code att.x_rwkvag} (6, C) rows r, w, k, v, a, g; {@code w1,a1,v1,g1} (D, C) and {@code w2,a2,v2,g2}
 *       (C, D), i.e. "out x in"; layer 0 has no v0/v1/v2.</li>
 * </ul>
 * Matrices are "out x in": output r is the dot product of row r with the input.
 *
 * <p>Conventions: the embedding row goes through LayerNorm {@code blocks.0.ln0}; LayerNorm eps is 1e-5; the token
 * shift state holds the layer-normed input of the previous token (zeros initially); the v4 state is (aa, bb, pp)
 * with pp = -1e30 initially; the v5/v6 wkv state is [head][key][value], the v7 one [head][value][key]. The GroupNorm
 * ({@code ln_x}) eps is 1e-5 for v5 weights from rwkv.cpp files and 64e-5 otherwise (see {@link #load(WeightFile)}).
 */
public final class Float64Rwkv {

    /** Architecture, detected from the tensor names and shapes. */
    public enum Arch {
        /** RWKV-4: (aa, bb, pp) state. */
        V4,
        /** RWKV-5.0 (rwkv.cpp's "5v1"): ln_x, no gate, per-head decay and time_first. */
        V5_0,
        /** RWKV-5.1: as 5.0 plus the SiLU gate. */
        V5_1,
        /** RWKV-5.2: gate, per-channel decay (H, N), time_faaaa. */
        V5_2,
        /** RWKV-6: data-dependent token shift (maa LoRA) and decay (decay LoRA). */
        V6,
        /** RWKV-7: generalized delta rule. */
        V7
    }

    public static final double LAYER_NORM_EPS = 1e-5;
    /** GroupNorm eps rwkv.cpp uses for v5. */
    public static final double GROUP_NORM_EPS_RWKV_CPP_V5 = 1e-5;
    /** GroupNorm eps of BlinkDL's code (v5, v6, v7) and of rwkv.cpp for v6 and v7. */
    public static final double GROUP_NORM_EPS_BLINKDL = 64e-5;

    private final Map<String, double[]> w;
    private final Map<String, long[]> shapes;

    private final Arch arch;
    private final int nVocab;
    private final int nEmbd;
    private final int nLayer;
    private final int nHead;
    private final int headSize;
    private final double groupNormEps;

    private Float64Rwkv(
            Map<String, double[]> w,
            Map<String, long[]> shapes,
            Arch arch,
            int nVocab,
            int nEmbd,
            int nLayer,
            int nHead,
            int headSize,
            double groupNormEps) {
        this.w = w;
        this.shapes = shapes;
        this.arch = arch;
        this.nVocab = nVocab;
        this.nEmbd = nEmbd;
        this.nLayer = nLayer;
        this.nHead = nHead;
        this.headSize = headSize;
        this.groupNormEps = groupNormEps;
    }

    // ------------------------------------------------------------------------------------------------ loading

    /**
     * Reads every tensor of {@code f} into double arrays and detects the architecture. GroupNorm eps: 1e-5 for v5
     * from an rwkv.cpp file ({@link WeightFile.Origin#RWKV_CPP}), 64e-5 otherwise. The file may be closed afterwards.
     */
    public static Float64Rwkv load(WeightFile f) {
        return load(f, Double.NaN);
    }

    /** As {@link #load(WeightFile)} with an explicit GroupNorm ({@code ln_x}) eps; NaN picks the default. */
    public static Float64Rwkv load(WeightFile f, double groupNormEps) {
        Map<String, double[]> w = new HashMap<>();
        Map<String, long[]> shapes = new HashMap<>();
        for (Map.Entry<String, Tensor> e : f.tensors().entrySet()) {
            w.put(e.getKey(), e.getValue().toDoubleArray());
            shapes.put(e.getKey(), e.getValue().shape());
        }
        long[] emb = req(shapes, "emb.weight");
        int nVocab = (int) emb[0];
        int nEmbd = (int) emb[1];
        int nLayer = 0;
        while (w.containsKey("blocks." + nLayer + ".ln1.weight")) {
            nLayer++;
        }
        if (nLayer == 0) {
            throw new IllegalArgumentException(f.path() + ": no blocks.0.ln1.weight");
        }

        Arch arch;
        int nHead;
        String a0 = "blocks.0.att.";
        if (w.containsKey(a0 + "x_rwkvag") || w.containsKey(a0 + "x_r") || w.containsKey(a0 + "r_k")) {
            arch = Arch.V7;
            long[] rk = req(shapes, a0 + "r_k");
            // r_k is (H, N); if a loader squeezed it to (C), assume the usual head size 64
            nHead = rk.length >= 2 ? (int) rk[rk.length - 2] : nEmbd / 64;
        } else if (w.containsKey(a0 + "time_maa_x")) {
            arch = Arch.V6;
            nHead = (int) req(shapes, a0 + "time_faaaa")[0];
        } else if (w.containsKey(a0 + "ln_x.weight")) {
            boolean gate = w.containsKey(a0 + "gate.weight");
            long[] decay = req(shapes, a0 + "time_decay");
            nHead = (int) decay[0];
            boolean perChannel = w.get(a0 + "time_decay").length > nHead;
            arch = perChannel ? Arch.V5_2 : gate ? Arch.V5_1 : Arch.V5_0;
            if (perChannel && !gate) {
                throw new IllegalArgumentException(f.path() + ": v5 with per-channel decay but no gate is unknown");
            }
        } else {
            arch = Arch.V4;
            nHead = 1;
        }
        int headSize = arch == Arch.V4 ? nEmbd : nEmbd / nHead;
        if (nHead * headSize != nEmbd) {
            throw new IllegalArgumentException(f.path() + ": " + nHead + " heads do not divide n_embd " + nEmbd);
        }
        double eps = groupNormEps;
        if (Double.isNaN(eps)) {
            boolean v5 = arch == Arch.V5_0 || arch == Arch.V5_1 || arch == Arch.V5_2;
            eps = v5 && f.origin() == WeightFile.Origin.RWKV_CPP ? GROUP_NORM_EPS_RWKV_CPP_V5 : GROUP_NORM_EPS_BLINKDL;
        }
        return new Float64Rwkv(w, shapes, arch, nVocab, nEmbd, nLayer, nHead, headSize, eps);
    }

    private static long[] req(Map<String, long[]> shapes, String name) {
        long[] s = shapes.get(name);
        if (s == null) {
            throw new IllegalArgumentException("missing tensor '" + name + "'");
        }
        return s;
    }

    public Arch arch() {
        return arch;
    }

    public int nVocab() {
        return nVocab;
    }

    public int nEmbd() {
        return nEmbd;
    }

    public int nLayer() {
        return nLayer;
    }

    public int nHead() {
        return nHead;
    }

    public int headSize() {
        return headSize;
    }

    public double groupNormEps() {
        return groupNormEps;
    }

    // ------------------------------------------------------------------------------------------------ public API

    /** Logits after feeding {@code tokens} one at a time from the initial state. */
    public double[] logitsAfter(int[] tokens) {
        double[] h = hiddenAfter(tokens);
        // logits = head @ ln_out(x)
        return matVec("head.weight", h);
    }

    /** The ln_out output (before the head) after feeding {@code tokens} one at a time from the initial state. */
    public double[] hiddenAfter(int[] tokens) {
        if (tokens.length == 0) {
            throw new IllegalArgumentException("need at least one token");
        }
        State s = new State();
        double[] x = null;
        for (int t : tokens) {
            x = forward(t, s);
        }
        // x = LayerNorm(x, ln_out)
        return layerNorm(x, w("ln_out.weight"), w("ln_out.bias"));
    }

    /** max |a[i] - b[i]| (NaN if any element is NaN); the arrays must have the same length. */
    public static double maxAbsDiff(float[] a, double[] b) {
        if (a.length != b.length) {
            throw new IllegalArgumentException("lengths differ: " + a.length + " vs " + b.length);
        }
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            double d = Math.abs(a[i] - b[i]);
            if (Double.isNaN(d)) {
                return Double.NaN;
            }
            m = Math.max(m, d);
        }
        return m;
    }

    /** max |a[i] - b[i]| (NaN if any element is NaN); the arrays must have the same length. */
    public static double maxAbsDiff(double[] a, double[] b) {
        if (a.length != b.length) {
            throw new IllegalArgumentException("lengths differ: " + a.length + " vs " + b.length);
        }
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            double d = Math.abs(a[i] - b[i]);
            if (Double.isNaN(d)) {
                return Double.NaN;
            }
            m = Math.max(m, d);
        }
        return m;
    }

    /** Index of the largest element (first one on ties). */
    public static int argmax(double[] a) {
        int best = 0;
        for (int i = 1; i < a.length; i++) {
            if (a[i] > a[best]) {
                best = i;
            }
        }
        return best;
    }

    /** Index of the largest element (first one on ties). */
    public static int argmax(float[] a) {
        int best = 0;
        for (int i = 1; i < a.length; i++) {
            if (a[i] > a[best]) {
                best = i;
            }
        }
        return best;
    }

    // ------------------------------------------------------------------------------------------------ state

    /** Recurrent state of all layers. */
    private final class State {
        /** Token shift of the time mix: ln1 output of the previous token. */
        final double[][] attX = new double[nLayer][nEmbd];
        /** Token shift of the channel mix: ln2 output of the previous token. */
        final double[][] ffnX = new double[nLayer][nEmbd];
        /** v4 only: numerator, denominator and exponent offset of the wkv average. */
        final double[][] aa;

        final double[][] bb;
        final double[][] pp;
        /** v5/v6: [layer][head][key][value]; v7: [layer][head][value][key]. */
        final double[][][][] wkv;

        State() {
            if (arch == Arch.V4) {
                aa = new double[nLayer][nEmbd];
                bb = new double[nLayer][nEmbd];
                pp = new double[nLayer][nEmbd];
                for (double[] p : pp) {
                    Arrays.fill(p, -1e30);
                }
                wkv = null;
            } else {
                aa = bb = pp = null;
                wkv = new double[nLayer][nHead][headSize][headSize];
            }
        }
    }

    // ------------------------------------------------------------------------------------------------ forward

    /** One token through all layers; returns the residual stream x before ln_out. */
    private double[] forward(int token, State s) {
        if (token < 0 || token >= nVocab) {
            throw new IllegalArgumentException("token " + token + " outside vocabulary of " + nVocab);
        }
        // x = LayerNorm(emb[token], blocks.0.ln0)
        double[] emb = w("emb.weight");
        double[] x = new double[nEmbd];
        System.arraycopy(emb, token * nEmbd, x, 0, nEmbd);
        x = layerNorm(x, w("blocks.0.ln0.weight"), w("blocks.0.ln0.bias"));

        double[] vFirst = null; // v7: the value of layer 0
        for (int i = 0; i < nLayer; i++) {
            String b = "blocks." + i + ".";
            // x = x + TimeMix(LayerNorm(x, ln1))
            double[] xa = layerNorm(x, w(b + "ln1.weight"), w(b + "ln1.bias"));
            double[] att;
            switch (arch) {
                case V4 -> att = timeMixV4(i, xa, s);
                case V5_0, V5_1, V5_2 -> att = timeMixV5(i, xa, s);
                case V6 -> att = timeMixV6(i, xa, s);
                case V7 -> {
                    if (i == 0) {
                        vFirst = new double[nEmbd];
                    }
                    att = timeMixV7(i, xa, s, vFirst);
                }
                default -> throw new IllegalStateException(arch.toString());
            }
            s.attX[i] = xa;
            add(x, att);

            // x = x + ChannelMix(LayerNorm(x, ln2))
            double[] xf = layerNorm(x, w(b + "ln2.weight"), w(b + "ln2.bias"));
            double[] ffn = switch (arch) {
                case V4, V5_0, V5_1, V5_2 -> channelMixV4V5(i, xf, s.ffnX[i]);
                case V6 -> channelMixV6(i, xf, s.ffnX[i]);
                case V7 -> channelMixV7(i, xf, s.ffnX[i]);
            };
            s.ffnX[i] = xf;
            add(x, ffn);
        }
        return x;
    }

    // ---------------------------------------------------------------- v4

    /**
     * RWKV-4 time mix (RWKV_in_150_lines.py), per channel c, with last = previous token's ln1 output:
     * <pre>
     * xk = x*mix_k + last*(1-mix_k);  xv, xr likewise
     * r = sigmoid(Wr xr);  k = Wk xk;  v = Wv xv
     * wkv = (e^pp aa + e^(u+k) v) / (e^pp bb + e^(u+k))         (stably, with the running max pp)
     * aa' = e^(pp+w) aa + e^k v;  bb' = e^(pp+w) bb + e^k        (w = time_decay = -exp(raw))
     * out = Wo (r * wkv)
     * </pre>
     */
    private double[] timeMixV4(int i, double[] x, State s) {
        String a = "blocks." + i + ".att.";
        double[] last = s.attX[i];
        double[] xk = lerpMix(x, last, w(a + "time_mix_k"));
        double[] xv = lerpMix(x, last, w(a + "time_mix_v"));
        double[] xr = lerpMix(x, last, w(a + "time_mix_r"));
        double[] r = sigmoid(matVec(a + "receptance.weight", xr));
        double[] k = matVec(a + "key.weight", xk);
        double[] v = matVec(a + "value.weight", xv);
        double[] u = w(a + "time_first");
        double[] decay = w(a + "time_decay");
        double[] aa = s.aa[i];
        double[] bb = s.bb[i];
        double[] pp = s.pp[i];
        double[] rwkv = new double[nEmbd];
        for (int c = 0; c < nEmbd; c++) {
            // output: ww = u + k; q = max(pp, ww); wkv = (e^(pp-q) aa + e^(ww-q) v) / (e^(pp-q) bb + e^(ww-q))
            double ww = u[c] + k[c];
            double q = Math.max(pp[c], ww);
            double e1 = Math.exp(pp[c] - q);
            double e2 = Math.exp(ww - q);
            double wkv = (e1 * aa[c] + e2 * v[c]) / (e1 * bb[c] + e2);
            rwkv[c] = r[c] * wkv;
            // state: ww = pp + w; q = max(ww, k); aa = e^(ww-q) aa + e^(k-q) v; bb = e^(ww-q) bb + e^(k-q); pp = q
            ww = pp[c] + decay[c];
            q = Math.max(ww, k[c]);
            e1 = Math.exp(ww - q);
            e2 = Math.exp(k[c] - q);
            aa[c] = e1 * aa[c] + e2 * v[c];
            bb[c] = e1 * bb[c] + e2;
            pp[c] = q;
        }
        return matVec(a + "output.weight", rwkv);
    }

    /**
     * RWKV-4/5 channel mix:
     * <pre>
     * xk = x*mix_k + last*(1-mix_k);  xr = x*mix_r + last*(1-mix_r)
     * out = sigmoid(Wr xr) * (Wv relu(Wk xk)^2)
     * </pre>
     */
    private double[] channelMixV4V5(int i, double[] x, double[] last) {
        String f = "blocks." + i + ".ffn.";
        double[] xk = lerpMix(x, last, w(f + "time_mix_k"));
        double[] xr = lerpMix(x, last, w(f + "time_mix_r"));
        double[] r = sigmoid(matVec(f + "receptance.weight", xr));
        double[] k = squaredRelu(matVec(f + "key.weight", xk));
        double[] v = matVec(f + "value.weight", k);
        return mul(r, v);
    }

    // ---------------------------------------------------------------- v5

    /**
     * RWKV-5.x time mix (RWKV_v5_demo.py, model.py att_one_v5 / v5_1), per head h, key i, value j:
     * <pre>
     * xk, xv, xr (, xg) = x*mix + last*(1-mix)
     * r = Wr xr;  k = Wk xk;  v = Wv xv;  g = silu(Wg xg)                 (g only for 5.1 / 5.2)
     * out[h][j] = sum_i r[i] * (u[i] * k[i] v[j] + S[h][i][j])
     * S[h][i][j] = k[i] v[j] + decay[i] * S[h][i][j]
     * out = Wo (GroupNorm_H(out, ln_x, eps) (* g))
     * </pre>
     * decay = exp(-exp(w)) and u are per head (5.0/5.1: time_decay, time_first = exp(raw) shaped (H,1,1)) or per
     * channel (5.2: time_decay (H,N,1), time_faaaa = raw u).
     */
    private double[] timeMixV5(int i, double[] x, State s) {
        String a = "blocks." + i + ".att.";
        double[] last = s.attX[i];
        boolean gated = arch != Arch.V5_0;
        double[] xk = lerpMix(x, last, w(a + "time_mix_k"));
        double[] xv = lerpMix(x, last, w(a + "time_mix_v"));
        double[] xr = lerpMix(x, last, w(a + "time_mix_r"));
        double[] r = matVec(a + "receptance.weight", xr);
        double[] k = matVec(a + "key.weight", xk);
        double[] v = matVec(a + "value.weight", xv);
        double[] decay = perChannel(w(a + "time_decay"));
        double[] u = perChannel(w.containsKey(a + "time_faaaa") ? w(a + "time_faaaa") : w(a + "time_first"));

        double[] out = wkvV5V6(s.wkv[i], r, k, v, decay, u);
        out = groupNorm(out, w(a + "ln_x.weight"), w(a + "ln_x.bias"));
        if (gated) {
            double[] xg = lerpMix(x, last, w(a + "time_mix_g"));
            double[] g = silu(matVec(a + "gate.weight", xg));
            out = mul(out, g);
        }
        return matVec(a + "output.weight", out);
    }

    /**
     * The v5/v6 wkv step on state S[h][key i][value j], updating S in place:
     * <pre>
     * out[h*N + j] = sum_i r[h*N+i] * (u[h*N+i] * k[h*N+i] * v[h*N+j] + S[h][i][j])
     * S[h][i][j]   = k[h*N+i] * v[h*N+j] + decay[h*N+i] * S[h][i][j]
     * </pre>
     */
    private double[] wkvV5V6(double[][][] S, double[] r, double[] k, double[] v, double[] decay, double[] u) {
        int N = headSize;
        double[] out = new double[nEmbd];
        for (int h = 0; h < nHead; h++) {
            for (int i = 0; i < N; i++) {
                int ci = h * N + i;
                for (int j = 0; j < N; j++) {
                    int cj = h * N + j;
                    double kv = k[ci] * v[cj];
                    out[cj] += r[ci] * (u[ci] * kv + S[h][i][j]);
                    S[h][i][j] = kv + decay[ci] * S[h][i][j];
                }
            }
        }
        return out;
    }

    /** Expands a per-head vector (H values) to per-channel (C values); a per-channel one is returned as is. */
    private double[] perChannel(double[] perHeadOrChannel) {
        if (perHeadOrChannel.length == nEmbd) {
            return perHeadOrChannel;
        }
        if (perHeadOrChannel.length != nHead) {
            throw new IllegalArgumentException(
                    "expected " + nHead + " or " + nEmbd + " values, got " + perHeadOrChannel.length);
        }
        double[] c = new double[nEmbd];
        for (int h = 0; h < nHead; h++) {
            for (int j = 0; j < headSize; j++) {
                c[h * headSize + j] = perHeadOrChannel[h];
            }
        }
        return c;
    }

    // ---------------------------------------------------------------- v6

    /**
     * RWKV-6 time mix (RWKV_v6_demo.py), with sx = last - x:
     * <pre>
     * xxx = x + sx*maa_x
     * m[0..4] = maa_w2[j] tanh(maa_w1 xxx)[j*D .. j*D+D)      (order w, k, v, r, g)
     * xw = x + sx*(maa_w + m_w);  xk, xv, xr, xg likewise
     * r = Wr xr;  k = Wk xk;  v = Wv xv;  g = silu(Wg xg)
     * decay = exp(-exp(time_decay + decay_w2 tanh(decay_w1 xw)))      (per channel)
     * wkv as v5 with u = time_faaaa;  out = Wo (GroupNorm_H(wkv, ln_x, 64e-5) * g)
     * </pre>
     */
    private double[] timeMixV6(int i, double[] x, State s) {
        String a = "blocks." + i + ".att.";
        double[] sx = sub(s.attX[i], x);
        double[] xxx = addMul(x, sx, w(a + "time_maa_x"));
        double[] t = tanh(matVec(a + "time_maa_w1", xxx)); // 5*D
        long[] w2 = req(shapes, a + "time_maa_w2"); // (5, C, D)
        int d = (int) w2[2];
        if (w2[0] != 5 || w2[1] != nEmbd || t.length != 5 * d) {
            throw new IllegalArgumentException(a + "time_maa_w1/w2 shapes do not match (5*D, C) and (5, C, D)");
        }
        double[] w2all = w(a + "time_maa_w2");
        double[][] m = new double[5][];
        for (int j = 0; j < 5; j++) {
            double[] tj = new double[d];
            System.arraycopy(t, j * d, tj, 0, d);
            m[j] = matVec(w2all, j * nEmbd * d, nEmbd, d, tj);
        }
        double[] xw = addMul(x, sx, add2(w(a + "time_maa_w"), m[0]));
        double[] xk = addMul(x, sx, add2(w(a + "time_maa_k"), m[1]));
        double[] xv = addMul(x, sx, add2(w(a + "time_maa_v"), m[2]));
        double[] xr = addMul(x, sx, add2(w(a + "time_maa_r"), m[3]));
        double[] xg = addMul(x, sx, add2(w(a + "time_maa_g"), m[4]));

        double[] r = matVec(a + "receptance.weight", xr);
        double[] k = matVec(a + "key.weight", xk);
        double[] v = matVec(a + "value.weight", xv);
        double[] g = silu(matVec(a + "gate.weight", xg));

        double[] dw = matVec(a + "time_decay_w2", tanh(matVec(a + "time_decay_w1", xw)));
        double[] td = w(a + "time_decay");
        double[] decay = new double[nEmbd];
        for (int c = 0; c < nEmbd; c++) {
            decay[c] = Math.exp(-Math.exp(td[c] + dw[c]));
        }
        double[] u = perChannel(w(a + "time_faaaa"));

        double[] out = wkvV5V6(s.wkv[i], r, k, v, decay, u);
        out = groupNorm(out, w(a + "ln_x.weight"), w(a + "ln_x.bias"));
        return matVec(a + "output.weight", mul(out, g));
    }

    /**
     * RWKV-6 channel mix, with sx = last - x:
     * <pre>
     * xk = x + sx*maa_k;  xr = x + sx*maa_r
     * out = sigmoid(Wr xr) * (Wv relu(Wk xk)^2)
     * </pre>
     */
    private double[] channelMixV6(int i, double[] x, double[] last) {
        String f = "blocks." + i + ".ffn.";
        double[] sx = sub(last, x);
        double[] xk = addMul(x, sx, w(f + "time_maa_k"));
        double[] xr = addMul(x, sx, w(f + "time_maa_r"));
        double[] r = sigmoid(matVec(f + "receptance.weight", xr));
        double[] k = squaredRelu(matVec(f + "key.weight", xk));
        return mul(r, matVec(f + "value.weight", k));
    }

    // ---------------------------------------------------------------- v7

    /**
     * RWKV-7 time mix (rwkv_v7_demo_rnn.py), with sx = last - x, per head h over N channels:
     * <pre>
     * xr, xw, xk, xv, xa, xg = x + sx * x_rwkvag[0..5]
     * r = Wr xr;  k = Wk xk;  v = Wv xv
     * w = exp(-e^-0.5 * sigmoid(w0 + w2 tanh(w1 xw)))          (== exp(-exp(-softplus(-z) - 0.5)))
     * a = sigmoid(a0 + a2 (a1 xa))
     * g = g2 sigmoid(g1 xg)
     * kk = L2normalize_per_head(k * k_k)                           (eps 1e-12)
     * k  = k * (1 + (a - 1) * k_a)
     * layer 0: v_first = v;  else v = v + (v_first - v) * sigmoid(v0 + v2 (v1 xv))
     * S[h][i][j] = S[h][i][j] w[j] + (sum_l S[h][i][l] (-kk[l])) kk[j] a[j] + v[i] k[j]    (i value, j key)
     * out[i] = sum_j S[h][i][j] r[j]
     * out = GroupNorm_H(out, ln_x, 64e-5) + (sum_{j in h} r[j] k[j] r_k[j]) * v
     * return Wo (out * g)
     * </pre>
     */
    private double[] timeMixV7(int i, double[] x, State s, double[] vFirst) {
        String a = "blocks." + i + ".att.";
        int C = nEmbd;
        int N = headSize;
        double[] sx = sub(s.attX[i], x);
        double[][] mix = xRwkvag(a);
        double[] xr = addMul(x, sx, mix[0]);
        double[] xw = addMul(x, sx, mix[1]);
        double[] xk = addMul(x, sx, mix[2]);
        double[] xv = addMul(x, sx, mix[3]);
        double[] xa = addMul(x, sx, mix[4]);
        double[] xg = addMul(x, sx, mix[5]);

        double[] r = matVec(a + "receptance.weight", xr);
        double[] k = matVec(a + "key.weight", xk);
        double[] v = matVec(a + "value.weight", xv);

        double[] wz = add2(w(a + "w0"), matVec(a + "w2", tanh(matVec(a + "w1", xw))));
        double[] decay = new double[C];
        for (int c = 0; c < C; c++) {
            decay[c] = Math.exp(-Math.exp(-0.5) * sigmoid(wz[c]));
        }
        double[] aa = sigmoid(add2(w(a + "a0"), matVec(a + "a2", matVec(a + "a1", xa))));
        double[] g = matVec(a + "g2", sigmoid(matVec(a + "g1", xg)));

        double[] kk = mul(k, w(a + "k_k"));
        for (int h = 0; h < nHead; h++) {
            double n2 = 0;
            for (int j = 0; j < N; j++) {
                n2 += kk[h * N + j] * kk[h * N + j];
            }
            double norm = Math.max(Math.sqrt(n2), 1e-12);
            for (int j = 0; j < N; j++) {
                kk[h * N + j] /= norm;
            }
        }
        double[] ka = w(a + "k_a");
        for (int c = 0; c < C; c++) {
            k[c] = k[c] * (1 + (aa[c] - 1) * ka[c]);
        }

        if (i == 0) {
            System.arraycopy(v, 0, vFirst, 0, C);
        } else {
            double[] vg = sigmoid(add2(w(a + "v0"), matVec(a + "v2", matVec(a + "v1", xv))));
            for (int c = 0; c < C; c++) {
                v[c] = v[c] + (vFirst[c] - v[c]) * vg[c];
            }
        }

        double[] out = new double[C];
        double[][][] S = s.wkv[i];
        for (int h = 0; h < nHead; h++) {
            int o = h * N;
            for (int vi = 0; vi < N; vi++) {
                double[] row = S[h][vi];
                // sa = S[vi] . (-kk)   (old state)
                double sa = 0;
                for (int j = 0; j < N; j++) {
                    sa += row[j] * -kk[o + j];
                }
                double y = 0;
                for (int j = 0; j < N; j++) {
                    row[j] = row[j] * decay[o + j] + sa * kk[o + j] * aa[o + j] + v[o + vi] * k[o + j];
                    y += row[j] * r[o + j];
                }
                out[o + vi] = y;
            }
        }
        out = groupNorm(out, w(a + "ln_x.weight"), w(a + "ln_x.bias"));
        double[] rk = w(a + "r_k");
        for (int h = 0; h < nHead; h++) {
            int o = h * N;
            double bonus = 0;
            for (int j = 0; j < N; j++) {
                bonus += r[o + j] * k[o + j] * rk[o + j];
            }
            for (int j = 0; j < N; j++) {
                out[o + j] += bonus * v[o + j];
            }
        }
        return matVec(a + "output.weight", mul(out, g));
    }

    /** The six v7 token-shift mixes r, w, k, v, a, g: packed {@code x_rwkvag} or separate {@code x_r .. x_g}. */
    private double[][] xRwkvag(String a) {
        double[][] m = new double[6][nEmbd];
        if (w.containsKey(a + "x_rwkvag")) {
            double[] p = w(a + "x_rwkvag");
            if (p.length != 6 * nEmbd) {
                throw new IllegalArgumentException(a + "x_rwkvag has " + p.length + " values, expected 6*" + nEmbd);
            }
            for (int j = 0; j < 6; j++) {
                System.arraycopy(p, j * nEmbd, m[j], 0, nEmbd);
            }
        } else {
            String[] names = {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"};
            for (int j = 0; j < 6; j++) {
                m[j] = w(a + names[j]);
            }
        }
        return m;
    }

    /**
     * RWKV-7 channel mix, with sx = last - x:
     * <pre>
     * xk = x + sx*x_k;  out = Wv relu(Wk xk)^2
     * </pre>
     */
    private double[] channelMixV7(int i, double[] x, double[] last) {
        String f = "blocks." + i + ".ffn.";
        double[] xk = addMul(x, sub(last, x), w(f + "x_k"));
        return matVec(f + "value.weight", squaredRelu(matVec(f + "key.weight", xk)));
    }

    // ------------------------------------------------------------------------------------------------ helpers

    private double[] w(String name) {
        double[] v = w.get(name);
        if (v == null) {
            throw new IllegalArgumentException("missing tensor '" + name + "'");
        }
        return v;
    }

    /** y = M x for the named "out x in" matrix (any rank: all dims but the last are rows). */
    private double[] matVec(String name, double[] x) {
        long[] s = req(shapes, name);
        int cols = (int) s[s.length - 1];
        double[] m = w(name);
        int rows = m.length / cols;
        if (cols != x.length) {
            throw new IllegalArgumentException(name + ": " + rows + "x" + cols + " times a vector of " + x.length);
        }
        return matVec(m, 0, rows, cols, x);
    }

    private static double[] matVec(double[] m, int off, int rows, int cols, double[] x) {
        double[] y = new double[rows];
        for (int r = 0; r < rows; r++) {
            double acc = 0;
            int base = off + r * cols;
            for (int c = 0; c < cols; c++) {
                acc += m[base + c] * x[c];
            }
            y[r] = acc;
        }
        return y;
    }

    /** LayerNorm: (x - mean) / sqrt(var + 1e-5) * weight + bias, biased variance. */
    private static double[] layerNorm(double[] x, double[] weight, double[] bias) {
        return normalize(x, 0, x.length, weight, bias, LAYER_NORM_EPS, new double[x.length]);
    }

    /** GroupNorm with nHead groups of headSize channels, eps {@link #groupNormEps}. */
    private double[] groupNorm(double[] x, double[] weight, double[] bias) {
        double[] y = new double[x.length];
        for (int h = 0; h < nHead; h++) {
            normalize(x, h * headSize, headSize, weight, bias, groupNormEps, y);
        }
        return y;
    }

    private static double[] normalize(
            double[] x, int off, int n, double[] weight, double[] bias, double eps, double[] y) {
        double mean = 0;
        for (int i = off; i < off + n; i++) {
            mean += x[i];
        }
        mean /= n;
        double var = 0;
        for (int i = off; i < off + n; i++) {
            var += (x[i] - mean) * (x[i] - mean);
        }
        var /= n;
        double inv = 1 / Math.sqrt(var + eps);
        for (int i = off; i < off + n; i++) {
            y[i] = (x[i] - mean) * inv * weight[i] + bias[i];
        }
        return y;
    }

    /** x*mix + last*(1-mix), elementwise. */
    private static double[] lerpMix(double[] x, double[] last, double[] mix) {
        double[] y = new double[x.length];
        for (int i = 0; i < y.length; i++) {
            y[i] = x[i] * mix[i] + last[i] * (1 - mix[i]);
        }
        return y;
    }

    /** x + sx*m, elementwise. */
    private static double[] addMul(double[] x, double[] sx, double[] m) {
        double[] y = new double[x.length];
        for (int i = 0; i < y.length; i++) {
            y[i] = x[i] + sx[i] * m[i];
        }
        return y;
    }

    private static double[] sub(double[] a, double[] b) {
        double[] y = new double[a.length];
        for (int i = 0; i < y.length; i++) {
            y[i] = a[i] - b[i];
        }
        return y;
    }

    private static double[] add2(double[] a, double[] b) {
        if (a.length != b.length) {
            throw new IllegalArgumentException("lengths differ: " + a.length + " vs " + b.length);
        }
        double[] y = new double[a.length];
        for (int i = 0; i < y.length; i++) {
            y[i] = a[i] + b[i];
        }
        return y;
    }

    /** x += d in place. */
    private static void add(double[] x, double[] d) {
        for (int i = 0; i < x.length; i++) {
            x[i] += d[i];
        }
    }

    private static double[] mul(double[] a, double[] b) {
        if (a.length != b.length) {
            throw new IllegalArgumentException("lengths differ: " + a.length + " vs " + b.length);
        }
        double[] y = new double[a.length];
        for (int i = 0; i < y.length; i++) {
            y[i] = a[i] * b[i];
        }
        return y;
    }

    private static double sigmoid(double z) {
        return 1 / (1 + Math.exp(-z));
    }

    private static double[] sigmoid(double[] z) {
        double[] y = new double[z.length];
        for (int i = 0; i < y.length; i++) {
            y[i] = sigmoid(z[i]);
        }
        return y;
    }

    /** silu(z) = z * sigmoid(z). */
    private static double[] silu(double[] z) {
        double[] y = new double[z.length];
        for (int i = 0; i < y.length; i++) {
            y[i] = z[i] * sigmoid(z[i]);
        }
        return y;
    }

    private static double[] tanh(double[] z) {
        double[] y = new double[z.length];
        for (int i = 0; i < y.length; i++) {
            y[i] = Math.tanh(z[i]);
        }
        return y;
    }

    /** relu(z)^2. */
    private static double[] squaredRelu(double[] z) {
        double[] y = new double[z.length];
        for (int i = 0; i < y.length; i++) {
            double r = Math.max(z[i], 0);
            y[i] = r * r;
        }
        return y;
    }
}
