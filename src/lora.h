// lora.h: LoRA (Hu et al. 2021), the way the SLMRec paper fine-tunes its LLaMA
// teacher and student. A chosen projection W (out, in) of every decoder layer
// becomes
//   y = W x + (alpha / r) B A x,   A (r, in), B (out, r), W frozen,
// with A drawn at random and B zero, so training starts from the base model.
// The projections sit inside fused matmuls (q/k/v in wqkv, gate/up in wgateup):
// a target's output is a column range [offset, offset + out) of the fused
// output rows, whose stride is the fused width. Merging folds (alpha/r) B A
// into W for inference.
#pragma once
#include "layers.h"

enum { LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN, LORA_TARGETS };
static const char* const lora_target_names[LORA_TARGETS] = {"q", "k", "v", "o", "gate", "up", "down"};
#define LORA_ALL_TARGETS ((1 << LORA_TARGETS) - 1)
#define LORA_MAX_RANK 4096
#define LORA_MAX_CHAIN 8         // LoRA files one model's frozen weights may come through (a student over a LoRA teacher: 2)
#define LORA_MIN_ALPHA 1e-6      // the scale alpha a file may hold, and so a flag may ask for
#define LORA_MAX_ALPHA 1e6

// what a run asks of LoRA (--lora-rank, --lora-alpha, --lora-targets); rank 0 = none
typedef struct {
    int rank;
    float alpha;
    int targets;  // bit t set: target t is adapted
} LoraSpec;

// the four fused matmuls of a decoder layer that targets sit in
enum { LORA_SITE_QKV, LORA_SITE_O, LORA_SITE_GATEUP, LORA_SITE_DOWN };

typedef struct {
    int site;
    int in, out;          // this target's W is (out, in)
    int offset, stride;   // its rows within the fused weight = its columns within the fused output
} LoraShape;

typedef struct {
    int rank;
    float alpha, scale;     // scale = alpha / rank
    int targets;            // bit t set: target t is adapted
    int L;
    char base_path[1024];    // the file the frozen weights come from (a base, or a teacher checkpoint)
    uint32_t base_checksum;  // and its file checksum: an adapter file is refused against any other
    LoraShape shape[LORA_TARGETS];
    float* A[LORA_TARGETS];   // (L, r, in) of each adapted target, NULL otherwise
    float* B[LORA_TARGETS];   // (L, out, r)
    float* dA[LORA_TARGETS];
    float* dB[LORA_TARGETS];
    size_t num_params;
    float* params_memory;
    float* grads_memory;
    // activations for up to max_N rows
    int max_N;
    float* acts_memory;
    float* h[LORA_TARGETS];   // (L, N, r) A x, kept for backward
    float* delta;             // (max(N, r), max out): B h before it is added to the fused output; dB scratch
    float* dh;                // (N, r)
} Lora;

// "q,k,v,o,gate,up,down" -> a bit mask; dies naming an unknown target
static int lora_parse_targets(const char* list) {
    int mask = 0;
    const char* p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        int found = -1;
        for (int t = 0; t < LORA_TARGETS; t++) {
            if (strlen(lora_target_names[t]) == n && strncmp(p, lora_target_names[t], n) == 0) found = t;
        }
        if (found < 0) die("--lora-targets: '%.*s' is not one of q,k,v,o,gate,up,down", (int)n, p);
        mask |= 1 << found;
        p += n;
        if (*p == ',') p++;
    }
    if (mask == 0) die("--lora-targets names no projection");
    return mask;
}

static void lora_build(Lora* lo, int L, int C, int F, int Q, int KV, int rank, float alpha, int targets) {
    memset(lo, 0, sizeof(*lo));
    if (rank < 1 || rank > LORA_MAX_RANK) die("--lora-rank %d is outside 1..%d", rank, LORA_MAX_RANK);
    if (!(alpha > 0.0f)) die("--lora-alpha must be positive, got %g", alpha);
    if (targets <= 0 || targets > LORA_ALL_TARGETS) die("lora: target mask %d is invalid", targets);
    lo->rank = rank;
    lo->alpha = alpha;
    lo->scale = alpha / (float)rank;
    lo->targets = targets;
    lo->L = L;
    int QKV = Q + 2 * KV;
    LoraShape shapes[LORA_TARGETS] = {
        {LORA_SITE_QKV, C, Q, 0, QKV},      {LORA_SITE_QKV, C, KV, Q, QKV}, {LORA_SITE_QKV, C, KV, Q + KV, QKV},
        {LORA_SITE_O, Q, C, 0, C},          {LORA_SITE_GATEUP, C, F, 0, 2 * F}, {LORA_SITE_GATEUP, C, F, F, 2 * F},
        {LORA_SITE_DOWN, F, C, 0, C}};
    memcpy(lo->shape, shapes, sizeof(shapes));
    for (int t = 0; t < LORA_TARGETS; t++) {
        if (targets & (1 << t)) lo->num_params += (size_t)L * rank * (shapes[t].in + shapes[t].out);
    }
    lo->params_memory = (float*)callocCheck(lo->num_params, sizeof(float));
    lo->grads_memory = (float*)callocCheck(lo->num_params, sizeof(float));
    size_t off = 0;
    for (int t = 0; t < LORA_TARGETS; t++) {
        if (!(targets & (1 << t))) continue;
        size_t na = (size_t)L * rank * shapes[t].in, nb = (size_t)L * shapes[t].out * rank;
        lo->A[t] = lo->params_memory + off;
        lo->dA[t] = lo->grads_memory + off;
        off += na;
        lo->B[t] = lo->params_memory + off;
        lo->dB[t] = lo->grads_memory + off;
        off += nb;
    }
}

// A uniform in +-1/sqrt(in) (PyTorch's Linear init, as PEFT uses), B zero
static void lora_init(Lora* lo, Rng* rng) {
    for (int t = 0; t < LORA_TARGETS; t++) {
        if (!lo->A[t]) continue;
        rng_fill_uniform(rng, lo->A[t], (size_t)lo->L * lo->rank * lo->shape[t].in, 1.0f / sqrtf((float)lo->shape[t].in));
        memset(lo->B[t], 0, (size_t)lo->L * lo->shape[t].out * lo->rank * sizeof(float));
    }
}

static void lora_alloc_acts(Lora* lo, int N) {
    if (N <= lo->max_N) return;
    free(lo->acts_memory);
    int max_out = 0, n_adapted = 0;
    for (int t = 0; t < LORA_TARGETS; t++) {
        if (lo->A[t]) { max_out = max_int(max_out, lo->shape[t].out); n_adapted++; }
    }
    size_t per_target = (size_t)lo->L * N * lo->rank;
    size_t delta = (size_t)max_int(N, lo->rank) * max_out;  // also dB's (out, r) scratch in backward
    lo->acts_memory = (float*)mallocCheck((n_adapted * per_target + delta + (size_t)N * lo->rank) * sizeof(float));
    float* p = lo->acts_memory;
    for (int t = 0; t < LORA_TARGETS; t++) {
        if (lo->A[t]) { lo->h[t] = p; p += per_target; }
    }
    lo->delta = p;
    lo->dh = p + delta;
    lo->max_N = N;
}

static void lora_free(Lora* lo) {
    free(lo->params_memory);
    free(lo->grads_memory);
    free(lo->acts_memory);
    memset(lo, 0, sizeof(*lo));
}

// adds the adapters of `site` in layer l to the fused output: out (N, stride) += scale B A inp
static void lora_forward(Lora* lo, int site, int l, float* out, const float* inp, int N) {
    int r = lo->rank;
    for (int t = 0; t < LORA_TARGETS; t++) {
        const LoraShape* s = &lo->shape[t];
        if (!lo->A[t] || s->site != site) continue;
        float* h = lo->h[t] + (size_t)l * N * r;
        matmul_forward(h, inp, lo->A[t] + (size_t)l * r * s->in, NULL, N, s->in, r);             // h (N, r)
        matmul_forward(lo->delta, h, lo->B[t] + (size_t)l * s->out * r, NULL, N, r, s->out);     // (N, out)
        for (int n = 0; n < N; n++) {
            float* o = out + (size_t)n * s->stride + s->offset;
            const float* d = lo->delta + (size_t)n * s->out;
            for (int i = 0; i < s->out; i++) o[i] += lo->scale * d[i];
        }
    }
}

// backward of lora_forward: dA, dB += ; dinp (N, in) += (the adapters' part of the input gradient)
static void lora_backward(Lora* lo, int site, int l, float* dinp, const float* dout, const float* inp, int N) {
    int r = lo->rank;
    for (int t = 0; t < LORA_TARGETS; t++) {
        const LoraShape* s = &lo->shape[t];
        if (!lo->A[t] || s->site != site) continue;
        const float* h = lo->h[t] + (size_t)l * N * r;
        const float* A = lo->A[t] + (size_t)l * r * s->in;
        const float* B = lo->B[t] + (size_t)l * s->out * r;
        const float* dy = dout + s->offset;  // dy(n, o) = dy[n * stride + o]
        // dB (out, r) += scale dy^T h ; dh (N, r) = scale dy B
        memset(lo->dh, 0, (size_t)N * r * sizeof(float));
        mm_accumulate(lo->dh, dy, (size_t)s->stride, 1, B, (size_t)r, 1, N, s->out, r);
        for (size_t i = 0; i < (size_t)N * r; i++) lo->dh[i] *= lo->scale;
        float* dB = lo->dB[t] + (size_t)l * s->out * r;
        float* dB_unscaled = lo->delta;  // (out, r) scratch
        memset(dB_unscaled, 0, (size_t)s->out * r * sizeof(float));
        mm_accumulate(dB_unscaled, dy, 1, (size_t)s->stride, h, (size_t)r, 1, s->out, N, r);
        for (size_t i = 0; i < (size_t)s->out * r; i++) dB[i] += lo->scale * dB_unscaled[i];
        // dA (r, in) += dh^T inp ; dinp += dh A
        mm_accumulate(lo->dA[t] + (size_t)l * r * s->in, lo->dh, 1, (size_t)r, inp, (size_t)s->in, 1, r, N, s->in);
        mm_accumulate(dinp, lo->dh, (size_t)r, 1, A, (size_t)s->in, 1, N, r, s->in);
    }
}

// folds every adapter into the fused weight of its site: W[rows offset..] += scale B A.
// weights[site] is that site's layer-stacked fused weight (L, stride, in).
static void lora_merge(const Lora* lo, float* const weights[4]) {
    int r = lo->rank;
    for (int t = 0; t < LORA_TARGETS; t++) {
        const LoraShape* s = &lo->shape[t];
        if (!lo->A[t]) continue;
        for (int l = 0; l < lo->L; l++) {
            const float* A = lo->A[t] + (size_t)l * r * s->in;
            const float* B = lo->B[t] + (size_t)l * s->out * r;
            float* W = weights[s->site] + ((size_t)l * s->stride + s->offset) * s->in;
            for (int o = 0; o < s->out; o++) {
                for (int k = 0; k < r; k++) {
                    float b = lo->scale * B[(size_t)o * r + k];
                    for (int i = 0; i < s->in; i++) W[(size_t)o * s->in + i] += b * A[(size_t)k * s->in + i];
                }
            }
        }
    }
}
