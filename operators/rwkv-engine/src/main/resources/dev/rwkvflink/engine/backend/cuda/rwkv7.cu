// RWKV-7 "Goose": the time mix (compiled after rwkv-common.cu). CPU reference: Rwkv7Block.

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

