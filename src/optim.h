// optim.h: AdamW (decoupled weight decay, bias-corrected moments, as torch.optim.AdamW),
// the cosine learning-rate schedule with linear warmup, and global-norm clipping.
#pragma once
#include "utils.h"

typedef struct {
    float lr;            // peak learning rate
    float min_lr;        // floor of the cosine schedule
    float beta1, beta2, eps, weight_decay;
    float clip;          // global gradient-norm limit, 0 = off
    int warmup;          // linear warmup steps
    int total_steps;     // length of the cosine schedule
} AdamWConfig;

static AdamWConfig adamw_defaults(void) {
    AdamWConfig c = {1e-3f, 0.0f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f, 0, 1};
    return c;
}

// learning rate at step (0-based): linear warmup to lr, then cosine down to min_lr
static float lr_at(const AdamWConfig* c, int step) {
    if (step < c->warmup) return c->lr * (float)(step + 1) / (float)c->warmup;
    int span = c->total_steps - c->warmup;
    if (span <= 0) return c->lr;
    float progress = (float)(step - c->warmup) / (float)span;
    if (progress > 1.0f) progress = 1.0f;
    return c->min_lr + 0.5f * (c->lr - c->min_lr) * (1.0f + cosf(3.14159265358979f * progress));
}

static double grad_sumsq(const float* g, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return s;
}

// the factor to multiply all gradients by so their global norm is at most clip (torch's clip_grad_norm_)
static float clip_scale(double global_sumsq, float clip) {
    double norm = sqrt(global_sumsq);
    if (clip <= 0.0f || norm <= clip) return 1.0f;
    return (float)(clip / (norm + 1e-6));
}

// one AdamW step over a block of n parameters; t is the 1-based step count;
// grads are multiplied by grad_scale first (clipping)
static void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, const AdamWConfig* c,
                         float lr, int t, float grad_scale) {
    float bc1 = 1.0f - powf(c->beta1, (float)t), bc2 = 1.0f - powf(c->beta2, (float)t);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] * grad_scale;
        m[i] = c->beta1 * m[i] + (1.0f - c->beta1) * g;
        v[i] = c->beta2 * v[i] + (1.0f - c->beta2) * g * g;
        float mhat = m[i] / bc1, vhat = v[i] / bc2;
        params[i] -= lr * (mhat / (sqrtf(vhat) + c->eps) + c->weight_decay * params[i]);
    }
}

// ----------------------------------------------------------------------------
// an optimizer over several parameter blocks (a model, its adapters, a second
// model in online distillation): one global clipping norm, one step count

#define OPT_MAX_BLOCKS 8
typedef struct {
    float* params;
    float* grads;
    size_t n;
} ParamBlock;

typedef struct {
    AdamWConfig cfg;
    ParamBlock blocks[OPT_MAX_BLOCKS];
    int n_blocks;
    size_t n_total;
    float* m;   // (n_total) first moments, blocks back to back
    float* v;   // (n_total) second moments
    int step;   // steps taken
    float last_lr, last_grad_norm;
} Optimizer;

static void optimizer_add(Optimizer* o, float* params, float* grads, size_t n) {
    if (o->n_blocks == OPT_MAX_BLOCKS) die("optimizer: more than %d parameter blocks", OPT_MAX_BLOCKS);
    ParamBlock b = {params, grads, n};
    o->blocks[o->n_blocks++] = b;
    o->n_total += n;
}

// allocates the moments once every block is added
static void optimizer_ready(Optimizer* o) {
    o->m = (float*)callocCheck(o->n_total, sizeof(float));
    o->v = (float*)callocCheck(o->n_total, sizeof(float));
}

static void optimizer_free(Optimizer* o) {
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof(*o));
}

// clip by the global norm, then AdamW on every block at the scheduled rate
static void optimizer_step(Optimizer* o) {
    double sumsq = 0.0;
    for (int i = 0; i < o->n_blocks; i++) sumsq += grad_sumsq(o->blocks[i].grads, o->blocks[i].n);
    float scale = clip_scale(sumsq, o->cfg.clip);
    float lr = lr_at(&o->cfg, o->step);
    o->step++;
    size_t off = 0;
    for (int i = 0; i < o->n_blocks; i++) {
        ParamBlock* b = &o->blocks[i];
        adamw_update(b->params, b->grads, o->m + off, o->v + off, b->n, &o->cfg, lr, o->step, scale);
        off += b->n;
    }
    o->last_lr = lr;
    o->last_grad_norm = (float)sqrt(sumsq);
}
