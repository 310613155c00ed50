// eval.h: the evaluation of method.md 7, both protocols at once. Defines the
// sampled-negatives table (fixed seeds, built from the data alone so every model
// sees the same candidates), Metrics (sums per row, then means), the printed
// table row and the JSON fields. rank = number of candidates scoring strictly
// higher than the target (0-based); HR@k = [rank < k]; NDCG@k = [rank < k] /
// log2(rank + 2); MRR = 1 / (rank + 1).
#pragma once
#include "utils.h"
#include "data.h"

// ----------------------------------------------------------------------------
// sampled protocol: the target against EVAL_N_NEG items the user never
// interacted with (anywhere in the whole sequence, valid and test targets included)

#define EVAL_N_NEG 999
#define EVAL_SEED_VALID 7   // the peers' seeds (common.py negatives), our Rng
#define EVAL_SEED_TEST 42

typedef struct {
    int n_users;
    int n_neg;   // EVAL_N_NEG, or fewer when some user has seen all but fewer items
    int* items;  // (n_users, n_neg) distinct, never in the user's sequence
} Negatives;

// stamps mark[item] = stamp for the user's items; returns how many distinct items they are
static int mark_user_items(const SeqData* d, int u, int* mark /*(n_items + 1)*/, int stamp) {
    int distinct = 0;
    for (int i = 0; i < seq_len(d, u); i++) {
        int item = seq_items(d, u)[i];
        distinct += mark[item] != stamp;
        mark[item] = stamp;
    }
    return distinct;
}

// One table per split; the same n_neg for every user, so every row ranks the
// same number of candidates: min(EVAL_N_NEG, n_items - the most distinct items any user saw)
static void negatives_build(Negatives* neg, const SeqData* d, Split split) {
    int* mark = (int*)callocCheck(d->n_items + 1, sizeof(int));  // (n_items + 1) stamp u + 1 = seen by user u
    int max_seen = 0, busiest = 0;
    for (int u = 0; u < d->n_users; u++) {
        int seen = mark_user_items(d, u, mark, u + 1);
        if (seen > max_seen) { max_seen = seen; busiest = u; }
    }
    if (max_seen == d->n_items) {
        die("user %d has interacted with every one of the %d items: no negatives are left to sample, and every sampled\n"
            "  metric would read 1.0 (the sampled protocol needs items each user has not seen)", d->user_ids[busiest], d->n_items);
    }
    neg->n_users = d->n_users;
    neg->n_neg = min_int(EVAL_N_NEG, d->n_items - max_seen);  // the tables name the count: s<n_neg>_HR@1 ...
    neg->items = (int*)mallocCheck((size_t)d->n_users * neg->n_neg * sizeof(int));
    Rng rng;
    rng_seed(&rng, split == SPLIT_VALID ? EVAL_SEED_VALID : EVAL_SEED_TEST);
    for (int u = 0; u < d->n_users; u++) {
        int stamp = d->n_users + 1 + u;  // fresh stamps: drawn items get marked as seen too
        mark_user_items(d, u, mark, stamp);
        int* row = neg->items + (size_t)u * neg->n_neg;
        for (int got = 0; got < neg->n_neg;) {
            int item = 1 + rng_int(&rng, d->n_items);
            if (mark[item] == stamp) continue;
            mark[item] = stamp;
            row[got++] = item;
        }
    }
    free(mark);
}

static void negatives_free(Negatives* neg) {
    free(neg->items);
    neg->items = NULL;
}

// ----------------------------------------------------------------------------
// metrics: one table of what is reported, in print and JSON order

typedef enum { PROTOCOL_FULL, PROTOCOL_SAMPLED } Protocol;
typedef enum { METRIC_HR, METRIC_NDCG, METRIC_MRR } MetricKind;
typedef struct {
    Protocol protocol;
    MetricKind kind;
    int k;  // cutoff; unused for MRR
} MetricSpec;

static const MetricSpec METRIC_SPECS[] = {
    {PROTOCOL_FULL, METRIC_HR, 1},    {PROTOCOL_FULL, METRIC_HR, 5},      {PROTOCOL_FULL, METRIC_HR, 10},
    {PROTOCOL_FULL, METRIC_HR, 20},   {PROTOCOL_FULL, METRIC_NDCG, 5},    {PROTOCOL_FULL, METRIC_NDCG, 10},
    {PROTOCOL_FULL, METRIC_NDCG, 20}, {PROTOCOL_FULL, METRIC_MRR, 0},
    {PROTOCOL_SAMPLED, METRIC_HR, 1}, {PROTOCOL_SAMPLED, METRIC_HR, 5},   {PROTOCOL_SAMPLED, METRIC_HR, 10},
    {PROTOCOL_SAMPLED, METRIC_NDCG, 5}, {PROTOCOL_SAMPLED, METRIC_NDCG, 10}, {PROTOCOL_SAMPLED, METRIC_MRR, 0},
};
#define N_METRICS ((int)(sizeof(METRIC_SPECS) / sizeof(METRIC_SPECS[0])))
#define METRIC_SELECTION 5  // full NDCG@10: model selection (method.md 7.4)

typedef struct {
    double sum[N_METRICS];
    double mean[N_METRICS];  // filled by metrics_finalize
    long count;              // rows added
    int n_neg;               // sampled negatives a row; names the protocol "s<n_neg + 1>"
    float* per_row;          // NULL, or the caller's (rows) array: each row's selection metric, in order
} Metrics;

static void metrics_init(Metrics* m) { memset(m, 0, sizeof(*m)); }

static double metric_value(MetricKind kind, int k, int rank) {
    if (kind == METRIC_MRR) return 1.0 / (rank + 1);
    if (rank >= k) return 0.0;
    return kind == METRIC_HR ? 1.0 : 1.0 / log2(rank + 2.0);
}

// scores: one row over all I = n_items + 1 ids; column 0 (pad) is never a
// candidate, the history is not masked. A NaN target score ranks last, so a
// diverged model cannot look perfect.
static void metrics_add_row(Metrics* m, const float* scores /*(n_items + 1)*/, int n_items, int target,
                            const int* negs /*(n_neg)*/, int n_neg) {
    if (target < 1 || target > n_items) die("metrics_add_row: target %d outside items 1..%d", target, n_items);
    if (m->count > 0 && n_neg != m->n_neg) die("metrics_add_row: %d negatives, earlier rows had %d", n_neg, m->n_neg);
    m->n_neg = n_neg;
    float s = scores[target];
    int rank_full = 0, rank_sampled = 0;
    for (int i = 1; i <= n_items; i++) rank_full += scores[i] > s;
    for (int j = 0; j < n_neg; j++) rank_sampled += scores[negs[j]] > s;
    if (isnan(s)) { rank_full = n_items - 1; rank_sampled = n_neg; }
    for (int i = 0; i < N_METRICS; i++) {
        const MetricSpec* spec = &METRIC_SPECS[i];
        double value = metric_value(spec->kind, spec->k, spec->protocol == PROTOCOL_FULL ? rank_full : rank_sampled);
        m->sum[i] += value;
        if (i == METRIC_SELECTION && m->per_row) m->per_row[m->count] = (float)value;
    }
    m->count++;
}

// rows for users u0 .. u0+n-1 of one split: their targets and negatives rows
static void metrics_add_batch(Metrics* m, const float* scores /*(n, n_items + 1)*/, int n_items, int n,
                              const int* targets /*(n)*/, const Negatives* neg, int u0) {
    if (u0 < 0 || u0 + n > neg->n_users) {
        die("metrics_add_batch: users %d..%d outside the negatives table's %d", u0, u0 + n - 1, neg->n_users);
    }
    for (int i = 0; i < n; i++) {
        metrics_add_row(m, scores + (size_t)i * (n_items + 1), n_items, targets[i],
                        neg->items + (size_t)(u0 + i) * neg->n_neg, neg->n_neg);
    }
}

static void metrics_finalize(Metrics* m) {
    if (m->count == 0) die("metrics_finalize: no rows were evaluated");
    for (int i = 0; i < N_METRICS; i++) m->mean[i] = m->sum[i] / m->count;
}

// the model-selection metric (after metrics_finalize): valid full NDCG@10
static double metrics_selection(const Metrics* m) { return m->mean[METRIC_SELECTION]; }

// "HR@10", "NDCG@5", "MRR": the column names of the table
static void metric_short_name(char* buf, size_t size, int i) {
    const MetricSpec* spec = &METRIC_SPECS[i];
    if (spec->kind == METRIC_MRR) snprintf(buf, size, "MRR");
    else snprintf(buf, size, "%s@%d", spec->kind == METRIC_HR ? "HR" : "NDCG", spec->k);
}

// "full_HR@10", "full_MRR", "s1000_NDCG@5" (the keys of common.py)
static void metric_name(char* buf, size_t size, const Metrics* m, int i) {
    char short_name[16];
    metric_short_name(short_name, sizeof(short_name), i);
    if (METRIC_SPECS[i].protocol == PROTOCOL_FULL) snprintf(buf, size, "full_%s", short_name);
    else snprintf(buf, size, "s%d_%s", m->n_neg + 1, short_name);
}

#define METRICS_LABEL_WIDTH 18

// what precedes column i of the table: a bar where the sampled protocol starts
static const char* metrics_column_sep(int i) {
    return i > 0 && METRIC_SPECS[i].protocol != METRIC_SPECS[i - 1].protocol ? " |" : " ";
}

// two header lines naming the protocols and the columns of metrics_print_row
static void metrics_print_header(FILE* f, int n_neg) {
    int full_width = -1;  // the full columns' width, 8 characters each, less the first space
    for (int i = 0; i < N_METRICS; i++) full_width += METRIC_SPECS[i].protocol == PROTOCOL_FULL ? 8 : 0;
    fprintf(f, "%-*s %-*s | sampled (target + %d negatives)\n", METRICS_LABEL_WIDTH, "", full_width,
            "full ranking (all items)", n_neg);
    fprintf(f, "%-*s", METRICS_LABEL_WIDTH, "");
    for (int i = 0; i < N_METRICS; i++) {
        char col[16];
        metric_short_name(col, sizeof(col), i);
        fprintf(f, "%s%7s", metrics_column_sep(i), col);
    }
    fputc('\n', f);
}

static void metrics_print_row(FILE* f, const char* label, const Metrics* m) {
    fprintf(f, "%-*.*s", METRICS_LABEL_WIDTH, METRICS_LABEL_WIDTH, label);
    for (int i = 0; i < N_METRICS; i++) {
        fprintf(f, "%s%7.4f", metrics_column_sep(i), m->mean[i]);
    }
    fputc('\n', f);
}

// the means as JSON fields `"full_HR@1": 0.012345, ...` (no braces, no trailing comma)
static void metrics_write_json(FILE* f, const Metrics* m) {
    for (int i = 0; i < N_METRICS; i++) {
        char name[32];
        metric_name(name, sizeof(name), m, i);
        fprintf(f, "%s\"%s\": %.6f", i ? ", " : "", name, m->mean[i]);
    }
}
