// dllm2rec.h: the DLLM2Rec objective (method.md 6) on a student's item logits s (B, I)
// (Cui et al., "Distillation Matters: Empowering Sequential Recommenders to
// Match the Performance of Large Language Models", RecSys 2024):
//
//   loss = L_student + lam * L_rd
//   L_student = CE(s, target)                                  (the default)
//             | BCE(target, neg) + alpha * DROS(s, target)      (the authors' code)
//   L_rd = sum_k mean_b w_bk * (-log sig(s[c_bk]) - log sig(-s[neg_b]))
//        (+ alpha * sum_k mean_b w_bk * DROS(s, c_bk) with the authors' base loss)
//
// c_bk is the teacher's k-th ranked item for sample b. The importance weights
// (no gradient flows through them) mix three views of how far to trust it:
//   w_pos  = exp(-k) normalised over k = 1..K        (the teacher's rank)
//   w_conf = softmax over the K of the teacher's own scores (its confidence)
//   w_cons = 1 if c_bk is in the student's current top-K, else 0 (consistency),
//            each + 1e-8;   w = normalise(g_pos w_pos + g_conf w_conf + g_cons w_cons)
// The authors' released code writes the negative term as -log sig(1 - s[neg]);
// --rd-neg authors selects that form. Every loss here is a function of the
// logits, so its backward is one dlogits (B, I) that the student backpropagates.
#pragma once
#include "layers.h"

typedef enum { BASE_CE, BASE_BCE_DROS } BaseLoss;
typedef enum { RD_NEG_PAPER, RD_NEG_AUTHORS } RdNeg;

typedef struct {
    BaseLoss base;
    RdNeg rd_neg;
    float lam;                                // weight of L_rd (0: no ranking distillation)
    float gamma_pos, gamma_conf, gamma_cons;  // the importance weights' mix
    float dros_alpha, dros_beta;              // DROS weight and temperature
    int K;                                    // teacher candidates per sample
} DLLM2RecConfig;

static DLLM2RecConfig dllm2rec_defaults(void) {
    DLLM2RecConfig c = {BASE_CE, RD_NEG_PAPER, 0.7f, 0.3f, 0.5f, 0.1f, 1.0f, 1.0f, 10};
    return c;
}

// the terms of the objective (all of them with DLLM2RecLoss.all_terms; DROS,
// a pass of exp over every item, otherwise only when trained); total is the one trained
typedef struct { float ce, bce, dros, rd, rd_authors, rd_dros, total; } DLLM2RecLosses;

// one batch as the loss reads it
typedef struct {
    int B, I;
    const int* target;        // (B)
    const int* neg;           // (B) one sampled negative per sample
    const int* cand;          // (B, K) the teacher's top-K items, best first
    const float* cand_score;  // (B, K) the teacher's scores of them
    const float* propensity;  // (I) ((pop + 1) / sum (pop + 1))^0.05, for DROS
} DLLM2RecBatch;

// buffers of the loss, for up to max_B samples
typedef struct {
    int all_terms;    // also the DROS terms of the objective not trained (the oracle compares every term)
    int max_B, I, K;  // the sizes the buffers hold
    float* probs;     // (B, I) softmax of the logits (CE)
    float* ce;        // (B) per-sample CE, then its gradient
    float* w;         // (B, K) the importance weights
    float* w_pos;     // (B, K)
    float* w_conf;    // (B, K)
    float* w_cons;    // (B, K)
    int* student_topk;// (B, K) the student's top-K items (1..n_items), best first
} DLLM2RecLoss;

static void dllm2rec_loss_alloc(DLLM2RecLoss* L, int B, int I, int K) {
    if (B <= L->max_B && I == L->I && K == L->K) return;
    free(L->probs); free(L->ce); free(L->w); free(L->w_pos); free(L->w_conf); free(L->w_cons); free(L->student_topk);
    size_t BK = (size_t)B * K;
    L->probs = (float*)mallocCheck((size_t)B * I * sizeof(float));
    L->ce = (float*)mallocCheck((size_t)B * sizeof(float));
    L->w = (float*)mallocCheck(BK * sizeof(float));
    L->w_pos = (float*)mallocCheck(BK * sizeof(float));
    L->w_conf = (float*)mallocCheck(BK * sizeof(float));
    L->w_cons = (float*)mallocCheck(BK * sizeof(float));
    L->student_topk = (int*)mallocCheck(BK * sizeof(int));
    L->max_B = B;
    L->I = I;
    L->K = K;
}

static void dllm2rec_loss_free(DLLM2RecLoss* L) {
    free(L->probs); free(L->ce); free(L->w); free(L->w_pos); free(L->w_conf); free(L->w_cons); free(L->student_topk);
    memset(L, 0, sizeof(*L));
}

// the importance weights of every candidate (B, K) from the current logits (B, I)
static void rd_weights(DLLM2RecLoss* L, const DLLM2RecConfig* cfg, const DLLM2RecBatch* bt, const float* logits) {
    int K = cfg->K, I = bt->I;
    float scratch[K];
    double pos_sum = 0.0;
    for (int k = 0; k < K; k++) pos_sum += exp(-(double)(k + 1));
    for (int b = 0; b < bt->B; b++) {
        const float* sc = bt->cand_score + (size_t)b * K;
        const int* cand = bt->cand + (size_t)b * K;
        int* top = L->student_topk + (size_t)b * K;
        size_t o = (size_t)b * K;
        top_k(logits + (size_t)b * I, I - 1, K, NULL, 0, top, scratch);
        // exp(score) + 1e-8, normalised, computed with the max taken out: the same ratio, no overflow
        float mx = sc[0];
        for (int k = 1; k < K; k++) mx = sc[k] > mx ? sc[k] : mx;
        double conf_sum = 0.0, tiny = 1e-8 * exp(-(double)mx);
        for (int k = 0; k < K; k++) {
            L->w_pos[o + k] = (float)(exp(-(double)(k + 1)) / pos_sum);
            scratch[k] = (float)(exp((double)sc[k] - mx) + tiny);
            conf_sum += scratch[k];
            int in_top = 0;
            for (int j = 0; j < K; j++) in_top |= top[j] == cand[k];
            L->w_cons[o + k] = in_top + 1e-8f;  // not normalised: a 0/1 indicator
        }
        double w_sum = 0.0;
        for (int k = 0; k < K; k++) {
            L->w_conf[o + k] = (float)(scratch[k] / conf_sum);
            L->w[o + k] = cfg->gamma_pos * L->w_pos[o + k] + cfg->gamma_conf * L->w_conf[o + k] + cfg->gamma_cons * L->w_cons[o + k];
            w_sum += L->w[o + k];
        }
        for (int k = 0; k < K; k++) L->w[o + k] = (float)(L->w[o + k] / w_sum);
    }
}

// -log sigmoid(x) and its derivative, stable for large |x|
static double neg_log_sigmoid(double x) { return (x < 0 ? -x : 0.0) + log1p(exp(-fabs(x))); }
static double neg_log_sigmoid_grad(double x) { return 1.0 / (1.0 + exp(-x)) - 1.0; }

// DROS of one logit row s (I) for n targets t_k at once, each weighted by coef_k:
//   returns sum_k coef_k log(sum_j e^{a_j} - e^{a_tk} + e^{c_tk} + 1e-24),
//   a_j = ps_j s_j^2 / beta, c_t = ps_t (s_t - 1)^2 / beta,
// and adds grad_scale times its gradient into ds (I) when ds != NULL. The sum
// over j is shared by every target, so n targets cost one pass over the row
// for the value and one for the gradient. Double precision, the largest
// exponent taken out.
static double dros_row(const float* s, const float* ps, int I, const int* targets, const float* coef, int n, float beta,
                       float* ds, double grad_scale) {
    double mx = -INFINITY, sum = 0.0, value = 0.0, shared = 0.0;
    for (int j = 0; j < I; j++) mx = fmax(mx, ps[j] * (double)s[j] * s[j] / beta);
    for (int k = 0; k < n; k++) {
        double st = s[targets[k]] - 1.0;
        mx = fmax(mx, ps[targets[k]] * st * st / beta);
    }
    for (int j = 0; j < I; j++) sum += exp(ps[j] * (double)s[j] * s[j] / beta - mx);
    double inv_z[n];
    for (int k = 0; k < n; k++) {
        int t = targets[k];
        double st = s[t] - 1.0;
        double z = sum - exp(ps[t] * (double)s[t] * s[t] / beta - mx) + exp(ps[t] * st * st / beta - mx) + 1e-24 * exp(-mx);
        value += coef[k] * (log(z) + mx);
        inv_z[k] = grad_scale * coef[k] / z;
        shared += inv_z[k];
    }
    if (ds) {
        // d/ds_j of e^{a_j}: 2 ps_j s_j / beta e^{a_j}; each target swaps its own term for e^{c_t}'s
        for (int j = 0; j < I; j++) ds[j] += (float)(shared * exp(ps[j] * (double)s[j] * s[j] / beta - mx) * 2.0 * ps[j] * s[j] / beta);
        for (int k = 0; k < n; k++) {
            int t = targets[k];
            double st = s[t] - 1.0;
            double own = exp(ps[t] * (double)s[t] * s[t] / beta - mx) * 2.0 * ps[t] * s[t] / beta;
            double swapped = exp(ps[t] * st * st / beta - mx) * 2.0 * ps[t] * st / beta;
            ds[t] += (float)(inv_z[k] * (swapped - own));
        }
    }
    return value;
}

// every term of the objective on logits (B, I); dlogits (B, I), when not NULL,
// is overwritten with the gradient of the trained total (cfg->base, cfg->rd_neg, cfg->lam)
static DLLM2RecLosses dllm2rec_loss(DLLM2RecLoss* L, const DLLM2RecConfig* cfg, const DLLM2RecBatch* bt,
                                    const float* logits, float* dlogits) {
    int B = bt->B, I = bt->I, K = cfg->K;
    dllm2rec_loss_alloc(L, B, I, K);
    DLLM2RecLosses r = {0, 0, 0, 0, 0, 0, 0};
    int authors = cfg->base == BASE_BCE_DROS, has_rd = cfg->lam != 0.0f && bt->cand != NULL;
    int with_dros = authors || L->all_terms;
    if (dlogits) memset(dlogits, 0, (size_t)B * I * sizeof(float));
    // CE over all I rows (the pad row stays a class, never a target)
    float* ce = L->ce;
    crossentropy_forward(ce, L->probs, logits, bt->target, B, I);
    for (int b = 0; b < B; b++) { r.ce += ce[b] / B; ce[b] = 1.0f / B; }
    if (dlogits && !authors) crossentropy_backward(dlogits, ce, L->probs, bt->target, B, I);
    if (has_rd) rd_weights(L, cfg, bt, logits);
    float coef[K];
    double bce = 0.0, dros = 0.0, rd = 0.0, rd_authors = 0.0, rd_dros = 0.0;
    for (int b = 0; b < B; b++) {
        const float* s = logits + (size_t)b * I;
        float* ds = dlogits ? dlogits + (size_t)b * I : NULL;
        int t = bt->target[b], neg = bt->neg[b];
        bce += (neg_log_sigmoid(s[t]) + neg_log_sigmoid(-s[neg])) / (2.0 * B);
        float per_sample = 1.0f / B;
        float* dros_ds = ds && authors ? ds : NULL;  // DROS's gradient only when it is trained
        if (with_dros) dros += dros_row(s, bt->propensity, I, &t, &per_sample, 1, cfg->dros_beta, dros_ds, cfg->dros_alpha);
        if (ds && authors) {
            ds[t] += (float)(neg_log_sigmoid_grad(s[t]) / (2.0 * B));
            ds[neg] += (float)(-neg_log_sigmoid_grad(-s[neg]) / (2.0 * B));
        }
        if (!has_rd) continue;
        const int* cand = bt->cand + (size_t)b * K;
        const float* w = L->w + (size_t)b * K;
        // the negative's two forms: -log sig(-s) (the paper) and -log sig(1 - s) (the authors' code)
        double neg_paper = neg_log_sigmoid(-s[neg]), neg_authors = neg_log_sigmoid(1.0 - s[neg]);
        for (int k = 0; k < K; k++) {
            double pos = neg_log_sigmoid(s[cand[k]]);
            rd += w[k] * (pos + neg_paper) / B;
            rd_authors += w[k] * (pos + neg_authors) / B;
            coef[k] = w[k] / B;
        }
        if (with_dros) rd_dros += dros_row(s, bt->propensity, I, cand, coef, K, cfg->dros_beta, dros_ds, cfg->lam * cfg->dros_alpha);
        if (ds == NULL) continue;
        double dneg = cfg->rd_neg == RD_NEG_PAPER ? -neg_log_sigmoid_grad(-s[neg]) : -neg_log_sigmoid_grad(1.0 - s[neg]);
        for (int k = 0; k < K; k++) {
            ds[cand[k]] += (float)(cfg->lam * w[k] / B * neg_log_sigmoid_grad(s[cand[k]]));
            ds[neg] += (float)(cfg->lam * w[k] / B * dneg);
        }
    }
    r.bce = (float)bce;
    r.dros = (float)dros;
    r.rd = (float)rd;
    r.rd_authors = (float)rd_authors;
    r.rd_dros = (float)rd_dros;
    float student = authors ? r.bce + cfg->dros_alpha * r.dros : r.ce;
    float rank = cfg->rd_neg == RD_NEG_PAPER ? r.rd : r.rd_authors;
    if (authors) rank += cfg->dros_alpha * r.rd_dros;
    r.total = student + (has_rd ? cfg->lam * rank : 0.0f);
    return r;
}
