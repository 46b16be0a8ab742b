// RWKV-7 "Goose" on the GPU: the small kernels between the cuBLAS projections of one model step.
//
// One step advances B streams (keys) at once, each by its own number of tokens. Their tokens are packed into
// R rows: stream s owns rows [start[s], start[s] + count[s]), in order. The residual stream x is R x C fp32;
// every projection is one cuBLAS product over all R rows. Per-stream state lives in a device state pool,
// one slot of `slot_floats` floats per stream, laid out exactly as the engine's RwkvState:
//   layer l at l * layer_floats: [0, C) time-mix shift, [C, 2C) channel-mix shift, [2C, ...) WKV state H x N x N
//   (RWKV-7: S[head][value i][key j]).
// Each kernel names the formula it implements; the CPU reference is Rwkv7Block / RwkvBlock / ChannelMix in
// dev.rwkvflink.engine.model. Statistics are accumulated in fp32 here (double on the CPU); tests state the
// tolerance. Kernels write activations that feed a projection in the "act" type: fp32 or bf16 (round to nearest
// even), one extern "C" entry point per type: name_f32 / name_bf16.
//
// No headers: NVRTC compiles this file as is.

typedef unsigned short bf16_t;

__device__ __forceinline__ bf16_t f32_to_bf16(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (bf16_t) ((u >> 16) | 0x40u);  // NaN stays NaN (quiet)
    }
    u += 0x7fffu + ((u >> 16) & 1u);          // round to nearest, ties to even
    return (bf16_t) (u >> 16);
}

__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(bf16_t* p, float v) { *p = f32_to_bf16(v); }

__device__ __forceinline__ float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

// Sum over the block (any blockDim.x that is a multiple of 32, up to 1024). `scratch` holds 32 floats.
// Every thread gets the total. Safe to call repeatedly.
__device__ float block_sum(float v, float* scratch) {
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    int warp = threadIdx.x >> 5;
    int lane = threadIdx.x & 31;
    int warps = blockDim.x >> 5;
    __syncthreads();                       // scratch may still be read by a previous call
    if (lane == 0) {
        scratch[warp] = v;
    }
    __syncthreads();
    float t = lane < warps ? scratch[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) {
        t += __shfl_xor_sync(0xffffffffu, t, o);
    }
    return t;
}

// LayerNorm statistics of one row of n values: mean and 1 / sqrt(var + eps), two passes as the CPU does.
__device__ void row_stats(const float* x, int n, float eps, float* scratch, float* mean, float* inv) {
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        s += x[i];
    }
    float m = block_sum(s, scratch) / n;
    float q = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float d = x[i] - m;
        q += d * d;
    }
    float var = block_sum(q, scratch) / n;
    *mean = m;
    *inv = rsqrtf(var + eps);
}

// x[r] = LayerNorm_ln0(emb[token[r]])                                                     grid R, block 256
extern "C" __global__ void embed_ln0(const int* tokens, const float* emb, const float* w, const float* b,
                                     float* x, int C, float eps) {
    __shared__ float scratch[32];
    int r = blockIdx.x;
    const float* e = emb + (long long) tokens[r] * C;
    float mean, inv;
    row_stats(e, C, eps, scratch, &mean, &inv);
    float* y = x + (long long) r * C;
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        y[i] = (e[i] - mean) * inv * w[i] + b[i];
    }
}

// The token shift and its mixes, for M mixes at once:
//   xx = LayerNorm(x[r]);  prev = LayerNorm(x[r-1]), or the slot's saved shift for a stream's first row
//   out[m][r] = xx + (prev - xx) * mix[m]                                     (time_maa / x_* form)
// The state's shift is written afterwards by commit_shift (other blocks may still read it), except when every
// stream has exactly one row (commit = 1, decode): then each row's block saves its own row.
//                                                                                          grid R, block 256
template <typename T>
__device__ void ln_shift_mix(const float* x, const float* lnw, const float* lnb, float eps, float* pool,
                             long long slot_floats, int shift_off, const int* row_stream, const int* start,
                             const int* slot, const float* mix, int M, T* out, long long out_stride, int C,
                             int commit) {
    __shared__ float scratch[32];
    int r = blockIdx.x;
    int s = row_stream[r];
    bool first = r == start[s];
    const float* xr = x + (long long) r * C;
    float mean, inv;
    row_stats(xr, C, eps, scratch, &mean, &inv);
    float pmean = 0.0f, pinv = 0.0f;
    const float* xp = xr - C;
    if (!first) {
        row_stats(xp, C, eps, scratch, &pmean, &pinv);
    }
    float* saved = pool + (long long) slot[s] * slot_floats + shift_off;
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        float xx = (xr[i] - mean) * inv * lnw[i] + lnb[i];
        float pv = first ? saved[i] : (xp[i] - pmean) * pinv * lnw[i] + lnb[i];
        if (commit) {
            saved[i] = xx;   // every stream has one row: this thread alone reads and then writes saved[i]
        }
        float d = pv - xx;
        for (int m = 0; m < M; m++) {
            store(out + m * out_stride + (long long) r * C + i, xx + d * mix[m * C + i]);
        }
    }
}

extern "C" __global__ void ln_shift_mix_f32(const float* x, const float* lnw, const float* lnb, float eps,
        float* pool, long long slot_floats, int shift_off, const int* row_stream, const int* start,
        const int* slot, const float* mix, int M, float* out, long long out_stride, int C, int commit) {
    ln_shift_mix<float>(x, lnw, lnb, eps, pool, slot_floats, shift_off, row_stream, start, slot, mix, M, out,
                        out_stride, C, commit);
}

extern "C" __global__ void ln_shift_mix_bf16(const float* x, const float* lnw, const float* lnb, float eps,
        float* pool, long long slot_floats, int shift_off, const int* row_stream, const int* start,
        const int* slot, const float* mix, int M, bf16_t* out, long long out_stride, int C, int commit) {
    ln_shift_mix<bf16_t>(x, lnw, lnb, eps, pool, slot_floats, shift_off, row_stream, start, slot, mix, M, out,
                         out_stride, C, commit);
}

// The slot's shift becomes LayerNorm(x) of the stream's last row.                          grid B, block 256
extern "C" __global__ void commit_shift(const float* x, const float* lnw, const float* lnb, float eps, float* pool,
                                        long long slot_floats, int shift_off, const int* start, const int* count,
                                        const int* slot, int C) {
    __shared__ float scratch[32];
    int s = blockIdx.x;
    const float* xr = x + (long long) (start[s] + count[s] - 1) * C;
    float mean, inv;
    row_stats(xr, C, eps, scratch, &mean, &inv);
    float* saved = pool + (long long) slot[s] * slot_floats + shift_off;
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        saved[i] = (xr[i] - mean) * inv * lnw[i] + lnb[i];
    }
}

// Element-wise activation into the act type: mode 0 identity, 1 tanh, 2 sigmoid, 3 squared ReLU max(x, 0)^2.
//                                                                                   grid-stride, any grid
template <typename T>
__device__ void activate(const float* in, T* out, long long n, int mode) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        float v = in[i];
        if (mode == 1) {
            v = tanhf(v);
        } else if (mode == 2) {
            v = sigmoidf(v);
        } else if (mode == 3) {
            v = fmaxf(v, 0.0f);
            v = v * v;
        }
        store(out + i, v);
    }
}

extern "C" __global__ void activate_f32(const float* in, float* out, long long n, int mode) {
    activate<float>(in, out, n, mode);
}

extern "C" __global__ void activate_bf16(const float* in, bf16_t* out, long long n, int mode) {
    activate<bf16_t>(in, out, n, mode);
}

// Two sums over the block at once (blockDim.x a multiple of 32). `scratch` holds 64 floats.
__device__ void block_sum2(float* a, float* b, float* scratch) {
    float x = *a, y = *b;
    for (int o = 16; o > 0; o >>= 1) {
        x += __shfl_xor_sync(0xffffffffu, x, o);
        y += __shfl_xor_sync(0xffffffffu, y, o);
    }
    int warp = threadIdx.x >> 5;
    int lane = threadIdx.x & 31;
    int warps = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) {
        scratch[warp] = x;
        scratch[32 + warp] = y;
    }
    __syncthreads();
    x = lane < warps ? scratch[lane] : 0.0f;
    y = lane < warps ? scratch[32 + lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) {
        x += __shfl_xor_sync(0xffffffffu, x, o);
        y += __shfl_xor_sync(0xffffffffu, y, o);
    }
    *a = x;
    *b = y;
}

// The whole time mix between the LoRA products and W_o, for one head of one stream, token by token.
// Thread i owns channel c = h*N + i and row i of the head's state S (the value index), kept in registers.
// Per token, from the projections r, k, v and the LoRA outputs w_l, a_l, g, v_l:
//   w  = exp(-e^{-1/2} sigmoid(w0 + w_l))                 decay
//   a  = sigmoid(a0 + a_l)                                in-context learning rate
//   v  = v + (v_first - v) sigmoid(v0 + v_l)              layers > 0; layer 0 stores v_first = v
//   kk = normalize_head(k * k_k)                          F.normalize, floor 1e-12
//   k  = k * (1 + (a - 1) * k_a)
//   sa_i = sum_j S_ij (-kk_j);  S_ij <- S_ij w_j + sa_i (kk_j a_j) + v_i k_j;  o_i = sum_j S_ij r_j
//   y  = (GroupNorm_head(o) + (sum_j r_j k_j r_k_j) v) * g          -> act type, the input of W_o
// The next token's inputs are loaded before this token's arithmetic, so memory latency is off the sequential
// path. GroupNorm's variance is E[o^2] - E[o]^2 (one reduction for both sums).          grid (H, B), block N
template <int N, typename T>
__device__ void rwkv7_time_mix(const float* r, const float* k, const float* v, const float* w_l, const float* a_l,
                               const float* g, const float* v_l, float* v_first, const float* w0, const float* a0,
                               const float* v0, const float* k_k, const float* k_a, const float* r_k,
                               const float* lnw, const float* lnb, float gn_eps, int first_layer, T* y,
                               float* pool, long long slot_floats, int wkv_off, const int* start, const int* count,
                               const int* slot, int C) {
    __shared__ float rs[N], ws[N], ks[N], kks[N], bs[N];
    __shared__ float scratch[64];
    int h = blockIdx.x;
    int s = blockIdx.y;
    int i = threadIdx.x;
    int c = h * N + i;
    float* S = pool + (long long) slot[s] * slot_floats + wkv_off + (long long) h * N * N + (long long) i * N;
    float row[N];
#pragma unroll
    for (int j = 0; j < N; j++) {
        row[j] = S[j];
    }
    const float cw0 = w0[c], ca0 = a0[c], ckk = k_k[c], cka = k_a[c], crk = r_k[c], gw = lnw[c], gb = lnb[c];
    const float cv0 = first_layer ? 0.0f : v0[c];
    long long idx = (long long) start[s] * C + c;
    int T_ = count[s];
    float nr = r[idx], nk = k[idx], nv = v[idx], nwl = w_l[idx], nal = a_l[idx], ng = g[idx];
    float nvl = first_layer ? 0.0f : v_l[idx];
    float nvf = first_layer ? 0.0f : v_first[idx];
    for (int t = 0; t < T_; t++, idx += C) {
        float rt = nr, kt = nk, vt = nv, wlt = nwl, alt = nal, gt = ng, vlt = nvl, vft = nvf;
        if (t + 1 < T_) {
            long long nx = idx + C;
            nr = r[nx]; nk = k[nx]; nv = v[nx]; nwl = w_l[nx]; nal = a_l[nx]; ng = g[nx];
            if (!first_layer) {
                nvl = v_l[nx];
                nvf = v_first[nx];
            }
        }
        float wt = expf(-0.60653065971263342f * sigmoidf(cw0 + wlt));
        float at = sigmoidf(ca0 + alt);
        if (first_layer) {
            v_first[idx] = vt;
        } else {
            vt = vt + (vft - vt) * sigmoidf(cv0 + vlt);
        }
        float e = kt * ckk;
        float kn = kt * (1.0f + (at - 1.0f) * cka);
        float norm2 = e * e;
        float bonus = rt * kn * crk;
        block_sum2(&norm2, &bonus, scratch);   // also: every thread is done with the previous token's vectors
        float kkt = e / fmaxf(sqrtf(norm2), 1e-12f);
        rs[i] = rt;
        ws[i] = wt;
        ks[i] = kn;
        kks[i] = kkt;
        bs[i] = kkt * at;
        __syncthreads();
        // four partial sums each: short dependency chains on the sequential path
        float sa0 = 0.0f, sa1 = 0.0f, sa2 = 0.0f, sa3 = 0.0f;
#pragma unroll
        for (int j = 0; j < N; j += 4) {
            sa0 -= row[j] * kks[j];
            sa1 -= row[j + 1] * kks[j + 1];
            sa2 -= row[j + 2] * kks[j + 2];
            sa3 -= row[j + 3] * kks[j + 3];
        }
        float sa = (sa0 + sa1) + (sa2 + sa3);
        float o0 = 0.0f, o1 = 0.0f, o2 = 0.0f, o3 = 0.0f;
#pragma unroll
        for (int j = 0; j < N; j += 4) {
            row[j] = row[j] * ws[j] + sa * bs[j] + vt * ks[j];
            row[j + 1] = row[j + 1] * ws[j + 1] + sa * bs[j + 1] + vt * ks[j + 1];
            row[j + 2] = row[j + 2] * ws[j + 2] + sa * bs[j + 2] + vt * ks[j + 2];
            row[j + 3] = row[j + 3] * ws[j + 3] + sa * bs[j + 3] + vt * ks[j + 3];
            o0 += row[j] * rs[j];
            o1 += row[j + 1] * rs[j + 1];
            o2 += row[j + 2] * rs[j + 2];
            o3 += row[j + 3] * rs[j + 3];
        }
        float o = (o0 + o1) + (o2 + o3);
        float sum = o;
        float sq = o * o;
        block_sum2(&sum, &sq, scratch);
        float mean = sum / N;
        float var = fmaxf(sq / N - mean * mean, 0.0f);
        float gn = (o - mean) * rsqrtf(var + gn_eps) * gw + gb;
        store(y + idx, (gn + bonus * vt) * gt);
    }
#pragma unroll
    for (int j = 0; j < N; j++) {
        S[j] = row[j];
    }
}

#define TIME_MIX_ENTRY(NAME, N, T)                                                                                 \
    extern "C" __global__ void NAME(const float* r, const float* k, const float* v, const float* w_l,             \
            const float* a_l, const float* g, const float* v_l, float* v_first, const float* w0, const float* a0,  \
            const float* v0, const float* k_k, const float* k_a, const float* r_k, const float* lnw,              \
            const float* lnb, float gn_eps, int first_layer, T* y, float* pool, long long slot_floats,            \
            int wkv_off, const int* start, const int* count, const int* slot, int C) {                            \
        rwkv7_time_mix<N, T>(r, k, v, w_l, a_l, g, v_l, v_first, w0, a0, v0, k_k, k_a, r_k, lnw, lnb, gn_eps,      \
                             first_layer, y, pool, slot_floats, wkv_off, start, count, slot, C);                   \
    }

TIME_MIX_ENTRY(rwkv7_time_mix_32_f32, 32, float)
TIME_MIX_ENTRY(rwkv7_time_mix_64_f32, 64, float)
TIME_MIX_ENTRY(rwkv7_time_mix_32_bf16, 32, bf16_t)
TIME_MIX_ENTRY(rwkv7_time_mix_64_bf16, 64, bf16_t)

// Squared ReLU in place on the act type: x = max(x, 0)^2 (the channel mix's activation).  grid-stride
template <typename T>
__device__ void relu_sq(T* x, long long n);

template <>
__device__ void relu_sq<float>(float* x, long long n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        float v = fmaxf(x[i], 0.0f);
        x[i] = v * v;
    }
}

template <>
__device__ void relu_sq<bf16_t>(bf16_t* x, long long n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        float v = fmaxf(__uint_as_float(((unsigned int) x[i]) << 16), 0.0f);
        x[i] = f32_to_bf16(v * v);
    }
}

extern "C" __global__ void relu_sq_f32(float* x, long long n) { relu_sq<float>(x, n); }
extern "C" __global__ void relu_sq_bf16(bf16_t* x, long long n) { relu_sq<bf16_t>(x, n); }

// hidden[s] = LayerNorm_ln_out(x of stream s's last row), in fp32 and in the act type (the head's input).
//                                                                                          grid B, block 256
template <typename T>
__device__ void ln_out_last(const float* x, const float* w, const float* b, float eps, const int* start,
                            const int* count, float* hidden, T* hidden_act, int C) {
    __shared__ float scratch[32];
    int s = blockIdx.x;
    const float* xr = x + (long long) (start[s] + count[s] - 1) * C;
    float mean, inv;
    row_stats(xr, C, eps, scratch, &mean, &inv);
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        float y = (xr[i] - mean) * inv * w[i] + b[i];
        hidden[(long long) s * C + i] = y;
        store(hidden_act + (long long) s * C + i, y);
    }
}

extern "C" __global__ void ln_out_last_f32(const float* x, const float* w, const float* b, float eps,
        const int* start, const int* count, float* hidden, float* hidden_act, int C) {
    ln_out_last<float>(x, w, b, eps, start, count, hidden, hidden_act, C);
}

extern "C" __global__ void ln_out_last_bf16(const float* x, const float* w, const float* b, float eps,
        const int* start, const int* count, float* hidden, bf16_t* hidden_act, int C) {
    ln_out_last<bf16_t>(x, w, b, eps, start, count, hidden, hidden_act, C);
}

// Converts n fp32 values to the act type (weights uploaded in fp32, stored in bf16).      grid-stride
extern "C" __global__ void convert_bf16(const float* in, bf16_t* out, long long n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        out[i] = f32_to_bf16(in[i]);
    }
}

// Random weights drawn on the device for benchmarks of big shapes (no host generation, no upload):
// value i of a tensor is a function of (seed, i) only. A SplitMix64 hash gives two uniforms, Box-Muller a
// normal deviate. mode 0: normal(0, scale) -> out as fp32; mode 1: uniform(lo, hi) -> fp32.      grid-stride
__device__ __forceinline__ unsigned long long splitmix64(unsigned long long z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

extern "C" __global__ void random_fill(float* out, long long n, unsigned long long seed, int mode, float p, float q) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        unsigned long long h = splitmix64(seed ^ splitmix64((unsigned long long) i));
        float u1 = ((h >> 40) + 1) * (1.0f / 16777217.0f);        // (0, 1]
        float u2 = ((h >> 16) & 0xffffffull) * (1.0f / 16777216.0f); // [0, 1)
        if (mode == 0) {
            out[i] = sqrtf(-2.0f * logf(u1)) * cosf(6.283185307179586f * u2) * p;
        } else {
            out[i] = p + (q - p) * u2;
        }
    }
}
