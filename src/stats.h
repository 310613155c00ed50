// stats.h: is model A better than model B on the same test users, or is the
// difference within what the choice of users explains? (method.md 7.5)
//
// The paired bootstrap: d_u = a_u - b_u, each user's difference of full NDCG@10
// between the two models. Draw n users with replacement, take the mean of their
// d_u; repeat R times; the 95% interval is the 2.5th and 97.5th percentile of
// those R means. A beats B when the interval lies above 0, loses when it lies
// below, and it is a tie when the interval holds 0.
#pragma once
#include "utils.h"

#define BOOTSTRAP_RESAMPLES 10000
#define BOOTSTRAP_SEED 20261206

typedef struct {
    int n;                   // users
    double mean_a, mean_b;   // each model's mean
    double diff;             // mean_a - mean_b
    double lo, hi;           // the 95% percentile interval of the resampled mean difference
} PairedDiff;

static int compare_doubles(const void* x, const void* y) {
    double a = *(const double*)x, b = *(const double*)y;
    return (a > b) - (a < b);
}

// a (n), b (n): the two models' values on the same n users, in the same order
static PairedDiff paired_bootstrap(const float* a, const float* b, int n, int resamples, uint64_t seed) {
    if (n < 1 || resamples < 1) die("paired_bootstrap: %d users, %d resamples", n, resamples);
    PairedDiff p = {.n = n};
    double* d = (double*)mallocCheck((size_t)n * sizeof(double));  // (n) per-user differences
    for (int u = 0; u < n; u++) {
        d[u] = (double)a[u] - (double)b[u];
        p.mean_a += a[u];
        p.mean_b += b[u];
    }
    p.mean_a /= n;
    p.mean_b /= n;
    p.diff = p.mean_a - p.mean_b;
    double* means = (double*)mallocCheck((size_t)resamples * sizeof(double));  // (R) resampled mean differences
    Rng rng;
    rng_seed(&rng, seed);
    for (int r = 0; r < resamples; r++) {
        double sum = 0.0;
        for (int i = 0; i < n; i++) sum += d[rng_int(&rng, n)];
        means[r] = sum / n;
    }
    qsort(means, resamples, sizeof(double), compare_doubles);
    p.lo = means[(int)(0.025 * resamples)];
    p.hi = means[min_int(resamples - 1, (int)(0.975 * resamples))];
    free(means);
    free(d);
    return p;
}

// "better", "worse" or "tie": where the interval lies against 0
static const char* paired_verdict(const PairedDiff* p) { return p->lo > 0.0 ? "better" : p->hi < 0.0 ? "worse" : "tie"; }

// ----------------------------------------------------------------------------
// per-user files: <out>/<model>.test_ndcg.tsv, one "user<TAB>value" line per test
// user in the data's order after a '#' header line, so that two runs' models can
// be compared later (./slmrec compare)

// split: "test" or "valid", for the header
static void per_user_write(const char* path, const char* model, const char* split, const int* user_ids, const float* values, int n) {
    OutFile o;
    outfile_open(&o, path);
    fprintf(o.f, "# full NDCG@10 of each user's %s target, model %s: user id, value\n", split, model);
    for (int u = 0; u < n; u++) fprintf(o.f, "%d\t%.6f\n", user_ids[u], values[u]);
    outfile_commit(&o);
}

typedef struct {
    int n;
    int* user_ids;  // (n)
    float* values;  // (n)
} PerUser;

static void per_user_read(PerUser* p, const char* path) {
    size_t len = 0;
    char* text = read_file(path, &len);
    if (memchr(text, 0, len)) die("'%s': a binary file, expected the text of a .test_ndcg.tsv file", path);
    int cap = 1024, line = 0;
    p->n = 0;
    p->user_ids = (int*)mallocCheck((size_t)cap * sizeof(int));
    p->values = (float*)mallocCheck((size_t)cap * sizeof(float));
    for (char* s = text; *s; line++) {
        char* end = strchr(s, '\n');
        if (end) *end = 0;
        if (*s != '#' && *s != 0) {
            int id, used = 0;
            float v;
            if (sscanf(s, "%d\t%f%n", &id, &v, &used) != 2 || s[used] != 0 || !(v >= 0.0f && v <= 1.0f)) {
                char echo[ECHO_CAP];
                die("'%s' line %d: expected 'user<TAB>value' with a value in [0, 1], got '%s'", path, line + 1,
                    echo_input(s, strlen(s), echo));
            }
            if (p->n == cap) {
                cap *= 2;
                p->user_ids = (int*)realloc(p->user_ids, (size_t)cap * sizeof(int));
                p->values = (float*)realloc(p->values, (size_t)cap * sizeof(float));
                if (!p->user_ids || !p->values) die("per_user_read: out of memory for %d users of '%s'", cap, path);
            }
            p->user_ids[p->n] = id;
            p->values[p->n++] = v;
        }
        if (!end) break;
        s = end + 1;
    }
    free(text);
    if (p->n == 0) die("'%s' holds no users: expected one 'user<TAB>value' line per test user", path);
}

static void per_user_free(PerUser* p) {
    free(p->user_ids);
    free(p->values);
    memset(p, 0, sizeof(*p));
}
