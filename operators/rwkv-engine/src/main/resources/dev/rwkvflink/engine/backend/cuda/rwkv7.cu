// RWKV-7 "Goose": the time mix (compiled after rwkv-common.cu). CPU reference: Rwkv7Block.

// One token of the delta rule for one state row (row i, the value index) held in registers:
//   sa = sum_j row_j (-kk_j);  row_j <- row_j w_j + sa b_j + v k_j;  returns sum_j row_j r_j (after the update)
// Four partial sums each (short dependency chains on the sequential path); 16-byte reads of the token's vectors.
template <int N>
__device__ __forceinline__ float delta_rule_step(float (&row)[N], const float* kks, const float* ws, const float* bs,
                                                 const float* ks, const float* rs, float vt) {
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
    return (o0 + o1) + (o2 + o3);
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
        float o = delta_rule_step<N>(row, kks, ws, bs, ks, rs, vt);
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
            float vt = buf[p][5][t][i];
            out[base + (long long) (c * CH + t) * C] = delta_rule_step<N>(row, buf[p][3][t], buf[p][1][t],
                                                                          buf[p][4][t], buf[p][2][t], buf[p][0][t], vt);
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


// ---------------------------------------------------------------------------------------------------------------
// The chunked recurrence for long sequences of few streams. Tokens are cut into chunks of up to L = 32. Within a
// chunk, with G_t = diag(w_t) - kk_t b_t^T, each state row evolves as s_t = s_{t-1} G_t + v_t k_t^T, so
//   S_end   = S_start P + V^T K~                     P = G_1 ... G_L,  K~_tau = k_tau^T G_{tau+1} ... G_L
//   out_t   = S_start Z_t + sum_{tau <= t} A_{t,tau} v_tau     Z_t = G_1 ... G_t r_t,  A_{t,tau} = K~-like k_tau^T G_{tau+1..t} r_t
// P, K~, Z and A depend on the chunk's tokens only, so all chunks compute them at once (phase 1); a short scan over
// chunks carries the state (phase 2); then all chunks' outputs come at once (phase 3). Phase 1 runs the token
// recurrence on N + L "virtual rows": rows of the identity (giving P and Z) and, for each tau, a row that is
// zero until token tau adds k_tau (giving K~ and A).
// Per (chunk, head) scratch: P (N x N), K~ (L x N), Z (L x N), A (L x L), S_start (N x N) floats.
#define CHUNK_L 32

template <int N>
__device__ __forceinline__ long long chunk_scratch(int chunk, int h, int heads) {
    return ((long long) chunk * heads + h) * (2LL * N * N + 2LL * CHUNK_L * N + CHUNK_L * CHUNK_L);
}

// Phase 1.                                                              grid (H, chunks), block N + L
template <int N>
__device__ void rwkv7_chunk_local(const float* r, const float* w, const float* k, const float* kk, const float* b,
                                  const int* chunk_row0, const int* chunk_len, float* scratch, int C) {
    constexpr int L = CHUNK_L;
    __shared__ __align__(16) float rs[N], ws[N], ks[N], kks[N], bs[N];
    int h = blockIdx.x;
    int c = blockIdx.y;
    int q = threadIdx.x;                      // q < N: identity row q; else the row of token tau = q - N
    int len = chunk_len[c];
    long long row0 = chunk_row0[c];
    float* base = scratch + chunk_scratch<N>(c, h, gridDim.x);
    float* P = base;
    float* Kt = P + N * N;
    float* Z = Kt + L * N;
    float* A = Z + L * N;
    float row[N];
#pragma unroll
    for (int j = 0; j < N; j++) {
        row[j] = (q < N && j == q) ? 1.0f : 0.0f;
    }
    int tau = q - N;
    for (int t = 0; t < len; t++) {
        long long idx = (row0 + t) * C + h * N;
        __syncthreads();              // everyone is done with the previous token's vectors
        if (q < N) {
            rs[q] = r[idx + q];
            ws[q] = w[idx + q];
            ks[q] = k[idx + q];
            kks[q] = kk[idx + q];
            bs[q] = b[idx + q];
        }
        __syncthreads();
        float vt = (q >= N && t == tau) ? 1.0f : 0.0f;
        float o = delta_rule_step<N>(row, kks, ws, bs, ks, rs, vt);
        if (q < N) {
            Z[t * N + q] = o;
        } else {
            A[t * L + tau] = o;        // zero for t < tau: the row is still zero
        }
    }
    float* dst = q < N ? P + q * N : Kt + tau * N;
#pragma unroll
    for (int j = 0; j < N; j++) {
        dst[j] = row[j];
    }
}

// Phase 2: per (stream, head), the state S (N x N, in shared memory, rows padded by one float against bank
// conflicts) carried across the stream's chunks: for each chunk in order, save S as the chunk's S_start, then
// S <- S P + V^T K~. Four threads per row: thread (i, q) computes the columns j = 4 jj + q of row i (consecutive
// threads read consecutive columns of P and K~).                                       grid (H, B), block 4 N
template <int N>
__device__ void rwkv7_chunk_state(const float* v, float* pool, long long slot_floats, int wkv_off, const int* slot,
                                  const int* stream_chunk0, const int* stream_chunks, const int* chunk_row0,
                                  const int* chunk_len, float* scratch, int C) {
    constexpr int L = CHUNK_L;
    constexpr int J = N / 4;
    __shared__ float Ss[N * (N + 1)];
    __shared__ __align__(16) float Ps[N * N];
    __shared__ __align__(16) float Ks[L * N];
    int h = blockIdx.x;
    int s = blockIdx.y;
    int tid = threadIdx.x;
    int i = tid >> 2;
    int q = tid & 3;
    float* S = pool + (long long) slot[s] * slot_floats + wkv_off + (long long) h * N * N;
    for (int e = tid; e < N * N; e += 4 * N) {
        Ss[(e / N) * (N + 1) + e % N] = S[e];
    }
    int c0 = stream_chunk0[s];
    int n = stream_chunks[s];
    for (int c = c0; c < c0 + n; c++) {
        float* base = scratch + chunk_scratch<N>(c, h, gridDim.x);
        const float* P = base;
        const float* Kt = base + N * N;
        float* Sstart = base + N * N + 2 * L * N + L * L;
        __syncthreads();              // S is complete; the previous chunk's P and K~ are no longer read
        // 16-byte loads, all issued before the first store: one memory latency per chunk, not one per element
        constexpr int PV = N * N / 4 / (4 * N);   // float4s of P per thread (N / 16)
        constexpr int KV = L * N / 4 / (4 * N);   // float4s of K~ per thread (L / 16)
        float4 pv[PV], kv[KV];
#pragma unroll
        for (int u = 0; u < PV; u++) {
            pv[u] = ((const float4*) P)[tid + u * 4 * N];
        }
#pragma unroll
        for (int u = 0; u < KV; u++) {
            kv[u] = ((const float4*) Kt)[tid + u * 4 * N];
        }
#pragma unroll
        for (int u = 0; u < PV; u++) {
            int e = 4 * (tid + u * 4 * N);
            const float* sr = &Ss[(e / N) * (N + 1) + e % N];
            ((float4*) Sstart)[tid + u * 4 * N] = make_float4(sr[0], sr[1], sr[2], sr[3]);
            ((float4*) Ps)[tid + u * 4 * N] = pv[u];
        }
#pragma unroll
        for (int u = 0; u < KV; u++) {
            ((float4*) Ks)[tid + u * 4 * N] = kv[u];
        }
        int len = chunk_len[c];
        long long vrow = (long long) chunk_row0[c] * C + h * N + i;
        float vv[L];                  // this row's values of the chunk's tokens, all loads in flight at once
#pragma unroll
        for (int t = 0; t < L; t++) {
            vv[t] = t < len ? v[vrow + (long long) t * C] : 0.0f;
        }
        __syncthreads();
        float acc[J];
#pragma unroll
        for (int jj = 0; jj < J; jj++) {
            acc[jj] = 0.0f;
        }
        const float* srow = &Ss[i * (N + 1)];
#pragma unroll 8
        for (int m = 0; m < N; m++) {
            float sm = srow[m];
#pragma unroll
            for (int jj = 0; jj < J; jj++) {
                acc[jj] += sm * Ps[m * N + 4 * jj + q];
            }
        }
#pragma unroll
        for (int t = 0; t < L; t++) {  // rows of K~ past the chunk's end are zero, as are their vv
            float vt = vv[t];
#pragma unroll
            for (int jj = 0; jj < J; jj++) {
                acc[jj] += vt * Ks[t * N + 4 * jj + q];
            }
        }
        __syncthreads();              // every thread has read the old S
#pragma unroll
        for (int jj = 0; jj < J; jj++) {
            Ss[i * (N + 1) + 4 * jj + q] = acc[jj];
        }
    }
    __syncthreads();
    for (int e = tid; e < N * N; e += 4 * N) {
        S[e] = Ss[(e / N) * (N + 1) + e % N];
    }
}

// Phase 3: out_t,i = sum_j S_start[i][j] Z_t[j] + sum_{tau <= t} A[t][tau] v_tau,i.     grid (H, chunks), block N
template <int N>
__device__ void rwkv7_chunk_out(const float* v, const int* chunk_row0, const int* chunk_len, const float* scratch,
                                float* out, int C) {
    constexpr int L = CHUNK_L;
    __shared__ __align__(16) float Zs[L * N];
    __shared__ float As[L * L];
    int h = blockIdx.x;
    int c = blockIdx.y;
    int i = threadIdx.x;
    const float* base = scratch + chunk_scratch<N>(c, h, gridDim.x);
    const float* Z = base + N * N + L * N;
    const float* A = Z + L * N;
    const float* Sstart = A + L * L;
    for (int e = i; e < L * N; e += N) {
        Zs[e] = Z[e];
    }
    for (int e = i; e < L * L; e += N) {
        As[e] = A[e];
    }
    float srow[N];
#pragma unroll
    for (int j = 0; j < N; j++) {
        srow[j] = Sstart[i * N + j];
    }
    int len = chunk_len[c];
    long long vrow = (long long) chunk_row0[c] * C + h * N + i;
    float vv[L];
#pragma unroll
    for (int t = 0; t < L; t++) {
        vv[t] = t < len ? v[vrow + (long long) t * C] : 0.0f;
    }
    __syncthreads();
    for (int t = 0; t < len; t++) {
        float o0 = 0.0f, o1 = 0.0f, o2 = 0.0f, o3 = 0.0f;
#pragma unroll
        for (int j = 0; j < N; j += 4) {
            float4 z = *(const float4*) &Zs[t * N + j];
            o0 += srow[j] * z.x;
            o1 += srow[j + 1] * z.y;
            o2 += srow[j + 2] * z.z;
            o3 += srow[j + 3] * z.w;
        }
        float o = (o0 + o1) + (o2 + o3);
#pragma unroll
        for (int tau = 0; tau < L; tau++) {
            if (tau <= t) {
                o += As[t * L + tau] * vv[tau];
            }
        }
        out[vrow + (long long) t * C] = o;
    }
}

#define CHUNK_ENTRIES(N)                                                                                           \
    extern "C" __global__ void rwkv7_chunk_local_##N(const float* r, const float* w, const float* k,               \
            const float* kk, const float* b, const int* chunk_row0, const int* chunk_len, float* scratch, int C) { \
        rwkv7_chunk_local<N>(r, w, k, kk, b, chunk_row0, chunk_len, scratch, C);                                  \
    }                                                                                                              \
    extern "C" __global__ void rwkv7_chunk_state_##N(const float* v, float* pool, long long slot_floats,          \
            int wkv_off, const int* slot, const int* stream_chunk0, const int* stream_chunks,                     \
            const int* chunk_row0, const int* chunk_len, float* scratch, int C) {                                 \
        rwkv7_chunk_state<N>(v, pool, slot_floats, wkv_off, slot, stream_chunk0, stream_chunks, chunk_row0,       \
                             chunk_len, scratch, C);                                                               \
    }                                                                                                              \
    extern "C" __global__ void rwkv7_chunk_out_##N(const float* v, const int* chunk_row0, const int* chunk_len,   \
            const float* scratch, float* out, int C) {                                                             \
        rwkv7_chunk_out<N>(v, chunk_row0, chunk_len, scratch, out, C);                                            \
    }

CHUNK_ENTRIES(32)
CHUNK_ENTRIES(64)
