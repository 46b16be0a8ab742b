// RWKV-4, RWKV-5 "Eagle" and RWKV-6 "Finch": their time-mix and channel-mix kernels (compiled after
// rwkv-common.cu). CPU reference: Rwkv4Block, Rwkv5Block, Rwkv6Block, MatrixWkv.scanDecayBonus, ChannelMix.

// RWKV-4's WKV, one channel of one stream per thread, token by token: a ratio of exponentially decayed sums kept
// stable by a running maximum exponent pp (state: aa, bb, pp per channel, after the two shifts of the layer):
//   p = max(pp, u + k);  wkv = (e^{pp-p} aa + e^{u+k-p} v) / (e^{pp-p} bb + e^{u+k-p})
//   q = max(w + pp, k);  aa <- e^{w+pp-q} aa + e^{k-q} v;  bb <- e^{w+pp-q} bb + e^{k-q};  pp <- q
//   y = sigmoid(r) * wkv                     -> act type, the input of W_o       grid (ceil(C / 128), B), block 128
template <typename T>
__device__ void rwkv4_scan(const float* r, const float* k, const float* v, const float* w, const float* u, T* y,
                           float* pool, long long slot_floats, int wkv_off, const int* start, const int* count,
                           const int* slot, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) {
        return;
    }
    int s = blockIdx.y;
    float* st = pool + (long long) slot[s] * slot_floats + wkv_off;
    float aa = st[c], bb = st[C + c], pp = st[2 * C + c];
    float wc = w[c], uc = u[c];
    long long idx = (long long) start[s] * C + c;
    int T_ = count[s];
    for (int t = 0; t < T_; t++, idx += C) {
        float kt = k[idx], vt = v[idx];
        float ww = uc + kt;
        float p = fmaxf(pp, ww);
        float e1 = expf(pp - p);
        float e2 = expf(ww - p);
        float o = (e1 * aa + e2 * vt) / (e1 * bb + e2);
        ww = wc + pp;
        p = fmaxf(ww, kt);
        e1 = expf(ww - p);
        e2 = expf(kt - p);
        aa = e1 * aa + e2 * vt;
        bb = e1 * bb + e2;
        pp = p;
        store(y + idx, sigmoidf(r[idx]) * o);
    }
    st[c] = aa;
    st[C + c] = bb;
    st[2 * C + c] = pp;
}

extern "C" __global__ void rwkv4_scan_f32(const float* r, const float* k, const float* v, const float* w,
        const float* u, float* y, float* pool, long long slot_floats, int wkv_off, const int* start, const int* count,
        const int* slot, int C) {
    rwkv4_scan<float>(r, k, v, w, u, y, pool, slot_floats, wkv_off, start, count, slot, C);
}

extern "C" __global__ void rwkv4_scan_bf16(const float* r, const float* k, const float* v, const float* w,
        const float* u, bf16_t* y, float* pool, long long slot_floats, int wkv_off, const int* start, const int* count,
        const int* slot, int C) {
    rwkv4_scan<bf16_t>(r, k, v, w, u, y, pool, slot_floats, wkv_off, start, count, slot, C);
}

// The decay-and-bonus recurrence of one head of one stream, token by token. Thread j owns column j of the head's
// state S[key i][value j] (N registers):
//   out_j = sum_i r_i (u_i k_i v_j + S_ij),   S_ij <- k_i v_j + w_i S_ij
// with w per key channel, either one row for all tokens (v5: w_stride = 0) or one row per token (v6:
// w_stride = C). Each token's r, k, w go through one of two shared buffers (one barrier per token); the next
// token's values are loaded before this token's arithmetic.                              grid (H, B), block N
template <int N>
__device__ void rwkv56_scan(const float* r, const float* k, const float* v, const float* w, long long w_stride,
                            const float* u, float* out, float* pool, long long slot_floats, int wkv_off,
                            const int* start, const int* count, const int* slot, int C) {
    __shared__ float rs[2][N], ks[2][N], ws[2][N], us[N];
    int h = blockIdx.x;
    int s = blockIdx.y;
    int j = threadIdx.x;
    int c = h * N + j;
    float* S = pool + (long long) slot[s] * slot_floats + wkv_off + (long long) h * N * N + j;  // S[i][j] at i * N
    float col[N];
#pragma unroll
    for (int i = 0; i < N; i++) {
        col[i] = S[i * N];
    }
    us[j] = u[c];
    long long row0 = start[s];
    int T_ = count[s];
    long long idx = row0 * C + c;
    long long widx = row0 * w_stride + c;
    float nr = r[idx], nk = k[idx], nv = v[idx], nw = w[widx];
    for (int t = 0; t < T_; t++, idx += C, widx += w_stride) {
        int p = t & 1;
        rs[p][j] = nr;
        ks[p][j] = nk;
        ws[p][j] = nw;
        float vj = nv;
        __syncthreads();  // buffer p complete; buffer 1 - p (token t - 1) no longer read
        if (t + 1 < T_) {
            nr = r[idx + C];
            nk = k[idx + C];
            nv = v[idx + C];
            nw = w[widx + w_stride];
        }
        float o = 0.0f;
#pragma unroll
        for (int i = 0; i < N; i++) {
            float a = ks[p][i] * vj;
            o += rs[p][i] * (us[i] * a + col[i]);
            col[i] = a + ws[p][i] * col[i];
        }
        out[idx] = o;
    }
#pragma unroll
    for (int i = 0; i < N; i++) {
        S[i * N] = col[i];
    }
}

extern "C" __global__ void rwkv56_scan_8(const float* r, const float* k, const float* v, const float* w,
        long long w_stride, const float* u, float* out, float* pool, long long slot_floats, int wkv_off,
        const int* start, const int* count, const int* slot, int C) {
    rwkv56_scan<8>(r, k, v, w, w_stride, u, out, pool, slot_floats, wkv_off, start, count, slot, C);
}

extern "C" __global__ void rwkv56_scan_16(const float* r, const float* k, const float* v, const float* w,
        long long w_stride, const float* u, float* out, float* pool, long long slot_floats, int wkv_off,
        const int* start, const int* count, const int* slot, int C) {
    rwkv56_scan<16>(r, k, v, w, w_stride, u, out, pool, slot_floats, wkv_off, start, count, slot, C);
}

extern "C" __global__ void rwkv56_scan_32(const float* r, const float* k, const float* v, const float* w,
        long long w_stride, const float* u, float* out, float* pool, long long slot_floats, int wkv_off,
        const int* start, const int* count, const int* slot, int C) {
    rwkv56_scan<32>(r, k, v, w, w_stride, u, out, pool, slot_floats, wkv_off, start, count, slot, C);
}

extern "C" __global__ void rwkv56_scan_64(const float* r, const float* k, const float* v, const float* w,
        long long w_stride, const float* u, float* out, float* pool, long long slot_floats, int wkv_off,
        const int* start, const int* count, const int* slot, int C) {
    rwkv56_scan<64>(r, k, v, w, w_stride, u, out, pool, slot_floats, wkv_off, start, count, slot, C);
}

// Sum over a head's N threads (the whole block): shuffles within N lanes for N <= 32, else block_sum.
__device__ float head_sum(float v, float* scratch, int N) {
    if (N >= 32) {
        return block_sum(v, scratch);
    }
    unsigned int mask = (1u << N) - 1u;
    for (int o = N / 2; o > 0; o >>= 1) {
        v += __shfl_xor_sync(mask, v, o);
    }
    return v;
}

// Per head of one row: y = GroupNorm_head(out) * silu(g) (gated: 5.1, 5.2, 6) or GroupNorm_head(out) (5.0),
// into the act type for W_o.                                                             grid (H, R), block N
template <typename T>
__device__ void rwkv56_gate(const float* out, const float* g, const float* lnw, const float* lnb, float eps, T* y,
                            int C, int N) {
    __shared__ float scratch[32];
    int c = blockIdx.x * N + threadIdx.x;
    long long j = (long long) blockIdx.y * C + c;
    float o = out[j];
    float mean = head_sum(o, scratch, N) / N;
    float d = o - mean;
    float var = head_sum(d * d, scratch, N) / N;
    float gn = d * rsqrtf(var + eps) * lnw[c] + lnb[c];
    if (g != nullptr) {
        float gj = g[j];
        gn *= gj * sigmoidf(gj);
    }
    store(y + j, gn);
}

extern "C" __global__ void rwkv56_gate_f32(const float* out, const float* g, const float* lnw, const float* lnb,
        float eps, float* y, int C, int N) {
    rwkv56_gate<float>(out, g, lnw, lnb, eps, y, C, N);
}

extern "C" __global__ void rwkv56_gate_bf16(const float* out, const float* g, const float* lnw, const float* lnb,
        float eps, bf16_t* y, int C, int N) {
    rwkv56_gate<bf16_t>(out, g, lnw, lnb, eps, y, C, N);
}

// v6's decay, in place: w = exp(-exp(time_decay + w_lora)) for n values of rows of C.      grid-stride
extern "C" __global__ void rwkv6_decay(float* w, const float* base, long long n, int C) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        w[i] = expf(-expf(base[i % C] + w[i]));
    }
}

// The receptance-gated channel-mix output added to the residual: x += sigmoid(rr) * vv.   grid-stride
extern "C" __global__ void ffn_gate_add(float* x, const float* rr, const float* vv, long long n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        x[i] += sigmoidf(rr[i]) * vv[i];
    }
}
