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
    __shared__ __align__(16) float rs[N];
    __shared__ __align__(16) float ws[N];
    __shared__ __align__(16) float ks[N];
    __shared__ __align__(16) float kks[N];
    __shared__ __align__(16) float bs[N];
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
        // four partial sums each (short dependency chains on the sequential path); 16-byte shared loads
        float sa0 = 0.0f, sa1 = 0.0f, sa2 = 0.0f, sa3 = 0.0f;
#pragma unroll
        for (int j = 0; j < N; j += 4) {
            float4 q = *(const float4*) &kks[j];
            sa0 -= row[j] * q.x;
            sa1 -= row[j + 1] * q.y;
            sa2 -= row[j + 2] * q.z;
            sa3 -= row[j + 3] * q.w;
        }
        float sa = (sa0 + sa1) + (sa2 + sa3);
        float o0 = 0.0f, o1 = 0.0f, o2 = 0.0f, o3 = 0.0f;
#pragma unroll
        for (int j = 0; j < N; j += 4) {
            float4 wq = *(const float4*) &ws[j];
            float4 bq = *(const float4*) &bs[j];
            float4 kq = *(const float4*) &ks[j];
            float4 rq = *(const float4*) &rs[j];
            row[j] = row[j] * wq.x + sa * bq.x + vt * kq.x;
            row[j + 1] = row[j + 1] * wq.y + sa * bq.y + vt * kq.y;
            row[j + 2] = row[j + 2] * wq.z + sa * bq.z + vt * kq.z;
            row[j + 3] = row[j + 3] * wq.w + sa * bq.w + vt * kq.w;
            o0 += row[j] * rq.x;
            o1 += row[j + 1] * rq.y;
            o2 += row[j + 2] * rq.z;
            o3 += row[j + 3] * rq.w;
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

// ---------------------------------------------------------------------------------------------------------------
// The same time mix in three kernels, for steps of few streams (a long prefill): the per-channel work and the
// output's GroupNorm run in parallel over all rows, and only the recurrence itself is scanned token by token.

// Per channel of one head of one row: decay, learning rate, value residual, kk, k (formulas as in
// rwkv7_time_mix). In place: w_l -> w, a_l -> b = kk * a, k -> k * (1 + (a - 1) k_a), v -> mixed v;
// kk written.                                                                            grid (H, R), block N
extern "C" __global__ void rwkv7_prep(float* w, float* a, float* k, float* kk, float* v, float* v_first,
                                      const float* v_lora, const float* w0, const float* a0, const float* v0,
                                      const float* k_k, const float* k_a, int first_layer, int C, int N) {
    __shared__ float scratch[32];
    int c = blockIdx.x * N + threadIdx.x;
    long long j = (long long) blockIdx.y * C + c;
    float wj = expf(-0.60653065971263342f * sigmoidf(w0[c] + w[j]));
    float aj = sigmoidf(a0[c] + a[j]);
    float vj = v[j];
    if (first_layer) {
        v_first[j] = vj;
    } else {
        vj = vj + (v_first[j] - vj) * sigmoidf(v0[c] + v_lora[j]);
    }
    float kj = k[j];
    float e = kj * k_k[c];
    float norm = sqrtf(block_sum(e * e, scratch));
    float kkj = e / fmaxf(norm, 1e-12f);
    kk[j] = kkj;
    k[j] = kj * (1.0f + (aj - 1.0f) * k_a[c]);
    w[j] = wj;
    a[j] = kkj * aj;
    v[j] = vj;
}

// Asynchronous 4-byte copy global -> shared (sm_80+), and its group fences.
__device__ __forceinline__ void copy_async4(float* smem, const float* gmem) {
    unsigned int dst;
    asm volatile("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(dst) : "l"(smem));
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" :: "r"(dst), "l"(gmem) : "memory");
}
__device__ __forceinline__ void copy_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
__device__ __forceinline__ void copy_async_wait_all_but_one() { asm volatile("cp.async.wait_group 1;" ::: "memory"); }

// The recurrence alone, one head of one stream per block, thread i owning row i of S:
//   sa_i = sum_j S_ij (-kk_j);  S_ij <- S_ij w_j + sa_i b_j + v_i k_j;  out_i = sum_j S_ij r_j
// Inputs arrive in chunks of CH tokens, copied asynchronously into one of two shared buffers while the other
// chunk is scanned: memory latency is paid once per chunk, and a token costs only its arithmetic (no barrier
// inside a chunk).                                                                         grid (H, B), block N
template <int N>
__device__ void rwkv7_scan(const float* r, const float* w, const float* k, const float* kk, const float* b,
                           const float* v, float* out, float* pool, long long slot_floats, int wkv_off,
                           const int* start, const int* count, const int* slot, int C) {
    constexpr int CH = 512 / N;                       // 8 tokens for N = 64: 2 x 6 x 8 x 64 floats = 24 KiB
    __shared__ __align__(16) float buf[2][6][CH][N];  // r, w, k, kk, b, v
    int h = blockIdx.x;
    int s = blockIdx.y;
    int i = threadIdx.x;
    float* S = pool + (long long) slot[s] * slot_floats + wkv_off + (long long) h * N * N + (long long) i * N;
    float row[N];
#pragma unroll
    for (int j = 0; j < N; j++) {
        row[j] = S[j];
    }
    long long base = (long long) start[s] * C + h * N + i;
    int T_ = count[s];
    int chunks = (T_ + CH - 1) / CH;
    const float* src[6] = {r, w, k, kk, b, v};
    // chunk 0
    for (int t = 0; t < CH && t < T_; t++) {
#pragma unroll
        for (int q = 0; q < 6; q++) {
            copy_async4(&buf[0][q][t][i], src[q] + base + (long long) t * C);
        }
    }
    copy_async_commit();
    for (int c = 0; c < chunks; c++) {
        int p = c & 1;
        int first = (c + 1) * CH;
        for (int t = 0; t < CH && first + t < T_; t++) {   // the next chunk, into the other buffer
#pragma unroll
            for (int q = 0; q < 6; q++) {
                copy_async4(&buf[1 - p][q][t][i], src[q] + base + (long long) (first + t) * C);
            }
        }
        copy_async_commit();
        copy_async_wait_all_but_one();  // this thread's copies of chunk c have landed
        __syncthreads();                // ... and everyone else's
        int n = min(CH, T_ - c * CH);
        for (int t = 0; t < n; t++) {
            const float* kks = buf[p][3][t];
            float sa0 = 0.0f, sa1 = 0.0f, sa2 = 0.0f, sa3 = 0.0f;
#pragma unroll
            for (int j = 0; j < N; j += 4) {
                float4 q = *(const float4*) &kks[j];
                sa0 -= row[j] * q.x;
                sa1 -= row[j + 1] * q.y;
                sa2 -= row[j + 2] * q.z;
                sa3 -= row[j + 3] * q.w;
            }
            float sa = (sa0 + sa1) + (sa2 + sa3);
            float vt = buf[p][5][t][i];
            const float* rs = buf[p][0][t];
            const float* ws = buf[p][1][t];
            const float* ks = buf[p][2][t];
            const float* bs = buf[p][4][t];
            float o0 = 0.0f, o1 = 0.0f, o2 = 0.0f, o3 = 0.0f;
#pragma unroll
            for (int j = 0; j < N; j += 4) {
                float4 wq = *(const float4*) &ws[j];
                float4 bq = *(const float4*) &bs[j];
                float4 kq = *(const float4*) &ks[j];
                float4 rq = *(const float4*) &rs[j];
                row[j] = row[j] * wq.x + sa * bq.x + vt * kq.x;
                row[j + 1] = row[j + 1] * wq.y + sa * bq.y + vt * kq.y;
                row[j + 2] = row[j + 2] * wq.z + sa * bq.z + vt * kq.z;
                row[j + 3] = row[j + 3] * wq.w + sa * bq.w + vt * kq.w;
                o0 += row[j] * rq.x;
                o1 += row[j + 1] * rq.y;
                o2 += row[j + 2] * rq.z;
                o3 += row[j + 3] * rq.w;
            }
            out[base + (long long) (c * CH + t) * C] = (o0 + o1) + (o2 + o3);
        }
        __syncthreads();                // buffer p is refilled by the next iteration's copies
    }
#pragma unroll
    for (int j = 0; j < N; j++) {
        S[j] = row[j];
    }
}

extern "C" __global__ void rwkv7_scan_32(const float* r, const float* w, const float* k, const float* kk,
        const float* b, const float* v, float* out, float* pool, long long slot_floats, int wkv_off,
        const int* start, const int* count, const int* slot, int C) {
    rwkv7_scan<32>(r, w, k, kk, b, v, out, pool, slot_floats, wkv_off, start, count, slot, C);
}

extern "C" __global__ void rwkv7_scan_64(const float* r, const float* w, const float* k, const float* kk,
        const float* b, const float* v, float* out, float* pool, long long slot_floats, int wkv_off,
        const int* start, const int* count, const int* slot, int C) {
    rwkv7_scan<64>(r, w, k, kk, b, v, out, pool, slot_floats, wkv_off, start, count, slot, C);
}

// Per head of one row: y = (GroupNorm(out) + (sum_j r_j k_j r_k_j) v) * g, into the act type for W_o.
//                                                                                        grid (H, R), block N
template <typename T>
__device__ void rwkv7_gate(const float* out, const float* r, const float* k, const float* v, const float* g,
                           const float* r_k, const float* lnw, const float* lnb, float eps, T* y, int C, int N) {
    __shared__ float scratch[64];
    int c = blockIdx.x * N + threadIdx.x;
    long long j = (long long) blockIdx.y * C + c;
    float o = out[j];
    float sum = o;
    float bonus = r[j] * k[j] * r_k[c];
    block_sum2(&sum, &bonus, scratch);
    float mean = sum / N;
    float d = o - mean;
    float var = block_sum(d * d, scratch) / N;
    float gn = d * rsqrtf(var + eps) * lnw[c] + lnb[c];
    store(y + j, (gn + bonus * v[j]) * g[j]);
}

extern "C" __global__ void rwkv7_gate_f32(const float* out, const float* r, const float* k, const float* v,
        const float* g, const float* r_k, const float* lnw, const float* lnb, float eps, float* y, int C, int N) {
    rwkv7_gate<float>(out, r, k, v, g, r_k, lnw, lnb, eps, y, C, N);
}

extern "C" __global__ void rwkv7_gate_bf16(const float* out, const float* r, const float* k, const float* v,
        const float* g, const float* r_k, const float* lnw, const float* lnb, float eps, bf16_t* y, int C, int N) {
    rwkv7_gate<bf16_t>(out, r, k, v, g, r_k, lnw, lnb, eps, y, C, N);
}

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
#pragma unroll
    for (int r = 0; r < 8; r++) {
        for (int o = 16; o > 0; o >>= 1) {
            sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], o);
        }
    }
    if (lane == 0) {
        for (int r = 0; r < R; r++) {
            float v = sum[r];
            if (p.mode == 1) { v = tanhf(v); } else if (p.mode == 2) { v = sigmoidf(v); }
            else if (p.mode == 3) { v = fmaxf(v, 0.0f); v = v * v; }
            long long o = (long long) r * p.m + m;
            if (p.out_act) { ((bf16_t*) p.y)[o] = f32_to_bf16(v); }
            else if (p.acc) { ((float*) p.y)[o] += v; }
            else { ((float*) p.y)[o] = v; }
        }
    }
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
#pragma unroll
    for (int r = 0; r < 8; r++) {
        for (int o = 16; o > 0; o >>= 1) {
            sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], o);
        }
    }
    if (lane == 0) {
        for (int r = 0; r < R; r++) {
            float v = sum[r];
            if (p.mode == 1) { v = tanhf(v); } else if (p.mode == 2) { v = sigmoidf(v); }
            else if (p.mode == 3) { v = fmaxf(v, 0.0f); v = v * v; }
            long long o = (long long) r * p.m + m;
            if (p.acc) { ((float*) p.y)[o] += v; } else { ((float*) p.y)[o] = v; }
        }
    }
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
