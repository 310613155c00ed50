// checkpoint.h: model files in the binfile container (method.md 9). An E4SRec
// checkpoint is self-contained: dimensions, prompt token ids, the tokenizer
// they came from, the frozen item table, the parameters, the SLMRec adapters
// (a distilled student), and optionally the training state (progress, RNG,
// AdamW moments) so that --resume continues bit-identically.
//
// E4SRec header dims: V C F L NH KVH HS D I P1 P2 S eps-bits theta-bits n_adapters has_state
//          lora_rank lora-alpha-bits lora_targets base_checksum online_layers
// payload: instr (P1 i32) | resp (P2 i32) | tokenizer | item_table (I*D f32) | weights |
//          adapters (n_adapters*D*C f32) | [online teacher's params] | [train state]
// online teacher: an --online student's training state also holds the teacher it trains
//          (online_layers > 0 layers, the student's shapes otherwise, LoRA merged)
// weights: without LoRA, params (f32, e4srec_param_sizes order); with LoRA only
//          what trained: base path (i32 length, bytes) | proj_w | proj_b | score_w | LoRA A, B
//          (lora.h order). The frozen rest is read from the base path, whose checksum must match.
// train state: epoch step bad_epochs best_epoch batch (i32) | best (f32) | rng (u64) |
//          AdamW: lr min_lr beta1 beta2 eps weight_decay clip (f32) warmup total_steps (i32) |
//          n_moments (u64) | m | v (f32) | run record (bytes) | its length (i32) |
//          train_seconds (f64, last: the one field two runs that are otherwise bit-identical
//          do not share). A model file's has_state flag is STATE_WITH_RECORD when it holds one
//          (1 was a state without the run record, written by builds before it)
#pragma once
#include "binfile.h"
#include "e4srec.h"
#include "optim.h"
#include "sasrec.h"
#include "tokenizer.h"

// ----------------------------------------------------------------------------
// the run record: what a training run computes, one "flag value" line each (the data,
// the teacher's weights, every shape and objective flag). It is saved with the training
// state, and a resumed run must agree with every line, so that one run never mixes two
// teachers or two objectives. Flags that only say how long to train (--epochs,
// --patience, --time-budget, --stop-after) are not in it: a run may be resumed to train on.

#define RUN_RECORD_CAP 4096
#define STATE_WITH_RECORD 2  // the has_state flag of a model file whose state holds a run record

typedef struct {
    char text[RUN_RECORD_CAP];
    int len;
} RunRecord;

// appends the line "flag value" (value formatted as printf); a value is one line
static void run_record_add(RunRecord* r, const char* flag, const char* fmt, ...) {
    char value[512];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(value, sizeof(value), fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof(value)) die("run record: the value of %s is longer than %zu bytes", flag, sizeof(value) - 1);
    if (strchr(value, '\n') || strchr(flag, ' ')) die("run record: the line of %s must be one line, its flag one word", flag);
    int n = snprintf(r->text + r->len, RUN_RECORD_CAP - r->len, "%s %s\n", flag, value);
    if (n < 0 || r->len + n >= RUN_RECORD_CAP) die("run record: more than %d bytes", RUN_RECORD_CAP);
    r->len += n;
}

// x as the shortest decimal that reads back as the same float: 0.7, not 0.699999988
typedef struct { char s[24]; } FloatText;
static FloatText float_text(float x) {
    FloatText t;
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(t.s, sizeof(t.s), "%.*g", digits, x);
        if (strtof(t.s, NULL) == x) break;
    }
    return t;
}

// the value of flag in a record's text, into value (NULL when the flag is not there)
static const char* run_record_find(const char* text, const char* flag, char* value, size_t cap) {
    size_t n = strlen(flag);
    for (const char* line = text; *line; line = strchr(line, '\n') + 1) {
        size_t len = strcspn(line, "\n");
        if (len > n && strncmp(line, flag, n) == 0 && line[n] == ' ') {
            snprintf(value, cap, "%.*s", (int)(len - n - 1), line + n + 1);
            return value;
        }
        if (line[len] == 0) break;
    }
    return NULL;
}

// dies naming the first flag on which the saved record (of the file at path) and this run's differ
static void run_record_match(const char* path, const char* saved, const RunRecord* now) {
    const char* texts[2] = {now->text, saved};
    for (int side = 0; side < 2; side++) {  // every flag of either record, in the other
        for (const char* line = texts[side]; *line; line = strchr(line, '\n') + 1) {
            char flag[128], was[512], is[512];
            snprintf(flag, sizeof(flag), "%.*s", (int)strcspn(line, " \n"), line);
            const char* a = run_record_find(saved, flag, was, sizeof(was));
            const char* b = run_record_find(now->text, flag, is, sizeof(is));
            if (a == NULL || b == NULL || strcmp(a, b) != 0) {
                die("'%s' was trained with %s %s; this run has %s %s\n"
                    "  hint: --resume continues a run with the flags and inputs it started with; to change them,\n"
                    "  start again without --resume or give another --out",
                    path, flag, a ? a : "(not set)", flag, b ? b : "(not set)");
            }
            if (line[strcspn(line, "\n")] == 0) break;
        }
    }
}

// where a training run stands; everything a resumed run needs besides the moments
typedef struct {
    int epoch;       // epochs completed
    int step;        // optimizer steps taken
    int bad_epochs;  // epochs since the best valid metric improved
    int best_epoch;  // the epoch of the best valid metric (0 before the first evaluation)
    int batch;       // samples per step: a resumed run must keep it
    float best;      // best valid full NDCG@10 so far (-1 before the first evaluation)
    uint64_t rng;    // training RNG state
    double train_seconds;  // wall time in optimizer steps so far, every process of the run
    const RunRecord* record;  // what this run computes: saved with the state (ckpt_check_state matches it on resume)
} TrainProgress;

static void ckpt_put_f32(Buffer* b, const float* x, size_t n) { buffer_put(b, x, n * sizeof(float)); }
static void ckpt_put_i32(Buffer* b, const int* x, size_t n) { buffer_put(b, x, n * sizeof(int)); }

static void ckpt_put_state(Buffer* b, const TrainProgress* p, const Optimizer* o) {
    int32_t ints[5] = {p->epoch, p->step, p->bad_epochs, p->best_epoch, p->batch};
    const AdamWConfig* a = &o->cfg;
    float rates[7] = {a->lr, a->min_lr, a->beta1, a->beta2, a->eps, a->weight_decay, a->clip};
    int32_t schedule[2] = {a->warmup, a->total_steps};
    uint64_t n = o->n_total;
    buffer_put(b, ints, sizeof(ints));
    buffer_put(b, &p->best, sizeof(float));
    buffer_put(b, &p->rng, sizeof(uint64_t));
    buffer_put(b, rates, sizeof(rates));
    buffer_put(b, schedule, sizeof(schedule));
    buffer_put(b, &n, sizeof(uint64_t));
    ckpt_put_f32(b, o->m, o->n_total);
    ckpt_put_f32(b, o->v, o->n_total);
    int32_t record_len = p->record->len;
    buffer_put(b, p->record->text, (size_t)record_len);
    buffer_put(b, &record_len, sizeof(record_len));
    buffer_put(b, &p->train_seconds, sizeof(double));
}

// the run record of a training state that starts at cursor c (the record sits just
// before the last 12 bytes of the payload), NUL-terminated in out
static void ckpt_state_record(const Cursor* c, char out[RUN_RECORD_CAP]) {
    int32_t len = -1;
    size_t tail = sizeof(int32_t) + sizeof(double);
    if (c->size - c->pos >= tail) memcpy(&len, c->data + c->size - tail, sizeof(len));
    if (len < 0 || len >= RUN_RECORD_CAP || (size_t)len + tail > c->size - c->pos) {
        die("'%s': its run record has length %d, outside 0..%d or beyond the payload: the file is damaged", c->path, len, RUN_RECORD_CAP - 1);
    }
    memcpy(out, c->data + c->size - tail - len, (size_t)len);
    out[len] = 0;
    if (strlen(out) != (size_t)len) die("'%s': its run record holds a NUL byte: the file is damaged", c->path);
}

// before a run resumes from a model file: it holds a training state (at cursor state,
// flagged has_state) whose run record matches this run's, now
static void ckpt_check_state(const char* path, int has_state, const Cursor* state, const RunRecord* now) {
    if (has_state == 0) die("'%s' has no training state to resume from", path);
    if (has_state != STATE_WITH_RECORD) {
        die("'%s' holds a training state from an older slmrec without a run record: a resume could not check that it\n"
            "  continues the same computation; start the run again without --resume", path);
    }
    char saved[RUN_RECORD_CAP];
    ckpt_state_record(state, saved);
    run_record_match(path, saved, now);
}

// reads the train state into p and the moments into o (built, sized and configured
// as the run that saved it, its run record checked by ckpt_check_state). p->batch holds
// this run's batch on entry: another batch, other AdamW settings or sizes are refused
static void ckpt_take_state(Cursor* c, TrainProgress* p, Optimizer* o) {
    int32_t ints[5], schedule[2];
    float rates[7];
    uint64_t n = 0;
    cursor_take(c, ints, sizeof(ints), "the training progress");
    cursor_take(c, &p->best, sizeof(float), "the best metric");
    cursor_take(c, &p->rng, sizeof(uint64_t), "the RNG state");
    if (ints[4] != p->batch) {
        die("'%s' was trained with batches of %d, this run has %d: resume with the flags the run started with", c->path, ints[4], p->batch);
    }
    cursor_take(c, rates, sizeof(rates), "the AdamW settings");
    cursor_take(c, schedule, sizeof(schedule), "the learning-rate schedule");
    const AdamWConfig* a = &o->cfg;
    float now[7] = {a->lr, a->min_lr, a->beta1, a->beta2, a->eps, a->weight_decay, a->clip};
    if (memcmp(rates, now, sizeof(now)) != 0 || schedule[0] != a->warmup || schedule[1] != a->total_steps) {
        die("'%s' was trained with lr %g, min lr %g, betas (%g, %g), eps %g, weight decay %g, clip %g, warmup %d,\n"
            "a schedule of %d steps; this run has lr %g, min lr %g, betas (%g, %g), eps %g, weight decay %g, clip %g,\n"
            "warmup %d, %d steps (the schedule counts --epochs x steps per epoch): resume with the flags the run started with",
            c->path, rates[0], rates[1], rates[2], rates[3], rates[4], rates[5], rates[6], schedule[0], schedule[1],
            now[0], now[1], now[2], now[3], now[4], now[5], now[6], a->warmup, a->total_steps);
    }
    cursor_take(c, &n, sizeof(uint64_t), "the moment count");
    if (n != o->n_total) {
        die("'%s' holds AdamW moments for %llu parameters, this run trains %zu: resume with the flags the run started with",
            c->path, (unsigned long long)n, o->n_total);
    }
    cursor_take(c, o->m, o->n_total * sizeof(float), "the first moments");
    cursor_take(c, o->v, o->n_total * sizeof(float), "the second moments");
    char saved[RUN_RECORD_CAP];  // matched by ckpt_check_state before any of this
    ckpt_state_record(c, saved);
    c->pos += strlen(saved) + sizeof(int32_t);
    cursor_take(c, &p->train_seconds, sizeof(double), "the training time");
    // a crafted state would resume into nonsense: every field in range
    check_range(c->path, "the epochs completed", ints[0], 0, MAX_EPOCHS);
    check_range(c->path, "the steps taken", ints[1], 0, INT32_MAX);
    check_range(c->path, "the epochs without improvement", ints[2], 0, ints[0]);
    check_range(c->path, "the best epoch", ints[3], 0, ints[0]);
    if (!(p->best == -1.0f || (p->best >= 0.0f && p->best <= 1.0f))) check_range(c->path, "the best valid NDCG@10", p->best, 0, 1);
    check_range(c->path, "the training seconds", p->train_seconds, 0, 1e9);
    p->epoch = ints[0];
    p->step = ints[1];
    p->bad_epochs = ints[2];
    p->best_epoch = ints[3];
    p->batch = ints[4];
    o->step = p->step;
}

// ----------------------------------------------------------------------------
// E4SRec (teacher, plain E4SRec_l, SLMRec student with adapters)

#define E4SREC_DIMS 21

static void float_bits(int* dst, float x) { memcpy(dst, &x, sizeof(float)); }
static float bits_float(int x) { float f; memcpy(&f, &x, sizeof(float)); return f; }

// writes m (+ adapters, + train state when o != NULL, + the teacher an online student trains
// beside it when online_teacher != NULL, which needs the state) to path, atomically
static void e4srec_save(const char* path, const E4SRec* m, const Tokenizer* tok, const float* adapters, int n_adapters,
                        const E4SRec* online_teacher, const TrainProgress* p, const Optimizer* o) {
    const E4SRecConfig* c = &m->cfg;
    const Lora* lo = m->lora;
    if (online_teacher && (o == NULL || online_teacher->lora)) die("e4srec_save: an online teacher is saved merged, with a training state");
    int dims[E4SREC_DIMS] = {c->V, c->C, c->F, c->L, c->NH, c->KVH, c->HS, c->D, c->I, c->P1, c->P2, c->S,
                             0, 0, n_adapters, o ? STATE_WITH_RECORD : 0, lo ? lo->rank : 0, 0, lo ? lo->targets : 0,
                             lo ? (int)lo->base_checksum : 0, online_teacher ? online_teacher->cfg.L : 0};
    float_bits(&dims[12], c->rms_eps);
    float_bits(&dims[13], c->rope_theta);
    if (lo) float_bits(&dims[17], lo->alpha);
    Buffer b = {NULL, 0, 0};
    ckpt_put_i32(&b, m->instr, c->P1);
    ckpt_put_i32(&b, m->resp, c->P2);
    tokenizer_write_to(&b, tok);
    ckpt_put_f32(&b, m->item_table, (size_t)c->I * c->D);
    if (lo) {
        int32_t len = (int32_t)strlen(lo->base_path);
        buffer_put(&b, &len, sizeof(len));
        buffer_put(&b, lo->base_path, (size_t)len);
    }
    float *params[E4SREC_MAX_TRAINED], *grads[E4SREC_MAX_TRAINED];
    size_t sizes[E4SREC_MAX_TRAINED];
    for (int i = 0, n = e4srec_trained(m, params, grads, sizes); i < n; i++) ckpt_put_f32(&b, params[i], sizes[i]);
    ckpt_put_f32(&b, adapters, (size_t)n_adapters * c->D * c->C);
    if (online_teacher) ckpt_put_f32(&b, online_teacher->params_memory, online_teacher->num_params);
    if (o) ckpt_put_state(&b, p, o);
    binfile_write(path, KIND_E4SREC, dims, E4SREC_DIMS, b.data, b.size);
    free(b.data);
}

// a loaded E4SRec checkpoint; the model points at item_table, owned here
typedef struct {
    E4SRec model;
    Tokenizer tok;
    float* item_table;  // (I, D)
    float* adapters;    // (n_adapters, D, C) or NULL
    int n_adapters;
    float* online_teacher;  // (online_teacher_params) the teacher of an --online state, or NULL
    size_t online_teacher_params;
    int online_layers;      // its layers, 0 without one
    int has_state;
    int lora_chain;     // LoRA files in the chain this file's frozen weights come through: 0 without LoRA
    char* payload;      // kept for the train state, read after the optimizer exists
    Cursor state;       // positioned at the train state when has_state
} E4SRecFile;

static void e4srec_load(E4SRecFile* f, const char* path);
static void e4srec_file_free(E4SRecFile* f);

// a LoRA model's frozen weights: the first L layers of the file it was trained from,
// a base checkpoint (--init) or an E4SRec teacher (a student from its first layers).
// Returns the LoRA files in the chain of base: 0 for a base checkpoint, else its own chain
static int e4srec_load_frozen(E4SRec* m, const char* path, const char* base, uint32_t checksum) {
    // a student over a LoRA teacher over a base is a chain of 2; training refuses to make
    // one longer than LORA_MAX_CHAIN, and a file cannot name itself honestly (its checksum
    // would have to cover itself): a longer chain is forged, or a cycle
    static int depth = 0;
    if (++depth > LORA_MAX_CHAIN) {
        die("'%s': its frozen weights come through more than %d LoRA files, the most a training run makes: "
            "the file names itself, or is damaged", path, LORA_MAX_CHAIN);
    }
    if (access(base, R_OK) != 0) {
        die("'%s' holds LoRA adapters over '%s', which is not readable from here\n"
            "  hint: files made before base paths were stored absolute hold the path as typed: run from the directory\n"
            "  the adapters were trained in, or put the base there", path, base);
    }
    uint32_t have = binfile_checksum(base);
    if (have != checksum) {
        die("'%s' holds LoRA adapters trained over a base with checksum %08x; '%s' has checksum %08x: another base",
            path, checksum, base, have);
    }
    int chain = 0;
    if (binfile_kind(base) == KIND_LLAMA) {
        Llama b;
        llama_load(&b, base);
        e4srec_init_from_base(m, &b, base);
        llama_free(&b);
    } else {
        E4SRecFile t;
        e4srec_load(&t, base);
        chain = t.lora_chain;
        e4srec_merge_lora(&t.model);
        e4srec_copy_first_layers(m, &t.model);
        e4srec_file_free(&t);
    }
    depth--;
    return chain;
}

static void e4srec_load(E4SRecFile* f, const char* path) {
    memset(f, 0, sizeof(*f));
    const char* outer = input_begin(path);
    int dims[HEADER_DIMS];
    size_t nbytes = 0;
    f->payload = (char*)binfile_read(path, KIND_E4SREC, dims, &nbytes);
    E4SRecConfig c = {.V = dims[0], .C = dims[1], .F = dims[2], .L = dims[3], .NH = dims[4], .KVH = dims[5],
                      .HS = dims[6], .D = dims[7], .I = dims[8], .P1 = dims[9], .P2 = dims[10], .S = dims[11],
                      .rms_eps = bits_float(dims[12]), .rope_theta = bits_float(dims[13])};
    f->n_adapters = dims[14];
    f->has_state = dims[15];
    f->online_layers = dims[20];
    int lora_rank = dims[16], lora_targets = dims[18];
    check_range(path, "the adapter count", f->n_adapters, 0, c.L);
    check_range(path, "the training-state flag", f->has_state, 0, STATE_WITH_RECORD);
    check_range(path, "the online teacher's layers", f->online_layers, 0, f->has_state ? DEC_MAX_LAYERS : 0);
    check_range(path, "the LoRA rank", lora_rank, 0, LORA_MAX_RANK);
    check_range(path, "the LoRA targets", lora_targets, 0, LORA_ALL_TARGETS);
    if (lora_rank) check_range(path, "the LoRA alpha", bits_float(dims[17]), LORA_MIN_ALPHA, LORA_MAX_ALPHA);
    e4srec_validate_config(&c);  // before any allocation sized by it
    payload_must_hold(path, nbytes, 4.0 * c.I * c.D, "the item table");
    Cursor cur = {f->payload, nbytes, 0, path};
    int* instr = (int*)mallocCheck((c.P1 + 1) * sizeof(int));
    int* resp = (int*)mallocCheck((c.P2 + 1) * sizeof(int));
    cursor_take(&cur, instr, c.P1 * sizeof(int), "the instruction ids");
    cursor_take(&cur, resp, c.P2 * sizeof(int), "the response ids");
    tokenizer_read_from(&cur, &f->tok);
    for (int i = 0; i < c.P1 + c.P2; i++) {
        int id = i < c.P1 ? instr[i] : resp[i - c.P1];
        if (id < 0 || id >= c.V) die("'%s': prompt token %d is outside the vocabulary of %d", path, id, c.V);
    }
    f->item_table = (float*)mallocCheck((size_t)c.I * c.D * sizeof(float));
    cursor_take(&cur, f->item_table, (size_t)c.I * c.D * sizeof(float), "the item table");
    E4SRec* m = &f->model;
    e4srec_build(m, &c, f->item_table, instr, resp);
    if (lora_rank) {
        int32_t len = 0;
        char base[1024];
        cursor_take(&cur, &len, sizeof(len), "the base path's length");
        if (len < 1 || len >= (int32_t)sizeof(base)) die("'%s': base path length %d is outside 1..%zu: the file is damaged", path, len, sizeof(base) - 1);
        cursor_take(&cur, base, (size_t)len, "the base path");
        base[len] = 0;
        f->lora_chain = e4srec_load_frozen(m, path, base, (uint32_t)dims[19]) + 1;
        e4srec_add_lora(m, lora_rank, bits_float(dims[17]), lora_targets);
        snprintf(m->lora->base_path, sizeof(m->lora->base_path), "%s", base);
        m->lora->base_checksum = (uint32_t)dims[19];
    }
    float *params[E4SREC_MAX_TRAINED], *grads[E4SREC_MAX_TRAINED];
    size_t sizes[E4SREC_MAX_TRAINED];
    for (int i = 0, n = e4srec_trained(m, params, grads, sizes); i < n; i++) {
        cursor_take(&cur, params[i], sizes[i] * sizeof(float), lora_rank ? "the trained weights" : "the parameters");
    }
    size_t na = (size_t)f->n_adapters * c.D * c.C;
    f->adapters = na ? (float*)mallocCheck(na * sizeof(float)) : NULL;
    cursor_take(&cur, f->adapters, na * sizeof(float), "the adapters");
    if (f->online_layers) {
        E4SRecConfig tc = c;
        tc.L = f->online_layers;
        size_t sizes[E4SREC_NUM_PARAMS];
        e4srec_param_sizes(sizes, &tc);
        f->online_teacher_params = sizes_total(sizes, E4SREC_NUM_PARAMS);
        payload_must_hold(path, nbytes - cur.pos, 4.0 * f->online_teacher_params, "the online teacher");
        f->online_teacher = (float*)mallocCheck(f->online_teacher_params * sizeof(float));
        cursor_take(&cur, f->online_teacher, f->online_teacher_params * sizeof(float), "the online teacher");
    }
    f->state = cur;
    if (!f->has_state) cursor_done(&cur);
    free(instr);
    free(resp);
    input_end(outer);
}

// copies what src trained into dst (the same model): every weight, and the LoRA adapters
static void e4srec_copy_trained(E4SRec* dst, const E4SRec* src, const char* src_path) {
    const Lora *a = dst->lora, *b = src->lora;
    if (memcmp(&dst->cfg, &src->cfg, sizeof(E4SRecConfig)) != 0 || (a == NULL) != (b == NULL) ||
        (a && (a->rank != b->rank || a->targets != b->targets || a->alpha != b->alpha))) {
        die("'%s' holds a model of other dimensions or LoRA settings than this run's: use the flags the run started with", src_path);
    }
    memcpy(dst->params_memory, src->params_memory, dst->num_params * sizeof(float));
    if (a) memcpy(a->params_memory, b->params_memory, a->num_params * sizeof(float));
}

// the checksum of what an E4SRec computes with: its shape, prompt, item table and
// weights, LoRA adapters included. It keys what is computed from a model as it ran
// (a file's checksum would miss a model trained on in memory after it was written)
static uint32_t e4srec_checksum(const E4SRec* m) {
    const E4SRecConfig* c = &m->cfg;
    uint32_t h = fnv1a(FNV_START, c, sizeof(*c));
    h = fnv1a(h, m->instr, (size_t)c->P1 * sizeof(int));
    h = fnv1a(h, m->resp, (size_t)c->P2 * sizeof(int));
    h = fnv1a(h, m->item_table, (size_t)c->I * c->D * sizeof(float));
    h = fnv1a(h, m->params_memory, m->num_params * sizeof(float));
    if (m->lora) {  // the adapters and how they scale
        int settings[2] = {m->lora->rank, m->lora->targets};
        h = fnv1a(h, settings, sizeof(settings));
        h = fnv1a(h, &m->lora->alpha, sizeof(float));
        h = fnv1a(h, m->lora->params_memory, m->lora->num_params * sizeof(float));
    }
    return h;
}

static void e4srec_file_free(E4SRecFile* f) {
    e4srec_free(&f->model);
    tokenizer_free(&f->tok);
    free(f->item_table);
    free(f->adapters);
    free(f->online_teacher);
    free(f->payload);
    memset(f, 0, sizeof(*f));
}

// ----------------------------------------------------------------------------
// SASRec. header dims: I D L NH T dropout-bits has_state
// payload: params (f32, sasrec_param_sizes order) | [train state]

#define SASREC_DIMS 7

static void sasrec_save(const char* path, const SASRec* m, const TrainProgress* p, const Optimizer* o) {
    const SASRecConfig* c = &m->cfg;
    int dims[SASREC_DIMS] = {c->I, c->D, c->L, c->NH, c->T, 0, o ? STATE_WITH_RECORD : 0};
    float_bits(&dims[5], c->dropout);
    Buffer b = {0};
    ckpt_put_f32(&b, m->params_memory, m->num_params);
    if (o) ckpt_put_state(&b, p, o);
    binfile_write(path, KIND_SASREC, dims, SASREC_DIMS, b.data, b.size);
    free(b.data);
}

typedef struct {
    SASRec model;
    int has_state;
    char* payload;
    Cursor state;  // positioned at the train state when has_state
} SASRecFile;

static void sasrec_load(SASRecFile* f, const char* path) {
    memset(f, 0, sizeof(*f));
    int dims[HEADER_DIMS];
    size_t nbytes = 0;
    f->payload = (char*)binfile_read(path, KIND_SASREC, dims, &nbytes);
    SASRecConfig c = {.I = dims[0], .D = dims[1], .L = dims[2], .NH = dims[3], .T = dims[4], .dropout = bits_float(dims[5])};
    f->has_state = dims[6];
    const char* outer = input_begin(path);
    check_range(path, "the training-state flag", f->has_state, 0, STATE_WITH_RECORD);
    payload_must_hold(path, nbytes, 4.0 * c.I * c.D, "the item embeddings");
    sasrec_build(&f->model, &c);
    Cursor cur = {f->payload, nbytes, 0, path};
    cursor_take(&cur, f->model.params_memory, f->model.num_params * sizeof(float), "the parameters");
    f->state = cur;
    if (!f->has_state) cursor_done(&cur);
    input_end(outer);
}

static void sasrec_file_free(SASRecFile* f) {
    sasrec_free(&f->model);
    free(f->payload);
    memset(f, 0, sizeof(*f));
}
