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
// logits: dllm2rec_loss_forward computes the terms and keeps what the backward
// needs, dllm2rec_loss_backward gives the one dlogits (B, I) that the student
// backpropagates.
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

// whether the objective has the ranking distillation, and so reads the teacher's
// candidates: the one place this is decided (the embedding distillation is the
// student's, its ed)
static int dllm2rec_uses_teacher_ranking(const DLLM2RecConfig* c) { return c->lam > 0.0f; }

// the terms of the objective (all of them with DLLM2RecLoss.all_terms; DROS,
// a pass of exp over every item, otherwise only when trained); total is the one trained
typedef struct { float ce, bce, dros, rd, rd_authors, rd_dros, total; } DLLM2RecLosses;

// one batch as the loss reads it
typedef struct {
    int B, I;
    const int* target;        // (B)
    const int* neg;           // (B) one sampled negative per sample
    const int* cand;          // (B, K) the teacher's top-K items, best first; NULL without ranking distillation
    const float* cand_score;  // (B, K) the teacher's scores of them
    const float* propensity;  // (I) ((pop + 1) / sum (pop + 1))^0.05, for DROS
} DLLM2RecBatch;

// the loss's buffers for up to max_B samples: what the forward keeps for the backward
typedef struct {
    int all_terms;       // also the DROS terms of the objective not trained (the oracle compares every term)
    int max_B, I, K;     // the sizes the buffers hold
    float* probs;        // (B, I) softmax of the logits (CE)
    float* ce;           // (B) per-sample CE
    float* dce;          // (B) its gradient (backward)
    float* w;            // (B, K) the importance weights
    float* w_pos;        // (B, K)
    float* w_conf;       // (B, K)
    float* w_cons;       // (B, K)
    int* student_topk;   // (B, K) the student's top-K items (1..n_items), best first
    double* dros_max;    // (B) DROS of each row's target: the largest exponent, taken out,
    double* dros_z;      // (B)   and the sum in its log, scaled by e^-max
    double* rd_dros_max; // (B) the same for DROS of each row's K candidates
    double* rd_dros_z;   // (B, K)
} DLLM2RecLoss;

static void dllm2rec_loss_free(DLLM2RecLoss* loss) {
    free(loss->probs); free(loss->ce); free(loss->dce);
    free(loss->w); free(loss->w_pos); free(loss->w_conf); free(loss->w_cons); free(loss->student_topk);
    free(loss->dros_max); free(loss->dros_z); free(loss->rd_dros_max); free(loss->rd_dros_z);
    memset(loss, 0, sizeof(*loss));
}

static void dllm2rec_loss_alloc(DLLM2RecLoss* loss, int B, int I, int K) {
    if (B <= loss->max_B && I == loss->I && K == loss->K) return;
    int all_terms = loss->all_terms;
    dllm2rec_loss_free(loss);
    size_t BK = (size_t)B * K;
    loss->all_terms = all_terms;
    loss->probs = (float*)mallocCheck((size_t)B * I * sizeof(float));
    loss->ce = (float*)mallocCheck((size_t)B * sizeof(float));
    loss->dce = (float*)mallocCheck((size_t)B * sizeof(float));
    loss->w = (float*)mallocCheck(BK * sizeof(float));
    loss->w_pos = (float*)mallocCheck(BK * sizeof(float));
    loss->w_conf = (float*)mallocCheck(BK * sizeof(float));
    loss->w_cons = (float*)mallocCheck(BK * sizeof(float));
    loss->student_topk = (int*)mallocCheck(BK * sizeof(int));
    loss->dros_max = (double*)mallocCheck((size_t)B * sizeof(double));
    loss->dros_z = (double*)mallocCheck((size_t)B * sizeof(double));
    loss->rd_dros_max = (double*)mallocCheck((size_t)B * sizeof(double));
    loss->rd_dros_z = (double*)mallocCheck(BK * sizeof(double));
    loss->max_B = B;
    loss->I = I;
    loss->K = K;
}

// the importance weights of every candidate (B, K) from the current logits (B, I)
static void rd_weights(DLLM2RecLoss* loss, const DLLM2RecConfig* cfg, const DLLM2RecBatch* bt, const float* logits) {
    int K = cfg->K, I = bt->I;
    float scratch[K];
    double pos_sum = 0.0;
    for (int k = 0; k < K; k++) pos_sum += exp(-(double)(k + 1));
    for (int b = 0; b < bt->B; b++) {
        const float* sc = bt->cand_score + (size_t)b * K;
        const int* cand = bt->cand + (size_t)b * K;
        int* top = loss->student_topk + (size_t)b * K;
        size_t o = (size_t)b * K;
        top_k(logits + (size_t)b * I, I - 1, K, NULL, 0, top, scratch);
        // exp(score) + 1e-8, normalised, computed with the max taken out: the same ratio, no overflow
        float mx = sc[0];
        for (int k = 1; k < K; k++) mx = sc[k] > mx ? sc[k] : mx;
        double conf_sum = 0.0, tiny = 1e-8 * exp(-(double)mx);
        for (int k = 0; k < K; k++) {
            loss->w_pos[o + k] = (float)(exp(-(double)(k + 1)) / pos_sum);
            scratch[k] = (float)(exp((double)sc[k] - mx) + tiny);
            conf_sum += scratch[k];
            int in_top = 0;
            for (int j = 0; j < K; j++) in_top |= top[j] == cand[k];
            loss->w_cons[o + k] = in_top + 1e-8f;  // not normalised: a 0/1 indicator
        }
        double w_sum = 0.0;
        for (int k = 0; k < K; k++) {
            loss->w_conf[o + k] = (float)(scratch[k] / conf_sum);
            loss->w[o + k] = cfg->gamma_pos * loss->w_pos[o + k] + cfg->gamma_conf * loss->w_conf[o + k] + cfg->gamma_cons * loss->w_cons[o + k];
            w_sum += loss->w[o + k];
        }
        for (int k = 0; k < K; k++) loss->w[o + k] = (float)(loss->w[o + k] / w_sum);
    }
}

// -log sigmoid(x) and its derivative, stable for large |x|
static double neg_log_sigmoid(double x) { return (x < 0 ? -x : 0.0) + log1p(exp(-fabs(x))); }
static double neg_log_sigmoid_grad(double x) { return 1.0 / (1.0 + exp(-x)) - 1.0; }

// DROS of one logit row s (I) for n targets t_k at once, each weighted by coef_k:
//   sum_k coef_k log(sum_j e^{a_j} - e^{a_tk} + e^{c_tk} + 1e-24),
//   a_j = ps_j s_j^2 / beta, c_t = ps_t (s_t - 1)^2 / beta.
// The sum over j is shared by every target, so n targets cost one pass over the
// row. Double precision, the largest exponent taken out; *max keeps it and z (n)
// each target's sum scaled by e^-max, for dros_row_backward.
static double dros_row_forward(double* max, double* z, const float* s, const float* ps, const int* targets,
                               const float* coef, int I, int n, float beta) {
    double mx = -INFINITY, sum = 0.0, value = 0.0;
    for (int j = 0; j < I; j++) mx = fmax(mx, ps[j] * (double)s[j] * s[j] / beta);
    for (int k = 0; k < n; k++) {
        double st = s[targets[k]] - 1.0;
        mx = fmax(mx, ps[targets[k]] * st * st / beta);
    }
    for (int j = 0; j < I; j++) sum += exp(ps[j] * (double)s[j] * s[j] / beta - mx);
    for (int k = 0; k < n; k++) {
        int t = targets[k];
        double st = s[t] - 1.0;
        z[k] = sum - exp(ps[t] * (double)s[t] * s[t] / beta - mx) + exp(ps[t] * st * st / beta - mx) + 1e-24 * exp(-mx);
        value += coef[k] * (log(z[k]) + mx);
    }
    *max = mx;
    return value;
}

// adds dvalue times the gradient of dros_row_forward's value into ds (I), one pass
// over the row shared by the n targets
static void dros_row_backward(float* ds, double dvalue, const float* s, const float* ps, const int* targets,
                              const float* coef, double max, const double* z, int I, int n, float beta) {
    double dz[n], shared = 0.0;  // dvalue coef_k / z_k: how much target k's sum weighs
    for (int k = 0; k < n; k++) {
        dz[k] = dvalue * coef[k] / z[k];
        shared += dz[k];
    }
    // d/ds_j of e^{a_j}: 2 ps_j s_j / beta e^{a_j}; each target swaps its own term for e^{c_t}'s
    for (int j = 0; j < I; j++) ds[j] += (float)(shared * exp(ps[j] * (double)s[j] * s[j] / beta - max) * 2.0 * ps[j] * s[j] / beta);
    for (int k = 0; k < n; k++) {
        int t = targets[k];
        double st = s[t] - 1.0;
        double own = exp(ps[t] * (double)s[t] * s[t] / beta - max) * 2.0 * ps[t] * s[t] / beta;
        double swapped = exp(ps[t] * st * st / beta - max) * 2.0 * ps[t] * st / beta;
        ds[t] += (float)(dz[k] * (swapped - own));
    }
}

// adds drd (lam: L_rd's weight in the total) times the gradient of one sample's
// L_rd into its ds (I): each candidate c_k a positive against the sample's
// negative, weighted by w_k / B, the negative in the form rd_neg names
static void rd_row_backward(float* ds, float drd, const float* s, const int* cand, const float* w, int neg, RdNeg rd_neg,
                            int K, int B) {
    double dneg = rd_neg == RD_NEG_PAPER ? -neg_log_sigmoid_grad(-s[neg]) : -neg_log_sigmoid_grad(1.0 - s[neg]);
    for (int k = 0; k < K; k++) {
        ds[cand[k]] += (float)(drd * w[k] / B * neg_log_sigmoid_grad(s[cand[k]]));
        ds[neg] += (float)(drd * w[k] / B * dneg);
    }
}

// every term of the objective on logits (B, I), and the total that cfg trains
// (cfg->base, cfg->rd_neg, cfg->lam); keeps in loss what dllm2rec_loss_backward needs
static DLLM2RecLosses dllm2rec_loss_forward(DLLM2RecLoss* loss, const float* logits, const DLLM2RecBatch* bt,
                                            const DLLM2RecConfig* cfg) {
    int B = bt->B, I = bt->I, K = cfg->K;
    int authors = cfg->base == BASE_BCE_DROS, ranking = dllm2rec_uses_teacher_ranking(cfg);
    int with_dros = authors || loss->all_terms;  // DROS, a pass of exp over every item: when trained or asked for
    if (ranking && bt->cand == NULL) die("dllm2rec: lam %g asks for ranking distillation, the batch has no teacher candidates", cfg->lam);
    dllm2rec_loss_alloc(loss, B, I, K);
    DLLM2RecLosses r = {0, 0, 0, 0, 0, 0, 0};
    // the base losses: CE over all I rows (the pad row stays a class, never a target), BCE, DROS of the target
    crossentropy_forward(loss->ce, loss->probs, logits, bt->target, B, I);
    for (int b = 0; b < B; b++) r.ce += loss->ce[b] / B;
    double bce = 0.0, dros = 0.0;
    float per_sample = 1.0f / B;
    for (int b = 0; b < B; b++) {
        const float* s = logits + (size_t)b * I;
        int t = bt->target[b], neg = bt->neg[b];
        bce += (neg_log_sigmoid(s[t]) + neg_log_sigmoid(-s[neg])) / (2.0 * B);
        if (with_dros) dros += dros_row_forward(&loss->dros_max[b], &loss->dros_z[b], s, bt->propensity, &t, &per_sample, I, 1, cfg->dros_beta);
    }
    r.bce = (float)bce;
    r.dros = (float)dros;
    // the ranking distillation, its negative in both forms: -log sig(-s) (the paper), -log sig(1 - s) (the authors' code)
    if (ranking) {
        rd_weights(loss, cfg, bt, logits);
        double rd = 0.0, rd_authors = 0.0, rd_dros = 0.0;
        float coef[K];
        for (int b = 0; b < B; b++) {
            const float* s = logits + (size_t)b * I;
            const int* cand = bt->cand + (size_t)b * K;
            const float* w = loss->w + (size_t)b * K;
            int neg = bt->neg[b];
            double neg_paper = neg_log_sigmoid(-s[neg]), neg_authors = neg_log_sigmoid(1.0 - s[neg]);
            for (int k = 0; k < K; k++) {
                double pos = neg_log_sigmoid(s[cand[k]]);
                rd += w[k] * (pos + neg_paper) / B;
                rd_authors += w[k] * (pos + neg_authors) / B;
                coef[k] = w[k] / B;
            }
            if (with_dros) {
                rd_dros += dros_row_forward(&loss->rd_dros_max[b], loss->rd_dros_z + (size_t)b * K, s, bt->propensity, cand, coef,
                                            I, K, cfg->dros_beta);
            }
        }
        r.rd = (float)rd;
        r.rd_authors = (float)rd_authors;
        r.rd_dros = (float)rd_dros;
    }
    float rank = cfg->rd_neg == RD_NEG_PAPER ? r.rd : r.rd_authors;
    if (authors) {  // BCE + alpha DROS + lam (rd + alpha rd_dros)
        rank += cfg->dros_alpha * r.rd_dros;
        float student = r.bce + cfg->dros_alpha * r.dros;
        r.total = student + (ranking ? cfg->lam * rank : 0.0f);
    } else {  // CE + lam rd
        r.total = r.ce + (ranking ? cfg->lam * rank : 0.0f);
    }
    return r;
}

// the gradient of the total that dllm2rec_loss_forward computed with respect to the
// logits (B, I), into dlogits (overwritten); the importance weights are constants
static void dllm2rec_loss_backward(float* dlogits, const float* logits, const DLLM2RecBatch* bt, DLLM2RecLoss* loss,
                                   const DLLM2RecConfig* cfg) {
    int B = bt->B, I = bt->I, K = cfg->K, ranking = dllm2rec_uses_teacher_ranking(cfg);
    memset(dlogits, 0, (size_t)B * I * sizeof(float));
    if (cfg->base == BASE_CE) {  // CE + lam rd
        for (int b = 0; b < B; b++) loss->dce[b] = 1.0f / B;
        crossentropy_backward(dlogits, loss->dce, loss->probs, bt->target, B, I);
        if (!ranking) return;
        for (int b = 0; b < B; b++) {
            rd_row_backward(dlogits + (size_t)b * I, cfg->lam, logits + (size_t)b * I, bt->cand + (size_t)b * K,
                            loss->w + (size_t)b * K, bt->neg[b], cfg->rd_neg, K, B);
        }
        return;
    }
    // the authors': BCE + alpha DROS + lam (rd + alpha rd_dros), row by row
    float per_sample = 1.0f / B, coef[K];
    for (int b = 0; b < B; b++) {
        const float* s = logits + (size_t)b * I;
        float* ds = dlogits + (size_t)b * I;
        int t = bt->target[b], neg = bt->neg[b];
        dros_row_backward(ds, cfg->dros_alpha, s, bt->propensity, &t, &per_sample, loss->dros_max[b], &loss->dros_z[b], I, 1,
                          cfg->dros_beta);
        ds[t] += (float)(neg_log_sigmoid_grad(s[t]) / (2.0 * B));
        ds[neg] += (float)(-neg_log_sigmoid_grad(-s[neg]) / (2.0 * B));
        if (!ranking) continue;
        const int* cand = bt->cand + (size_t)b * K;
        const float* w = loss->w + (size_t)b * K;
        for (int k = 0; k < K; k++) coef[k] = w[k] / B;
        dros_row_backward(ds, cfg->lam * cfg->dros_alpha, s, bt->propensity, cand, coef, loss->rd_dros_max[b],
                          loss->rd_dros_z + (size_t)b * K, I, K, cfg->dros_beta);
        rd_row_backward(ds, cfg->lam, s, cand, w, neg, cfg->rd_neg, K, B);
    }
}
