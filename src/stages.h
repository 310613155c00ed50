// stages.h: the pipeline's stages. Each trains one model through the training
// loop (train.h), reloads its best-on-valid weights and tests it: stage 1's SASRec,
// an E4SRec model (the teacher, a plain E4SRec_l, the SLMRec student), a DLLM2Rec
// student. Beside them: what each stage records for --resume, the results table
// and JSON, the run's output directory and log, the whole pipeline, and any model
// file loaded for scoring (eval, recommend).
#pragma once
#include "config.h"
#include "jobs.h"
#include "stats.h"

// ----------------------------------------------------------------------------
// run records (checkpoint.h): what each stage computes, from its flags and inputs.
// A stage saves its record with its training state, and --resume refuses a state
// whose record differs in any line. Commands check it before they write anything.

static void record_data(RunRecord* r, const Config* c, const SeqData* d) {
    r->len = 0;
    r->text[0] = 0;
    run_record_add(r, "--data", "%d users, %d items, %d events (fnv %08x)", d->n_users, d->n_items, d->n_events, seqdata_checksum(d));
    run_record_add(r, "--max-len", "%d", c->max_len);
}

static void record_sasrec(RunRecord* r, const Config* c, const SeqData* d) {
    record_data(r, c, d);
    run_record_add(r, "--sasrec-dim", "%d", c->sas_dim);
    run_record_add(r, "--sasrec-blocks", "%d", c->sas_blocks);
    run_record_add(r, "--sasrec-heads", "%d", c->sas_heads);
    run_record_add(r, "--sasrec-dropout", "%s", float_text(c->sas_dropout).s);
}

// an E4SRec model m (built and started), the SLMRec student of teacher when given
static void record_e4srec(RunRecord* r, const Config* c, const SeqData* d, const E4SRec* m, const E4SRec* teacher) {
    const E4SRecConfig* e = &m->cfg;
    record_data(r, c, d);
    if (teacher) {
        run_record_add(r, "--teacher", "weights fnv %08x", e4srec_checksum(teacher));
        run_record_add(r, "--blocks", "%d", c->blocks);
        run_record_add(r, "--lambda-cos", "%s", float_text(c->lambda_cos).s);
        run_record_add(r, "--lambda-norm", "%s", float_text(c->lambda_norm).s);
        run_record_add(r, "--lambda-ms", "%s", float_text(c->lambda_ms).s);
        run_record_add(r, "--online", "%s", c->online ? "on" : "off");
    }
    run_record_add(r, "layers", "%d", e->L);
    run_record_add(r, "--hidden", "%d", e->C);
    run_record_add(r, "--ffn", "%d", e->F);
    run_record_add(r, "--heads", "%d", e->NH);
    run_record_add(r, "--kv-heads", "%d", e->KVH);
    run_record_add(r, "--sasrec", "an item table of %d x %d (fnv %08x)", e->I, e->D,
                   fnv1a(FNV_START, m->item_table, (size_t)e->I * e->D * sizeof(float)));
    run_record_add(r, "--instruction/--response", "%d + %d tokens of a vocabulary of %d (fnv %08x)", e->P1, e->P2, e->V,
                   fnv1a(fnv1a(FNV_START, m->instr, (size_t)e->P1 * sizeof(int)), m->resp, (size_t)e->P2 * sizeof(int)));
    if (c->init) run_record_add(r, "--init", "a base of fnv %08x", binfile_checksum(c->init));
    else run_record_add(r, "--init", "none");
    run_record_add(r, "--lora-rank", "%d", m->lora ? m->lora->rank : 0);
    if (m->lora) {
        run_record_add(r, "--lora-alpha", "%s", float_text(m->lora->alpha).s);
        run_record_add(r, "--lora-targets", "%d (bit mask)", m->lora->targets);
        run_record_add(r, "--lora-base", "fnv %08x", m->lora->base_checksum);
    }
    run_record_add(r, "--precision", "%s", c->precision);
    run_record_add(r, "--samples", "%s", c->samples);
    run_record_add(r, "--position-ce", "%s", float_text(c->position_ce).s);
    // recorded when on, so that a run begun before the flag existed (no dropout) still resumes
    if (c->decoder_dropout > 0.0f) run_record_add(r, "--decoder-dropout", "%s", float_text(c->decoder_dropout).s);
}

// a student's dropout: --dropout, or its kind's own default
static float student_dropout(const Config* c, StudentKind kind) {
    if (c->st_dropout >= 0.0f) return c->st_dropout;
    return kind == STUDENT_SASREC ? c->sas_dropout : kind == STUDENT_CASER ? 0.1f : 0.0f;
}

// a student's learning rate: --student-lr, or its kind's own default, chosen on valid
// NDCG@10 (docs/results.md): SASRec and GRU4Rec 3e-3, Caser 1e-3 (the authors')
static float student_lr(const Config* c, StudentKind kind) {
    if (c->st_lr > 0.0f) return c->st_lr;
    return kind == STUDENT_CASER ? 1e-3f : 3e-3f;
}

// a DLLM2Rec student with weights lam and ed, distilled from the teacher whose weights
// have checksum teacher_checksum (unused when both weights are 0)
static void record_student(RunRecord* r, const Config* c, const SeqData* d, StudentKind kind, float lam, float ed,
                           uint32_t teacher_checksum) {
    record_data(r, c, d);
    run_record_add(r, "--student", "%s", STUDENT_FLAG_NAMES[kind]);
    run_record_add(r, "--dim", "%d", c->st_dim);
    run_record_add(r, "--dropout", "%s", float_text(student_dropout(c, kind)).s);
    if (kind == STUDENT_SASREC) run_record_add(r, "--sasrec-blocks/--sasrec-heads", "%d/%d", c->sas_blocks, c->sas_heads);
    if (kind == STUDENT_CASER) run_record_add(r, "--caser-filters", "%d", c->caser_filters);
    DLLM2RecConfig dc = config_dllm2rec(c);
    dc.lam = lam;
    run_record_add(r, "--base-loss", "%s", c->base_loss);
    if (dc.base == BASE_BCE_DROS) {
        run_record_add(r, "--dros-alpha/--dros-beta", "%s/%s", float_text(dc.dros_alpha).s, float_text(dc.dros_beta).s);
    }
    run_record_add(r, "--lam", "%s", float_text(lam).s);
    run_record_add(r, "--ed", "%s", float_text(ed).s);
    if (dllm2rec_uses_teacher_ranking(&dc)) {
        run_record_add(r, "--topk", "%d", dc.K);
        run_record_add(r, "--gammas", "%s,%s,%s", float_text(dc.gamma_pos).s, float_text(dc.gamma_conf).s, float_text(dc.gamma_cons).s);
        run_record_add(r, "--rd-neg", "%s", c->rd_neg);
    }
    if (lam > 0.0f || ed > 0.0f) run_record_add(r, "--teacher", "weights fnv %08x", teacher_checksum);
}

// with --resume: the state a stage of file stem `stem` would continue from must be of this record
static void resume_precheck(const Config* c, const char* stem, const RunRecord* r) {
    if (!c->resume) return;
    char last[1200];
    snprintf(last, sizeof(last), "%s/%s.last.bin", c->out, stem);
    resume_check(last, r, c->online);
}

static void read_data(SeqData* d, const Config* c) {
    if (c->data) {
        seqdata_load(d, c->data, 0);
    } else {
        synth_generate(d, SYNTH_USERS, SYNTH_ITEMS, SYNTH_MEAN_LEN, SYNTH_SEED);
    }
}

static void log_data(const SeqData* d, const Config* c) {
    logf_("data: %s: %d users, %d items, %d events\n", c->data ? c->data : "built-in synthetic", d->n_users, d->n_items, d->n_events);
}

// the optimizer steps of an epoch of t: over its training units (training_units), batch at a time
static int steps_per_epoch(const Recommender* t, const SeqData* d, int batch) {
    int* units = (int*)mallocCheck((size_t)max_int(d->n_users, t->n_samples) * sizeof(int));
    int n = training_units(t, d, units);
    free(units);
    return (n + batch - 1) / batch;
}

// ----------------------------------------------------------------------------
// results: one row per model, printed as a table and written as JSON

typedef struct {
    char name[32];
    int layers;
    size_t params;
    double train_seconds, infer_seconds;
    int epochs, best_epoch;
    float best_valid;
    int stopped;  // training was cut short by --stop-after
    int timed;    // --time-steps: steps were timed, nothing trained, no test
    Metrics test;
    float* test_ndcg;  // (n_users) each test user's full NDCG@10, for the paired comparisons; results_free
} ResultRow;

// the comparisons a table makes (A against B, rows of it) and what the paired bootstrap says of each
typedef struct {
    int n;
    int a[16], b[16];
    PairedDiff diff[16];
} Comparisons;

static void results_free(ResultRow* rows, int n) {
    for (int i = 0; i < n; i++) {
        free(rows[i].test_ndcg);
        rows[i].test_ndcg = NULL;
    }
}

// a trained model's best weights (stem.bin, stem: <out>/<file stem>; on the GPU too when its job
// runs there), tested and timed; each user's NDCG@10 also goes to <stem>.test_ndcg.tsv. After
// --time-steps there is nothing to test: the row says so
static void result_test(ResultRow* r, const Recommender* t, const SeqData* d, const Negatives* test_neg, int eval_batch,
                        const char* name, const char* stem, int layers, size_t params, const TrainResult* tr) {
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->timed = tr->timed;
    if (r->timed) return;
    char path[1200];
    snprintf(path, sizeof(path), "%s.bin", stem);
    t->load(t->model, path, NULL, NULL);
    r->layers = layers;
    r->params = params;
    r->train_seconds = tr->train_seconds;
    r->epochs = tr->epochs;
    r->best_epoch = tr->best_epoch;
    r->best_valid = tr->best_valid;
    r->stopped = tr->stopped;
    double t0 = now_seconds();
    r->test_ndcg = (float*)mallocCheck((size_t)d->n_users * sizeof(float));
    r->test = evaluate(t, d, SPLIT_TEST, test_neg, eval_batch, r->test_ndcg);
    r->infer_seconds = now_seconds() - t0;
    snprintf(path, sizeof(path), "%s.test_ndcg.tsv", stem);
    per_user_write(path, name, "test", d->user_ids, r->test_ndcg, d->n_users);
    logf_("  [%s] test: full HR@10 %.4f NDCG@10 %.4f (%.1fs to score %d users)\n", name, r->test.mean[2], r->test.mean[5],
          r->infer_seconds, d->n_users);
}

// a model whose best valid epoch is the last it trained may still improve: not converged
static int result_converged(const ResultRow* r) { return r->best_epoch < r->epochs; }

static void results_print(const ResultRow* rows, int n) {
    char hr1[24], hr5[24], nd5[24], mrr[24];
    metric_name(hr1, sizeof(hr1), &rows[0].test, 8);
    metric_name(hr5, sizeof(hr5), &rows[0].test, 9);
    metric_name(nd5, sizeof(nd5), &rows[0].test, 11);
    metric_name(mrr, sizeof(mrr), &rows[0].test, 13);
    logf_("\n%-18s %6s %10s %10s %8s %8s | %8s %8s | %10s %10s %12s %10s\n", "model", "layers", "params", "best/last",
          "train s", "infer s", "HR@10", "NDCG@10", hr1, hr5, nd5, mrr);
    int unconverged = 0;
    for (int i = 0; i < n; i++) {
        const ResultRow* r = &rows[i];
        char epochs[32];
        snprintf(epochs, sizeof(epochs), "%d/%d%s", r->best_epoch, r->epochs, result_converged(r) ? " " : "*");
        unconverged += !result_converged(r);
        logf_("%-18s %6d %10zu %10s %8.1f %8.2f | %8.4f %8.4f | %10.4f %10.4f %12.4f %10.4f\n", r->name, r->layers, r->params,
              epochs, r->train_seconds, r->infer_seconds, r->test.mean[2], r->test.mean[5], r->test.mean[8], r->test.mean[9],
              r->test.mean[11], r->test.mean[13]);
    }
    logf_("(test split; HR@10 and NDCG@10 rank all items, the s* columns the target among sampled negatives;\n"
          " best/last: the epoch selected on valid full NDCG@10 and the last one trained)\n");
    if (unconverged) logf_("* not converged: its best epoch is its last, so it may still improve: train it longer\n");
    logf_("\n");
    logf_("all metrics, test split:\n");
    metrics_print_header(stdout, rows[0].test.n_neg);
    if (log_file) metrics_print_header(log_file, rows[0].test.n_neg);
    for (int i = 0; i < n; i++) {
        metrics_print_row(stdout, rows[i].name, &rows[i].test);
        if (log_file) metrics_print_row(log_file, rows[i].name, &rows[i].test);
    }
}

// each comparison's paired bootstrap over the n_users test users (rows' test_ndcg)
static void results_compare(Comparisons* cmp, const ResultRow* rows, int n_users) {
    for (int i = 0; i < cmp->n; i++) {
        cmp->diff[i] = paired_bootstrap(rows[cmp->a[i]].test_ndcg, rows[cmp->b[i]].test_ndcg, n_users,
                                        BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED);
    }
}

static void paired_diff_print(const char* a, const char* b, const PairedDiff* p) {
    char ratio[16] = "-";
    if (p->mean_b > 0.0) snprintf(ratio, sizeof(ratio), "%.3f", p->mean_a / p->mean_b);
    logf_("%-18s %-18s %8.4f %8.4f %+9.4f [%+.4f, %+.4f] %7s  %s\n", a, b, p->mean_a, p->mean_b, p->diff, p->lo, p->hi, ratio,
          paired_verdict(p));
}

static void paired_diff_header(int n_users) {
    logf_("paired comparisons on the %d test users: full NDCG@10 of A and B, A - B and its 95%% bootstrap\n"
          "interval over users (method.md 7.5); better / worse when the interval excludes 0, else tie\n", n_users);
    logf_("%-18s %-18s %8s %8s %9s %19s %7s  %s\n", "A", "B", "A", "B", "A - B", "95% interval", "A / B", "A vs B");
}

static void comparisons_print(const Comparisons* cmp, const ResultRow* rows) {
    if (cmp->n == 0) return;
    logf_("\n");
    paired_diff_header(cmp->diff[0].n);
    for (int i = 0; i < cmp->n; i++) paired_diff_print(rows[cmp->a[i]].name, rows[cmp->b[i]].name, &cmp->diff[i]);
}

static void results_write_json(const char* path, const ResultRow* rows, int n, const Comparisons* cmp, const Config* c,
                               const SeqData* d) {
    OutFile o;
    outfile_open(&o, path);
    fprintf(o.f, "{\n \"data\": ");
    json_write_string(o.f, c->data ? c->data : "synthetic");
    fprintf(o.f, ", \"users\": %d, \"items\": %d, \"events\": %d,\n", d->n_users, d->n_items, d->n_events);
    fprintf(o.f, " \"config\": {\"recipe\": \"%s\", \"max_len\": %d, \"hidden\": %d, \"ffn\": %d, \"heads\": %d, \"kv_heads\": %d, "
            "\"batch\": %d, \"samples\": \"%s\", \"position_ce\": %g, \"decoder_dropout\": %g, \"lr\": %g, \"min_lr\": %g, \"warmup\": %d, \"epochs\": %d, \"blocks\": %d, \"lambda_cos\": %g, \"lambda_norm\": %g, \"lambda_ms\": %g, "
            "\"sasrec_dim\": %d, \"sasrec_blocks\": %d, \"sasrec_dropout\": %g, \"sasrec_batch\": %d, \"sasrec_lr\": %g, "
            "\"sasrec_epochs\": %d, \"seed\": %d, \"lora_rank\": %d, \"lora_alpha\": %g, \"lora_targets\": ", c->recipe, c->max_len,
            c->hidden, c->ffn, c->heads, c->kv_heads, c->batch, c->samples, c->position_ce, c->decoder_dropout, c->lr, c->min_lr, c->warmup, c->epochs, c->blocks, c->lambda_cos, c->lambda_norm, c->lambda_ms, c->sas_dim,
            c->sas_blocks, c->sas_dropout, c->sas_batch, c->sas_lr, c->sas_epochs, c->seed, c->lora_rank, c->lora_alpha);
    json_write_string(o.f, c->lora_rank ? c->lora_targets : "");
    fprintf(o.f, ", \"init\": ");
    if (c->init) json_write_string(o.f, c->init);
    else fprintf(o.f, "null");
    fprintf(o.f, "},\n \"models\": {\n");
    for (int i = 0; i < n; i++) {
        const ResultRow* r = &rows[i];
        fprintf(o.f, "  \"%s\": {\"layers\": %d, \"params\": %zu, \"train_s\": %.3f, \"infer_s\": %.6f, \"epochs\": %d, "
                "\"best_epoch\": %d, \"converged\": %s, \"valid_full_NDCG@10\": %.6f, ", r->name, r->layers, r->params,
                r->train_seconds, r->infer_seconds, r->epochs, r->best_epoch, result_converged(r) ? "true" : "false", r->best_valid);
        metrics_write_json(o.f, &r->test);
        fprintf(o.f, "}%s\n", i + 1 < n ? "," : "");
    }
    fprintf(o.f, " },\n \"comparisons\": [");
    for (int i = 0; cmp && i < cmp->n; i++) {
        const PairedDiff* p = &cmp->diff[i];
        fprintf(o.f, "%s\n  {\"a\": \"%s\", \"b\": \"%s\", \"users\": %d, \"mean_a\": %.6f, \"mean_b\": %.6f, \"diff\": %.6f, "
                "\"ci95\": [%.6f, %.6f], \"verdict\": \"%s\"}", i ? "," : "", rows[cmp->a[i]].name, rows[cmp->b[i]].name, p->n,
                p->mean_a, p->mean_b, p->diff, p->lo, p->hi, paired_verdict(p));
    }
    fprintf(o.f, "]\n}\n");
    outfile_commit(&o);
}

// a model's display name and file stem: E4SRec_8 / e4srec_8, or distilled SLMRec_4<-8 / slmrec_4_from_8
typedef struct { char name[32], stem[32]; } ModelName;
static ModelName model_name(int layers, const E4SRec* teacher) {
    ModelName n;
    if (teacher) {
        snprintf(n.name, sizeof(n.name), "SLMRec_%d<-%d", layers, teacher->cfg.L);
        snprintf(n.stem, sizeof(n.stem), "slmrec_%d_from_%d", layers, teacher->cfg.L);
    } else {
        snprintf(n.name, sizeof(n.name), "E4SRec_%d", layers);
        snprintf(n.stem, sizeof(n.stem), "e4srec_%d", layers);
    }
    return n;
}

static void log_stopped(const Config* c) {
    logf_("stopped after --stop-after %d epochs: run the same command with --resume to continue\n", c->stop_after);
}

// a one-stage command's report: the table, and <out>/<stem>.results.json once the stage is complete
static void stage_report(const Config* c, const SeqData* d, const ResultRow* row, const char* stem) {
    if (row->timed) {
        logf_("timed: %s/%s.step_time.json\n", c->out, stem);
        return;
    }
    results_print(row, 1);
    if (row->stopped) {
        log_stopped(c);
        return;
    }
    char path[1100];
    snprintf(path, sizeof(path), "%s/%s.results.json", c->out, stem);
    results_write_json(path, row, 1, NULL, c, d);
    logf_("results: %s\n", path);
}

// ----------------------------------------------------------------------------
// stages: each trains one model, reloads its best-on-valid weights, tests it

// trains m (built and initialised) with CE, or as the SLMRec student of teacher;
// leaves m at its best-on-valid weights and fills row with the test metrics. Every
// stage takes its run record (record_e4srec etc.), which its caller has built once
// and, resuming, already checked
static void stage_e4srec(const Config* c, const SeqData* d, const Negatives* vneg, const Negatives* tneg, E4SRec* m,
                         const Tokenizer* tok, E4SRec* teacher, const RunRecord* record, const char* name, const char* file_stem,
                         ResultRow* row) {
    char stem[1100];
    snprintf(stem, sizeof(stem), "%s/%s", c->out, file_stem);
    Rng rng;
    rng_seed(&rng, (uint64_t)c->seed + 1000 * m->cfg.L + (teacher != NULL));
    SLMRec slm;
    if (teacher) slmrec_build(&slm, m, teacher, c->blocks, c->lambda_cos, c->lambda_norm, c->lambda_ms, &rng);
    e4srec_set_position_ce(m, c->position_ce);
    e4srec_set_dropout(m, c->decoder_dropout);
    if (teacher && c->online) {
        e4srec_set_position_ce(teacher, c->position_ce);
        e4srec_set_dropout(teacher, c->decoder_dropout);
    }
    E4SRecJob job;
    e4srec_job_init(&job, m, teacher ? &slm : NULL, teacher && c->online, d, tok, max_int(c->batch, c->eval_batch));
    if (strcmp(c->samples, "every-cut") == 0) e4srec_job_every_cut(&job);
    job.last_cut = strcmp(c->samples, "last-cut") == 0;
    Recommender t = e4srec_recommender(&job, name);
    Optimizer opt;
    e4srec_job_optimizer(&opt, &job, config_adamw(c, steps_per_epoch(&t, d, c->batch)));
#ifdef SLMREC_CUDA
    if (config_on_gpu(c)) e4srec_job_to_gpu(&job, &opt, c->batch, strcmp(c->precision, "bf16") == 0);
#endif
    logf_("%s: %d layers, %zu parameters%s%s, on the %s\n", name, m->cfg.L, e4srec_trainable_params(m),
          m->lora ? " trained (LoRA adapters, input_proj, score)" : "",
          teacher ? (c->online ? ", distilled online from the teacher" : ", distilled from the frozen teacher") : "",
          config_on_gpu(c) ? (strcmp(c->precision, "bf16") == 0 ? "GPU (bf16)" : "GPU (fp32)") : "CPU");
    if (job.samples.count) logf_("  an epoch goes over every cut of the train prefixes: %d samples\n", job.samples.count);
    TrainConfig tc = config_train(c, TRAIN_E4SREC, record);
    TrainResult tr = train(&t, &opt, d, vneg, &tc, stem, c->resume);
    result_test(row, &t, d, tneg, c->eval_batch, name, stem, m->cfg.L, e4srec_trainable_params(m), &tr);
    optimizer_free(&opt);
    e4srec_job_free(&job);
    if (teacher) slmrec_free(&slm);
}

// stage 1: SASRec; returns its best item table (I, D), which E4SRec reads frozen
static float* stage_sasrec(const Config* c, const SeqData* d, const Negatives* vneg, const Negatives* tneg,
                           const RunRecord* record, ResultRow* row) {
    SASRecConfig sc = {.I = d->n_items + 1, .D = c->sas_dim, .L = c->sas_blocks, .NH = c->sas_heads, .T = c->max_len,
                       .dropout = c->sas_dropout};
    SASRec m;
    sasrec_build(&m, &sc);
    Rng rng;
    rng_seed(&rng, (uint64_t)c->seed);
    sasrec_init_random(&m, &rng);
    SASRecJob job;
    sasrec_job_init(&job, &m, d, max_int(c->sas_batch, c->eval_batch));
    Optimizer opt = {0};
    opt.cfg = adamw_defaults();
    opt.cfg.lr = opt.cfg.min_lr = c->sas_lr;  // constant-rate Adam, as the peer
    opt.cfg.beta2 = 0.98f;
    opt.cfg.clip = 0.0f;
    optimizer_add(&opt, m.params_memory, m.grads_memory, m.num_params);
    optimizer_ready(&opt);
    Recommender t = sasrec_recommender(&job, "SASRec");
    logf_("SASRec: %d blocks, D=%d, %zu parameters\n", sc.L, sc.D, m.num_params);
    char stem[1100];
    snprintf(stem, sizeof(stem), "%s/sasrec", c->out);
    TrainConfig tc = config_train(c, TRAIN_SASREC, record);
    TrainResult tr = train(&t, &opt, d, vneg, &tc, stem, c->resume);
    result_test(row, &t, d, tneg, c->eval_batch, "SASRec", stem, sc.L, m.num_params, &tr);
    float* table = (float*)mallocCheck((size_t)sc.I * sc.D * sizeof(float));
    memcpy(table, m.params.item_emb, (size_t)sc.I * sc.D * sizeof(float));
    optimizer_free(&opt);
    sasrec_job_free(&job);
    sasrec_free(&m);
    return table;
}

// a DLLM2Rec student's display name and file stem: GRU4Rec-plain / gru4rec_plain,
// GRU4Rec+DLLM2Rec / gru4rec_dllm2rec, and the ablations +RD / +ED (ranking or embedding only)
static ModelName student_name(StudentKind kind, float lam, float ed) {
    ModelName n;
    const char* what = lam > 0.0f ? (ed > 0.0f ? "DLLM2Rec" : "RD") : (ed > 0.0f ? "ED" : NULL);
    char lower[16];
    snprintf(lower, sizeof(lower), "%s", what ? what : "plain");
    for (char* p = lower; *p; p++) *p = (char)tolower((unsigned char)*p);
    snprintf(n.name, sizeof(n.name), "%s%s%s", STUDENT_NAMES[kind], what ? "+" : "-", what ? what : "plain");
    snprintf(n.stem, sizeof(n.stem), "%s_%s", STUDENT_FLAG_NAMES[kind], lower);
    return n;
}

// trains one DLLM2Rec student with weights lam (ranking) and ed (embedding) against
// the teacher's signals (NULL when both are 0), reloads its best weights and tests it
static void stage_student(const Config* c, const SeqData* d, const Negatives* vneg, const Negatives* tneg, StudentKind kind,
                          float lam, float ed, const TeacherSignals* sig, const RunRecord* record, ResultRow* row) {
    ModelName mn = student_name(kind, lam, ed);
    StudentConfig sc = {.kind = kind, .I = d->n_items + 1, .D = c->st_dim, .T = c->max_len, .L = c->sas_blocks,
                        .NH = c->sas_heads, .dropout = student_dropout(c, kind), .NF = c->caser_filters, .ed = ed, .C = sig ? sig->C : 0};
    if (kind == STUDENT_SASREC && sc.D % sc.NH) die("--sasrec-heads %d must divide --dim %d", sc.NH, sc.D);
    Student s;
    student_build(&s, &sc, ed > 0.0f ? sig->e_T : NULL);
    Rng rng;
    rng_seed(&rng, (uint64_t)c->seed + 31 * kind);  // plain and distilled start from the same weights
    student_init_random(&s, &rng);
    DLLM2RecConfig dc = config_dllm2rec(c);
    dc.lam = lam;
    DLLM2RecJob job;
    dllm2rec_job_init(&job, &s, d, sig, &dc, max_int(c->st_batch, c->eval_batch));  // it reads sig only for ranking
    Optimizer opt;
    AdamWConfig a = adamw_defaults();
    a.lr = a.min_lr = student_lr(c, kind);  // constant-rate Adam, as the authors'
    a.clip = 0.0f;
    dllm2rec_job_optimizer(&opt, &job, a);
    Recommender t = dllm2rec_recommender(&job, mn.name);
    logf_("%s: %zu parameters, %d samples an epoch, %s%s\n", mn.name, student_num_params(&s), job.samples.count,
          dc.base == BASE_CE ? "CE" : "BCE + DROS", lam > 0.0f || ed > 0.0f ? ", distilled from the E4SRec teacher" : "");
    char stem[1100];
    snprintf(stem, sizeof(stem), "%s/%s", c->out, mn.stem);
    TrainConfig tc = config_train(c, TRAIN_STUDENT, record);
    TrainResult tr = train(&t, &opt, d, vneg, &tc, stem, c->resume);
    result_test(row, &t, d, tneg, c->eval_batch, mn.name, stem, kind == STUDENT_SASREC ? sc.L : 1, student_num_params(&s), &tr);
    optimizer_free(&opt);
    dllm2rec_job_free(&job);
    student_free(&s);
}

// ----------------------------------------------------------------------------
// the run's inputs, then its output directory and log

// the data and its sampled negatives: read and checked, nothing written yet
static void read_run(const Config* c, SeqData* d, Negatives* vneg, Negatives* tneg) {
    read_data(d, c);
    negatives_build(vneg, d, SPLIT_VALID);
    negatives_build(tneg, d, SPLIT_TEST);
}

static int out_lock = -1;  // the descriptor holding --out's lock while a run writes there

// called once every input has been read and checked: a refused input leaves no output
// directory or log.txt behind. Takes --out's lock (one run at a time) and appends to
// its log.txt, each run's lines after a line that says when and which process
static void open_log(const Config* c, const SeqData* d) {
    out_lock = outdir_lock(c->out);
    char path[1100];
    snprintf(path, sizeof(path), "%s/log.txt", c->out);
    log_file = fopenCheck(path, "a");
    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&now));
    fprintf(log_file, "==== %s, process %ld%s ====\n", when, (long)getpid(), c->resume ? ", --resume" : "");
    log_data(d, c);
}

static void close_run(SeqData* d, Negatives* vneg, Negatives* tneg) {
    negatives_free(vneg);
    negatives_free(tneg);
    seqdata_free(d);
    fcloseCheck(log_file);
    log_file = NULL;
    close(out_lock);  // releases the lock
    out_lock = -1;
}

// the whole pipeline: SASRec -> E4SRec_M teacher -> E4SRec_N -> SLMRec_N<-M, then
// each DLLM2Rec student (SASRec, GRU4Rec, Caser) plain and distilled from the teacher
#define PIPELINE_ROWS 10
static int pipeline(Config* c, const Llama* base) {
    config_check(c);
    if (c->time_steps) die("--time-steps times one model: give it to train-sasrec, train-teacher, distill or dllm2rec, not to a pipeline");
    // checked now, not hours later when stage 3 begins
    int M = c->teacher_layers, N = c->student_layers;
    if (M < 1 || N < 1) die("--teacher-layers and --student-layers must be at least 1");
    if (c->blocks < 1 || M % c->blocks || N % c->blocks) {
        die("--blocks %d must divide both --teacher-layers %d and --student-layers %d", c->blocks, M, N);
    }
    if (N > M && !c->init_random) die("--student-layers %d exceeds --teacher-layers %d: add --init-random", N, M);
    config_check_depth(c, base, "--teacher-layers", M);
    config_check_depth(c, base, "--student-layers", N);
    if (c->lora_rank && base == NULL) die("--lora-rank trains adapters over a pretrained decoder: add --init BASE.bin");
    if (c->lora_rank && c->init_random) die("--init-random with --lora-rank would freeze a random student decoder");
    double t0 = now_seconds();
    SeqData d;
    Negatives vneg, tneg;
    read_run(c, &d, &vneg, &tneg);
    if (c->topk > d.n_items) die("--topk %d exceeds the %d items of the data", c->topk, d.n_items);
    char teacher_path[1100];
    snprintf(teacher_path, sizeof(teacher_path), "%s/%s.bin", c->out, model_name(M, NULL).stem);
    if (c->lora_rank) config_check_lora_base("--out", teacher_path);  // the student's LoRA base with no --init
    RunRecord record;
    record_sasrec(&record, c, &d);
    resume_precheck(c, "sasrec", &record);  // the later stages' records need the models before them
    open_log(c, &d);
    ResultRow rows[PIPELINE_ROWS];
    memset(rows, 0, sizeof(rows));
    float* table = stage_sasrec(c, &d, &vneg, &tneg, &record, &rows[0]);
    Prompt p;
    prompt_build(&p, c->instruction, c->response, c->vocab, base);
    prompt_log(&p, c->instruction, c->response, base, c->init);
    E4SRec teacher, plain, student;
    Rng rng;
    rng_seed(&rng, (uint64_t)c->seed + 7);
    E4SRecConfig tc = e4srec_config_for(config_widths(c), base, &p, M, c->sas_dim, d.n_items + 1);
    E4SRecConfig sc = tc;
    sc.L = N;
    e4srec_build(&teacher, &tc, table, p.instr, p.resp);
    e4srec_build(&plain, &sc, table, p.instr, p.resp);
    e4srec_build(&student, &sc, table, p.instr, p.resp);
    LoraSpec lora = config_lora(c);
    e4srec_start(&teacher, base, c->init, &rng);
    e4srec_start(&plain, base, c->init, &rng);
    e4srec_start_lora(&teacher, &lora, c->init, &rng);
    e4srec_start_lora(&plain, &lora, c->init, &rng);
    // each stage reads the finished one before it: a stage cut short by --stop-after ends the run here
    struct { E4SRec* model; E4SRec* teacher; } stages[3] = {{&teacher, NULL}, {&plain, NULL}, {&student, &teacher}};
    int go = !rows[0].stopped;
    for (int s = 0; s < 3 && go; s++) {
        if (stages[s].teacher) {
            if (c->online) e4srec_merge_lora(&teacher);  // it trains on, its adapters folded into its weights
            else e4srec_freeze(&teacher);
            slmrec_student_start(&student, &teacher, teacher_path, NULL, NULL, c->init_random, &lora, &rng);  // the trained teacher's first layers
        }
        ModelName mn = model_name(stages[s].model->cfg.L, stages[s].teacher);
        record_e4srec(&record, c, &d, stages[s].model, stages[s].teacher);
        stage_e4srec(c, &d, &vneg, &tneg, stages[s].model, &p.tok, stages[s].teacher, &record, mn.name, mn.stem, &rows[s + 1]);
        go = !rows[s + 1].stopped;
    }
    // DLLM2Rec: each student plain, then distilled from the E4SRec_M teacher's signals,
    // keyed by the teacher's weights as they ran (online, they trained on after its file)
    TeacherSignals sig = {0};
    uint32_t teacher_checksum = e4srec_checksum(&teacher);
    StudentKind kinds[6];
    float lams[6], eds[6];
    RunRecord student_records[6];
    for (int k = 0; k < 6; k++) {  // each kind plain, then distilled
        kinds[k] = (StudentKind)(k / 2);
        lams[k] = k % 2 ? c->lam : 0.0f;
        eds[k] = k % 2 ? c->ed : 0.0f;
        record_student(&student_records[k], c, &d, kinds[k], lams[k], eds[k], teacher_checksum);
        if (go) resume_precheck(c, student_name(kinds[k], lams[k], eds[k]).stem, &student_records[k]);  // before the cache is touched
    }
    if (go) {
        char sig_path[1100], why[1400];
        snprintf(sig_path, sizeof(sig_path), "%s/teacher_signals.bin", c->out);
        const char* path = c->signals ? c->signals : sig_path;
        int cached = signals_load_cached(&sig, path, &d, &teacher, teacher_checksum, c->topk, why, sizeof(why));
        signals_get(&sig, cached, why, path, &teacher, teacher_checksum, &d, c->topk);
    }
    for (int k = 0; k < 6 && go; k++) {
        stage_student(c, &d, &vneg, &tneg, kinds[k], lams[k], eds[k], &sig, &student_records[k], &rows[4 + k]);
        go = !rows[4 + k].stopped;
    }
    signals_free(&sig);
    if (go) {
        results_print(rows, PIPELINE_ROWS);
        // the papers' claims: the teacher above each conventional model, the student level with
        // the teacher and above its plain self, each distilled student above its plain self
        Comparisons cmp = {.n = 9, .a = {1, 1, 1, 1, 3, 3, 5, 7, 9}, .b = {0, 4, 6, 8, 1, 2, 4, 6, 8}};
        results_compare(&cmp, rows, d.n_users);
        comparisons_print(&cmp, rows);
        char path[1100];
        snprintf(path, sizeof(path), "%s/results.json", c->out);
        results_write_json(path, rows, PIPELINE_ROWS, &cmp, c, &d);
        logf_("results: %s (checkpoints and log.txt beside it), %.0fs in all\n", path, now_seconds() - t0);
    } else {
        log_stopped(c);
    }
    results_free(rows, PIPELINE_ROWS);
    e4srec_free(&student);
    e4srec_free(&plain);
    e4srec_free(&teacher);
    prompt_free(&p);
    free(table);
    close_run(&d, &vneg, &tneg);
    return 0;
}

// any model file, loaded for scoring
typedef struct {
    int kind;
    E4SRecFile e4srec;
    SASRecFile sasrec;
    E4SRecJob e4srec_job;
    SASRecJob sasrec_job;
    StudentFile student;
    Recommender t;
} LoadedModel;

static void model_load(LoadedModel* lm, const char* path, const SeqData* d, int max_batch) {
    memset(lm, 0, sizeof(*lm));
    lm->kind = binfile_kind(path);
    if (lm->kind == KIND_E4SREC) {
        e4srec_load(&lm->e4srec, path);
        e4srec_freeze(&lm->e4srec.model);  // inference
        e4srec_job_init(&lm->e4srec_job, &lm->e4srec.model, NULL, 0, d, &lm->e4srec.tok, max_batch);
        lm->t = e4srec_recommender(&lm->e4srec_job, "model");
    } else if (lm->kind == KIND_SASREC) {
        sasrec_load(&lm->sasrec, path);
        sasrec_job_init(&lm->sasrec_job, &lm->sasrec.model, d, max_batch);
        lm->t = sasrec_recommender(&lm->sasrec_job, "model");
    } else if (lm->kind == KIND_DLLM2REC) {
        student_load(&lm->student, path);
        lm->t = student_scorer(&lm->student.model);
    } else {
        die("'%s' holds %s %s, not a recommender (sasrec, e4srec or a dllm2rec student)", path, a_or_an(bin_kind_name(lm->kind)),
            bin_kind_name(lm->kind));
    }
    if (d && lm->t.I != d->n_items + 1) die("'%s' scores %d items, the data has %d", path, lm->t.I - 1, d->n_items);
}

static void model_free(LoadedModel* lm) {
    if (lm->kind == KIND_E4SREC) { e4srec_job_free(&lm->e4srec_job); e4srec_file_free(&lm->e4srec); }
    else if (lm->kind == KIND_SASREC) { sasrec_job_free(&lm->sasrec_job); sasrec_file_free(&lm->sasrec); }
    else student_file_free(&lm->student);
}
