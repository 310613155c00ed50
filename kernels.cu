// kernels.cu: the CUDA path. Each kernel's host launcher has its CPU twin's name
// with a _cuda suffix and the same argument order (src/layers.h, src/optim.h);
// then the device-side E4SRec / SLMRec model mirroring src/e4srec.h and
// src/distill.h, and the extern "C" API the C driver calls (bottom of the file).
//
// Dimension names as in layers.h: B T C D NH KVH HS F L V I, N = B*T rows,
// QKV = (NH + 2 KVH) HS, Q = NH HS, A = distillation adapters (blocks - 1).
//
// Where a twin's arguments differ from the CPU function's, and why:
// * X* for activations (float or bf16, a template parameter); weights stay fp32.
// * rope_*_cuda take (rope, T, HS): the CPU's RopeTable uploaded once per model, and
//   each row's position is n % T: the GPU batch is padded (B, T) while the CPU packs
//   real tokens and reads each row's position from a list.
// * attention_*_cuda keep the log-sum-exp per query row (lse) instead of the (T, T)
//   probabilities: the backward recomputes them, so memory does not grow with T^2.
// * crossentropy_items_*_cuda fuse the item logits (user @ item_table^T) into the
//   CE, made in chunks of items: the (B, I) logits are never stored. The backward
//   takes one dloss for all rows (the CPU's dlosses[b] are all equal) and stats
//   (max, sum, target logit) from the forward.
// * kd_*_forward_cuda add into a device scalar (*out +=, rows as scratch) instead
//   of returning a float: nothing is read back to the host inside a step.
// * grad_clip_cuda + adamw_update_cuda are optimizer_step split in two, with the
//   norm and clip scale left on the device.
// * a trailing `accumulate` (default true) lets the model overwrite where the CPU
//   zeroes a buffer first.
// * the model-level twins (e4srec_build_cuda, e4srec_alloc_acts_cuda,
//   e4srec_forward_cuda, e4srec_backward_cuda, e4srec_position_ce_*_cuda,
//   slmrec_forward_cuda, slmrec_backward_cuda, optimizer_step_cuda) take the device
//   handle GpuE4SRec (model, its teacher, adapters and optimizer state in one) instead
//   of the CPU's E4SRec / SLMRec / Optimizer, and slmrec_*_cuda also serve a plain
//   model (the CE alone). e4srec_position_ce_forward_cuda reads the targets of the
//   history items from the handle (upload_batch works them out on the host, where the
//   batch is) and leaves the loss in a device scalar instead of returning it;
//   e4srec_position_ce_backward_cuda writes dpos_h (= where the CPU zeroes it first).
//
// Conventions, as on the CPU:
// * every backward ACCUMULATES (+=) into the gradients it writes. Launchers whose
//   CPU caller zeroes a buffer right before take a trailing `accumulate = true`;
//   the model passes false there instead of a memset (same result, one pass less).
// * precision: X, the activation type, is float (matches the CPU within
//   1e-5 + 1e-4 |ref| where reductions allow) or bf16: bf16 activations as the inputs
//   of the matmuls and of attention, and a bf16 shadow of the weights for the matmuls.
//   fp32 everywhere else: master weights, gradients, AdamW moments, the residual stream
//   and its gradient, norms' statistics, attention log-sum-exp and its dK/dV sums,
//   last-token states and everything after them (score, item logits, CE,
//   distillation losses). All arithmetic inside kernels is fp32.
// * deterministic: no atomics; every reduction has a fixed order that depends
//   only on the shapes; one stream (the default), cuBLAS without atomics.
// * no host synchronization inside a training step: losses (and their running
//   sum) and the gradient norm stay on the device until gpu_e4srec_losses is called.
// * SLMREC_CUDA_SYNC=1 makes every launch wait and check (launchCheck), for first runs.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include "src/distill.h"  // E4SRecConfig/E4SRecParams/E4SRec and their size table, SLMRec (and, through them, layers.h, utils.h)
#include "src/optim.h"    // AdamWConfig and lr_at, the schedule shared with the CPU
#include "src/gpu.h"      // the C API defined at the bottom of this file

typedef __nv_bfloat16 bf16;

// ----------------------------------------------------------------------------
// checks: every CUDA and cuBLAS call; file:line, what failed, a hint, exit 1

static const char* cuda_hint(cudaError_t e) {
    switch (e) {
        case cudaErrorMemoryAllocation: return "out of GPU memory: lower the batch size or the model size";
        case cudaErrorNoDevice:
        case cudaErrorInsufficientDriver: return "no usable GPU: check nvidia-smi and the driver version";
        case cudaErrorNoKernelImageForDevice:
        case cudaErrorInvalidDeviceFunction: return "kernels.o was built for another GPU: rebuild with CUDA_ARCH=sm_XX (see cuda.mk)";
        case cudaErrorInvalidValue: return "a launch or copy got a bad size: check the shapes printed above";
        default: return "rerun under compute-sanitizer to find the faulting kernel";
    }
}

static void cuda_check(cudaError_t e, const char* what, const char* file, int line) {
    if (e != cudaSuccess) {
        die("%s:%d: %s failed: %s (%s)\n  hint: %s", file, line, what, cudaGetErrorName(e), cudaGetErrorString(e), cuda_hint(e));
    }
}
#define cudaCheck(call) cuda_check((call), #call, __FILE__, __LINE__)

// SLMREC_CUDA_SYNC=1 in the environment: wait for every launch and check it, so that a
// fault names its kernel (for a first run on a new GPU; slow). Otherwise launches only
// check their configuration, and asynchronous faults surface at the next wait.
static int debug_sync = 0;
static void launch_check(const char* file, int line) {
    cuda_check(cudaGetLastError(), "kernel launch", file, line);
    if (debug_sync) cuda_check(cudaDeviceSynchronize(), "kernel (SLMREC_CUDA_SYNC=1)", file, line);
}
#define launchCheck() launch_check(__FILE__, __LINE__)

static void cublas_check(cublasStatus_t s, const char* what, const char* file, int line) {
    if (s != CUBLAS_STATUS_SUCCESS) {
        die("%s:%d: %s failed: %s (%s)\n  hint: %s", file, line, what, cublasGetStatusName(s), cublasGetStatusString(s),
            s == CUBLAS_STATUS_NOT_SUPPORTED ? "this type combination is not supported by cuBLAS on this GPU"
            : s == CUBLAS_STATUS_ALLOC_FAILED ? "out of GPU memory: lower the batch size"
            : "check the matrix sizes and leading dimensions passed to gemm()");
    }
}
#define cublasCheck(call) cublas_check((call), #call, __FILE__, __LINE__)

// ----------------------------------------------------------------------------
// device-wide state: one cuBLAS handle, the opt-in shared-memory limit, the bytes
// slmrec has allocated (now and at most: the allocator's high-water mark, as
// torch.cuda.max_memory_allocated), and scratch buffers that grow on first use
// (cudaMalloc syncs, so only the first step pays; later steps reuse them in stream
// order). gpu_shutdown frees them at exit.

static cublasHandle_t cublas_handle = NULL;
static int max_smem_optin = 0;
static size_t device_bytes_now = 0, device_bytes_peak = 0;

static void* device_alloc(size_t bytes) {
    void* p = NULL;
    cudaCheck(cudaMalloc(&p, bytes ? bytes : 1));
    device_bytes_now += bytes;
    if (device_bytes_now > device_bytes_peak) device_bytes_peak = device_bytes_now;
    return p;
}

static void device_free(void* p, size_t bytes) {
    if (p == NULL) return;
    cudaCheck(cudaFree(p));
    device_bytes_now -= bytes;
}

enum { SCRATCH_REDUCE, SCRATCH_LOGITS, SCRATCH_TOPK, NUM_SCRATCH };
static void* scratch_ptr[NUM_SCRATCH];
static size_t scratch_bytes[NUM_SCRATCH];

static void* scratch(int slot, size_t bytes) {
    if (bytes > scratch_bytes[slot]) {
        device_free(scratch_ptr[slot], scratch_bytes[slot]);  // implicit device sync: no kernel still reads the old buffer
        scratch_ptr[slot] = device_alloc(bytes);
        scratch_bytes[slot] = bytes;
    }
    return scratch_ptr[slot];
}

// at exit (also after die()): errors are not checked here, the process is ending either way
static void gpu_shutdown(void) {
    for (int i = 0; i < NUM_SCRATCH; i++) {
        cudaFree(scratch_ptr[i]);
        scratch_ptr[i] = NULL;
        scratch_bytes[i] = 0;
    }
    if (cublas_handle) cublasDestroy(cublas_handle);
    cublas_handle = NULL;
}

static void gpu_init(void) {
    if (cublas_handle) return;
    int dev = 0;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaDeviceGetAttribute(&max_smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    cublasCheck(cublasCreate(&cublas_handle));
    // default math never lowers the requested precision: fp32 products stay fp32 (no TF32,
    // so the fp32 path can match the CPU); bf16 products use tensor cores with fp32 accumulation
    cublasCheck(cublasSetMathMode(cublas_handle, CUBLAS_DEFAULT_MATH));
    cublasCheck(cublasSetAtomicsMode(cublas_handle, CUBLAS_ATOMICS_NOT_ALLOWED));
    const char* sync = getenv("SLMREC_CUDA_SYNC");
    debug_sync = sync != NULL && strcmp(sync, "1") == 0;
    atexit(gpu_shutdown);
}

static unsigned blocks_for(size_t n, int threads) { return (unsigned)((n + threads - 1) / threads); }

// ----------------------------------------------------------------------------
// element types and deterministic reductions

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(bf16* p, float v) { *p = __float2bfloat16(v); }  // round to nearest even

static cudaDataType_t dtype_of(const float*) { return CUDA_R_32F; }
static cudaDataType_t dtype_of(const bf16*) { return CUDA_R_16BF; }

// xor butterflies: lane i adds v_i + v_(i^o), lane i^o the same two numbers, so
// every lane ends with the bitwise same result, in an order fixed by the code
template <typename R> __device__ R warp_sum(R v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// sum over the block (blockDim a multiple of 32), returned to every thread
template <typename R> __device__ R block_sum(R v) {
    __shared__ R partial[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    v = warp_sum(v);
    __syncthreads();  // a previous call may still be reading partial
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < nwarps ? partial[lane] : (R)0;
    return warp_sum(v);
}

__device__ float block_max(float v) {
    __shared__ float partial[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < nwarps ? partial[lane] : -INFINITY;
    return warp_max(v);
}

// column sums in two fixed-order passes: block (x, y) sums rows slice y of
// columns 32x..32x+31, then one thread per column adds the slices in order.
// Summand: a[n, c], or a[n, c] * (b[n, c] - rowshift[n]) * rowscale[n] when b is given
// (RMSNorm's dweight with no rowshift, LayerNorm's with the row means).
#define COLSUM_ROWS 8  // threadIdx.y extent
template <typename XA, typename XB>
__global__ void column_sum_partial_kernel(float* partial, const XA* a, const XB* b, const float* rowshift, const float* rowscale,
                                          int N, int C, int rows_per_slice) {
    // partial (gridDim.y, C), a (N, C), b (N, C) or NULL, rowshift (N) or NULL, rowscale (N)
    __shared__ float s[COLSUM_ROWS][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    int n0 = blockIdx.y * rows_per_slice, n1 = min(N, n0 + rows_per_slice);
    float acc = 0.0f;
    if (c < C) {
        for (int n = n0 + threadIdx.y; n < n1; n += COLSUM_ROWS) {
            float v = to_float(a[(size_t)n * C + c]);
            if (b) v = v * (to_float(b[(size_t)n * C + c]) - (rowshift ? rowshift[n] : 0.0f)) * rowscale[n];
            acc += v;
        }
    }
    s[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float t = 0.0f;
        for (int k = 0; k < COLSUM_ROWS; k++) t += s[k][threadIdx.x];
        partial[(size_t)blockIdx.y * C + c] = t;
    }
}

__global__ void column_sum_finish_kernel(float* out, const float* partial, int slices, int C) {
    // out (C) +=, partial (slices, C)
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float t = 0.0f;
    for (int k = 0; k < slices; k++) t += partial[(size_t)k * C + c];
    out[c] += t;
}

template <typename XA, typename XB>
static void column_sum_cuda(float* out, const XA* a, const XB* b, const float* rowshift, const float* rowscale, int N, int C) {
    int slices = min(GPU_COLSUM_SLICES, max(1, (N + 31) / 32));  // enough blocks to fill the GPU, each slice >= 32 rows
    int rows_per_slice = (N + slices - 1) / slices;
    float* partial = (float*)scratch(SCRATCH_REDUCE, (size_t)slices * C * sizeof(float));
    column_sum_partial_kernel<<<dim3(blocks_for(C, 32), slices), dim3(32, COLSUM_ROWS)>>>(partial, a, b, rowshift, rowscale, N, C, rows_per_slice);
    launchCheck();
    column_sum_finish_kernel<<<blocks_for(C, 256), 256>>>(out, partial, slices, C);
    launchCheck();
}

// ----------------------------------------------------------------------------
// the one matrix product. Row-major (torch) layout throughout:
//   c (M, N) = op(a) (M, K) @ op(b) (K, N)   (+= c when accumulate)
// where a is stored (M, K), or (K, M) when trans_a; b is stored (K, N), or (N, K) when trans_b.
// cuBLAS is column-major, and a row-major (R, K) matrix is the column-major (K, R)
// matrix holding its transpose, so we ask cuBLAS for c^T = op(b)^T @ op(a)^T:
// first operand b, second a, dimensions (N, M, K), each operand's leading
// dimension its row-major row length, c's leading dimension N.
// Types: a and b alike (float or bf16), c float or the same; compute fp32 always
// (tensor cores for bf16, plain fp32 FMA for float: CUBLAS_DEFAULT_MATH never uses TF32 for it).
template <typename TA, typename TC>
static void gemm(TC* c, const TA* a, const TA* b, int M, int N, int K, bool trans_a, bool trans_b, bool accumulate) {
    if (M == 0 || N == 0) return;
    float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    cublasCheck(cublasGemmEx(cublas_handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                             N, M, K, &alpha, b, dtype_of(b), trans_b ? K : N, a, dtype_of(a), trans_a ? M : K,
                             &beta, c, dtype_of(c), N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (debug_sync) launchCheck();
}

// ----------------------------------------------------------------------------
// embedding lookup

template <typename X, typename XT>
__global__ void embedding_forward_kernel(X* out, const int* ids, const XT* table, int N, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C) return;
    size_t n = i / C;
    int c = (int)(i % C);
    store(out + i, to_float(table[(size_t)ids[n] * C + c]));
}

// rows of a table by id: an fp32 table into activations, or (the every-position CE)
// rows of an activation into fp32
template <typename X, typename XT>
static void embedding_forward_cuda(X* out, const int* ids, const XT* table, int N, int C) {
    // out (N, C), ids (N), table (rows, C)
    embedding_forward_kernel<<<blocks_for((size_t)N * C, 256), 256>>>(out, ids, table, N, C);
    launchCheck();
}

// one thread per channel walks the rows in order: repeated ids accumulate with no
// race and in a fixed order. Serial in N, so it is meant for the few prompt rows
// (the model first sums the batch for each prompt position, see prompt_grad_sum_kernel).
__global__ void embedding_backward_kernel(float* dtable, const float* dout, const int* ids, int N, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    for (int n = 0; n < N; n++) dtable[(size_t)ids[n] * C + c] += dout[(size_t)n * C + c];
}

static void embedding_backward_cuda(float* dtable, const float* dout, const int* ids, int N, int C) {
    // dtable (rows, C) +=, dout (N, C), ids (N)
    embedding_backward_kernel<<<blocks_for(C, 256), 256>>>(dtable, dout, ids, N, C);
    launchCheck();
}

// ----------------------------------------------------------------------------
// Linear: out = inp @ weight^T + bias, weight (OC, C)

template <typename X>
__global__ void bias_broadcast_kernel(X* out, const float* bias, int N, int OC) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (size_t)N * OC) store(out + i, bias[i % OC]);
}

template <typename X>
static void matmul_forward_cuda(X* out, const X* inp, const X* weight, const float* bias, int N, int C, int OC) {
    // out (N, OC), inp (N, C), weight (OC, C), bias (OC) fp32 or NULL
    if (bias) {  // the bias first, then the product accumulated onto it
        bias_broadcast_kernel<<<blocks_for((size_t)N * OC, 256), 256>>>(out, bias, N, OC);
        launchCheck();
    }
    gemm(out, inp, weight, N, OC, C, false, true, bias != NULL);
}

template <typename X>
static void matmul_backward_cuda(X* dinp, float* dweight, float* dbias, const X* dout, const X* inp, const X* weight,
                                 int N, int C, int OC, bool accumulate = true) {
    // dinp (N, C) += dout @ weight (= when !accumulate); dweight (OC, C) += dout^T @ inp; dbias (OC) += sum_n dout
    if (dinp) gemm(dinp, dout, weight, N, C, OC, false, false, accumulate);
    if (dweight) gemm(dweight, dout, inp, OC, C, N, true, false, true);
    if (dbias) column_sum_cuda(dbias, dout, (const X*)NULL, (const float*)NULL, (const float*)NULL, N, OC);
}

// ----------------------------------------------------------------------------
// RMSNorm: one warp per row. In the model the input is the fp32 residual stream and
// the output the activation type XO (the next matmul's input); its backward adds
// into the fp32 residual gradient.

template <typename XI, typename XO>
__global__ void rmsnorm_forward_kernel(XO* out, float* rstd, const XI* inp, const float* weight, int N, int C, float eps) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;  // the whole warp leaves together
    const XI* x = inp + (size_t)row * C;
    float ss = 0.0f;
    for (int i = lane; i < C; i += 32) { float v = to_float(x[i]); ss += v * v; }
    ss = warp_sum(ss);
    float r = 1.0f / sqrtf(ss / C + eps);
    for (int i = lane; i < C; i += 32) store(out + (size_t)row * C + i, to_float(x[i]) * r * weight[i]);
    if (lane == 0) rstd[row] = r;
}

template <typename XI, typename XO>
static void rmsnorm_forward_cuda(XO* out, float* rstd, const XI* inp, const float* weight, int N, int C, float eps) {
    // out (N, C), rstd (N) cached for backward, inp (N, C), weight (C)
    rmsnorm_forward_kernel<<<blocks_for(N, 8), 256>>>(out, rstd, inp, weight, N, C, eps);
    launchCheck();
}

template <typename XD, typename XO, typename XI>
__global__ void rmsnorm_backward_kernel(XD* dinp, const XO* dout, const XI* inp, const float* weight, const float* rstd,
                                        int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const XI* x = inp + (size_t)row * C;
    const XO* dy = dout + (size_t)row * C;
    float r = rstd[row], dot = 0.0f;
    for (int i = lane; i < C; i += 32) dot += to_float(dy[i]) * weight[i] * to_float(x[i]);
    dot = warp_sum(dot);
    float k = r * r * r * dot / C;
    XD* dx = dinp + (size_t)row * C;
    for (int i = lane; i < C; i += 32) store(dx + i, to_float(dx[i]) + (r * to_float(dy[i]) * weight[i] - k * to_float(x[i])));
}

template <typename XD, typename XO, typename XI>
static void rmsnorm_backward_cuda(XD* dinp, float* dweight, const XO* dout, const XI* inp, const float* weight,
                                  const float* rstd, int N, int C) {
    // dinp (N, C) +=, dweight (C) += sum_n dout * inp * rstd
    rmsnorm_backward_kernel<<<blocks_for(N, 8), 256>>>(dinp, dout, inp, weight, rstd, N, C);
    launchCheck();
    column_sum_cuda(dweight, dout, inp, (const float*)NULL, rstd, N, C);
}

// ----------------------------------------------------------------------------
// RoPE, HF half-split layout, in place. The angles are the CPU's RopeTable (layers.h),
// computed once per model on the host and uploaded: rope (2, T, HS/2), cosines then sines.

template <typename X>
__global__ void rope_kernel(X* x, const float* rope, int N, int T, int row_stride, int n_heads, int half, float sign) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)N * n_heads * half) return;
    int j = (int)(idx % half);
    size_t r = idx / half;
    int h = (int)(r % n_heads);
    size_t n = r / n_heads;
    int pos = (int)(n % T);
    float c = rope[(size_t)pos * half + j], s = sign * rope[((size_t)T + pos) * half + j];
    X* v = x + n * row_stride + (size_t)h * 2 * half;
    float a = to_float(v[j]), b = to_float(v[j + half]);
    store(v + j, a * c - b * s);
    store(v + j + half, b * c + a * s);
}

template <typename X>
static void rope_forward_cuda(X* x, const float* rope, int N, int T, int row_stride, int n_heads, int HS) {
    // x (N, row_stride): the first n_heads*HS entries of each row rotate in place; row n sits at position n % T
    rope_kernel<<<blocks_for((size_t)N * n_heads * (HS / 2), 256), 256>>>(x, rope, N, T, row_stride, n_heads, HS / 2, 1.0f);
    launchCheck();
}

// the rotation is orthogonal: its backward is the inverse rotation, in place
template <typename X>
static void rope_backward_cuda(X* dx, const float* rope, int N, int T, int row_stride, int n_heads, int HS) {
    rope_kernel<<<blocks_for((size_t)N * n_heads * (HS / 2), 256), 256>>>(dx, rope, N, T, row_stride, n_heads, HS / 2, -1.0f);
    launchCheck();
}

// ----------------------------------------------------------------------------
// attention, fused (no (T, T) matrix in global memory): causal AND key-not-padded
// mask, grouped-query heads, qkv rows [q (NH*HS) | k (KVH*HS) | v (KVH*HS)].
// The forward keeps each query's log-sum-exp (B, NH, T) instead of the CPU's
// probabilities; the backward recomputes p = exp(s - lse). K and V of one kv head
// sit in shared memory as fp32, rows padded to HS+1 floats so lanes reading
// different rows hit different banks; all arithmetic is fp32 whatever X is.

#define ATT_THREADS 256
#define ATT_WARPS (ATT_THREADS / 32)

static size_t attention_forward_smem(int T, int HS) {
    return sizeof(float) * ((size_t)2 * T * (HS + 1) + (size_t)ATT_WARPS * (HS + T));
}

static size_t attention_backward_smem(int T, int HS, int TQ) {
    return sizeof(float) * ((size_t)2 * T * (HS + 1) + (size_t)2 * T * HS + (size_t)2 * TQ * T + (size_t)ATT_WARPS * 2 * HS);
}

// K and V rows of kv head kvh of sample b into shared memory (T, HS+1) each
template <typename X>
__device__ void load_kv(float* ks, float* vs, const X* base, int T, int QKV, int koff, int voff, int HS) {
    for (int idx = threadIdx.x; idx < T * HS; idx += blockDim.x) {
        int t = idx / HS, i = idx % HS;
        ks[t * (HS + 1) + i] = to_float(base[(size_t)t * QKV + koff + i]);
        vs[t * (HS + 1) + i] = to_float(base[(size_t)t * QKV + voff + i]);
    }
}

// one block per (b, h); one warp per query row
template <typename X>
__global__ void attention_forward_kernel(X* out, float* lse, const X* qkv, const int* keymask, int T, int NH, int KVH, int HS) {
    extern __shared__ float smem[];
    int KS = HS + 1;
    float* ks = smem;                // (T, HS+1)
    float* vs = ks + T * KS;         // (T, HS+1)
    float* qrow = vs + T * KS;       // (ATT_WARPS, HS) each warp's query
    float* prow = qrow + ATT_WARPS * HS;  // (ATT_WARPS, T) each warp's scores, then probabilities
    int b = blockIdx.x / NH, h = blockIdx.x % NH, kvh = h / (NH / KVH);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int QKV = (NH + 2 * KVH) * HS;
    const X* base = qkv + (size_t)b * T * QKV;
    load_kv(ks, vs, base, T, QKV, NH * HS + kvh * HS, (NH + KVH) * HS + kvh * HS, HS);
    __syncthreads();
    float scale = 1.0f / sqrtf((float)HS);
    float* q = qrow + warp * HS;
    float* p = prow + warp * T;
    for (int t = warp; t < T; t += ATT_WARPS) {
        for (int i = lane; i < HS; i += 32) q[i] = to_float(base[(size_t)t * QKV + h * HS + i]);
        __syncwarp();
        float maxv = -INFINITY;
        for (int t2 = lane; t2 <= t; t2 += 32) {
            float s = -INFINITY;
            if (keymask == NULL || keymask[b * T + t2]) {
                float dot = 0.0f;
                for (int i = 0; i < HS; i++) dot += q[i] * ks[t2 * KS + i];
                s = dot * scale;
            }
            p[t2] = s;
            maxv = fmaxf(maxv, s);
        }
        maxv = warp_max(maxv);
        float sum = 0.0f;
        for (int t2 = lane; t2 <= t; t2 += 32) {
            float e = p[t2] == -INFINITY ? 0.0f : expf(p[t2] - maxv);  // a row with no key attends to nothing
            p[t2] = e;
            sum += e;
        }
        sum = warp_sum(sum);
        float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        for (int t2 = lane; t2 <= t; t2 += 32) p[t2] *= inv;
        __syncwarp();
        X* o = out + ((size_t)b * T + t) * NH * HS + h * HS;
        for (int i = lane; i < HS; i += 32) {
            float acc = 0.0f;
            for (int t2 = 0; t2 <= t; t2++) acc += p[t2] * vs[t2 * KS + i];
            store(o + i, acc);
        }
        if (lane == 0) lse[((size_t)b * NH + h) * T + t] = maxv + logf(sum);  // -inf for a row with no key
        __syncwarp();  // q and p are rewritten for the next row
    }
}

template <typename X>
static void attention_forward_cuda(X* out, float* lse, const X* qkv, const int* keymask, int B, int T, int NH, int KVH, int HS) {
    // out (B, T, NH*HS), lse (B, NH, T) cached for backward, qkv (B, T, QKV), keymask (B, T) or NULL
    size_t smem = attention_forward_smem(T, HS);
    if (smem > (size_t)max_smem_optin) {
        die("attention_forward_cuda: T=%d, HS=%d needs %zu bytes of shared memory, the GPU allows %d\n"
            "  hint: shorten the item history (max_len)", T, HS, smem, max_smem_optin);
    }
    cudaCheck(cudaFuncSetAttribute(attention_forward_kernel<X>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    attention_forward_kernel<<<B * NH, ATT_THREADS, smem>>>(out, lse, qkv, keymask, T, NH, KVH, HS);
    launchCheck();
}

// One block per (b, kv head): it alone writes that kv head's dk/dv, looping over the
// query heads of its group in order, so nothing races. Query rows go in tiles of TQ:
// phase A (one warp per query row) fills the tile's P and dS = P (dP - rowsum(P dP)) scale
// in shared memory and writes dq; phase B (one thread per (key row, dim)) adds
// dk += dS^T q and dv += P^T dy for the tile into fp32 sums in shared memory. dk and dv
// are stored once, after every query head of the group and every tile: in bf16 they
// are rounded once, not once per head and tile.
template <typename X>
__global__ void attention_backward_kernel(X* dqkv, const X* dout, const X* qkv, const float* lse, const int* keymask,
                                          int T, int NH, int KVH, int HS, int TQ, int accumulate) {
    extern __shared__ float smem[];
    int KS = HS + 1;
    float* ks = smem;                 // (T, HS+1)
    float* vs = ks + T * KS;          // (T, HS+1)
    float* dks = vs + T * KS;         // (T, HS) fp32 sum of dk over the group's heads and the tiles
    float* dvs = dks + T * HS;        // (T, HS) the same for dv
    float* P = dvs + T * HS;          // (TQ, T) probabilities of the tile's query rows
    float* dS = P + TQ * T;           // (TQ, T) gradients of the scaled scores
    float* rows = dS + TQ * T;        // (ATT_WARPS, 2*HS) each warp's q and dy rows
    int b = blockIdx.x / KVH, kvh = blockIdx.x % KVH, group = NH / KVH;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int QKV = (NH + 2 * KVH) * HS, koff = NH * HS + kvh * HS, voff = (NH + KVH) * HS + kvh * HS;
    const X* base = qkv + (size_t)b * T * QKV;
    X* dbase = dqkv + (size_t)b * T * QKV;
    const X* dybase = dout + (size_t)b * T * NH * HS;
    load_kv(ks, vs, base, T, QKV, koff, voff, HS);
    for (int idx = threadIdx.x; idx < T * HS; idx += blockDim.x) dks[idx] = dvs[idx] = 0.0f;  // each thread zeroes the entries it adds to
    __syncthreads();
    float scale = 1.0f / sqrtf((float)HS);
    float* q = rows + warp * 2 * HS;
    float* dy = q + HS;
    for (int g = 0; g < group; g++) {
        int h = kvh * group + g;
        for (int t0 = 0; t0 < T; t0 += TQ) {
            int t1 = min(T, t0 + TQ);
            // phase A: query row t owned by one warp
            for (int t = t0 + warp; t < t1; t += ATT_WARPS) {
                for (int i = lane; i < HS; i += 32) {
                    q[i] = to_float(base[(size_t)t * QKV + h * HS + i]);
                    dy[i] = to_float(dybase[(size_t)t * NH * HS + h * HS + i]);
                }
                __syncwarp();
                float L = lse[((size_t)b * NH + h) * T + t];
                float* prow = P + (t - t0) * T;
                float* dsrow = dS + (t - t0) * T;
                float pdp = 0.0f;
                for (int t2 = lane; t2 < T; t2 += 32) {
                    float p = 0.0f, dp = 0.0f;
                    if (t2 <= t && (keymask == NULL || keymask[b * T + t2])) {
                        float s = 0.0f;
                        for (int i = 0; i < HS; i++) { s += q[i] * ks[t2 * KS + i]; dp += dy[i] * vs[t2 * KS + i]; }
                        p = expf(s * scale - L);
                    }
                    prow[t2] = p;
                    dsrow[t2] = dp;
                    pdp += p * dp;
                }
                pdp = warp_sum(pdp);
                for (int t2 = lane; t2 < T; t2 += 32) dsrow[t2] = prow[t2] * (dsrow[t2] - pdp) * scale;
                __syncwarp();
                for (int i = lane; i < HS; i += 32) {
                    float acc = 0.0f;
                    for (int t2 = 0; t2 <= t; t2++) acc += dsrow[t2] * ks[t2 * KS + i];
                    X* dq = dbase + (size_t)t * QKV + h * HS + i;  // only this warp ever writes this row of head h
                    store(dq, accumulate ? to_float(*dq) + acc : acc);
                }
                __syncwarp();  // q and dy are rewritten for the next row
            }
            __syncthreads();
            // phase B: (key row t2, dim i) owned by one thread; keys after the tile's rows get nothing
            for (int idx = threadIdx.x; idx < T * HS; idx += blockDim.x) {
                int t2 = idx / HS, i = idx % HS;
                float dk = 0.0f, dv = 0.0f;
                for (int t = max(t0, t2); t < t1; t++) {
                    dk += dS[(t - t0) * T + t2] * to_float(base[(size_t)t * QKV + h * HS + i]);
                    dv += P[(t - t0) * T + t2] * to_float(dybase[(size_t)t * NH * HS + h * HS + i]);
                }
                dks[idx] += dk;
                dvs[idx] += dv;
            }
            __syncthreads();  // P and dS are rewritten by the next tile
        }
    }
    for (int idx = threadIdx.x; idx < T * HS; idx += blockDim.x) {  // the same thread owns idx as in phase B
        int t2 = idx / HS, i = idx % HS;
        X* dkp = dbase + (size_t)t2 * QKV + koff + i;
        X* dvp = dbase + (size_t)t2 * QKV + voff + i;
        store(dkp, accumulate ? to_float(*dkp) + dks[idx] : dks[idx]);
        store(dvp, accumulate ? to_float(*dvp) + dvs[idx] : dvs[idx]);
    }
}

template <typename X>
static void attention_backward_cuda(X* dqkv, const X* dout, const X* qkv, const float* lse, const int* keymask,
                                    int B, int T, int NH, int KVH, int HS, bool accumulate = true, int max_tile = 0) {
    // dqkv (B, T, QKV) += (= when !accumulate), dout (B, T, NH*HS), qkv (B, T, QKV), lse (B, NH, T), keymask (B, T) or NULL.
    // The whole query range is one tile when it fits (T = 74 at HS = 128 does on an H100); the tile size depends
    // only on T, HS and the GPU. max_tile > 0 caps it (the tests use it to make several tiles).
    int TQ = max_tile > 0 ? min(T, max_tile) : T;
    while (TQ > 1 && attention_backward_smem(T, HS, TQ) > (size_t)max_smem_optin) TQ = (TQ + 1) / 2;
    size_t smem = attention_backward_smem(T, HS, TQ);
    if (smem > (size_t)max_smem_optin) {
        die("attention_backward_cuda: T=%d, HS=%d needs %zu bytes of shared memory, the GPU allows %d\n"
            "  hint: shorten the item history (max_len)", T, HS, smem, max_smem_optin);
    }
    cudaCheck(cudaFuncSetAttribute(attention_backward_kernel<X>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    attention_backward_kernel<<<B * KVH, ATT_THREADS, smem>>>(dqkv, dout, qkv, lse, keymask, T, NH, KVH, HS, TQ, accumulate);
    launchCheck();
}

// ----------------------------------------------------------------------------
// SwiGLU and residual

template <typename X>
__global__ void swiglu_forward_kernel(X* out, const X* gateup, int N, int F) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)N * F) return;
    size_t n = idx / F, i = idx % F;
    float g = to_float(gateup[n * 2 * F + i]), u = to_float(gateup[n * 2 * F + F + i]);
    store(out + idx, g / (1.0f + expf(-g)) * u);
}

template <typename X>
static void swiglu_forward_cuda(X* out, const X* gateup, int N, int F) {
    // out (N, F), gateup (N, 2F) rows [gate | up]
    swiglu_forward_kernel<<<blocks_for((size_t)N * F, 256), 256>>>(out, gateup, N, F);
    launchCheck();
}

template <typename X>
__global__ void swiglu_backward_kernel(X* dgateup, const X* dout, const X* gateup, int N, int F, int accumulate) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)N * F) return;
    size_t n = idx / F, i = idx % F;
    float g = to_float(gateup[n * 2 * F + i]), u = to_float(gateup[n * 2 * F + F + i]);
    float sig = 1.0f / (1.0f + expf(-g));
    float silu = g * sig, d = to_float(dout[idx]);
    float dg = d * u * sig * (1.0f + g * (1.0f - sig)), du = d * silu;
    X* pg = dgateup + n * 2 * F + i;
    X* pu = pg + F;
    store(pg, accumulate ? to_float(*pg) + dg : dg);
    store(pu, accumulate ? to_float(*pu) + du : du);
}

template <typename X>
static void swiglu_backward_cuda(X* dgateup, const X* dout, const X* gateup, int N, int F, bool accumulate = true) {
    // dgateup (N, 2F) += (= when !accumulate), dout (N, F)
    swiglu_backward_kernel<<<blocks_for((size_t)N * F, 256), 256>>>(dgateup, dout, gateup, N, F, accumulate);
    launchCheck();
}

// out = a + b: the fp32 residual stream plus a branch output in the activation type
template <typename X>
__global__ void residual_forward_kernel(float* out, const float* a, const X* b, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a[i] + to_float(b[i]);
}

template <typename X>
static void residual_forward_cuda(float* out, const float* a, const X* b, size_t n) {
    residual_forward_kernel<<<blocks_for(n, 256), 256>>>(out, a, b, n);
    launchCheck();
}
// (no residual_backward_cuda: like the CPU model, the GPU model carries dresidual
// straight through both branches, so nothing calls it)

// fp32 -> the activation type, for a matmul's input (a float target needs no copy: the model passes the fp32 tensor)
__global__ void to_bf16_kernel(bf16* out, const float* in, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = __float2bfloat16(in[i]);
}

static void to_bf16_cuda(bf16* out, const float* in, size_t n) {
    to_bf16_kernel<<<blocks_for(n, 256), 256>>>(out, in, n);
    launchCheck();
}

// ----------------------------------------------------------------------------
// softmax cross-entropy over items, fused with the item logits and chunked:
// logits (B, I) = user (B, D) @ table (I, D)^T are made GPU_ITEM_CHUNK columns at a
// time into one (B, GPU_ITEM_CHUNK) fp32 buffer. Forward keeps per row an online
// max m and sum s of exp(z - m) across chunks, and the target's logit; backward
// remakes each chunk and turns it into dlogits = (exp(z - m) / s - onehot) dloss
// in place, then duser += dlogits @ table_chunk. Target 0 = no target (zero loss,
// no gradient), as on the CPU. stats (B, 3) = (m, s, target logit).

#define CE_THREADS 256

__global__ void ce_chunk_stats_kernel(float* stats, const float* logits, const int* targets, int i0, int n, int first) {
    int b = blockIdx.x;
    const float* z = logits + (size_t)b * n;
    float cmax = -INFINITY;
    for (int j = threadIdx.x; j < n; j += blockDim.x) cmax = fmaxf(cmax, z[j]);
    cmax = block_max(cmax);
    float csum = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) csum += expf(z[j] - cmax);
    csum = block_sum(csum);
    if (threadIdx.x == 0) {
        float* st = stats + (size_t)b * 3;
        if (first) {
            st[0] = cmax;
            st[1] = csum;
        } else {  // merge (m, s) with the chunk's (cmax, csum) under the larger max
            float m = fmaxf(st[0], cmax);
            st[1] = st[1] * expf(st[0] - m) + csum * expf(cmax - m);
            st[0] = m;
        }
        int t = targets[b];
        if (t >= i0 && t < i0 + n) st[2] = z[t - i0];
    }
}

__global__ void ce_finish_kernel(float* losses, const float* stats, const int* targets, int B) {
    int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= B) return;
    const float* st = stats + (size_t)b * 3;
    losses[b] = targets[b] > 0 ? -(st[2] - st[0] - logf(st[1])) : 0.0f;
}

__global__ void ce_chunk_grad_kernel(float* logits, const float* stats, const int* targets, int i0, int n, float dloss) {
    // logits (B, n) -> dlogits in place
    int b = blockIdx.x, t = targets[b];
    float* z = logits + (size_t)b * n;
    const float* st = stats + (size_t)b * 3;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        z[j] = t > 0 ? (expf(z[j] - st[0]) / st[1] - (i0 + j == t ? 1.0f : 0.0f)) * dloss : 0.0f;
    }
}

static void crossentropy_items_forward_cuda(float* losses, float* stats, const float* user, const float* table,
                                            const int* targets, int B, int D, int I) {
    // losses (B), stats (B, 3) cached for backward, user (B, D), table (I, D), targets (B) in [0, I)
    int IC = min(I, GPU_ITEM_CHUNK);
    float* logits = (float*)scratch(SCRATCH_LOGITS, (size_t)B * IC * sizeof(float));  // (B, IC)
    for (int i0 = 0; i0 < I; i0 += IC) {
        int n = min(IC, I - i0);
        gemm(logits, user, table + (size_t)i0 * D, B, n, D, false, true, false);
        ce_chunk_stats_kernel<<<B, CE_THREADS>>>(stats, logits, targets, i0, n, i0 == 0);
        launchCheck();
    }
    ce_finish_kernel<<<blocks_for(B, 256), 256>>>(losses, stats, targets, B);
    launchCheck();
}

static void crossentropy_items_backward_cuda(float* duser, float dloss, const float* stats, const float* user,
                                             const float* table, const int* targets, int B, int D, int I) {
    // duser (B, D) += d(sum_b dloss * loss_b)/d user; dloss is the CPU's dlosses[b], the same for every row
    int IC = min(I, GPU_ITEM_CHUNK);
    float* logits = (float*)scratch(SCRATCH_LOGITS, (size_t)B * IC * sizeof(float));  // (B, IC)
    for (int i0 = 0; i0 < I; i0 += IC) {
        int n = min(IC, I - i0);
        gemm(logits, user, table + (size_t)i0 * D, B, n, D, false, true, false);
        ce_chunk_grad_kernel<<<B, CE_THREADS>>>(logits, stats, targets, i0, n, dloss);
        launchCheck();
        gemm(duser, logits, table + (size_t)i0 * D, B, D, n, false, false, true);
    }
}

// out = (accumulate ? out : 0) + a + b * mean(rows), the mean in double as on the CPU; one block
__global__ void mean_rows_kernel(float* out, const float* rows, int B, float a, float b, int accumulate) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < B; i += blockDim.x) acc += rows[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) {
        float v = a + b * (float)(acc / B);
        *out = accumulate ? *out + v : v;
    }
}

static void mean_rows_cuda(float* out, const float* rows, int B, float a, float b, bool accumulate) {
    mean_rows_kernel<<<1, 1024>>>(out, rows, B, a, b, accumulate);
    launchCheck();
}

// ----------------------------------------------------------------------------
// top-k item scores per row across chunks. Order: higher score first, then the
// lower id; the pad item 0 is never ranked. Each round picks the best candidate
// strictly after the previous pick in that order (ids are unique, so nothing
// needs marking); candidates are the chunk and the running list of earlier chunks.

#define TOPK_THREADS 256

__device__ __forceinline__ bool ranks_before(float va, int ia, float vb, int ib) {
    return ib < 0 || va > vb || (va == vb && ia < ib);  // id -1 = empty slot, ranks last
}

__global__ void topk_chunk_kernel(float* top_val, int* top_id, const float* logits, int i0, int n, int k, int first) {
    // top_val, top_id (B, k) running list, updated in place; logits (B, n) of items i0..i0+n-1
    extern __shared__ float tk_smem[];
    float* old_val = tk_smem;                  // (k)
    int* old_id = (int*)(old_val + k);         // (k)
    __shared__ float s_val[TOPK_THREADS];
    __shared__ int s_id[TOPK_THREADS];
    int b = blockIdx.x, tid = threadIdx.x;
    const float* z = logits + (size_t)b * n;
    for (int j = tid; j < k; j += blockDim.x) {
        old_val[j] = first ? -INFINITY : top_val[(size_t)b * k + j];
        old_id[j] = first ? -1 : top_id[(size_t)b * k + j];
    }
    __syncthreads();
    float prev_val = INFINITY;
    int prev_id = -1;  // no pick yet: everything is after it
    for (int r = 0; r < k; r++) {
        float bv = -INFINITY;
        int bi = -1;
        for (int j = tid; j < n + k; j += blockDim.x) {
            float v = j < n ? z[j] : old_val[j - n];
            int id = j < n ? i0 + j : old_id[j - n];
            if (id <= 0) continue;  // the pad item, or an empty slot
            bool after_prev = prev_id < 0 || ranks_before(prev_val, prev_id, v, id);
            if (after_prev && ranks_before(v, id, bv, bi)) { bv = v; bi = id; }
        }
        s_val[tid] = bv;
        s_id[tid] = bi;
        __syncthreads();
        for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {  // fixed tree: deterministic
            if (tid < stride && s_id[tid + stride] >= 0 && ranks_before(s_val[tid + stride], s_id[tid + stride], s_val[tid], s_id[tid])) {
                s_val[tid] = s_val[tid + stride];
                s_id[tid] = s_id[tid + stride];
            }
            __syncthreads();
        }
        prev_val = s_val[0];
        prev_id = s_id[0];
        if (tid == 0) {
            top_val[(size_t)b * k + r] = prev_val;
            top_id[(size_t)b * k + r] = prev_id;
        }
        __syncthreads();  // s_val/s_id are rewritten next round
        if (prev_id < 0) {  // fewer than k items: the rest stay empty
            for (int j = r + 1 + tid; j < k; j += blockDim.x) { top_val[(size_t)b * k + j] = -INFINITY; top_id[(size_t)b * k + j] = -1; }
            break;
        }
    }
}

// ----------------------------------------------------------------------------
// SLMRec feature distillation on (B, C) fp32 last-token states: one block per row

#define KD_THREADS 128
enum { KD_COSINE, KD_L2 };

__global__ void kd_rows_kernel(float* rows, const float* a, const float* b, int C, int kind) {
    // rows (B): cos(a_b, b_b) or ||a_b - b_b||
    const float* x = a + (size_t)blockIdx.x * C;
    const float* y = b + (size_t)blockIdx.x * C;
    float xy = 0.0f, xx = 0.0f, yy = 0.0f;
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        if (kind == KD_COSINE) { xy += x[i] * y[i]; xx += x[i] * x[i]; yy += y[i] * y[i]; }
        else { float d = x[i] - y[i]; xx += d * d; }
    }
    xy = block_sum(xy); xx = block_sum(xx); yy = block_sum(yy);
    if (threadIdx.x == 0) rows[blockIdx.x] = kind == KD_COSINE ? xy / fmaxf(sqrtf(xx) * sqrtf(yy), 1e-8f) : sqrtf(xx);
}

// *out += 1 - mean_b cos(a_b, b_b); rows (B) is scratch
static void kd_cosine_forward_cuda(float* out, float* rows, const float* a, const float* b, int B, int C) {
    kd_rows_kernel<<<B, KD_THREADS>>>(rows, a, b, C, KD_COSINE);
    launchCheck();
    mean_rows_cuda(out, rows, B, 1.0f, -1.0f, true);
}

// *out += mean_b ||a_b - b_b||_2
static void kd_l2_forward_cuda(float* out, float* rows, const float* a, const float* b, int B, int C) {
    kd_rows_kernel<<<B, KD_THREADS>>>(rows, a, b, C, KD_L2);
    launchCheck();
    mean_rows_cuda(out, rows, B, 0.0f, 1.0f, true);
}

__global__ void kd_cosine_backward_kernel(float* da, float dloss, const float* a, const float* b, int B, int C) {
    const float* x = a + (size_t)blockIdx.x * C;
    const float* y = b + (size_t)blockIdx.x * C;
    float xy = 0.0f, xx = 0.0f, yy = 0.0f;
    for (int i = threadIdx.x; i < C; i += blockDim.x) { xy += x[i] * y[i]; xx += x[i] * x[i]; yy += y[i] * y[i]; }
    xy = block_sum(xy); xx = block_sum(xx); yy = block_sum(yy);
    float norms = sqrtf(xx) * sqrtf(yy), cosv = xy / fmaxf(norms, 1e-8f);
    float along_x = norms > 1e-8f ? cosv / xx : 0.0f;  // clamped forward: see kd_cosine_backward (layers.h)
    float k = -dloss / B;
    float* d = da + (size_t)blockIdx.x * C;
    for (int i = threadIdx.x; i < C; i += blockDim.x) d[i] += k * (y[i] / fmaxf(norms, 1e-8f) - along_x * x[i]);
}

static void kd_cosine_backward_cuda(float* da, float dloss, const float* a, const float* b, int B, int C) {
    // da (B, C) +=; the teacher side b is frozen
    kd_cosine_backward_kernel<<<B, KD_THREADS>>>(da, dloss, a, b, B, C);
    launchCheck();
}

__global__ void kd_l2_backward_kernel(float* da, float dloss, const float* a, const float* b, int B, int C) {
    const float* x = a + (size_t)blockIdx.x * C;
    const float* y = b + (size_t)blockIdx.x * C;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < C; i += blockDim.x) { float d = x[i] - y[i]; ss += d * d; }
    ss = block_sum(ss);
    float norm = sqrtf(ss);
    if (norm == 0.0f) return;  // subgradient 0 at a == b
    float* d = da + (size_t)blockIdx.x * C;
    for (int i = threadIdx.x; i < C; i += blockDim.x) d[i] += dloss / B * (x[i] - y[i]) / norm;
}

static void kd_l2_backward_cuda(float* da, float dloss, const float* a, const float* b, int B, int C) {
    kd_l2_backward_kernel<<<B, KD_THREADS>>>(da, dloss, a, b, B, C);
    launchCheck();
}

// ----------------------------------------------------------------------------
// AdamW with global-norm clipping, all on the device: a fixed grid of blocks
// writes partial sums of squares (double), one thread adds them in order and
// turns the norm into the clip scale, and the update reads that scale from
// device memory, so the host never waits.

__global__ void grad_sumsq_partial_kernel(double* partial, const float* g, size_t n) {
    double acc = 0.0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        acc += (double)g[i] * g[i];
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void clip_scale_kernel(float* norm_and_scale, const double* partial, int n_partial, float clip) {
    double sumsq = 0.0;
    for (int i = 0; i < n_partial; i++) sumsq += partial[i];
    double norm = sqrt(sumsq);
    norm_and_scale[0] = (float)norm;
    norm_and_scale[1] = (clip <= 0.0f || norm <= clip) ? 1.0f : (float)(clip / (norm + 1e-6));  // optim.h clip_scale
}

// norm_and_scale (2) on the device: the gradient norm and the factor AdamW multiplies gradients by
static void grad_clip_cuda(float* norm_and_scale, const float* grads, size_t n, float clip) {
    double* partial = (double*)scratch(SCRATCH_REDUCE, GPU_NORM_BLOCKS * sizeof(double));
    grad_sumsq_partial_kernel<<<GPU_NORM_BLOCKS, 256>>>(partial, grads, n);
    launchCheck();
    clip_scale_kernel<<<1, 1>>>(norm_and_scale, partial, GPU_NORM_BLOCKS, clip);
    launchCheck();
}

__global__ void adamw_kernel(float* params, bf16* shadow, const float* grads, float* m, float* v, size_t n,
                             float beta1, float beta2, float eps, float weight_decay, float lr, float bc1, float bc2,
                             const float* grad_scale) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = grads[i] * *grad_scale;
    float mi = beta1 * m[i] + (1.0f - beta1) * g;
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float mhat = mi / bc1, vhat = vi / bc2;
    float p = params[i];
    p -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * p);
    params[i] = p;
    if (shadow) shadow[i] = __float2bfloat16(p);  // the bf16 copy the matmuls read
}

static void adamw_update_cuda(float* params, const float* grads, float* m, float* v, size_t n, const AdamWConfig* c,
                              float lr, int t, const float* grad_scale, bf16* shadow) {
    // params, grads, m, v (n); t the 1-based step; grad_scale a device scalar (grad_clip_cuda); shadow (n) or NULL
    float bc1 = 1.0f - powf(c->beta1, (float)t), bc2 = 1.0f - powf(c->beta2, (float)t);
    adamw_kernel<<<blocks_for(n, 256), 256>>>(params, shadow, grads, m, v, n, c->beta1, c->beta2, c->eps,
                                              c->weight_decay, lr, bc1, bc2, grad_scale);
    launchCheck();
}

// ----------------------------------------------------------------------------
// E4SRec on the device: the same parameter layout as the CPU arena (one memcpy
// each way), followed by the distillation adapters when there are any. Each
// allocation is one arena of src/gpu_plan.h, sized there (gpu_plan).

#define GPU_ACT_TYPE_X X
#define GPU_ACT_TYPE_F float
template <typename X>
struct GpuActs {  // GPU_ACTS then GPU_DACTS (src/gpu_plan.h): names, types and shapes there
#define GPU_ACT_FIELD(name, type, count) GPU_ACT_TYPE_##type* name;
    GPU_ACTS(GPU_ACT_FIELD)
    GPU_DACTS(GPU_ACT_FIELD)
#undef GPU_ACT_FIELD
};

// SCALAR_CE is the last-token CE, SCALAR_POS_CE the every-position CE (0 without it)
enum { SCALAR_CE, SCALAR_POS_CE, SCALAR_DCOS, SCALAR_DNORM, SCALAR_LMS, SCALAR_TOTAL, SCALAR_TOTAL_SUM, SCALAR_GRAD_NORM,
       SCALAR_CLIP_SCALE, NUM_SCALARS };
static_assert(NUM_SCALARS == GPU_NUM_SCALARS, "src/gpu_plan.h sizes the scalars");

struct GpuE4SRec {
    E4SRecConfig cfg;
    int use_bf16;              // 1: bf16 activations and weight shadow
    int train;                 // 1: gradients, moments, every layer's activations; 0: forward only
    float position_ce;         // weight of the every-position CE (a training handle's; 0 = the last token only)
    float dropout;             // decoder dropout of a training handle's steps (method.md 4.8; 0 = none)
    uint64_t dropout_seed;     // the next step's masks (gpu_e4srec_set_dropout_seed)
    int dropping;              // 1 while a training step runs: its forward and backward apply the masks
    GpuPlan plan;              // the bytes of each arena below (src/gpu_plan.h)
    size_t param_sizes[E4SREC_NUM_PARAMS];
    size_t num_params;         // the E4SRec parameters (the CPU arena)
    size_t num_total;          // plus the adapters
    float* params_memory;      // (num_total) fp32 master weights
    bf16* params_bf16;         // (num_total) bf16 shadow, or NULL on the fp32 path
    float* grads_memory;       // (num_total) or NULL (forward only)
    float* m_memory;           // (2, num_total) AdamW first then second moments, or NULL
    float* v_memory;           // m_memory + num_total
    E4SRecParams params, grads;  // device pointers carved as on the CPU
    float* adapters;           // (A, D, C) inside params_memory
    float* dadapters;          // (A, D, C) inside grads_memory
    void* inputs_memory;       // the inputs arena:
    float* item_table;         //   (I, D) frozen
    int* prompt_ids;           //   (P1+P2) instruction then response ids; position t >= P1+S reads index t - S
    int* items;                //   (max_B, S) the batch's history
    int* targets;              //   (max_B)
    int* keymask;              //   (max_B, T)
    float* rope;               //   (2, T, HS/2) RoPE cosines then sines
    float* scalars;            //   (NUM_SCALARS) loss terms, their running sum, gradient norm, clip scale
    int* item_rows;            //   (R_it) with the every-position CE: each real history item's row in the (B, T) batch
    int* pos_targets;          //   (R_it) the item its state is scored against (e4srec_position_ce_forward)
    int* host_batch;           // (max_B (S+1), plus 2 max_B S with position_ce) pinned staging: items (B, S), targets (B),
                               // then item_rows and pos_targets (up to B S each)
    int R_it;                  // the batch's real history items (with the every-position CE; else 0)
    cudaEvent_t batch_copied;  // the staging buffer's last upload has left the host
    int max_B, B;
    void* acts_memory;
    void* dacts_memory;        // training only
    GpuActs<float> acts_f;     // the one in use follows use_bf16
    GpuActs<bf16> acts_h;
    // distillation (a student only)
    struct GpuE4SRec* teacher;
    int blocks;
    float lambda_cos, lambda_norm, lambda_ms;
    // optimizer
    AdamWConfig opt;
    int step;
    int steps_unread;          // steps whose total loss is in SCALAR_TOTAL_SUM, not yet read by gpu_e4srec_losses
};

static GpuActs<float>& acts_of(GpuE4SRec* g, float*) { return g->acts_f; }
static GpuActs<bf16>& acts_of(GpuE4SRec* g, bf16*) { return g->acts_h; }
template <typename X> static GpuActs<X>& acts(GpuE4SRec* g) { return acts_of(g, (X*)NULL); }

// the copy of a parameter the matmuls read: itself in fp32, its bf16 shadow otherwise
template <typename X> static const X* weight(const GpuE4SRec* g, const float* p);
template <> const float* weight<float>(const GpuE4SRec*, const float* p) { return p; }
template <> const bf16* weight<bf16>(const GpuE4SRec* g, const float* p) { return g->params_bf16 + (p - g->params_memory); }

static int gpu_adapters(const GpuE4SRec* g) { return g->blocks > 1 ? g->blocks - 1 : 0; }

// where layer l's saved tensors live: its own slab when training, one slab reused otherwise
static size_t layer_slot(const GpuE4SRec* g, int l) { return g->train ? (size_t)l : 0; }
// residual k (k = 0..L): its own slab when training, else two slabs used in turn
static size_t residual_slot(const GpuE4SRec* g, int k) { return g->train ? (size_t)k : (size_t)(k % 2); }

// one allocation carved into tensors of the given byte sizes, each 256-byte aligned (gpu_align), zeroed
static void* device_arena(void** ptrs[], const size_t* bytes, int n) {
    size_t total = gpu_sum_aligned(bytes, n);
    char* memory = (char*)device_alloc(total);
    cudaCheck(cudaMemset(memory, 0, total));
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        *ptrs[i] = memory + off;
        off += gpu_align(bytes[i]);
    }
    return memory;
}

template <typename X>
static void e4srec_alloc_acts_cuda(GpuE4SRec* g) {
    size_t bytes[GPU_NUM_ACTS + GPU_NUM_DACTS];
    gpu_act_bytes(bytes, &g->cfg, gpu_adapters(g), g->max_B, g->use_bf16, g->train, g->position_ce > 0.0f);
    GpuActs<X>& a = acts<X>(g);
#define GPU_ACT_POINTER(name, type, count) (void**)&a.name,
    void** ptrs[GPU_NUM_ACTS + GPU_NUM_DACTS] = {GPU_ACTS(GPU_ACT_POINTER) GPU_DACTS(GPU_ACT_POINTER)};
#undef GPU_ACT_POINTER
    g->acts_memory = device_arena(ptrs, bytes, GPU_NUM_ACTS);
    if (g->train) g->dacts_memory = device_arena(ptrs + GPU_NUM_ACTS, bytes + GPU_NUM_ACTS, GPU_NUM_DACTS);
}

// ---- forward

__global__ void keymask_kernel(int* keymask, const int* items, int B, int T, int P1, int S) {
    // keymask (B, T): prompt tokens are real, history positions real unless the pad item 0
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B * T) return;
    int b = i / T, t = i % T;
    keymask[i] = (t < P1 || t >= P1 + S) ? 1 : items[b * S + t - P1] > 0;
}

template <typename X>
__global__ void e4srec_embed_kernel(float* out, const float* tok_emb, const int* prompt_ids, const X* proj,
                                    int B, int T, int P1, int S, int C) {
    // out (B, T, C) = [tok_emb[instr] | proj | tok_emb[resp]] per sample; proj (B, S, C)
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)B * T * C) return;
    int c = (int)(i % C);
    size_t bt = i / C;
    int t = (int)(bt % T), b = (int)(bt / T);
    if (t >= P1 && t < P1 + S) out[i] = to_float(proj[((size_t)b * S + t - P1) * C + c]);
    else out[i] = tok_emb[(size_t)prompt_ids[t < P1 ? t : t - S] * C + c];
}

// sample b's last real slot in the padded (B, T) batch, as e4srec_last_row: the response's last
// token, T-1; without a response prompt the last history item, T-1 too (histories are
// left-padded), unless the history is empty: then the instruction's last token, P1-1
__device__ int last_slot(const int* items, int b, int P1, int S, int P2) {
    return P2 > 0 || items[(size_t)b * S + S - 1] != 0 ? P1 + S + P2 - 1 : P1 - 1;
}

template <typename X>
__global__ void gather_last_kernel(float* last, const X* h, const int* items, int B, int P1, int S, int P2, int C) {
    // last (B, C) = each sample's last real slot of h (B, T, C), as fp32
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B * C) return;
    int b = i / C, c = i % C;
    last[i] = to_float(h[((size_t)b * (P1 + S + P2) + last_slot(items, b, P1, S, P2)) * C + c]);
}

template <typename X>
static void gather_last_cuda(float* last, const X* h, const GpuE4SRec* g, int B) {
    const E4SRecConfig* c = &g->cfg;
    gather_last_kernel<<<blocks_for((size_t)B * c->C, 256), 256>>>(last, h, g->items, B, c->P1, c->S, c->P2, c->C);
    launchCheck();
}

// out (B, T, C) = in * the mask of `site` (e4srec_dropout_forward): element (b, t, c) of the
// padded batch is dropout_mask_at of (seed, site, sample, t, c), with sample -1 for the
// instruction's positions t < P1, the rows the CPU keeps once for every sample. Its
// backward is the same product on the gradient (out = in allowed: in place).
template <typename XO, typename XI>
__global__ void dropout_rows_kernel(XO* out, const XI* in, uint64_t seed, int site, float p, int B, int T, int P1, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)B * T * C) return;
    int c = (int)(i % C);
    size_t bt = i / C;
    int t = (int)(bt % T), b = (int)(bt / T);
    store(out + i, to_float(in[i]) * dropout_mask_at(dropout_row_key(seed, site, t < P1 ? -1 : b, t), c, p));
}

template <typename XO, typename XI>
static void dropout_rows_cuda(const GpuE4SRec* g, XO* out, const XI* in, int site) {
    const E4SRecConfig* c = &g->cfg;
    size_t n = (size_t)g->B * e4srec_T(c) * c->C;
    dropout_rows_kernel<<<blocks_for(n, 256), 256>>>(out, in, g->dropout_seed, site, g->dropout, g->B, e4srec_T(c), c->P1, c->C);
    launchCheck();
}

template <typename X>
static void e4srec_forward_cuda(GpuE4SRec* g, int B) {
    const E4SRecConfig* c = &g->cfg;
    int T = e4srec_T(c), C = c->C, S = c->S, D = c->D, QKV = e4srec_QKV(c), Q = c->NH * c->HS, F = c->F, L = c->L;
    size_t BT = (size_t)B * T;
    const E4SRecParams* p = &g->params;
    GpuActs<X>& a = acts<X>(g);
    g->B = B;
    keymask_kernel<<<blocks_for(BT, 256), 256>>>(g->keymask, g->items, B, T, c->P1, S);
    launchCheck();
    embedding_forward_cuda(a.x_items, g->items, g->item_table, B * S, D);
    matmul_forward_cuda(a.proj, a.x_items, weight<X>(g, p->proj_w), p->proj_b, B * S, D, C);
    e4srec_embed_kernel<<<blocks_for(BT * C, 256), 256>>>(a.residual, p->tok_emb, g->prompt_ids, a.proj, B, T, c->P1, S, C);
    launchCheck();
    if (g->dropping) dropout_rows_cuda(g, a.residual, a.residual, E4SREC_SITE_INPUT);
    for (int l = 0; l < L; l++) {
        size_t s = layer_slot(g, l);
        float* res_in = a.residual + residual_slot(g, l) * BT * C;
        float* res_out = a.residual + residual_slot(g, l + 1) * BT * C;
        float* mid = a.resid_mid + s * BT * C;
        X* ln1 = a.ln1 + s * BT * C;
        X* qkv = a.qkv + s * BT * QKV;
        X* atty = a.atty + s * BT * Q;
        X* ln2 = a.ln2 + s * BT * C;
        X* gateup = a.gateup + s * BT * 2 * F;
        X* sw = a.swiglu + s * BT * F;
        gather_last_cuda(a.last + (size_t)l * B * C, res_in, g, B);  // before a forward-only handle reuses the slot
        rmsnorm_forward_cuda(ln1, a.ln1_rstd + s * BT, res_in, p->rms1 + (size_t)l * C, B * T, C, c->rms_eps);
        matmul_forward_cuda(qkv, ln1, weight<X>(g, p->wqkv + (size_t)l * QKV * C), (const float*)NULL, B * T, C, QKV);
        rope_forward_cuda(qkv, g->rope, B * T, T, QKV, c->NH + c->KVH, c->HS);
        attention_forward_cuda(atty, a.lse + s * B * c->NH * T, qkv, g->keymask, B, T, c->NH, c->KVH, c->HS);
        matmul_forward_cuda(a.branch, atty, weight<X>(g, p->wo + (size_t)l * C * Q), (const float*)NULL, B * T, Q, C);
        if (g->dropping) dropout_rows_cuda(g, a.branch, a.branch, E4SREC_SITE_ATT(l));
        residual_forward_cuda(mid, res_in, a.branch, BT * C);
        rmsnorm_forward_cuda(ln2, a.ln2_rstd + s * BT, mid, p->rms2 + (size_t)l * C, B * T, C, c->rms_eps);
        matmul_forward_cuda(gateup, ln2, weight<X>(g, p->wgateup + (size_t)l * 2 * F * C), (const float*)NULL, B * T, C, 2 * F);
        swiglu_forward_cuda(sw, gateup, B * T, F);
        matmul_forward_cuda(a.branch, sw, weight<X>(g, p->wdown + (size_t)l * C * F), (const float*)NULL, B * T, F, C);
        if (g->dropping) dropout_rows_cuda(g, a.branch, a.branch, E4SREC_SITE_MLP(l));
        residual_forward_cuda(res_out, mid, a.branch, BT * C);
    }
    rmsnorm_forward_cuda(a.lnf, a.lnf_rstd, a.residual + residual_slot(g, L) * BT * C, p->rms_final, B * T, C, c->rms_eps);
    gather_last_cuda(a.last + (size_t)L * B * C, a.lnf, g, B);
    // the user vector in fp32 from the fp32 score weight, as the peer's u.float() @ table.t()
    matmul_forward_cuda(a.user, a.last + (size_t)L * B * C, p->score_w, (const float*)NULL, B, C, D);
}

// ---- the every-position CE (e4srec.h): the final hidden state at each of the batch's
// R_it real history items, through the same score, against the next real item of its
// history (the last one's against the sample's target). upload_batch lists the items
// on the host in the CPU's packed order: item_rows (their rows in the padded (B, T)
// batch) and pos_targets. The (R_it, I) logits are made max_B items at a time.

template <typename X>
__global__ void add_rows_kernel(X* dh, const float* drows, const int* rows, int n, int C) {
    // dh[rows[i], :] += drows (n, C); dh (B*T, C); the rows are distinct, so no two threads add to one entry
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)n * C) return;
    size_t i = idx / C;
    int c = (int)(idx % C);
    X* d = dh + (size_t)rows[i] * C + c;
    store(d, to_float(*d) + drows[idx]);
}

// the mean CE over the R_it items into SCALAR_POS_CE; fills pos_h, pos_user, pos_stats, pos_losses
template <typename X>
static void e4srec_position_ce_forward_cuda(GpuE4SRec* g) {
    const E4SRecConfig* c = &g->cfg;
    int C = c->C, D = c->D, I = c->I, n_it = g->R_it;
    GpuActs<X>& a = acts<X>(g);
    if (n_it == 0) {  // a batch of empty histories: 0, as on the CPU (a mean over no rows would be 0/0)
        cudaCheck(cudaMemsetAsync(g->scalars + SCALAR_POS_CE, 0, sizeof(float)));
        return;
    }
    embedding_forward_cuda(a.pos_h, g->item_rows, a.lnf, n_it, C);  // (R_it, C) fp32 rows of lnf (B*T, C)
    matmul_forward_cuda(a.pos_user, a.pos_h, g->params.score_w, (const float*)NULL, n_it, C, D);
    for (int i0 = 0; i0 < n_it; i0 += g->max_B) {
        int n = min(g->max_B, n_it - i0);
        crossentropy_items_forward_cuda(a.pos_losses + i0, a.pos_stats + (size_t)i0 * 3, a.pos_user + (size_t)i0 * D,
                                        g->item_table, g->pos_targets + i0, n, D, I);
    }
    mean_rows_cuda(g->scalars + SCALAR_POS_CE, a.pos_losses, n_it, 0.0f, 1.0f, false);
}

// adds the gradient of weight * the every-position CE into score's gradient and writes dpos_h,
// which e4srec_backward_cuda adds into the final RMSNorm's output gradient at the item rows
template <typename X>
static void e4srec_position_ce_backward_cuda(GpuE4SRec* g, float weight) {
    const E4SRecConfig* c = &g->cfg;
    int C = c->C, D = c->D, I = c->I, n_it = g->R_it;
    GpuActs<X>& a = acts<X>(g);
    if (n_it == 0) return;
    cudaCheck(cudaMemsetAsync(a.dpos_user, 0, (size_t)n_it * D * sizeof(float)));
    for (int i0 = 0; i0 < n_it; i0 += g->max_B) {
        int n = min(g->max_B, n_it - i0);
        crossentropy_items_backward_cuda(a.dpos_user + (size_t)i0 * D, weight / n_it, a.pos_stats + (size_t)i0 * 3,
                                         a.pos_user + (size_t)i0 * D, g->item_table, g->pos_targets + i0, n, D, I);
    }
    matmul_backward_cuda(a.dpos_h, g->grads.score_w, (float*)NULL, a.dpos_user, a.pos_h, g->params.score_w, n_it, C, D, false);
}

// ---- backward

template <typename X>
__global__ void inject_last_kernel(X* dh, const float* dlast, const int* items, int B, int P1, int S, int P2, int C, int accumulate) {
    // dh (B, T, C) at each sample's last real slot (+)= dlast (B, C)
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B * C) return;
    int b = i / C, c = i % C;
    X* d = dh + ((size_t)b * (P1 + S + P2) + last_slot(items, b, P1, S, P2)) * C + c;
    store(d, accumulate ? to_float(*d) + dlast[i] : dlast[i]);
}

template <typename X>
static void inject_last_cuda(X* dh, const float* dlast, const GpuE4SRec* g, int accumulate) {
    const E4SRecConfig* c = &g->cfg;
    inject_last_kernel<<<blocks_for((size_t)g->B * c->C, 256), 256>>>(dh, dlast, g->items, g->B, c->P1, c->S, c->P2, c->C, accumulate);
    launchCheck();
}

__global__ void prompt_grad_sum_kernel(float* dprompt, const float* dres, int B, int T, int P1, int S, int C) {
    // dprompt (P1+P2, C) = sum over the batch, in order, of dres (B, T, C) at each prompt position
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int P = T - S;
    if (i >= P * C) return;
    int pp = i / C, c = i % C, t = pp < P1 ? pp : pp + S;
    float acc = 0.0f;
    for (int b = 0; b < B; b++) acc += dres[((size_t)b * T + t) * C + c];
    dprompt[i] = acc;
}

template <typename X>
__global__ void history_grad_kernel(X* dproj, const float* dres, int B, int T, int P1, int S, int C) {
    // dproj (B, S, C) = dres (B, T, C) at the history positions
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)B * S * C) return;
    int c = (int)(i % C);
    size_t bs = i / C;
    int s = (int)(bs % S), b = (int)(bs / S);
    store(dproj + i, dres[((size_t)b * T + P1 + s) * C + c]);
}

// a residual branch's output gradient as a matmul operand of the activation type (e4srec_dbranch):
// while a step drops, dresidual through the branch's mask into buf; else dresidual itself on the
// fp32 path, rounded into buf on the bf16 one
static const float* branch_gradient(const GpuE4SRec* g, float* dresidual, float* buf, int site) {
    if (!g->dropping) return dresidual;
    dropout_rows_cuda(g, buf, dresidual, site);
    return buf;
}
static const bf16* branch_gradient(const GpuE4SRec* g, float* dresidual, bf16* buf, int site) {
    if (g->dropping) dropout_rows_cuda(g, buf, dresidual, site);
    else to_bf16_cuda(buf, dresidual, (size_t)g->B * e4srec_T(&g->cfg) * g->cfg.C);
    return buf;
}

// backpropagates acts.dlast (every depth's last-token gradient) into grads (e4srec_backward)
template <typename X>
static void e4srec_backward_cuda(GpuE4SRec* g) {
    const E4SRecConfig* c = &g->cfg;
    int B = g->B, T = e4srec_T(c), C = c->C, S = c->S, QKV = e4srec_QKV(c), Q = c->NH * c->HS, F = c->F, L = c->L;
    size_t BT = (size_t)B * T;
    const E4SRecParams* p = &g->params;
    const E4SRecParams* gr = &g->grads;
    GpuActs<X>& a = acts<X>(g);
    // final RMSNorm: the last token carries a gradient, and with the every-position CE each real history item
    cudaCheck(cudaMemsetAsync(a.dln, 0, BT * C * sizeof(X)));
    cudaCheck(cudaMemsetAsync(a.dresidual, 0, BT * C * sizeof(float)));
    inject_last_cuda(a.dln, a.dlast + (size_t)L * B * C, g, 0);
    if (g->R_it > 0) {  // R_it is 0 without the every-position CE
        add_rows_kernel<<<blocks_for((size_t)g->R_it * C, 256), 256>>>(a.dln, a.dpos_h, g->item_rows, g->R_it, C);
        launchCheck();
    }
    rmsnorm_backward_cuda(a.dresidual, gr->rms_final, a.dln, a.residual + (size_t)L * BT * C, p->rms_final, a.lnf_rstd, B * T, C);
    for (int l = L - 1; l >= 0; l--) {
        const float* res_in = a.residual + l * BT * C;
        const float* mid = a.resid_mid + l * BT * C;
        // dresidual holds d(residual[l+1]) = d(mid) = d(mlp branch after its dropout)
        const X* dbranch = branch_gradient(g, a.dresidual, a.dbranch, E4SREC_SITE_MLP(l));
        matmul_backward_cuda(a.dswiglu, gr->wdown + (size_t)l * C * F, (float*)NULL, dbranch, a.swiglu + l * BT * F,
                             weight<X>(g, p->wdown + (size_t)l * C * F), B * T, F, C, false);
        swiglu_backward_cuda(a.dgateup, a.dswiglu, a.gateup + l * BT * 2 * F, B * T, F, false);
        matmul_backward_cuda(a.dln, gr->wgateup + (size_t)l * 2 * F * C, (float*)NULL, a.dgateup, a.ln2 + l * BT * C,
                             weight<X>(g, p->wgateup + (size_t)l * 2 * F * C), B * T, C, 2 * F, false);
        rmsnorm_backward_cuda(a.dresidual, gr->rms2 + (size_t)l * C, a.dln, mid, p->rms2 + (size_t)l * C, a.ln2_rstd + l * BT, B * T, C);
        // dresidual now holds d(mid) = d(residual[l]) via the skip + d(attention branch after its dropout)
        dbranch = branch_gradient(g, a.dresidual, a.dbranch, E4SREC_SITE_ATT(l));
        matmul_backward_cuda(a.datty, gr->wo + (size_t)l * C * Q, (float*)NULL, dbranch, a.atty + l * BT * Q,
                             weight<X>(g, p->wo + (size_t)l * C * Q), B * T, Q, C, false);
        attention_backward_cuda(a.dqkv, a.datty, a.qkv + l * BT * QKV, a.lse + (size_t)l * B * c->NH * T, g->keymask,
                                B, T, c->NH, c->KVH, c->HS, false);
        rope_backward_cuda(a.dqkv, g->rope, B * T, T, QKV, c->NH + c->KVH, c->HS);
        matmul_backward_cuda(a.dln, gr->wqkv + (size_t)l * QKV * C, (float*)NULL, a.dqkv, a.ln1 + l * BT * C,
                             weight<X>(g, p->wqkv + (size_t)l * QKV * C), B * T, C, QKV, false);
        rmsnorm_backward_cuda(a.dresidual, gr->rms1 + (size_t)l * C, a.dln, res_in, p->rms1 + (size_t)l * C, a.ln1_rstd + l * BT, B * T, C);
        // add what distillation injected at this depth's last token
        inject_last_cuda(a.dresidual, a.dlast + (size_t)l * B * C, g, 1);
    }
    // embeddings, through the input rows' dropout mask: prompt positions summed over the batch, then
    // into tok_emb; history positions through input_proj
    if (g->dropping) dropout_rows_cuda(g, a.dresidual, a.dresidual, E4SREC_SITE_INPUT);
    int P = c->P1 + c->P2;
    if (P > 0) {
        prompt_grad_sum_kernel<<<blocks_for((size_t)P * C, 256), 256>>>(a.dprompt, a.dresidual, B, T, c->P1, S, C);
        launchCheck();
        embedding_backward_cuda(gr->tok_emb, a.dprompt, g->prompt_ids, P, C);
    }
    history_grad_kernel<<<blocks_for((size_t)B * S * C, 256), 256>>>(a.dproj, a.dresidual, B, T, c->P1, S, C);
    launchCheck();
    matmul_backward_cuda((X*)NULL, gr->proj_w, gr->proj_b, a.dproj, a.x_items, weight<X>(g, p->proj_w), B * S, c->D, C);
}

// ---- one training step: gradients_cuda (batch, forward, loss, backward), then optimizer_step_cuda

static void upload_batch(GpuE4SRec* g, const int* items, const int* targets, int B) {
    const E4SRecConfig* c = &g->cfg;
    if (B < 1 || B > g->max_B) die("gpu: batch of %d rows, this model was created for 1..%d", B, g->max_B);
    for (size_t i = 0; i < (size_t)B * c->S; i++) {
        if (items[i] < 0 || items[i] >= c->I) die("gpu: item id %d at batch row %zu is outside the item table (0..%d)", items[i], i / c->S, c->I - 1);
    }
    for (int b = 0; targets && b < B; b++) {
        if (targets[b] < 0 || targets[b] >= c->I) die("gpu: target %d at batch row %d is outside the item table (0..%d)", targets[b], b, c->I - 1);
    }
    for (int b = 0; c->P1 + c->P2 == 0 && b < B; b++) {  // as e4srec_pack: the sample has no slot to score
        if (items[(size_t)b * c->S + c->S - 1] == 0) die("gpu: batch row %d has no token (an empty history and no prompt)", b);
    }
    // the pinned buffer is reused: wait only until its previous upload has left (the start of the previous step)
    cudaCheck(cudaEventSynchronize(g->batch_copied));
    size_t n_items = (size_t)B * c->S;
    memcpy(g->host_batch, items, n_items * sizeof(int));
    if (targets) memcpy(g->host_batch + n_items, targets, B * sizeof(int));
    cudaCheck(cudaMemcpyAsync(g->items, g->host_batch, n_items * sizeof(int), cudaMemcpyHostToDevice, 0));
    if (targets) cudaCheck(cudaMemcpyAsync(g->targets, g->host_batch + n_items, B * sizeof(int), cudaMemcpyHostToDevice, 0));
    // the every-position CE's items, in the CPU's packed order (sample by sample, slot by slot) with the
    // targets of e4srec_position_ce_forward: the next real item of the sample, the last one's its target
    g->R_it = 0;
    if (g->position_ce > 0.0f && targets) {
        int T = e4srec_T(c), n = 0;
        int* rows = g->host_batch + n_items + B;  // (R_it) rows of the padded (B, T) batch
        int* pos_targets = rows + n_items;        // (R_it)
        for (int b = 0; b < B; b++) {
            int first = n;  // this sample's first item
            for (int s = 0; s < c->S; s++) {
                int id = items[(size_t)b * c->S + s];
                if (id == 0) continue;
                if (n > first) pos_targets[n - 1] = id;  // the sample's previous item is scored against this one
                rows[n] = b * T + c->P1 + s;
                pos_targets[n++] = targets[b];            // unless a later item of the sample replaces it
            }
        }
        g->R_it = n;
        if (n) {
            cudaCheck(cudaMemcpyAsync(g->item_rows, rows, (size_t)n * sizeof(int), cudaMemcpyHostToDevice, 0));
            cudaCheck(cudaMemcpyAsync(g->pos_targets, pos_targets, (size_t)n * sizeof(int), cudaMemcpyHostToDevice, 0));
        }
    }
    cudaCheck(cudaEventRecord(g->batch_copied, 0));
}

// the total of the loss terms, and its running sum until gpu_e4srec_losses reads it; the model's own
// loss (e4srec_forward's: the last-token CE plus position_ce times the every-position CE) comes first
__global__ void slmrec_total_kernel(float* scalars, float position_ce, float lambda_cos, float lambda_norm, float lambda_ms) {
    float ce = scalars[SCALAR_CE] + position_ce * scalars[SCALAR_POS_CE];
    float total = ce + lambda_cos * scalars[SCALAR_DCOS] + lambda_norm * scalars[SCALAR_DNORM] + lambda_ms * scalars[SCALAR_LMS];
    scalars[SCALAR_TOTAL] = total;
    scalars[SCALAR_TOTAL_SUM] += total;
}

template <typename X> static const float* last_of(GpuE4SRec* g, int depth) { return acts<X>(g).last + (size_t)depth * g->B * g->cfg.C; }
static const float* last_state(GpuE4SRec* g, int depth) { return g->use_bf16 ? last_of<bf16>(g, depth) : last_of<float>(g, depth); }

// forward and every loss term into scalars (e4srec_forward + slmrec_forward); batch already uploaded
template <typename X>
static void slmrec_forward_cuda(GpuE4SRec* g, int B) {
    const E4SRecConfig* c = &g->cfg;
    int C = c->C, D = c->D, I = c->I;
    GpuActs<X>& a = acts<X>(g);
    if (g->teacher) {  // the frozen teacher's features, no loss
        if (g->teacher->use_bf16) e4srec_forward_cuda<bf16>(g->teacher, B);
        else e4srec_forward_cuda<float>(g->teacher, B);
    }
    e4srec_forward_cuda<X>(g, B);
    crossentropy_items_forward_cuda(a.rows, a.ce_stats, a.user, g->item_table, g->targets, B, D, I);
    mean_rows_cuda(g->scalars + SCALAR_CE, a.rows, B, 0.0f, 1.0f, false);
    if (g->position_ce > 0.0f) e4srec_position_ce_forward_cuda<X>(g);
    cudaCheck(cudaMemsetAsync(g->scalars + SCALAR_DCOS, 0, 3 * sizeof(float)));  // dcos, dnorm, lms
    if (g->teacher) {
        for (int i = 1; i <= g->blocks; i++) {
            const float* hs = a.last + (size_t)slmrec_depth(g->cfg.L, g->blocks, i) * B * C;
            const float* ht = last_state(g->teacher, slmrec_depth(g->teacher->cfg.L, g->blocks, i));
            kd_cosine_forward_cuda(g->scalars + SCALAR_DCOS, a.rows, hs, ht, B, C);
            kd_l2_forward_cuda(g->scalars + SCALAR_DNORM, a.rows, hs, ht, B, C);
        }
        for (int i = 1; i <= gpu_adapters(g); i++) {
            const float* hs = a.last + (size_t)slmrec_depth(g->cfg.L, g->blocks, i) * B * C;
            float* user = a.user + (size_t)i * B * D;
            float* stats = a.ce_stats + (size_t)i * B * 3;
            matmul_forward_cuda(user, hs, g->adapters + (size_t)(i - 1) * D * C, (const float*)NULL, B, C, D);
            crossentropy_items_forward_cuda(a.rows, stats, user, g->item_table, g->targets, B, D, I);
            mean_rows_cuda(g->scalars + SCALAR_LMS, a.rows, B, 0.0f, 1.0f, true);
        }
    }
    slmrec_total_kernel<<<1, 1>>>(g->scalars, g->position_ce, g->lambda_cos, g->lambda_norm, g->lambda_ms);
    launchCheck();
}

// gradients of the total loss into grads (zeroed here): e4srec_ce_backward + slmrec_backward + e4srec_backward
template <typename X>
static void slmrec_backward_cuda(GpuE4SRec* g) {
    const E4SRecConfig* c = &g->cfg;
    int B = g->B, C = c->C, D = c->D, I = c->I, L = c->L;
    GpuActs<X>& a = acts<X>(g);
    cudaCheck(cudaMemsetAsync(g->grads_memory, 0, g->num_total * sizeof(float)));
    cudaCheck(cudaMemsetAsync(a.dlast, 0, (size_t)(L + 1) * B * C * sizeof(float)));
    cudaCheck(cudaMemsetAsync(a.duser, 0, (size_t)B * D * sizeof(float)));
    crossentropy_items_backward_cuda(a.duser, 1.0f / B, a.ce_stats, a.user, g->item_table, g->targets, B, D, I);
    matmul_backward_cuda(a.dlast + (size_t)L * B * C, g->grads.score_w, (float*)NULL, a.duser, a.last + (size_t)L * B * C,
                         g->params.score_w, B, C, D);
    if (g->position_ce > 0.0f) e4srec_position_ce_backward_cuda<X>(g, g->position_ce);
    if (g->teacher) {
        for (int i = 1; i <= g->blocks; i++) {
            size_t ks = (size_t)slmrec_depth(g->cfg.L, g->blocks, i) * B * C;
            const float* ht = last_state(g->teacher, slmrec_depth(g->teacher->cfg.L, g->blocks, i));
            kd_cosine_backward_cuda(a.dlast + ks, g->lambda_cos, a.last + ks, ht, B, C);
            kd_l2_backward_cuda(a.dlast + ks, g->lambda_norm, a.last + ks, ht, B, C);
        }
        for (int i = 1; i <= gpu_adapters(g); i++) {
            size_t ks = (size_t)slmrec_depth(g->cfg.L, g->blocks, i) * B * C;
            cudaCheck(cudaMemsetAsync(a.duser, 0, (size_t)B * D * sizeof(float)));
            crossentropy_items_backward_cuda(a.duser, g->lambda_ms / B, a.ce_stats + (size_t)i * B * 3, a.user + (size_t)i * B * D,
                                             g->item_table, g->targets, B, D, I);
            matmul_backward_cuda(a.dlast + ks, g->dadapters + (size_t)(i - 1) * D * C, (float*)NULL, a.duser, a.last + ks,
                                 g->adapters + (size_t)(i - 1) * D * C, B, C, D);
        }
    }
    e4srec_backward_cuda<X>(g);
}

// a step's first two parts: the batch up, forward and every loss term, gradients (the tests call it alone)
static void gradients_cuda(GpuE4SRec* g, const int* items, const int* targets, int B) {
    upload_batch(g, items, targets, B);
    if (g->teacher) {  // the teacher reads the same batch from the student's device buffers
        g->teacher->B = B;
        cudaCheck(cudaMemcpyAsync(g->teacher->items, g->items, (size_t)B * g->cfg.S * sizeof(int), cudaMemcpyDeviceToDevice, 0));
    }
    g->dropping = g->dropout > 0.0f;  // this step only: scoring through the same handle never drops
    if (g->use_bf16) { slmrec_forward_cuda<bf16>(g, B); slmrec_backward_cuda<bf16>(g); }
    else { slmrec_forward_cuda<float>(g, B); slmrec_backward_cuda<float>(g); }
    g->dropping = 0;
}

// clip by the global norm (model and adapters together), then AdamW (optimizer_step)
static void optimizer_step_cuda(GpuE4SRec* g) {
    float lr = lr_at(&g->opt, g->step);
    g->step++;
    grad_clip_cuda(g->scalars + SCALAR_GRAD_NORM, g->grads_memory, g->num_total, g->opt.clip);
    adamw_update_cuda(g->params_memory, g->grads_memory, g->m_memory, g->v_memory, g->num_total, &g->opt, lr, g->step,
                      g->scalars + SCALAR_CLIP_SCALE, g->params_bf16);
}

// ---- building a handle

// random weights on the device, as e4srec_init_random draws them (normal, std 0.02; norms 1,
// input_proj's bias 0) but from a counter-based generator: element i of a tensor gets
// splitmix64(seed, tensor, i) through Box-Muller, the same on every GPU and launch shape
__global__ void init_tensor_kernel(float* p, size_t n, float std, float value, uint64_t seed) {
    // p (n) = value when std is 0, else std * N(0, 1)
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    if (std == 0.0f) { p[i] = value; return; }
    uint64_t r = splitmix64(seed ^ splitmix64(i));
    float u1 = ((uint32_t)(r >> 40) + 1.0f) / 16777217.0f, u2 = (uint32_t)(r & 0xFFFFFFu) / 16777216.0f;  // u1 in (0, 1]
    p[i] = std * sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
}

static void e4srec_init_random_cuda(GpuE4SRec* g, uint64_t seed) {
    float* t = g->params_memory;
    for (int i = 0; i < E4SREC_NUM_PARAMS; i++) {
        size_t n = g->param_sizes[i];
        bool norm = i == E4SREC_PARAM_rms1 || i == E4SREC_PARAM_rms2 || i == E4SREC_PARAM_rms_final;
        float std = norm || i == E4SREC_PARAM_proj_b ? 0.0f : 0.02f;
        init_tensor_kernel<<<blocks_for(n, 256), 256>>>(t, n, std, norm ? 1.0f : 0.0f, seed + 0x1000003ull * (uint64_t)i);
        launchCheck();
        t += n;
    }
}

// host-side contents of a handle: the config, the parameters (NULL = random on the device
// from seed), the frozen item table, the prompt, a student's adapters and the weight of
// the every-position CE and the decoder dropout (a training handle's)
typedef struct {
    const E4SRecConfig* cfg;
    const float* params;   // (num_params) or NULL
    uint64_t seed;
    const float* item_table;
    const int* instr;
    const int* resp;
    const float* adapters; // (n_adapters, D, C)
    int n_adapters;
    float position_ce;
    float dropout;
} GpuModelSource;

static GpuE4SRec* e4srec_build_cuda(const GpuModelSource* src, int max_B, int use_bf16, const AdamWConfig* opt) {
    gpu_init();
    if (max_B < 1) die("gpu: max batch %d must be positive", max_B);
    const E4SRecConfig* c = src->cfg;
    // refuse a plan the GPU cannot hold before allocating any of it
    // attention keeps a sample's K and V (and, training, their fp32 gradient sums) in shared memory
    size_t att_smem = opt ? attention_backward_smem(e4srec_T(c), c->HS, 1) : attention_forward_smem(e4srec_T(c), c->HS);
    if (att_smem > (size_t)max_smem_optin) {
        int T_max = e4srec_T(c);
        while (T_max > 1 && (opt ? attention_backward_smem(T_max, c->HS, 1) : attention_forward_smem(T_max, c->HS)) > (size_t)max_smem_optin) T_max--;
        die("gpu: %d tokens (prompt %d + history %d) at head size %d need %zu bytes of shared memory in the attention %s,\n"
            "  the GPU allows %d per block\n  hint: shorten the history to --max-len %d or less",
            e4srec_T(c), c->P1 + c->P2, c->S, c->HS, att_smem, opt ? "backward" : "forward", max_smem_optin,
            T_max - c->P1 - c->P2);
    }
    float position_ce = opt ? src->position_ce : 0.0f;  // a forward-only handle computes no loss
    GpuPlan plan = gpu_plan(c, src->n_adapters, max_B, use_bf16, opt != NULL, position_ce > 0.0f);
    size_t free_bytes = 0, total_bytes = 0;
    cudaCheck(cudaMemGetInfo(&free_bytes, &total_bytes));
    size_t scratch_now = 0;
    for (int i = 0; i < NUM_SCRATCH; i++) scratch_now += scratch_bytes[i];
    size_t need = plan.total - (plan.bytes[GPU_ARENA_SCRATCH] < scratch_now ? plan.bytes[GPU_ARENA_SCRATCH] : scratch_now);
    if (need > free_bytes) {
        char line[512];
        gpu_plan_format(line, sizeof(line), "plan", &plan);
        die("gpu: an E4SRec of %d layers (C=%d) for %d rows needs %.2f GiB of device memory, the GPU has %.2f GiB free of %.2f GiB\n"
            "  %s\n  hint: lower --batch (or --eval-batch), or use --precision bf16",
            c->L, c->C, max_B, need / 1073741824.0, free_bytes / 1073741824.0, total_bytes / 1073741824.0, line);
    }
    GpuE4SRec* g = (GpuE4SRec*)callocCheck(1, sizeof(GpuE4SRec));
    g->cfg = *c;
    g->plan = plan;
    g->use_bf16 = use_bf16 != 0;
    g->train = opt != NULL;
    g->position_ce = position_ce;
    g->dropout = opt ? src->dropout : 0.0f;  // a forward-only handle never trains
    g->max_B = max_B;
    g->blocks = src->n_adapters + 1;
    if (opt) g->opt = *opt;
    e4srec_param_sizes(g->param_sizes, c);
    g->num_params = sizes_total(g->param_sizes, E4SREC_NUM_PARAMS);
    size_t n_adapter_params = (size_t)src->n_adapters * c->D * c->C;
    g->num_total = g->num_params + n_adapter_params;
    size_t nt = g->num_total * sizeof(float);
    // weights (and the bf16 shadow)
    g->params_memory = (float*)device_alloc(plan.bytes[GPU_ARENA_WEIGHTS]);
    e4srec_point_params(&g->params, g->params_memory, g->param_sizes);
    g->adapters = g->params_memory + g->num_params;
    if (src->params) cudaCheck(cudaMemcpy(g->params_memory, src->params, g->num_params * sizeof(float), cudaMemcpyHostToDevice));
    else e4srec_init_random_cuda(g, src->seed);
    if (src->n_adapters) cudaCheck(cudaMemcpy(g->adapters, src->adapters, n_adapter_params * sizeof(float), cudaMemcpyHostToDevice));
    if (g->use_bf16) {
        g->params_bf16 = (bf16*)device_alloc(plan.bytes[GPU_ARENA_SHADOW]);
        to_bf16_cuda(g->params_bf16, g->params_memory, g->num_total);
    }
    // gradients and AdamW moments
    if (g->train) {
        g->grads_memory = (float*)device_alloc(plan.bytes[GPU_ARENA_GRADS]);
        g->m_memory = (float*)device_alloc(plan.bytes[GPU_ARENA_MOMENTS]);
        g->v_memory = g->m_memory + plan.bytes[GPU_ARENA_MOMENTS] / 2 / sizeof(float);
        cudaCheck(cudaMemset(g->grads_memory, 0, nt));
        cudaCheck(cudaMemset(g->m_memory, 0, plan.bytes[GPU_ARENA_MOMENTS]));
        e4srec_point_params(&g->grads, g->grads_memory, g->param_sizes);
        g->dadapters = g->grads_memory + g->num_params;
    }
    // inputs: item table, prompt, batch buffers, RoPE table, scalars, the every-position CE's items
    // (targets 0 = no CE rows until a step sets them)
    size_t input_bytes[GPU_NUM_INPUTS];
    gpu_input_bytes(input_bytes, c, max_B, g->train, position_ce > 0.0f);
    void** input_ptrs[GPU_NUM_INPUTS] = {(void**)&g->item_table, (void**)&g->prompt_ids, (void**)&g->items, (void**)&g->targets,
                                         (void**)&g->keymask, (void**)&g->rope, (void**)&g->scalars, (void**)&g->item_rows,
                                         (void**)&g->pos_targets};
    g->inputs_memory = device_arena(input_ptrs, input_bytes, GPU_NUM_INPUTS);
    int T = e4srec_T(c);
    cudaCheck(cudaMemcpy(g->item_table, src->item_table, (size_t)c->I * c->D * sizeof(float), cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(g->prompt_ids, src->instr, c->P1 * sizeof(int), cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(g->prompt_ids + c->P1, src->resp, c->P2 * sizeof(int), cudaMemcpyHostToDevice));
    RopeTable rope;  // the CPU's angles, bit for bit
    rope_table_build(&rope, T, c->HS, c->rope_theta);
    size_t rope_n = (size_t)T * rope.half;
    cudaCheck(cudaMemcpy(g->rope, rope.cos, rope_n * sizeof(float), cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(g->rope + rope_n, rope.sin, rope_n * sizeof(float), cudaMemcpyHostToDevice));
    rope_table_free(&rope);
    size_t staged = (size_t)max_B * (c->S + 1 + (position_ce > 0.0f ? 2 * c->S : 0));  // upload_batch's ints
    cudaCheck(cudaMallocHost((void**)&g->host_batch, staged * sizeof(int)));
    cudaCheck(cudaEventCreateWithFlags(&g->batch_copied, cudaEventDisableTiming));
    cudaCheck(cudaEventRecord(g->batch_copied, 0));
    // activations
    if (g->use_bf16) e4srec_alloc_acts_cuda<bf16>(g);
    else e4srec_alloc_acts_cuda<float>(g);
    return g;
}

// forward only, then rows' item scores user @ table^T chunk by chunk; B <= max_B (gpu_e4srec_score splits)
static void score_rows_cuda(GpuE4SRec* g, const int* items, int B, float* scores, int k, int* top_ids) {
    const E4SRecConfig* c = &g->cfg;
    upload_batch(g, items, NULL, B);
    if (g->use_bf16) e4srec_forward_cuda<bf16>(g, B);
    else e4srec_forward_cuda<float>(g, B);
    const float* user = g->use_bf16 ? g->acts_h.user : g->acts_f.user;  // (B, D)
    int IC = min(c->I, GPU_ITEM_CHUNK);
    float* logits = (float*)scratch(SCRATCH_LOGITS, (size_t)g->max_B * IC * sizeof(float));  // (B, IC)
    float* top_val = top_ids ? (float*)scratch(SCRATCH_TOPK, (size_t)g->max_B * GPU_TOPK_MAX * (sizeof(float) + sizeof(int))) : NULL;  // (B, k)
    int* top_id = top_ids ? (int*)(top_val + (size_t)B * k) : NULL;  // (B, k)
    for (int i0 = 0; i0 < c->I; i0 += IC) {
        int n = min(IC, c->I - i0);
        gemm(logits, user, g->item_table + (size_t)i0 * c->D, B, n, c->D, false, true, false);
        if (scores) {
            cudaCheck(cudaMemcpy2DAsync(scores + i0, (size_t)c->I * sizeof(float), logits, (size_t)n * sizeof(float),
                                        (size_t)n * sizeof(float), B, cudaMemcpyDeviceToHost, 0));
        }
        if (top_ids) {
            topk_chunk_kernel<<<B, TOPK_THREADS, (size_t)k * (sizeof(float) + sizeof(int))>>>(top_val, top_id, logits, i0, n, k, i0 == 0);
            launchCheck();
        }
    }
    if (top_ids) cudaCheck(cudaMemcpy(top_ids, top_id, (size_t)B * k * sizeof(int), cudaMemcpyDeviceToHost));
    cudaCheck(cudaDeviceSynchronize());  // the scores' copies land (and the logits chunk is free) before the next rows
}

// ----------------------------------------------------------------------------
// the C API. Every call returns once its work is queued, except where it says it
// waits: losses and scores read back results, create/get_params/free copy or free.

extern "C" {

int gpu_available(void) { return gpu_device_info(NULL, 0); }

int gpu_device_info(char* info, size_t cap) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        if (info) snprintf(info, cap, "%s: %s", e == cudaSuccess ? "cudaErrorNoDevice" : cudaGetErrorName(e),
                           e == cudaSuccess ? "no CUDA-capable device is detected" : cudaGetErrorString(e));
        return 0;
    }
    cudaDeviceProp prop;
    int dev = 0, driver = 0, runtime = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
        if (info) snprintf(info, cap, "cudaGetDeviceProperties failed");
        return 0;
    }
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    if (info) snprintf(info, cap, "%s, %.1f GiB, compute %d.%d, driver %d.%d, runtime %d.%d", prop.name,
                       prop.totalGlobalMem / 1073741824.0, prop.major, prop.minor, driver / 1000, driver % 1000 / 10,
                       runtime / 1000, runtime % 1000 / 10);
    return 1;
}

int gpu_device_name(char* name, size_t cap) {
    cudaDeviceProp prop;
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) return 0;
    snprintf(name, cap, "%s", prop.name);
    return 1;
}

void gpu_synchronize(void) { cudaCheck(cudaDeviceSynchronize()); }

void gpu_memory(size_t* used, size_t* total) {
    size_t free_bytes = 0, total_bytes = 0;
    cudaCheck(cudaMemGetInfo(&free_bytes, &total_bytes));
    *used = total_bytes - free_bytes;
    *total = total_bytes;
}

size_t gpu_allocated_peak(int reset) {
    size_t peak = device_bytes_peak;
    if (reset) device_bytes_peak = device_bytes_now;
    return peak;
}

size_t gpu_layout_key_cuda(void) { return gpu_layout_key(); }

GpuE4SRec* gpu_e4srec_create(const E4SRec* m, int max_B, int use_bf16, const AdamWConfig* opt) {
    GpuModelSource src = {&m->cfg, m->params_memory, 0, m->item_table, m->instr, m->resp, NULL, 0, m->position_ce, m->dropout};
    return e4srec_build_cuda(&src, max_B, use_bf16, opt);
}

GpuE4SRec* gpu_e4srec_create_random(const E4SRecConfig* c, const float* item_table, const int* instr, const int* resp,
                                    uint64_t seed, int max_B, int use_bf16, const AdamWConfig* opt) {
    e4srec_validate_config(c);
    GpuModelSource src = {c, NULL, seed, item_table, instr, resp, NULL, 0, 0.0f, 0.0f};
    return e4srec_build_cuda(&src, max_B, use_bf16, opt);
}

GpuE4SRec* gpu_slmrec_create(const SLMRec* s, GpuE4SRec* teacher, int max_B, int use_bf16, const AdamWConfig* opt) {
    if (opt == NULL) die("gpu_slmrec_create: a student needs an optimizer config");
    if (teacher->max_B < max_B) die("gpu_slmrec_create: the teacher handle holds %d rows, the student %d", teacher->max_B, max_B);
    if (teacher->cfg.S != s->student->cfg.S) die("gpu_slmrec_create: teacher and student read the same history, but S is %d and %d", teacher->cfg.S, s->student->cfg.S);
    const E4SRec* m = s->student;
    GpuModelSource src = {&m->cfg, m->params_memory, 0, m->item_table, m->instr, m->resp, s->adapters, s->blocks - 1,
                          m->position_ce, m->dropout};
    GpuE4SRec* g = e4srec_build_cuda(&src, max_B, use_bf16, opt);
    g->teacher = teacher;
    g->blocks = s->blocks;
    g->lambda_cos = s->lambda_cos; g->lambda_norm = s->lambda_norm; g->lambda_ms = s->lambda_ms;
    return g;
}

void gpu_e4srec_set_dropout_seed(GpuE4SRec* g, uint64_t seed) { g->dropout_seed = seed; }

// one step: forward, loss (CE, or the SLMRec loss for a student), backward, clip,
// AdamW. Returns once queued, with how many steps' losses wait for gpu_e4srec_losses.
int gpu_e4srec_train_step(GpuE4SRec* g, const int* items, const int* targets, int B) {
    if (!g->train) die("gpu_e4srec_train_step: this handle was created without an optimizer (forward only)");
    gradients_cuda(g, items, targets, B);
    optimizer_step_cuda(g);
    return ++g->steps_unread;
}

// waits for the last step and copies its loss terms (ce only, the rest 0, for a
// plain model), the gradient norm before clipping, and the mean total loss of the
// steps since the previous call (each NULL to skip)
void gpu_e4srec_losses(GpuE4SRec* g, SLMRecLosses* last, float* grad_norm, float* mean_total) {
    float s[NUM_SCALARS];
    cudaCheck(cudaMemcpy(s, g->scalars, sizeof(s), cudaMemcpyDeviceToHost));
    if (last) {
        last->ce = s[SCALAR_CE] + g->position_ce * s[SCALAR_POS_CE];  // e4srec_forward's loss, as slmrec_forward's ce
        last->dcos = s[SCALAR_DCOS]; last->dnorm = s[SCALAR_DNORM]; last->lms = s[SCALAR_LMS];
        last->total = s[SCALAR_TOTAL];
    }
    if (grad_norm) *grad_norm = s[SCALAR_GRAD_NORM];
    if (mean_total) *mean_total = g->steps_unread ? s[SCALAR_TOTAL_SUM] / g->steps_unread : 0.0f;
    cudaCheck(cudaMemset(g->scalars + SCALAR_TOTAL_SUM, 0, sizeof(float)));
    g->steps_unread = 0;
}

// item scores for items (B, S), max_B rows at a time: scores (B, I) and/or top_ids
// (B, k), the k best items (pad 0 excluded, ties to the lower id), each on the host
// or NULL. Waits for the results.
void gpu_e4srec_score(GpuE4SRec* g, const int* items, int B, float* scores, int k, int* top_ids) {
    const E4SRecConfig* c = &g->cfg;
    if (top_ids && (k < 1 || k > c->I - 1 || k > GPU_TOPK_MAX)) die("gpu_e4srec_score: k = %d must be in 1..min(%d, %d items)", k, GPU_TOPK_MAX, c->I - 1);
    if (B < 1) die("gpu_e4srec_score: %d rows to score", B);
    for (int b0 = 0; b0 < B; b0 += g->max_B) {
        int n = min(g->max_B, B - b0);
        score_rows_cuda(g, items + (size_t)b0 * c->S, n, scores ? scores + (size_t)b0 * c->I : NULL, k,
                        top_ids ? top_ids + (size_t)b0 * k : NULL);
    }
}

void gpu_e4srec_get_params(const GpuE4SRec* g, E4SRec* m, SLMRec* s) {
    if (m->num_params != g->num_params) die("gpu_e4srec_get_params: the host model has %zu parameters, the GPU one %zu", m->num_params, g->num_params);
    cudaCheck(cudaMemcpy(m->params_memory, g->params_memory, g->num_params * sizeof(float), cudaMemcpyDeviceToHost));
    if (s && gpu_adapters(g)) {
        cudaCheck(cudaMemcpy(s->adapters, g->adapters, (size_t)gpu_adapters(g) * g->cfg.D * g->cfg.C * sizeof(float), cudaMemcpyDeviceToHost));
    }
}

void gpu_e4srec_set_params(GpuE4SRec* g, const E4SRec* m, const SLMRec* s) {
    if (m->num_params != g->num_params) die("gpu_e4srec_set_params: the host model has %zu parameters, the GPU one %zu", m->num_params, g->num_params);
    cudaCheck(cudaMemcpy(g->params_memory, m->params_memory, g->num_params * sizeof(float), cudaMemcpyHostToDevice));
    if (s && gpu_adapters(g)) {
        cudaCheck(cudaMemcpy(g->adapters, s->adapters, (size_t)gpu_adapters(g) * g->cfg.D * g->cfg.C * sizeof(float), cudaMemcpyHostToDevice));
    }
    if (g->params_bf16) to_bf16_cuda(g->params_bf16, g->params_memory, g->num_total);  // the matmuls read the new weights
}

void gpu_e4srec_get_moments(const GpuE4SRec* g, float* m, float* v, int* step) {
    if (!g->train) die("gpu_e4srec_get_moments: this handle was created without an optimizer (forward only)");
    cudaCheck(cudaMemcpy(m, g->m_memory, g->num_total * sizeof(float), cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(v, g->v_memory, g->num_total * sizeof(float), cudaMemcpyDeviceToHost));
    *step = g->step;
}

void gpu_e4srec_set_moments(GpuE4SRec* g, const float* m, const float* v, int step) {
    if (!g->train) die("gpu_e4srec_set_moments: this handle was created without an optimizer (forward only)");
    cudaCheck(cudaMemcpy(g->m_memory, m, g->num_total * sizeof(float), cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(g->v_memory, v, g->num_total * sizeof(float), cudaMemcpyHostToDevice));
    g->step = step;
}

void gpu_e4srec_free(GpuE4SRec* g) {
    if (g == NULL) return;
    cudaCheck(cudaDeviceSynchronize());
    const size_t* b = g->plan.bytes;
    device_free(g->params_memory, b[GPU_ARENA_WEIGHTS]);
    device_free(g->params_bf16, b[GPU_ARENA_SHADOW]);
    device_free(g->grads_memory, b[GPU_ARENA_GRADS]);
    device_free(g->m_memory, b[GPU_ARENA_MOMENTS]);
    device_free(g->inputs_memory, b[GPU_ARENA_INPUTS]);
    device_free(g->acts_memory, b[GPU_ARENA_ACTS]);
    device_free(g->dacts_memory, b[GPU_ARENA_DACTS]);
    cudaCheck(cudaFreeHost(g->host_batch));
    cudaCheck(cudaEventDestroy(g->batch_copied));
    free(g);
}

}  // extern "C"
