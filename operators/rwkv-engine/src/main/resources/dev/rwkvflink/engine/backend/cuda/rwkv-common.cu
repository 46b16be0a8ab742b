// RWKV on the GPU: the kernels every version shares, between the cuBLAS projections of one model step.
// NVRTC compiles this file followed by one version's file (rwkv7.cu, rwkv456.cu) as one program.
//
// One step advances B streams (keys) at once, each by its own number of tokens. Their tokens are packed into
// R rows: stream s owns rows [start[s], start[s] + count[s]), in order. The residual stream x is R x C fp32;
// every projection is one cuBLAS product over all R rows. Per-stream state lives in a device state pool,
// one slot of `slot_floats` floats per stream, laid out exactly as the engine's RwkvState:
//   layer l at l * layer_floats: [0, C) time-mix shift, [C, 2C) channel-mix shift, [2C, ...) WKV state H x N x N
//   (RWKV-7: S[head][value i][key j]; v5, v6: S[head][key i][value j]).
// Each kernel names the formula it implements; the CPU reference is the block classes, RwkvBlock and ChannelMix
// in dev.rwkvflink.engine.model. Statistics are accumulated in fp32 here (double on the CPU); tests state the
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

// Programmatic dependent launch (compute capability 9.0+; no-ops before): the kernels of a short step are launched
// so that each may start while the one before it still runs (CudaKernel.launchDependent). Such a kernel may first
// read what no unfinished kernel writes (its weights: prefetched into L2), then waits until the kernel before it
// has finished and its writes are visible, then lets the kernel after it start (so at most one waits ahead).
// Every kernel launched that way calls both, in this order, before it touches activations or state.
__device__ __forceinline__ void follow_previous_kernel() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Asks L2 to fetch `bytes` from p, one 128-byte line per lane of the calling warp and step (a hint: no waiting).
__device__ __forceinline__ void prefetch_l2_warp(const void* p, long long bytes, int lane) {
    const char* c = (const char*) p;
    for (long long o = (long long) lane * 128; o < bytes; o += 32 * 128) {
        asm volatile("prefetch.global.L2 [%0];" :: "l"(c + o));
    }
}

// Sum over a warp: every lane gets the total.
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v;
}

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
//   out[m][r] = xx + (prev - xx) * (mix[m] + delta[m][r])                     (time_maa / x_* form)
// delta (M blocks of R x C fp32, like out) is v6's data-dependent part of the mix; null elsewhere.
// The state's shift is written afterwards by commit_shift (other blocks may still read it), except when every
// stream has exactly one row (commit = 1, decode): then each row's block saves its own row.
// A row may be cut into gridDim.y slices of channels (few rows, decode): each slice's block computes the row's
// statistics itself and writes its own channels, so a short step is not one block's serial loop.
//                                                                                  grid (R, slices), block 256
template <typename T>
__device__ void ln_shift_mix(const float* x, const float* lnw, const float* lnb, float eps, float* pool,
                             long long slot_floats, int shift_off, const int* row_stream, const int* start,
                             const int* slot, const float* mix, int M, const float* delta, T* out,
                             long long out_stride, int C, int commit) {
    __shared__ float scratch[32];
    follow_previous_kernel();
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
    for (int i = blockIdx.y * blockDim.x + threadIdx.x; i < C; i += gridDim.y * blockDim.x) {
        float xx = (xr[i] - mean) * inv * lnw[i] + lnb[i];
        float pv = first ? saved[i] : (xp[i] - pmean) * pinv * lnw[i] + lnb[i];
        if (commit) {
            saved[i] = xx;   // every stream has one row: this thread alone reads and then writes saved[i]
        }
        float d = pv - xx;
        for (int m = 0; m < M; m++) {
            long long o = m * out_stride + (long long) r * C + i;
            float mu = mix[m * C + i] + (delta != nullptr ? delta[o] : 0.0f);
            store(out + o, xx + d * mu);
        }
    }
}

extern "C" __global__ void ln_shift_mix_f32(const float* x, const float* lnw, const float* lnb, float eps,
        float* pool, long long slot_floats, int shift_off, const int* row_stream, const int* start,
        const int* slot, const float* mix, int M, const float* delta, float* out, long long out_stride, int C,
        int commit) {
    ln_shift_mix<float>(x, lnw, lnb, eps, pool, slot_floats, shift_off, row_stream, start, slot, mix, M, delta, out,
                        out_stride, C, commit);
}

extern "C" __global__ void ln_shift_mix_bf16(const float* x, const float* lnw, const float* lnb, float eps,
        float* pool, long long slot_floats, int shift_off, const int* row_stream, const int* start,
        const int* slot, const float* mix, int M, const float* delta, bf16_t* out, long long out_stride, int C,
        int commit) {
    ln_shift_mix<bf16_t>(x, lnw, lnb, eps, pool, slot_floats, shift_off, row_stream, start, slot, mix, M, delta,
                         out, out_stride, C, commit);
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

// Asynchronous 4-byte copy global -> shared (sm_80+), and its group fences.
__device__ __forceinline__ void copy_async4(float* smem, const float* gmem) {
    unsigned int dst;
    asm volatile("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(dst) : "l"(smem));
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" :: "r"(dst), "l"(gmem) : "memory");
}
__device__ __forceinline__ void copy_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
__device__ __forceinline__ void copy_async_wait_all_but_one() { asm volatile("cp.async.wait_group 1;" ::: "memory"); }

// Squared ReLU in place on the act type: x = max(x, 0)^2 (the channel mix's activation).  grid-stride
template <typename T>
__device__ void relu_sq(T* x, long long n);

template <>
__device__ void relu_sq<float>(float* x, long long n) {
    follow_previous_kernel();
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        float v = fmaxf(x[i], 0.0f);
        x[i] = v * v;
    }
}

template <>
__device__ void relu_sq<bf16_t>(bf16_t* x, long long n) {
    follow_previous_kernel();
    // eight values per thread and 16-byte accesses; each 32-bit word holds two bf16 (low half first)
    long long n8 = n >> 3;
    uint4* x8 = (uint4*) x;
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n8; i += (long long) gridDim.x * blockDim.x) {
        uint4 u = x8[i];
        unsigned int* wds = (unsigned int*) &u;
#pragma unroll
        for (int q = 0; q < 4; q++) {
            float lo = fmaxf(__uint_as_float(wds[q] << 16), 0.0f);
            float hi = fmaxf(__uint_as_float(wds[q] & 0xffff0000u), 0.0f);
            wds[q] = (unsigned int) f32_to_bf16(lo * lo) | ((unsigned int) f32_to_bf16(hi * hi) << 16);
        }
        x8[i] = u;
    }
    for (long long i = (n8 << 3) + blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        float v = fmaxf(__uint_as_float(((unsigned int) x[i]) << 16), 0.0f);
        x[i] = f32_to_bf16(v * v);
    }
}

extern "C" __global__ void relu_sq_f32(float* x, long long n) { relu_sq<float>(x, n); }
extern "C" __global__ void relu_sq_bf16(bf16_t* x, long long n) { relu_sq<bf16_t>(x, n); }

// ---------------------------------------------------------------------------------------------------------------
// Small-batch products for decode-sized steps (R <= 8 rows), where cuBLAS launches cost more than the work:
// up to four independent problems in one launch, each Y[r][m] (+)= f(sum_k W[m][k] X[r][k]) for r < R, m < M_p,
// with W (M_p x K_p) and X (R x K_p) row-major in the act type. One warp per output m: it streams W's row with
// 16-byte loads (read once for all R rows), the R sums are reduced across the warp, lane 0 applies the epilogue:
// f by mode (0 identity, 1 tanh, 2 sigmoid, 3 squared ReLU), then either stores into Y in the act type
// (out_act = 1), stores fp32 (out_act = 0, acc = 0) or adds to fp32 Y (acc = 1, the residual).
// K_p must be a multiple of 8 (bf16) or 4 (fp32).                                     grid ceil(sum M / 4), block 128

__device__ __forceinline__ void unpack8(uint4 u, float* f) {
    f[0] = __uint_as_float(u.x << 16); f[1] = __uint_as_float(u.x & 0xffff0000u);
    f[2] = __uint_as_float(u.y << 16); f[3] = __uint_as_float(u.y & 0xffff0000u);
    f[4] = __uint_as_float(u.z << 16); f[5] = __uint_as_float(u.z & 0xffff0000u);
    f[6] = __uint_as_float(u.w << 16); f[7] = __uint_as_float(u.w & 0xffff0000u);
}

struct GemvProblem {
    const void* w;
    const void* x;
    void* y;
    int m;
    int k;
    int mode;
    int out_act;
    int acc;
};

// The end of one output of a small-batch product: the R lane sums reduced across the warp, then lane 0 applies
// the epilogue (f by mode, then a store in the act type T, an fp32 store, or an fp32 add).
template <typename T>
__device__ __forceinline__ void gemv_finish(float (&sum)[8], const GemvProblem& p, int m, int R, int lane) {
#pragma unroll
    for (int r = 0; r < 8; r++) {
        if (r < R) {                   // R is the same for the whole warp
            sum[r] = warp_sum(sum[r]);
        }
    }
    if (lane == 0) {
        for (int r = 0; r < R; r++) {
            float v = sum[r];
            if (p.mode == 1) { v = tanhf(v); } else if (p.mode == 2) { v = sigmoidf(v); }
            else if (p.mode == 3) { v = fmaxf(v, 0.0f); v = v * v; }
            long long o = (long long) r * p.m + m;
            if (p.out_act) { store((T*) p.y + o, v); }
            else if (p.acc) { ((float*) p.y)[o] += v; }
            else { ((float*) p.y)[o] = v; }
        }
    }
}

template <typename T>
__device__ void gemv_row(const GemvProblem& p, int m, int R, int lane);

template <>
__device__ void gemv_row<bf16_t>(const GemvProblem& p, int m, int R, int lane) {
    float sum[8];
#pragma unroll
    for (int r = 0; r < 8; r++) {
        sum[r] = 0.0f;
    }
    const uint4* w = (const uint4*) ((const bf16_t*) p.w + (long long) m * p.k);
    int n8 = p.k >> 3;
#pragma unroll 4
    for (int q = lane; q < n8; q += 32) {
        float wf[8];
        unpack8(w[q], wf);
#pragma unroll
        for (int r = 0; r < 8; r++) {
            if (r < R) {
                float xf[8];
                unpack8(((const uint4*) ((const bf16_t*) p.x + (long long) r * p.k))[q], xf);
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    sum[r] += wf[e] * xf[e];
                }
            }
        }
    }
    gemv_finish<bf16_t>(sum, p, m, R, lane);
}

template <>
__device__ void gemv_row<float>(const GemvProblem& p, int m, int R, int lane) {
    float sum[8];
#pragma unroll
    for (int r = 0; r < 8; r++) {
        sum[r] = 0.0f;
    }
    const float4* w = (const float4*) ((const float*) p.w + (long long) m * p.k);
    int n4 = p.k >> 2;
#pragma unroll 4
    for (int q = lane; q < n4; q += 32) {
        float4 wv = w[q];
#pragma unroll
        for (int r = 0; r < 8; r++) {
            if (r < R) {
                float4 xv = ((const float4*) ((const float*) p.x + (long long) r * p.k))[q];
                sum[r] += wv.x * xv.x + wv.y * xv.y + wv.z * xv.z + wv.w * xv.w;
            }
        }
    }
    gemv_finish<float>(sum, p, m, R, lane);
}

template <typename T>
__device__ void gemv4(int R, int count, const GemvProblem* ps) {
    int lane = threadIdx.x & 31;
    int m = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    GemvProblem p = ps[0];
    bool found = false;
#pragma unroll
    for (int i = 0; i < 4; i++) {   // constant indices: the table stays in registers
        if (!found && i < count) {
            if (m < ps[i].m) {
                p = ps[i];
                found = true;
            } else {
                m -= ps[i].m;
            }
        }
    }
    if (found) {
        prefetch_l2_warp((const T*) p.w + (long long) m * p.k, (long long) p.k * sizeof(T), lane);
    }
    follow_previous_kernel();
    if (found) {
        gemv_row<T>(p, m, R, lane);
    }
}

#define GEMV_ENTRY(NAME, T)                                                                                        \
    extern "C" __global__ void NAME(int R, int count,                                                              \
            const void* w0, const void* x0, void* y0, int m0, int k0, int mode0, int act0, int acc0,               \
            const void* w1, const void* x1, void* y1, int m1, int k1, int mode1, int act1, int acc1,               \
            const void* w2, const void* x2, void* y2, int m2, int k2, int mode2, int act2, int acc2,               \
            const void* w3, const void* x3, void* y3, int m3, int k3, int mode3, int act3, int acc3) {             \
        GemvProblem ps[4] = {{w0, x0, y0, m0, k0, mode0, act0, acc0}, {w1, x1, y1, m1, k1, mode1, act1, acc1},    \
                             {w2, x2, y2, m2, k2, mode2, act2, acc2}, {w3, x3, y3, m3, k3, mode3, act3, acc3}};   \
        gemv4<T>(R, count, ps);                                                                                    \
    }

GEMV_ENTRY(gemv4_f32, float)
GEMV_ENTRY(gemv4_bf16, bf16_t)

// hidden[s] = LayerNorm_ln_out(x of stream s's last row), in fp32 and in the act type (the head's input).
//                                                                                          grid B, block 256
template <typename T>
__device__ void ln_out_last(const float* x, const float* w, const float* b, float eps, const int* start,
                            const int* count, float* hidden, T* hidden_act, int C) {
    __shared__ float scratch[32];
    follow_previous_kernel();
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
