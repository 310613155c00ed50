// caser.h: Caser, a DLLM2Rec student. The T x D embedding "image" of a
// left-padded history (pads are zero rows) goes through
//   horizontal filters of heights h = 2, 3, 4 (NF each, full width D):
//     c_h[t, f] = relu(sum_{i<h, d} W_h[f, i, d] e[t+i, d] + b_h[f]),  pool_h[f] = max_t c_h[t, f]
//   one vertical filter (T, 1):  v[d] = relu(sum_t w_v[t] e[t, d] + b_v)
//   z = [pool_2 | pool_3 | pool_4 | v]  (3 NF + D),  dropout,  logits = z @ out_w^T + out_b
// Convolutions are cross-correlations with stride 1 and no padding, as torch's
// Conv2d. A horizontal window of h rows is h*D contiguous floats of the (T, D)
// image, so each filter bank is one matmul over those windows (copied out).
#pragma once
#include "layers.h"

#define CASER_HEIGHTS 3  // horizontal filters of heights 2, 3, 4
static int caser_height(int k) { return 2 + k; }

typedef struct {
    int I;          // item table rows = n_items + 1 (row 0 = pad)
    int D;          // embedding width
    int T;          // history length (max_len), at least the tallest filter
    int NF;         // filters per height
    float dropout;  // on z
} CaserConfig;

static int caser_Z(const CaserConfig* c) { return CASER_HEIGHTS * c->NF + c->D; }

#define CASER_NUM_PARAMS 7
typedef struct {
    float* item_emb;  // (I, D) row 0 = pad: zero input rows
    float* conv_w;    // (NF, 2D) | (NF, 3D) | (NF, 4D)  the three horizontal banks back to back (torch (NF, 1, h, D))
    float* conv_b;    // (3, NF)
    float* vert_w;    // (T)      torch (1, 1, T, 1)
    float* vert_b;    // (1)
    float* out_w;     // (I, Z)
    float* out_b;     // (I)
} CaserParams;

#define CASER_NUM_ACTS 6
typedef struct {
    float* emb;    // (B, T, D)  the image
    float* et;     // (B*T, C)   teacher rows read by the collaborative embedding (C = 0 without it)
    float* cols;   // windows of each height back to back: (B, T-h+1, h*D) for h = 2, 3, 4
    float* conv;   // (B, T-h+1, NF) for h = 2, 3, 4 back to back, after relu
    float* z;      // (B, Z)     features before dropout
    float* zdrop;  // (B, Z)     after dropout
} CaserActs;

typedef struct {
    CaserConfig cfg;
    CaserParams params, grads;
    size_t param_sizes[CASER_NUM_PARAMS];
    size_t num_params;
    float* params_memory;
    float* grads_memory;
    CollabEmbed* collab;  // DLLM2Rec's embedding distillation, or NULL
    int max_B, B;
    CaserActs acts;
    float* acts_memory;
    float* mask;          // (B, Z) dropout mask
    int* argmax;          // (B, 3 NF) the time step each pooled filter took its max from
    int* ids;             // (B, T)
    float* demb;          // (B, T, D)
    float* dz;            // (B, Z)
    float* dcols;         // (B, T-1, 4D) one height's window gradients (the largest)
    float* dconv;         // (B, T-1, NF)
    float* scratch;       // (B, max(T*D, Z))
} Caser;

// offsets of height k's weights and activations within the packed banks
static size_t caser_w_offset(const CaserConfig* c, int k) {
    size_t off = 0;
    for (int j = 0; j < k; j++) off += (size_t)c->NF * caser_height(j) * c->D;
    return off;
}
static size_t caser_cols_offset(const CaserConfig* c, int B, int k) {
    size_t off = 0;
    for (int j = 0; j < k; j++) off += (size_t)B * (c->T - caser_height(j) + 1) * caser_height(j) * c->D;
    return off;
}
static size_t caser_conv_offset(const CaserConfig* c, int B, int k) {
    size_t off = 0;
    for (int j = 0; j < k; j++) off += (size_t)B * (c->T - caser_height(j) + 1) * c->NF;
    return off;
}

static void caser_param_sizes(size_t* s, const CaserConfig* c) {
    size_t I = c->I, Z = caser_Z(c);
    size_t sizes[CASER_NUM_PARAMS] = {I * c->D, caser_w_offset(c, CASER_HEIGHTS), (size_t)CASER_HEIGHTS * c->NF,
                                      (size_t)c->T, 1, I * Z, I};
    memcpy(s, sizes, sizeof(sizes));
}

static void caser_point_params(CaserParams* p, float* memory, const size_t* sizes) {
    float** ptrs[CASER_NUM_PARAMS] = {&p->item_emb, &p->conv_w, &p->conv_b, &p->vert_w, &p->vert_b, &p->out_w, &p->out_b};
    arena_point(memory, ptrs, sizes, CASER_NUM_PARAMS);
}

static void caser_build(Caser* m, const CaserConfig* cfg) {
    memset(m, 0, sizeof(*m));
    int tallest = caser_height(CASER_HEIGHTS - 1);
    check_range("caser", "item table rows", cfg->I, 2, (double)MAX_ITEM_ID + 1);
    check_range("caser", "width", cfg->D, 1, MAX_REC_WIDTH);
    check_range("caser", "filters", cfg->NF, 1, MAX_REC_WIDTH);
    check_range("caser", "history length (at least the tallest filter's height)", cfg->T, tallest, MAX_REC_HISTORY);
    check_range("caser", "dropout", cfg->dropout, 0.0, 0.99);
    m->cfg = *cfg;
    caser_param_sizes(m->param_sizes, cfg);
    m->num_params = sizes_total(m->param_sizes, CASER_NUM_PARAMS);
    m->params_memory = (float*)callocCheck(m->num_params, sizeof(float));
    m->grads_memory = (float*)callocCheck(m->num_params, sizeof(float));
    caser_point_params(&m->params, m->params_memory, m->param_sizes);
    caser_point_params(&m->grads, m->grads_memory, m->param_sizes);
}

// the authors' item embedding N(0, 0.01); torch's Conv2d and Linear defaults:
// U(+-1/sqrt(fan_in)) for weights and biases
static void caser_init_random(Caser* m, Rng* rng) {
    const CaserConfig* c = &m->cfg;
    CaserParams* p = &m->params;
    size_t I = c->I, D = c->D, Z = caser_Z(c);
    rng_fill_normal(rng, p->item_emb, I * D, 0.01f);
    memset(p->item_emb, 0, D * sizeof(float));
    for (int k = 0; k < CASER_HEIGHTS; k++) {
        size_t fan_in = (size_t)caser_height(k) * D;
        float bound = 1.0f / sqrtf((float)fan_in);
        rng_fill_uniform(rng, p->conv_w + caser_w_offset(c, k), (size_t)c->NF * fan_in, bound);
        rng_fill_uniform(rng, p->conv_b + (size_t)k * c->NF, c->NF, bound);
    }
    float vb = 1.0f / sqrtf((float)c->T);
    rng_fill_uniform(rng, p->vert_w, c->T, vb);
    rng_fill_uniform(rng, p->vert_b, 1, vb);
    rng_fill_uniform(rng, p->out_w, I * Z, 1.0f / sqrtf((float)Z));
    rng_fill_uniform(rng, p->out_b, I, 1.0f / sqrtf((float)Z));
}

static void caser_alloc_acts(Caser* m, int B) {
    if (B <= m->max_B) return;
    free(m->acts_memory); free(m->mask); free(m->argmax); free(m->ids);
    free(m->demb); free(m->dz); free(m->dcols); free(m->dconv); free(m->scratch);
    const CaserConfig* c = &m->cfg;
    size_t BT = (size_t)B * c->T, D = c->D, Z = caser_Z(c), C = m->collab ? m->collab->C : 0;
    size_t s[CASER_NUM_ACTS] = {BT * D, BT * C, caser_cols_offset(c, B, CASER_HEIGHTS),
                                caser_conv_offset(c, B, CASER_HEIGHTS), (size_t)B * Z, (size_t)B * Z};
    CaserActs* a = &m->acts;
    float** ap[CASER_NUM_ACTS] = {&a->emb, &a->et, &a->cols, &a->conv, &a->z, &a->zdrop};
    m->acts_memory = arena_alloc(ap, s, CASER_NUM_ACTS);
    m->mask = (float*)mallocCheck((size_t)B * Z * sizeof(float));
    m->argmax = (int*)mallocCheck((size_t)B * CASER_HEIGHTS * c->NF * sizeof(int));
    m->ids = (int*)mallocCheck(BT * sizeof(int));
    m->demb = (float*)mallocCheck(BT * D * sizeof(float));
    m->dz = (float*)mallocCheck((size_t)B * Z * sizeof(float));
    m->dcols = (float*)mallocCheck((size_t)B * (c->T - 1) * 4 * D * sizeof(float));
    m->dconv = (float*)mallocCheck((size_t)B * (c->T - 1) * c->NF * sizeof(float));
    m->scratch = (float*)mallocCheck((BT * D > (size_t)B * Z ? BT * D : (size_t)B * Z) * sizeof(float));
    m->max_B = B;
}

static void caser_free(Caser* m) {
    free(m->params_memory); free(m->grads_memory); free(m->acts_memory); free(m->mask); free(m->argmax); free(m->ids);
    free(m->demb); free(m->dz); free(m->dcols); free(m->dconv); free(m->scratch);
    memset(m, 0, sizeof(*m));
}

// forward for B left-padded histories X (B, T): logits (B, I). rng draws the
// dropout mask on z (training); NULL means evaluation.
static void caser_forward(Caser* m, const int* X, int B, Rng* rng, float* logits) {
    const CaserConfig* c = &m->cfg;
    caser_alloc_acts(m, B);
    m->B = B;
    int T = c->T, D = c->D, NF = c->NF, Z = caser_Z(c);
    CaserParams* w = &m->params;
    CaserActs* a = &m->acts;
    for (int i = 0; i < B * T; i++) {
        if (X[i] < 0 || X[i] >= c->I) die("caser: item id %d at batch row %d is outside the item table (0..%d)", X[i], i / T, c->I - 1);
    }
    memcpy(m->ids, X, (size_t)B * T * sizeof(int));
    collab_embed_forward(a->emb, a->et, X, w->item_emb, m->collab, B * T, D);
    for (int k = 0; k < CASER_HEIGHTS; k++) {
        int h = caser_height(k), To = T - h + 1;
        float* cols = a->cols + caser_cols_offset(c, B, k);  // (B, To, h*D)
        float* conv = a->conv + caser_conv_offset(c, B, k);  // (B, To, NF)
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < To; t++) {
                memcpy(cols + ((size_t)b * To + t) * h * D, a->emb + ((size_t)b * T + t) * D, (size_t)h * D * sizeof(float));
            }
        }
        matmul_forward(conv, cols, w->conv_w + caser_w_offset(c, k), w->conv_b + (size_t)k * NF, B * To, h * D, NF);
        relu_forward(conv, conv, (size_t)B * To * NF);
        for (int b = 0; b < B; b++) {
            for (int f = 0; f < NF; f++) {
                int best = 0;
                for (int t = 1; t < To; t++) best = conv[((size_t)b * To + t) * NF + f] > conv[((size_t)b * To + best) * NF + f] ? t : best;
                m->argmax[((size_t)b * CASER_HEIGHTS + k) * NF + f] = best;
                a->z[(size_t)b * Z + k * NF + f] = conv[((size_t)b * To + best) * NF + f];
            }
        }
    }
    for (int b = 0; b < B; b++) {
        float* v = a->z + (size_t)b * Z + CASER_HEIGHTS * NF;
        for (int d = 0; d < D; d++) {
            float s = w->vert_b[0];
            for (int t = 0; t < T; t++) s += w->vert_w[t] * a->emb[((size_t)b * T + t) * D + d];
            v[d] = s > 0.0f ? s : 0.0f;
        }
    }
    dropout_forward(a->zdrop, m->mask, a->z, (size_t)B * Z, c->dropout, rng);
    matmul_forward(logits, a->zdrop, w->out_w, w->out_b, B, Z, c->I);
}

// backpropagates dlogits (B, I) of the last forward into grads (and the collaborative embedding's)
static void caser_backward(Caser* m, const float* dlogits) {
    const CaserConfig* c = &m->cfg;
    int B = m->B, T = c->T, D = c->D, NF = c->NF, Z = caser_Z(c);
    CaserParams* w = &m->params;
    CaserParams* g = &m->grads;
    CaserActs* a = &m->acts;
    memset(m->scratch, 0, (size_t)B * Z * sizeof(float));
    matmul_backward(m->scratch, g->out_w, g->out_b, dlogits, a->zdrop, w->out_w, B, Z, c->I);
    memset(m->dz, 0, (size_t)B * Z * sizeof(float));
    dropout_backward(m->dz, m->scratch, m->mask, (size_t)B * Z);
    memset(m->demb, 0, (size_t)B * T * D * sizeof(float));
    // vertical filter
    for (int b = 0; b < B; b++) {
        const float* v = a->z + (size_t)b * Z + CASER_HEIGHTS * NF;
        const float* dv = m->dz + (size_t)b * Z + CASER_HEIGHTS * NF;
        for (int d = 0; d < D; d++) {
            if (v[d] <= 0.0f) continue;
            g->vert_b[0] += dv[d];
            for (int t = 0; t < T; t++) {
                g->vert_w[t] += dv[d] * a->emb[((size_t)b * T + t) * D + d];
                m->demb[((size_t)b * T + t) * D + d] += dv[d] * w->vert_w[t];
            }
        }
    }
    // horizontal filters: the pooled gradient goes to the step that won the max, through its relu
    for (int k = 0; k < CASER_HEIGHTS; k++) {
        int h = caser_height(k), To = T - h + 1;
        const float* conv = a->conv + caser_conv_offset(c, B, k);
        memset(m->dconv, 0, (size_t)B * To * NF * sizeof(float));
        for (int b = 0; b < B; b++) {
            for (int f = 0; f < NF; f++) {
                size_t at = ((size_t)b * To + m->argmax[((size_t)b * CASER_HEIGHTS + k) * NF + f]) * NF + f;
                if (conv[at] > 0.0f) m->dconv[at] = m->dz[(size_t)b * Z + k * NF + f];
            }
        }
        memset(m->dcols, 0, (size_t)B * To * h * D * sizeof(float));
        matmul_backward(m->dcols, g->conv_w + caser_w_offset(c, k), g->conv_b + (size_t)k * NF, m->dconv,
                        a->cols + caser_cols_offset(c, B, k), w->conv_w + caser_w_offset(c, k), B * To, h * D, NF);
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < To; t++) {
                float* de = m->demb + ((size_t)b * T + t) * D;
                const float* dc = m->dcols + ((size_t)b * To + t) * h * D;
                for (int i = 0; i < h * D; i++) de[i] += dc[i];
            }
        }
    }
    collab_embed_backward(g->item_emb, m->collab, m->scratch, m->demb, a->et, m->ids, B * T, D);
}
