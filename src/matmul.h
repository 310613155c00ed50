// matmul.h: the one matrix-product engine of the CPU path, mm_accumulate. The
// Linear layer (layers.h) runs its three products through it (forward, dinp,
// dweight), and so does everything built on Linear. It computes
//   out (N, M) += a (N, K) @ b (K, M),  a(n, k) = a[n a_n + k a_k],  b(k, m) = b[k b_k + m b_m],
// so a transposed operand is read in place through its strides. It is blocked
// in the GotoBLAS / BLIS manner:
//   for each block of MM_KC consecutive k (in order):
//     pack b's rows k of the block into panels of MM_NR columns, (KC, NR) each, zero-padded;
//     pack a's rows into micro-panels of MM_MR rows, (KC, MR) each, k-major, zero-padded;
//     in parallel over tiles of (MM_MC rows, one panel): for each micro-panel of the tile,
//       the micro-kernel adds the MR x NR product to out, its accumulators in registers.
// A tile's panel (KC x NR floats) is reused by each of its micro-panels from L2, a micro-panel
// (KC x MR) by each k of the micro-kernel from L1; KC = 512 measured better than 256 on Zen 5.
// Each output sums over k in order, block after block: the result does not depend on the
// thread count. mm_reference is the plain loop the tests hold it to.
#pragma once
#include "utils.h"

#if defined(__AVX512F__)
#define MM_LANES 16  // one zmm register
#define MM_MR 12     // 12 x 2 accumulators + 2 panel vectors + 1 broadcast of the 32 registers
#elif defined(__AVX__)
#define MM_LANES 8   // one ymm register
#define MM_MR 6      // 6 x 2 accumulators + 3 of the 16 registers
#else
#define MM_LANES 4   // SSE / NEON
#define MM_MR 6
#endif
#define MM_NR (2 * MM_LANES)  // columns per panel: two vectors
#define MM_KC 512             // k per block: a panel is KC x NR floats (64 KB with AVX-512, in L2)
#define MM_MC (8 * MM_MR)     // rows per tile, at most
typedef float mm_lanes __attribute__((vector_size(MM_LANES * sizeof(float))));
// the micro-kernel's loops over its MR rows are unrolled so the accumulators live in registers
// (nvcc's front end, compiling this header's host code for the GPU tests, does not know the pragma)
#ifdef __CUDACC__
#define MM_UNROLL
#else
#define MM_UNROLL _Pragma("GCC unroll 16")
#endif

static mm_lanes mm_load(const float* p) { mm_lanes v; memcpy(&v, p, sizeof(v)); return v; }
static void mm_store(float* p, mm_lanes v) { memcpy(p, &v, sizeof(v)); }

// a grow-only scratch buffer of n floats per slot: a fresh malloc per call would
// page-fault its way through megabytes every step
enum { SCRATCH_PACK_A, SCRATCH_PACK_B, NUM_PACK_SCRATCH };
static float* scratch_floats(int slot, size_t n) {
    static float* buf[NUM_PACK_SCRATCH];
    static size_t capacity[NUM_PACK_SCRATCH];
    if (n > capacity[slot]) {
        free(buf[slot]);
        buf[slot] = (float*)mallocCheck(n * sizeof(float));
        capacity[slot] = n;
    }
    return buf[slot];
}

// out (rows <= MR, cols <= NR, row stride ldo) += ap (kc, MR) @ bp (kc, NR)
static void mm_micro(float* out, size_t ldo, const float* ap, const float* bp, int kc, int rows, int cols) {
    float edge[MM_MR * MM_NR];  // a partial tile, zero-padded, so every tile takes the vector path
    float* c = out;
    size_t ldc = ldo;
    if (rows < MM_MR || cols < MM_NR) {
        memset(edge, 0, sizeof(edge));
        for (int r = 0; r < rows; r++) memcpy(edge + r * MM_NR, out + r * ldo, (size_t)cols * sizeof(float));
        c = edge;
        ldc = MM_NR;
    }
    mm_lanes acc[MM_MR][2];
    MM_UNROLL
    for (int r = 0; r < MM_MR; r++) {
        acc[r][0] = mm_load(c + r * ldc);
        acc[r][1] = mm_load(c + r * ldc + MM_LANES);
    }
    for (int k = 0; k < kc; k++) {
        mm_lanes b0 = mm_load(bp + k * MM_NR), b1 = mm_load(bp + k * MM_NR + MM_LANES);
        MM_UNROLL
        for (int r = 0; r < MM_MR; r++) {
            float x = ap[k * MM_MR + r];
            acc[r][0] += x * b0;
            acc[r][1] += x * b1;
        }
    }
    MM_UNROLL
    for (int r = 0; r < MM_MR; r++) {
        mm_store(c + r * ldc, acc[r][0]);
        mm_store(c + r * ldc + MM_LANES, acc[r][1]);
    }
    if (c == edge) {
        for (int r = 0; r < rows; r++) memcpy(out + r * ldo, edge + r * MM_NR, (size_t)cols * sizeof(float));
    }
}

// dst (kc, W) = the first `count` of W vectors, vector j read at src + j stride, its
// k-th entry k_stride further on; the vectors past count are zero. A panel turns each
// vector into a column, so one side is strided: 16 k at a time go through a small
// buffer, read along k and written along j, each in runs. Element by element, with
// the writes W apart, packing took as long as the product for the item logits
// ((64 x 64) @ the 12,101-item table and back). Inlined where W is a constant, so
// that the row copies unroll.
#define MM_PACK_K 16
__attribute__((always_inline)) static inline void mm_pack_columns(float* dst, int W, const float* src, size_t stride,
                                                                  size_t k_stride, int count, int kc) {
    float block[MM_NR][MM_PACK_K];  // W <= MM_NR
    for (int k0 = 0; k0 < kc; k0 += MM_PACK_K) {
        int kb = min_int(MM_PACK_K, kc - k0);
        for (int j = 0; j < W; j++) {
            const float* v = src + (size_t)j * stride + (size_t)k0 * k_stride;
            if (j >= count) memset(block[j], 0, sizeof(block[j]));
            else if (k_stride == 1 && kb == MM_PACK_K) memcpy(block[j], v, sizeof(block[j]));  // a fixed size: vector moves
            else for (int k = 0; k < kb; k++) block[j][k] = v[(size_t)k * k_stride];
        }
        for (int k = 0; k < kb; k++) {
            float* row = dst + (size_t)(k0 + k) * W;
            MM_UNROLL
            for (int j = 0; j < W; j++) row[j] = block[j][k];
        }
    }
}

static void mm_accumulate(float* out, const float* a, size_t a_n, size_t a_k, const float* b, size_t b_k, size_t b_m,
                          int N, int K, int M) {
    int micro_rows = (N + MM_MR - 1) / MM_MR, panels = (M + MM_NR - 1) / MM_NR;
    // tiles of up to MM_MC rows, fewer when that leaves threads idle
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    int mc = MM_MC / MM_MR;  // micro-panels per tile
    while (mc > 1 && ((micro_rows + mc - 1) / mc) * panels < 2 * threads) mc /= 2;
    int row_tiles = (micro_rows + mc - 1) / mc;
    float* ap = scratch_floats(SCRATCH_PACK_A, (size_t)micro_rows * MM_MR * MM_KC);
    float* bp = scratch_floats(SCRATCH_PACK_B, (size_t)panels * MM_NR * MM_KC);
    #pragma omp parallel
    for (int k0 = 0; k0 < K; k0 += MM_KC) {  // every thread walks the blocks; the loops below share the work
        int kc = min_int(MM_KC, K - k0);
        #pragma omp for schedule(static) nowait
        for (int p = 0; p < panels; p++) {  // bp[p] (kc, NR)
            float* dst = bp + (size_t)p * MM_NR * kc;
            int m0 = p * MM_NR, width = min_int(MM_NR, M - m0);
            // read along whichever index is contiguous in b
            if (b_m == 1) {
                for (int k = 0; k < kc; k++) {
                    float* row = dst + (size_t)k * MM_NR;
                    memcpy(row, b + (size_t)(k0 + k) * b_k + m0, (size_t)width * sizeof(float));
                    for (int m = width; m < MM_NR; m++) row[m] = 0.0f;
                }
            } else {  // column m of the panel is b's column m0 + m
                mm_pack_columns(dst, MM_NR, b + (size_t)k0 * b_k + (size_t)m0 * b_m, b_m, b_k, width, kc);
            }
        }
        #pragma omp for schedule(static)
        for (int i = 0; i < micro_rows; i++) {  // ap[i] (kc, MR)
            float* dst = ap + (size_t)i * MM_MR * kc;
            int rows = min_int(MM_MR, N - i * MM_MR);
            const float* src = a + (size_t)i * MM_MR * a_n + (size_t)k0 * a_k;
            if (a_n == 1) {  // a transposed: its rows are contiguous along n
                for (int k = 0; k < kc; k++) {
                    float* d = dst + (size_t)k * MM_MR;
                    if (rows == MM_MR) memcpy(d, src + (size_t)k * a_k, MM_MR * sizeof(float));  // a fixed size: vector moves
                    else for (int r = 0; r < MM_MR; r++) d[r] = r < rows ? src[(size_t)k * a_k + r] : 0.0f;
                }
            } else {  // column r of the micro-panel is a's row i MR + r
                mm_pack_columns(dst, MM_MR, src, a_n, a_k, rows, kc);
            }
        }
        #pragma omp for collapse(2) schedule(static)
        for (int t = 0; t < row_tiles; t++) {
            for (int p = 0; p < panels; p++) {
                int m0 = p * MM_NR, cols = min_int(MM_NR, M - m0);
                for (int i = t * mc; i < min_int((t + 1) * mc, micro_rows); i++) {
                    int n0 = i * MM_MR;
                    mm_micro(out + (size_t)n0 * M + m0, (size_t)M, ap + (size_t)i * MM_MR * kc, bp + (size_t)p * MM_NR * kc,
                             kc, min_int(MM_MR, N - n0), cols);
                }
            }
        }
    }
}
