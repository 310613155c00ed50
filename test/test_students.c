// test_students.c: the DLLM2Rec students (GRU4Rec, Caser, SASRec read out at
// each history's last item), with and without the collaborative embedding
// distillation: every parameter tensor against finite differences, the
// DLLM2Rec loss's dlogits against finite differences of its total and its terms
// against each other, the sample list and a batch's join to the teacher's rows,
// pads and empty histories, refusals, the checkpoint round trip, and the PyTorch
// oracle fixture.
//
// Students are checked through L = sum(logits * R) with a fixed random R, so
// dlogits = R, on a strided sample of every tensor as fd_check_params
// (test_layers.c) does, stepping around the kinks of ReLUs and max-pools.

// odd shapes: 10 items, D = 6 over 3 heads (SASRec), teacher width 5, 3 filters per height (Caser)
#define ST_I 11
#define ST_D 6
#define ST_C 5
#define ST_T 7
#define ST_B 4

// left-padded histories: two pads, full, EMPTY, a single item. Item 2 is in two
// rows, so its embedding gradient accumulates.
static const int student_X[ST_B * ST_T] = {
    0, 0, 3, 8, 2, 5, 1,
    4, 9, 10, 1, 7, 2, 6,
    0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 9,
};

// SASRec with one block: its two-block trunk is checked in test_sasrec.c; here
// the read-out at the last item and the embedding map are new, and one block
// keeps the LayerNorm and softmax curvature low enough for finite differences
static StudentConfig test_student_config(StudentKind kind, float dropout, float ed) {
    StudentConfig c = {.kind = kind, .I = ST_I, .D = ST_D, .T = ST_T, .L = 1, .NH = 3, .dropout = dropout, .NF = 3,
                       .ed = ed, .C = ed > 0.0f ? ST_C : 0};
    return c;
}

// a student with a random teacher table and weights larger than its init, so
// every path carries signal (the item embeddings start at N(0, 0.01))
static void test_student_make(Student* s, const StudentConfig* c, Rng* rng) {
    float* e_T = test_randn(rng, (size_t)c->I * ST_C, 1.0f);
    student_build(s, c, e_T);
    student_init_random(s, rng);
    for (size_t i = 0; i < s->model_n; i++) s->model_params[i] += 0.3f * rng_normal(rng);
    for (size_t i = 0; i < s->collab_n; i++) s->collab_params[i] += 0.3f * rng_normal(rng);
    free(e_T);
}

// the built model's tensor sizes, in the order of model_params
static const size_t* test_student_sizes(const Student* s, int* n) {
    if (s->cfg.kind == STUDENT_SASREC) { *n = SASREC_NUM_PARAMS; return s->sasrec.param_sizes; }
    if (s->cfg.kind == STUDENT_GRU4REC) { *n = GRU4REC_NUM_PARAMS; return s->gru4rec.param_sizes; }
    *n = CASER_NUM_PARAMS;
    return s->caser.param_sizes;
}

// which piece of its piecewise-linear parts a forward ran on: the sign of every
// ReLU and the window every max-pool took (GRU4Rec has none). Finite
// differences across a kink measure neither side's slope.
static uint64_t test_student_kinks(const Student* s) {
    uint64_t h = 1469598103934665603ull;
    if (s->cfg.kind == STUDENT_CASER) {
        const Caser* m = &s->caser;
        size_t n_pools = (size_t)m->B * CASER_HEIGHTS * m->cfg.NF, n_z = (size_t)m->B * caser_Z(&m->cfg);
        for (size_t i = 0; i < n_pools; i++) h = (h ^ (uint64_t)m->argmax[i]) * 1099511628211ull;
        for (size_t i = 0; i < n_z; i++) h = (h ^ (m->acts.z[i] > 0.0f)) * 1099511628211ull;  // pooled and vertical ReLUs
    } else if (s->cfg.kind == STUDENT_SASREC) {
        const SASRec* m = &s->sasrec;
        size_t n = (size_t)m->cfg.L * m->P * m->cfg.D;
        for (size_t i = 0; i < n; i++) h = (h ^ (m->acts.relu[i] > 0.0f)) * 1099511628211ull;  // feed-forward ReLUs
    }
    return h;
}

// the logits of one fixed batch; seed != 0 redraws the same dropout masks at
// every evaluation. kinks: test_student_kinks of the last evaluation.
typedef struct { Student* s; const int* X; int B; uint64_t seed, kinks; } StudentCtx;
static void student_fd(void* p, float* out) {
    StudentCtx* c = p;
    Rng rng;
    rng_seed(&rng, c->seed);
    student_forward(c->s, c->X, c->B, c->seed ? &rng : NULL);
    memcpy(out, c->s->logits, (size_t)c->B * c->s->cfg.I * sizeof(float));
    c->kinks = test_student_kinks(c->s);
}

// fraction of the features a forward's dropout zeroed (0 without dropout)
static float test_student_dropped(const Student* s) {
    const float* mask = s->cfg.kind == STUDENT_CASER ? s->caser.mask : s->sasrec.acts.emb_mask;
    size_t n = s->cfg.kind == STUDENT_CASER ? (size_t)s->caser.B * caser_Z(&s->caser.cfg) : (size_t)s->sasrec.P * s->cfg.D;
    size_t zeros = 0;
    for (size_t i = 0; i < n; i++) zeros += mask[i] == 0.0f;
    return n ? (float)zeros / n : 0.0f;
}

// the central difference of the loss in *x with step eps; 0 when either
// evaluation left the piece `kinks` of the unperturbed forward
static int test_student_central(FdLayer* f, StudentCtx* ctx, float* out, float* x, float eps, uint64_t kinks, double* d) {
    float saved = *x;
    *x = saved + eps; double lp = fd_loss(f, out); int moved = ctx->kinks != kinks;
    *x = saved - eps; double lm = fd_loss(f, out); moved |= ctx->kinks != kinks;
    *x = saved;
    *d = (lp - lm) / (2.0 * eps);
    return !moved;
}

// fd_check_params for a student, around its kinks and its curvature. A central
// difference across a kink (a ReLU or a max-pool changing piece) measures
// neither side's slope, and Caser's max-pools and SASRec's ReLUs put one within
// 1e-2 of many parameters in most random draws; SASRec's LayerNorm and softmax
// bend its logits enough that the h^2 error of a step of 1e-2 can pass FD_ATOL;
// and a step of 1e-3 everywhere lets float32 rounding of the sum over B*I
// logits reach FD_ATOL. So each parameter takes the largest of the steps below
// whose evaluations stay on the unperturbed forward's piece (test_student_kinks);
// the largest, 1e-2, is extrapolated with 3e-3 when that one stays too
// (D(h) = g + c h^2: g = (r^2 D(h/r) - D(h)) / (r^2 - 1); smaller pairs would
// amplify the rounding). It is compared with the usual tolerance; one whose
// every step crosses a kink is left out and counted in *skipped. Over 100
// reseeded draws of the ten configurations below, 2 of the 1000 runs still
// failed (SASRec with dropout: curvature at 3e-3, rounding at 1e-3): a change
// in what the initialisations draw can land on such a draw. Returns the number
// of parameters compared.
static const float student_fd_steps[3] = {1e-2f, 3e-3f, 1e-3f};

static int test_student_fd_tensors(const char* who, FdLayer* f, StudentCtx* ctx, float* p, const float* g,
                                   const size_t* sizes, int n_tensors, int* skipped) {
    char name[256];
    float* out = test_zeros(f->nout);
    fd_loss(f, out);
    uint64_t kinks = ctx->kinks;
    int compared = 0;
    for (int t = 0; t < n_tensors; t++) {
        size_t n = sizes[t], stride = n > 60 ? n / 60 : 1, k = 0;
        float* analytic = test_zeros(n / stride + 1);
        float* numeric = test_zeros(n / stride + 1);
        for (size_t i = 0; i < n; i += stride) {
            int e = 0;
            double d = 0.0, finer = 0.0;
            while (e < 3 && !test_student_central(f, ctx, out, p + i, student_fd_steps[e], kinks, &d)) e++;
            if (e == 3) { (*skipped)++; continue; }
            if (e == 0 && test_student_central(f, ctx, out, p + i, student_fd_steps[1], kinks, &finer)) {
                double r2 = (double)student_fd_steps[0] / student_fd_steps[1];
                r2 *= r2;
                d = (r2 * finer - d) / (r2 - 1.0);
            }
            numeric[k] = (float)d;
            analytic[k++] = g[i];
        }
        snprintf(name, sizeof(name), "%s param tensor %d", who, t);
        check_close(name, analytic, numeric, k, FD_ATOL, FD_RTOL);
        compared += (int)k;
        free(analytic); free(numeric);
        p += n;
        g += n;
    }
    free(out);
    return compared;
}

// finite differences on every tensor of a student: its model's, then (ed > 0) ed_w and ed_b
static void test_student_gradients(Rng* rng, StudentKind kind, float dropout, uint64_t seed, float ed) {
    StudentConfig c = test_student_config(kind, dropout, ed);
    Student s;
    test_student_make(&s, &c, rng);
    size_t nout = (size_t)ST_B * ST_I;
    float* R = test_randn(rng, nout, 1.0f);
    float* logits = test_zeros(nout);
    StudentCtx ctx = {&s, student_X, ST_B, seed, 0};
    student_fd(&ctx, logits);
    student_zero_grad(&s);
    student_backward(&s, R);
    char who[128];
    snprintf(who, sizeof(who), "%s student, dropout %.1f, ed %.1f", STUDENT_NAMES[kind], dropout, ed);
    if (dropout > 0.0f) {
        float dropped = test_student_dropped(&s);
        CHECK(dropped > 0.05f, "%s: the dropout mask zeroed %.0f%% (the test would not exercise it)", who, 100 * dropped);
    }
    FdLayer f = {student_fd, &ctx, nout, R};
    int n_tensors, skipped = 0;
    const size_t* sizes = test_student_sizes(&s, &n_tensors);
    int compared = test_student_fd_tensors(who, &f, &ctx, s.model_params, s.model_grads, sizes, n_tensors, &skipped);
    if (s.collab_n) {
        size_t collab_sizes[2] = {(size_t)ST_D * ST_C, ST_D};  // ed_w (D, C), ed_b (D)
        char map[192];
        snprintf(map, sizeof(map), "%s, embedding map (0 = ed_w, 1 = ed_b)", who);
        compared += test_student_fd_tensors(map, &f, &ctx, s.collab_params, s.collab_grads, collab_sizes, 2, &skipped);
    }
    // which parameters sit next to a kink is left to the draw: at least 2 in 3 must be compared
    CHECK(skipped * 2 <= compared, "%s: %d of %d finite-difference steps crossed a kink", who, skipped, skipped + compared);
    free(R); free(logits);
    student_free(&s);
}

// ----------------------------------------------------------------------------
// the DLLM2Rec loss on its own: dlogits against finite differences of the total

#define LOSS_B 3
#define LOSS_K 4

typedef struct {
    DLLM2RecLoss* loss;
    const DLLM2RecConfig* cfg;
    const DLLM2RecBatch* bt;
    const float* logits;    // (B, I) the point being perturbed
    const int* topk;        // (B, K) the student's top-K at that point, or NULL
    int topk_moved;         // evaluations whose top-K differed from it
} LossCtx;

static void dllm2rec_fd(void* p, float* out) {
    LossCtx* c = p;
    out[0] = dllm2rec_loss_forward(c->loss, c->logits, c->bt, c->cfg).total;
    if (c->topk) c->topk_moved += memcmp(c->loss->student_topk, c->topk, (size_t)c->bt->B * c->cfg->K * sizeof(int)) != 0;
}

// dlogits of one objective against central differences. The importance weights
// depend on the student's top-K, a step function of the logits: the logits
// are spaced 0.35 apart or more, so no step of FD_EPS reorders them, and every
// evaluation checks that its top-K is the unperturbed one.
static void test_dllm2rec_fd(const char* name, const DLLM2RecConfig* cfg, const DLLM2RecBatch* bt, float* logits) {
    DLLM2RecLoss loss = {0};
    size_t n = (size_t)bt->B * bt->I;
    float* dlogits = test_zeros(n);
    dllm2rec_loss_forward(&loss, logits, bt, cfg);
    dllm2rec_loss_backward(dlogits, logits, bt, &loss, cfg);
    int* topk = (int*)mallocCheck((size_t)bt->B * cfg->K * sizeof(int));
    memcpy(topk, loss.student_topk, (size_t)bt->B * cfg->K * sizeof(int));
    float one = 1.0f;
    LossCtx ctx = {&loss, cfg, bt, logits, dllm2rec_uses_teacher_ranking(cfg) ? topk : NULL, 0};
    FdLayer f = {dllm2rec_fd, &ctx, 1, &one};
    fd_check(name, &f, logits, n, dlogits);
    CHECK(ctx.topk_moved == 0, "%s: %d perturbations moved the student's top-K", name, ctx.topk_moved);
    free(dlogits); free(topk);
    dllm2rec_loss_free(&loss);
}

static void test_dllm2rec_loss(Rng* rng) {
    int B = LOSS_B, I = ST_I, K = LOSS_K, n_items = I - 1;
    // each row a shuffle of the levels -2, -1.6, ..., 2, plus up to 0.05: gaps of at least 0.35
    float logits[LOSS_B * ST_I];
    int target[LOSS_B], neg[LOSS_B], cand[LOSS_B * LOSS_K];
    float cand_score[LOSS_B * LOSS_K], propensity[ST_I];
    for (int b = 0; b < B; b++) {
        int level[ST_I], items[ST_I - 1];
        for (int i = 0; i < I; i++) level[i] = i;
        rng_shuffle(rng, level, I);
        for (int i = 0; i < I; i++) logits[b * I + i] = -2.0f + 0.4f * level[i] + 0.05f * rng_f32(rng);
        target[b] = 1 + rng_int(rng, n_items);
        do neg[b] = 1 + rng_int(rng, n_items); while (neg[b] == target[b]);
        // the teacher's first candidate is the student's best item (consistency 1), the rest at random
        int best = 1;
        for (int i = 2; i < I; i++) best = logits[b * I + i] > logits[b * I + best] ? i : best;
        for (int i = 0; i < n_items; i++) items[i] = i + 1;
        rng_shuffle(rng, items, n_items);
        cand[b * K] = best;
        for (int k = 1, i = 0; k < K; i++) if (items[i] != best) cand[b * K + k++] = items[i];
        for (int k = 0; k < K; k++) cand_score[b * K + k] = 2.0f - 0.7f * k + 0.1f * rng_normal(rng);
    }
    for (int i = 0; i < I; i++) propensity[i] = 0.55f + 0.4f * rng_f32(rng);  // in (0.5, 1)
    DLLM2RecBatch bt = {B, I, target, neg, cand, cand_score, propensity};
    DLLM2RecConfig cfg = dllm2rec_defaults();
    cfg.K = K;
    cfg.lam = 0.6f;
    cfg.dros_alpha = 0.8f;  // not 1: a misplaced alpha or beta would show
    cfg.dros_beta = 1.5f;

    DLLM2RecConfig ce = cfg, authors = cfg;
    ce.base = BASE_CE; ce.rd_neg = RD_NEG_PAPER;
    authors.base = BASE_BCE_DROS; authors.rd_neg = RD_NEG_AUTHORS;
    test_dllm2rec_fd("dllm2rec dlogits, CE + lam rd (paper negative)", &ce, &bt, logits);
    test_dllm2rec_fd("dllm2rec dlogits, BCE + DROS + lam (rd + DROS) (authors' negative)", &authors, &bt, logits);

    // the consistency weights are both 0 and 1 in this batch, so the FD covered both
    DLLM2RecLoss loss = {0};
    DLLM2RecLosses lc = dllm2rec_loss_forward(&loss, logits, &bt, &ce);
    int in_top = 0;
    for (int i = 0; i < B * K; i++) in_top += loss.w_cons[i] > 0.5f;
    CHECK(in_top > 0 && in_top < B * K, "dllm2rec: %d of %d candidates in the student's top-K, expected some and not all",
          in_top, B * K);
    DLLM2RecLosses la = dllm2rec_loss_forward(&loss, logits, &bt, &authors);
    float want_ce = lc.ce + ce.lam * lc.rd;
    float want_authors = la.bce + cfg.dros_alpha * la.dros + cfg.lam * (la.rd_authors + cfg.dros_alpha * la.rd_dros);
    CHECK(fabsf(lc.total - want_ce) <= 1e-5f * (1.0f + fabsf(want_ce)), "dllm2rec total_ce %.7g = ce + lam rd %.7g",
          lc.total, want_ce);
    CHECK(fabsf(la.total - want_authors) <= 1e-5f * (1.0f + fabsf(want_authors)),
          "dllm2rec total_authors %.7g = bce + alpha dros + lam (rd_authors + alpha rd_dros) %.7g", la.total, want_authors);
    CHECK(lc.rd > 0.0f && la.rd_authors > 0.0f && la.rd_dros > 0.0f && la.dros > 0.0f, "dllm2rec: every term is positive");

    // lam = 0: the base loss alone, and no teacher candidates needed
    DLLM2RecBatch plain = {B, I, target, neg, NULL, NULL, propensity};
    ce.lam = authors.lam = 0.0f;
    DLLM2RecLosses pc = dllm2rec_loss_forward(&loss, logits, &plain, &ce);
    DLLM2RecLosses pa = dllm2rec_loss_forward(&loss, logits, &plain, &authors);
    float base_authors = la.bce + cfg.dros_alpha * la.dros;
    CHECK(pc.total == lc.ce, "dllm2rec, lam 0: total %.7g = ce %.7g", pc.total, lc.ce);
    CHECK(fabsf(pa.total - base_authors) <= 1e-6f * (1.0f + fabsf(base_authors)),
          "dllm2rec, lam 0: total %.7g = bce + alpha dros %.7g", pa.total, base_authors);
    test_dllm2rec_fd("dllm2rec dlogits, CE alone (lam 0, no candidates)", &ce, &plain, logits);
    test_dllm2rec_fd("dllm2rec dlogits, BCE + DROS alone (lam 0, no candidates)", &authors, &plain, logits);
    dllm2rec_loss_free(&loss);
}

// ----------------------------------------------------------------------------
// the scale of a fresh student's logits. The authors' objective squares every
// logit inside DROS's exponent (method.md 6.3), so it trains only from logits
// of order 1: the authors' students draw their item embeddings from N(0, 0.01),
// which at the demo's sizes (150 items, D = 32) puts DROS at its floor near
// log(I) and BCE near log 2. A tied output table drawn from N(0, 1) (SASRec's
// stage-1 init) gave logits of rms ~6 and DROS ~500, and the student never
// left random ranking.

#define SCALE_I 151
#define SCALE_D 32
#define SCALE_T 10
#define SCALE_B 64

static void test_student_init_scale(Rng* rng) {
    int X[SCALE_B * SCALE_T], target[SCALE_B], neg[SCALE_B];
    float propensity[SCALE_I];
    for (int b = 0; b < SCALE_B; b++) {
        int len = 1 + rng_int(rng, SCALE_T);  // 1..T items behind T - len pads
        for (int t = 0; t < SCALE_T; t++) X[b * SCALE_T + t] = t < SCALE_T - len ? 0 : 1 + rng_int(rng, SCALE_I - 1);
        target[b] = 1 + rng_int(rng, SCALE_I - 1);
        do neg[b] = 1 + rng_int(rng, SCALE_I - 1); while (neg[b] == target[b]);
    }
    for (int i = 0; i < SCALE_I; i++) propensity[i] = powf(1.0f / SCALE_I, 0.05f);  // every item equally popular
    DLLM2RecBatch bt = {SCALE_B, SCALE_I, target, neg, NULL, NULL, propensity};
    DLLM2RecConfig cfg = dllm2rec_defaults();
    cfg.base = BASE_BCE_DROS;
    cfg.lam = 0.0f;
    for (int kind = 0; kind < STUDENT_KINDS; kind++) {
        StudentConfig c = {.kind = (StudentKind)kind, .I = SCALE_I, .D = SCALE_D, .T = SCALE_T, .L = 2, .NH = 1,
                           .dropout = 0.0f, .NF = 16, .ed = 0.0f, .C = 0};
        Student s;
        student_build(&s, &c, NULL);
        student_init_random(&s, rng);
        student_forward(&s, X, SCALE_B, NULL);
        double ss = 0.0;
        for (size_t i = 0; i < (size_t)SCALE_B * SCALE_I; i++) ss += (double)s.logits[i] * s.logits[i];
        float rms = (float)sqrt(ss / ((double)SCALE_B * SCALE_I));
        DLLM2RecLoss loss = {0};
        DLLM2RecLosses l = dllm2rec_loss_forward(&loss, s.logits, &bt, &cfg);
        float floor_dros = logf((float)SCALE_I);
        CHECK(rms < 1.0f, "%s student at init: logits of rms %.3g, expected under 1 (the authors' scale)",
              STUDENT_NAMES[kind], rms);
        CHECK(l.dros < floor_dros + 1.0f && l.bce < 1.0f, "%s student at init: DROS %.4g (floor ~log I = %.4g), BCE %.4g: "
              "expected DROS within 1 of its floor and BCE near log 2", STUDENT_NAMES[kind], l.dros, floor_dros, l.bce);
        dllm2rec_loss_free(&loss);
        student_free(&s);
    }
}

// ----------------------------------------------------------------------------
// GRU4Rec and pads: an empty history keeps h = 0 and scores out_b; pads before
// a history change nothing (a T = 9 model with the T = 7 one's weights: none
// of GRU4Rec's depends on T)

static void test_gru4rec_pads(Rng* rng) {
    StudentConfig c7 = test_student_config(STUDENT_GRU4REC, 0.0f, 0.5f), c9 = c7;
    c9.T = 9;
    Student s7, s9;
    test_student_make(&s7, &c7, rng);
    student_build(&s9, &c9, s7.e_T);
    CHECK(s9.model_n == s7.model_n, "gru4rec: T = 9 has %zu parameters, T = 7 %zu", s9.model_n, s7.model_n);
    memcpy(s9.model_params, s7.model_params, s7.model_n * sizeof(float));
    memcpy(s9.collab_params, s7.collab_params, s7.collab_n * sizeof(float));
    int X9[ST_B * 9] = {0};
    for (int b = 0; b < ST_B; b++) memcpy(X9 + b * 9 + 2, student_X + b * ST_T, ST_T * sizeof(int));
    student_forward(&s7, student_X, ST_B, NULL);
    student_forward(&s9, X9, ST_B, NULL);
    check_close("gru4rec scores behind 2 more pads", s9.logits, s7.logits, (size_t)ST_B * ST_I, 1e-6f, 1e-5f);
    float zero[ST_D] = {0};
    check_close("gru4rec keeps h = 0 for an empty history", s7.gru4rec.acts.h + 2 * ST_D, zero, ST_D, 0.0f, 0.0f);
    check_close("gru4rec scores an empty history as out_b", s7.logits + 2 * ST_I, s7.gru4rec.params.out_b, ST_I, 0.0f, 0.0f);
    student_free(&s7);
    student_free(&s9);
}

// ----------------------------------------------------------------------------
// the sample list (method.md 2.4) and the join of a batch row to the teacher's
// row of its sample: a DLLM2Rec step on ids out of order must read each id's
// history, target, candidates and scores

#define JOIN_K 3
#define JOIN_B 4

typedef struct { Student* s; const SeqData* d; } JobArgs;

// a job with the default objective (lam 0.7) and no teacher signals, expected to be refused
static void test_job_without_signals(void* arg) {
    JobArgs* a = arg;
    DLLM2RecConfig dc = dllm2rec_defaults();
    DLLM2RecJob job;
    dllm2rec_job_init(&job, a->s, a->d, NULL, &dc, 1);
}

static void test_dllm2rec_samples(Rng* rng) {
    SeqData d;
    synth_generate(&d, 12, ST_I - 1, 9, 5);  // histories longer than T = 7 among them
    SampleList samples;
    sample_list_build(&samples, &d);
    int id = 0, bad = 0, longer = 0, hist[ST_T];
    for (int u = 0; u < d.n_users; u++) {
        const int* seq = seq_items(&d, u);
        for (int t = 1; t < train_len(&d, u); t++, id++) {
            if (id >= samples.count) continue;
            bad += samples.users[id] != u || samples.cuts[id] != t;
            bad += sample_history(hist, &samples, id, ST_T) != seq[t];
            for (int i = 0; i < ST_T; i++) bad += hist[i] != (t - ST_T + i >= 0 ? seq[t - ST_T + i] : 0);
            longer += t > ST_T;
        }
    }
    CHECK(samples.count == id && sample_count(&d) == id, "sample list: %d samples, sample_count %d, the data has %d",
          samples.count, sample_count(&d), id);
    CHECK(bad == 0 && longer > 0, "sample list: %d samples out of order or with another history or target (%d cut past T)",
          bad, longer);

    // the teacher's rows, each marked by its sample id
    TeacherSignals sig;
    signals_alloc(&sig, &d, JOIN_K, ST_I, ST_C);
    for (int i = 0; i < sig.n_samples; i++) {
        for (int k = 0; k < JOIN_K; k++) {
            sig.cand[i * JOIN_K + k] = 1 + (i + k) % (ST_I - 1);
            sig.score[i * JOIN_K + k] = i + 0.25f * k;
        }
    }
    StudentConfig c = test_student_config(STUDENT_GRU4REC, 0.0f, 0.0f);
    Student s;
    test_student_make(&s, &c, rng);
    DLLM2RecConfig dc = dllm2rec_defaults();
    dc.K = JOIN_K;
    DLLM2RecJob job;
    dllm2rec_job_init(&job, &s, &d, &sig, &dc, JOIN_B);
    Optimizer opt;
    dllm2rec_job_optimizer(&opt, &job, adamw_defaults());
    int ids[JOIN_B] = {samples.count - 1, 0, samples.count / 2, 1};
    dllm2rec_job_train_batch(&job, &opt, ids, JOIN_B, rng, 1);
    bad = 0;
    for (int b = 0; b < JOIN_B; b++) {
        const int* cand;
        const float* score;
        signals_row(&sig, ids[b], &cand, &score);
        bad += cand[0] != 1 + ids[b] % (ST_I - 1) || score[1] != ids[b] + 0.25f;
        bad += memcmp(job.cand + b * JOIN_K, cand, JOIN_K * sizeof(int)) != 0;
        bad += memcmp(job.cand_score + b * JOIN_K, score, JOIN_K * sizeof(float)) != 0;
        bad += job.target[b] != sample_history(hist, &samples, ids[b], ST_T);
        bad += memcmp(job.x + b * ST_T, hist, sizeof(hist)) != 0;
    }
    CHECK(bad == 0, "dllm2rec: %d mismatches between a batch row and the history, target or teacher row of its sample", bad);
    optimizer_free(&opt);
    dllm2rec_job_free(&job);
    // the job decides from its objective whether it reads the teacher's ranking: not with lam 0
    dc.lam = 0.0f;
    dllm2rec_job_init(&job, &s, &d, &sig, &dc, JOIN_B);
    CHECK(job.signals == NULL, "dllm2rec, lam 0: the job reads the teacher's candidates");
    dllm2rec_job_free(&job);
    JobArgs args = {&s, &d};
    check_dies("dllm2rec, lam 0.7 without teacher signals", test_job_without_signals, &args, "there are no teacher signals");
    student_free(&s);
    signals_free(&sig);
    sample_list_free(&samples);
    seqdata_free(&d);
}

// ----------------------------------------------------------------------------
// refusals

typedef struct { StudentKind kind; const int* history; } RefusedForward;

// a forward on one history of T = 7, expected to be refused
static void test_student_refused(void* arg) {
    RefusedForward* r = arg;
    StudentConfig c = test_student_config(r->kind, 0.0f, 0.0f);
    Student s;
    student_build(&s, &c, NULL);
    student_forward(&s, r->history, 1, NULL);
}

static void test_caser_too_short(void* arg) {
    (void)arg;
    CaserConfig c = {.I = ST_I, .D = ST_D, .T = 3, .NF = 3, .dropout = 0.0f};
    Caser m;
    caser_build(&m, &c);
}

static void test_student_no_teacher(void* arg) {
    (void)arg;
    StudentConfig c = test_student_config(STUDENT_GRU4REC, 0.0f, 0.5f);
    c.C = 0;
    Student s;
    student_build(&s, &c, NULL);
}

static void test_student_refusals(void) {
    int gap[ST_T] = {0, 3, 1, 0, 2, 3, 4};
    int past_table[ST_T] = {0, 0, 1, 2, 3, ST_I, 4};
    int negative[ST_T] = {0, 0, 1, -1, 3, 2, 4};
    RefusedForward g = {STUDENT_GRU4REC, gap};
    check_dies("gru4rec refuses a pad after an item", test_student_refused, &g, "pad after an item");
    char name[96];
    for (int kind = 0; kind < 3; kind++) {
        RefusedForward past = {(StudentKind)kind, past_table}, neg = {(StudentKind)kind, negative};
        snprintf(name, sizeof(name), "%s refuses item id %d of a %d-row table", STUDENT_NAMES[kind], ST_I, ST_I);
        check_dies(name, test_student_refused, &past, "outside the item table");
        snprintf(name, sizeof(name), "%s refuses item id -1", STUDENT_NAMES[kind]);
        check_dies(name, test_student_refused, &neg, "outside the item table");
    }
    check_dies("caser refuses a history shorter than its tallest filter", test_caser_too_short, NULL, "history length (at least the tallest filter's height) is 3, expected 4");
    check_dies("a student with ed > 0 and no teacher width is refused", test_student_no_teacher, NULL, "needs a teacher item table");
}

// ----------------------------------------------------------------------------
// checkpoints

static void load_student_file(void* path) { StudentFile f; student_load(&f, (const char*)path); }
static void load_sasrec_file(void* path) { SASRecFile f; sasrec_load(&f, (const char*)path); }

// the student file `from` with one header dim changed, written to `to` (may be `from`)
static void test_student_rewrite_dim(const char* from, const char* to, int dim, int value) {
    int dims[HEADER_DIMS];
    size_t nbytes = 0;
    void* payload = binfile_read(from, KIND_DLLM2REC, dims, &nbytes);
    dims[dim] = value;
    binfile_write(to, KIND_DLLM2REC, dims, STUDENT_DIMS, payload, nbytes);
    free(payload);
}

// save then load gives the same configuration, every float, and the same scores
static void test_student_round_trip(Rng* rng, StudentKind kind, float ed) {
    StudentConfig c = test_student_config(kind, kind == STUDENT_GRU4REC ? 0.0f : 0.2f, ed);
    Student s;
    test_student_make(&s, &c, rng);
    char path[] = "/tmp/slmrec_test_student_XXXXXX";
    write_temp(path, "", 0);
    student_save(path, &s, NULL, NULL);
    StudentFile f;
    student_load(&f, path);
    Student* t = &f.model;
    char who[64];
    snprintf(who, sizeof(who), "%s student, ed %.1f", STUDENT_NAMES[kind], ed);
    CHECK(memcmp(&t->cfg, &s.cfg, sizeof(StudentConfig)) == 0 && !f.has_state, "%s: the loaded configuration differs", who);
    CHECK(t->model_n == s.model_n && memcmp(t->model_params, s.model_params, s.model_n * sizeof(float)) == 0,
          "%s: the loaded parameters differ", who);
    CHECK(t->collab_n == s.collab_n && (s.collab_n == 0 ||
          (memcmp(t->collab_params, s.collab_params, s.collab_n * sizeof(float)) == 0 &&
           memcmp(t->e_T, s.e_T, (size_t)c.I * c.C * sizeof(float)) == 0)),
          "%s: the loaded embedding map or teacher table differs", who);
    student_forward(&s, student_X, ST_B, NULL);
    student_forward(t, student_X, ST_B, NULL);
    check_close(who, t->logits, s.logits, (size_t)ST_B * ST_I, 0.0f, 0.0f);
    student_file_free(&f);
    student_free(&s);
    unlink(path);
}

static void test_student_files(Rng* rng) {
    for (int kind = 0; kind < 3; kind++) {
        test_student_round_trip(rng, (StudentKind)kind, 0.0f);
        test_student_round_trip(rng, (StudentKind)kind, 0.5f);
    }
    // damaged files: one plain GRU4Rec file, cut short, read as another kind, with dims that disagree
    StudentConfig c = test_student_config(STUDENT_GRU4REC, 0.0f, 0.0f);
    Student s;
    test_student_make(&s, &c, rng);
    char path[] = "/tmp/slmrec_test_student_XXXXXX";
    write_temp(path, "", 0);
    student_save(path, &s, NULL, NULL);
    size_t len = 0;
    char* bytes = read_file(path, &len);
    char cut[] = "/tmp/slmrec_test_student_XXXXXX";
    write_temp(cut, bytes, len - 4);
    check_dies("a student file 4 bytes short", load_student_file, cut, "truncated");
    check_dies("a student file read as SASRec", load_sasrec_file, path, "dllm2rec student");
    char with_ed[] = "/tmp/slmrec_test_student_XXXXXX", bad_kind[] = "/tmp/slmrec_test_student_XXXXXX";
    write_temp(with_ed, "", 0);
    write_temp(bad_kind, "", 0);
    test_student_rewrite_dim(path, with_ed, 9, ST_C);  // C = 5
    int half;
    float_bits(&half, 0.5f);
    test_student_rewrite_dim(with_ed, with_ed, 8, half);  // ed = 0.5: an embedding map the payload lacks
    check_dies("a student file whose header says ed > 0 over a plain payload", load_student_file, with_ed, "ends inside");
    test_student_rewrite_dim(path, bad_kind, 0, 7);
    check_dies("a student file of kind 7", load_student_file, bad_kind, "the student kind is 7");
    // and a SASRec file read as a student
    SASRecConfig sc = {.I = ST_I, .D = ST_D, .L = 1, .NH = 2, .T = ST_T, .dropout = 0.0f};
    SASRec m;
    sasrec_build(&m, &sc);
    char sas[] = "/tmp/slmrec_test_student_XXXXXX";
    write_temp(sas, "", 0);
    sasrec_save(sas, &m, NULL, NULL);
    check_dies("a SASRec file read as a student", load_student_file, sas, "expected a dllm2rec student");
    sasrec_free(&m);
    unlink(path); unlink(cut); unlink(with_ed); unlink(bad_kind); unlink(sas);
    free(bytes);
    student_free(&s);
}

// ----------------------------------------------------------------------------
// the PyTorch oracle: GRU4Rec and Caser with the embedding map, both objectives

static void test_dllm2rec_oracle(void) {
    const char* path = "../shared/fixtures/dllm2rec_oracle.safetensors";
    if (access(path, R_OK) != 0) { skip("dllm2rec oracle fixture", "../shared/fixtures/dllm2rec_oracle.safetensors not found"); return; }
    OracleReport r = oracle_run_any(path, 0);
    CHECK(r.n_failed == 0 && r.n_tensors >= 74, "dllm2rec oracle: %d of %d tensors outside 1e-5 + 1e-4 |ref|",
          r.n_failed, r.n_tensors);
}

static void run_student_tests(void) {
    Rng rng;
    rng_seed(&rng, 2024);
    for (int with_ed = 0; with_ed <= 1; with_ed++) {
        float ed = with_ed ? 0.5f : 0.0f;
        test_student_gradients(&rng, STUDENT_GRU4REC, 0.0f, 0, ed);
        test_student_gradients(&rng, STUDENT_CASER, 0.0f, 0, ed);
        test_student_gradients(&rng, STUDENT_CASER, 0.3f, 41, ed);
        test_student_gradients(&rng, STUDENT_SASREC, 0.0f, 0, ed);
        test_student_gradients(&rng, STUDENT_SASREC, 0.3f, 43, ed);
    }
    test_dllm2rec_loss(&rng);
    test_student_init_scale(&rng);
    test_dllm2rec_samples(&rng);
    test_gru4rec_pads(&rng);
    test_student_refusals();
    test_student_files(&rng);
    test_dllm2rec_oracle();
}
