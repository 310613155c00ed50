// layers.h: the CPU reference layers, float32, each forward next to its backward.
//
// Dimension names: B batch, T tokens, C hidden (d1), D item-embedding width (d0),
// NH query heads, KVH key/value heads, HS head size, F MLP width, V token
// vocabulary, I item-table rows (n_items + 1, row 0 = pad). N = B*T rows.
//
// Convention: every backward ACCUMULATES (+=) into the gradients it writes,
// activation gradients (dinp) and parameter gradients (dweight) alike, so
// branches that meet (residuals, shared weights) sum without extra code.
// Callers zero gradient buffers once before a backward pass. A NULL gradient
// pointer means "not needed" (frozen tables, inputs).
// The one exception is rope_backward, which rotates its buffer in place.
#pragma once
#include "matmul.h"  // mm_accumulate, the blocked matrix product every Linear runs through

// ----------------------------------------------------------------------------
// exp(x) in a form the compiler vectorizes (softmaxes, SiLU): x = n ln2 + r with
// |r| <= ln2/2, e^r by its degree-7 Taylor polynomial, 2^n through the exponent
// bits. Relative error about 1e-7; exp(x < -87) = 0, x is clamped at 88; NaN stays NaN.

static inline float exp_fast(float x) {
    float xc = x > -87.0f ? (x < 88.0f ? x : 88.0f) : -87.0f;  // NaN goes to -87: no NaN reaches the int cast
    float n = floorf(xc * 1.44269504f + 0.5f);
    float r = xc - n * 0.693145751953125f - n * 1.42860682e-6f;  // ln2 in two parts: n * hi is exact
    float p = 1.0f + r * (1.0f + r * (1.0f / 2 + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return x != x ? x : (x < -87.0f ? 0.0f : p * scale);
}

// ----------------------------------------------------------------------------
// embedding lookup: out[n] = table[ids[n]]

static void embedding_forward(float* out, const int* ids, const float* table, int N, int C) {
    // out (N, C), ids (N), table (rows, C)
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * C, table + (size_t)ids[n] * C, C * sizeof(float));
}

static void embedding_backward(float* dtable, const float* dout, const int* ids, int N, int C) {
    // sequential over n: rows repeat, so parallel writes would race
    for (int n = 0; n < N; n++) {
        float* dt = dtable + (size_t)ids[n] * C;
        const float* d = dout + (size_t)n * C;
        for (int c = 0; c < C; c++) dt[c] += d[c];
    }
}

// ----------------------------------------------------------------------------
// Linear: out = inp @ weight^T + bias, weight (OC, C) as torch's nn.Linear. All
// three products run through mm_accumulate (matmul.h), which reads a transposed
// operand in place through its strides; mm_reference is the plain loop it is held to.

// the plain triple loop: what mm_accumulate computes, for the tests
static void mm_reference(float* out, const float* a, size_t a_n, size_t a_k, const float* b, size_t b_k, size_t b_m,
                         int N, int K, int M) {
    for (int n = 0; n < N; n++) {
        for (int m = 0; m < M; m++) {
            float acc = out[(size_t)n * M + m];
            for (int k = 0; k < K; k++) acc += a[(size_t)n * a_n + (size_t)k * a_k] * b[(size_t)k * b_k + (size_t)m * b_m];
            out[(size_t)n * M + m] = acc;
        }
    }
}

static void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC) {
    // out (N, OC), inp (N, C), weight (OC, C), bias (OC) or NULL
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        if (bias) memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(float));
        else memset(out + (size_t)n * OC, 0, (size_t)OC * sizeof(float));
    }
    mm_accumulate(out, inp, C, 1, weight, 1, C, N, C, OC);  // b = weight^T (C, OC), read through strides
}

static void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                            const float* weight, int N, int C, int OC) {
    // dinp (N, C) += dout @ weight; dweight (OC, C) += dout^T @ inp; dbias (OC) += sum_n dout
    if (dinp) mm_accumulate(dinp, dout, OC, 1, weight, C, 1, N, OC, C);
    if (dweight) mm_accumulate(dweight, dout, 1, OC, inp, C, 1, OC, N, C);  // a = dout^T (OC, N), read in place
    if (dbias) {  // a block of columns at a time, read along dout's rows; each column sums n in order
        #pragma omp parallel for schedule(static)
        for (int o0 = 0; o0 < OC; o0 += 64) {
            int width = min_int(64, OC - o0);
            float db[64] = {0};
            for (int n = 0; n < N; n++) {
                const float* row = dout + (size_t)n * OC + o0;
                for (int o = 0; o < width; o++) db[o] += row[o];
            }
            for (int o = 0; o < width; o++) dbias[o0 + o] += db[o];
        }
    }
}

// ----------------------------------------------------------------------------
// DLLM2Rec's collaborative embedding distillation (method.md 6.5): a student's input embedding
// of item i is its own collaborative embedding plus a learned map of the
// teacher's frozen item representation,
//   e(i) = item_emb[i] + ed * (w @ e_T[i] + b),   zero at the pad id 0.
// collab == NULL is the plain lookup (still zero at pads).

typedef struct {
    float ed;          // weight of the teacher's part
    int C;             // teacher width
    const float* e_T;  // (I, C) the teacher's item representations, frozen
    float* w;          // (D, C)
    float* b;          // (D)
    float* dw;         // (D, C)
    float* db;         // (D)
} CollabEmbed;

static void collab_embed_forward(float* out, float* et, const int* ids, const float* table, const CollabEmbed* collab,
                                 int N, int D) {
    // out (N, D); et (N, C) caches e_T[ids] for backward (unused without collab); ids (N); table (I, D)
    if (collab) {
        int C = collab->C;
        for (int n = 0; n < N; n++) memcpy(et + (size_t)n * C, collab->e_T + (size_t)ids[n] * C, C * sizeof(float));
        matmul_forward(out, et, collab->w, collab->b, N, C, D);
    }
    for (int n = 0; n < N; n++) {
        float* o = out + (size_t)n * D;
        const float* row = table + (size_t)ids[n] * D;
        float k = collab ? collab->ed : 0.0f;
        for (int i = 0; i < D; i++) o[i] = ids[n] == 0 ? 0.0f : row[i] + (collab ? k * o[i] : 0.0f);
    }
}

static void collab_embed_backward(float* dtable, CollabEmbed* collab, float* scratch, const float* dout,
                                  const float* et, const int* ids, int N, int D) {
    // dtable (I, D) += dout at each id; collab->dw, db += ed * d(w e_T + b); scratch (N, D)
    for (int n = 0; n < N; n++) {
        if (ids[n] == 0) continue;
        float* dt = dtable + (size_t)ids[n] * D;
        const float* d = dout + (size_t)n * D;
        for (int i = 0; i < D; i++) dt[i] += d[i];
    }
    if (collab == NULL) return;
    for (size_t i = 0; i < (size_t)N * D; i++) scratch[i] = ids[i / D] == 0 ? 0.0f : collab->ed * dout[i];
    matmul_backward(NULL, collab->dw, collab->db, scratch, et, collab->w, N, collab->C, D);
}

// ----------------------------------------------------------------------------
// RMSNorm (LLaMA): out = inp / sqrt(mean(inp^2) + eps) * weight

static void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps) {
    // out (N, C), rstd (N) cached for backward, inp (N, C), weight (C)
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* x = inp + (size_t)n * C;
        float ss = 0.0f;
        for (int i = 0; i < C; i++) ss += x[i] * x[i];
        float r = 1.0f / sqrtf(ss / C + eps);
        float* o = out + (size_t)n * C;
        for (int i = 0; i < C; i++) o[i] = x[i] * r * weight[i];
        rstd[n] = r;
    }
}

static void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                             const float* rstd, int N, int C) {
    // dx = r * (dy*w) - r^3/C * x * sum(dy*w*x)
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* x = inp + (size_t)n * C;
        const float* dy = dout + (size_t)n * C;
        float r = rstd[n], dot = 0.0f;
        for (int i = 0; i < C; i++) dot += dy[i] * weight[i] * x[i];
        float k = r * r * r * dot / C;
        float* dx = dinp + (size_t)n * C;
        for (int i = 0; i < C; i++) dx[i] += r * dy[i] * weight[i] - k * x[i];
    }
    // parameter gradient in a second pass, parallel over channels, so no two threads share a dweight entry
    if (dweight == NULL) return;
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < C; i++) {
        float acc = 0.0f;
        for (int n = 0; n < N; n++) acc += dout[(size_t)n * C + i] * inp[(size_t)n * C + i] * rstd[n];
        dweight[i] += acc;
    }
}

// ----------------------------------------------------------------------------
// LayerNorm (SASRec): out = (inp - mean) / sqrt(var + eps) * weight + bias

static void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                              const float* bias, int N, int C, float eps) {
    // out (N, C), mean (N) and rstd (N) cached, inp (N, C), weight (C), bias (C)
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* x = inp + (size_t)n * C;
        float m = 0.0f, v = 0.0f;
        for (int i = 0; i < C; i++) m += x[i];
        m /= C;
        for (int i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m);
        float r = 1.0f / sqrtf(v / C + eps);
        float* o = out + (size_t)n * C;
        for (int i = 0; i < C; i++) o[i] = (x[i] - m) * r * weight[i] + bias[i];
        mean[n] = m;
        rstd[n] = r;
    }
}

static void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                               const float* weight, const float* mean, const float* rstd, int N, int C) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* x = inp + (size_t)n * C;
        const float* dy = dout + (size_t)n * C;
        float m = mean[n], r = rstd[n], dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        for (int i = 0; i < C; i++) {
            float dnorm = weight[i] * dy[i];
            dnorm_mean += dnorm;
            dnorm_norm_mean += dnorm * (x[i] - m) * r;
        }
        dnorm_mean /= C;
        dnorm_norm_mean /= C;
        float* dx = dinp + (size_t)n * C;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * r;
            dx[i] += r * (weight[i] * dy[i] - dnorm_mean - norm * dnorm_norm_mean);
        }
    }
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < C; i++) {
        float dw = 0.0f, db = 0.0f;
        for (int n = 0; n < N; n++) {
            float dy = dout[(size_t)n * C + i];
            dw += dy * (inp[(size_t)n * C + i] - mean[n]) * rstd[n];
            db += dy;
        }
        dweight[i] += dw;
        dbias[i] += db;
    }
}

// ----------------------------------------------------------------------------
// RoPE, HF layout: head dims j and j + HS/2 form a rotated pair, turned by the angle
// pos * theta^(-2j/HS). (llama2.c rotates adjacent pairs; its q/k rows are permuted on
// import instead, src/import.h.) The cosines and sines are a table computed once per model.

typedef struct {
    int n_pos, half;  // positions 0 .. n_pos-1, HS/2 pairs per head
    float* cos;       // (n_pos, half)
    float* sin;       // (n_pos, half)
} RopeTable;

static void rope_table_build(RopeTable* r, int n_pos, int HS, float theta) {
    r->n_pos = n_pos;
    r->half = HS / 2;
    r->cos = (float*)mallocCheck((size_t)n_pos * r->half * sizeof(float));
    r->sin = (float*)mallocCheck((size_t)n_pos * r->half * sizeof(float));
    for (int p = 0; p < n_pos; p++) {
        for (int j = 0; j < r->half; j++) {
            float inv_freq = 1.0f / powf(theta, (float)(2 * j) / (float)HS);  // float32 as HF computes it
            float angle = (float)p * inv_freq;
            r->cos[(size_t)p * r->half + j] = cosf(angle);
            r->sin[(size_t)p * r->half + j] = sinf(angle);
        }
    }
}

static void rope_table_free(RopeTable* r) {
    free(r->cos);
    free(r->sin);
    memset(r, 0, sizeof(*r));
}

static void rope_rotate(float* x, int N, const int* pos, int row_stride, int n_heads, const RopeTable* r, float sign) {
    // x (N, row_stride): the first n_heads*HS entries of each row are rotated in place; row n
    // sits at position pos[n]; sign +1 applies the rotation (forward), -1 its inverse (backward)
    int half = r->half, HS = 2 * half;
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        if (pos[n] < 0 || pos[n] >= r->n_pos) die("rope: position %d is outside the table's 0..%d", pos[n], r->n_pos - 1);
        const float* cs = r->cos + (size_t)pos[n] * half;
        const float* sn = r->sin + (size_t)pos[n] * half;
        for (int h = 0; h < n_heads; h++) {
            float* v = x + (size_t)n * row_stride + h * HS;
            for (int j = 0; j < half; j++) {
                float a = v[j], b = v[j + half], c = cs[j], s = sign * sn[j];
                v[j] = a * c - b * s;
                v[j + half] = b * c + a * s;
            }
        }
    }
}

static void rope_forward(float* x, int N, const int* pos, int row_stride, int n_heads, const RopeTable* r) {
    rope_rotate(x, N, pos, row_stride, n_heads, r, 1.0f);
}

// the rotation is orthogonal, so its backward is the inverse rotation (in place)
static void rope_backward(float* dx, int N, const int* pos, int row_stride, int n_heads, const RopeTable* r) {
    rope_rotate(dx, N, pos, row_stride, n_heads, r, -1.0f);
}

// ----------------------------------------------------------------------------
// attention: causal AND key-not-padded mask, grouped-query heads.
// qkv rows are [q (NH*HS) | k (KVH*HS) | v (KVH*HS)]; query head h reads kv head h / (NH/KVH).
// keymask (B, T) is 1 for real tokens, 0 for pads; NULL = no padding (causal only).
// The mask is there for the GPU twin's sake (kernels.cu keeps padded batches): every
// CPU model packs each history's real tokens and passes NULL; the tests use both.

// The keys (or values) of adjacent heads transposed to (width, n), so that one query's
// n scores are HS passes over contiguous keys (vectorised across the keys), not n dot
// products each summed across a vector's lanes. Head g's rows are g * HS ... (g + 1) * HS.
// xT[i * n + t] = x[t * stride + i] for the rows t < n and i < width.
static inline void head_transpose(float* xT, const float* x, size_t stride, int n, int width) {
    for (int t = 0; t < n; t++) {
        for (int i = 0; i < width; i++) xT[(size_t)i * n + t] = x[(size_t)t * stride + i];
    }
}

// s[t] = a . (key t of xT, (HS, ld)) for t < n; summed over i in order
static inline void head_dots(float* s, const float* a, const float* xT, int ld, int n, int HS) {
    for (int t = 0; t < n; t++) s[t] = 0.0f;
    for (int i = 0; i < HS; i++) {
        const float ai = a[i], *x = xT + (size_t)i * ld;
        #pragma omp simd
        for (int t = 0; t < n; t++) s[t] += ai * x[t];
    }
}

// one query over keys 0..n-1 (kT, its head's keys transposed, (HS, ld); v's rows
// v_stride apart; mask NULL, or 0 = a pad): p (n) gets the probabilities, o (HS) the
// output. A query with no real key attends to nothing. The training forward,
// inference's last token and decoding all go through here: the same bits.
static inline void attention_one_query(float* o, float* p, const float* q, const float* kT, int ld,
                                       const float* v, size_t v_stride, const int* mask, int n, int HS, float scale) {
    head_dots(p, q, kT, ld, n, HS);
    float maxv = -INFINITY;
    for (int t = 0; t < n; t++) {
        p[t] = mask && !mask[t] ? -INFINITY : p[t] * scale;
        if (p[t] > maxv) maxv = p[t];
    }
    float sum = 0.0f;
    #pragma omp simd reduction(+ : sum)
    for (int t = 0; t < n; t++) {
        p[t] = maxv == -INFINITY ? 0.0f : exp_fast(p[t] - maxv);
        sum += p[t];
    }
    float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int i = 0; i < HS; i++) o[i] = 0.0f;
    for (int t = 0; t < n; t++) {
        p[t] *= inv;
        const float* vt = v + (size_t)t * v_stride;
        #pragma omp simd
        for (int i = 0; i < HS; i++) o[i] += p[t] * vt[i];
    }
}

// the queries at q0..T-1 only (keys 0..T-1); the rows of out and att before q0 are left
// as they are (E4SRec's shared instruction computes its own queries once, e4srec.h)
static void attention_forward_queries(float* out, float* att, const float* qkv, const int* keymask,
                                      int B, int T, int q0, int NH, int KVH, int HS) {
    // out (B, T, NH*HS), att (B, NH, T, T) probabilities cached for backward, qkv (B, T, (NH+2KVH)*HS)
    int QKV = (NH + 2 * KVH) * HS, group = NH / KVH;
    float scale = 1.0f / sqrtf((float)HS);
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float* seq = qkv + (size_t)b * T * QKV;
        float* kT = (float*)mallocCheck((size_t)KVH * HS * T * sizeof(float));  // (KVH, HS, T)
        head_transpose(kT, seq + NH * HS, QKV, T, KVH * HS);  // every kv head at once
        for (int h = 0; h < NH; h++) {
            int voff = (NH + KVH) * HS + (h / group) * HS;
            for (int t = q0; t < T; t++) {
                float* p = att + (((size_t)b * NH + h) * T + t) * T;
                attention_one_query(out + ((size_t)b * T + t) * NH * HS + h * HS, p, seq + (size_t)t * QKV + h * HS,
                                    kT + (size_t)(h / group) * HS * T, T, seq + voff, QKV,
                                    keymask ? keymask + (size_t)b * T : NULL, t + 1, HS, scale);
                for (int t2 = t + 1; t2 < T; t2++) p[t2] = 0.0f;  // keys after t: never computed
            }
        }
        free(kT);
    }
}

static void attention_forward(float* out, float* att, const float* qkv, const int* keymask,
                              int B, int T, int NH, int KVH, int HS) {
    attention_forward_queries(out, att, qkv, keymask, B, T, 0, NH, KVH, HS);
}

// the backward of the queries at q0..T-1 only (their dq, and what they send to every key)
static void attention_backward_queries(float* dqkv, const float* dout, const float* qkv, const float* att,
                                       int B, int T, int q0, int NH, int KVH, int HS) {
    // dqkv (B, T, (NH+2KVH)*HS) +=, dout (B, T, NH*HS). One thread per sequence b owns
    // every write to its dk/dv, so the heads sharing a kv head need no atomics.
    int QKV = (NH + 2 * KVH) * HS, group = NH / KVH;
    float scale = 1.0f / sqrtf((float)HS);
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float* seq = qkv + (size_t)b * T * QKV;
        float* dseq = dqkv + (size_t)b * T * QKV;
        float* vT = (float*)mallocCheck(((size_t)KVH * HS + 1) * T * sizeof(float));  // (KVH, HS, T), then dp (T)
        float* dp = vT + (size_t)KVH * HS * T;
        head_transpose(vT, seq + (NH + KVH) * HS, QKV, T, KVH * HS);
        for (int h = 0; h < NH; h++) {
            int koff = NH * HS + (h / group) * HS, voff = (NH + KVH) * HS + (h / group) * HS;
            for (int t = q0; t < T; t++) {
                const float* p = att + (((size_t)b * NH + h) * T + t) * T;
                const float* dy = dout + ((size_t)b * T + t) * NH * HS + h * HS;
                const float* q = seq + (size_t)t * QKV + h * HS;
                float* dq = dseq + (size_t)t * QKV + h * HS;
                // dp = dy . v; then the softmax backward, ds = p * (dp - sum p*dp), left in dp
                head_dots(dp, dy, vT + (size_t)(h / group) * HS * T, T, t + 1, HS);
                float pdp = 0.0f;
                #pragma omp simd reduction(+ : pdp)
                for (int t2 = 0; t2 <= t; t2++) pdp += p[t2] * dp[t2];
                #pragma omp simd
                for (int t2 = 0; t2 <= t; t2++) dp[t2] = p[t2] * (dp[t2] - pdp) * scale;
                // dv += p dy; dq += ds k; dk += ds q (through the scaled dot product)
                for (int t2 = 0; t2 <= t; t2++) {
                    const float* k = seq + (size_t)t2 * QKV + koff;
                    float* dv = dseq + (size_t)t2 * QKV + voff;
                    float* dk = dseq + (size_t)t2 * QKV + koff;
                    #pragma omp simd
                    for (int i = 0; i < HS; i++) {
                        dv[i] += p[t2] * dy[i];
                        dk[i] += dp[t2] * q[i];
                        dq[i] += dp[t2] * k[i];
                    }
                }
            }
        }
        free(vT);
    }
}

static void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att,
                               int B, int T, int NH, int KVH, int HS) {
    attention_backward_queries(dqkv, dout, qkv, att, B, T, 0, NH, KVH, HS);
}

// attention of n queries at positions pos0 .. pos0+n-1 of one causal sequence over the
// keys and values of positions 0 .. their own, forward only: decoding with a KV cache
// (llama.h), and each sample's last token at inference (e4srec.h). Grouped-query heads.
static void attention_query(float* out, float* scores, const float* q, size_t q_stride, const float* k, const float* v,
                            size_t kv_stride, int n, int pos0, int NH, int KVH, int HS) {
    // out (n, NH*HS); scores (n, NH, pos0+n) scratch; q rows (n, q_stride) start with the NH*HS query
    // entries; k and v rows (pos0+n, kv_stride) start with the KVH*HS key / value entries
    int group = NH / KVH, keys = pos0 + n;
    float scale = 1.0f / sqrtf((float)HS);
    float* kT = (float*)mallocCheck((size_t)KVH * HS * keys * sizeof(float));  // (KVH, HS, keys)
    head_transpose(kT, k, kv_stride, keys, KVH * HS);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++) {
        for (int h = 0; h < NH; h++) {
            int g = h / group;
            attention_one_query(out + (size_t)i * NH * HS + h * HS, scores + ((size_t)i * NH + h) * keys,
                                q + (size_t)i * q_stride + h * HS, kT + (size_t)g * HS * keys, keys,
                                v + g * HS, kv_stride, NULL, pos0 + i + 1, HS, scale);
        }
    }
    free(kT);
}

// ----------------------------------------------------------------------------
// SwiGLU: out = silu(gate) * up, gateup rows are [gate (F) | up (F)]

static void swiglu_forward(float* out, const float* gateup, int N, int F) {
    // out (N, F), gateup (N, 2F)
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* g = gateup + (size_t)n * 2 * F;
        const float* u = g + F;
        #pragma omp simd
        for (int i = 0; i < F; i++) out[(size_t)n * F + i] = g[i] / (1.0f + exp_fast(-g[i])) * u[i];
    }
}

static void swiglu_backward(float* dgateup, const float* dout, const float* gateup, int N, int F) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* g = gateup + (size_t)n * 2 * F;
        const float* u = g + F;
        float* dg = dgateup + (size_t)n * 2 * F;
        float* du = dg + F;
        for (int i = 0; i < F; i++) {
            float sig = 1.0f / (1.0f + exp_fast(-g[i]));
            float silu = g[i] * sig, d = dout[(size_t)n * F + i];
            du[i] += d * silu;
            dg[i] += d * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
        }
    }
}

// ----------------------------------------------------------------------------
// ReLU (SASRec feed-forward) and residual add

static void relu_forward(float* out, const float* inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

static void relu_backward(float* dinp, const float* dout, const float* out, size_t n) {
    for (size_t i = 0; i < n; i++) dinp[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}

static void residual_forward(float* out, const float* a, const float* b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

// (no residual_backward: a sum's gradient reaches both inputs unchanged, so the
// backward passes carry dresidual straight through both branches)

// ----------------------------------------------------------------------------
// dropout (SASRec): mask holds 0 or 1/(1-p) per element, drawn from rng in
// forward (training) and reused by backward; p = 0 or rng NULL is the identity

static void dropout_forward(float* out, float* mask, const float* inp, size_t n, float p, Rng* rng) {
    float keep = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++) {
        mask[i] = (rng == NULL || p <= 0.0f) ? 1.0f : (rng_f32(rng) >= p ? keep : 0.0f);
        out[i] = inp[i] * mask[i];
    }
}

static void dropout_backward(float* dinp, const float* dout, const float* mask, size_t n) {
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * mask[i];
}

// counter-based dropout (E4SRec, method.md 4.8): a mask element is a pure function of
// (seed, site, sample, position, channel), not the next number of a stream, so that the
// CPU's packed rows and the GPU's padded ones draw the same masks in any order.
// HOST_DEVICE (utils.h): kernels.cu calls these on the device.

// the key of one row's mask: site numbers the places a forward drops at, sample is -1
// for rows every sample shares, pos is the row's position in its sequence
HOST_DEVICE static inline uint64_t dropout_row_key(uint64_t seed, int site, int sample, int pos) {
    return mix64(mix64(mix64(mix64(seed) + (uint64_t)site) + (uint64_t)(int64_t)sample) + (uint64_t)pos);
}

// element c of that row's mask: 0 with probability p, else 1/(1-p) (24 random bits, as rng_f32)
HOST_DEVICE static inline float dropout_mask_at(uint64_t row_key, int c, float p) {
    float u = (float)(mix64(row_key + 0x9E3779B97F4A7C15ull * (uint64_t)(c + 1)) >> 40) * (1.0f / 16777216.0f);
    return u >= p ? 1.0f / (1.0f - p) : 0.0f;
}

// ----------------------------------------------------------------------------
// softmax cross-entropy over item logits (SLMRec eq. 1, method.md 4.3). Target 0 (the pad id) marks a row
// with no target: zero loss, no gradient (SASRec's pad positions).

static void crossentropy_forward(float* losses, float* probs, const float* logits, const int* targets, int N, int I) {
    // losses (N), probs (N, I) softmax cached for backward, logits (N, I), targets (N)
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* z = logits + (size_t)n * I;
        float* p = probs + (size_t)n * I;
        float maxv = -INFINITY, sum = 0.0f;
        #pragma omp simd reduction(max : maxv)
        for (int i = 0; i < I; i++) maxv = z[i] > maxv ? z[i] : maxv;
        #pragma omp simd reduction(+ : sum)
        for (int i = 0; i < I; i++) { p[i] = exp_fast(z[i] - maxv); sum += p[i]; }
        float inv = 1.0f / sum;
        #pragma omp simd
        for (int i = 0; i < I; i++) p[i] *= inv;
        losses[n] = targets[n] > 0 ? -(z[targets[n]] - maxv - logf(sum)) : 0.0f;
    }
}

static void crossentropy_backward(float* dlogits, const float* dlosses, const float* probs, const int* targets,
                                  int N, int I) {
    // dlogits (N, I) += (probs - onehot(target)) * dlosses[n]
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        if (targets[n] <= 0) continue;
        float d = dlosses[n];
        const float* p = probs + (size_t)n * I;
        float* dz = dlogits + (size_t)n * I;
        for (int i = 0; i < I; i++) dz[i] += (p[i] - (i == targets[n])) * d;
    }
}

// ----------------------------------------------------------------------------
// SLMRec feature distillation terms on (B, C) last-token hidden states.
// Only the student side `a` gets a gradient: the teacher `b` is frozen.

// 1 - mean_b cos(a_b, b_b): one block of SLMRec eq. 3 (method.md 5.2)
static float kd_cosine_forward(const float* a, const float* b, int B, int C) {
    double acc = 0.0;
    for (int n = 0; n < B; n++) {
        const float* x = a + (size_t)n * C;
        const float* y = b + (size_t)n * C;
        float xy = 0.0f, xx = 0.0f, yy = 0.0f;
        for (int i = 0; i < C; i++) { xy += x[i] * y[i]; xx += x[i] * x[i]; yy += y[i] * y[i]; }
        acc += xy / fmaxf(sqrtf(xx) * sqrtf(yy), 1e-8f);
    }
    return 1.0f - (float)(acc / B);
}

static void kd_cosine_backward(float* da, float dloss, const float* a, const float* b, int B, int C) {
    // d cos / dx = y / (|x||y|) - cos * x / |x|^2
    for (int n = 0; n < B; n++) {
        const float* x = a + (size_t)n * C;
        const float* y = b + (size_t)n * C;
        float xy = 0.0f, xx = 0.0f, yy = 0.0f;
        for (int i = 0; i < C; i++) { xy += x[i] * y[i]; xx += x[i] * x[i]; yy += y[i] * y[i]; }
        float norms = sqrtf(xx) * sqrtf(yy), cosv = xy / fmaxf(norms, 1e-8f);
        // the forward clamps |x||y| at 1e-8: below it the denominator is a constant and
        // only y / 1e-8 remains (an all-zero x would otherwise divide by |x|^2 = 0)
        float along_x = norms > 1e-8f ? cosv / xx : 0.0f;
        float k = -dloss / B;
        for (int i = 0; i < C; i++) da[(size_t)n * C + i] += k * (y[i] / fmaxf(norms, 1e-8f) - along_x * x[i]);
    }
}

// mean_b ||a_b - b_b||_2 (not squared): one block of SLMRec eq. 4 (method.md 5.3)
static float kd_l2_forward(const float* a, const float* b, int B, int C) {
    double acc = 0.0;
    for (int n = 0; n < B; n++) {
        float ss = 0.0f;
        for (int i = 0; i < C; i++) { float d = a[(size_t)n * C + i] - b[(size_t)n * C + i]; ss += d * d; }
        acc += sqrtf(ss);
    }
    return (float)(acc / B);
}

static void kd_l2_backward(float* da, float dloss, const float* a, const float* b, int B, int C) {
    for (int n = 0; n < B; n++) {
        float ss = 0.0f;
        for (int i = 0; i < C; i++) { float d = a[(size_t)n * C + i] - b[(size_t)n * C + i]; ss += d * d; }
        float norm = sqrtf(ss);
        if (norm == 0.0f) continue;  // subgradient 0 at a == b
        for (int i = 0; i < C; i++) da[(size_t)n * C + i] += dloss / B * (a[(size_t)n * C + i] - b[(size_t)n * C + i]) / norm;
    }
}
