// gpu_plan.h: the device memory of one CUDA-path handle (src/gpu.h), arena by arena,
// computed from the configuration alone, so it runs on a machine without a GPU:
// kernels.cu sizes every allocation from these functions, the trainer prints the plan
// before it allocates, and `slmrec bench --plan` prints the paper shapes' plans.
//
// A training handle keeps every layer's activations for the backward. A forward-only
// handle (scoring, eval, a frozen teacher) keeps one layer's worth and two residual
// slots used in turn, plus the last-token state of every depth (distillation reads them).
#pragma once
#include "e4srec.h"  // E4SRecConfig, e4srec_T, e4srec_QKV, e4srec_param_sizes

#define GPU_ITEM_CHUNK 16384  // item columns per chunk of the fused item logits (CE and scoring)
#define GPU_TOPK_MAX 1024     // the largest k the device top-k keeps per row
#define GPU_NORM_BLOCKS 512   // partial sums of the gradient norm
#define GPU_COLSUM_SLICES 128 // partial column sums (norm weights' and bias gradients)
#define GPU_NUM_SCALARS 9     // loss terms, their running sum, gradient norm, clip scale (kernels.cu)

// the activations, one per line: name, element type (X: the activation type, fp32 or
// bf16; F: always fp32), element count, shape. Counts use gpu_act_bytes's names:
// Ls = layers kept (L training, 1 forward only), R = residual slots (L+1 or 2),
// A1 = CE heads (1 + distillation adapters), P = prompt tokens, BT = B T, BS = B S,
// BSp = BS for a training handle with the every-position CE (e4srec_set_position_ce),
// else 0: its R_it rows (the batch's real history items) are at most B S.
// The residual stream and its gradient are fp32 whatever X is: bf16 rounds only the
// inputs of the matmuls and of attention.
#define GPU_ACTS(_)                                                                               \
    _(x_items,   X, BS * D)           /* (B, S, D)      item_table[history] */                     \
    _(proj,      X, BS * C)           /* (B, S, C)      input_proj(x_items) */                     \
    _(residual,  F, R * BT * C)       /* (R, B, T, C)   hidden state entering layer k */           \
    _(ln1,       X, Ls * BT * C)      /* (Ls, B, T, C) */                                          \
    _(ln1_rstd,  F, Ls * BT)          /* (Ls, B, T) */                                             \
    _(qkv,       X, Ls * BT * QKV)    /* (Ls, B, T, QKV) after RoPE */                             \
    _(lse,       F, Ls * B * NH * T)  /* (Ls, B, NH, T) attention log-sum-exp per query */         \
    _(atty,      X, Ls * BT * Q)      /* (Ls, B, T, NH*HS) */                                      \
    _(resid_mid, F, Ls * BT * C)      /* (Ls, B, T, C)  residual after the attention branch */     \
    _(ln2,       X, Ls * BT * C)      /* (Ls, B, T, C) */                                          \
    _(ln2_rstd,  F, Ls * BT)          /* (Ls, B, T) */                                             \
    _(gateup,    X, Ls * BT * 2 * F)  /* (Ls, B, T, 2F) */                                         \
    _(swiglu,    X, Ls * BT * F)      /* (Ls, B, T, F) */                                          \
    _(lnf,       X, BT * C)           /* (B, T, C)      final RMSNorm output = hidden state L */   \
    _(lnf_rstd,  F, BT)               /* (B, T) */                                                 \
    _(branch,    X, BT * C)           /* (B, T, C)      o_proj / down_proj output */               \
    _(last,      F, (L + 1) * B * C)  /* (L+1, B, C)    last-token state entering each layer, lnf */ \
    _(user,      F, A1 * B * D)       /* (A1, B, D)     score(last[L]), then each adapter's output */ \
    _(ce_stats,  F, A1 * B * 3)       /* (A1, B, 3)     per CE head: max, sum of exp, target logit */ \
    _(rows,      F, B)                /* (B)            per-row loss terms before their mean */ \
    _(pos_h,     F, BSp * C)          /* (R_it, C)      lnf at each real history item, fp32 */     \
    _(pos_user,  F, BSp * D)          /* (R_it, D)      score(pos_h) */                            \
    _(pos_stats, F, BSp * 3)          /* (R_it, 3)      its CE's max, sum of exp, target logit */  \
    _(pos_losses, F, BSp)             /* (R_it)         its CE per item before the mean */

// gradients of the activations (training handles only): one layer's worth, reused going down
#define GPU_DACTS(_)                                                                              \
    _(dresidual, F, BT * C)           /* (B, T, C) */                                              \
    _(dbranch,   X, BT * C)           /* (B, T, C)      o_proj's / down_proj's output gradient: through the dropout mask, or as bf16 */ \
    _(dln,       X, BT * C)           /* (B, T, C) */                                              \
    _(dqkv,      X, BT * QKV)         /* (B, T, QKV) */                                            \
    _(datty,     X, BT * Q)           /* (B, T, NH*HS) */                                          \
    _(dgateup,   X, BT * 2 * F)       /* (B, T, 2F) */                                             \
    _(dswiglu,   X, BT * F)           /* (B, T, F) */                                              \
    _(dproj,     X, BS * C)           /* (B, S, C) */                                              \
    _(dlast,     F, (L + 1) * B * C)  /* (L+1, B, C)    injected at each last-token state */       \
    _(duser,     F, B * D)            /* (B, D) */                                                 \
    _(dprompt,   F, P * C)            /* (P1+P2, C)     prompt positions' gradient summed over the batch */ \
    _(dpos_user, F, BSp * D)          /* (R_it, D) */                                              \
    _(dpos_h,    F, BSp * C)          /* (R_it, C)      added into dln at each real history item */

#define GPU_ACT_COUNT(name, type, count) +1
#define GPU_NUM_ACTS (0 GPU_ACTS(GPU_ACT_COUNT))
#define GPU_NUM_DACTS (0 GPU_DACTS(GPU_ACT_COUNT))

// every device allocation is carved in 256-byte aligned pieces
static size_t gpu_align(size_t bytes) { return (bytes + 255) / 256 * 256; }

// bytes of each activation (GPU_ACTS then GPU_DACTS order) of a handle for B rows;
// position_ce: a training handle's every-position CE buffers (a forward-only one has none)
static void gpu_act_bytes(size_t* bytes, const E4SRecConfig* c, int n_adapters, int B, int use_bf16, int train, int position_ce) {
    size_t L = c->L, Ls = train ? L : 1, R = train ? L + 1 : 2, T = e4srec_T(c), C = c->C, D = c->D, F = c->F;
    size_t QKV = e4srec_QKV(c), Q = (size_t)c->NH * c->HS, NH = c->NH, A1 = (size_t)n_adapters + 1, P = c->P1 + c->P2;
    size_t BT = (size_t)B * T, BS = (size_t)B * c->S, BSp = train && position_ce ? BS : 0;
    size_t elem_X = use_bf16 ? 2 : 4, elem_F = 4;
#define GPU_ACT_BYTES(name, type, count) (count) * elem_##type,
    size_t all[GPU_NUM_ACTS + GPU_NUM_DACTS] = {GPU_ACTS(GPU_ACT_BYTES) GPU_DACTS(GPU_ACT_BYTES)};
#undef GPU_ACT_BYTES
    memcpy(bytes, all, sizeof(all));
}

// the arenas of one handle, each one cudaMalloc (scratch: shared by all handles, grown on first use)
enum { GPU_ARENA_WEIGHTS, GPU_ARENA_SHADOW, GPU_ARENA_GRADS, GPU_ARENA_MOMENTS, GPU_ARENA_INPUTS,
       GPU_ARENA_ACTS, GPU_ARENA_DACTS, GPU_ARENA_SCRATCH, GPU_NUM_ARENAS };
static const char* const gpu_arena_names[GPU_NUM_ARENAS] = {
    "weights fp32", "weights bf16", "gradients", "AdamW m+v", "items+batch", "activations", "act. grads", "scratch"};

typedef struct {
    size_t bytes[GPU_NUM_ARENAS];
    size_t total;
} GpuPlan;

// the inputs arena's pieces: item table, prompt ids, batch items, targets, key mask, RoPE cos+sin,
// scalars, and with the every-position CE (a training handle's) its item rows and targets
static void gpu_input_bytes(size_t* bytes, const E4SRecConfig* c, int max_B, int train, int position_ce) {
    size_t T = e4srec_T(c), P = c->P1 + c->P2, BSp = train && position_ce ? (size_t)max_B * c->S : 0;
    size_t b[9] = {(size_t)c->I * c->D * 4, (P + 1) * 4, (size_t)max_B * c->S * 4, (size_t)max_B * 4,
                   (size_t)max_B * T * 4, 2 * T * (c->HS / 2) * 4, GPU_NUM_SCALARS * 4, BSp * 4, BSp * 4};
    memcpy(bytes, b, sizeof(b));
}
#define GPU_NUM_INPUTS 9

static size_t gpu_sum_aligned(const size_t* bytes, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += gpu_align(bytes[i]);
    return total;
}

// the plan of a handle for max_B rows: train = gradients, moments and the activation
// grads too (else forward only); n_adapters = a student's distillation adapters (D, C);
// position_ce = a training handle also supervises every real history item (its buffers
// are planned, and allocated, only then)
static GpuPlan gpu_plan(const E4SRecConfig* c, int n_adapters, int max_B, int use_bf16, int train, int position_ce) {
    size_t sizes[E4SREC_NUM_PARAMS], acts[GPU_NUM_ACTS + GPU_NUM_DACTS], inputs[GPU_NUM_INPUTS];
    e4srec_param_sizes(sizes, c);
    size_t n = sizes_total(sizes, E4SREC_NUM_PARAMS) + (size_t)n_adapters * c->D * c->C;
    gpu_act_bytes(acts, c, n_adapters, max_B, use_bf16, train, position_ce);
    gpu_input_bytes(inputs, c, max_B, train, position_ce);
    GpuPlan p = {{0}, 0};
    p.bytes[GPU_ARENA_WEIGHTS] = gpu_align(n * 4);
    p.bytes[GPU_ARENA_SHADOW] = use_bf16 ? gpu_align(n * 2) : 0;
    p.bytes[GPU_ARENA_GRADS] = train ? gpu_align(n * 4) : 0;
    p.bytes[GPU_ARENA_MOMENTS] = train ? 2 * gpu_align(n * 4) : 0;
    p.bytes[GPU_ARENA_INPUTS] = gpu_sum_aligned(inputs, GPU_NUM_INPUTS);
    p.bytes[GPU_ARENA_ACTS] = gpu_sum_aligned(acts, GPU_NUM_ACTS);
    p.bytes[GPU_ARENA_DACTS] = train ? gpu_sum_aligned(acts + GPU_NUM_ACTS, GPU_NUM_DACTS) : 0;
    // the largest each scratch slot grows to for this handle: column-sum partials (or the
    // norm's), one chunk of item logits (max_B rows: the every-position CE goes max_B
    // items at a time), the running top-k (values and ids)
    size_t colsum = (size_t)GPU_COLSUM_SLICES * c->C * 4, norm = GPU_NORM_BLOCKS * 8;
    size_t chunk = (size_t)c->I < GPU_ITEM_CHUNK ? (size_t)c->I : GPU_ITEM_CHUNK;
    p.bytes[GPU_ARENA_SCRATCH] = gpu_align(colsum > norm ? colsum : norm) + gpu_align((size_t)max_B * chunk * 4) +
                                 gpu_align((size_t)max_B * GPU_TOPK_MAX * 8);
    for (int i = 0; i < GPU_NUM_ARENAS; i++) p.total += p.bytes[i];
    return p;
}
