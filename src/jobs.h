// jobs.h: each recommender as the trainer sees it (a Recommender): how it
// samples and steps on a batch (of users; of sample ids for the DLLM2Rec
// students), scores histories, saves, and loads (the best weights, or the state to resume).
// E4SRec covers the teacher and plain E4SRec_l (CE only) and the SLMRec
// student (the distillation loss against a frozen or co-trained teacher).
// An E4SRec job runs on the CPU, or on the GPU once e4srec_job_to_gpu gave it a
// handle (a CUDA build): the same batches, the GPU's step instead of the CPU's,
// and the CPU model and Optimizer refreshed from the GPU before every save, so
// checkpoints and --resume are the same on both devices.
#pragma once
#include "dllm2rec.h"
#include "signals.h"
#include "student.h"
#include "train.h"
#ifdef SLMREC_CUDA
#include "gpu.h"
#endif

typedef struct {
    E4SRec* model;        // the model being trained (the student when distilling)
    SLMRec* slm;          // NULL: plain CE; else the student's distillation
    int online;           // with slm: the teacher is trained by its own CE at the same time
    const SeqData* data;
    const Tokenizer* tok; // saved inside every checkpoint
    SampleList samples;   // empty: an epoch goes over the users, one cut each; else over every (user, cut)
                          // of the train prefixes, a sample id a unit (--samples every-cut)
    int last_cut;         // with samples empty: each user's cut is the last of the prefix (--samples last-cut),
                          // not a random one (the peer's one-cut)
    int* histories;       // (max_batch, S)
    int* targets;         // (max_batch)
    int max_batch;
    struct GpuE4SRec* gpu;          // non-NULL: the model lives on the GPU (src/gpu.h)
    struct GpuE4SRec* gpu_teacher;  // with slm on the GPU: the frozen teacher, forward only
} E4SRecJob;

static void e4srec_job_init(E4SRecJob* j, E4SRec* model, SLMRec* slm, int online, const SeqData* data,
                            const Tokenizer* tok, int max_batch) {
    j->model = model;
    j->slm = slm;
    j->online = online;
    j->data = data;
    j->tok = tok;
    j->max_batch = max_batch;
    j->gpu = j->gpu_teacher = NULL;
    memset(&j->samples, 0, sizeof(j->samples));
    j->last_cut = 0;
    j->histories = (int*)mallocCheck((size_t)max_batch * model->cfg.S * sizeof(int));
    j->targets = (int*)mallocCheck((size_t)max_batch * sizeof(int));
}

// an epoch over every (user, cut) sample of the train prefixes (--samples every-cut), as
// the DLLM2Rec students and SASRec's every-position loss see the data, instead of one
// random cut per user: the units of an epoch become sample ids (method.md 2.4)
static void e4srec_job_every_cut(E4SRecJob* j) {
    sample_list_build(&j->samples, j->data);
}

// ----------------------------------------------------------------------------
// the GPU side of a job (CUDA builds)

#ifdef SLMREC_CUDA
#define GPU_LOSS_EVERY 16  // GPU steps between reads of their losses (each read waits for the GPU to finish)

// logs the device memory a handle about to be made will take, arena by arena (src/gpu_plan.h)
static void gpu_plan_log(const char* what, const E4SRecConfig* c, int n_adapters, int B, int use_bf16, int train, int position_ce) {
    GpuPlan p = gpu_plan(c, n_adapters, B, use_bf16, train, position_ce);
    char line[640];
    gpu_plan_format(line, sizeof(line), what, &p);
    logf_("  gpu memory plan, %s\n", line);
}

// moves the job's model (and, distilling, a forward-only copy of its frozen teacher)
// to the GPU, which gpu_require has found usable. o: the job's Optimizer (its AdamW
// settings; fresh moments) and batch its training batch, or o NULL to only score
// (max_batch rows). Scoring batches larger than the handle go through it in parts.
// Online distillation trains two models under one clipping norm and stays on the CPU.
static void e4srec_job_to_gpu(E4SRecJob* j, const Optimizer* o, int batch, int use_bf16) {
    if (j->online) die("--online distillation runs on the CPU only: add --device cpu");
    if (j->model->lora) die("LoRA training runs on the CPU for now (its CUDA twin is not written yet): add --device cpu");
    const AdamWConfig* opt = o ? &o->cfg : NULL;
    int rows = o ? batch : j->max_batch;
    int position_ce = j->model->position_ce > 0.0f;  // a training handle reads its weight from the model
    if (j->slm) {
        gpu_plan_log("frozen teacher (forward only)", &j->slm->teacher->cfg, 0, rows, use_bf16, 0, 0);
        j->gpu_teacher = gpu_e4srec_create(j->slm->teacher, rows, use_bf16, NULL);
        gpu_plan_log("student (training)", &j->model->cfg, j->slm->blocks - 1, rows, use_bf16, 1, position_ce);
        j->gpu = gpu_slmrec_create(j->slm, j->gpu_teacher, rows, use_bf16, opt);
    } else {
        gpu_plan_log(o ? "model (training)" : "model (forward only)", &j->model->cfg, 0, rows, use_bf16, o != NULL, position_ce);
        j->gpu = gpu_e4srec_create(j->model, rows, use_bf16, opt);
    }
}

// forward, backward and AdamW in one GPU call, queued; the CPU Optimizer keeps count
// (step, rate, gradient norm) for the progress lines and the checkpoint. The losses are
// read back (a wait) when the loop asks for a report, or every GPU_LOSS_EVERY steps.
static float e4srec_job_train_batch_gpu(E4SRecJob* j, Optimizer* o, int n, int report) {
    if (j->model->dropout > 0.0f) gpu_e4srec_set_dropout_seed(j->gpu, j->model->dropout_seed);  // the CPU's masks
    int unread = gpu_e4srec_train_step(j->gpu, j->histories, j->targets, n);
    o->last_lr = lr_at(&o->cfg, o->step);
    o->step++;
    if (!report && unread < GPU_LOSS_EVERY) return LOSS_PENDING;
    float mean;
    gpu_e4srec_losses(j->gpu, NULL, &o->last_grad_norm, &mean);
    return mean;
}
#endif

static void e4srec_job_free(E4SRecJob* j) {
#ifdef SLMREC_CUDA
    gpu_e4srec_free(j->gpu);
    gpu_e4srec_free(j->gpu_teacher);
#endif
    sample_list_free(&j->samples);
    free(j->histories);
    free(j->targets);
}

// each step's dropout masks come from the run's RNG (saved with the training state, so a
// resumed run draws what an unbroken one would). A model without dropout draws nothing:
// its run takes the same samples as before the flag existed.
static void e4srec_job_seed_dropout(E4SRecJob* j, Rng* rng) {
    E4SRec* models[2] = {j->model, j->online ? j->slm->teacher : NULL};
    for (int i = 0; i < 2; i++) {
        if (models[i] == NULL || models[i]->dropout <= 0.0f) continue;
        uint64_t high = rng_u32(rng);
        models[i]->dropout_seed = high << 32 | rng_u32(rng);
    }
}

// units: user ids (one cut each), or sample ids with e4srec_job_every_cut
static float e4srec_job_train_batch(void* ctx, Optimizer* o, const int* units, int n, Rng* rng, int report) {
    E4SRecJob* j = (E4SRecJob*)ctx;
    int S = j->model->cfg.S;
    if (j->samples.count) {
        for (int i = 0; i < n; i++) j->targets[i] = sample_history(j->histories + (size_t)i * S, &j->samples, units[i], S);
    } else {
        e4srec_sample(j->data, units, n, S, j->last_cut, rng, j->histories, j->targets);
    }
    e4srec_job_seed_dropout(j, rng);
#ifdef SLMREC_CUDA
    if (j->gpu) return e4srec_job_train_batch_gpu(j, o, n, report);
#endif
    (void)report;  // the CPU reports every step
    float loss;
    if (j->slm == NULL) {
        loss = e4srec_forward(j->model, j->histories, j->targets, n);
        e4srec_zero_grad(j->model);
        e4srec_ce_backward(j->model, 1.0f);
        e4srec_backward(j->model);
    } else {
        loss = slmrec_forward(j->slm, j->histories, j->targets, n).total;
        if (j->online) {
            E4SRec* teacher = j->slm->teacher;
            e4srec_zero_grad(teacher);
            e4srec_ce_backward(teacher, 1.0f);
            e4srec_backward(teacher);
        }
        slmrec_backward(j->slm);
    }
    optimizer_step(o);
    return loss;
}

static void e4srec_job_score(void* ctx, const int* histories, int n, float* scores) {
    E4SRecJob* j = (E4SRecJob*)ctx;
#ifdef SLMREC_CUDA
    if (j->gpu) { gpu_e4srec_score(j->gpu, histories, n, scores, 0, NULL); return; }
#endif
    e4srec_forward(j->model, histories, NULL, n);
    memcpy(scores, j->model->acts.logits, (size_t)n * j->model->cfg.I * sizeof(float));
}

static void e4srec_job_save(void* ctx, const char* path, const TrainProgress* p, const Optimizer* o) {
    E4SRecJob* j = (E4SRecJob*)ctx;
#ifdef SLMREC_CUDA
    if (j->gpu) {  // the GPU's parameters, adapters and moments into the CPU model and Optimizer
        gpu_e4srec_get_params(j->gpu, j->model, j->slm);
        int gpu_step = 0;
        if (o) gpu_e4srec_get_moments(j->gpu, o->m, o->v, &gpu_step);
        if (o && gpu_step != o->step) die("%s: the GPU took %d optimizer steps, the run counted %d", path, gpu_step, o->step);
    }
#endif
    int n_adapters = j->slm ? j->slm->blocks - 1 : 0;
    const E4SRec* online_teacher = j->online && o ? j->slm->teacher : NULL;  // the state holds what it trains
    e4srec_save(path, j->model, j->tok, j->slm ? j->slm->adapters : NULL, n_adapters, online_teacher, p, o);
}

// an --online run's state must hold the teacher as it had trained
static void online_state_check(const char* path, const E4SRecFile* f) {
    if (f->online_layers == 0) {
        die("'%s' holds no online teacher (a build before --online could resume wrote it): start the run again without --resume", path);
    }
}

static void e4srec_job_load(void* ctx, const char* path, TrainProgress* p, Optimizer* o) {
    E4SRecJob* j = (E4SRecJob*)ctx;
    E4SRecFile f;
    e4srec_load(&f, path);
    if (o) ckpt_check_state(path, f.has_state, &f.state, p->record);
    if (o && j->online) {  // the teacher as it had trained when the state was saved
        E4SRec* teacher = j->slm->teacher;
        online_state_check(path, &f);
        if (f.online_layers != teacher->cfg.L || f.online_teacher_params != teacher->num_params) {
            die("'%s' holds an online teacher of %d layers, this run's has %d: the file is damaged", path, f.online_layers, teacher->cfg.L);
        }
        memcpy(teacher->params_memory, f.online_teacher, teacher->num_params * sizeof(float));
    }
    e4srec_copy_trained(j->model, &f.model, path);
    int n_adapters = j->slm ? j->slm->blocks - 1 : 0;
    if (f.n_adapters != n_adapters) die("'%s' has %d adapters, this run has %d: use the --blocks it was trained with", path, f.n_adapters, n_adapters);
    if (n_adapters) memcpy(j->slm->adapters, f.adapters, j->slm->num_adapter_params * sizeof(float));
    if (o) {
        ckpt_take_state(&f.state, p, o);
        cursor_done(&f.state);
    }
    e4srec_file_free(&f);
#ifdef SLMREC_CUDA
    if (j->gpu) {
        gpu_e4srec_set_params(j->gpu, j->model, j->slm);
        if (o) gpu_e4srec_set_moments(j->gpu, o->m, o->v, o->step);
    }
#endif
}

static Recommender e4srec_recommender(E4SRecJob* j, const char* name) {
    Recommender t = {name, j, j->model->cfg.I, j->model->cfg.S, e4srec_job_train_batch, e4srec_job_score,
                   e4srec_job_save, e4srec_job_load, j->samples.count};
    return t;
}

// the optimizer over what a job trains: the model (with LoRA, its adapters, input_proj
// and score), the distillation adapters, the online teacher
static void e4srec_job_optimizer(Optimizer* o, const E4SRecJob* j, AdamWConfig cfg) {
    memset(o, 0, sizeof(*o));
    o->cfg = cfg;
    float *params[E4SREC_MAX_TRAINED], *grads[E4SREC_MAX_TRAINED];
    size_t sizes[E4SREC_MAX_TRAINED];
    for (int i = 0, n = e4srec_trained(j->model, params, grads, sizes); i < n; i++) optimizer_add(o, params[i], grads[i], sizes[i]);
    if (j->slm && j->slm->num_adapter_params) optimizer_add(o, j->slm->adapters, j->slm->dadapters, j->slm->num_adapter_params);
    if (j->online) optimizer_add(o, j->slm->teacher->params_memory, j->slm->teacher->grads_memory, j->slm->teacher->num_params);
    optimizer_ready(o);
}

// ----------------------------------------------------------------------------
// SASRec: every position of the last max_len + 1 train items, full-softmax CE

typedef struct {
    SASRec* model;
    const SeqData* data;
    int* x;  // (max_batch, T) inputs
    int* y;  // (max_batch, T) next-item targets, 0 = none
} SASRecJob;

static void sasrec_job_init(SASRecJob* j, SASRec* model, const SeqData* data, int max_batch) {
    j->model = model;
    j->data = data;
    j->x = (int*)mallocCheck((size_t)max_batch * model->cfg.T * sizeof(int));
    j->y = (int*)mallocCheck((size_t)max_batch * model->cfg.T * sizeof(int));
}

static void sasrec_job_free(SASRecJob* j) {
    free(j->x);
    free(j->y);
}

static float sasrec_job_train_batch(void* ctx, Optimizer* o, const int* users, int n, Rng* rng, int report) {
    SASRecJob* j = (SASRecJob*)ctx;
    (void)report;  // on the CPU: every step reports
    sasrec_batch(j->data, users, n, j->model->cfg.T, j->x, j->y);
    float loss = sasrec_forward(j->model, j->x, j->y, n, rng);
    sasrec_zero_grad(j->model);
    sasrec_backward(j->model);
    optimizer_step(o);
    return loss;
}

static void sasrec_job_score(void* ctx, const int* histories, int n, float* scores) {
    SASRecJob* j = (SASRecJob*)ctx;
    sasrec_last_forward(j->model, histories, n, NULL, scores);
}

static void sasrec_job_save(void* ctx, const char* path, const TrainProgress* p, const Optimizer* o) {
    sasrec_save(path, ((SASRecJob*)ctx)->model, p, o);
}

static void sasrec_job_load(void* ctx, const char* path, TrainProgress* p, Optimizer* o) {
    SASRecJob* j = (SASRecJob*)ctx;
    SASRecFile f;
    sasrec_load(&f, path);
    if (o) ckpt_check_state(path, f.has_state, &f.state, p->record);
    if (memcmp(&f.model.cfg, &j->model->cfg, sizeof(SASRecConfig)) != 0) {
        die("'%s' holds a SASRec of other dimensions than this run's: use the flags it was trained with", path);
    }
    memcpy(j->model->params_memory, f.model.params_memory, j->model->num_params * sizeof(float));
    if (o) {
        ckpt_take_state(&f.state, p, o);
        cursor_done(&f.state);
    }
    sasrec_file_free(&f);
}

static Recommender sasrec_recommender(SASRecJob* j, const char* name) {
    Recommender t = {name, j, j->model->cfg.I, j->model->cfg.T, sasrec_job_train_batch, sasrec_job_score,
                   sasrec_job_save, sasrec_job_load, 0};
    return t;
}

// ----------------------------------------------------------------------------
// DLLM2Rec students: every (user, cut) sample of the train prefixes once an
// epoch, a batch a list of sample ids (SampleList, signals.h) that joins each
// row to its teacher row; read out at the history's last item, the DLLM2Rec
// objective (dllm2rec.h) against the cached teacher signals, or the base loss alone

typedef struct {
    Student* model;
    const TeacherSignals* signals;  // NULL: no ranking distillation
    DLLM2RecConfig cfg;
    DLLM2RecLoss loss;
    SampleList samples;   // a batch is a list of sample ids
    float* propensity;    // (I) DROS's ((pop + 1) / sum)^0.05, pop = occurrences in the train prefixes
    int* x;               // (max_batch, T)
    int* target;          // (max_batch)
    int* neg;             // (max_batch)
    int* cand;            // (max_batch, K)
    float* cand_score;    // (max_batch, K)
    float* dlogits;       // (max_batch, I)
} DLLM2RecJob;

// signals: the teacher's (NULL without a teacher); the job reads their candidates only
// when cfg has the ranking distillation (dllm2rec_uses_teacher_ranking)
static void dllm2rec_job_init(DLLM2RecJob* j, Student* model, const SeqData* data, const TeacherSignals* signals,
                              const DLLM2RecConfig* cfg, int max_batch) {
    memset(j, 0, sizeof(*j));
    j->model = model;
    j->cfg = *cfg;
    int I = model->cfg.I, K = cfg->K;
    sample_list_build(&j->samples, data);
    if (dllm2rec_uses_teacher_ranking(cfg)) {
        if (signals == NULL) die("dllm2rec: --lam %g distils the teacher's ranking, and there are no teacher signals", cfg->lam);
        if (signals->n_samples != j->samples.count || signals->K != K) {
            die("dllm2rec: the teacher signals hold the top-%d of %d samples, this run reads the top-%d of %d",
                signals->K, signals->n_samples, K, j->samples.count);
        }
        j->signals = signals;
    }
    double* pop = (double*)callocCheck(I, sizeof(double));
    double total = 0.0;
    for (int u = 0; u < data->n_users; u++) {
        for (int t = 0; t < train_len(data, u); t++) pop[seq_items(data, u)[t]] += 1.0;
    }
    for (int i = 0; i < I; i++) total += pop[i] + 1.0;
    j->propensity = (float*)mallocCheck(I * sizeof(float));
    for (int i = 0; i < I; i++) j->propensity[i] = (float)pow((pop[i] + 1.0) / total, 0.05);
    free(pop);
    j->x = (int*)mallocCheck((size_t)max_batch * model->cfg.T * sizeof(int));
    j->target = (int*)mallocCheck(max_batch * sizeof(int));
    j->neg = (int*)mallocCheck(max_batch * sizeof(int));
    j->cand = (int*)mallocCheck((size_t)max_batch * K * sizeof(int));
    j->cand_score = (float*)mallocCheck((size_t)max_batch * K * sizeof(float));
    j->dlogits = (float*)mallocCheck((size_t)max_batch * I * sizeof(float));
}

static void dllm2rec_job_free(DLLM2RecJob* j) {
    dllm2rec_loss_free(&j->loss);
    sample_list_free(&j->samples);
    free(j->propensity); free(j->x); free(j->target); free(j->neg);
    free(j->cand); free(j->cand_score); free(j->dlogits);
}

static float dllm2rec_job_train_batch(void* ctx, Optimizer* o, const int* samples, int n, Rng* rng, int report) {
    DLLM2RecJob* j = (DLLM2RecJob*)ctx;
    (void)report;  // on the CPU: every step reports
    Student* s = j->model;
    int T = s->cfg.T, K = j->cfg.K, n_items = s->cfg.I - 1;
    for (int i = 0; i < n; i++) {
        int id = samples[i];
        j->target[i] = sample_history(j->x + (size_t)i * T, &j->samples, id, T);
        do j->neg[i] = 1 + rng_int(rng, n_items); while (j->neg[i] == j->target[i] && n_items > 1);
        if (j->signals) {
            const int* cand;
            const float* score;
            signals_row(j->signals, id, &cand, &score);
            memcpy(j->cand + (size_t)i * K, cand, K * sizeof(int));
            memcpy(j->cand_score + (size_t)i * K, score, K * sizeof(float));
        }
    }
    student_forward(s, j->x, n, rng);
    DLLM2RecBatch bt = {n, s->cfg.I, j->target, j->neg, j->signals ? j->cand : NULL, j->cand_score, j->propensity};
    float loss = dllm2rec_loss_forward(&j->loss, s->logits, &bt, &j->cfg).total;
    dllm2rec_loss_backward(j->dlogits, s->logits, &bt, &j->loss, &j->cfg);
    student_zero_grad(s);
    student_backward(s, j->dlogits);
    optimizer_step(o);
    return loss;
}

// scores (n, I) of a student, ctx = the Student
static void student_score(void* ctx, const int* histories, int n, float* scores) {
    Student* s = (Student*)ctx;
    student_forward(s, histories, n, NULL);
    memcpy(scores, s->logits, (size_t)n * s->cfg.I * sizeof(float));
}

static void dllm2rec_job_score(void* ctx, const int* histories, int n, float* scores) {
    student_score(((DLLM2RecJob*)ctx)->model, histories, n, scores);
}

// a loaded student as eval and recommend see it: scoring only
static Recommender student_scorer(Student* s) {
    Recommender t = {"model", s, s->cfg.I, s->cfg.T, NULL, student_score, NULL, NULL, 0};
    return t;
}

static void dllm2rec_job_save(void* ctx, const char* path, const TrainProgress* p, const Optimizer* o) {
    student_save(path, ((DLLM2RecJob*)ctx)->model, p, o);
}

static void dllm2rec_job_load(void* ctx, const char* path, TrainProgress* p, Optimizer* o) {
    DLLM2RecJob* j = (DLLM2RecJob*)ctx;
    StudentFile f;
    student_load(&f, path);
    if (o) ckpt_check_state(path, f.has_state, &f.state, p->record);
    if (memcmp(&f.model.cfg, &j->model->cfg, sizeof(StudentConfig)) != 0) {
        die("'%s' holds a student of another configuration than this run's: use the flags it was trained with", path);
    }
    memcpy(j->model->model_params, f.model.model_params, j->model->model_n * sizeof(float));
    if (j->model->collab_n) memcpy(j->model->collab_params, f.model.collab_params, j->model->collab_n * sizeof(float));
    if (o) {
        ckpt_take_state(&f.state, p, o);
        cursor_done(&f.state);
    }
    student_file_free(&f);
}

static Recommender dllm2rec_recommender(DLLM2RecJob* j, const char* name) {
    Recommender t = {name, j, j->model->cfg.I, j->model->cfg.T, dllm2rec_job_train_batch, dllm2rec_job_score,
                   dllm2rec_job_save, dllm2rec_job_load, j->samples.count};
    return t;
}

// the optimizer over a student: its model, and the embedding distillation's map
static void dllm2rec_job_optimizer(Optimizer* o, const DLLM2RecJob* j, AdamWConfig cfg) {
    memset(o, 0, sizeof(*o));
    o->cfg = cfg;
    optimizer_add(o, j->model->model_params, j->model->model_grads, j->model->model_n);
    if (j->model->collab_n) optimizer_add(o, j->model->collab_params, j->model->collab_grads, j->model->collab_n);
    optimizer_ready(o);
}

// before a run that resumes writes anything: the training state at last_path, when there
// is one, must record this run's record (ckpt_check_state), whichever model it holds, and
// an --online run's must hold its teacher
static void resume_check(const char* last_path, const RunRecord* record, int online) {
    if (access(last_path, F_OK) != 0) return;
    int kind = binfile_kind(last_path);
    if (kind == KIND_E4SREC) {
        E4SRecFile f;
        e4srec_load(&f, last_path);
        ckpt_check_state(last_path, f.has_state, &f.state, record);
        if (online) online_state_check(last_path, &f);
        e4srec_file_free(&f);
    } else if (kind == KIND_SASREC) {
        SASRecFile f;
        sasrec_load(&f, last_path);
        ckpt_check_state(last_path, f.has_state, &f.state, record);
        sasrec_file_free(&f);
    } else if (kind == KIND_DLLM2REC) {
        StudentFile f;
        student_load(&f, last_path);
        ckpt_check_state(last_path, f.has_state, &f.state, record);
        student_file_free(&f);
    } else {
        die("'%s' holds %s %s, not a training state to resume from", last_path, a_or_an(bin_kind_name(kind)), bin_kind_name(kind));
    }
}
