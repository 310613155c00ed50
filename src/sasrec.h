// sasrec.h: SASRec (method.md 3), stage 1 of the pipeline. Its trained item
// table is the frozen item table of E4SRec.
//
//   h = dropout(item_emb[x] * sqrt(D) + pos_emb)
//   L pre-LN blocks: h += dropout(attn(LN1(h)));  h += dropout(W2 dropout(relu(W1 LN2(h))))
//   out = LN_final(h); logits = out @ item_emb^T; full-softmax CE at every position with a target
//
// As torch.nn.TransformerEncoderLayer(D, NH, dim_feedforward=D, norm_first=True)
// in the PyTorch peer peer_sasrec.py (method.md 11), with three differences:
//  * pads are not part of the model: each history is packed to its real items
//    (position ids kept: the last item sits at T-1), and attention is causal
//    over those items only, as E4SRec's key-padding mask. The peer runs every
//    padded position and lets items attend to the zeroed pads; on Beauty, where
//    ~89% of the positions are pads, packing does a ninth of its trunk work,
//    and a history's output no longer depends on how many pads precede it;
//  * no dropout on the attention probabilities;
//  * each block drawn at random (torch's TransformerEncoder deep-copies one,
//    so its blocks start equal).
// Packed tensors have one row per real item: P rows in all, P <= B*T.
#pragma once
#include "layers.h"

typedef struct {
    int I;          // item table rows = n_items + 1 (row 0 = pad)
    int D;          // embedding width, also the feed-forward width
    int L;          // transformer blocks
    int NH;         // attention heads
    int T;          // history length (max_len)
    float dropout;  // every dropout site
} SASRecConfig;

#define SASREC_NUM_PARAMS 16
typedef struct {
    float* item_emb;  // (I, D) row 0 = pad: never an input, still a class of the logits as in torch
    float* pos_emb;   // (T, D)
    float* ln1_w;     // (L, D)
    float* ln1_b;     // (L, D)
    float* wqkv;      // (L, 3D, D) in_proj: q, k, v stacked by rows
    float* bqkv;      // (L, 3D)
    float* wo;        // (L, D, D)  out_proj
    float* bo;        // (L, D)
    float* ln2_w;     // (L, D)
    float* ln2_b;     // (L, D)
    float* w1;        // (L, D, D)  linear1
    float* b1;        // (L, D)
    float* w2;        // (L, D, D)  linear2
    float* b2;        // (L, D)
    float* lnf_w;     // (D)
    float* lnf_b;     // (D)
} SASRecParams;

#define SASREC_NUM_ACTS 23
typedef struct {
    float* emb;       // (P, D)    item_emb[x] * sqrt(D) + pos_emb[t], before dropout
    float* emb_mask;  // (P, D)    dropout mask
    float* residual;  // (L+1, P, D) residual[k] = hidden state entering block k
    float* ln1;       // (L, P, D)
    float* ln1_mean;  // (L, P)
    float* ln1_rstd;  // (L, P)
    float* qkv;       // (L, P, 3D)
    float* att;       // (L, max_B*NH*T*T) attention probabilities; in a layer's slab row b's (NH, len, len) start at att_start[b]
    float* atty;      // (L, P, D)
    float* drop1;     // (L, P, D)  dropout mask on the attention branch
    float* mid;       // (L, P, D)  residual after the attention branch
    float* ln2;       // (L, P, D)
    float* ln2_mean;  // (L, P)
    float* ln2_rstd;  // (L, P)
    float* relu;      // (L, P, D)  relu(linear1(ln2))
    float* dropf;     // (L, P, D)  dropout mask inside the feed-forward
    float* relu_drop; // (L, P, D)
    float* drop2;     // (L, P, D)  dropout mask on the feed-forward branch
    float* lnf;       // (P, D)     final LayerNorm output
    float* lnf_mean;  // (P)
    float* lnf_rstd;  // (P)
    float* branch;    // (P, D)     scratch: a branch before its dropout
    float* dlnf;      // (P, D)     d(mean CE)/d(lnf), formed with the loss
} SASRecActs;

#define SASREC_NUM_DACTS 6
typedef struct {
    float* dresidual; // (P, D)
    float* dln;       // (P, D)
    float* dqkv;      // (P, 3D)
    float* datty;     // (P, D)
    float* dbranch;   // (P, D)
    float* dhidden;   // (P, D)  inside the feed-forward
} SASRecDActs;

// rows of the (positions, I) logits formed at once: bounds the logits buffer
#define SASREC_CE_CHUNK 256

typedef struct {
    SASRecConfig cfg;
    SASRecParams params;
    SASRecParams grads;
    size_t param_sizes[SASREC_NUM_PARAMS];
    size_t num_params;
    float* params_memory;
    float* grads_memory;
    // activations, allocated lazily for up to max_B rows of T (P <= max_B * T)
    int max_B;
    SASRecActs acts;
    SASRecDActs dacts;
    float* acts_memory;
    float* dacts_memory;
    // the current batch, packed: row b's items are packed rows row_start[b] .. row_start[b+1]-1
    int B;                // rows (histories) in the current batch
    int P;                // packed positions = real items in the batch
    int* row_start;       // (B+1)
    size_t* att_start;    // (B+1) offsets into one layer's att
    int* item;            // (P) item ids
    int* pos;             // (P) position ids 0..T-1 (where the item sat in the left-padded row)
    int* target;          // (P) next-item targets, 0 = none
    int has_loss;         // the last forward had targets: dlnf and ditem_out are ready
    float* ditem_out;     // (I, D) d(mean CE)/d(item_emb) through the output logits
    float* ce_hidden;     // (CHUNK, D) gathered lnf rows that have a target
    float* ce_logits;     // (CHUNK, I)
    float* ce_probs;      // (CHUNK, I)
    float* ce_dhidden;    // (CHUNK, D)
    // as a DLLM2Rec student: the input embedding and each row's last state
    CollabEmbed* collab;  // the collaborative embedding distillation, or NULL
    float* collab_et;     // (P, C) teacher rows it read
    float* last;          // (max_B, D) each row's final state (lnf at its last item; lnf_b when empty),
                          // then (max_B, D) its gradient
} SASRec;

static void sasrec_param_sizes(size_t* s, const SASRecConfig* c) {
    size_t L = c->L, D = c->D;
    size_t sizes[SASREC_NUM_PARAMS] = {(size_t)c->I * D, (size_t)c->T * D, L * D, L * D, L * 3 * D * D, L * 3 * D,
                                       L * D * D, L * D, L * D, L * D, L * D * D, L * D, L * D * D, L * D, D, D};
    memcpy(s, sizes, sizeof(sizes));
}

static void sasrec_point_params(SASRecParams* p, float* memory, const size_t* sizes) {
    float** ptrs[SASREC_NUM_PARAMS] = {&p->item_emb, &p->pos_emb, &p->ln1_w, &p->ln1_b, &p->wqkv, &p->bqkv,
                                       &p->wo, &p->bo, &p->ln2_w, &p->ln2_b, &p->w1, &p->b1, &p->w2, &p->b2,
                                       &p->lnf_w, &p->lnf_b};
    arena_point(memory, ptrs, sizes, SASREC_NUM_PARAMS);
}

// allocates parameters and gradients (zeroed); the caller fills the parameters
static void sasrec_build(SASRec* m, const SASRecConfig* cfg) {
    memset(m, 0, sizeof(*m));
    check_range("sasrec", "item table rows", cfg->I, 2, (double)MAX_ITEM_ID + 1);
    check_range("sasrec", "width", cfg->D, 1, MAX_REC_WIDTH);
    check_range("sasrec", "blocks", cfg->L, 1, MAX_REC_LAYERS);
    check_range("sasrec", "heads", cfg->NH, 1, cfg->D);
    check_range("sasrec", "history length", cfg->T, 1, MAX_REC_HISTORY);
    check_range("sasrec", "dropout", cfg->dropout, 0.0, 0.99);
    if (cfg->D % cfg->NH) die("sasrec: %d heads do not divide the width %d", cfg->NH, cfg->D);
    m->cfg = *cfg;
    sasrec_param_sizes(m->param_sizes, cfg);
    m->num_params = sizes_total(m->param_sizes, SASREC_NUM_PARAMS);
    m->params_memory = (float*)callocCheck(m->num_params, sizeof(float));
    m->grads_memory = (float*)callocCheck(m->num_params, sizeof(float));
    sasrec_point_params(&m->params, m->params_memory, m->param_sizes);
    sasrec_point_params(&m->grads, m->grads_memory, m->param_sizes);
    size_t R = SASREC_CE_CHUNK, I = cfg->I, D = cfg->D;
    m->ditem_out = (float*)callocCheck(I * D, sizeof(float));
    m->ce_hidden = (float*)mallocCheck(R * D * sizeof(float));
    m->ce_logits = (float*)mallocCheck(R * I * sizeof(float));
    m->ce_probs = (float*)mallocCheck(R * I * sizeof(float));
    m->ce_dhidden = (float*)mallocCheck(R * D * sizeof(float));
}

// torch's defaults: embeddings N(0, 1) (pad row zero), in_proj xavier-uniform with
// zero bias, out_proj U(+-1/sqrt(D)) with zero bias, linear1/2 weights and biases
// U(+-1/sqrt(D)), LayerNorms 1 and 0; the item table from N(0, item_std^2)
// instead (the DLLM2Rec student's 0.01, the authors'), the same draws scaled
static void sasrec_init_random_items(SASRec* m, Rng* rng, float item_std) {
    const SASRecConfig* c = &m->cfg;
    SASRecParams* p = &m->params;
    size_t L = c->L, D = c->D;
    float lin = 1.0f / sqrtf((float)D), xavier = sqrtf(6.0f / (float)(D + 3 * D));
    rng_fill_normal(rng, p->item_emb, (size_t)c->I * D, item_std);
    memset(p->item_emb, 0, D * sizeof(float));
    rng_fill_normal(rng, p->pos_emb, (size_t)c->T * D, 1.0f);
    rng_fill_uniform(rng, p->wqkv, L * 3 * D * D, xavier);
    rng_fill_uniform(rng, p->wo, L * D * D, lin);
    rng_fill_uniform(rng, p->w1, L * D * D, lin);
    rng_fill_uniform(rng, p->b1, L * D, lin);
    rng_fill_uniform(rng, p->w2, L * D * D, lin);
    rng_fill_uniform(rng, p->b2, L * D, lin);
    memset(p->bqkv, 0, L * 3 * D * sizeof(float));
    memset(p->bo, 0, L * D * sizeof(float));
    for (size_t i = 0; i < L * D; i++) { p->ln1_w[i] = 1.0f; p->ln1_b[i] = 0.0f; p->ln2_w[i] = 1.0f; p->ln2_b[i] = 0.0f; }
    for (size_t i = 0; i < D; i++) { p->lnf_w[i] = 1.0f; p->lnf_b[i] = 0.0f; }
}

static void sasrec_init_random(SASRec* m, Rng* rng) { sasrec_init_random_items(m, rng, 1.0f); }

static void sasrec_alloc_acts(SASRec* m, int B) {
    if (B <= m->max_B) return;
    free(m->acts_memory); free(m->dacts_memory);
    free(m->row_start); free(m->att_start); free(m->item); free(m->pos); free(m->target);
    free(m->collab_et); free(m->last);
    const SASRecConfig* c = &m->cfg;
    size_t L = c->L, P = (size_t)B * c->T, D = c->D;
    size_t s[SASREC_NUM_ACTS] = {P * D, P * D, (L + 1) * P * D, L * P * D, L * P, L * P, L * P * 3 * D,
                                 L * B * c->NH * c->T * c->T, L * P * D, L * P * D, L * P * D, L * P * D, L * P,
                                 L * P, L * P * D, L * P * D, L * P * D, L * P * D, P * D, P, P, P * D, P * D};
    SASRecActs* a = &m->acts;
    float** ap[SASREC_NUM_ACTS] = {&a->emb, &a->emb_mask, &a->residual, &a->ln1, &a->ln1_mean, &a->ln1_rstd,
                                   &a->qkv, &a->att, &a->atty, &a->drop1, &a->mid, &a->ln2, &a->ln2_mean,
                                   &a->ln2_rstd, &a->relu, &a->dropf, &a->relu_drop, &a->drop2, &a->lnf,
                                   &a->lnf_mean, &a->lnf_rstd, &a->branch, &a->dlnf};
    m->acts_memory = arena_alloc(ap, s, SASREC_NUM_ACTS);
    size_t ds[SASREC_NUM_DACTS] = {P * D, P * D, P * 3 * D, P * D, P * D, P * D};
    SASRecDActs* d = &m->dacts;
    float** dp[SASREC_NUM_DACTS] = {&d->dresidual, &d->dln, &d->dqkv, &d->datty, &d->dbranch, &d->dhidden};
    m->dacts_memory = arena_alloc(dp, ds, SASREC_NUM_DACTS);
    m->row_start = (int*)mallocCheck((B + 1) * sizeof(int));
    m->att_start = (size_t*)mallocCheck((B + 1) * sizeof(size_t));
    m->item = (int*)mallocCheck(P * sizeof(int));
    m->pos = (int*)mallocCheck(P * sizeof(int));
    m->target = (int*)mallocCheck(P * sizeof(int));
    m->collab_et = (float*)mallocCheck(P * (m->collab ? m->collab->C : 1) * sizeof(float));
    m->last = (float*)mallocCheck((size_t)2 * B * D * sizeof(float));
    m->max_B = B;
}

static void sasrec_free(SASRec* m) {
    free(m->params_memory); free(m->grads_memory); free(m->acts_memory); free(m->dacts_memory);
    free(m->row_start); free(m->att_start); free(m->item); free(m->pos); free(m->target);
    free(m->ditem_out); free(m->ce_hidden); free(m->ce_logits); free(m->ce_probs); free(m->ce_dhidden);
    free(m->collab_et); free(m->last);
    memset(m, 0, sizeof(*m));
}

// packs the left-padded batch X (B, T) and its targets Y (B, T) or NULL into
// m->item / pos / target, row by row; refuses ids outside the table, a pad after
// an item, and a target at a pad
static void sasrec_pack(SASRec* m, const int* X, const int* Y, int B) {
    const SASRecConfig* c = &m->cfg;
    int T = c->T, p = 0;
    size_t att = 0;
    for (int b = 0; b < B; b++) {
        const int* x = X + (size_t)b * T;
        const int* y = Y ? Y + (size_t)b * T : NULL;
        int t0 = 0;
        while (t0 < T && x[t0] == 0) t0++;
        m->row_start[b] = p;
        m->att_start[b] = att;
        for (int t = 0; t < T; t++) {
            if (x[t] < 0 || x[t] >= c->I) die("sasrec: item id %d at batch row %d position %d is outside the item table (0..%d)", x[t], b, t, c->I - 1);
            if (y && (y[t] < 0 || y[t] >= c->I)) die("sasrec: target id %d at batch row %d position %d is outside the item table (0..%d)", y[t], b, t, c->I - 1);
            if (t < t0) {
                if (y && y[t] != 0) die("sasrec: a target at pad position %d of batch row %d", t, b);
                continue;
            }
            if (x[t] == 0) die("sasrec: a pad after an item at batch row %d position %d: histories are left-padded", b, t);
            m->item[p] = x[t];
            m->pos[p] = t;
            m->target[p] = y ? y[t] : 0;
            p++;
        }
        att += (size_t)c->NH * (T - t0) * (T - t0);
    }
    m->row_start[B] = p;
    m->att_start[B] = att;
    m->B = B;
    m->P = p;
}

// floats between two layers' attention probabilities (sized for max_B full rows)
static size_t sasrec_att_layer(const SASRec* m) { return (size_t)m->max_B * m->cfg.NH * m->cfg.T * m->cfg.T; }

// causal attention within each packed row; one row per thread (the layer's own
// parallel loop then runs as a team of one: OpenMP does not nest by default)
static void sasrec_attention_forward(SASRec* m, float* out, float* att, const float* qkv) {
    int D = m->cfg.D, NH = m->cfg.NH;
    #pragma omp parallel for schedule(dynamic)
    for (int b = 0; b < m->B; b++) {
        int r = m->row_start[b], len = m->row_start[b + 1] - r;
        attention_forward(out + (size_t)r * D, att + m->att_start[b], qkv + (size_t)r * 3 * D, NULL, 1, len, NH, NH, D / NH);
    }
}

static void sasrec_attention_backward(SASRec* m, float* dqkv, const float* dout, const float* qkv, const float* att) {
    int D = m->cfg.D, NH = m->cfg.NH;
    #pragma omp parallel for schedule(dynamic)
    for (int b = 0; b < m->B; b++) {
        int r = m->row_start[b], len = m->row_start[b + 1] - r;
        attention_backward(dqkv + (size_t)r * 3 * D, dout + (size_t)r * D, qkv + (size_t)r * 3 * D,
                           att + m->att_start[b], 1, len, NH, NH, D / NH);
    }
}

// the mean CE over every position with a target, chunked over those positions.
// Its backward is cheap here, so it is formed now: acts.dlnf and ditem_out hold
// d(loss)/d(lnf) and d(loss)/d(item_emb) for sasrec_backward.
static float sasrec_loss(SASRec* m) {
    const SASRecConfig* c = &m->cfg;
    int D = c->D, I = c->I, P = m->P;
    const int* Y = m->target;
    int count = 0;
    for (int n = 0; n < P; n++) count += Y[n] > 0;
    memset(m->acts.dlnf, 0, (size_t)P * D * sizeof(float));
    memset(m->ditem_out, 0, (size_t)I * D * sizeof(float));
    m->has_loss = 1;
    if (count == 0) return 0.0f;
    int rows[SASREC_CE_CHUNK], targets[SASREC_CE_CHUNK];
    float losses[SASREC_CE_CHUNK], dlosses[SASREC_CE_CHUNK];
    double total = 0.0;
    for (int n = 0; n < P;) {
        int R = 0;
        for (; n < P && R < SASREC_CE_CHUNK; n++) {
            if (Y[n] <= 0) continue;
            rows[R] = n;
            targets[R] = Y[n];
            memcpy(m->ce_hidden + (size_t)R * D, m->acts.lnf + (size_t)n * D, D * sizeof(float));
            R++;
        }
        if (R == 0) break;
        matmul_forward(m->ce_logits, m->ce_hidden, m->params.item_emb, NULL, R, D, I);
        crossentropy_forward(losses, m->ce_probs, m->ce_logits, targets, R, I);
        for (int r = 0; r < R; r++) { total += losses[r]; dlosses[r] = 1.0f / count; }
        memset(m->ce_logits, 0, (size_t)R * I * sizeof(float));  // reused as dlogits
        crossentropy_backward(m->ce_logits, dlosses, m->ce_probs, targets, R, I);
        memset(m->ce_dhidden, 0, (size_t)R * D * sizeof(float));
        matmul_backward(m->ce_dhidden, m->ditem_out, NULL, m->ce_logits, m->ce_hidden, m->params.item_emb, R, D, I);
        for (int r = 0; r < R; r++) memcpy(m->acts.dlnf + (size_t)rows[r] * D, m->ce_dhidden + (size_t)r * D, D * sizeof(float));
    }
    return (float)(total / count);
}

// forward for B histories: X (B, T) inputs (0 = pad, left-padded), Y (B, T)
// next-item targets (0 = none) or NULL. rng draws the dropout masks (training);
// NULL means evaluation (no dropout). Returns the mean CE (0 without Y).
static float sasrec_forward(SASRec* m, const int* X, const int* Y, int B, Rng* rng) {
    const SASRecConfig* c = &m->cfg;
    sasrec_alloc_acts(m, B);
    sasrec_pack(m, X, Y, B);
    m->has_loss = 0;
    int D = c->D, P = m->P;
    size_t PD = (size_t)P * D, att_layer = sasrec_att_layer(m);
    float p = rng ? c->dropout : 0.0f, scale = sqrtf((float)D);
    SASRecParams* w = &m->params;
    SASRecActs* a = &m->acts;
    // embeddings
    collab_embed_forward(a->emb, m->collab_et, m->item, w->item_emb, m->collab, P, D);
    for (int n = 0; n < P; n++) {
        const float* pos = w->pos_emb + (size_t)m->pos[n] * D;
        for (int i = 0; i < D; i++) a->emb[(size_t)n * D + i] = a->emb[(size_t)n * D + i] * scale + pos[i];
    }
    dropout_forward(a->residual, a->emb_mask, a->emb, PD, p, rng);
    for (int l = 0; l < c->L; l++) {
        size_t o = l * PD, oD = (size_t)l * D, oDD = (size_t)l * D * D;
        float* res_in = a->residual + o;
        layernorm_forward(a->ln1 + o, a->ln1_mean + l * P, a->ln1_rstd + l * P, res_in, w->ln1_w + oD, w->ln1_b + oD, P, D, 1e-5f);
        matmul_forward(a->qkv + 3 * o, a->ln1 + o, w->wqkv + 3 * oDD, w->bqkv + 3 * oD, P, D, 3 * D);
        sasrec_attention_forward(m, a->atty + o, a->att + l * att_layer, a->qkv + 3 * o);
        matmul_forward(a->branch, a->atty + o, w->wo + oDD, w->bo + oD, P, D, D);
        dropout_forward(a->branch, a->drop1 + o, a->branch, PD, p, rng);
        residual_forward(a->mid + o, res_in, a->branch, PD);
        layernorm_forward(a->ln2 + o, a->ln2_mean + l * P, a->ln2_rstd + l * P, a->mid + o, w->ln2_w + oD, w->ln2_b + oD, P, D, 1e-5f);
        matmul_forward(a->branch, a->ln2 + o, w->w1 + oDD, w->b1 + oD, P, D, D);
        relu_forward(a->relu + o, a->branch, PD);
        dropout_forward(a->relu_drop + o, a->dropf + o, a->relu + o, PD, p, rng);
        matmul_forward(a->branch, a->relu_drop + o, w->w2 + oDD, w->b2 + oD, P, D, D);
        dropout_forward(a->branch, a->drop2 + o, a->branch, PD, p, rng);
        residual_forward(a->residual + o + PD, a->mid + o, a->branch, PD);
    }
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, a->residual + c->L * PD, w->lnf_w, w->lnf_b, P, D, 1e-5f);
    return Y ? sasrec_loss(m) : 0.0f;
}

static void sasrec_zero_grad(SASRec* m) {
    memset(m->grads_memory, 0, m->num_params * sizeof(float));
}

// backpropagates the loss of the last forward (which must have had targets) into grads
static void sasrec_backward(SASRec* m) {
    if (!m->has_loss) die("sasrec_backward: the last forward had no targets");
    const SASRecConfig* c = &m->cfg;
    int D = c->D, P = m->P;
    size_t PD = (size_t)P * D, att_layer = sasrec_att_layer(m);
    SASRecParams* w = &m->params;
    SASRecParams* g = &m->grads;
    SASRecActs* a = &m->acts;
    SASRecDActs* d = &m->dacts;
    for (size_t i = 0; i < (size_t)c->I * D; i++) g->item_emb[i] += m->ditem_out[i];
    memset(d->dresidual, 0, PD * sizeof(float));
    layernorm_backward(d->dresidual, g->lnf_w, g->lnf_b, a->dlnf, a->residual + c->L * PD, w->lnf_w, a->lnf_mean,
                       a->lnf_rstd, P, D);
    for (int l = c->L - 1; l >= 0; l--) {
        size_t o = l * PD, oD = (size_t)l * D, oDD = (size_t)l * D * D;
        // dresidual = d(residual[l+1]) = d(mid) via the skip, and d(feed-forward branch)
        memset(d->dbranch, 0, PD * sizeof(float));
        memset(d->dhidden, 0, PD * sizeof(float));
        memset(d->dln, 0, PD * sizeof(float));
        dropout_backward(d->dbranch, d->dresidual, a->drop2 + o, PD);
        matmul_backward(d->dhidden, g->w2 + oDD, g->b2 + oD, d->dbranch, a->relu_drop + o, w->w2 + oDD, P, D, D);
        memset(d->dbranch, 0, PD * sizeof(float));
        dropout_backward(d->dbranch, d->dhidden, a->dropf + o, PD);  // d(relu)
        memset(d->dhidden, 0, PD * sizeof(float));
        relu_backward(d->dhidden, d->dbranch, a->relu + o, PD);      // d(linear1 out)
        matmul_backward(d->dln, g->w1 + oDD, g->b1 + oD, d->dhidden, a->ln2 + o, w->w1 + oDD, P, D, D);
        layernorm_backward(d->dresidual, g->ln2_w + oD, g->ln2_b + oD, d->dln, a->mid + o, w->ln2_w + oD,
                           a->ln2_mean + l * P, a->ln2_rstd + l * P, P, D);
        // dresidual = d(mid) = d(residual[l]) via the skip, and d(attention branch)
        memset(d->dbranch, 0, PD * sizeof(float));
        memset(d->datty, 0, PD * sizeof(float));
        memset(d->dqkv, 0, 3 * PD * sizeof(float));
        memset(d->dln, 0, PD * sizeof(float));
        dropout_backward(d->dbranch, d->dresidual, a->drop1 + o, PD);
        matmul_backward(d->datty, g->wo + oDD, g->bo + oD, d->dbranch, a->atty + o, w->wo + oDD, P, D, D);
        sasrec_attention_backward(m, d->dqkv, d->datty, a->qkv + 3 * o, a->att + l * att_layer);
        matmul_backward(d->dln, g->wqkv + 3 * oDD, g->bqkv + 3 * oD, d->dqkv, a->ln1 + o, w->wqkv + 3 * oDD, P, D, 3 * D);
        layernorm_backward(d->dresidual, g->ln1_w + oD, g->ln1_b + oD, d->dln, a->residual + o, w->ln1_w + oD,
                           a->ln1_mean + l * P, a->ln1_rstd + l * P, P, D);
    }
    // embeddings: through the dropout mask, then sqrt(D) into item_emb and 1 into pos_emb
    float scale = sqrtf((float)D);
    memset(d->dbranch, 0, PD * sizeof(float));
    dropout_backward(d->dbranch, d->dresidual, a->emb_mask, PD);
    for (int n = 0; n < P; n++) {
        float* dpos = g->pos_emb + (size_t)m->pos[n] * D;
        for (int i = 0; i < D; i++) { dpos[i] += d->dbranch[(size_t)n * D + i]; d->dbranch[(size_t)n * D + i] *= scale; }
    }
    collab_embed_backward(g->item_emb, m->collab, d->dln, d->dbranch, m->collab_et, m->item, P, D);
}

// logits (B, I) of every item for the next step after each history X (B, T),
// from each row's last state: the scoring of evaluation, and the training
// forward of SASRec as a DLLM2Rec student (rng: dropout, NULL: none). An empty
// history has no item to read out: its state is LN_final of a zero vector, lnf_b.
static void sasrec_last_forward(SASRec* m, const int* X, int B, Rng* rng, float* logits) {
    const SASRecConfig* c = &m->cfg;
    sasrec_forward(m, X, NULL, B, rng);
    for (int b = 0; b < B; b++) {
        int r = m->row_start[b + 1] - 1;
        const float* last = r >= m->row_start[b] ? m->acts.lnf + (size_t)r * c->D : m->params.lnf_b;
        memcpy(m->last + (size_t)b * c->D, last, c->D * sizeof(float));
    }
    matmul_forward(logits, m->last, m->params.item_emb, NULL, B, c->D, c->I);
}

// backpropagates dlogits (B, I) of the last sasrec_last_forward into grads
static void sasrec_last_backward(SASRec* m, const float* dlogits) {
    const SASRecConfig* c = &m->cfg;
    int B = m->B, D = c->D;
    float* dlast = m->last + (size_t)m->max_B * D;
    memset(dlast, 0, (size_t)B * D * sizeof(float));
    memset(m->ditem_out, 0, (size_t)c->I * D * sizeof(float));
    memset(m->acts.dlnf, 0, (size_t)m->P * D * sizeof(float));
    matmul_backward(dlast, m->ditem_out, NULL, dlogits, m->last, m->params.item_emb, B, D, c->I);
    for (int b = 0; b < B; b++) {
        int r = m->row_start[b + 1] - 1;
        float* dst = r >= m->row_start[b] ? m->acts.dlnf + (size_t)r * D : m->grads.lnf_b;
        for (int i = 0; i < D; i++) dst[i] += dlast[(size_t)b * D + i];
    }
    m->has_loss = 1;
    sasrec_backward(m);
}
