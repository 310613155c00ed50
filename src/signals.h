// signals.h: what DLLM2Rec's students learn from the teacher, computed once
// from a trained E4SRec checkpoint and cached:
//   * for every training sample (SampleList below: a user's train prefix cut
//     at t, history s[0..t), target s[t], for 1 <= t < train length), the
//     teacher's top-K items over 1..n_items and its scores for them (ranking
//     distillation), a row per sample id (signals_row);
//   * the teacher's item table e_T (I, C): the final hidden state at the last
//     token for the one-item history [i] (embedding distillation); row 0 = 0.
// The cache (binfile kind "signals") is keyed by the checksum of the teacher's
// weights as they ran (e4srec_checksum), not of a file: an online teacher trained
// on in memory after its file was written keys its own cache. A cache from another
// teacher, or from this one for another K or max_len, is recomputed; this teacher's
// cache for another data file is refused (the teacher, the data or the cache path
// is not the one meant). The cache is read and checked before a run writes anything.
//   header dims: n_samples K I C teacher-weights-checksum data-checksum S
//   payload: cand (n_samples, K) i32 | score (n_samples, K) f32 | e_T (I, C) f32
#pragma once
#include "checkpoint.h"  // the binfile container, the E4SRec teacher
#include "data.h"

// The DLLM2Rec training samples (method.md 2.4): every (user, cut) of the train
// prefixes with 1 <= cut < train length, users in order, each user's cuts ascending.
// A sample's id is its position in this list: the teacher's signals are stored by
// it, and the students' batches are drawn as ids.
typedef struct {
    const SeqData* data;
    int count;
    int* users;  // (count)
    int* cuts;   // (count) the history is the user's first cut items, the target the next one
} SampleList;

static int sample_count(const SeqData* d) {
    int n = 0;
    for (int u = 0; u < d->n_users; u++) n += max_int(train_len(d, u) - 1, 0);
    return n;
}

static void sample_list_build(SampleList* s, const SeqData* d) {
    s->data = d;
    s->count = sample_count(d);
    s->users = (int*)mallocCheck((size_t)max_int(s->count, 1) * sizeof(int));
    s->cuts = (int*)mallocCheck((size_t)max_int(s->count, 1) * sizeof(int));
    int n = 0;
    for (int u = 0; u < d->n_users; u++) {
        for (int t = 1; t < train_len(d, u); t++, n++) {
            s->users[n] = u;
            s->cuts[n] = t;
        }
    }
}

static void sample_list_free(SampleList* s) {
    free(s->users); free(s->cuts);
    memset(s, 0, sizeof(*s));
}

// sample id's history, left-padded to S (method.md 2.3), into hist (S); returns its target
static int sample_history(int* hist, const SampleList* s, int id, int S) {
    const int* seq = seq_items(s->data, s->users[id]);
    history_left_padded(hist, seq, s->cuts[id], S);
    return seq[s->cuts[id]];
}

static uint32_t seqdata_checksum(const SeqData* d) {
    uint32_t h = fnv1a(FNV_START, d->offsets, (d->n_users + 1) * sizeof(int));
    return h ^ (fnv1a(FNV_START, d->items, (size_t)d->n_events * sizeof(int)) * 16777619u);
}

typedef struct {
    int n_samples, K, I, C, S;  // a row per sample, by its SampleList id
    int* cand;          // (n_samples, K) the teacher's top-K items, best first
    float* score;       // (n_samples, K) its scores of them
    float* e_T;         // (I, C)
    uint32_t teacher_checksum, data_checksum;
} TeacherSignals;

// the teacher's top-K items for sample (its SampleList id), best first, and its scores of them
static void signals_row(const TeacherSignals* s, int sample, const int** cand, const float** score) {
    *cand = s->cand + (size_t)sample * s->K;
    *score = s->score + (size_t)sample * s->K;
}

static void signals_alloc(TeacherSignals* s, const SeqData* d, int K, int I, int C) {
    s->n_samples = sample_count(d);
    s->K = K; s->I = I; s->C = C;
    s->cand = (int*)mallocCheck((size_t)s->n_samples * K * sizeof(int));
    s->score = (float*)mallocCheck((size_t)s->n_samples * K * sizeof(float));
    s->e_T = (float*)callocCheck((size_t)I * C, sizeof(float));
    s->data_checksum = seqdata_checksum(d);
}

static void signals_free(TeacherSignals* s) {
    free(s->cand); free(s->score); free(s->e_T);
    memset(s, 0, sizeof(*s));
}

#define SIGNALS_BATCH 256

// runs the teacher over every training sample and every single item
static void signals_compute(TeacherSignals* s, E4SRec* teacher, const SeqData* d, int K) {
    const E4SRecConfig* c = &teacher->cfg;
    signals_alloc(s, d, K, c->I, c->C);
    s->S = c->S;
    int* hist = (int*)mallocCheck((size_t)SIGNALS_BATCH * c->S * sizeof(int));
    SampleList samples;
    sample_list_build(&samples, d);
    int n_items = c->I - 1, total = s->n_samples + n_items;
    double t0 = now_seconds(), last_print = t0;
    for (int i0 = 0; i0 < total; i0 += SIGNALS_BATCH) {
        int n = min_int(SIGNALS_BATCH, total - i0);
        for (int j = 0; j < n; j++) {  // samples first, then the one-item histories [1] .. [n_items]
            int i = i0 + j;
            if (i < s->n_samples) sample_history(hist + (size_t)j * c->S, &samples, i, c->S);
            else { int item = i - s->n_samples + 1; history_left_padded(hist + (size_t)j * c->S, &item, 1, c->S); }
        }
        e4srec_forward(teacher, hist, NULL, n);
        for (int j = 0; j < n; j++) {
            int i = i0 + j;
            if (i < s->n_samples) {
                top_k(teacher->acts.logits + (size_t)j * c->I, n_items, K, NULL, 0, s->cand + (size_t)i * K, s->score + (size_t)i * K);
            } else {
                const float* h = teacher->acts.last + ((size_t)c->L * n + j) * c->C;  // final hidden state, last token
                memcpy(s->e_T + (size_t)(i - s->n_samples + 1) * c->C, h, c->C * sizeof(float));
            }
        }
        double now = now_seconds();
        if (now - last_print > 10.0) {
            double rate = (i0 + n) / (now - t0);
            logf_("  [teacher signals] %d/%d histories, %.0f/s, ETA %.0fs\n", i0 + n, total, rate, (total - i0 - n) / rate);
            last_print = now;
        }
    }
    free(hist);
    sample_list_free(&samples);
}

static void signals_save(const char* path, const TeacherSignals* s) {
    int dims[7] = {s->n_samples, s->K, s->I, s->C, (int)s->teacher_checksum, (int)s->data_checksum, s->S};
    Buffer b = {0};
    ckpt_put_i32(&b, s->cand, (size_t)s->n_samples * s->K);
    ckpt_put_f32(&b, s->score, (size_t)s->n_samples * s->K);
    ckpt_put_f32(&b, s->e_T, (size_t)s->I * s->C);
    binfile_write(path, KIND_SIGNALS, dims, 7, b.data, b.size);
    free(b.data);
}

// reads the cache at path when it was made from this teacher (its weights' checksum)
// for this K and returns 1; returns 0, nothing loaded and the reason in why, when it
// must be computed; refuses a damaged cache, or this teacher's cache for other data
static int signals_load_cached(TeacherSignals* s, const char* path, const SeqData* d, const E4SRec* teacher,
                               uint32_t teacher_checksum, int K, char* why, size_t why_cap) {
    memset(s, 0, sizeof(*s));
    if (access(path, F_OK) != 0) {
        snprintf(why, why_cap, "no cache at %s yet", path);
        return 0;
    }
    int dims[HEADER_DIMS];
    size_t nbytes = 0;
    char* payload = (char*)binfile_read(path, KIND_SIGNALS, dims, &nbytes);
    int n_samples = sample_count(d);
    if ((uint32_t)dims[4] != teacher_checksum) {
        snprintf(why, why_cap, "%s was made from another teacher", path);
        free(payload);
        return 0;
    }
    if ((uint32_t)dims[5] != seqdata_checksum(d) || dims[0] != n_samples || dims[2] != teacher->cfg.I) {
        die("'%s' holds this teacher's signals for another data file (%d samples over %ld items; this data has %d over %d)\n"
            "  hint: check --data and --teacher; give another --signals path, or delete it to recompute",
            path, dims[0], (long)dims[2] - 1, n_samples, teacher->cfg.I - 1);
    }
    if (dims[1] != K || dims[6] != teacher->cfg.S) {
        snprintf(why, why_cap, "%s holds the top-%d over histories of %d, this run asks for the top-%d over %d", path,
                 dims[1], dims[6], K, teacher->cfg.S);
        free(payload);
        return 0;
    }
    signals_alloc(s, d, K, teacher->cfg.I, teacher->cfg.C);
    if (dims[3] != s->C) die("'%s' holds a teacher table of width %d, the teacher has %d: the file is damaged", path, dims[3], s->C);
    s->S = dims[6];
    s->teacher_checksum = teacher_checksum;
    Cursor cur = {payload, nbytes, 0, path};
    cursor_take(&cur, s->cand, (size_t)n_samples * K * sizeof(int), "the teacher's candidates");
    cursor_take(&cur, s->score, (size_t)n_samples * K * sizeof(float), "the teacher's scores");
    cursor_take(&cur, s->e_T, (size_t)s->I * s->C * sizeof(float), "the teacher item table");
    cursor_done(&cur);
    for (size_t i = 0; i < (size_t)n_samples * K; i++) {
        if (s->cand[i] < 1 || s->cand[i] >= s->I) die("'%s': candidate %d is not an item id in 1..%d: the file is damaged", path, s->cand[i], s->I - 1);
    }
    free(payload);
    return 1;
}

// the signals of teacher (whose weights have checksum teacher_checksum) on d, written to
// path: reuses what signals_load_cached returned (cached = 1), else computes them
static void signals_get(TeacherSignals* s, int cached, const char* why, const char* path, E4SRec* teacher,
                        uint32_t teacher_checksum, const SeqData* d, int K) {
    if (cached) {
        logf_("teacher signals: %s (top-%d of %d samples, e_T %d x %d), cached for this teacher\n", path, K, s->n_samples, s->I, s->C);
        return;
    }
    logf_("teacher signals: %s: computing them\n", why);
    double t0 = now_seconds();
    signals_compute(s, teacher, d, K);
    s->teacher_checksum = teacher_checksum;
    signals_save(path, s);
    logf_("teacher signals: top-%d of %d samples and e_T (%d x %d) in %.1fs -> %s\n", K, s->n_samples, s->I, s->C,
          now_seconds() - t0, path);
}
