// RWKV-7 "Goose": the time mix (compiled after rwkv-common.cu). CPU reference: Rwkv7Block.

// The per-channel formulas of the time mix, one place for each (the CPU reference: Rwkv7Block).
// Decay w = exp(-e^{-1/2} sigmoid(w0 + w_l)).
__device__ __forceinline__ float decay(float w0, float w_l) {
    return expf(-0.60653065971263342f * sigmoidf(w0 + w_l));
}

// Value residual (layers > 0): v + (v_first - v) sigmoid(v0 + v_l).
__device__ __forceinline__ float value_residual(float v, float v_first, float v0, float v_l) {
    return v + (v_first - v) * sigmoidf(v0 + v_l);
}

// The key the state takes in: k (1 + (a - 1) k_a), a the in-context learning rate.
__device__ __forceinline__ float key_scaled(float k, float a, float k_a) {
    return k * (1.0f + (a - 1.0f) * k_a);
}

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
        float wt = decay(cw0, wlt);
        float at = sigmoidf(ca0 + alt);
        if (first_layer) {
            v_first[idx] = vt;
        } else {
            vt = value_residual(vt, vft, cv0, vlt);
        }
        float e = kt * ckk;
        float kn = key_scaled(kt, at, cka);
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

// The same fused time mix for steps where every stream has exactly one token (decode). There the head's state is
// read and written once per step, so its 16 KiB move in 16-byte pieces over 4 N threads: thread (i, q) holds
// columns [q N / 4, (q + 1) N / 4) of row i, and the row's sums are reduced over its 4 threads (shuffles).
// Threads t < N first compute channel t's per-channel values, as rwkv7_time_mix does.   grid (H, B), block 4 N
template <int N, typename T>
__device__ void rwkv7_time_mix_one(const float* r, const float* k, const float* v, const float* w_l,
                                   const float* a_l, const float* g, const float* v_l, float* v_first,
                                   const float* w0, const float* a0, const float* v0, const float* k_k,
                                   const float* k_a, const float* r_k, const float* lnw, const float* lnb,
                                   float gn_eps, int first_layer, T* y, float* pool, long long slot_floats,
                                   int wkv_off, const int* start, const int* slot, int C) {
    constexpr int J = N / 4;                  // columns per thread
    __shared__ __align__(16) float rs[N];
    __shared__ __align__(16) float ws[N];
    __shared__ __align__(16) float ks[N];
    __shared__ __align__(16) float kks[N];
    __shared__ __align__(16) float bs[N];
    __shared__ float vs[N];
    __shared__ float scratch[64];
    follow_previous_kernel();
    int h = blockIdx.x;
    int s = blockIdx.y;
    int tid = threadIdx.x;
    int i = tid >> 2;
    int q = tid & 3;
    float4* S = (float4*) (pool + (long long) slot[s] * slot_floats + wkv_off + (long long) h * N * N
                           + (long long) i * N + q * J);
    float4 st[J / 4];
#pragma unroll
    for (int u = 0; u < J / 4; u++) {
        st[u] = S[u];
    }
    long long idx = (long long) start[s] * C + h * N;
    float norm2 = 0.0f, bonus = 0.0f, e = 0.0f, rt = 0.0f, wt = 0.0f, kn = 0.0f, at = 0.0f, vt = 0.0f;
    if (tid < N) {
        int c = h * N + tid;
        long long j = idx + tid;
        rt = r[j];
        float kt = k[j];
        vt = v[j];
        wt = decay(w0[c], w_l[j]);
        at = sigmoidf(a0[c] + a_l[j]);
        if (first_layer) {
            v_first[j] = vt;
        } else {
            vt = value_residual(vt, v_first[j], v0[c], v_l[j]);
        }
        e = kt * k_k[c];
        kn = key_scaled(kt, at, k_a[c]);
        norm2 = e * e;
        bonus = rt * kn * r_k[c];
    }
    block_sum2(&norm2, &bonus, scratch);
    if (tid < N) {
        float kkt = e / fmaxf(sqrtf(norm2), 1e-12f);
        rs[tid] = rt;
        ws[tid] = wt;
        ks[tid] = kn;
        kks[tid] = kkt;
        bs[tid] = kkt * at;
        vs[tid] = vt;
    }
    __syncthreads();
    // sa_i = sum_j S_ij (-kk_j);  S_ij <- S_ij w_j + sa_i b_j + v_i k_j;  o_i = sum_j S_ij r_j
    const float4* kk4 = (const float4*) (kks + q * J);
    float sa = 0.0f;
#pragma unroll
    for (int u = 0; u < J / 4; u++) {
        float4 a4 = kk4[u];
        sa -= st[u].x * a4.x + st[u].y * a4.y + st[u].z * a4.z + st[u].w * a4.w;
    }
    sa += __shfl_xor_sync(0xffffffffu, sa, 1);
    sa += __shfl_xor_sync(0xffffffffu, sa, 2);
    float vi = vs[i];
    const float4* w4 = (const float4*) (ws + q * J);
    const float4* b4 = (const float4*) (bs + q * J);
    const float4* k4 = (const float4*) (ks + q * J);
    const float4* r4 = (const float4*) (rs + q * J);
    float o = 0.0f;
#pragma unroll
    for (int u = 0; u < J / 4; u++) {
        float4 wq = w4[u], bq = b4[u], kq = k4[u], rq = r4[u];
        st[u].x = st[u].x * wq.x + sa * bq.x + vi * kq.x;
        st[u].y = st[u].y * wq.y + sa * bq.y + vi * kq.y;
        st[u].z = st[u].z * wq.z + sa * bq.z + vi * kq.z;
        st[u].w = st[u].w * wq.w + sa * bq.w + vi * kq.w;
        o += st[u].x * rq.x + st[u].y * rq.y + st[u].z * rq.z + st[u].w * rq.w;
        S[u] = st[u];
    }
    o += __shfl_xor_sync(0xffffffffu, o, 1);
    o += __shfl_xor_sync(0xffffffffu, o, 2);
    // GroupNorm over the head's N outputs (each row's o counted once: by its thread q = 0)
    float sum = q == 0 ? o : 0.0f;
    float sq = q == 0 ? o * o : 0.0f;
    block_sum2(&sum, &sq, scratch);
    if (q == 0) {
        float mean = sum / N;
        float var = fmaxf(sq / N - mean * mean, 0.0f);
        int c = h * N + i;
        float gn = (o - mean) * rsqrtf(var + gn_eps) * lnw[c] + lnb[c];
        store(y + idx + i, (gn + bonus * vi) * g[idx + i]);
    }
}

#define TIME_MIX_ONE_ENTRY(NAME, N, T)                                                                             \
    extern "C" __global__ void NAME(const float* r, const float* k, const float* v, const float* w_l,             \
            const float* a_l, const float* g, const float* v_l, float* v_first, const float* w0, const float* a0,  \
            const float* v0, const float* k_k, const float* k_a, const float* r_k, const float* lnw,              \
            const float* lnb, float gn_eps, int first_layer, T* y, float* pool, long long slot_floats,            \
            int wkv_off, const int* start, const int* slot, int C) {                                              \
        rwkv7_time_mix_one<N, T>(r, k, v, w_l, a_l, g, v_l, v_first, w0, a0, v0, k_k, k_a, r_k, lnw, lnb, gn_eps,  \
                                 first_layer, y, pool, slot_floats, wkv_off, start, slot, C);                      \
    }

TIME_MIX_ONE_ENTRY(rwkv7_time_mix_one_32_f32, 32, float)
TIME_MIX_ONE_ENTRY(rwkv7_time_mix_one_64_f32, 64, float)
TIME_MIX_ONE_ENTRY(rwkv7_time_mix_one_32_bf16, 32, bf16_t)
TIME_MIX_ONE_ENTRY(rwkv7_time_mix_one_64_bf16, 64, bf16_t)

// ---------------------------------------------------------------------------------------------------------------
// The same time mix in three kernels, for steps of few streams (a long prefill): the per-channel work and the
// output's GroupNorm run in parallel over all rows, and only the recurrence itself is scanned token by token.

// The (row, head) pair of the calling warp in kernels that give each warp one pair (blocks of 8 warps); false for a
// warp past the last pair.
__device__ __forceinline__ bool warp_row_head(int C, int N, int rows, long long* row, int* h) {
    int H = C / N;
    int pair = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    *row = pair / H;
    *h = pair % H;
    return pair < rows * H;
}

// Per channel of one head of one row: decay, learning rate, value residual, kk, k (formulas as in
// rwkv7_time_mix). In place: w_l -> w, a_l -> b = kk * a, k -> k * (1 + (a - 1) k_a), v -> mixed v;
// kk written. One warp per (row, head), lane l holding channels l + 32 e of the head: the norm is a warp sum,
// no barrier.                                                             grid ceil(R H / 8), block 256
template <int N>
__device__ void rwkv7_prep(float* w, float* a, float* k, float* kk, float* v, float* v_first, const float* v_lora,
                           const float* w0, const float* a0, const float* v0, const float* k_k, const float* k_a,
                           int first_layer, int C, int rows) {
    constexpr int E = N / 32;
    long long row;
    int h;
    if (!warp_row_head(C, N, rows, &row, &h)) {
        return;
    }
    int lane = threadIdx.x & 31;
    // every input loaded before the norm's reduction: one memory latency, not two
    float kj[E], ej[E], wl[E], al[E], vj[E], vf[E], vl[E];
    float sq = 0.0f;
#pragma unroll
    for (int u = 0; u < E; u++) {
        int c = h * N + lane + 32 * u;
        long long j = row * C + c;
        kj[u] = k[j];
        wl[u] = w[j];
        al[u] = a[j];
        vj[u] = v[j];
        vf[u] = first_layer ? 0.0f : v_first[j];
        vl[u] = first_layer ? 0.0f : v_lora[j];
        ej[u] = kj[u] * k_k[c];
        sq += ej[u] * ej[u];
    }
    float norm = sqrtf(warp_sum(sq));
#pragma unroll
    for (int u = 0; u < E; u++) {
        int c = h * N + lane + 32 * u;
        long long j = row * C + c;
        float wj = decay(w0[c], wl[u]);
        float aj = sigmoidf(a0[c] + al[u]);
        float vv = vj[u];
        if (first_layer) {
            v_first[j] = vv;
        } else {
            vv = value_residual(vv, vf[u], v0[c], vl[u]);
        }
        float kkj = ej[u] / fmaxf(norm, 1e-12f);
        kk[j] = kkj;
        k[j] = key_scaled(kj[u], aj, k_a[c]);
        w[j] = wj;
        a[j] = kkj * aj;
        v[j] = vv;
    }
}

extern "C" __global__ void rwkv7_prep_32(float* w, float* a, float* k, float* kk, float* v, float* v_first,
        const float* v_lora, const float* w0, const float* a0, const float* v0, const float* k_k, const float* k_a,
        int first_layer, int C, int rows) {
    rwkv7_prep<32>(w, a, k, kk, v, v_first, v_lora, w0, a0, v0, k_k, k_a, first_layer, C, rows);
}

extern "C" __global__ void rwkv7_prep_64(float* w, float* a, float* k, float* kk, float* v, float* v_first,
        const float* v_lora, const float* w0, const float* a0, const float* v0, const float* k_k, const float* k_a,
        int first_layer, int C, int rows) {
    rwkv7_prep<64>(w, a, k, kk, v, v_first, v_lora, w0, a0, v0, k_k, k_a, first_layer, C, rows);
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
// One warp per (row, head), lane l holding channels l + 32 e; sums are warp sums.   grid ceil(R H / 8), block 256
template <int N, typename T>
__device__ void rwkv7_gate(const float* out, const float* r, const float* k, const float* v, const float* g,
                           const float* r_k, const float* lnw, const float* lnb, float eps, T* y, int C, int rows) {
    constexpr int E = N / 32;
    long long row;
    int h;
    if (!warp_row_head(C, N, rows, &row, &h)) {
        return;
    }
    int lane = threadIdx.x & 31;
    float o[E];
    float sum = 0.0f, bonus = 0.0f;
#pragma unroll
    for (int u = 0; u < E; u++) {
        int c = h * N + lane + 32 * u;
        long long j = row * C + c;
        o[u] = out[j];
        sum += o[u];
        bonus += r[j] * k[j] * r_k[c];
    }
    float mean = warp_sum(sum) / N;
    bonus = warp_sum(bonus);
    float sq = 0.0f;
#pragma unroll
    for (int u = 0; u < E; u++) {
        float d = o[u] - mean;
        sq += d * d;
    }
    float inv = rsqrtf(warp_sum(sq) / N + eps);
#pragma unroll
    for (int u = 0; u < E; u++) {
        int c = h * N + lane + 32 * u;
        long long j = row * C + c;
        float gn = (o[u] - mean) * inv * lnw[c] + lnb[c];
        store(y + j, (gn + bonus * v[j]) * g[j]);
    }
}

#define GATE_ENTRY(N, T, SUFFIX)                                                                                   \
    extern "C" __global__ void rwkv7_gate_##N##_##SUFFIX(const float* out, const float* r, const float* k,         \
            const float* v, const float* g, const float* r_k, const float* lnw, const float* lnb, float eps, T* y, \
            int C, int rows) {                                                                                     \
        rwkv7_gate<N, T>(out, r, k, v, g, r_k, lnw, lnb, eps, y, C, rows);                                         \
    }

GATE_ENTRY(32, float, f32)
GATE_ENTRY(64, float, f32)
GATE_ENTRY(32, bf16_t, bf16)
GATE_ENTRY(64, bf16_t, bf16)


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
#define CHUNK_RB 8    // state rows per block of rwkv7_chunk_state

template <int N>
__device__ __forceinline__ long long chunk_scratch(int chunk, int h, int heads) {
    return ((long long) chunk * heads + h) * (2LL * N * N + 2LL * CHUNK_L * N + CHUNK_L * CHUNK_L);
}

// Phase 1. The chunk's inputs (r, w, k, kk, b of up to L tokens: 40 KiB for N = 64) are copied into shared memory
// first, so the token loop reads only shared memory that no thread writes: no barrier and no memory latency inside
// it (measured: no faster than loading token by token; the loop's arithmetic, (N + L) rows x 4 N per token, is
// what this phase costs).                                                                    grid (H, chunks), block N + L
template <int N>
__device__ void rwkv7_chunk_local(const float* r, const float* w, const float* k, const float* kk, const float* b,
                                  const int* chunk_row0, const int* chunk_len, float* scratch, int C) {
    constexpr int L = CHUNK_L;
    __shared__ __align__(16) float in[5][L][N];   // r, w, k, kk, b
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
    constexpr int V4 = N / 4;                 // float4s per token and vector
    for (int e = q; e < 5 * L * V4; e += N + L) {
        int u = e / (L * V4);
        int t = (e / V4) % L;
        int j4 = e % V4;
        const float* src = u == 0 ? r : u == 1 ? w : u == 2 ? k : u == 3 ? kk : b;
        float4 val = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (t < len) {
            val = *(const float4*) (src + (row0 + t) * C + h * N + 4 * j4);
        }
        *(float4*) &in[u][t][4 * j4] = val;
    }
    __syncthreads();
    float row[N];
#pragma unroll
    for (int j = 0; j < N; j++) {
        row[j] = (q < N && j == q) ? 1.0f : 0.0f;
    }
    int tau = q - N;
    for (int t = 0; t < len; t++) {
        float vt = (q >= N && t == tau) ? 1.0f : 0.0f;
        float o = delta_rule_step<N>(row, in[3][t], in[1][t], in[4][t], in[2][t], in[0][t], vt);
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

// dst = src for register arrays (fully unrolled, so both stay in registers).
template <int n>
__device__ __forceinline__ void copy_registers(float (&dst)[n], const float (&src)[n]) {
#pragma unroll
    for (int i = 0; i < n; i++) {
        dst[i] = src[i];
    }
}

// Phase 2: per (stream, head), the state carried across the stream's chunks: for each chunk in order, save S as
// the chunk's S_start, then S <- S P + V^T K~. Rows of the state evolve independently (row i: s_i <- s_i P + v_i K~),
// so a block carries RB rows of one (stream, head), and N / RB blocks share the head: for few streams many more
// blocks than (stream, head) pairs (one block per head took 61% of a 0.1B prefill; split: 11-22%). Thread j owns
// column j of the block's rows (in registers) and reads column j of the chunk's P and K~ straight into registers,
// the next chunk's while this one is computed; the rows (and their values v) go through shared memory for the
// product.                                                                         grid (H, B, N / RB), block N
template <int N, int RB>
__device__ void rwkv7_chunk_state(const float* v, float* pool, long long slot_floats, int wkv_off,
                                       const int* slot, const int* stream_chunk0, const int* stream_chunks,
                                       const int* chunk_row0, const int* chunk_len, float* scratch, int C) {
    constexpr int L = CHUNK_L;
    constexpr int VE = RB * L / N;            // values v of the block's rows per thread and chunk
    __shared__ __align__(16) float Ss[RB][N];
    __shared__ float Vs[L][RB];
    int h = blockIdx.x;
    int s = blockIdx.y;
    int i0 = blockIdx.z * RB;
    int j = threadIdx.x;
    float* S = pool + (long long) slot[s] * slot_floats + wkv_off + (long long) h * N * N;
    float st[RB];
#pragma unroll
    for (int r = 0; r < RB; r++) {
        st[r] = S[(i0 + r) * N + j];
    }
    int c0 = stream_chunk0[s];
    int n = stream_chunks[s];
    float pc[N], kc[L], vc[VE];
    auto load = [&](int c, float (&p)[N], float (&kt)[L], float (&vv)[VE]) {
        const float* base = scratch + chunk_scratch<N>(c, h, gridDim.x);
#pragma unroll
        for (int m = 0; m < N; m++) {
            p[m] = base[m * N + j];
        }
#pragma unroll
        for (int t = 0; t < L; t++) {
            kt[t] = base[N * N + t * N + j];
        }
        int len = chunk_len[c];
        long long vrow = (long long) chunk_row0[c] * C + h * N + i0;
#pragma unroll
        for (int u = 0; u < VE; u++) {
            int e = j + u * N;                // e = t * RB + r
            int t = e / RB;
            vv[u] = t < len ? v[vrow + (long long) t * C + e % RB] : 0.0f;
        }
    };
    if (n > 0) {
        load(c0, pc, kc, vc);
    }
    for (int c = c0; c < c0 + n; c++) {
        float* Sstart = scratch + chunk_scratch<N>(c, h, gridDim.x) + N * N + 2 * L * N + L * L;
#pragma unroll
        for (int r = 0; r < RB; r++) {
            Sstart[(i0 + r) * N + j] = st[r];
        }
        __syncthreads();              // the previous chunk's products are done with Ss and Vs
#pragma unroll
        for (int r = 0; r < RB; r++) {
            Ss[r][j] = st[r];
        }
#pragma unroll
        for (int u = 0; u < VE; u++) {
            int e = j + u * N;
            Vs[e / RB][e % RB] = vc[u];
        }
        __syncthreads();
        float pn[N], kn[L], vn[VE];
        if (c + 1 < c0 + n) {
            load(c + 1, pn, kn, vn);
        }
        float acc[RB];
#pragma unroll
        for (int r = 0; r < RB; r++) {
            acc[r] = 0.0f;
        }
#pragma unroll
        for (int m = 0; m < N; m++) {
            float pm = pc[m];
#pragma unroll
            for (int r = 0; r < RB; r++) {
                acc[r] += Ss[r][m] * pm;
            }
        }
#pragma unroll
        for (int t = 0; t < L; t++) {  // rows of K~ past the chunk's end are zero, as are their values
            float kt = kc[t];
#pragma unroll
            for (int r = 0; r < RB; r++) {
                acc[r] += Vs[t][r] * kt;
            }
        }
        copy_registers(st, acc);
        copy_registers(pc, pn);
        copy_registers(kc, kn);
        copy_registers(vc, vn);
    }
#pragma unroll
    for (int r = 0; r < RB; r++) {
        S[(i0 + r) * N + j] = st[r];
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
    extern "C" __global__ void rwkv7_chunk_state_##N(const float* v, float* pool, long long slot_floats,     \
            int wkv_off, const int* slot, const int* stream_chunk0, const int* stream_chunks,                     \
            const int* chunk_row0, const int* chunk_len, float* scratch, int C) {                                 \
        rwkv7_chunk_state<N, CHUNK_RB>(v, pool, slot_floats, wkv_off, slot, stream_chunk0, stream_chunks,         \
                                       chunk_row0, chunk_len, scratch, C);                                        \
    }                                                                                                              \
    extern "C" __global__ void rwkv7_chunk_out_##N(const float* v, const int* chunk_row0, const int* chunk_len,   \
            const float* scratch, float* out, int C) {                                                             \
        rwkv7_chunk_out<N>(v, chunk_row0, chunk_len, scratch, out, C);                                            \
    }

CHUNK_ENTRIES(32)
CHUNK_ENTRIES(64)
