// student.h: a DLLM2Rec student behind one interface: SASRec (read out at each
// history's last item), GRU4Rec or Caser, with the collaborative embedding
// distillation on its input items when ed > 0 (layers.h), and its checkpoint.
//
//   student_forward(s, X (B, T), B, rng)  ->  s->logits (B, I)
//   student_backward(s, dlogits (B, I))   ->  += into the model's and the embedding's gradients
//
// Checkpoint (binfile kind "dllm2rec"), header dims:
//   kind I D T L NH dropout-bits NF ed-bits C has_state
// payload: model params (f32, the model's own order) | [ed > 0: ed_w (D, C), ed_b (D),
//          e_T (I, C)] | [train state, checkpoint.h]
#pragma once
#include "caser.h"
#include "checkpoint.h"
#include "gru4rec.h"
#include "sasrec.h"

typedef enum { STUDENT_SASREC = 0, STUDENT_GRU4REC = 1, STUDENT_CASER = 2 } StudentKind;
#define STUDENT_KINDS 3
static const char* const STUDENT_FLAG_NAMES[] = {"sasrec", "gru4rec", "caser"};
static const char* const STUDENT_NAMES[] = {"SASRec", "GRU4Rec", "Caser"};

static int student_kind_parse(const char* name) {
    for (int k = 0; k < STUDENT_KINDS; k++) if (strcmp(name, STUDENT_FLAG_NAMES[k]) == 0) return k;
    return -1;
}

#define STUDENT_MAX_ED 1e6  // the embedding distillation weight a file may hold, and so --ed

typedef struct {
    StudentKind kind;
    int I;          // item table rows = n_items + 1
    int D;          // embedding width
    int T;          // history length
    int L, NH;      // SASRec blocks and heads
    float dropout;  // SASRec's every dropout site, Caser's on z; GRU4Rec has none
    int NF;         // Caser filters per height
    float ed;       // weight of the teacher's part of the input embedding (0: none)
    int C;          // teacher width (with ed > 0)
} StudentConfig;

typedef struct {
    StudentConfig cfg;
    SASRec sasrec;         // the one of these three that cfg.kind names is built
    GRU4Rec gru4rec;
    Caser caser;
    float* model_params;   // the built model's arenas
    float* model_grads;
    size_t model_n;
    CollabEmbed collab;    // used when cfg.ed > 0
    float* collab_params;  // (D*C + D) ed_w then ed_b
    float* collab_grads;   // (D*C + D)
    size_t collab_n;
    float* e_T;            // (I, C) the teacher's item table, owned; NULL without ed
    float* logits;         // (max_B, I)
    int max_B;
} Student;

static size_t student_num_params(const Student* s) { return s->model_n + s->collab_n; }

// builds the model named by cfg (zero weights); with cfg->ed > 0 the teacher's
// item table e_T (I, C) is copied in (NULL: zeros, for the caller to fill)
static void student_build(Student* s, const StudentConfig* cfg, const float* e_T) {
    memset(s, 0, sizeof(*s));
    s->cfg = *cfg;
    if (!(cfg->ed >= 0.0f) || (cfg->ed > 0.0f && cfg->C < 1)) die("student: --ed %g needs a teacher item table", cfg->ed);
    // the sizes of the embedding map and e_T, checked before they are allocated (the model's build checks the rest)
    check_range("student", "item table rows", cfg->I, 2, (double)MAX_ITEM_ID + 1);
    check_range("student", "width", cfg->D, 1, MAX_REC_WIDTH);
    if (cfg->ed > 0.0f) check_range("student", "teacher item width", cfg->C, 1, DEC_MAX_WIDTH);
    CollabEmbed* collab = NULL;
    if (cfg->ed > 0.0f) {
        size_t DC = (size_t)cfg->D * cfg->C;
        s->collab_n = DC + cfg->D;
        s->collab_params = (float*)callocCheck(s->collab_n, sizeof(float));
        s->collab_grads = (float*)callocCheck(s->collab_n, sizeof(float));
        s->e_T = (float*)callocCheck((size_t)cfg->I * cfg->C, sizeof(float));
        if (e_T) memcpy(s->e_T, e_T, (size_t)cfg->I * cfg->C * sizeof(float));
        CollabEmbed ce = {cfg->ed, cfg->C, s->e_T, s->collab_params, s->collab_params + DC, s->collab_grads, s->collab_grads + DC};
        s->collab = ce;
        collab = &s->collab;
    }
    if (cfg->kind == STUDENT_SASREC) {
        SASRecConfig c = {.I = cfg->I, .D = cfg->D, .L = cfg->L, .NH = cfg->NH, .T = cfg->T, .dropout = cfg->dropout};
        sasrec_build(&s->sasrec, &c);
        s->sasrec.collab = collab;
        s->model_params = s->sasrec.params_memory; s->model_grads = s->sasrec.grads_memory; s->model_n = s->sasrec.num_params;
    } else if (cfg->kind == STUDENT_GRU4REC) {
        GRU4RecConfig c = {.I = cfg->I, .D = cfg->D, .T = cfg->T};
        gru4rec_build(&s->gru4rec, &c);
        s->gru4rec.collab = collab;
        s->model_params = s->gru4rec.params_memory; s->model_grads = s->gru4rec.grads_memory; s->model_n = s->gru4rec.num_params;
    } else {
        CaserConfig c = {.I = cfg->I, .D = cfg->D, .T = cfg->T, .NF = cfg->NF, .dropout = cfg->dropout};
        caser_build(&s->caser, &c);
        s->caser.collab = collab;
        s->model_params = s->caser.params_memory; s->model_grads = s->caser.grads_memory; s->model_n = s->caser.num_params;
    }
}

// the std of the SASRec student's item embeddings at init: the authors' N(0, 0.01),
// as GRU4Rec and Caser draw theirs. SASRec's logits use this table as their output
// (method.md 6.2), and DROS squares them in its exponent: stage 1's N(0, 1) gave
// logits of rms ~6 and a BCE + DROS student that never left random ranking
#define STUDENT_ITEM_STD 0.01f

// each model's own initialisation; the embedding map as torch's Linear(C, D)
static void student_init_random(Student* s, Rng* rng) {
    if (s->cfg.kind == STUDENT_SASREC) sasrec_init_random_items(&s->sasrec, rng, STUDENT_ITEM_STD);
    else if (s->cfg.kind == STUDENT_GRU4REC) gru4rec_init_random(&s->gru4rec, rng);
    else caser_init_random(&s->caser, rng);
    if (s->collab_n) rng_fill_uniform(rng, s->collab_params, s->collab_n, 1.0f / sqrtf((float)s->cfg.C));
}

static void student_free(Student* s) {
    if (s->cfg.kind == STUDENT_SASREC) sasrec_free(&s->sasrec);
    else if (s->cfg.kind == STUDENT_GRU4REC) gru4rec_free(&s->gru4rec);
    else caser_free(&s->caser);
    free(s->collab_params); free(s->collab_grads); free(s->e_T); free(s->logits);
    memset(s, 0, sizeof(*s));
}

// logits (B, I) into s->logits for left-padded histories X (B, T); rng: dropout (training) or NULL
static void student_forward(Student* s, const int* X, int B, Rng* rng) {
    if (B > s->max_B) {
        free(s->logits);
        s->logits = (float*)mallocCheck((size_t)B * s->cfg.I * sizeof(float));
        s->max_B = B;
    }
    if (s->cfg.kind == STUDENT_SASREC) sasrec_last_forward(&s->sasrec, X, B, rng, s->logits);
    else if (s->cfg.kind == STUDENT_GRU4REC) gru4rec_forward(&s->gru4rec, X, B, s->logits);
    else caser_forward(&s->caser, X, B, rng, s->logits);
}

static void student_zero_grad(Student* s) {
    memset(s->model_grads, 0, s->model_n * sizeof(float));
    if (s->collab_n) memset(s->collab_grads, 0, s->collab_n * sizeof(float));
}

static void student_backward(Student* s, const float* dlogits) {
    if (s->cfg.kind == STUDENT_SASREC) sasrec_last_backward(&s->sasrec, dlogits);
    else if (s->cfg.kind == STUDENT_GRU4REC) gru4rec_backward(&s->gru4rec, dlogits);
    else caser_backward(&s->caser, dlogits);
}

// ----------------------------------------------------------------------------
// checkpoint

#define STUDENT_DIMS 11

static void student_save(const char* path, const Student* s, const TrainProgress* p, const Optimizer* o) {
    const StudentConfig* c = &s->cfg;
    int dims[STUDENT_DIMS] = {c->kind, c->I, c->D, c->T, c->L, c->NH, 0, c->NF, 0, c->C, o ? STATE_WITH_RECORD : 0};
    float_bits(&dims[6], c->dropout);
    float_bits(&dims[8], c->ed);
    Buffer b = {0};
    ckpt_put_f32(&b, s->model_params, s->model_n);
    if (s->collab_n) {
        ckpt_put_f32(&b, s->collab_params, s->collab_n);
        ckpt_put_f32(&b, s->e_T, (size_t)c->I * c->C);
    }
    if (o) ckpt_put_state(&b, p, o);
    binfile_write(path, KIND_DLLM2REC, dims, STUDENT_DIMS, b.data, b.size);
    free(b.data);
}

typedef struct {
    Student model;
    int has_state;
    char* payload;
    Cursor state;  // positioned at the train state when has_state
} StudentFile;

static void student_load(StudentFile* f, const char* path) {
    memset(f, 0, sizeof(*f));
    int dims[HEADER_DIMS];
    size_t nbytes = 0;
    f->payload = (char*)binfile_read(path, KIND_DLLM2REC, dims, &nbytes);
    StudentConfig c = {.kind = (StudentKind)dims[0], .I = dims[1], .D = dims[2], .T = dims[3], .L = dims[4], .NH = dims[5],
                       .dropout = bits_float(dims[6]), .NF = dims[7], .ed = bits_float(dims[8]), .C = dims[9]};
    f->has_state = dims[10];
    const char* outer = input_begin(path);
    check_range(path, "the student kind", dims[0], 0, 2);
    check_range(path, "the training-state flag", f->has_state, 0, STATE_WITH_RECORD);
    check_range(path, "the embedding distillation weight", c.ed, 0, STUDENT_MAX_ED);
    if (c.ed > 0.0f) check_range(path, "the teacher item width", c.C, 1, DEC_MAX_WIDTH);
    payload_must_hold(path, nbytes, 4.0 * c.I * c.D, "the item embeddings");
    Cursor cur = {f->payload, nbytes, 0, path};
    student_build(&f->model, &c, NULL);
    cursor_take(&cur, f->model.model_params, f->model.model_n * sizeof(float), "the parameters");
    if (f->model.collab_n) {
        cursor_take(&cur, f->model.collab_params, f->model.collab_n * sizeof(float), "the embedding distillation map");
        cursor_take(&cur, f->model.e_T, (size_t)c.I * c.C * sizeof(float), "the teacher item table");
    }
    f->state = cur;
    if (!f->has_state) cursor_done(&cur);
    input_end(outer);
}

static void student_file_free(StudentFile* f) {
    student_free(&f->model);
    free(f->payload);
    memset(f, 0, sizeof(*f));
}
