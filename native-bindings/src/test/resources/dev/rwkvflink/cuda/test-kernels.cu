// Kernels for the native-bindings tests, compiled by NVRTC through KernelCache.

// y = a * x + y, in place, one fused multiply-add per element (the host checks with Math.fma).
extern "C" __global__ void axpy_in_place(float a, const float* __restrict__ x, float* __restrict__ y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        y[i] = fmaf(a, x[i], y[i]);
    }
}

// Busy-waits for about `cycles` clock ticks: device work long enough for events to time.
extern "C" __global__ void spin(long long cycles) {
    long long start = clock64();
    while (clock64() - start < cycles) {
    }
}

// Sums `n` floats from dynamic shared memory (filled from `in`) into out[0]; launched with n * 4 shared bytes.
extern "C" __global__ void shared_sum(const float* __restrict__ in, float* __restrict__ out, int n) {
    extern __shared__ float tile[];
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        tile[i] = in[i];
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float sum = 0.0f;
        for (int i = 0; i < n; i++) {
            sum += tile[i];
        }
        out[0] = sum;
    }
}
