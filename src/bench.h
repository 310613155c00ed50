// bench.h: `./slmrec bench`. On the CPU (--device cpu), what the CPU path reaches
// on this machine: its fp32 FMA peak (a register-only loop), the matmul at the
// shapes the models use in GFLOP/s and % of that peak, and E4SRec / SASRec
// training and inference samples/s at the Beauty shapes, the numbers to set beside
// the PyTorch peer (peer_cpu.py, method.md 11) measured on the same machine. On
// the GPU, the CUDA path at the peer's shapes; and the GPU memory plan (--plan).
#pragma once
#include "config.h"  // the Beauty shapes are the training flags' defaults
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
static BenchModelRow bench_trainable(Recommender* t, Optimizer* o, const SeqData* d, int batch, int steps, Rng* rng) {
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

// ----------------------------------------------------------------------------
// bench: the GPU path's throughput at the shapes of the PyTorch peer
// (peer_e4srec.py speed, method.md 11): batch 256 to train and 512 to infer,
// 20 + 50 + 4 tokens (instruction, item history, response), 12,101 items of
// width 64, a 32,000-token vocabulary; random weights (drawn on the device) and
// items. `bench --plan` prints the device memory of each config's handles from
// src/gpu_plan.h alone: it needs no GPU.

typedef struct {
    const char* name;
    int L, C, F, NH;
    int peer_lora;  // the peer trains LoRA r=8 on the MLP of a frozen decoder (and input_proj, score); slmrec: every weight
} BenchShape;

// base_T8 first: the smallest full run, the one to try first on a new GPU
static const BenchShape bench_shapes[] = {
    {"base_T8", 8, 1024, 2816, 16, 0},
    {"base_S4", 4, 1024, 2816, 16, 0},
    {"paper_T8", 8, 4096, 11008, 32, 1},
    {"paper_S4", 4, 4096, 11008, 32, 1},
};
#define BENCH_NUM_SHAPES ((int)(sizeof(bench_shapes) / sizeof(bench_shapes[0])))
#define BENCH_ITEMS 12101
#define BENCH_TRAIN_B 256
#define BENCH_INFER_B 512
#define BENCH_TOPK 20
#define BENCH_FLOPS_FORMULA "forward = 2 B T L (C QKV + C Q + 3 C F) + 4 B L T^2 Q + 2 B S D C + 2 B C D + 2 B D I " \
                            "(2 per multiply-add; attention over the full T x T); a train step = 3 x forward when every " \
                            "weight trains, 2 x forward for the peer's LoRA configs (frozen decoder: no weight gradients)"

static E4SRecConfig bench_config(const BenchShape* b) {
    E4SRecConfig c = {.V = 32000, .C = b->C, .F = b->F, .L = b->L, .NH = b->NH, .KVH = b->NH, .HS = b->C / b->NH,
                      .D = 64, .I = BENCH_ITEMS + 1, .P1 = 20, .P2 = 4, .S = 50, .rms_eps = 1e-5f, .rope_theta = 10000.0f};
    return c;
}

// ---- the memory plan

typedef struct {
    const char* what;
    GpuPlan plan;
} BenchPlanRow;

// the handles a config makes: training (B = 256, every weight) and inference (B = 512,
// forward only); for paper_S4 also distillation from paper_T8 (a forward-only teacher
// beside the training student with 3 adapters, both B = 256)
static int bench_plan_rows(BenchPlanRow* rows, const BenchShape* b, int use_bf16) {
    E4SRecConfig c = bench_config(b);
    int n = 0;
    rows[n++] = (BenchPlanRow){"train", gpu_plan(&c, 0, BENCH_TRAIN_B, use_bf16, 1, 0)};
    rows[n++] = (BenchPlanRow){"infer", gpu_plan(&c, 0, BENCH_INFER_B, use_bf16, 0, 0)};
    if (strcmp(b->name, "paper_S4") == 0) {
        E4SRecConfig t = bench_config(&bench_shapes[2]);
        rows[n++] = (BenchPlanRow){"distill: teacher paper_T8", gpu_plan(&t, 0, BENCH_TRAIN_B, use_bf16, 0, 0)};
        rows[n++] = (BenchPlanRow){"distill: student", gpu_plan(&c, 3, BENCH_TRAIN_B, use_bf16, 1, 0)};
    }
    return n;
}

static void bench_plan(const char* out) {
    const double gib = 1024.0 * 1024.0 * 1024.0;
    printf("device memory plan of each handle (src/gpu_plan.h), GiB = 2^30 bytes; train batch %d, inference batch %d\n"
           "(the CUDA context and cuBLAS's workspace come on top)\n\n", BENCH_TRAIN_B, BENCH_INFER_B);
    printf("%-9s %-5s %-26s", "config", "prec", "handle");
    for (int a = 0; a < GPU_NUM_ARENAS; a++) printf(" %12s", gpu_arena_names[a]);
    printf(" %9s\n", "total");
    char path[1100];
    snprintf(path, sizeof(path), "%s/plan.json", out);
    make_dir(out);
    OutFile o;
    outfile_open(&o, path);
    fprintf(o.f, "{\n \"unit\": \"bytes\", \"train_batch\": %d, \"infer_batch\": %d, \"rows\": [\n", BENCH_TRAIN_B, BENCH_INFER_B);
    int first = 1;
    for (int i = 0; i < BENCH_NUM_SHAPES; i++) {
        for (int bf = 0; bf < 2; bf++) {
            BenchPlanRow rows[4];
            int n = bench_plan_rows(rows, &bench_shapes[i], bf);
            for (int r = 0; r < n; r++) {
                printf("%-9s %-5s %-26s", bench_shapes[i].name, bf ? "bf16" : "fp32", rows[r].what);
                for (int a = 0; a < GPU_NUM_ARENAS; a++) printf(" %12.2f", rows[r].plan.bytes[a] / gib);
                printf(" %9.2f\n", rows[r].plan.total / gib);
                fprintf(o.f, "%s  {\"config\": \"%s\", \"precision\": \"%s\", \"handle\": \"%s\"", first ? "" : ",\n",
                        bench_shapes[i].name, bf ? "bf16" : "fp32", rows[r].what);
                for (int a = 0; a < GPU_NUM_ARENAS; a++) fprintf(o.f, ", \"%s\": %zu", gpu_arena_names[a], rows[r].plan.bytes[a]);
                fprintf(o.f, ", \"total\": %zu}", rows[r].plan.total);
                first = 0;
            }
            if (n == 4) printf("%-9s %-5s %-26s %*s %9.2f\n", "", "", "distill: both", 13 * GPU_NUM_ARENAS, "",
                               (rows[2].plan.total + rows[3].plan.total) / gib);
        }
    }
    fprintf(o.f, "\n ]\n}\n");
    outfile_commit(&o);
    printf("\nwrote %s\n", path);
}

#ifdef SLMREC_CUDA
// FLOPs of one forward pass over B samples: see BENCH_FLOPS_FORMULA (Q = NH HS, QKV = (NH + 2 KVH) HS)
static double bench_forward_flops(const E4SRecConfig* c, int B) {
    double T = e4srec_T(c), C = c->C, Q = (double)c->NH * c->HS;
    double decoder = 2.0 * B * T * c->L * (C * e4srec_QKV(c) + C * Q + 3.0 * C * c->F);
    double attention = 4.0 * B * c->L * T * T * Q;
    return decoder + attention + 2.0 * B * c->S * c->D * C + 2.0 * B * C * c->D + 2.0 * B * c->D * (double)c->I;
}

// one training step's FLOPs: every weight trains (3 x forward), or LoRA on a frozen decoder
// (2 x forward: the activations' gradients only; LoRA's r = 8 products are under 0.5% and left out)
static double bench_train_flops(const E4SRecConfig* c, int B, int lora) { return (lora ? 2.0 : 3.0) * bench_forward_flops(c, B); }

// ---- the peer's numbers (peer_e4srec.py speed's JSON), for the ratios

typedef struct {
    int found;
    double train_samples_s, infer_samples_s, peak_mem_gb;
} BenchPeer;

static BenchPeer bench_peer_row(const char* text, const char* path, const char* config) {
    BenchPeer p = {0};
    char key[64];
    snprintf(key, sizeof(key), "\"%s\"", config);
    const char* at = strstr(text, key);
    if (at == NULL) return p;
    p.found = 1;
    p.train_samples_s = json_number(at, "train_samples_per_s", path);
    p.infer_samples_s = json_number(at, "infer_samples_per_s", path);
    p.peak_mem_gb = json_number(at, "peak_mem_GB", path);
    return p;
}

// dense peaks in TFLOP/s, the denominator of MFU, by device name (NVIDIA datasheets): bf16
// tensor cores with fp32 accumulation, and plain fp32 FMA (no TF32). The first entry whose
// text the name contains wins, so specific names come before general ones.
typedef struct {
    const char* match;
    const char* model;
    double bf16, fp32;
} GpuPeak;

static const GpuPeak gpu_peaks[] = {
    {"GH200", "GH200", 989.0, 67.0},       {"H200 NVL", "H200 NVL", 835.0, 60.0}, {"H200", "H200 SXM", 989.0, 67.0},
    {"H100 NVL", "H100 NVL", 835.0, 60.0}, {"H100 PCIe", "H100 PCIe", 756.0, 51.0}, {"H100", "H100 SXM", 989.0, 67.0},
    {"A100", "A100", 312.0, 19.5},         {"L40S", "L40S", 362.0, 91.6},          {"A10", "A10", 125.0, 31.2},
};

static const GpuPeak* gpu_peak_of(const char* name) {
    for (size_t i = 0; i < sizeof(gpu_peaks) / sizeof(gpu_peaks[0]); i++) {
        if (strstr(name, gpu_peaks[i].match)) return &gpu_peaks[i];
    }
    return NULL;
}

typedef struct {
    const BenchShape* shape;
    E4SRecConfig cfg;
    size_t params;
    double train_step_s, infer_batch_s;
    double train_flops, infer_flops;  // per step / batch: this program's work
    size_t peak_bytes;                // the allocator's high-water mark (gpu_allocated_peak), the larger of the two runs
    size_t plan_bytes;                // gpu_plan's total for the larger of the two handles
    float loss;                       // the last training step's (a sanity check: finite)
} BenchRow;

// one shape: `warmup` untimed then `steps` timed training steps, the same for inference
// (forward, scores of every item, top-20); each timed span ends with a wait for the GPU
static BenchRow bench_shape(const BenchShape* b, int use_bf16, int steps, int warmup, Rng* rng) {
    BenchRow r = {.shape = b, .cfg = bench_config(b)};
    const E4SRecConfig* c = &r.cfg;
    size_t sizes[E4SREC_NUM_PARAMS];
    e4srec_param_sizes(sizes, c);
    r.params = sizes_total(sizes, E4SREC_NUM_PARAMS);
    float* table = (float*)mallocCheck((size_t)c->I * c->D * sizeof(float));  // (I, D)
    rng_fill_normal(rng, table, (size_t)c->I * c->D, 0.1f);
    int instr[20], resp[4];
    for (int i = 0; i < c->P1; i++) instr[i] = 1 + rng_int(rng, c->V - 1);
    for (int i = 0; i < c->P2; i++) resp[i] = 1 + rng_int(rng, c->V - 1);
    int* items = (int*)mallocCheck((size_t)BENCH_INFER_B * c->S * sizeof(int));  // (512, S), no pads
    int* targets = (int*)mallocCheck(BENCH_TRAIN_B * sizeof(int));              // (256)
    int* top = (int*)mallocCheck((size_t)BENCH_INFER_B * BENCH_TOPK * sizeof(int));
    for (int i = 0; i < BENCH_INFER_B * c->S; i++) items[i] = 1 + rng_int(rng, BENCH_ITEMS);
    for (int i = 0; i < BENCH_TRAIN_B; i++) targets[i] = 1 + rng_int(rng, BENCH_ITEMS);
    AdamWConfig opt = adamw_defaults();
    opt.lr = opt.min_lr = 1e-4f;  // the peer's
    uint64_t seed = rng_u32(rng);
    SLMRecLosses l;

    gpu_allocated_peak(1);
    r.plan_bytes = gpu_plan(c, 0, BENCH_TRAIN_B, use_bf16, 1, 0).total;
    GpuE4SRec* g = gpu_e4srec_create_random(c, table, instr, resp, seed, BENCH_TRAIN_B, use_bf16, &opt);
    for (int i = 0; i < warmup; i++) gpu_e4srec_train_step(g, items, targets, BENCH_TRAIN_B);
    gpu_e4srec_losses(g, &l, NULL, NULL);  // waits
    double t0 = now_seconds();
    for (int i = 0; i < steps; i++) gpu_e4srec_train_step(g, items, targets, BENCH_TRAIN_B);
    gpu_e4srec_losses(g, &l, NULL, NULL);
    r.train_step_s = (now_seconds() - t0) / steps;
    r.loss = l.total;
    r.peak_bytes = gpu_allocated_peak(1);
    gpu_e4srec_free(g);

    size_t plan = gpu_plan(c, 0, BENCH_INFER_B, use_bf16, 0, 0).total;
    if (plan > r.plan_bytes) r.plan_bytes = plan;
    g = gpu_e4srec_create_random(c, table, instr, resp, seed, BENCH_INFER_B, use_bf16, NULL);
    for (int i = 0; i < warmup; i++) gpu_e4srec_score(g, items, BENCH_INFER_B, NULL, BENCH_TOPK, top);
    t0 = now_seconds();
    for (int i = 0; i < steps; i++) gpu_e4srec_score(g, items, BENCH_INFER_B, NULL, BENCH_TOPK, top);  // each waits
    r.infer_batch_s = (now_seconds() - t0) / steps;
    size_t peak = gpu_allocated_peak(1);
    if (peak > r.peak_bytes) r.peak_bytes = peak;
    gpu_e4srec_free(g);

    r.train_flops = bench_train_flops(c, BENCH_TRAIN_B, 0);
    r.infer_flops = bench_forward_flops(c, BENCH_INFER_B);
    free(table); free(items); free(targets); free(top);
    return r;
}

static void bench_write_json(const char* path, const BenchRow* rows, int n, const char* gpu, const char* precision,
                             double peak, const char* peer_path, const BenchPeer* peers, int steps, int warmup) {
    OutFile o;
    outfile_open(&o, path);
    fprintf(o.f, "{\n \"device\": ");
    json_write_string(o.f, gpu);
    fprintf(o.f, ", \"precision\": \"%s\", \"timed_steps\": %d, \"warmup_steps\": %d,\n", precision, steps, warmup);
    fprintf(o.f, " \"train_batch\": %d, \"infer_batch\": %d, \"items\": %d, \"topk\": %d,\n", BENCH_TRAIN_B, BENCH_INFER_B,
            BENCH_ITEMS, BENCH_TOPK);
    fprintf(o.f, " \"flops\": \"%s\",\n \"mfu_peak_tflops\": %.1f,\n", BENCH_FLOPS_FORMULA, peak);
    fprintf(o.f, " \"memory\": \"peak_mem_GB: the most bytes slmrec's allocations held at once in the train or the "
            "inference run (1 GB = 1e9 bytes, as the peer's torch.cuda.max_memory_allocated); plan_GB: gpu_plan's total\",\n");
    fprintf(o.f, " \"peer\": ");
    json_write_string(o.f, peer_path ? peer_path : "");
    fprintf(o.f, ",\n");
    for (int i = 0; i < n; i++) {
        const BenchRow* r = &rows[i];
        const E4SRecConfig* c = &r->cfg;
        double peer_train_flops = bench_train_flops(c, BENCH_TRAIN_B, r->shape->peer_lora);
        fprintf(o.f, " \"%s\": {\"layers\": %d, \"hidden\": %d, \"ffn\": %d, \"heads\": %d, \"params\": %zu, "
                "\"trainable\": %zu, \"lora\": false, \"peer_lora\": %s, \"tokens\": %d, "
                "\"train_step_s\": %.6f, \"train_samples_per_s\": %.1f, \"train_flops\": %.4e, \"train_tflops\": %.2f, "
                "\"infer_batch_s\": %.6f, \"infer_samples_per_s\": %.1f, \"infer_flops\": %.4e, \"infer_tflops\": %.2f, "
                "\"peak_mem_GB\": %.3f, \"plan_GB\": %.3f, \"peer_train_flops\": %.4e, \"last_loss\": %.4f",
                r->shape->name, c->L, c->C, c->F, c->NH, r->params, r->params, r->shape->peer_lora ? "true" : "false",
                e4srec_T(c), r->train_step_s, BENCH_TRAIN_B / r->train_step_s, r->train_flops,
                r->train_flops / r->train_step_s / 1e12, r->infer_batch_s, BENCH_INFER_B / r->infer_batch_s, r->infer_flops,
                r->infer_flops / r->infer_batch_s / 1e12, r->peak_bytes / 1e9, r->plan_bytes / 1e9, peer_train_flops, r->loss);
        if (peak > 0) {
            fprintf(o.f, ", \"train_mfu\": %.4f, \"infer_mfu\": %.4f", r->train_flops / r->train_step_s / 1e12 / peak,
                    r->infer_flops / r->infer_batch_s / 1e12 / peak);
        }
        if (peers[i].found) {
            const BenchPeer* p = &peers[i];
            fprintf(o.f, ", \"peer_train_samples_per_s\": %.1f, \"peer_infer_samples_per_s\": %.1f, \"peer_peak_mem_GB\": %.3f, "
                    "\"train_speedup\": %.3f, \"infer_speedup\": %.3f, \"memory_ratio\": %.3f",
                    p->train_samples_s, p->infer_samples_s, p->peak_mem_gb, BENCH_TRAIN_B / r->train_step_s / p->train_samples_s,
                    BENCH_INFER_B / r->infer_batch_s / p->infer_samples_s, r->peak_bytes / 1e9 / p->peak_mem_gb);
            if (peak > 0) {
                fprintf(o.f, ", \"peer_train_mfu\": %.4f, \"peer_infer_mfu\": %.4f",
                        peer_train_flops * p->train_samples_s / BENCH_TRAIN_B / 1e12 / peak,
                        r->infer_flops * p->infer_samples_s / BENCH_INFER_B / 1e12 / peak);
            }
        }
        fprintf(o.f, "}%s\n", i + 1 < n ? "," : "");
    }
    fprintf(o.f, "}\n");
    outfile_commit(&o);
}

static void bench_gpu(const BenchShape** chosen, int n, const char* precision, double peak_flag, const char* peer_path,
                      const char* out, int steps, int warmup, int seed) {
    gpu_require("bench");
    char gpu[256], name[256];
    gpu_device_info(gpu, sizeof(gpu));
    gpu_device_name(name, sizeof(name));
    int use_bf16 = strcmp(precision, "bf16") == 0;
    const GpuPeak* known = gpu_peak_of(name);
    double peak = peak_flag > 0 ? peak_flag : known ? (use_bf16 ? known->bf16 : known->fp32) : 0.0;
    char* peer_text = peer_path ? read_file(peer_path, NULL) : NULL;
    BenchPeer peers[BENCH_NUM_SHAPES] = {{0}};
    for (int i = 0; peer_text && i < n; i++) peers[i] = bench_peer_row(peer_text, peer_path, chosen[i]->name);
    printf("bench: %s; %s, %d timed steps after %d warm-up, train batch %d, inference batch %d (+ top-%d of %d items)\n",
           gpu, precision, steps, warmup, BENCH_TRAIN_B, BENCH_INFER_B, BENCH_TOPK, BENCH_ITEMS);
    printf("FLOPs: %s\n", BENCH_FLOPS_FORMULA);
    if (peak_flag > 0) printf("MFU: achieved / %.1f TFLOP/s (--peak-tflops)\n", peak);
    else if (known) printf("MFU: achieved / %.1f TFLOP/s, the dense %s peak of an %s (table gpu_peaks, by device name)\n", peak, precision, known->model);
    else printf("MFU: not reported: '%s' is not in the table of peaks (gpu_peaks); give --peak-tflops\n", name);
    printf("memory: the most bytes slmrec's allocations held at once (as the peer's max_memory_allocated), GB = 1e9 bytes;\n"
           "plan: what src/gpu_plan.h planned for the larger handle\n\n");
    printf("%-9s %6s %6s %14s | %12s %8s %6s | %12s %8s %6s | %8s %8s  %s\n", "config", "layers", "hidden", "params",
           "train smp/s", "TFLOP/s", "MFU", "infer smp/s", "TFLOP/s", "MFU", "peak GB", "plan GB", "training");
    make_dir(out);
    char path[1100];
    snprintf(path, sizeof(path), "%s/bench.json", out);
    BenchRow rows[BENCH_NUM_SHAPES];
    Rng rng;
    rng_seed(&rng, (uint64_t)seed);
    for (int i = 0; i < n; i++) {
        BenchRow* r = &rows[i];
        *r = bench_shape(chosen[i], use_bf16, steps, warmup, &rng);
        if (!isfinite(r->loss)) die("bench: %s: the training loss became %g", chosen[i]->name, r->loss);
        double train_tf = r->train_flops / r->train_step_s / 1e12, infer_tf = r->infer_flops / r->infer_batch_s / 1e12;
        printf("%-9s %6d %6d %14zu | %12.1f %8.1f %5.1f%% | %12.1f %8.1f %5.1f%% | %8.2f %8.2f  %s\n", chosen[i]->name,
               r->cfg.L, r->cfg.C, r->params, BENCH_TRAIN_B / r->train_step_s, train_tf, peak > 0 ? 100.0 * train_tf / peak : 0.0,
               BENCH_INFER_B / r->infer_batch_s, infer_tf, peak > 0 ? 100.0 * infer_tf / peak : 0.0, r->peak_bytes / 1e9, r->plan_bytes / 1e9,
               chosen[i]->peer_lora ? "every weight (the peer: LoRA r=8)" : "every weight");
        fflush(stdout);
        // rewritten after every config: one that runs out of memory keeps the ones before it
        bench_write_json(path, rows, i + 1, gpu, precision, peak, peer_path, peers, steps, warmup);
    }
    if (peer_text) {
        char peer_gpu[128] = "an unnamed device";  // "device": "NVIDIA H100 80GB HBM3", written by the peer last
        size_t len = 0;
        const char* d = json_get(peer_text, "device", &len, peer_path);  // a top-level member
        if (d && *d == '"') snprintf(peer_gpu, sizeof(peer_gpu), "%.*s", (int)strcspn(d + 1, "\""), d + 1);
        printf("\nagainst the peer (%s, measured on %s%s): slmrec / peer; MFU of each side with its own FLOPs per step\n",
               peer_path, peer_gpu, strcmp(peer_gpu, name) == 0 ? "" : " -- NOT this GPU: the ratios compare two machines");
        printf("%-9s | %10s %10s %8s | %10s %10s %8s | %8s %8s %6s\n", "config", "train", "peer", "speed-up", "infer",
               "peer", "speed-up", "peak GB", "peer GB", "ratio");
        for (int i = 0; i < n; i++) {
            const BenchRow* r = &rows[i];
            const BenchPeer* p = &peers[i];
            if (!p->found) { printf("%-9s | not in %s\n", chosen[i]->name, peer_path); continue; }
            double tr = BENCH_TRAIN_B / r->train_step_s, inf = BENCH_INFER_B / r->infer_batch_s;
            printf("%-9s | %10.1f %10.1f %7.2fx | %10.1f %10.1f %7.2fx | %8.2f %8.2f %5.2fx\n", chosen[i]->name, tr,
                   p->train_samples_s, tr / p->train_samples_s, inf, p->infer_samples_s, inf / p->infer_samples_s, r->peak_bytes / 1e9,
                   p->peak_mem_gb, r->peak_bytes / 1e9 / p->peak_mem_gb);
            if (peak > 0) {
                double peer_tf = bench_train_flops(&r->cfg, BENCH_TRAIN_B, chosen[i]->peer_lora) * p->train_samples_s / BENCH_TRAIN_B / 1e12;
                printf("%-9s   train MFU %.1f%% (slmrec, %s) vs %.1f%% (peer, %s)\n", "", 100.0 * r->train_flops / r->train_step_s / 1e12 / peak,
                       "3 x forward", 100.0 * peer_tf / peak, chosen[i]->peer_lora ? "2 x forward" : "3 x forward");
            }
        }
    }
    free(peer_text);
    printf("\nwrote %s\n", path);
}
#endif

// the CPU model name, from /proc/cpuinfo where there is one
static void cpu_model_name(char* out, size_t cap) {
    snprintf(out, cap, "unknown CPU");
    FILE* f = fopen("/proc/cpuinfo", "r");
    if (f == NULL) return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        char* colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            snprintf(out, cap, "%s", colon + 2);
            out[strcspn(out, "\n")] = 0;
            break;
        }
    }
    fclose(f);
}

static void bench_cpu(const char* data, const char* out, int steps, int seed) {
    char cpu[256], path[1100];
    cpu_model_name(cpu, sizeof(cpu));
    int threads = bench_threads();
    printf("bench: %s, %d threads, MM_MR x MM_NR = %d x %d, KC %d\n", cpu, threads, MM_MR, MM_NR, MM_KC);
    double peak = bench_fma_peak();
    printf("fp32 FMA peak (register-only loop, %d threads): %.1f GFLOP/s\n\n", threads, peak);
    printf("%-32s %6s %6s %6s | %16s %16s %16s\n", "matmul (N x C -> OC)", "N", "C", "OC", "forward", "dinp", "dweight");
    Rng rng;
    rng_seed(&rng, (uint64_t)seed);
    BenchMatmulRow mm[BENCH_NUM_MATMULS];
    for (int i = 0; i < BENCH_NUM_MATMULS; i++) {
        const BenchMatmul* b = &bench_matmuls[i];
        mm[i] = bench_matmul(b, &rng);
        printf("%-32s %6d %6d %6d |", b->name, b->N, b->C, b->OC);
        for (int w = 0; w < 3; w++) printf(" %7.1f (%5.1f%%)", mm[i].gflops[w], 100.0 * mm[i].gflops[w] / peak);
        printf("\n");
        fflush(stdout);
    }
    double naive = bench_matmul_naive(&bench_matmuls[1], &rng);
    printf("%-32s %6d %6d %6d | %7.1f (%5.1f%%): the blocked kernel is %.0fx faster\n", "  plain loop (mm_reference), 1 thread",
           bench_matmuls[1].N, bench_matmuls[1].C, bench_matmuls[1].OC, naive, 100.0 * naive / peak, mm[1].gflops[0] / naive);
    // the models at the Beauty shapes: E4SRec_8 (C=64, F=172, 4/2 heads, batch 64, 50 slots + the
    // default prompt) on the peer's batch; SASRec (D=64, 2 blocks, batch 128) on the data's users
    SeqData d;
    if (data) seqdata_load(&d, data, 0);
    else synth_generate(&d, 22363, 12101, 9, (uint64_t)seed);
    Config c = config_defaults();
    Prompt p;
    log_file = NULL;
    prompt_build(&p, c.instruction, c.response, c.vocab, NULL);
    float* table = (float*)mallocCheck((size_t)(d.n_items + 1) * c.sas_dim * sizeof(float));
    rng_fill_normal(&rng, table, (size_t)(d.n_items + 1) * c.sas_dim, 0.1f);
    E4SRecConfig ec = e4srec_config_for(config_widths(&c), NULL, &p, c.teacher_layers, c.sas_dim, d.n_items + 1);
    E4SRec m;
    e4srec_build(&m, &ec, table, p.instr, p.resp);
    e4srec_init_random(&m, &rng);
    Optimizer opt = {0};
    opt.cfg = config_adamw(&c, 100);
    optimizer_add(&opt, m.params_memory, m.grads_memory, m.num_params);
    optimizer_ready(&opt);
    BenchModelRow e4 = bench_e4srec(&m, &opt, c.batch, steps, &rng);
    SASRecConfig sc = {.I = d.n_items + 1, .D = c.sas_dim, .L = c.sas_blocks, .NH = c.sas_heads, .T = c.max_len, .dropout = c.sas_dropout};
    SASRec sm;
    sasrec_build(&sm, &sc);
    sasrec_init_random(&sm, &rng);
    SASRecJob sjob;
    sasrec_job_init(&sjob, &sm, &d, c.sas_batch);
    Optimizer sopt = {0};
    sopt.cfg = adamw_defaults();
    optimizer_add(&sopt, sm.params_memory, sm.grads_memory, sm.num_params);
    optimizer_ready(&sopt);
    Recommender st = sasrec_recommender(&sjob, "SASRec");
    BenchModelRow sas = bench_trainable(&st, &sopt, &d, c.sas_batch, steps, &rng);
    int* units = (int*)mallocCheck((size_t)d.n_users * sizeof(int));
    int users = training_units(&st, &d, units);
    free(units);
    printf("\nmodels on %s (%d users, %d items)\n", data ? data : "synthetic data of Beauty's size", d.n_users, d.n_items);
    printf("%-44s %14s %14s\n", "model", "train smp/s", "infer smp/s");
    printf("%-44s %14.1f %14.1f\n", "E4SRec_8 (C=64, F=172, 4/2 heads, batch 64)*", e4.train_samples_s, e4.infer_samples_s);
    printf("%-44s %14.1f %14.1f\n", "SASRec (D=64, 2 blocks, batch 128)", sas.train_samples_s, sas.infer_samples_s);
    printf("* on the peer's batch: 3..13 real items in 50 slots, %d + %d prompt tokens\n", p.P1, p.P2);
    printf("SASRec epoch: %d users / %.1f samples/s = %.1f s of training\n", users, sas.train_samples_s, users / sas.train_samples_s);
    make_dir(out);
    snprintf(path, sizeof(path), "%s/bench.json", out);
    OutFile o;
    outfile_open(&o, path);
    fprintf(o.f, "{\n \"device\": \"cpu\", \"cpu\": ");
    json_write_string(o.f, cpu);
    fprintf(o.f, ", \"threads\": %d, \"fma_peak_gflops\": %.1f,\n \"matmul\": [\n", threads, peak);
    for (int i = 0; i < BENCH_NUM_MATMULS; i++) {
        const BenchMatmul* b = &bench_matmuls[i];
        fprintf(o.f, "  {\"name\": \"%s\", \"N\": %d, \"C\": %d, \"OC\": %d, \"forward_gflops\": %.1f, \"dinp_gflops\": %.1f, "
                "\"dweight_gflops\": %.1f}%s\n", b->name, b->N, b->C, b->OC, mm[i].gflops[0], mm[i].gflops[1], mm[i].gflops[2],
                i + 1 < BENCH_NUM_MATMULS ? "," : "");
    }
    fprintf(o.f, " ],\n \"data\": ");
    json_write_string(o.f, data ? data : "synthetic, Beauty-sized");
    fprintf(o.f, ", \"users\": %d, \"items\": %d,\n \"e4srec_8\": {\"train_samples_s\": %.1f, \"infer_samples_s\": %.1f},\n"
            " \"sasrec\": {\"train_samples_s\": %.1f, \"infer_samples_s\": %.1f, \"epoch_train_s\": %.1f}\n}\n",
            d.n_users, d.n_items, e4.train_samples_s, e4.infer_samples_s, sas.train_samples_s, sas.infer_samples_s,
            users / sas.train_samples_s);
    outfile_commit(&o);
    printf("wrote %s\n", path);
    sasrec_job_free(&sjob);
    optimizer_free(&sopt);
    sasrec_free(&sm);
    optimizer_free(&opt);
    e4srec_free(&m);
    free(table);
    prompt_free(&p);
    seqdata_free(&d);
}
