// e4srec.h: the E4SRec model (method.md 4; SLMRec section 3): a LLaMA decoder fed
//   [instruction tokens | input_proj(item_table[history]) | response tokens]
// whose last-token final hidden state, through `score`, is scored against the
// frozen item table. Teacher (M layers) and student (N layers) are this same
// code with a different L. Parameters, gradients and activations each live in
// one arena carved by a table of sizes.
//
// Pads are not computed: each sample is packed to its real tokens (its real items
// and the response prompt, ~11 of Beauty's 72 slots), rows of samples back to back.
// A token keeps its position in the padded sequence (RoPE) and attends causally to
// its own sample's real tokens, so its outputs are what the padded computation with
// a key-padding mask gives at that token. The instruction prompt is computed once a
// batch: it sits at positions 0..P1-1 of every sample and sees only itself, so its
// states are the same in every sample; its P1 rows come first and every sample's
// tokens attend to them (e4srec_pack).
#pragma once
#include "llama.h"
#include "lora.h"

typedef struct {
    int V;       // token vocabulary
    int C;       // hidden width (d1)
    int F;       // MLP width
    int L;       // decoder layers
    int NH;      // query heads
    int KVH;     // key/value heads (grouped-query attention when < NH)
    int HS;      // head size
    int D;       // item embedding width (d0)
    int I;       // item table rows = n_items + 1 (row 0 = pad)
    int P1, P2;  // instruction and response prompt lengths (tokens)
    int S;       // item history length (max_len)
    float rms_eps, rope_theta;
} E4SRecConfig;

// the parameters, one per line in memory and checkpoint order: name, element count,
// shape. Per-layer tensors stack their L layers first. The HF names of each are in
// e4srec_hf_tensor. The struct, the index enum, the size table and the arena's
// pointers below are all made from this one list (CPU and CUDA read the same).
#define E4SREC_PARAMS(X)                                                                            \
    X(tok_emb,   (size_t)c->V * c->C)                  /* (V, C)          embed_tokens */            \
    X(proj_w,    (size_t)c->C * c->D)                  /* (C, D)          input_proj */              \
    X(proj_b,    (size_t)c->C)                         /* (C) */                                     \
    X(rms1,      (size_t)c->L * c->C)                  /* (L, C)          input_layernorm */         \
    X(wqkv,      (size_t)c->L * e4srec_QKV(c) * c->C)  /* (L, QKV, C)     q, k, v_proj by rows */    \
    X(wo,        (size_t)c->L * c->C * c->NH * c->HS)  /* (L, C, NH*HS)   o_proj */                  \
    X(rms2,      (size_t)c->L * c->C)                  /* (L, C)          post_attention_layernorm */\
    X(wgateup,   (size_t)c->L * 2 * c->F * c->C)       /* (L, 2F, C)      gate_proj, up_proj by rows */ \
    X(wdown,     (size_t)c->L * c->C * c->F)           /* (L, C, F)       down_proj */               \
    X(rms_final, (size_t)c->C)                         /* (C)             norm */                    \
    X(score_w,   (size_t)c->D * c->C)                  /* (D, C)          score */

enum {
#define E4SREC_PARAM_INDEX(name, size) E4SREC_PARAM_##name,
    E4SREC_PARAMS(E4SREC_PARAM_INDEX)
#undef E4SREC_PARAM_INDEX
    E4SREC_NUM_PARAMS
};

typedef struct {
#define E4SREC_PARAM_FIELD(name, size) float* name;
    E4SREC_PARAMS(E4SREC_PARAM_FIELD)
#undef E4SREC_PARAM_FIELD
} E4SRecParams;

// the activations for up to B samples, one per line: name, element count, shape.
// R = the batch's packed rows (real tokens), R_it its real items; a layer's slab of a
// per-layer tensor is R rows, allocated for the worst case (BT = B*T rows, BS = B*S
// items). Sizes are in e4srec_alloc_acts's names: L T C F QKV Q BT BS B and c; BSp and Bp
// are BS and B with the every-position CE (e4srec_set_position_ce), 0 without; BTd is BT
// with dropout (e4srec_set_dropout), 0 without.
#define E4SREC_ACTS(X)                                                                                  \
    X(x_items,   BS * c->D)          /* (R_it, D)      item_table[the real history items] */            \
    X(proj,      BS * C)             /* (R_it, C)      input_proj(x_items) */                           \
    X(residual,  (L + 1) * BT * C)   /* (L+1, R, C)    residual[k] = hidden state entering layer k */   \
    X(ln1,       L * BT * C)         /* (L, R, C) */                                                    \
    X(ln1_rstd,  L * BT)             /* (L, R) */                                                       \
    X(qkv,       L * BT * QKV)       /* (L, R, QKV)    after RoPE */                                    \
    X(att,       L * B * c->NH * T * T) /* (L, sum_b NH T_b^2) probabilities; sample b's at att_start[b], its rows from P1 on */ \
    X(att_instr, L * c->NH * c->P1 * c->P1) /* (L, NH, P1, P1) the instruction's own queries' */        \
    X(atty,      L * BT * Q)         /* (L, R, NH*HS) */                                                \
    X(resid_mid, L * BT * C)         /* (L, R, C)      residual after the attention branch */           \
    X(ln2,       L * BT * C)         /* (L, R, C) */                                                    \
    X(ln2_rstd,  L * BT)             /* (L, R) */                                                       \
    X(gateup,    L * BT * 2 * F)     /* (L, R, 2F) */                                                   \
    X(swiglu,    L * BT * F)         /* (L, R, F) */                                                    \
    X(lnf,       BT * C)             /* (R, C)         final RMSNorm output = hidden state L */         \
    X(lnf_rstd,  BT)                 /* (R) */                                                          \
    X(branch,    BT * C)             /* (R, C)         o_proj / down_proj output before the residual add */ \
    X(last,      (L + 1) * B * C)    /* (L+1, B, C)    last-token states: k < L residual[k], k = L lnf */ \
    X(user,      (size_t)B * c->D)   /* (B, D)         score(last[L]) */                                \
    X(logits,    (size_t)B * c->I)   /* (B, I) */                                                       \
    X(probs,     (size_t)B * c->I)   /* (B, I) */                                                       \
    X(pos_h,     BSp * C)            /* (R_it, C)      final hidden state at each real history item */  \
    X(pos_user,  BSp * c->D)         /* (R_it, D)      score(pos_h) */                                  \
    X(pos_logits, Bp * c->I)         /* (B, I)         one chunk of R_it's item logits (scratch) */     \
    X(pos_probs, Bp * c->I)          /* (B, I)         its softmax (scratch) */                         \
    X(pos_losses, Bp)                /* (B)            its CE (scratch) */                              \
    X(pos_dce,   BSp * c->D)         /* (R_it, D)      d CE_i / d pos_user_i, formed while the softmax is at hand */ \
    X(drop_in,   BTd * C)            /* (R, C)         dropout mask of the input rows: 0 or 1/(1-p) */  \
    X(drop_att,  L * BTd * C)        /* (L, R, C)      of each layer's attention branch (after o_proj) */ \
    X(drop_mlp,  L * BTd * C)        /* (L, R, C)      of each layer's MLP branch (after down_proj) */

// gradients of activations: one layer's worth of scratch, reused going down
#define E4SREC_DACTS(X)                                                                                 \
    X(dresidual, BT * C)             /* (R, C) */                                                       \
    X(dln,       BT * C)             /* (R, C) */                                                       \
    X(dqkv,      BT * QKV)           /* (R, QKV) */                                                     \
    X(dqkv_instr, (size_t)B * c->P1 * QKV) /* (B, P1, QKV) each sample's share of the instruction's dqkv */ \
    X(datty,     BT * Q)             /* (R, NH*HS) */                                                   \
    X(dgateup,   BT * 2 * F)         /* (R, 2F) */                                                      \
    X(dswiglu,   BT * F)             /* (R, F) */                                                       \
    X(dproj,     BS * C)             /* (R_it, C) */                                                    \
    X(dlast,     (L + 1) * B * C)    /* (L+1, B, C)    injected at each last-token state (KD adds here) */ \
    X(duser,     (size_t)B * c->D)   /* (B, D) */                                                       \
    X(dlogits,   (size_t)B * c->I)   /* (B, I) */                                                       \
    X(dlosses,   (size_t)B)          /* (B)            the weight of each sample's CE */                \
    X(dpos_h,    BSp * C)            /* (R_it, C)      injected at each real history item's final state */ \
    X(dpos_user, BSp * c->D)         /* (R_it, D) */                                                    \
    X(dbranch,   BTd * C)            /* (R, C)         a branch's gradient through its dropout mask */

#define E4SREC_FIELD(name, size) float* name;
#define E4SREC_COUNT(name, size) +1
#define E4SREC_NUM_ACTS (0 E4SREC_ACTS(E4SREC_COUNT))
#define E4SREC_NUM_DACTS (0 E4SREC_DACTS(E4SREC_COUNT))
typedef struct { E4SREC_ACTS(E4SREC_FIELD) } E4SRecActs;
typedef struct { E4SREC_DACTS(E4SREC_FIELD) } E4SRecDActs;

typedef struct {
    E4SRecConfig cfg;
    E4SRecParams params;
    E4SRecParams grads;
    size_t param_sizes[E4SREC_NUM_PARAMS];
    size_t num_params;
    float* params_memory;
    float* grads_memory;
    Lora* lora;               // NULL: every weight trains; else LoRA: the decoder and token embeddings are
                              // frozen, and only the adapters, input_proj and score train
    const float* item_table;  // (I, D) frozen, owned by the caller
    RopeTable rope;           // the T positions' RoPE angles
    int* instr;               // (P1) instruction token ids
    int* resp;                // (P2) response token ids
    // activations, allocated lazily for up to max_B samples
    int max_B;
    E4SRecActs acts;
    E4SRecDActs dacts;
    float* acts_memory;
    float* dacts_memory;
    int* targets;             // (B)
    float* losses;            // (B)
    float position_ce;        // weight of the every-position CE (0 = the last token only, the paper's)
    int* pos_targets;         // (R_it) the item each real history item's state is scored against
    float pos_ce;             // the batch's every-position CE (mean over its R_it items)
    float dropout;            // rate at the input rows and after each residual branch, training forwards only
                              // (0 = LLaMA's none; e4srec_set_dropout)
    uint64_t dropout_seed;    // a training forward's masks are drawn from this seed (the trainer sets it each step)
    int dropped;              // the last forward drew masks (e4srec_backward then applies them)
    int B;                    // samples in the current batch
    // the current batch, packed: rows 0..P1-1 are the instruction every sample shares,
    // sample b's own real tokens (items, response) are rows row_start[b] .. row_start[b+1]-1
    int R, R_it;              // packed rows, of which real items
    int* row_start;           // (B+1)
    size_t* att_start;        // (B+1) offsets into one layer's att
    int* pos;                 // (R) each row's position in the padded sequence (RoPE)
    int* item_ids;            // (R_it) the real items, in row order
    int* item_rows;           // (R_it) the row each one sits in
} E4SRec;

static int e4srec_T(const E4SRecConfig* c) { return c->P1 + c->S + c->P2; }
static int e4srec_QKV(const E4SRecConfig* c) { return (c->NH + 2 * c->KVH) * c->HS; }

static void e4srec_param_sizes(size_t* s, const E4SRecConfig* c) {
#define E4SREC_PARAM_SIZE(name, size) s[E4SREC_PARAM_##name] = size;
    E4SREC_PARAMS(E4SREC_PARAM_SIZE)
#undef E4SREC_PARAM_SIZE
}

static void e4srec_point_params(E4SRecParams* p, float* memory, const size_t* sizes) {
#define E4SREC_PARAM_POINTER(name, size) &p->name,
    float** ptrs[E4SREC_NUM_PARAMS] = {E4SREC_PARAMS(E4SREC_PARAM_POINTER)};
#undef E4SREC_PARAM_POINTER
    arena_point(memory, ptrs, sizes, E4SREC_NUM_PARAMS);
}

#define E4SREC_MAX_PROMPT 4096   // tokens in each of the two prompt parts
static void e4srec_validate_config(const E4SRecConfig* c) {
    decoder_check("e4srec", c->V, c->C, c->F, c->L, c->NH, c->KVH, c->HS, c->rms_eps, c->rope_theta);
    check_range("e4srec", "item embedding width", c->D, 1, DEC_MAX_WIDTH);
    check_range("e4srec", "item table rows", c->I, 2, (double)MAX_ITEM_ID + 1);
    check_range("e4srec", "instruction tokens", c->P1, 0, E4SREC_MAX_PROMPT);
    check_range("e4srec", "response tokens", c->P2, 0, E4SREC_MAX_PROMPT);
    check_range("e4srec", "history length", c->S, 1, DEC_MAX_POSITIONS - 2 * E4SREC_MAX_PROMPT);
}

// allocates parameters and gradients (zeroed); the caller fills the parameters
static void e4srec_build(E4SRec* m, const E4SRecConfig* cfg, const float* item_table, const int* instr, const int* resp) {
    memset(m, 0, sizeof(*m));
    e4srec_validate_config(cfg);
    m->cfg = *cfg;
    e4srec_param_sizes(m->param_sizes, cfg);
    m->num_params = sizes_total(m->param_sizes, E4SREC_NUM_PARAMS);
    m->params_memory = (float*)callocCheck(m->num_params, sizeof(float));
    m->grads_memory = (float*)callocCheck(m->num_params, sizeof(float));
    e4srec_point_params(&m->params, m->params_memory, m->param_sizes);
    e4srec_point_params(&m->grads, m->grads_memory, m->param_sizes);
    m->item_table = item_table;
    rope_table_build(&m->rope, e4srec_T(cfg), cfg->HS, cfg->rope_theta);
    m->instr = (int*)mallocCheck((cfg->P1 + 1) * sizeof(int));
    m->resp = (int*)mallocCheck((cfg->P2 + 1) * sizeof(int));
    if (cfg->P1) memcpy(m->instr, instr, cfg->P1 * sizeof(int));  // an empty prompt may come as NULL
    if (cfg->P2) memcpy(m->resp, resp, cfg->P2 * sizeof(int));
}

// initialises dst from src's first dst->cfg.L layers (and every non-layer tensor):
// layer-stacked tensors are layer-major, so the first L layers are each tensor's first elements
static void e4srec_copy_first_layers(E4SRec* dst, const E4SRec* src) {
    E4SRecConfig a = dst->cfg, b = src->cfg;
    a.L = b.L = 0;
    if (memcmp(&a, &b, sizeof(a)) != 0 || dst->cfg.L > src->cfg.L) {
        die("e4srec: cannot initialise a %d-layer model from a %d-layer one of other dimensions", dst->cfg.L, src->cfg.L);
    }
    float* d = dst->params_memory;
    const float* s = src->params_memory;
    for (int t = 0; t < E4SREC_NUM_PARAMS; t++) {
        memcpy(d, s, dst->param_sizes[t] * sizeof(float));
        d += dst->param_sizes[t];
        s += src->param_sizes[t];
    }
}

// the paper's truncation: m's decoder starts from the pretrained base's first
// m->cfg.L layers, its token embeddings and its final norm; input_proj and score
// keep what the caller gave them. m's prompt must be in base's vocabulary.
static void e4srec_init_from_base(E4SRec* m, const Llama* base, const char* base_path) {
    const E4SRecConfig* c = &m->cfg;
    const LlamaConfig* b = &base->cfg;
    if (c->C != b->C || c->F != b->F || c->NH != b->NH || c->KVH != b->KVH || c->HS != b->HS || c->V != b->V ||
        c->rms_eps != b->rms_eps || c->rope_theta != b->rope_theta) {
        die("'%s' is a decoder of width %d, MLP %d, %d/%d heads of %d, vocabulary %d; this model asks for %d, %d, %d/%d of %d, %d",
            base_path, b->C, b->F, b->NH, b->KVH, b->HS, b->V, c->C, c->F, c->NH, c->KVH, c->HS, c->V);
    }
    if (c->L > b->L) die("'%s' has %d layers: a %d-layer model cannot start from its first layers", base_path, b->L, c->L);
    E4SRecParams* p = &m->params;
    const LlamaParams* q = &base->params;
    memcpy(p->tok_emb, q->tok_emb, m->param_sizes[E4SREC_PARAM_tok_emb] * sizeof(float));
    // layer-stacked tensors are layer-major: the first L layers are each tensor's first elements
    float* dst[] = {p->rms1, p->wqkv, p->wo, p->rms2, p->wgateup, p->wdown};
    const float* src[] = {q->rms1, q->wqkv, q->wo, q->rms2, q->wgateup, q->wdown};
    for (int i = 0; i < 6; i++) memcpy(dst[i], src[i], m->param_sizes[E4SREC_PARAM_rms1 + i] * sizeof(float));
    memcpy(p->rms_final, q->rms_final, (size_t)c->C * sizeof(float));
}

// LLaMA-style init: N(0, 0.02) matrices, unit norms, zero bias
static void e4srec_init_random(E4SRec* m, Rng* rng) {
    const E4SRecConfig* c = &m->cfg;
    E4SRecParams* p = &m->params;
    float* matrices[] = {p->tok_emb, p->proj_w, p->wqkv, p->wo, p->wgateup, p->wdown, p->score_w};
    int which[] = {0, 1, 4, 5, 7, 8, 10};
    for (int i = 0; i < 7; i++) rng_fill_normal(rng, matrices[i], m->param_sizes[which[i]], 0.02f);
    for (size_t i = 0; i < (size_t)c->L * c->C; i++) { p->rms1[i] = 1.0f; p->rms2[i] = 1.0f; }
    for (int i = 0; i < c->C; i++) { p->rms_final[i] = 1.0f; p->proj_b[i] = 0.0f; }
}

// frees the activations; the next forward allocates them again
static void e4srec_free_acts(E4SRec* m) {
    free(m->acts_memory); free(m->dacts_memory); free(m->targets); free(m->losses);
    free(m->row_start); free(m->att_start); free(m->pos); free(m->item_ids); free(m->item_rows); free(m->pos_targets);
    m->acts_memory = m->dacts_memory = NULL;
    m->targets = m->row_start = m->pos = m->item_ids = m->item_rows = m->pos_targets = NULL;
    m->losses = NULL;
    m->att_start = NULL;
    m->max_B = 0;
}

static void e4srec_alloc_acts(E4SRec* m, int B) {
    if (B <= m->max_B) return;
    e4srec_free_acts(m);
    const E4SRecConfig* c = &m->cfg;
    size_t L = c->L, T = e4srec_T(c), C = c->C, QKV = e4srec_QKV(c), Q = (size_t)c->NH * c->HS, F = c->F;
    size_t BT = (size_t)B * T, BS = (size_t)B * c->S;
    size_t BSp = m->position_ce > 0.0f ? BS : 0, Bp = m->position_ce > 0.0f ? (size_t)B : 0;
    size_t BTd = m->dropout > 0.0f ? BT : 0;
#define E4SREC_SIZE(name, size) size,
#define E4SREC_ACT_POINTER(name, size) &a->name,
#define E4SREC_DACT_POINTER(name, size) &d->name,
    size_t s[E4SREC_NUM_ACTS] = {E4SREC_ACTS(E4SREC_SIZE)};
    size_t ds[E4SREC_NUM_DACTS] = {E4SREC_DACTS(E4SREC_SIZE)};
    E4SRecActs* a = &m->acts;
    E4SRecDActs* d = &m->dacts;
    float** ap[E4SREC_NUM_ACTS] = {E4SREC_ACTS(E4SREC_ACT_POINTER)};
    float** dp[E4SREC_NUM_DACTS] = {E4SREC_DACTS(E4SREC_DACT_POINTER)};
#undef E4SREC_SIZE
#undef E4SREC_ACT_POINTER
#undef E4SREC_DACT_POINTER
    m->acts_memory = arena_alloc(ap, s, E4SREC_NUM_ACTS);
    if (m->grads_memory) m->dacts_memory = arena_alloc(dp, ds, E4SREC_NUM_DACTS);  // a frozen model has no backward
    m->row_start = (int*)mallocCheck((size_t)(B + 1) * sizeof(int));
    m->att_start = (size_t*)mallocCheck((size_t)(B + 1) * sizeof(size_t));
    m->pos = (int*)mallocCheck(BT * sizeof(int));
    m->item_ids = (int*)mallocCheck(BS * sizeof(int));
    m->item_rows = (int*)mallocCheck(BS * sizeof(int));
    m->pos_targets = (int*)mallocCheck(BS * sizeof(int));
    m->targets = (int*)mallocCheck((size_t)B * sizeof(int));
    m->losses = (float*)mallocCheck((size_t)B * sizeof(float));
    m->max_B = B;
    if (m->lora) lora_alloc_acts(m->lora, B * e4srec_T(c));
}

static void e4srec_free(E4SRec* m) {
    if (m->lora) lora_free(m->lora);
    free(m->lora);
    free(m->params_memory); free(m->grads_memory);
    e4srec_free_acts(m);
    rope_table_free(&m->rope);
    free(m->instr); free(m->resp);
    memset(m, 0, sizeof(*m));
}

// packs the batch: rows 0..P1-1 the instruction, once; then sample b's rows, its real
// items (ids > 0, in order, wherever the pads are) and its P2 response tokens
static void e4srec_pack(E4SRec* m, const int* items, int B) {
    const E4SRecConfig* c = &m->cfg;
    int S = c->S, r = 0, n_it = 0;
    size_t att = 0;
    for (; r < c->P1; r++) m->pos[r] = r;
    for (int b = 0; b < B; b++) {
        m->row_start[b] = r;
        m->att_start[b] = att;
        for (int i = 0; i < S; i++) {
            int id = items[(size_t)b * S + i];
            if (id < 0 || id >= c->I) die("e4srec: item id %d at batch row %d is outside the item table (0..%d)", id, b, c->I - 1);
            if (id == 0) continue;
            m->item_ids[n_it] = id;
            m->item_rows[n_it++] = r;
            m->pos[r++] = c->P1 + i;
        }
        for (int t = 0; t < c->P2; t++) m->pos[r++] = c->P1 + S + t;
        if (c->P1 == 0 && r == m->row_start[b]) die("e4srec: batch row %d has no token (an empty history and no prompt)", b);
        size_t len = (size_t)c->P1 + (size_t)(r - m->row_start[b]);
        att += (size_t)c->NH * len * len;
    }
    m->row_start[B] = r;
    m->att_start[B] = att;
    m->R = r;
    m->R_it = n_it;
    m->B = B;
}

// sample b's whole sequence, the instruction rows then its own, copied out of rows
// (R, width) into seq (P1 + its own rows, width); returns that length
static int e4srec_gather(const E4SRec* m, float* seq, const float* rows, int b, int width) {
    int P1 = m->cfg.P1, r = m->row_start[b], own = m->row_start[b + 1] - r;
    memcpy(seq, rows, (size_t)P1 * width * sizeof(float));
    memcpy(seq + (size_t)P1 * width, rows + (size_t)r * width, (size_t)own * width * sizeof(float));
    return P1 + own;
}

// the row of sample b's last token: its own last, or the instruction's last when it has no
// row of its own (an empty history and no response prompt)
static int e4srec_last_row(const E4SRec* m, int b) {
    return m->row_start[b + 1] > m->row_start[b] ? m->row_start[b + 1] - 1 : m->cfg.P1 - 1;
}

// causal attention over each sample's gathered sequence. The instruction's own queries
// see only the instruction, the same in every sample: they run once, into out's first
// P1 rows and att_instr; each sample then runs its own queries, one sample per thread
// (the layer's own parallel loop then runs as a team of one: OpenMP does not nest by default).
static void e4srec_attention_forward(E4SRec* m, float* out, float* att, float* att_instr, const float* qkv) {
    const E4SRecConfig* c = &m->cfg;
    int QKV = e4srec_QKV(c), Q = c->NH * c->HS, T = e4srec_T(c), P1 = c->P1;
    attention_forward(out, att_instr, qkv, NULL, 1, P1, c->NH, c->KVH, c->HS);
    #pragma omp parallel
    {
        float* seq = (float*)mallocCheck((size_t)T * QKV * sizeof(float));  // (T_b, QKV)
        float* y = (float*)mallocCheck((size_t)T * Q * sizeof(float));      // (T_b, Q), its rows from P1 on
        #pragma omp for schedule(dynamic)
        for (int b = 0; b < m->B; b++) {
            int len = e4srec_gather(m, seq, qkv, b, QKV), r = m->row_start[b];
            attention_forward_queries(y, att + m->att_start[b], seq, NULL, 1, len, P1, c->NH, c->KVH, c->HS);
            memcpy(out + (size_t)r * Q, y + (size_t)P1 * Q, (size_t)(len - P1) * Q * sizeof(float));
        }
        free(seq); free(y);
    }
}

// dqkv +=. The instruction's own queries once; then each sample's queries, whose share
// of the instruction's dk and dv is summed in sample order (the same bits at any thread count).
static void e4srec_attention_backward(E4SRec* m, float* dqkv, const float* dout, const float* qkv, const float* att,
                                      const float* att_instr) {
    const E4SRecConfig* c = &m->cfg;
    int QKV = e4srec_QKV(c), Q = c->NH * c->HS, T = e4srec_T(c), P1 = c->P1;
    size_t shared = (size_t)P1 * QKV;
    float* shares = m->dacts.dqkv_instr;  // (B, P1, QKV)
    attention_backward(dqkv, dout, qkv, att_instr, 1, P1, c->NH, c->KVH, c->HS);
    #pragma omp parallel
    {
        float* seq = (float*)mallocCheck((size_t)T * QKV * sizeof(float));   // (T_b, QKV)
        float* dseq = (float*)mallocCheck((size_t)T * QKV * sizeof(float));  // (T_b, QKV)
        float* dy = (float*)mallocCheck((size_t)T * Q * sizeof(float));      // (T_b, Q), its rows from P1 on
        #pragma omp for schedule(dynamic)
        for (int b = 0; b < m->B; b++) {
            int len = e4srec_gather(m, seq, qkv, b, QKV), r = m->row_start[b];
            memcpy(dy + (size_t)P1 * Q, dout + (size_t)r * Q, (size_t)(len - P1) * Q * sizeof(float));
            memset(dseq, 0, (size_t)len * QKV * sizeof(float));
            attention_backward_queries(dseq, dy, seq, att + m->att_start[b], 1, len, P1, c->NH, c->KVH, c->HS);
            memcpy(shares + b * shared, dseq, shared * sizeof(float));
            float* own = dqkv + (size_t)r * QKV;
            for (size_t i = 0; i < (size_t)(len - P1) * QKV; i++) own[i] += dseq[shared + i];
        }
        free(seq); free(dseq); free(dy);
    }
    for (int b = 0; b < m->B; b++) {
        for (size_t i = 0; i < shared; i++) dqkv[i] += shares[b * shared + i];
    }
}

// inference's last layer: after the keys and values of every row (qkv, (R, QKV)),
// only each sample's last token goes on, as the score reads nothing else. Leaves
// the B last tokens' output of layer l in the first B rows of residual[l+1].
static void e4srec_last_layer_inference(E4SRec* m, int l, const float* res_in, const float* qkv) {
    const E4SRecConfig* c = &m->cfg;
    const E4SRecParams* p = &m->params;
    E4SRecActs* a = &m->acts;
    int B = m->B, C = c->C, QKV = e4srec_QKV(c), Q = c->NH * c->HS, F = c->F, KV = c->KVH * c->HS;
    size_t RC = (size_t)m->R * C;
    float* atty = a->atty + (size_t)l * m->R * Q;      // (B, Q) of the layer's slab
    float* mid = a->resid_mid + l * RC;                // (B, C)
    float* ln2 = a->ln2 + l * RC;                      // (B, C)
    float* gateup = a->gateup + (size_t)l * m->R * 2 * F;
    float* sw = a->swiglu + (size_t)l * m->R * F;
    float* scores = a->att + l * m->att_start[B];     // scratch: sample b's NH x T_b at att_start[b]
    #pragma omp parallel
    {
        float* seq = (float*)mallocCheck((size_t)e4srec_T(c) * QKV * sizeof(float));  // (T_b, QKV)
        #pragma omp for schedule(dynamic)
        for (int b = 0; b < B; b++) {
            int len = e4srec_gather(m, seq, qkv, b, QKV);
            attention_query(atty + (size_t)b * Q, scores + m->att_start[b], seq + (size_t)(len - 1) * QKV, QKV, seq + Q,
                            seq + Q + KV, QKV, 1, len - 1, c->NH, c->KVH, c->HS);
        }
        free(seq);
    }
    matmul_forward(a->branch, atty, p->wo + (size_t)l * C * Q, NULL, B, Q, C);
    if (m->lora) lora_forward(m->lora, LORA_SITE_O, l, a->branch, atty, B);
    for (int b = 0; b < B; b++) {
        const float* x = res_in + (size_t)e4srec_last_row(m, b) * C;
        for (int i = 0; i < C; i++) mid[(size_t)b * C + i] = x[i] + a->branch[(size_t)b * C + i];
    }
    rmsnorm_forward(ln2, a->ln2_rstd + (size_t)l * m->R, mid, p->rms2 + l * C, B, C, c->rms_eps);
    matmul_forward(gateup, ln2, p->wgateup + (size_t)l * 2 * F * C, NULL, B, C, 2 * F);
    if (m->lora) lora_forward(m->lora, LORA_SITE_GATEUP, l, gateup, ln2, B);
    swiglu_forward(sw, gateup, B, F);
    matmul_forward(a->branch, sw, p->wdown + (size_t)l * C * F, NULL, B, F, C);
    if (m->lora) lora_forward(m->lora, LORA_SITE_DOWN, l, a->branch, sw, B);
    residual_forward(a->residual + (l + 1) * RC, mid, a->branch, (size_t)B * C);
}

// ----------------------------------------------------------------------------
// the every-position CE (method.md 4.6; a departure from the paper, which scores the
// last token only): the final hidden state at each real history item, through the
// same score, against the next real item of its history, the last item's against
// the sample's target. Causal attention keeps it honest: a state sees the items up
// to its own. Its mean over the batch's R_it items, times position_ce, adds to the
// last-token CE. The (R_it, I) logits are made B rows at a time.

// a training setting; it sizes the activations, which the next forward allocates again
static void e4srec_set_position_ce(E4SRec* m, float weight) {
    e4srec_free_acts(m);
    m->position_ce = weight;
}

// dropout (method.md 4.8; a departure from the papers, LLaMA has none): a training forward
// (with targets, of a model that trains) multiplies the input rows and each layer's two
// branch outputs, before they join the residual stream, by masks of 0 or 1/(1-p) drawn
// from dropout_seed. Inference and a frozen teacher see no dropout. A setting that sizes
// the activations, which the next forward allocates again.
static void e4srec_set_dropout(E4SRec* m, float p) {
    if (!(p >= 0.0f && p < 1.0f)) die("e4srec: dropout %g is outside [0, 1)", p);
    e4srec_free_acts(m);
    m->dropout = p;
}

// the sites a forward drops at (dropout_row_key's site): the input rows, then each layer's two branches
#define E4SREC_SITE_INPUT 0
#define E4SREC_SITE_ATT(l) (1 + 2 * (l))
#define E4SREC_SITE_MLP(l) (2 + 2 * (l))

// x (R, C) *= site's mask, which it keeps in mask (R, C) for the backward: the instruction's
// rows take the mask every sample shares (sample -1), each sample's rows their own
static void e4srec_dropout_forward(const E4SRec* m, float* x, float* mask, int site) {
    int C = m->cfg.C, P1 = m->cfg.P1;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < m->R; r++) {
        int sample = -1;
        if (r >= P1) {  // the sample that owns row r: the last whose rows start at or before it
            int lo = 0, hi = m->B - 1;
            while (lo < hi) {
                int mid = (lo + hi + 1) / 2;
                if (m->row_start[mid] <= r) lo = mid; else hi = mid - 1;
            }
            sample = lo;
        }
        uint64_t key = dropout_row_key(m->dropout_seed, site, sample, m->pos[r]);
        #pragma omp simd  // each element its own hash: 2.5-3x faster with AVX-512's 64-bit multiply, the same bits
        for (int k = 0; k < C; k++) {
            mask[(size_t)r * C + k] = dropout_mask_at(key, k, m->dropout);
            x[(size_t)r * C + k] *= mask[(size_t)r * C + k];
        }
    }
}

// the mean CE over every real history item; fills pos_targets, pos_h and pos_user,
// and, for a model that trains, each item's CE gradient in pos_dce: the chunk's
// softmax is at hand here, so the backward need not make its logits again
static float e4srec_position_ce_forward(E4SRec* m, const int* targets) {
    const E4SRecConfig* c = &m->cfg;
    E4SRecActs* a = &m->acts;
    int C = c->C, D = c->D, I = c->I, n_it = m->R_it;
    for (int i = 0, b = 0; i < n_it; i++) {  // items are in row order, samples back to back
        while (m->item_rows[i] >= m->row_start[b + 1]) b++;
        int last_of_sample = i + 1 == n_it || m->item_rows[i + 1] >= m->row_start[b + 1];
        m->pos_targets[i] = last_of_sample ? targets[b] : m->item_ids[i + 1];
        memcpy(a->pos_h + (size_t)i * C, a->lnf + (size_t)m->item_rows[i] * C, C * sizeof(float));
    }
    matmul_forward(a->pos_user, a->pos_h, m->params.score_w, NULL, n_it, C, D);
    double sum = 0.0;
    for (int i0 = 0; i0 < n_it; i0 += m->B) {
        int n = min_int(m->B, n_it - i0);
        const float* user = a->pos_user + (size_t)i0 * D;
        matmul_forward(a->pos_logits, user, m->item_table, NULL, n, D, I);
        crossentropy_forward(a->pos_losses, a->pos_probs, a->pos_logits, m->pos_targets + i0, n, I);
        for (int i = 0; i < n; i++) sum += a->pos_losses[i];
        if (!m->grads_memory) continue;
        for (int i = 0; i < n; i++) a->pos_losses[i] = 1.0f;  // from here each row's weight in the CE backward
        memset(a->pos_logits, 0, (size_t)n * I * sizeof(float));  // from here the chunk's dlogits
        crossentropy_backward(a->pos_logits, a->pos_losses, a->pos_probs, m->pos_targets + i0, n, I);
        memset(a->pos_dce + (size_t)i0 * D, 0, (size_t)n * D * sizeof(float));
        matmul_backward(a->pos_dce + (size_t)i0 * D, NULL, NULL, a->pos_logits, user, m->item_table, n, D, I);
    }
    m->pos_ce = n_it ? (float)(sum / n_it) : 0.0f;
    return m->pos_ce;
}

// adds the gradient of weight * the every-position CE into dpos_h and score's gradient
static void e4srec_position_ce_backward(E4SRec* m, float weight) {
    const E4SRecConfig* c = &m->cfg;
    E4SRecActs* a = &m->acts;
    E4SRecDActs* d = &m->dacts;
    int n_it = m->R_it;
    if (n_it == 0) return;
    size_t n = (size_t)n_it * c->D;
    float scale = weight / n_it;  // the CE is a mean over the batch's items
    for (size_t i = 0; i < n; i++) d->dpos_user[i] = scale * a->pos_dce[i];
    matmul_backward(d->dpos_h, m->grads.score_w, NULL, d->dpos_user, a->pos_h, m->params.score_w, n_it, c->C, c->D);
}

// forward for B samples: items (B, S) history ids (0 = pad), targets (B) or NULL.
// With targets: every activation (for e4srec_backward), the user vectors, the item
// logits, m->losses, and returns the model's loss: the mean last-token cross-entropy,
// plus position_ce times the every-position CE. Without (inference): the last
// layer runs for each sample's last token only; the same last-token states and
// logits; returns 0.
static float e4srec_forward(E4SRec* m, const int* items, const int* targets, int B) {
    const E4SRecConfig* c = &m->cfg;
    if (B < 1) die("e4srec: a batch of %d samples", B);
    e4srec_alloc_acts(m, B);
    e4srec_pack(m, items, B);
    int C = c->C, QKV = e4srec_QKV(c), Q = c->NH * c->HS, F = c->F, R = m->R;
    size_t RC = (size_t)R * C, att_layer = m->att_start[B], att_instr_layer = (size_t)c->NH * c->P1 * c->P1;
    E4SRecParams* p = &m->params;
    E4SRecActs* a = &m->acts;
    // embeddings: prompt tokens from tok_emb, real history items through input_proj(item_table[id])
    embedding_forward(a->x_items, m->item_ids, m->item_table, m->R_it, c->D);
    matmul_forward(a->proj, a->x_items, p->proj_w, p->proj_b, m->R_it, c->D, C);
    float* x = a->residual;  // residual[0]
    embedding_forward(x, m->instr, p->tok_emb, c->P1, C);
    for (int b = 0; b < B; b++) embedding_forward(x + (size_t)(m->row_start[b + 1] - c->P2) * C, m->resp, p->tok_emb, c->P2, C);
    for (int i = 0; i < m->R_it; i++) memcpy(x + (size_t)m->item_rows[i] * C, a->proj + (size_t)i * C, C * sizeof(float));
    m->dropped = m->dropout > 0.0f && targets != NULL && m->grads_memory != NULL;
    if (m->dropped) e4srec_dropout_forward(m, x, a->drop_in, E4SREC_SITE_INPUT);
    for (int l = 0; l < c->L; l++) {
        float* res_in = a->residual + l * RC;
        float* ln1 = a->ln1 + l * RC;
        float* qkv = a->qkv + (size_t)l * R * QKV;
        float* atty = a->atty + (size_t)l * R * Q;
        float* mid = a->resid_mid + l * RC;
        float* ln2 = a->ln2 + l * RC;
        float* gateup = a->gateup + (size_t)l * R * 2 * F;
        float* sw = a->swiglu + (size_t)l * R * F;
        rmsnorm_forward(ln1, a->ln1_rstd + (size_t)l * R, res_in, p->rms1 + l * C, R, C, c->rms_eps);
        matmul_forward(qkv, ln1, p->wqkv + (size_t)l * QKV * C, NULL, R, C, QKV);
        if (m->lora) lora_forward(m->lora, LORA_SITE_QKV, l, qkv, ln1, R);
        rope_forward(qkv, R, m->pos, QKV, c->NH + c->KVH, &m->rope);
        if (targets == NULL && l == c->L - 1) {
            e4srec_last_layer_inference(m, l, res_in, qkv);
            break;
        }
        e4srec_attention_forward(m, atty, a->att + l * att_layer, a->att_instr + l * att_instr_layer, qkv);
        matmul_forward(a->branch, atty, p->wo + (size_t)l * C * Q, NULL, R, Q, C);
        if (m->lora) lora_forward(m->lora, LORA_SITE_O, l, a->branch, atty, R);
        if (m->dropped) e4srec_dropout_forward(m, a->branch, a->drop_att + l * RC, E4SREC_SITE_ATT(l));
        residual_forward(mid, res_in, a->branch, RC);
        rmsnorm_forward(ln2, a->ln2_rstd + (size_t)l * R, mid, p->rms2 + l * C, R, C, c->rms_eps);
        matmul_forward(gateup, ln2, p->wgateup + (size_t)l * 2 * F * C, NULL, R, C, 2 * F);
        if (m->lora) lora_forward(m->lora, LORA_SITE_GATEUP, l, gateup, ln2, R);
        swiglu_forward(sw, gateup, R, F);
        matmul_forward(a->branch, sw, p->wdown + (size_t)l * C * F, NULL, R, F, C);
        if (m->lora) lora_forward(m->lora, LORA_SITE_DOWN, l, a->branch, sw, R);
        if (m->dropped) e4srec_dropout_forward(m, a->branch, a->drop_mlp + l * RC, E4SREC_SITE_MLP(l));
        residual_forward(a->residual + (l + 1) * RC, mid, a->branch, RC);
    }
    // last-token hidden states, contiguous (B, C) per depth, for scoring and distillation
    for (int k = 0; k < c->L; k++) {
        for (int b = 0; b < B; b++) {
            memcpy(a->last + ((size_t)k * B + b) * C, a->residual + k * RC + (size_t)e4srec_last_row(m, b) * C, C * sizeof(float));
        }
    }
    float* final_norm = a->last + (size_t)c->L * B * C;
    if (targets == NULL) {  // residual[L] holds the B last tokens
        rmsnorm_forward(final_norm, a->lnf_rstd, a->residual + c->L * RC, p->rms_final, B, C, c->rms_eps);
    } else {
        rmsnorm_forward(a->lnf, a->lnf_rstd, a->residual + c->L * RC, p->rms_final, R, C, c->rms_eps);
        for (int b = 0; b < B; b++) memcpy(final_norm + (size_t)b * C, a->lnf + (size_t)e4srec_last_row(m, b) * C, C * sizeof(float));
    }
    matmul_forward(a->user, a->last + (size_t)c->L * B * C, p->score_w, NULL, B, C, c->D);
    matmul_forward(a->logits, a->user, m->item_table, NULL, B, c->D, c->I);
    if (targets == NULL) return 0.0f;
    memcpy(m->targets, targets, B * sizeof(int));
    crossentropy_forward(m->losses, a->probs, a->logits, targets, B, c->I);
    double mean = 0.0;
    for (int b = 0; b < B; b++) mean += m->losses[b];
    float loss = (float)(mean / B);
    if (m->position_ce > 0.0f) loss += m->position_ce * e4srec_position_ce_forward(m, targets);
    return loss;
}

// zeroes the parameter gradients and the injected last-token (and history item) gradients
static void e4srec_zero_grad(E4SRec* m) {
    memset(m->grads_memory, 0, m->num_params * sizeof(float));
    if (m->lora) memset(m->lora->grads_memory, 0, m->lora->num_params * sizeof(float));
    memset(m->dacts.dlast, 0, (size_t)(m->cfg.L + 1) * m->B * m->cfg.C * sizeof(float));
    if (m->position_ce > 0.0f) memset(m->dacts.dpos_h, 0, (size_t)m->R_it * m->cfg.C * sizeof(float));
}

// adds the gradient of ce_weight * the model's loss (e4srec_forward's) into dlast[L]
// (through logits and score) and, with the every-position CE, into dpos_h
static void e4srec_ce_backward(E4SRec* m, float ce_weight) {
    const E4SRecConfig* c = &m->cfg;
    int B = m->B;
    E4SRecActs* a = &m->acts;
    E4SRecDActs* d = &m->dacts;
    for (int b = 0; b < B; b++) d->dlosses[b] = ce_weight / B;
    memset(d->dlogits, 0, (size_t)B * c->I * sizeof(float));
    memset(d->duser, 0, (size_t)B * c->D * sizeof(float));
    crossentropy_backward(d->dlogits, d->dlosses, a->probs, m->targets, B, c->I);
    matmul_backward(d->duser, NULL, NULL, d->dlogits, a->user, m->item_table, B, c->D, c->I);
    matmul_backward(d->dlast + (size_t)c->L * B * c->C, m->grads.score_w, NULL, d->duser,
                    a->last + (size_t)c->L * B * c->C, m->params.score_w, B, c->C, c->D);
    if (m->position_ce > 0.0f) e4srec_position_ce_backward(m, ce_weight * m->position_ce);
}

// a residual branch's output gradient (n elements): dresidual itself, or after a forward
// that dropped, dresidual through the branch's mask, into dbranch
static const float* e4srec_dbranch(E4SRec* m, const float* mask, size_t n) {
    E4SRecDActs* d = &m->dacts;
    if (!m->dropped) return d->dresidual;
    memset(d->dbranch, 0, n * sizeof(float));
    dropout_backward(d->dbranch, d->dresidual, mask, n);
    return d->dbranch;
}

// p + offset, or NULL when p is NULL (a frozen tensor has no gradient to write)
static float* grad_at(float* p, size_t offset) { return p ? p + offset : NULL; }

// backpropagates dacts.dlast (every depth's last-token gradient) into grads.
// Call after e4srec_zero_grad and whatever loss backward filled dlast.
// With LoRA the decoder's own weights are frozen: their gradients are not computed.
static void e4srec_backward(E4SRec* m) {
    const E4SRecConfig* c = &m->cfg;
    int B = m->B, C = c->C, QKV = e4srec_QKV(c), Q = c->NH * c->HS, F = c->F, R = m->R;
    size_t RC = (size_t)R * C, att_layer = m->att_start[B], att_instr_layer = (size_t)c->NH * c->P1 * c->P1;
    E4SRecParams* p = &m->params;
    E4SRecParams g = m->grads;
    if (m->lora) g.tok_emb = g.rms1 = g.wqkv = g.wo = g.rms2 = g.wgateup = g.wdown = g.rms_final = NULL;
    E4SRecActs* a = &m->acts;
    E4SRecDActs* d = &m->dacts;
    // final RMSNorm: the last token carries a gradient, and with the every-position CE each history item
    memset(d->dln, 0, RC * sizeof(float));
    memset(d->dresidual, 0, RC * sizeof(float));
    for (int b = 0; b < B; b++) {
        // added, not copied: samples with no row of their own share the instruction's last row
        float* dr = d->dln + (size_t)e4srec_last_row(m, b) * C;
        const float* inj = d->dlast + ((size_t)c->L * B + b) * C;
        for (int k = 0; k < C; k++) dr[k] += inj[k];
    }
    for (int i = 0; m->position_ce > 0.0f && i < m->R_it; i++) {
        float* dr = d->dln + (size_t)m->item_rows[i] * C;
        const float* inj = d->dpos_h + (size_t)i * C;
        for (int k = 0; k < C; k++) dr[k] += inj[k];
    }
    rmsnorm_backward(d->dresidual, g.rms_final, d->dln, a->residual + c->L * RC, p->rms_final, a->lnf_rstd, R, C);
    for (int l = c->L - 1; l >= 0; l--) {
        float* res_in = a->residual + l * RC;
        float* mid = a->resid_mid + l * RC;
        float* ln1 = a->ln1 + l * RC;
        float* ln2 = a->ln2 + l * RC;
        float* atty = a->atty + (size_t)l * R * Q;
        float* sw = a->swiglu + (size_t)l * R * F;
        // dresidual holds d(residual[l+1]) = d(mid) = d(mlp branch after its dropout)
        const float* dmlp = e4srec_dbranch(m, a->drop_mlp + l * RC, RC);
        memset(d->dswiglu, 0, (size_t)R * F * sizeof(float));
        memset(d->dgateup, 0, (size_t)R * 2 * F * sizeof(float));
        memset(d->dln, 0, RC * sizeof(float));
        matmul_backward(d->dswiglu, grad_at(g.wdown, (size_t)l * C * F), NULL, dmlp, sw, p->wdown + (size_t)l * C * F, R, F, C);
        if (m->lora) lora_backward(m->lora, LORA_SITE_DOWN, l, d->dswiglu, dmlp, sw, R);
        swiglu_backward(d->dgateup, d->dswiglu, a->gateup + (size_t)l * R * 2 * F, R, F);
        matmul_backward(d->dln, grad_at(g.wgateup, (size_t)l * 2 * F * C), NULL, d->dgateup, ln2,
                        p->wgateup + (size_t)l * 2 * F * C, R, C, 2 * F);
        if (m->lora) lora_backward(m->lora, LORA_SITE_GATEUP, l, d->dln, d->dgateup, ln2, R);
        rmsnorm_backward(d->dresidual, grad_at(g.rms2, (size_t)l * C), d->dln, mid, p->rms2 + l * C, a->ln2_rstd + (size_t)l * R, R, C);
        // dresidual now holds d(mid) = d(residual[l]) via the skip + d(attention branch after its dropout)
        const float* datt = e4srec_dbranch(m, a->drop_att + l * RC, RC);
        memset(d->datty, 0, (size_t)R * Q * sizeof(float));
        memset(d->dqkv, 0, (size_t)R * QKV * sizeof(float));
        memset(d->dln, 0, RC * sizeof(float));
        matmul_backward(d->datty, grad_at(g.wo, (size_t)l * C * Q), NULL, datt, atty, p->wo + (size_t)l * C * Q, R, Q, C);
        if (m->lora) lora_backward(m->lora, LORA_SITE_O, l, d->datty, datt, atty, R);
        e4srec_attention_backward(m, d->dqkv, d->datty, a->qkv + (size_t)l * R * QKV, a->att + l * att_layer,
                                  a->att_instr + l * att_instr_layer);
        rope_backward(d->dqkv, R, m->pos, QKV, c->NH + c->KVH, &m->rope);
        matmul_backward(d->dln, grad_at(g.wqkv, (size_t)l * QKV * C), NULL, d->dqkv, ln1, p->wqkv + (size_t)l * QKV * C, R, C, QKV);
        if (m->lora) lora_backward(m->lora, LORA_SITE_QKV, l, d->dln, d->dqkv, ln1, R);
        rmsnorm_backward(d->dresidual, grad_at(g.rms1, (size_t)l * C), d->dln, res_in, p->rms1 + l * C, a->ln1_rstd + (size_t)l * R, R, C);
        // dresidual = d(residual[l]); add what distillation injected at this depth's last token
        for (int b = 0; b < B; b++) {
            float* dr = d->dresidual + (size_t)e4srec_last_row(m, b) * C;
            const float* inj = d->dlast + ((size_t)l * B + b) * C;
            for (int i = 0; i < C; i++) dr[i] += inj[i];
        }
    }
    // embeddings, through the input rows' dropout mask: prompt rows into tok_emb, item rows through input_proj
    if (m->dropped) {
        for (size_t i = 0; i < RC; i++) d->dresidual[i] *= a->drop_in[i];
    }
    if (g.tok_emb) embedding_backward(g.tok_emb, d->dresidual, m->instr, c->P1, C);
    for (int b = 0; b < B && g.tok_emb; b++) {
        embedding_backward(g.tok_emb, d->dresidual + (size_t)(m->row_start[b + 1] - c->P2) * C, m->resp, c->P2, C);
    }
    for (int i = 0; i < m->R_it; i++) memcpy(d->dproj + (size_t)i * C, d->dresidual + (size_t)m->item_rows[i] * C, C * sizeof(float));
    matmul_backward(NULL, g.proj_w, g.proj_b, d->dproj, a->x_items, p->proj_w, m->R_it, c->D, C);
}

// LoRA on the decoder (lora.h): from now on only the adapters, input_proj and score train
static void e4srec_add_lora(E4SRec* m, int rank, float alpha, int targets) {
    const E4SRecConfig* c = &m->cfg;
    m->lora = (Lora*)mallocCheck(sizeof(Lora));
    lora_build(m->lora, c->L, c->C, c->F, c->NH * c->HS, c->KVH * c->HS, rank, alpha, targets);
    int B = m->max_B;
    if (B) lora_alloc_acts(m->lora, B * e4srec_T(c));
}

// what trains, as blocks of parameters with their gradients: every parameter, or with
// LoRA input_proj (weight and bias, adjacent), score and the adapters. The optimizer,
// the parameter count and the LoRA checkpoint all read this one list.
#define E4SREC_MAX_TRAINED 3
static int e4srec_trained(const E4SRec* m, float** params, float** grads, size_t* sizes) {
    if (m->lora == NULL) {
        params[0] = m->params_memory; grads[0] = m->grads_memory; sizes[0] = m->num_params;
        return 1;
    }
    float* p[E4SREC_MAX_TRAINED] = {m->params.proj_w, m->params.score_w, m->lora->params_memory};
    float* g[E4SREC_MAX_TRAINED] = {m->grads.proj_w, m->grads.score_w, m->lora->grads_memory};
    size_t n[E4SREC_MAX_TRAINED] = {m->param_sizes[E4SREC_PARAM_proj_w] + m->param_sizes[E4SREC_PARAM_proj_b],
                                    m->param_sizes[E4SREC_PARAM_score_w], m->lora->num_params};
    memcpy(params, p, sizeof(p));
    memcpy(grads, g, sizeof(g));
    memcpy(sizes, n, sizeof(n));
    return E4SREC_MAX_TRAINED;
}

static size_t e4srec_trainable_params(const E4SRec* m) {
    float *p[E4SREC_MAX_TRAINED], *g[E4SREC_MAX_TRAINED];
    size_t sizes[E4SREC_MAX_TRAINED], total = 0;
    for (int i = 0, n = e4srec_trained(m, p, g, sizes); i < n; i++) total += sizes[i];
    return total;
}

// folds the adapters into the decoder's weights and drops them: the same scores, one matmul per site
static void e4srec_merge_lora(E4SRec* m) {
    if (m->lora == NULL) return;
    float* const sites[4] = {m->params.wqkv, m->params.wo, m->params.wgateup, m->params.wdown};
    lora_merge(m->lora, sites);
    lora_free(m->lora);
    free(m->lora);
    m->lora = NULL;
}

// frozen: the teacher of offline distillation and the source of DLLM2Rec's signals
// run forward only, as in inference: no CE, no backward, no optimizer step. Its LoRA
// adapters fold into its weights and its gradient buffers are freed; grads_memory ==
// NULL is what marks a model frozen (slmrec_forward reads it)
static void e4srec_freeze(E4SRec* m) {
    e4srec_merge_lora(m);
    free(m->grads_memory);
    m->grads_memory = NULL;
    memset(&m->grads, 0, sizeof(m->grads));
    free(m->dacts_memory);
    m->dacts_memory = NULL;
    memset(&m->dacts, 0, sizeof(m->dacts));
}

// ----------------------------------------------------------------------------
// the prompt (method.md 4.1), the model's shape and its start

typedef struct {
    Tokenizer tok;
    int* instr;  // (P1) with BOS
    int* resp;   // (P2)
    int P1, P2;
} Prompt;

// encodes both prompt parts in the base's vocabulary, or without a base in a BPE
// vocabulary of `vocab` tokens learned on the prompt text itself
static void prompt_build(Prompt* p, const char* instruction, const char* response, int vocab, const Llama* base) {
    size_t n1 = strlen(instruction), n2 = strlen(response);
    if (base) {
        tokenizer_copy(&p->tok, &base->tok);
    } else {
        char* corpus = (char*)mallocCheck(n1 + n2 + 2);
        snprintf(corpus, n1 + n2 + 2, "%s %s", instruction, response);
        tokenizer_train_bpe(&p->tok, corpus, strlen(corpus), vocab);
        free(corpus);
    }
    int cap = (int)(n1 + n2) + 8;
    p->instr = (int*)mallocCheck(cap * sizeof(int));
    p->resp = (int*)mallocCheck(cap * sizeof(int));
    p->P1 = tokenizer_encode(&p->tok, instruction, 1, 0, p->instr, cap);
    p->P2 = tokenizer_encode(&p->tok, response, 0, 0, p->resp, cap);
}

// says what prompt_build made, once the run's log is open (base_path: the base's file, for the message)
static void prompt_log(const Prompt* p, const char* instruction, const char* response, const Llama* base, const char* base_path) {
    size_t n1 = strlen(instruction), n2 = strlen(response);
    // a base's vocabulary without byte fallback could lose characters: say so if the text does not come back
    const char* parts[2] = {instruction, response};
    const int* ids[2] = {p->instr, p->resp};
    int counts[2] = {p->P1, p->P2};
    char* back = (char*)mallocCheck(4 * (n1 + n2) + 64);
    for (int i = 0; i < 2; i++) {
        tokenizer_decode(&p->tok, ids[i], counts[i], back, 4 * (n1 + n2) + 64);
        const char* text = back + (p->tok.add_dummy_prefix && back[0] == ' ');  // the space the encoder put in front
        if (strcmp(text, parts[i]) != 0) logf_("warning: the prompt text '%s' comes back from its tokens as '%s'\n", parts[i], back);
    }
    free(back);
    if (base) logf_("prompt: %d + %d tokens in the vocabulary of %d of --init '%s'\n", p->P1, p->P2, p->tok.vocab_size, base_path);
    else logf_("prompt: %d + %d tokens (BPE vocabulary of %d learned on the prompt)\n", p->P1, p->P2, p->tok.vocab_size);
}

static void prompt_free(Prompt* p) {
    tokenizer_free(&p->tok);
    free(p->instr);
    free(p->resp);
}

// the shape of an E4SRec model of L layers over the prompt p, item table (I, D): the
// widths C, F, NH, KVH and the history length S from `widths`, head size and norms
// from the base's decoder when there is one
static E4SRecConfig e4srec_config_for(E4SRecConfig widths, const Llama* base, const Prompt* p, int L, int D, int I) {
    E4SRecConfig e = widths;
    e.V = p->tok.vocab_size;
    e.L = L;
    e.HS = widths.C / widths.NH;
    e.D = D;
    e.I = I;
    e.P1 = p->P1;
    e.P2 = p->P2;
    e.rms_eps = 1e-5f;
    e.rope_theta = 10000.0f;
    if (base) {
        e.HS = base->cfg.HS;
        e.rms_eps = base->cfg.rms_eps;
        e.rope_theta = base->cfg.rope_theta;
    }
    return e;
}

// a fresh E4SRec's weights: random, then with a base (the file base_path) its first layers
static void e4srec_start(E4SRec* m, const Llama* base, const char* base_path, Rng* rng) {
    e4srec_init_random(m, rng);
    if (base) e4srec_init_from_base(m, base, base_path);
}

// with lora->rank > 0: adapters over m's frozen decoder, whose weights come from the
// file `frozen_from`, stored as an absolute path (the file then loads from anywhere)
static void e4srec_start_lora(E4SRec* m, const LoraSpec* lora, const char* frozen_from, Rng* rng) {
    if (lora->rank == 0) return;
    e4srec_add_lora(m, lora->rank, lora->alpha, lora->targets);
    lora_init(m->lora, rng);
    absolute_path(frozen_from, m->lora->base_path, sizeof(m->lora->base_path), "the LoRA base");
    m->lora->base_checksum = binfile_checksum(frozen_from);
}

// ----------------------------------------------------------------------------
// HF names: the i-th tensor of an HF E4SRec/LLaMA state dict, as a slice of p.
// wrap = prefix of the E4SRec wrapper ("teacher."), llama = of the decoder
// ("teacher.llama."). q/k/v are row blocks of wqkv, gate/up of wgateup.
// Returns 0 past the last index. The same table loads weights and compares gradients.

static int e4srec_hf_tensor(const E4SRec* m, const E4SRecParams* p, int index, const char* wrap, const char* llama,
                            char* name, size_t cap, float** ptr, size_t* numel) {
    const E4SRecConfig* c = &m->cfg;
    size_t C = c->C;
    const int head = 3;
    if (index < head) {
        const char* names[] = {"embed_tokens.weight", "input_proj.weight", "input_proj.bias"};
        float* ptrs[] = {p->tok_emb, p->proj_w, p->proj_b};
        size_t sizes[] = {(size_t)c->V * C, C * c->D, C};
        snprintf(name, cap, "%s%s", index == 0 ? llama : wrap, names[index]);
        *ptr = ptrs[index];
        *numel = sizes[index];
        return 1;
    }
    index -= head;
    if (index < c->L * HF_LAYER_TENSORS) {
        int l = index / HF_LAYER_TENSORS, k = index % HF_LAYER_TENSORS;
        DecoderTensors dt = {p->rms1, p->wqkv, p->wo, p->rms2, p->wgateup, p->wdown, c->C, c->F, c->NH, c->KVH, c->HS};
        float* ptrs[HF_LAYER_TENSORS];
        size_t rows[HF_LAYER_TENSORS], cols[HF_LAYER_TENSORS];
        hf_layer_slices(&dt, l, ptrs, rows, cols);
        snprintf(name, cap, "%slayers.%d.%s", llama, l, hf_layer_names[k]);
        *ptr = ptrs[k];
        *numel = rows[k] * (cols[k] ? cols[k] : 1);
        return 1;
    }
    index -= c->L * HF_LAYER_TENSORS;
    if (index == 0) { snprintf(name, cap, "%snorm.weight", llama); *ptr = p->rms_final; *numel = C; return 1; }
    if (index == 1) { snprintf(name, cap, "%sscore.weight", wrap); *ptr = p->score_w; *numel = (size_t)c->D * C; return 1; }
    return 0;
}
