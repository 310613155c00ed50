// test_layers.c: every layer's backward against central finite differences at
// small odd shapes, the whole E4SRec and SLMRec losses likewise, AdamW against a
// hand-computed step, the oracle fixture, and refusal of malformed safetensors.
//
// Each layer is checked through the scalar loss L = sum(out * R) with a fixed
// random R, so dout = R. Finite differences use eps 1e-2 on float32 with the
// loss summed in double; a wrong gradient is off by O(1), so the tolerance
// 2e-3 + 2e-2 |ref| separates bugs from float32 rounding with room to spare.

#define FD_EPS 1e-2f
#define FD_ATOL 2e-3f
#define FD_RTOL 2e-2f

// a layer under test: forward writes out from the current parameters
typedef struct {
    void (*forward)(void* ctx, float* out);
    void* ctx;
    size_t nout;
    const float* R;  // (nout) the loss weights = dout
} FdLayer;

static double fd_loss(FdLayer* f, float* out) {
    f->forward(f->ctx, out);
    double s = 0.0;
    for (size_t i = 0; i < f->nout; i++) s += (double)out[i] * f->R[i];
    return s;
}

// compares analytic[i] with the central difference of the loss in x[i]
static void fd_check(const char* name, FdLayer* f, float* x, size_t n, const float* analytic) {
    float* out = (float*)mallocCheck(f->nout * sizeof(float));
    float* numeric = (float*)mallocCheck(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        float saved = x[i];
        x[i] = saved + FD_EPS;
        double lp = fd_loss(f, out);
        x[i] = saved - FD_EPS;
        double lm = fd_loss(f, out);
        x[i] = saved;
        numeric[i] = (float)((lp - lm) / (2.0 * FD_EPS));
    }
    check_close(name, analytic, numeric, n, FD_ATOL, FD_RTOL);
    free(out);
    free(numeric);
}

static float* test_randn(Rng* rng, size_t n, float std) {
    float* x = (float*)mallocCheck(n * sizeof(float));
    rng_fill_normal(rng, x, n, std);
    return x;
}

static float* test_zeros(size_t n) { return (float*)callocCheck(n, sizeof(float)); }

// ----------------------------------------------------------------------------
// per-layer contexts: the inputs and weights a forward reads

typedef struct { float *inp, *w, *b; int N, C, OC; } MatmulCtx;
static void matmul_fd(void* p, float* out) { MatmulCtx* c = p; matmul_forward(out, c->inp, c->w, c->b, c->N, c->C, c->OC); }

static void test_matmul(Rng* rng, int with_bias) {
    MatmulCtx c = {test_randn(rng, 7 * 12, 1), test_randn(rng, 5 * 12, 0.5f), with_bias ? test_randn(rng, 5, 1) : NULL, 7, 12, 5};
    float* R = test_randn(rng, 7 * 5, 1);
    float *dinp = test_zeros(7 * 12), *dw = test_zeros(5 * 12), *db = test_zeros(5);
    matmul_backward(dinp, dw, with_bias ? db : NULL, R, c.inp, c.w, c.N, c.C, c.OC);
    FdLayer f = {matmul_fd, &c, 7 * 5, R};
    fd_check("matmul dinp", &f, c.inp, 7 * 12, dinp);
    fd_check("matmul dweight", &f, c.w, 5 * 12, dw);
    if (with_bias) fd_check("matmul dbias", &f, c.b, 5, db);
    free(c.inp); free(c.w); free(c.b); free(R); free(dinp); free(dw); free(db);
}

// the blocked product against the plain loop (mm_reference): full panels and
// tiles, a tail panel, partial micro-panels, K over several blocks, each
// operand plain and transposed; and the same bits whatever the thread count.
// Its own RNG: the other tests keep their draws.
static void test_mm_accumulate(void) {
    Rng own;
    rng_seed(&own, 31);
    Rng* rng = &own;
    int shapes[][3] = {{1, 1, 5}, {9, 13, 32}, {17, 7, 48}, {3, 40, 70}, {20, 5, 3}, {101, 300, 45}, {130, 600, 33}};  // N, K, M
    int n_shapes = (int)(sizeof(shapes) / sizeof(shapes[0]));
    for (int s = 0; s < n_shapes; s++) {
        int N = shapes[s][0], K = shapes[s][1], M = shapes[s][2];
        float* a = test_randn(rng, (size_t)N * K, 1);
        float* at = test_zeros((size_t)K * N);  // a^T (K, N)
        for (int n = 0; n < N; n++) for (int k = 0; k < K; k++) at[(size_t)k * N + n] = a[(size_t)n * K + k];
        float* b = test_randn(rng, (size_t)K * M, 1);
        float* bt = test_zeros((size_t)M * K);  // b^T (M, K)
        for (int k = 0; k < K; k++) for (int m = 0; m < M; m++) bt[(size_t)m * K + k] = b[(size_t)k * M + m];
        float* start = test_randn(rng, (size_t)N * M, 1);
        float* ref = test_zeros((size_t)N * M);
        memcpy(ref, start, (size_t)N * M * sizeof(float));
        mm_reference(ref, a, K, 1, b, M, 1, N, K, M);
        for (int layout = 0; layout < 4; layout++) {
            int a_t = layout & 1, b_t = layout >> 1;
            float* out = test_zeros((size_t)N * M);
            memcpy(out, start, (size_t)N * M * sizeof(float));
            mm_accumulate(out, a_t ? at : a, a_t ? 1 : K, a_t ? N : 1, b_t ? bt : b, b_t ? 1 : M, b_t ? K : 1, N, K, M);
            char name[96];
            snprintf(name, sizeof(name), "mm_accumulate N=%d K=%d M=%d%s%s", N, K, M, a_t ? ", a transposed" : "",
                     b_t ? ", b transposed" : "");
            check_close(name, out, ref, (size_t)N * M, 1e-5f, 1e-5f);
            if (layout == 0) {  // one thread and every thread: the same bits
                float* one = test_zeros((size_t)N * M);
                memcpy(one, start, (size_t)N * M * sizeof(float));
#ifdef _OPENMP
                int threads = omp_get_max_threads();
                omp_set_num_threads(1);
#endif
                mm_accumulate(one, a, K, 1, b, M, 1, N, K, M);
#ifdef _OPENMP
                omp_set_num_threads(threads);
#endif
                CHECK(memcmp(one, out, (size_t)N * M * sizeof(float)) == 0, "%s: one thread gives other bits", name);
                free(one);
            }
            free(out);
        }
        free(a); free(at); free(b); free(bt); free(start); free(ref);
    }
}

typedef struct { float *table; int* ids; int N, C; } EmbCtx;
static void embedding_fd(void* p, float* out) { EmbCtx* c = p; embedding_forward(out, c->ids, c->table, c->N, c->C); }

static void test_embedding(Rng* rng) {
    int ids[7] = {3, 0, 3, 5, 1, 2, 3};  // repeats must accumulate
    EmbCtx c = {test_randn(rng, 6 * 12, 1), ids, 7, 12};
    float* R = test_randn(rng, 7 * 12, 1);
    float* dt = test_zeros(6 * 12);
    embedding_backward(dt, R, ids, 7, 12);
    FdLayer f = {embedding_fd, &c, 7 * 12, R};
    fd_check("embedding dtable", &f, c.table, 6 * 12, dt);
    free(c.table); free(R); free(dt);
}

typedef struct { float *inp, *w, *b, *mean, *rstd; int N, C; } NormCtx;
static void rmsnorm_fd(void* p, float* out) { NormCtx* c = p; rmsnorm_forward(out, c->rstd, c->inp, c->w, c->N, c->C, 1e-5f); }
static void layernorm_fd(void* p, float* out) { NormCtx* c = p; layernorm_forward(out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C, 1e-5f); }

static void test_norms(Rng* rng) {
    int N = 7, C = 12;
    NormCtx c = {test_randn(rng, N * C, 1), test_randn(rng, C, 1), test_randn(rng, C, 1), test_zeros(N), test_zeros(N), N, C};
    float* R = test_randn(rng, N * C, 1);
    float* out = test_zeros(N * C);
    float *dinp = test_zeros(N * C), *dw = test_zeros(C), *db = test_zeros(C);
    rmsnorm_forward(out, c.rstd, c.inp, c.w, N, C, 1e-5f);
    rmsnorm_backward(dinp, dw, R, c.inp, c.w, c.rstd, N, C);
    FdLayer f = {rmsnorm_fd, &c, (size_t)N * C, R};
    fd_check("rmsnorm dinp", &f, c.inp, N * C, dinp);
    fd_check("rmsnorm dweight", &f, c.w, C, dw);
    memset(dinp, 0, N * C * sizeof(float)); memset(dw, 0, C * sizeof(float));
    layernorm_forward(out, c.mean, c.rstd, c.inp, c.w, c.b, N, C, 1e-5f);
    layernorm_backward(dinp, dw, db, R, c.inp, c.w, c.mean, c.rstd, N, C);
    FdLayer g = {layernorm_fd, &c, (size_t)N * C, R};
    fd_check("layernorm dinp", &g, c.inp, N * C, dinp);
    fd_check("layernorm dweight", &g, c.w, C, dw);
    fd_check("layernorm dbias", &g, c.b, C, db);
    free(c.inp); free(c.w); free(c.b); free(c.mean); free(c.rstd); free(R); free(out); free(dinp); free(dw); free(db);
}

typedef struct { float* x; int* pos; int N, stride, heads; RopeTable table; } RopeCtx;
static void rope_fd(void* p, float* out) {
    RopeCtx* c = p;
    memcpy(out, c->x, (size_t)c->N * c->stride * sizeof(float));
    rope_forward(out, c->N, c->pos, c->stride, c->heads, &c->table);
}

static void test_rope(Rng* rng) {
    // 2 sequences of T=7 (positions 0..6 twice), rows of 5 heads of 4 plus 3 untouched trailing entries
    int pos[14];
    for (int n = 0; n < 14; n++) pos[n] = n % 7;
    RopeCtx c = {test_randn(rng, 14 * 23, 1), pos, 14, 23, 5, {0, 0, NULL, NULL}};
    rope_table_build(&c.table, 7, 4, 10000.0f);
    size_t n = (size_t)c.N * c.stride;
    float* R = test_randn(rng, n, 1);
    float* dx = (float*)mallocCheck(n * sizeof(float));
    memcpy(dx, R, n * sizeof(float));
    rope_backward(dx, c.N, c.pos, c.stride, c.heads, &c.table);
    FdLayer f = {rope_fd, &c, n, R};
    fd_check("rope dinp", &f, c.x, n, dx);
    // position 0 is the identity: HF's cos(0)=1, sin(0)=0
    float* out = test_zeros(n);
    rope_fd(&c, out);
    check_close("rope at position 0 is the identity", out, c.x, c.stride, 0.0f, 0.0f);
    free(c.x); free(R); free(dx); free(out);
    rope_table_free(&c.table);
}

// a sequence's attention split as E4SRec splits it (e4srec.h): its first q0 queries as a
// sequence of their own, then the queries from q0 on over every key. The same outputs bit
// for bit, and the two backwards add up to the whole one.
static void test_attention_queries(Rng* rng) {
    int T = 7, q0 = 3, NH = 4, KVH = 2, HS = 4, QKV = (NH + 2 * KVH) * HS, Q = NH * HS;
    float* qkv = test_randn(rng, (size_t)T * QKV, 1);
    float* dout = test_randn(rng, (size_t)T * Q, 1);
    float *out = test_zeros((size_t)T * Q), *att = test_zeros((size_t)NH * T * T), *dqkv = test_zeros((size_t)T * QKV);
    float *split = test_zeros((size_t)T * Q), *att_head = test_zeros((size_t)NH * q0 * q0), *att_rest = test_zeros((size_t)NH * T * T);
    float* dsplit = test_zeros((size_t)T * QKV);
    attention_forward(out, att, qkv, NULL, 1, T, NH, KVH, HS);
    attention_backward(dqkv, dout, qkv, att, 1, T, NH, KVH, HS);
    attention_forward(split, att_head, qkv, NULL, 1, q0, NH, KVH, HS);
    attention_forward_queries(split, att_rest, qkv, NULL, 1, T, q0, NH, KVH, HS);
    check_close("attention: the first queries alone, then the rest (bit for bit)", split, out, (size_t)T * Q, 0.0f, 0.0f);
    attention_backward(dsplit, dout, qkv, att_head, 1, q0, NH, KVH, HS);
    attention_backward_queries(dsplit, dout, qkv, att_rest, 1, T, q0, NH, KVH, HS);
    check_close("attention backward: the first queries' and the rest's add up to the whole", dsplit, dqkv, (size_t)T * QKV, 1e-6f, 1e-5f);
    free(qkv); free(dout); free(out); free(att); free(dqkv); free(split); free(att_head); free(att_rest); free(dsplit);
}

typedef struct { float *qkv, *att; int* mask; int B, T, NH, KVH, HS; } AttCtx;
static void attention_fd(void* p, float* out) {
    AttCtx* c = p;
    attention_forward(out, c->att, c->qkv, c->mask, c->B, c->T, c->NH, c->KVH, c->HS);
}

static void test_attention(Rng* rng, int NH, int KVH) {
    int B = 2, T = 7, HS = 4, QKV = (NH + 2 * KVH) * HS;
    int mask[14] = {1, 1, 0, 1, 1, 0, 1,   1, 1, 1, 1, 1, 1, 0};  // pads inside and at the end
    AttCtx c = {test_randn(rng, (size_t)B * T * QKV, 1), test_zeros((size_t)B * NH * T * T), mask, B, T, NH, KVH, HS};
    size_t nout = (size_t)B * T * NH * HS;
    float* R = test_randn(rng, nout, 1);
    float* out = test_zeros(nout);
    float* dqkv = test_zeros((size_t)B * T * QKV);
    attention_forward(out, c.att, c.qkv, mask, B, T, NH, KVH, HS);
    attention_backward(dqkv, R, c.qkv, c.att, B, T, NH, KVH, HS);
    FdLayer f = {attention_fd, &c, nout, R};
    char name[64];
    snprintf(name, sizeof(name), "attention dqkv (%d heads over %d kv heads)", NH, KVH);
    fd_check(name, &f, c.qkv, (size_t)B * T * QKV, dqkv);
    // the mask: probabilities are zero on future and padded keys, rows sum to 1
    int bad = 0;
    for (int b = 0; b < B; b++) for (int h = 0; h < NH; h++) for (int t = 0; t < T; t++) {
        const float* p = c.att + (((size_t)b * NH + h) * T + t) * T;
        float sum = 0.0f;
        for (int t2 = 0; t2 < T; t2++) {
            sum += p[t2];
            if ((t2 > t || !mask[b * T + t2]) && p[t2] != 0.0f) bad++;
        }
        if (fabsf(sum - 1.0f) > 1e-5f) bad++;
    }
    CHECK(bad == 0, "attention mask: %d probabilities on masked keys or rows not summing to 1", bad);
    free(c.qkv); free(c.att); free(R); free(out); free(dqkv);
}

typedef struct { float* x; int N, F; } PointCtx;
static void swiglu_fd(void* p, float* out) { PointCtx* c = p; swiglu_forward(out, c->x, c->N, c->F); }
static void relu_fd(void* p, float* out) { PointCtx* c = p; relu_forward(out, c->x, (size_t)c->N * c->F); }

static void test_pointwise(Rng* rng) {
    PointCtx c = {test_randn(rng, 7 * 2 * 5, 1), 7, 5};
    float* R = test_randn(rng, 7 * 2 * 5, 1);
    float* dx = test_zeros(7 * 2 * 5);
    swiglu_backward(dx, R, c.x, 7, 5);
    FdLayer f = {swiglu_fd, &c, 7 * 5, R};
    fd_check("swiglu dgateup", &f, c.x, 7 * 2 * 5, dx);
    // relu: keep inputs away from the kink so differences are exact
    for (int i = 0; i < 70; i++) if (fabsf(c.x[i]) < 0.05f) c.x[i] = 0.5f;
    float* out = test_zeros(70);
    relu_forward(out, c.x, 70);
    memset(dx, 0, 70 * sizeof(float));
    relu_backward(dx, R, out, 70);
    c.N = 7; c.F = 10;
    FdLayer g = {relu_fd, &c, 70, R};
    fd_check("relu dinp", &g, c.x, 70, dx);
    free(c.x); free(R); free(dx); free(out);
}

typedef struct { float *logits, *probs, *losses; int* targets; int N, I; } CeCtx;
static void ce_fd(void* p, float* out) {
    CeCtx* c = p;
    crossentropy_forward(out, c->probs, c->logits, c->targets, c->N, c->I);
}

static void test_crossentropy(Rng* rng) {
    int targets[5] = {3, 0, 10, 1, 7};  // 0 = pad row: no loss, no gradient
    CeCtx c = {test_randn(rng, 5 * 11, 2), test_zeros(5 * 11), test_zeros(5), targets, 5, 11};
    float* R = test_randn(rng, 5, 1);
    float* dl = test_zeros(5 * 11);
    crossentropy_forward(c.losses, c.probs, c.logits, targets, 5, 11);
    crossentropy_backward(dl, R, c.probs, targets, 5, 11);
    FdLayer f = {ce_fd, &c, 5, R};
    fd_check("crossentropy dlogits", &f, c.logits, 5 * 11, dl);
    CHECK(c.losses[1] == 0.0f, "crossentropy: a pad-target row has loss %g, expected 0", c.losses[1]);
    // one row by hand: logits (0, ln 2, ln 3) target 2 -> loss = -ln(3/6)
    float z[3] = {0.0f, logf(2.0f), logf(3.0f)}, p[3], loss;
    int t = 2;
    crossentropy_forward(&loss, p, z, &t, 1, 3);
    CHECK(fabsf(loss - logf(2.0f)) < 1e-6f, "crossentropy by hand: %g, expected ln 2", loss);
    // exp_fast against libm's on [-90, 88]: relative error, the flush to 0 below -87, NaN kept
    double worst = 0.0;
    for (int i = 0; i <= 1780000; i++) {
        float x = -90.0f + 1e-4f * (float)i, ref = expf(x), got = exp_fast(x);
        if (x >= -87.0f) worst = fmax(worst, fabs((double)got - ref) / ref);
        else if (got != 0.0f) worst = 1.0;
    }
    CHECK(worst < 5e-7 && isnan(exp_fast(NAN)) && exp_fast(-INFINITY) == 0.0f && isfinite(exp_fast(INFINITY)),
          "exp_fast: max relative error %.2e on [-87, 88], 0 below, NaN kept, inf clamped", worst);
    free(c.logits); free(c.probs); free(c.losses); free(R); free(dl);
}

typedef struct { float *a, *b; int B, C; int which; } KdCtx;
static void kd_fd(void* p, float* out) {
    KdCtx* c = p;
    out[0] = c->which == 0 ? kd_cosine_forward(c->a, c->b, c->B, c->C) : kd_l2_forward(c->a, c->b, c->B, c->C);
}

static void test_kd(Rng* rng) {
    KdCtx c = {test_randn(rng, 3 * 12, 1), test_randn(rng, 3 * 12, 1), 3, 12, 0};
    float R = 1.7f;
    float* da = test_zeros(36);
    kd_cosine_backward(da, R, c.a, c.b, 3, 12);
    FdLayer f = {kd_fd, &c, 1, &R};
    fd_check("kd cosine da", &f, c.a, 36, da);
    memset(da, 0, 36 * sizeof(float));
    c.which = 1;
    kd_l2_backward(da, R, c.a, c.b, 3, 12);
    fd_check("kd l2 da", &f, c.a, 36, da);
    // by hand: a = (3, 0), b = (0, 4): cos = 0 -> 1; ||a - b|| = 5
    float a[2] = {3, 0}, b[2] = {0, 4};
    CHECK(kd_cosine_forward(a, b, 1, 2) == 1.0f && kd_l2_forward(a, b, 1, 2) == 5.0f, "kd by hand: cosine and l2 terms");
    // an all-zero student state: the forward clamps |x||y| at 1e-8, the gradient is y / 1e-8 (not NaN)
    float zero[2] = {0, 0}, dzero[2] = {0, 0};
    kd_cosine_backward(dzero, 1.0f, zero, b, 1, 2);
    CHECK(dzero[0] == 0.0f && dzero[1] == -4.0f / 1e-8f, "kd cosine gradient at an all-zero state: got (%g, %g), want (0, %g)",
          dzero[0], dzero[1], -4.0f / 1e-8f);
    free(c.a); free(c.b); free(da);
}

// ----------------------------------------------------------------------------
// whole models: E4SRec CE and the SLMRec loss, finite differences on every parameter tensor

static E4SRecConfig test_tiny_config(int L) {
    // odd shapes: T = 3 + 5 + 2 = 10, C = 12, 3 heads over 1 kv head of 4, F = 10
    E4SRecConfig c = {.V = 17, .C = 12, .F = 10, .L = L, .NH = 3, .KVH = 1, .HS = 4, .D = 6, .I = 9,
                      .P1 = 3, .P2 = 2, .S = 5, .rms_eps = 1e-5f, .rope_theta = 10000.0f};
    return c;
}

typedef struct { SLMRec* slm; E4SRec* model; const int* items; const int* targets; int B; } ModelCtx;

// the gradients of the model's own loss (e4srec_forward's) into m->grads
static void e4srec_gradients(E4SRec* m, const int* items, const int* targets, int B) {
    e4srec_forward(m, items, targets, B);
    e4srec_zero_grad(m);
    e4srec_ce_backward(m, 1.0f);
    e4srec_backward(m);
}
static void e4srec_fd(void* p, float* out) { ModelCtx* c = p; out[0] = e4srec_forward(c->model, c->items, c->targets, c->B); }
static void slmrec_fd(void* p, float* out) { ModelCtx* c = p; out[0] = slmrec_forward(c->slm, c->items, c->targets, c->B).total; }

// finite differences on a strided sample of each parameter tensor (every element for small ones)
static void fd_check_params(const char* who, FdLayer* f, float* p, const float* g, const size_t* sizes, int n_tensors,
                            float eps) {
    char name[96];
    float* out = test_zeros(f->nout);
    for (int t = 0; t < n_tensors; t++) {
        size_t n = sizes[t], stride = n > 60 ? n / 60 : 1, k = 0;
        float* analytic = test_zeros(n / stride + 1);
        float* numeric = test_zeros(n / stride + 1);
        for (size_t i = 0; i < n; i += stride, k++) {
            float saved = p[i];
            p[i] = saved + eps; double lp = fd_loss(f, out);
            p[i] = saved - eps; double lm = fd_loss(f, out);
            p[i] = saved;
            numeric[k] = (float)((lp - lm) / (2.0 * eps));
            analytic[k] = g[i];
        }
        snprintf(name, sizeof(name), "%s param tensor %d", who, t);
        check_close(name, analytic, numeric, k, FD_ATOL, FD_RTOL);
        free(analytic); free(numeric);
        p += n;
        g += n;
    }
    free(out);
}

// the every-position CE (method.md 4.6): its targets by hand, its value alone vs in a
// batch (the packing keeps samples apart), and finite differences on every parameter
static void test_position_ce(const E4SRecConfig* cfg, const float* table, const int* instr, const int* resp,
                             const int* items, const int* targets) {
    Rng rng;  // its own stream: the draws of the tests around it stay as they were
    rng_seed(&rng, 22);
    E4SRec m;
    e4srec_build(&m, cfg, table, instr, resp);
    e4srec_init_random(&m, &rng);
    for (size_t i = 0; i < m.num_params; i++) m.params_memory[i] += 0.3f * rng_normal(&rng);
    e4srec_set_position_ce(&m, 0.7f);
    float loss = e4srec_forward(&m, items, targets, 3);
    // histories {_ _ 3 8 2} {1 2 3 4 5} {_ _ _ _ 6}, targets 4 8 1: each item is scored against the next, the last against the target
    int want[9] = {8, 2, 4, 2, 3, 4, 5, 8, 1};
    CHECK(m.R_it == 9 && memcmp(m.pos_targets, want, sizeof(want)) == 0,
          "position CE targets: got %d items, first %d %d %d (want 9 items: 8 2 4 2 3 4 5 8 1)", m.R_it, m.pos_targets[0],
          m.pos_targets[1], m.pos_targets[2]);
    double last_ce = (m.losses[0] + m.losses[1] + m.losses[2]) / 3.0;
    CHECK(fabs(loss - (last_ce + 0.7 * m.pos_ce)) < 1e-5, "position CE: loss %g = last-token CE %g + 0.7 x %g", loss, last_ce, m.pos_ce);
    // alone vs in the batch: the batch's mean is the item-weighted mean of each sample's own
    double sum = 0.0;
    int n_items[3] = {3, 5, 1};
    float batched = m.pos_ce;
    for (int b = 0; b < 3; b++) {
        e4srec_forward(&m, items + b * 5, targets + b, 1);
        sum += (double)m.pos_ce * n_items[b];
    }
    CHECK(fabs(sum / 9.0 - batched) < 1e-5 * fabs(batched), "position CE: a sample alone vs in a batch: %g vs %g", sum / 9.0, batched);
    e4srec_gradients(&m, items, targets, 3);
    float one = 1.0f;
    ModelCtx ctx = {NULL, &m, items, targets, 3};
    FdLayer f = {e4srec_fd, &ctx, 1, &one};
    // a finer step than FD_EPS: this loss bends more, and at 1e-2 the central difference's own
    // truncation error reaches the tolerance on an element of rms1 (at 5e-3 and 2e-3 all agree)
    fd_check_params("e4srec CE + 0.7 position CE", &f, m.params_memory, m.grads_memory, m.param_sizes, E4SREC_NUM_PARAMS, 5e-3f);
    e4srec_free(&m);
}

// decoder dropout (method.md 4.8): the masks hold 0 or 1/(1-p) at about the rate p; a seed
// draws the same masks again and another seed others; inference and a frozen model see
// none; finite differences through fixed masks (the same seed every forward), with the
// every-position CE on, which reads the final state at every item row
static void test_e4srec_dropout(const E4SRecConfig* cfg, const float* table, const int* instr, const int* resp,
                                const int* items, const int* targets) {
    Rng rng;
    rng_seed(&rng, 24);
    E4SRec m;
    e4srec_build(&m, cfg, table, instr, resp);
    e4srec_init_random(&m, &rng);
    for (size_t i = 0; i < m.num_params; i++) m.params_memory[i] += 0.3f * rng_normal(&rng);
    float plain_logits[3 * 9];
    e4srec_forward(&m, items, NULL, 3);
    memcpy(plain_logits, m.acts.logits, sizeof(plain_logits));
    float plain_loss = e4srec_forward(&m, items, targets, 3);
    e4srec_set_dropout(&m, 0.3f);
    e4srec_set_position_ce(&m, 0.5f);
    m.dropout_seed = 7;
    float loss = e4srec_forward(&m, items, targets, 3);
    size_t n_masks = (size_t)(2 * cfg->L + 1) * m.R * cfg->C, zeros = 0, odd = 0, RC = (size_t)m.R * cfg->C;
    const float* masks[3] = {m.acts.drop_in, m.acts.drop_att, m.acts.drop_mlp};
    size_t lengths[3] = {RC, (size_t)cfg->L * RC, (size_t)cfg->L * RC};  // each layer's slab is R rows: contiguous
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < lengths[k]; i++) {
            zeros += masks[k][i] == 0.0f;
            odd += masks[k][i] != 0.0f && masks[k][i] != 1.0f / 0.7f;
        }
    }
    double rate = (double)zeros / n_masks;
    CHECK(m.dropped && odd == 0 && rate > 0.25 && rate < 0.35, "dropout masks: %zu of %zu zero (%.3f, want about 0.3), %zu neither 0 nor 1/0.7",
          zeros, n_masks, rate, odd);
    // each element is dropout_mask_at of its row's (site, sample, position): the CUDA twin computes the same function
    size_t C = (size_t)cfg->C, own = (size_t)m.row_start[1];
    float want_instr = dropout_mask_at(dropout_row_key(7, E4SREC_SITE_ATT(1), -1, 2), 5, 0.3f);
    float want_own = dropout_mask_at(dropout_row_key(7, E4SREC_SITE_MLP(0), 1, m.pos[own]), 3, 0.3f);
    CHECK(m.acts.drop_att[RC + 2 * C + 5] == want_instr && m.acts.drop_mlp[own * C + 3] == want_own,
          "dropout masks are dropout_mask_at of (site, sample, position, channel): %g %g, want %g %g",
          m.acts.drop_att[RC + 2 * C + 5], m.acts.drop_mlp[own * C + 3], want_instr, want_own);
    CHECK(loss == e4srec_forward(&m, items, targets, 3), "dropout: the same seed draws the same masks");
    m.dropout_seed = 8;
    float other = e4srec_forward(&m, items, targets, 3);
    CHECK(other != loss && loss != plain_loss, "dropout: another seed, other masks (losses %g, %g; without dropout %g)", loss, other, plain_loss);
    e4srec_forward(&m, items, NULL, 3);
    check_close("dropout: inference draws no mask (bit for bit)", m.acts.logits, plain_logits, 27, 0.0f, 0.0f);
    CHECK(!m.dropped, "dropout: an inference forward is marked as not dropped");
    m.dropout_seed = 7;
    e4srec_gradients(&m, items, targets, 3);
    float one = 1.0f;
    ModelCtx ctx = {NULL, &m, items, targets, 3};
    FdLayer f = {e4srec_fd, &ctx, 1, &one};
    fd_check_params("e4srec CE + 0.5 position CE, dropout 0.3", &f, m.params_memory, m.grads_memory, m.param_sizes,
                    E4SREC_NUM_PARAMS, 5e-3f);
    e4srec_freeze(&m);  // a frozen model (offline distillation's teacher) draws none, even with targets
    e4srec_forward(&m, items, targets, 3);
    check_close("dropout: a frozen model's training forward draws no mask (bit for bit)", m.acts.logits, plain_logits, 27, 0.0f, 0.0f);
    e4srec_free(&m);
}

// no response prompt and an empty history: the sample has no row of its own, and its
// last token is the instruction's last. Alone or in a batch, training forward or
// inference, it scores the same (the instruction's rows are every sample's)
static void test_e4srec_no_own_rows(const float* table, const int* instr) {
    E4SRecConfig c = test_tiny_config(2);
    c.P2 = 0;
    Rng rng;
    rng_seed(&rng, 23);
    E4SRec m;
    e4srec_build(&m, &c, table, instr, NULL);
    e4srec_init_random(&m, &rng);
    for (size_t i = 0; i < m.num_params; i++) m.params_memory[i] += 0.3f * rng_normal(&rng);
    int items[3 * 5] = {0, 0, 3, 8, 2,   0, 0, 0, 0, 0,   1, 2, 3, 4, 5}, targets[3] = {4, 8, 1};
    float batched[3 * 9], alone[9], trained[3 * 9];
    e4srec_forward(&m, items, NULL, 3);
    memcpy(batched, m.acts.logits, sizeof(batched));
    e4srec_forward(&m, items + 5, NULL, 1);
    memcpy(alone, m.acts.logits, sizeof(alone));
    e4srec_forward(&m, items, targets, 3);
    memcpy(trained, m.acts.logits, sizeof(trained));
    check_close("e4srec without a response prompt: an empty history alone vs in a batch (bit for bit)", alone, batched + 9, 9, 0.0f, 0.0f);
    check_close("e4srec without a response prompt: inference vs the training forward (bit for bit)", trained, batched, 27, 0.0f, 0.0f);
    // two such samples share the instruction's last row: their gradients add there. With dropout,
    // whose masks look up each row's sample past the empty ones
    int items4[4 * 5] = {0, 0, 3, 8, 2,   0, 0, 0, 0, 0,   0, 0, 0, 0, 0,   1, 2, 3, 4, 5}, targets4[4] = {4, 8, 2, 1};
    e4srec_set_dropout(&m, 0.3f);
    m.dropout_seed = 9;
    e4srec_gradients(&m, items4, targets4, 4);
    float one = 1.0f;
    ModelCtx ctx = {NULL, &m, items4, targets4, 4};
    FdLayer f = {e4srec_fd, &ctx, 1, &one};
    fd_check_params("e4srec, two samples without a row of their own, dropout 0.3", &f, m.params_memory, m.grads_memory,
                    m.param_sizes, E4SREC_NUM_PARAMS, FD_EPS);
    e4srec_free(&m);
}

static void test_models(Rng* rng) {
    E4SRecConfig tc = test_tiny_config(4), sc = test_tiny_config(2);
    float* table = test_randn(rng, (size_t)tc.I * tc.D, 1.0f);
    int instr[3] = {1, 5, 16}, resp[2] = {7, 5};
    int items[3 * 5] = {0, 0, 3, 8, 2,   1, 2, 3, 4, 5,   0, 0, 0, 0, 6};  // left padding as training uses
    int targets[3] = {4, 8, 1};
    E4SRec teacher, student;
    e4srec_build(&teacher, &tc, table, instr, resp);
    e4srec_build(&student, &sc, table, instr, resp);
    e4srec_init_random(&teacher, rng);
    e4srec_init_random(&student, rng);
    // larger weights than the 0.02 init so every path carries signal
    for (size_t i = 0; i < teacher.num_params; i++) teacher.params_memory[i] += 0.3f * rng_normal(rng);
    for (size_t i = 0; i < student.num_params; i++) student.params_memory[i] += 0.3f * rng_normal(rng);
    float one = 1.0f;

    e4srec_gradients(&teacher, items, targets, 3);
    ModelCtx tctx = {NULL, &teacher, items, targets, 3};
    FdLayer ft = {e4srec_fd, &tctx, 1, &one};
    fd_check_params("e4srec CE", &ft, teacher.params_memory, teacher.grads_memory, teacher.param_sizes, E4SREC_NUM_PARAMS, FD_EPS);

    // pads are packed away: a sample scores the same alone as beside others with other padding
    float alone[3][9], batched[3 * 9];
    e4srec_forward(&teacher, items, NULL, 3);
    memcpy(batched, teacher.acts.logits, sizeof(batched));
    for (int b = 0; b < 3; b++) {
        e4srec_forward(&teacher, items + b * 5, NULL, 1);
        memcpy(alone[b], teacher.acts.logits, sizeof(alone[b]));
    }
    check_close("e4srec: a sample alone vs in a batch (bit for bit)", &alone[0][0], batched, 27, 0.0f, 0.0f);
    // inference runs the last layer for the last tokens only: the same scores and last-token states, bit for bit
    float last_infer[5 * 3 * 12];
    e4srec_forward(&teacher, items, NULL, 3);
    memcpy(last_infer, teacher.acts.last, sizeof(last_infer));
    e4srec_forward(&teacher, items, targets, 3);
    check_close("e4srec: inference's last-token shortcut vs the training forward, logits", teacher.acts.logits, batched, 27, 0.0f, 0.0f);
    check_close("e4srec: inference's last-token shortcut vs the training forward, states", teacher.acts.last, last_infer,
                5 * 3 * 12, 0.0f, 0.0f);
    test_position_ce(&tc, table, instr, resp, items, targets);
    test_e4srec_no_own_rows(table, instr);
    test_e4srec_dropout(&sc, table, instr, resp, items, targets);
    // the instruction's rows are computed once and collect every sample's gradient: in
    // sample order, so the gradients are the same bits at any thread count
#ifdef _OPENMP
    float* grads_1 = test_zeros(teacher.num_params);
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    e4srec_gradients(&teacher, items, targets, 3);
    memcpy(grads_1, teacher.grads_memory, teacher.num_params * sizeof(float));
    omp_set_num_threads(3);
    e4srec_gradients(&teacher, items, targets, 3);
    omp_set_num_threads(threads);
    check_close("e4srec: gradients at 1 and 3 threads (bit for bit)", teacher.grads_memory, grads_1, teacher.num_params, 0.0f, 0.0f);
    free(grads_1);
#endif
    SLMRec slm;
    slmrec_build(&slm, &student, &teacher, 2, 1.0f, 0.1f, 1.0f, rng);
    for (size_t i = 0; i < slm.num_adapter_params; i++) slm.adapters[i] += 0.3f * rng_normal(rng);
    slmrec_forward(&slm, items, targets, 3);
    slmrec_backward(&slm);
    ModelCtx sctx = {&slm, &student, items, targets, 3};
    FdLayer fs = {slmrec_fd, &sctx, 1, &one};
    fd_check_params("slmrec loss", &fs, student.params_memory, student.grads_memory, student.param_sizes, E4SREC_NUM_PARAMS, FD_EPS);
    float* dad = test_zeros(slm.num_adapter_params);
    memcpy(dad, slm.dadapters, slm.num_adapter_params * sizeof(float));
    fd_check("slmrec loss adapters", &fs, slm.adapters, slm.num_adapter_params, dad);
    SLMRecLosses l = slm.losses;
    CHECK(fabsf(l.total - (l.ce + l.dcos + 0.1f * l.dnorm + l.lms)) < 1e-5f, "slmrec total = ce + lambda_cos dcos + lambda_norm dnorm + lambda_ms lms");
    free(dad);
    slmrec_free(&slm);
    e4srec_free(&student);
    e4srec_free(&teacher);
    free(table);
}

// ----------------------------------------------------------------------------
// AdamW against a step computed by hand, and the schedule

static void test_adamw(void) {
    // two parameters, lr 0.1, betas (0.9, 0.999), eps 1e-8, weight decay 0.5, step t=1:
    //   m = 0.1 g, v = 0.001 g^2, mhat = g, vhat = g^2, update = g/(|g| + 1e-8) ~ sign(g)
    //   p = 2.0, g = 4.0: 2.0 - 0.1 * (1 + 0.5 * 2.0) = 1.8
    //   p = -1.0, g = -0.5: -1.0 - 0.1 * (-1 + 0.5 * -1.0) = -0.85
    AdamWConfig c = adamw_defaults();
    c.lr = 0.1f; c.weight_decay = 0.5f;
    float p[2] = {2.0f, -1.0f}, g[2] = {4.0f, -0.5f}, m[2] = {0}, v[2] = {0};
    adamw_update(p, g, m, v, 2, &c, c.lr, 1, 1.0f);
    float expect[2] = {1.8f, -0.85f};
    check_close("adamw step 1 by hand", p, expect, 2, 1e-6f, 1e-6f);
    // step 2 with g = (1, 1) on p = 1.8: m = 0.09*4... computed: m = 0.9*0.4 + 0.1*1 = 0.46, v = 0.999*0.016 + 0.001 = 0.016984
    //   mhat = 0.46/0.19 = 2.421053, vhat = 0.016984/0.001999 = 8.496248, update = 2.421053/2.914832 = 0.830600
    //   p = 1.8 - 0.1 * (0.830600 + 0.9) = 1.626940
    float g2[2] = {1.0f, 1.0f};
    adamw_update(p, g2, m, v, 2, &c, c.lr, 2, 1.0f);
    CHECK(fabsf(p[0] - 1.626940f) < 1e-5f, "adamw step 2 by hand: %.6f, expected 1.626940", p[0]);
    // clipping: norm 5 clipped to 1 -> scale 1/(5+1e-6)
    float gg[2] = {3.0f, 4.0f};
    CHECK(fabsf(clip_scale(grad_sumsq(gg, 2), 1.0f) - 0.2f) < 1e-6f, "clip scale for norm 5 at clip 1");
    CHECK(clip_scale(grad_sumsq(gg, 2), 10.0f) == 1.0f, "no clipping below the limit");
    // schedule: warmup 10 steps to 1e-3, cosine to 1e-4 at step 110
    AdamWConfig s = adamw_defaults();
    s.lr = 1e-3f; s.min_lr = 1e-4f; s.warmup = 10; s.total_steps = 110;
    CHECK(fabsf(lr_at(&s, 0) - 1e-4f) < 1e-9f && fabsf(lr_at(&s, 9) - 1e-3f) < 1e-9f, "warmup is linear to the peak");
    CHECK(fabsf(lr_at(&s, 60) - 5.5e-4f) < 1e-8f && fabsf(lr_at(&s, 110) - 1e-4f) < 1e-9f, "cosine midpoint and floor");
}

// ----------------------------------------------------------------------------
// the HF oracle, and malformed safetensors files

static void test_oracle(void) {
    const char* path = "../shared/fixtures/slmrec_oracle.safetensors";
    if (access(path, R_OK) != 0) { skip("oracle fixture", "../shared/fixtures/slmrec_oracle.safetensors not found"); return; }
    OracleReport r = oracle_run(path, 0);
    CHECK(r.n_failed == 0 && r.n_tensors >= 80, "oracle: %d of %d tensors outside 1e-5 + 1e-4 |ref|", r.n_failed, r.n_tensors);
}

static void open_safetensors(void* path) { Safetensors st; st_open(&st, (const char*)path); }
static void read_safetensors_table(void* path) { Safetensors st; st_open(&st, (const char*)path); st_shape(&st, "a", 2); }
static void open_oracle_fixture(void* path) { OracleFixture f; oracle_fixture_open(&f, (const char*)path); }

static void test_bad_safetensors(void) {
    struct { const char* what; const char* header; size_t data_bytes; const char* expect; } cases[] = {
        {"offsets past the data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "outside"},
        {"shape and bytes disagree", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "need"},
        {"unknown dtype", "{\"a\":{\"dtype\":\"F8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, "not supported"},
        {"broken JSON", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8}}", 8, "malformed"},
        {"tensors sharing bytes", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "tensors 'a' and 'b' overlap"},
        {"missing field", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "lacks"},
        {"a shape whose byte size overflows", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,1],\"data_offsets\":[0,0]}}", 0,
         "byte size overflows"},
        {"metadata nested 100 deep",
         "{\"__metadata__\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
         "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", 0, "nested deeper than 64"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t hl = strlen(cases[i].header);
        char* bytes = (char*)callocCheck(8 + hl + cases[i].data_bytes, 1);
        uint64_t h64 = hl;
        memcpy(bytes, &h64, 8);
        memcpy(bytes + 8, cases[i].header, hl);
        char path[] = "/tmp/slmrec_bad_XXXXXX";
        write_temp(path, bytes, 8 + hl + cases[i].data_bytes);
        check_dies(cases[i].what, open_safetensors, path, cases[i].expect);
        unlink(path);
        free(bytes);
    }
    char tiny[] = "/tmp/slmrec_bad_XXXXXX";
    write_temp(tiny, "abc", 3);
    check_dies("a 3-byte file", open_safetensors, tiny, "too short");
    unlink(tiny);
    char huge[] = "/tmp/slmrec_bad_XXXXXX";
    uint64_t big = 1u << 30;
    char hb[16] = {0};
    memcpy(hb, &big, 8);
    write_temp(huge, hb, 16);
    check_dies("header length beyond the file", open_safetensors, huge, "does not fit");
    unlink(huge);
    // a tensor read for its shape: the rank it should have, no empty dimension
    struct { const char* what; const char* header; const char* expect; } shapes[] = {
        {"an empty tensor where a table is read", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0,6],\"data_offsets\":[0,0]}}", "dimension 0 of size 0"},
        {"a 1-D tensor where 2-D is read", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "has 1 dimensions, expected 2"},
    };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        size_t hl = strlen(shapes[i].header);
        char bytes[256] = {0};
        uint64_t h64 = hl;
        memcpy(bytes, &h64, 8);
        memcpy(bytes + 8, shapes[i].header, hl);
        char path[] = "/tmp/slmrec_bad_XXXXXX";
        write_temp(path, bytes, 8 + hl + 8);
        check_dies(shapes[i].what, read_safetensors_table, path, shapes[i].expect);
        unlink(path);
    }
    // copies of the real fixture: cut in half, an id out of range, a damaged sidecar
    const char* fixture = "../shared/fixtures/slmrec_oracle.safetensors";
    if (access(fixture, R_OK) != 0) { skip("damaged copies of the oracle fixture", "../shared/fixtures not found"); return; }
    size_t len = 0, json_len = 0;
    char* all = read_file(fixture, &len);
    char* sidecar = read_file("../shared/fixtures/slmrec_oracle.json", &json_len);
    char cut[] = "/tmp/slmrec_bad_XXXXXX";
    write_temp(cut, all, len / 2);
    check_dies("the fixture cut in half", open_safetensors, cut, "outside");
    unlink(cut);
    const char* copy = "/tmp/slmrec_bad_fixture.safetensors";
    const char* copy_json = "/tmp/slmrec_bad_fixture.json";
    Safetensors st;
    st_open(&st, fixture);
    size_t target_at = (size_t)(st.data - st.file) + st_find(&st, "inputs.target")->begin;
    st_close(&st);
    int32_t bad_target = 99999, saved;
    memcpy(&saved, all + target_at, 4);
    memcpy(all + target_at, &bad_target, 4);
    test_write(copy, all, len);
    test_write(copy_json, sidecar, json_len);
    check_dies("a fixture whose target is not an item", open_oracle_fixture, (void*)copy, "inputs.target[0] is 99999, expected an id in 1..");
    memcpy(all + target_at, &saved, 4);
    test_write(copy, all, len);
    char* lam = strstr(sidecar, "\"lambdas\"");
    if (lam) {
        char* bracket = strchr(lam, '[');
        *bracket = '7';  // "lambdas": 7 1.0, ...]: no array
        test_write(copy_json, sidecar, json_len);
        check_dies("a sidecar whose lambdas are not an array", open_oracle_fixture, (void*)copy, "\"lambdas\" should be an array of 3 numbers");
    }
    unlink(copy);
    unlink(copy_json);
    free(all);
    free(sidecar);
}

static void run_layer_tests(void) {
    Rng rng;
    rng_seed(&rng, 1234);
    test_matmul(&rng, 1);
    test_matmul(&rng, 0);
    test_embedding(&rng);
    test_norms(&rng);
    test_rope(&rng);
    test_attention(&rng, 3, 1);
    test_attention(&rng, 4, 2);
    test_attention(&rng, 2, 2);
    test_attention_queries(&rng);
    test_pointwise(&rng);
    test_mm_accumulate();
    test_crossentropy(&rng);
    test_kd(&rng);
    test_models(&rng);
    test_adamw();
    test_oracle();
    test_bad_safetensors();
}
