// test_sasrec.c: SASRec's backward against finite differences on every
// parameter tensor, without and with dropout (the masks redrawn from the same
// seed at every evaluation), the chunked loss against the same batch split in
// two, scoring against the loss, pads left out of the model, and a short training run.

static SASRecConfig test_sasrec_config(float dropout) {
    // odd shapes: T = 7, D = 6 over 3 heads of 2, 10 items
    SASRecConfig c = {.I = 11, .D = 6, .L = 2, .NH = 3, .T = 7, .dropout = dropout};
    return c;
}

typedef struct { SASRec* m; const int* X; const int* Y; int B; uint64_t seed; } SASRecCtx;
static void sasrec_fd(void* p, float* out) {
    SASRecCtx* c = p;
    Rng rng;
    rng_seed(&rng, c->seed);
    out[0] = sasrec_forward(c->m, c->X, c->Y, c->B, c->seed ? &rng : NULL);
}

// random left-padded histories (B, T) with their next-item targets; row b has b % T + 1 pads at most
static void test_sasrec_batch(Rng* rng, int B, int T, int I, int* X, int* Y) {
    for (int b = 0; b < B; b++) {
        int pads = rng_int(rng, T - 1);
        for (int t = 0; t < T; t++) {
            X[b * T + t] = t < pads ? 0 : 1 + rng_int(rng, I - 1);
            Y[b * T + t] = t < pads ? 0 : 1 + rng_int(rng, I - 1);
        }
    }
}

static void test_sasrec_gradients(Rng* rng, float dropout, uint64_t seed) {
    SASRecConfig c = test_sasrec_config(dropout);
    SASRec m;
    sasrec_build(&m, &c);
    sasrec_init_random(&m, rng);
    int B = 3, X[3 * 7], Y[3 * 7];
    test_sasrec_batch(rng, B, c.T, c.I, X, Y);
    SASRecCtx ctx = {&m, X, Y, B, seed};
    float one = 1.0f, loss;
    sasrec_fd(&ctx, &loss);
    sasrec_zero_grad(&m);
    sasrec_backward(&m);
    CHECK(loss > 0.0f && isfinite(loss), "sasrec loss %g is positive and finite", loss);
    FdLayer f = {sasrec_fd, &ctx, 1, &one};
    char who[64];
    snprintf(who, sizeof(who), "sasrec CE, dropout %.1f", dropout);
    // a smaller step than the layer tests: ReLU kinks bend the loss within 1e-2 of a point
    fd_check_params(who, &f, m.params_memory, m.grads_memory, m.param_sizes, SASREC_NUM_PARAMS, 1e-3f);
    sasrec_free(&m);
}

// one batch of 80 sequences = 2 chunks of target positions; the same rows as
// two batches of 40 must give the count-weighted mean loss and summed gradients
static void test_sasrec_chunks(Rng* rng) {
    SASRecConfig c = test_sasrec_config(0.0f);
    SASRec m;
    sasrec_build(&m, &c);
    sasrec_init_random(&m, rng);
    int B = 80, half = B / 2, N = B * c.T;
    int* X = (int*)mallocCheck(N * sizeof(int));
    int* Y = (int*)mallocCheck(N * sizeof(int));
    test_sasrec_batch(rng, B, c.T, c.I, X, Y);
    int count[2] = {0, 0}, total = 0;
    for (int n = 0; n < N; n++) { count[n >= N / 2] += Y[n] > 0; total += Y[n] > 0; }
    CHECK(total > SASREC_CE_CHUNK, "the test batch spans more than one loss chunk (%d targets)", total);
    float whole = sasrec_forward(&m, X, Y, B, NULL);
    sasrec_zero_grad(&m);
    sasrec_backward(&m);
    float* g_whole = test_zeros(m.num_params);
    memcpy(g_whole, m.grads_memory, m.num_params * sizeof(float));
    float* g_parts = test_zeros(m.num_params);
    double parts = 0.0;
    for (int h = 0; h < 2; h++) {
        float l = sasrec_forward(&m, X + h * half * c.T, Y + h * half * c.T, half, NULL);
        parts += (double)l * count[h] / total;
        sasrec_zero_grad(&m);
        sasrec_backward(&m);
        for (size_t i = 0; i < m.num_params; i++) g_parts[i] += m.grads_memory[i] * count[h] / total;
    }
    CHECK(fabs(whole - parts) < 1e-5 * (1.0 + fabs(parts)), "chunked loss %.7f = count-weighted halves %.7f", whole, parts);
    check_close("sasrec chunked gradient", g_whole, g_parts, m.num_params, 1e-6f, 1e-4f);
    // scoring: the loss of a target at the last position alone = -log softmax(score)[target]
    float* scores = test_zeros((size_t)2 * c.I);
    sasrec_last_forward(&m, X, 2, NULL, scores);
    int Ylast[2 * 7] = {0};
    Ylast[c.T - 1] = 5;
    Ylast[2 * c.T - 1] = 9;
    float ce = sasrec_forward(&m, X, Ylast, 2, NULL);
    double ref = 0.0;
    for (int b = 0; b < 2; b++) {
        const float* s = scores + (size_t)b * c.I;
        double mx = -INFINITY, z = 0.0;
        for (int i = 0; i < c.I; i++) mx = fmax(mx, s[i]);
        for (int i = 0; i < c.I; i++) z += exp(s[i] - mx);
        ref += (mx + log(z) - s[b ? 9 : 5]) / 2.0;
    }
    CHECK(fabs(ce - ref) < 1e-5 * (1.0 + fabs(ref)), "score_last agrees with the loss: %.7f vs %.7f", ce, ref);
    free(scores); free(g_whole); free(g_parts); free(X); free(Y);
    sasrec_free(&m);
}

// pads are not part of the model: a history scores the same behind more pads
// (a model with T = 9 whose last 7 positions are the T = 7 model's), and an
// empty history scores as LN_final of zero, i.e. lnf_b @ item_emb^T
static void test_sasrec_pads(Rng* rng) {
    SASRecConfig c7 = test_sasrec_config(0.0f), c9 = c7;
    c9.T = 9;
    SASRec m7, m9;
    sasrec_build(&m7, &c7);
    sasrec_build(&m9, &c9);
    sasrec_init_random(&m7, rng);
    sasrec_init_random(&m9, rng);
    rng_fill_normal(rng, m7.params.lnf_b, c7.D, 1.0f);  // torch starts it at 0: the empty-history check needs it nonzero
    for (int i = 0; i < SASREC_NUM_PARAMS; i++) {
        float** src = (float**)&m7.params + i;
        float** dst = (float**)&m9.params + i;
        size_t skip = i == 1 ? 2 * (size_t)c7.D : 0;  // pos_emb: positions 0, 1 of T = 9 are pads only
        memcpy(*dst + skip, *src, m7.param_sizes[i] * sizeof(float));
    }
    int X7[3 * 7] = {0, 0, 0, 4, 2, 9, 1, 3, 5, 7, 2, 2, 8, 6, 0, 0, 0, 0, 0, 0, 0};
    int X9[3 * 9] = {0};
    for (int b = 0; b < 3; b++) memcpy(X9 + b * 9 + 2, X7 + b * 7, 7 * sizeof(int));
    float* s7 = test_zeros((size_t)3 * c7.I);
    float* s9 = test_zeros((size_t)3 * c7.I);
    sasrec_last_forward(&m7, X7, 3, NULL, s7);
    sasrec_last_forward(&m9, X9, 3, NULL, s9);
    check_close("sasrec scores behind 2 more pads", s9, s7, (size_t)3 * c7.I, 1e-5f, 1e-5f);
    float* ref = test_zeros(c7.I);
    for (int i = 0; i < c7.I; i++) {
        for (int k = 0; k < c7.D; k++) ref[i] += m7.params.lnf_b[k] * m7.params.item_emb[(size_t)i * c7.D + k];
    }
    check_close("sasrec scores an empty history as lnf_b @ item_emb^T", s7 + 2 * c7.I, ref, c7.I, 1e-6f, 1e-5f);
    free(s7); free(s9); free(ref);
    sasrec_free(&m7);
    sasrec_free(&m9);
}

// a few Adam steps on one fixed batch drive its loss down
static void test_sasrec_learns(Rng* rng) {
    SASRecConfig c = test_sasrec_config(0.2f);
    SASRec m;
    sasrec_build(&m, &c);
    sasrec_init_random(&m, rng);
    Optimizer o;
    memset(&o, 0, sizeof(o));
    o.cfg = adamw_defaults();
    o.cfg.lr = o.cfg.min_lr = 1e-2f;
    o.cfg.weight_decay = 0.0f;
    optimizer_add(&o, m.params_memory, m.grads_memory, m.num_params);
    optimizer_ready(&o);
    int B = 8, X[8 * 7], Y[8 * 7];
    test_sasrec_batch(rng, B, c.T, c.I, X, Y);
    float first = 0.0f, last = 0.0f;
    for (int step = 0; step < 60; step++) {
        float l = sasrec_forward(&m, X, Y, B, rng);
        sasrec_zero_grad(&m);
        sasrec_backward(&m);
        optimizer_step(&o);
        if (step == 0) first = l;
        last = l;
    }
    CHECK(last < 0.7f * first, "60 Adam steps on one batch: loss %.3f -> %.3f", first, last);
    optimizer_free(&o);
    sasrec_free(&m);
}

// forward on one history of T = 7 item ids (arg), expected to be refused
static void test_sasrec_refused(void* history) {
    SASRecConfig c = test_sasrec_config(0.0f);
    SASRec m;
    sasrec_build(&m, &c);
    sasrec_forward(&m, (const int*)history, NULL, 1, NULL);
}

static void run_sasrec_tests(void) {
    Rng rng;
    rng_seed(&rng, 2026);
    test_sasrec_gradients(&rng, 0.0f, 0);
    test_sasrec_gradients(&rng, 0.3f, 77);
    test_sasrec_chunks(&rng);
    test_sasrec_pads(&rng);
    test_sasrec_learns(&rng);
    int out_of_table[7] = {0, 0, 1, 2, 3, 11, 4}, gap[7] = {0, 3, 1, 0, 2, 3, 4};
    check_dies("sasrec refuses an item id outside the table", test_sasrec_refused, out_of_table, "outside the item table");
    check_dies("sasrec refuses a pad after an item", test_sasrec_refused, gap, "left-padded");
}
