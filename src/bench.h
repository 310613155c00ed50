// bench.h: `./slmrec bench --device cpu`, what the CPU path reaches on this
// machine: its fp32 FMA peak (a register-only loop), the matmul at the shapes
// the models use in GFLOP/s and % of that peak, and E4SRec / SASRec training and
// inference samples/s at the Beauty shapes, the numbers to set beside the
// PyTorch peer (peer_cpu.py, method.md 11) measured on the same machine.
#pragma once
#include "jobs.h"

static int bench_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// fp32 FMA peak in GFLOP/s: each thread runs 12 independent FMA chains on registers
#define BENCH_FMA_CHAINS 12
static double bench_fma_peak(void) {
    long iters = 20000000;
    double best = 0.0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_seconds();
        float sink = 0.0f;
        #pragma omp parallel reduction(+ : sink)
        {
            mm_lanes acc[BENCH_FMA_CHAINS], x, y;
            for (int i = 0; i < MM_LANES; i++) { x[i] = 0.999999f; y[i] = 1e-7f; }
            for (int j = 0; j < BENCH_FMA_CHAINS; j++) for (int i = 0; i < MM_LANES; i++) acc[j][i] = (float)(j + i);
            for (long it = 0; it < iters; it++) {
                MM_UNROLL
                for (int j = 0; j < BENCH_FMA_CHAINS; j++) acc[j] = acc[j] * x + y;
            }
            for (int j = 0; j < BENCH_FMA_CHAINS; j++) for (int i = 0; i < MM_LANES; i++) sink += acc[j][i];
        }
        double s = now_seconds() - t0;
        if (!(sink == sink)) die("bench: the FMA loop produced NaN");
        double gflops = 2.0 * MM_LANES * BENCH_FMA_CHAINS * (double)iters * bench_threads() / s / 1e9;
        if (gflops > best) best = gflops;
    }
    return best;
}

// ----------------------------------------------------------------------------
// the matmul at model shapes: out (N, OC) = inp (N, C) @ W^T and its two backward products

typedef struct {
    const char* name;
    int N, C, OC;
} BenchMatmul;

static const BenchMatmul bench_matmuls[] = {
    {"E4SRec qkv (C=64)", 4608, 64, 128},
    {"E4SRec gate+up (C=64, F=172)", 4608, 64, 344},
    {"E4SRec down (F=172, C=64)", 4608, 172, 64},
    {"C=1024 o_proj", 4608, 1024, 1024},
    {"C=1024 gate+up (F=2816)", 4608, 1024, 2 * 2816},
};
#define BENCH_NUM_MATMULS ((int)(sizeof(bench_matmuls) / sizeof(bench_matmuls[0])))

typedef struct {
    double gflops[3];  // forward, dinp, dweight
} BenchMatmulRow;

// seconds per call of product `which` (0 forward, 1 dinp, 2 dweight), best of repeats over >= 0.3 s
static double bench_matmul_time(const BenchMatmul* s, int which, float* inp, float* w, float* out, float* dinp, float* dw) {
    double best = 1e30, spent = 0.0;
    for (int rep = 0; rep < 3 || spent < 0.3; rep++) {
        double t0 = now_seconds();
        if (which == 0) matmul_forward(out, inp, w, NULL, s->N, s->C, s->OC);
        else if (which == 1) matmul_backward(dinp, NULL, NULL, out, inp, w, s->N, s->C, s->OC);
        else matmul_backward(NULL, dw, NULL, out, inp, w, s->N, s->C, s->OC);
        double t = now_seconds() - t0;
        spent += t;
        if (t < best) best = t;
    }
    return best;
}

static BenchMatmulRow bench_matmul(const BenchMatmul* s, Rng* rng) {
    size_t n_inp = (size_t)s->N * s->C, n_w = (size_t)s->OC * s->C, n_out = (size_t)s->N * s->OC;
    float* inp = (float*)mallocCheck(n_inp * sizeof(float));
    float* w = (float*)mallocCheck(n_w * sizeof(float));
    float* out = (float*)mallocCheck(n_out * sizeof(float));
    float* dinp = (float*)callocCheck(n_inp, sizeof(float));
    float* dw = (float*)callocCheck(n_w, sizeof(float));
    rng_fill_normal(rng, inp, n_inp, 1.0f);
    rng_fill_normal(rng, w, n_w, 0.05f);
    BenchMatmulRow r;
    double flops = 2.0 * s->N * s->C * s->OC;
    for (int which = 0; which < 3; which++) r.gflops[which] = flops / bench_matmul_time(s, which, inp, w, out, dinp, dw) / 1e9;
    free(inp); free(w); free(out); free(dinp); free(dw);
    return r;
}

// the plain triple loop (mm_reference, single-threaded) at shape s, forward: what
// packing, register blocking and threads buy
static double bench_matmul_naive(const BenchMatmul* s, Rng* rng) {
    size_t n_inp = (size_t)s->N * s->C, n_w = (size_t)s->OC * s->C;
    float* inp = (float*)mallocCheck(n_inp * sizeof(float));
    float* w = (float*)mallocCheck(n_w * sizeof(float));
    float* out = (float*)callocCheck((size_t)s->N * s->OC, sizeof(float));
    rng_fill_normal(rng, inp, n_inp, 1.0f);
    rng_fill_normal(rng, w, n_w, 0.05f);
    double t0 = now_seconds();
    mm_reference(out, inp, (size_t)s->C, 1, w, 1, (size_t)s->C, s->N, s->C, s->OC);  // out += inp @ w^T
    double seconds = now_seconds() - t0;
    free(inp); free(w); free(out);
    return 2.0 * s->N * s->C * s->OC / seconds / 1e9;
}

// ----------------------------------------------------------------------------
// models at the Beauty shapes

typedef struct {
    double train_samples_s, infer_samples_s;
} BenchModelRow;

// E4SRec on the peer's batch (peer_cpu.py): B histories of 3..13 real items right-aligned in S
// slots, random targets; a train step is forward, CE, backward and AdamW; inference is the
// forward, the scores of every item and the top 10 of each history
static BenchModelRow bench_e4srec(E4SRec* m, Optimizer* o, int B, int steps, Rng* rng) {
    const E4SRecConfig* c = &m->cfg;
    int* items = (int*)callocCheck((size_t)B * c->S, sizeof(int));
    int* targets = (int*)mallocCheck((size_t)B * sizeof(int));
    for (int b = 0; b < B; b++) {
        int len = 3 + rng_int(rng, 11);
        for (int i = c->S - len; i < c->S; i++) items[(size_t)b * c->S + i] = 1 + rng_int(rng, c->I - 1);
        targets[b] = 1 + rng_int(rng, c->I - 1);
    }
    BenchModelRow r;
    int best[10];
    float best_scores[10];
    double spent = 0.0;
    for (int s = 0; s <= steps; s++) {  // step 0 warms up: buffers allocated, pages touched
        double t0 = now_seconds();
        e4srec_forward(m, items, targets, B);
        e4srec_zero_grad(m);
        e4srec_ce_backward(m, 1.0f);
        e4srec_backward(m);
        optimizer_step(o);
        if (s > 0) spent += now_seconds() - t0;
    }
    r.train_samples_s = (double)steps * B / spent;
    spent = 0.0;
    for (int s = 0; s <= steps; s++) {
        double t0 = now_seconds();
        e4srec_forward(m, items, NULL, B);
        for (int b = 0; b < B; b++) top_k(m->acts.logits + (size_t)b * c->I, c->I - 1, 10, NULL, 0, best, best_scores);
        if (s > 0) spent += now_seconds() - t0;
    }
    r.infer_samples_s = (double)steps * B / spent;
    free(items);
    free(targets);
    return r;
}

// train steps and scoring batches (plus top-10 per user, as the peer) over the data's users
static BenchModelRow bench_trainable(Trainable* t, Optimizer* o, const SeqData* d, int batch, int steps, Rng* rng) {
    BenchModelRow r;
    int* units = (int*)mallocCheck((size_t)d->n_users * sizeof(int));
    int n_train = training_units(t, d, units);
    rng_shuffle(rng, units, n_train);
    int* hist = (int*)mallocCheck((size_t)batch * t->max_len * sizeof(int));
    int* targets = (int*)mallocCheck((size_t)batch * sizeof(int));
    float* scores = (float*)mallocCheck((size_t)batch * t->I * sizeof(float));
    int best[10];
    float best_scores[10];
    t->train_batch(t->model, o, units, batch, rng, 1);  // warm-up: buffers allocated, pages touched
    double t0 = now_seconds();
    for (int s = 0; s < steps; s++) t->train_batch(t->model, o, units + ((size_t)(s + 1) * batch) % (n_train - batch), batch, rng, 1);
    r.train_samples_s = (double)steps * batch / (now_seconds() - t0);
    eval_batch(d, SPLIT_VALID, 0, batch, t->max_len, hist, targets);
    t->score(t->model, hist, batch, scores);
    t0 = now_seconds();
    for (int s = 0; s < steps; s++) {
        int u0 = (int)(((size_t)(s + 1) * batch) % (size_t)(d->n_users - batch));
        eval_batch(d, SPLIT_VALID, u0, batch, t->max_len, hist, targets);
        t->score(t->model, hist, batch, scores);
        for (int b = 0; b < batch; b++) top_k(scores + (size_t)b * t->I, d->n_items, 10, NULL, 0, best, best_scores);
    }
    r.infer_samples_s = (double)steps * batch / (now_seconds() - t0);
    free(units); free(hist); free(targets); free(scores);
    return r;
}
