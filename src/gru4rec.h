// gru4rec.h: GRU4Rec, a DLLM2Rec student. One GRU layer (torch's nn.GRU, gates
// r, z, n) runs over each history's real items from h0 = 0; the last state
// scores every item through a Linear(D, I) with bias:
//   r = sig(W_ir x + b_ir + W_hr h + b_hr)
//   z = sig(W_iz x + b_iz + W_hz h + b_hz)
//   n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
//   h = (1 - z) * n + z * h
//   logits = h_last @ out_w^T + out_b
// The input x of item i is its collaborative embedding (layers.h), with the
// teacher's part when DLLM2Rec's embedding distillation is on.
//
// Packing: the batch's P real items are laid out time-major (all items at
// position 0 of their left-padded row, then position 1, ...), so the items of
// one time step are contiguous and h @ W_hh^T is one matmul per step.
#pragma once
#include "layers.h"

typedef struct {
    int I;  // item table rows = n_items + 1 (row 0 = pad)
    int D;  // embedding width = hidden width
    int T;  // history length (max_len)
} GRU4RecConfig;

#define GRU4REC_NUM_PARAMS 7
typedef struct {
    float* item_emb;  // (I, D)  row 0 = pad, never an input
    float* w_ih;      // (3D, D) rows r, z, n (torch weight_ih_l0)
    float* w_hh;      // (3D, D) (weight_hh_l0)
    float* b_ih;      // (3D)
    float* b_hh;      // (3D)
    float* out_w;     // (I, D)
    float* out_b;     // (I)
} GRU4RecParams;

#define GRU4REC_NUM_ACTS 7
typedef struct {
    float* x;      // (P, D)   input embeddings of the packed items
    float* et;     // (P, C)   the teacher rows the collaborative embedding read (C = 0 without it)
    float* gi;     // (P, 3D)  W_ih x + b_ih
    float* gh;     // (P, 3D)  W_hh h_prev + b_hh
    float* gates;  // (P, 3D)  r, z, n after their nonlinearities
    float* hprev;  // (P, D)   the state each item's step started from
    float* h;      // (B, D)   running state; after the forward, each row's last state (the features)
} GRU4RecActs;

#define GRU4REC_NUM_DACTS 5
typedef struct {
    float* dgi;      // (P, 3D)
    float* dgh;      // (P, 3D)
    float* dhprev;   // (P, D)
    float* dx;       // (P, D)   also the collaborative embedding's scratch
    float* dh;       // (B, D)   running gradient of each row's state
} GRU4RecDActs;

typedef struct {
    GRU4RecConfig cfg;
    GRU4RecParams params, grads;
    size_t param_sizes[GRU4REC_NUM_PARAMS];
    size_t num_params;
    float* params_memory;
    float* grads_memory;
    CollabEmbed* collab;  // DLLM2Rec's embedding distillation, or NULL
    int max_B;
    GRU4RecActs acts;
    GRU4RecDActs dacts;
    float* acts_memory;
    float* dacts_memory;
    float* scratch;       // (P, D)
    int B, P;
    int* item;            // (P) packed item ids, time-major
    int* row;             // (P) the batch row of each packed item
    int* step_start;      // (T+1) step t's items are item[step_start[t] .. step_start[t+1])
} GRU4Rec;

static void gru4rec_param_sizes(size_t* s, const GRU4RecConfig* c) {
    size_t I = c->I, D = c->D;
    size_t sizes[GRU4REC_NUM_PARAMS] = {I * D, 3 * D * D, 3 * D * D, 3 * D, 3 * D, I * D, I};
    memcpy(s, sizes, sizeof(sizes));
}

static void gru4rec_point_params(GRU4RecParams* p, float* memory, const size_t* sizes) {
    float** ptrs[GRU4REC_NUM_PARAMS] = {&p->item_emb, &p->w_ih, &p->w_hh, &p->b_ih, &p->b_hh, &p->out_w, &p->out_b};
    arena_point(memory, ptrs, sizes, GRU4REC_NUM_PARAMS);
}

static void gru4rec_build(GRU4Rec* m, const GRU4RecConfig* cfg) {
    memset(m, 0, sizeof(*m));
    check_range("gru4rec", "item table rows", cfg->I, 2, (double)MAX_ITEM_ID + 1);
    check_range("gru4rec", "width", cfg->D, 1, MAX_REC_WIDTH);
    check_range("gru4rec", "history length", cfg->T, 1, MAX_REC_HISTORY);
    m->cfg = *cfg;
    gru4rec_param_sizes(m->param_sizes, cfg);
    m->num_params = sizes_total(m->param_sizes, GRU4REC_NUM_PARAMS);
    m->params_memory = (float*)callocCheck(m->num_params, sizeof(float));
    m->grads_memory = (float*)callocCheck(m->num_params, sizeof(float));
    gru4rec_point_params(&m->params, m->params_memory, m->param_sizes);
    gru4rec_point_params(&m->grads, m->grads_memory, m->param_sizes);
}

// the authors' item embedding N(0, 0.01); torch's defaults elsewhere: GRU weights
// and biases U(+-1/sqrt(D)), the output Linear U(+-1/sqrt(D))
static void gru4rec_init_random(GRU4Rec* m, Rng* rng) {
    const GRU4RecConfig* c = &m->cfg;
    GRU4RecParams* p = &m->params;
    size_t I = c->I, D = c->D;
    float bound = 1.0f / sqrtf((float)D);
    rng_fill_normal(rng, p->item_emb, I * D, 0.01f);
    memset(p->item_emb, 0, D * sizeof(float));
    rng_fill_uniform(rng, p->w_ih, 3 * D * D, bound);
    rng_fill_uniform(rng, p->w_hh, 3 * D * D, bound);
    rng_fill_uniform(rng, p->b_ih, 3 * D, bound);
    rng_fill_uniform(rng, p->b_hh, 3 * D, bound);
    rng_fill_uniform(rng, p->out_w, I * D, bound);
    rng_fill_uniform(rng, p->out_b, I, bound);
}

static void gru4rec_alloc_acts(GRU4Rec* m, int B) {
    if (B <= m->max_B) return;
    free(m->acts_memory); free(m->dacts_memory); free(m->scratch);
    free(m->item); free(m->row); free(m->step_start);
    size_t P = (size_t)B * m->cfg.T, D = m->cfg.D, C = m->collab ? m->collab->C : 0;
    size_t s[GRU4REC_NUM_ACTS] = {P * D, P * C, P * 3 * D, P * 3 * D, P * 3 * D, P * D, (size_t)B * D};
    GRU4RecActs* a = &m->acts;
    float** ap[GRU4REC_NUM_ACTS] = {&a->x, &a->et, &a->gi, &a->gh, &a->gates, &a->hprev, &a->h};
    m->acts_memory = arena_alloc(ap, s, GRU4REC_NUM_ACTS);
    size_t ds[GRU4REC_NUM_DACTS] = {P * 3 * D, P * 3 * D, P * D, P * D, (size_t)B * D};
    GRU4RecDActs* d = &m->dacts;
    float** dp[GRU4REC_NUM_DACTS] = {&d->dgi, &d->dgh, &d->dhprev, &d->dx, &d->dh};
    m->dacts_memory = arena_alloc(dp, ds, GRU4REC_NUM_DACTS);
    m->scratch = (float*)mallocCheck(P * D * sizeof(float));
    m->item = (int*)mallocCheck(P * sizeof(int));
    m->row = (int*)mallocCheck(P * sizeof(int));
    m->step_start = (int*)mallocCheck((m->cfg.T + 1) * sizeof(int));
    m->max_B = B;
}

static void gru4rec_free(GRU4Rec* m) {
    free(m->params_memory); free(m->grads_memory); free(m->acts_memory); free(m->dacts_memory); free(m->scratch);
    free(m->item); free(m->row); free(m->step_start);
    memset(m, 0, sizeof(*m));
}

// packs the left-padded batch X (B, T) time-major; refuses ids outside the table
// and a pad after an item
static void gru4rec_pack(GRU4Rec* m, const int* X, int B) {
    int T = m->cfg.T, p = 0;
    for (int b = 0; b < B; b++) {
        for (int t = 1; t < T; t++) {
            if (X[b * T + t] == 0 && X[b * T + t - 1] != 0) die("gru4rec: a pad after an item at batch row %d position %d: histories are left-padded", b, t);
        }
    }
    for (int t = 0; t < T; t++) {
        m->step_start[t] = p;
        for (int b = 0; b < B; b++) {
            int id = X[(size_t)b * T + t];
            if (id < 0 || id >= m->cfg.I) die("gru4rec: item id %d at batch row %d position %d is outside the item table (0..%d)", id, b, t, m->cfg.I - 1);
            if (id == 0) continue;
            m->item[p] = id;
            m->row[p] = b;
            p++;
        }
    }
    m->step_start[T] = p;
    m->B = B;
    m->P = p;
}

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

// forward for B left-padded histories X (B, T): logits (B, I). An empty history
// keeps h0 = 0 and scores out_b.
static void gru4rec_forward(GRU4Rec* m, const int* X, int B, float* logits) {
    const GRU4RecConfig* c = &m->cfg;
    gru4rec_alloc_acts(m, B);
    gru4rec_pack(m, X, B);
    int D = c->D, P = m->P;
    GRU4RecParams* w = &m->params;
    GRU4RecActs* a = &m->acts;
    collab_embed_forward(a->x, a->et, m->item, w->item_emb, m->collab, P, D);
    matmul_forward(a->gi, a->x, w->w_ih, w->b_ih, P, D, 3 * D);
    memset(a->h, 0, (size_t)B * D * sizeof(float));
    for (int t = 0; t < c->T; t++) {
        int s0 = m->step_start[t], n = m->step_start[t + 1] - s0;
        if (n == 0) continue;
        for (int k = s0; k < s0 + n; k++) memcpy(a->hprev + (size_t)k * D, a->h + (size_t)m->row[k] * D, D * sizeof(float));
        matmul_forward(a->gh + (size_t)s0 * 3 * D, a->hprev + (size_t)s0 * D, w->w_hh, w->b_hh, n, D, 3 * D);
        for (int k = s0; k < s0 + n; k++) {
            const float* gi = a->gi + (size_t)k * 3 * D;
            const float* gh = a->gh + (size_t)k * 3 * D;
            const float* hp = a->hprev + (size_t)k * D;
            float* g = a->gates + (size_t)k * 3 * D;
            float* h = a->h + (size_t)m->row[k] * D;
            for (int i = 0; i < D; i++) {
                float r = sigmoidf(gi[i] + gh[i]);
                float z = sigmoidf(gi[D + i] + gh[D + i]);
                float nn = tanhf(gi[2 * D + i] + r * gh[2 * D + i]);
                g[i] = r; g[D + i] = z; g[2 * D + i] = nn;
                h[i] = (1.0f - z) * nn + z * hp[i];
            }
        }
    }
    matmul_forward(logits, a->h, w->out_w, w->out_b, B, D, c->I);
}

// backpropagates dlogits (B, I) of the last forward into grads (and the collaborative embedding's)
static void gru4rec_backward(GRU4Rec* m, const float* dlogits) {
    const GRU4RecConfig* c = &m->cfg;
    int D = c->D, P = m->P, B = m->B;
    GRU4RecParams* w = &m->params;
    GRU4RecParams* g = &m->grads;
    GRU4RecActs* a = &m->acts;
    GRU4RecDActs* d = &m->dacts;
    memset(d->dh, 0, (size_t)B * D * sizeof(float));
    matmul_backward(d->dh, g->out_w, g->out_b, dlogits, a->h, w->out_w, B, D, c->I);
    for (int t = c->T - 1; t >= 0; t--) {
        int s0 = m->step_start[t], n = m->step_start[t + 1] - s0;
        if (n == 0) continue;
        for (int k = s0; k < s0 + n; k++) {
            const float* gh = a->gh + (size_t)k * 3 * D;
            const float* gt = a->gates + (size_t)k * 3 * D;
            const float* hp = a->hprev + (size_t)k * D;
            const float* dh = d->dh + (size_t)m->row[k] * D;
            float* dgi = d->dgi + (size_t)k * 3 * D;
            float* dgh = d->dgh + (size_t)k * 3 * D;
            float* dhp = d->dhprev + (size_t)k * D;
            for (int i = 0; i < D; i++) {
                float r = gt[i], z = gt[D + i], nn = gt[2 * D + i];
                float dn = dh[i] * (1.0f - z), dz = dh[i] * (hp[i] - nn);
                float dpre_n = dn * (1.0f - nn * nn);
                float dpre_z = dz * z * (1.0f - z);
                float dpre_r = dpre_n * gh[2 * D + i] * r * (1.0f - r);
                dgi[i] = dgh[i] = dpre_r;
                dgi[D + i] = dgh[D + i] = dpre_z;
                dgi[2 * D + i] = dpre_n;
                dgh[2 * D + i] = dpre_n * r;
                dhp[i] = dh[i] * z;  // the state's direct path; W_hh's is added next
            }
        }
        matmul_backward(d->dhprev + (size_t)s0 * D, g->w_hh, g->b_hh, d->dgh + (size_t)s0 * 3 * D,
                        a->hprev + (size_t)s0 * D, w->w_hh, n, D, 3 * D);
        for (int k = s0; k < s0 + n; k++) memcpy(d->dh + (size_t)m->row[k] * D, d->dhprev + (size_t)k * D, D * sizeof(float));
    }
    memset(d->dx, 0, (size_t)P * D * sizeof(float));
    matmul_backward(d->dx, g->w_ih, g->b_ih, d->dgi, a->x, w->w_ih, P, D, 3 * D);
    collab_embed_backward(g->item_emb, m->collab, m->scratch, d->dx, a->et, m->item, P, D);
}
