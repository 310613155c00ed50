// distill.h: the SLMRec loss (method.md 5). A student E4SRec of N layers learns
// from a frozen teacher of M layers through nB blocks (the paper's B; B is the batch
// here): at depth (N/nB)*i of the student and (M/nB)*i of the teacher (i = 1..nB;
// depth L = final RMSNorm output), on the last token,
//   Dcos  = sum_i (1 - mean_b cos(h_s, h_t))       SLMRec eq. 3 (method.md 5.2)
//   Dnorm = sum_i mean_b ||h_s - h_t||_2           SLMRec eq. 4 (method.md 5.3)
//   Lms   = sum_{i<nB} CE(adapter_i(h_s) @ item_table^T, target)   SLMRec eq. 5 (method.md 5.4)
//   loss  = CE + lambda_cos Dcos + lambda_norm Dnorm + lambda_ms Lms   SLMRec eq. 6 (method.md 5.5)
// Summed over blocks, Dnorm not squared, as the authors' code (method.md 5.6).
#pragma once
#include "e4srec.h"

typedef struct {
    float ce, dcos, dnorm, lms, total;
} SLMRecLosses;

typedef struct {
    E4SRec* student;
    E4SRec* teacher;
    int blocks;
    float lambda_cos, lambda_norm, lambda_ms;
    float* adapters;     // (blocks-1, D, C) Linear C -> D, no bias
    float* dadapters;    // (blocks-1, D, C)
    size_t num_adapter_params;
    // per-adapter activations for up to max_B samples
    int max_B;
    float* ad_user;      // (blocks-1, B, D)
    float* ad_logits;    // (blocks-1, B, I)
    float* ad_probs;     // (blocks-1, B, I)
    float* ad_losses;    // (B)
    float* ad_dlosses;   // (B)       backward scratch, reused by each adapter
    float* ad_dlogits;   // (B, I)
    float* ad_duser;     // (B, D)
    SLMRecLosses losses;
} SLMRec;

// the block-to-depth map (method.md 5.1): block i = 1..blocks of a model of L layers
// supervises its hidden state at depth (L / blocks) i; depth L is the final norm's
// output. The CPU and the GPU (kernels.cu) both read it from here.
static int slmrec_depth(int L, int blocks, int i) { return L / blocks * i; }

static void slmrec_build(SLMRec* s, E4SRec* student, E4SRec* teacher, int blocks, float lambda_cos, float lambda_norm, float lambda_ms, Rng* rng) {
    memset(s, 0, sizeof(*s));
    if (blocks < 1 || student->cfg.L % blocks != 0 || teacher->cfg.L % blocks != 0) {
        die("distill: %d blocks must divide both the student's %d and the teacher's %d layers",
            blocks, student->cfg.L, teacher->cfg.L);
    }
    if (student->cfg.C != teacher->cfg.C || student->cfg.D != teacher->cfg.D || student->cfg.I != teacher->cfg.I) {
        die("distill: student and teacher must share hidden width, item width and item table (C %d/%d, D %d/%d, I %d/%d)",
            student->cfg.C, teacher->cfg.C, student->cfg.D, teacher->cfg.D, student->cfg.I, teacher->cfg.I);
    }
    s->student = student;
    s->teacher = teacher;
    s->blocks = blocks;
    s->lambda_cos = lambda_cos; s->lambda_norm = lambda_norm; s->lambda_ms = lambda_ms;
    s->num_adapter_params = (size_t)(blocks - 1) * student->cfg.D * student->cfg.C;
    s->adapters = (float*)callocCheck(s->num_adapter_params, sizeof(float));
    s->dadapters = (float*)callocCheck(s->num_adapter_params, sizeof(float));
    if (rng) rng_fill_normal(rng, s->adapters, s->num_adapter_params, 0.02f);
}

// the student's start (method.md 5): random with init_random; else the teacher's first
// N layers with its input_proj and score, the decoder layers taken from a base's first
// N instead when one is given (the file base_path); with lora->rank > 0, adapters over
// those frozen weights, keyed by the file they came from
static void slmrec_student_start(E4SRec* student, const E4SRec* teacher, const char* teacher_path, const Llama* base,
                                 const char* base_path, int init_random, const LoraSpec* lora, Rng* rng) {
    if (init_random) {
        e4srec_init_random(student, rng);
    } else {
        e4srec_copy_first_layers(student, teacher);
        if (base) e4srec_init_from_base(student, base, base_path);
    }
    e4srec_start_lora(student, lora, base ? base_path : teacher_path, rng);
}

static void slmrec_free(SLMRec* s) {
    free(s->adapters); free(s->dadapters);
    free(s->ad_user); free(s->ad_logits); free(s->ad_probs); free(s->ad_losses); free(s->ad_dlosses); free(s->ad_dlogits); free(s->ad_duser);
    memset(s, 0, sizeof(*s));
}

static void slmrec_alloc_acts(SLMRec* s, int B) {
    if (B <= s->max_B) return;
    free(s->ad_user); free(s->ad_logits); free(s->ad_probs); free(s->ad_losses); free(s->ad_dlosses); free(s->ad_dlogits); free(s->ad_duser);
    size_t A = s->blocks - 1 > 0 ? s->blocks - 1 : 1, D = s->student->cfg.D, I = s->student->cfg.I;
    s->ad_user = (float*)callocCheck(A * B * D, sizeof(float));
    s->ad_logits = (float*)callocCheck(A * B * I, sizeof(float));
    s->ad_probs = (float*)callocCheck(A * B * I, sizeof(float));
    s->ad_losses = (float*)callocCheck(B, sizeof(float));
    s->ad_dlosses = (float*)callocCheck(B, sizeof(float));
    s->ad_dlogits = (float*)callocCheck((size_t)B * I, sizeof(float));
    s->ad_duser = (float*)callocCheck((size_t)B * D, sizeof(float));
    s->max_B = B;
}

// teacher forward (features only), student forward, every loss term
static SLMRecLosses slmrec_forward(SLMRec* s, const int* items, const int* targets, int B) {
    E4SRec* st = s->student;
    E4SRec* te = s->teacher;
    int C = st->cfg.C, D = st->cfg.D, I = st->cfg.I;
    slmrec_alloc_acts(s, B);
    // a frozen teacher (e4srec_freeze) gives its features as in inference; an online one
    // also its CE, which trains it
    e4srec_forward(te, items, te->grads_memory ? targets : NULL, B);
    SLMRecLosses r = {0, 0, 0, 0, 0};
    r.ce = e4srec_forward(st, items, targets, B);
    for (int i = 1; i <= s->blocks; i++) {
        const float* hs = st->acts.last + (size_t)slmrec_depth(st->cfg.L, s->blocks, i) * B * C;
        const float* ht = te->acts.last + (size_t)slmrec_depth(te->cfg.L, s->blocks, i) * B * C;
        r.dcos += kd_cosine_forward(hs, ht, B, C);
        r.dnorm += kd_l2_forward(hs, ht, B, C);
    }
    for (int i = 1; i < s->blocks; i++) {
        const float* hs = st->acts.last + (size_t)slmrec_depth(st->cfg.L, s->blocks, i) * B * C;
        float* user = s->ad_user + (size_t)(i - 1) * B * D;
        float* logits = s->ad_logits + (size_t)(i - 1) * B * I;
        matmul_forward(user, hs, s->adapters + (size_t)(i - 1) * D * C, NULL, B, C, D);
        matmul_forward(logits, user, st->item_table, NULL, B, D, I);
        crossentropy_forward(s->ad_losses, s->ad_probs + (size_t)(i - 1) * B * I, logits, targets, B, I);
        for (int b = 0; b < B; b++) r.lms += s->ad_losses[b] / B;
    }
    r.total = r.ce + s->lambda_cos * r.dcos + s->lambda_norm * r.dnorm + s->lambda_ms * r.lms;
    s->losses = r;
    return r;
}

// gradients of the total loss into the student's grads and dadapters (both zeroed here)
static void slmrec_backward(SLMRec* s) {
    E4SRec* st = s->student;
    E4SRec* te = s->teacher;
    int B = st->B, C = st->cfg.C, D = st->cfg.D, I = st->cfg.I;
    e4srec_zero_grad(st);
    memset(s->dadapters, 0, s->num_adapter_params * sizeof(float));
    e4srec_ce_backward(st, 1.0f);
    for (int i = 1; i <= s->blocks; i++) {
        size_t ks = (size_t)slmrec_depth(st->cfg.L, s->blocks, i) * B * C;
        const float* hs = st->acts.last + ks;
        const float* ht = te->acts.last + (size_t)slmrec_depth(te->cfg.L, s->blocks, i) * B * C;
        kd_cosine_backward(st->dacts.dlast + ks, s->lambda_cos, hs, ht, B, C);
        kd_l2_backward(st->dacts.dlast + ks, s->lambda_norm, hs, ht, B, C);
    }
    float *dlosses = s->ad_dlosses, *dlogits = s->ad_dlogits, *duser = s->ad_duser;
    for (int b = 0; b < B; b++) dlosses[b] = s->lambda_ms / B;
    for (int i = 1; i < s->blocks; i++) {
        size_t ks = (size_t)slmrec_depth(st->cfg.L, s->blocks, i) * B * C;
        float* adapter = s->adapters + (size_t)(i - 1) * D * C;
        memset(dlogits, 0, (size_t)B * I * sizeof(float));
        memset(duser, 0, (size_t)B * D * sizeof(float));
        crossentropy_backward(dlogits, dlosses, s->ad_probs + (size_t)(i - 1) * B * I, st->targets, B, I);
        matmul_backward(duser, NULL, NULL, dlogits, s->ad_user + (size_t)(i - 1) * B * D, st->item_table, B, D, I);
        matmul_backward(st->dacts.dlast + ks, s->dadapters + (size_t)(i - 1) * D * C, NULL, duser,
                        st->acts.last + ks, adapter, B, C, D);
    }
    e4srec_backward(st);
}
