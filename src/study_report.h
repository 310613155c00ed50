// study_report.h: a study read back and written up, finished or in progress (a cell
// not finished in every seed is shown as not yet trained, and its comparisons as
// pending). Each cell's
// <stem>.results.json and per-user test NDCG@10 of every seed; tables of the mean and
// standard deviation over seeds; each comparison's paired bootstrap (method.md 7.5)
// over the test users, of each user's NDCG@10 averaged over the seeds; study.md (the
// tables, the plots embedded, each cell's command), study.json (every number) and
// the SVG plots (svg.h).
#pragma once
#include "study.h"
#include "svg.h"

typedef struct {
    double ndcg, hr, valid;      // test full NDCG@10 and HR@10, best valid full NDCG@10
    double params, train_s, infer_s;
    int epochs, best_epoch, converged, users;
    float* per_user;             // (users) each test user's full NDCG@10
} StudyRun;

typedef struct {
    StudyRun runs[STUDY_MAX_SEEDS];  // one per seed
    double ndcg_mean, ndcg_sd, hr_mean, hr_sd;
    double params, train_s, epoch_s;  // means over the seeds
    double infer_ms;                  // to score 1,000 test users, re-timed (study_retime)
    double epoch_s_timed;             // an epoch of training steps, re-timed for a main model (study_retime)
    int converged;                   // seeds whose best valid epoch came before their last
    int done;                        // finished in every seed (else nothing above is read)
} StudySummary;

static void study_read_run(StudyRun* r, const Study* st, int seed, const StudyCell* c) {
    char dir[1100], path[1200];
    study_cell_dir(dir, sizeof(dir), st, seed, c);
    snprintf(path, sizeof(path), "%s/%s.results.json", dir, c->stem);
    char* json = read_file(path, NULL);
    const char* models = strstr(json, "\"models\"");  // the model's own numbers come after the config's
    if (models == NULL) die("study: '%s' has no \"models\": remove its cell directory and run the study with --resume", path);
    r->users = (int)json_number(json, "users", path);
    r->params = json_number(models, "params", path);
    r->train_s = json_number(models, "train_s", path);
    r->infer_s = json_number(models, "infer_s", path);
    r->epochs = (int)json_number(models, "epochs", path);
    r->best_epoch = (int)json_number(models, "best_epoch", path);
    r->converged = r->best_epoch < r->epochs;  // as results.json's "converged"
    r->valid = json_number(models, "valid_full_NDCG@10", path);
    r->hr = json_number(models, "full_HR@10", path);
    r->ndcg = json_number(models, "full_NDCG@10", path);
    free(json);
    snprintf(path, sizeof(path), "%s/%s.test_ndcg.tsv", dir, c->stem);
    PerUser pu;
    per_user_read(&pu, path);
    if (pu.n != r->users) die("study: '%s' holds %d users, its results %d", path, pu.n, r->users);
    r->per_user = pu.values;
    free(pu.user_ids);
}

static void mean_sd(const double* x, int n, double* mean, double* sd) {
    double s = 0.0, ss = 0.0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
}

static void study_summarize(StudySummary* sum, const Study* st, const StudyCell* c) {
    double ndcg[STUDY_MAX_SEEDS], hr[STUDY_MAX_SEEDS];
    memset(sum, 0, sizeof(*sum));
    for (int s = 0; s < st->seeds; s++) {
        if (!study_cell_done(st, st->first_seed + s, c)) return;
    }
    sum->done = 1;
    for (int s = 0; s < st->seeds; s++) {
        StudyRun* r = &sum->runs[s];
        study_read_run(r, st, st->first_seed + s, c);
        if (r->users != sum->runs[0].users) die("study: cell %s was tested on %d users in one seed, %d in another", c->key, r->users, sum->runs[0].users);
        ndcg[s] = r->ndcg;
        hr[s] = r->hr;
        sum->params += r->params / st->seeds;
        sum->train_s += r->train_s / st->seeds;
        sum->epoch_s += r->train_s / r->epochs / st->seeds;
        sum->converged += r->converged;
    }
    mean_sd(ndcg, st->seeds, &sum->ndcg_mean, &sum->ndcg_sd);
    mean_sd(hr, st->seeds, &sum->hr_mean, &sum->hr_sd);
}

// ms to score 1,000 test users against every item: one untimed pass (the model's pages
// touched, its buffers warm), then timed passes over every test user until at least
// TIME_STEPS_MIN_SECONDS have passed (a small set's one pass is too short for the clock)
static double study_time_inference(LoadedModel* lm, const SeqData* d, const Negatives* neg, int eval_batch) {
    evaluate(&lm->t, d, SPLIT_TEST, neg, eval_batch, NULL);
    double t0 = now_seconds(), seconds = 0.0;
    long users = 0;
    while (users == 0 || seconds < TIME_STEPS_MIN_SECONDS) {
        evaluate(&lm->t, d, SPLIT_TEST, neg, eval_batch, NULL);
        users += d->n_users;
        seconds = now_seconds() - t0;
    }
    return 1e6 * seconds / users;
}

// the costs, re-timed for the report: each finished model's checkpoint of the first seed
// scores every test user on the CPU (study_time_inference), and each main model (those of
// the efficiency table) times STUDY_TIME_STEPS training steps of its command
// (study_time_training), one model after another with the given threads. A cell's own
// timings ran beside whatever trained with it then, and a study resumed over days may train
// on other machines: the speed-ups and the Pareto plot compare these, measured minutes
// apart on one machine.
static void study_retime(const Study* st, StudySummary* sums, int threads) {
    char threads_text[16];
    char* env_before = getenv("OMP_NUM_THREADS") ? strdup(getenv("OMP_NUM_THREADS")) : NULL;
    snprintf(threads_text, sizeof(threads_text), "%d", threads);
    setenv("OMP_NUM_THREADS", threads_text, 1);  // for the timed training processes
#ifdef _OPENMP
    int threads_before = omp_get_max_threads();
    omp_set_num_threads(threads);
#endif
    SeqData d;
    seqdata_load(&d, st->data, 0);
    Negatives neg;
    negatives_build(&neg, &d, SPLIT_TEST);
    int eval_batch = config_defaults().eval_batch;
    for (int i = 0; i < st->n_cells; i++) {
        if (!sums[i].done) continue;
        char dir[1100], path[1200];
        study_cell_dir(dir, sizeof(dir), st, st->first_seed, &st->cells[i]);
        snprintf(path, sizeof(path), "%s/%s.bin", dir, st->cells[i].stem);
        LoadedModel lm;
        model_load(&lm, path, &d, eval_batch);
        sums[i].infer_ms = study_time_inference(&lm, &d, &neg, eval_batch);
        model_free(&lm);
        if (st->cells[i].main) sums[i].epoch_s_timed = study_time_training(st, &st->cells[i]);
    }
    negatives_free(&neg);
    seqdata_free(&d);
#ifdef _OPENMP
    omp_set_num_threads(threads_before);
#endif
    if (env_before) setenv("OMP_NUM_THREADS", env_before, 1);
    else unsetenv("OMP_NUM_THREADS");
    free(env_before);
}

// A against B: each user's NDCG@10 averaged over the seeds, then the paired bootstrap
static PairedDiff study_paired(const StudySummary* a, const StudySummary* b, int seeds) {
    int n = a->runs[0].users;
    float* ma = (float*)callocCheck((size_t)n, sizeof(float));
    float* mb = (float*)callocCheck((size_t)n, sizeof(float));
    for (int s = 0; s < seeds; s++) {
        for (int u = 0; u < n; u++) {
            ma[u] += a->runs[s].per_user[u] / seeds;
            mb[u] += b->runs[s].per_user[u] / seeds;
        }
    }
    PairedDiff d = paired_bootstrap(ma, mb, n, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED);
    free(ma);
    free(mb);
    return d;
}

// ----------------------------------------------------------------------------
// study.md

static void md_model_row(FILE* f, const StudyCell* c, const StudySummary* s, int seeds) {
    if (!s->done) {
        fprintf(f, "| %s | - | - | - | - | - | - | - | not yet trained |\n", c->name);
        return;
    }
    fprintf(f, "| %s | %.0f | %.4f ± %.4f | %.4f ± %.4f | %.3f | %.0f | %.2f | ", c->name, s->params, s->ndcg_mean, s->ndcg_sd,
            s->hr_mean, s->hr_sd, s->epoch_s, s->train_s, s->infer_ms);
    for (int i = 0; i < seeds; i++) fprintf(f, "%s%d/%d", i ? ", " : "", s->runs[i].best_epoch, s->runs[i].epochs);
    fprintf(f, " | %d of %d |\n", s->converged, seeds);
}

static void md_model_header(FILE* f) {
    fprintf(f, "| model | params | test NDCG@10 | test HR@10 | s/epoch | train s | infer ms/1k users | best/last epoch | converged |\n"
               "|---|---|---|---|---|---|---|---|---|\n");
}

// an E4SRec_l cell's depth l, else 0
static int study_cell_depth(const StudyCell* c) {
    int l = 0, used = 0;
    return sscanf(c->key, "e4srec_%d%n", &l, &used) == 1 && c->key[used] == 0 ? l : 0;
}

// the models of an experiment: those its comparisons name, in the grid's order (the
// depth experiment's by depth)
static int study_experiment_cells(const Study* st, int experiment, int* cells) {
    int n = 0;
    for (int c = 0; c < st->n_cells; c++) {
        int named = 0;
        for (int i = 0; i < st->n_cmp; i++) {
            named |= st->cmp[i].experiment == experiment && (st->cmp[i].a == c || st->cmp[i].b == c);
        }
        if (named) cells[n++] = c;
    }
    for (int i = 1; i < n && experiment == EXP_DEPTH; i++) {  // insertion sort by depth
        for (int j = i; j > 0 && study_cell_depth(&st->cells[cells[j]]) < study_cell_depth(&st->cells[cells[j - 1]]); j--) {
            int t = cells[j];
            cells[j] = cells[j - 1];
            cells[j - 1] = t;
        }
    }
    return n;
}

static void md_experiment(FILE* f, const Study* st, const StudySummary* sums, const PairedDiff* diffs, int experiment,
                          const char* title, const char* intro, const char* plot, const char* plot_caption) {
    int cells[STUDY_MAX_CELLS];
    int n = study_experiment_cells(st, experiment, cells);
    if (n == 0) return;
    fprintf(f, "\n## %s\n\n%s\n\n", title, intro);
    md_model_header(f);
    for (int i = 0; i < n; i++) md_model_row(f, &st->cells[cells[i]], &sums[cells[i]], st->seeds);
    if (plot) fprintf(f, "\n![%s](%s)\n", plot_caption, plot);
    fprintf(f, "\n| A | B | A | B | A - B | 95%% interval | A vs B |\n|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < st->n_cmp; i++) {
        const StudyComparison* c = &st->cmp[i];
        if (c->experiment != experiment) continue;
        const PairedDiff* d = &diffs[i];
        if (d->n == 0) {
            fprintf(f, "| %s | %s | - | - | - | - | pending |\n", st->cells[c->a].name, st->cells[c->b].name);
            continue;
        }
        fprintf(f, "| %s | %s | %.4f | %.4f | %+.4f | [%+.4f, %+.4f] | %s |\n", st->cells[c->a].name, st->cells[c->b].name, d->mean_a,
                d->mean_b, d->diff, d->lo, d->hi, paired_verdict(d));
    }
}

// the student's and the teacher's costs side by side, as SLMRec's efficiency table
static void md_efficiency(FILE* f, const Study* st, const StudySummary* sums) {
    const StudySummary* teacher = NULL;
    for (int i = 0; i < st->n_cells; i++) {
        if (strcmp(st->cells[i].key, model_name(st->preset.M, NULL).stem) == 0) teacher = &sums[i];
    }
    fprintf(f, "\n## Efficiency\n\nEach main model of the study (no ablation), its costs timed for this report on this "
               "machine, one after another: train s/epoch is an epoch of its training steps, timed by its own command with --time-steps %d "
               "(rounds of %d steps over at least a second; SLMRec's include the frozen teacher's forward; the valid "
               "evaluation after each epoch is not counted), infer ms the time to score 1,000 test users against every "
               "item (after an untimed pass, passes over the test users until a second has passed). Speed-ups and "
               "parameters are relative to the teacher E4SRec_%d.\n\n",
            STUDY_TIME_STEPS, STUDY_TIME_STEPS, st->preset.M);
    if (teacher == NULL || !teacher->done) {
        fprintf(f, "The teacher is not trained yet.\n");
        return;
    }
    fprintf(f, "| model | params | of the teacher's | train s/epoch | train speed-up | infer ms/1k users | infer speed-up | test NDCG@10 |\n"
               "|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < st->n_cells; i++) {
        if (!st->cells[i].main || !sums[i].done) continue;
        const StudySummary* s = &sums[i];
        // a cost too small for the clock has no ratio; a training step whose timing failed no time
        char epoch[16] = "-", train_up[16] = "-", infer_up[16] = "-";
        if (s->epoch_s_timed > 0.0) snprintf(epoch, sizeof(epoch), "%.3f", s->epoch_s_timed);
        if (s->epoch_s_timed > 0.0 && teacher->epoch_s_timed > 0.0) {
            snprintf(train_up, sizeof(train_up), "%.2fx", teacher->epoch_s_timed / s->epoch_s_timed);
        }
        if (s->infer_ms > 0.0) snprintf(infer_up, sizeof(infer_up), "%.2fx", teacher->infer_ms / s->infer_ms);
        fprintf(f, "| %s | %.0f | %.1f%% | %s | %s | %.2f | %s | %.4f |\n", st->cells[i].name, s->params,
                100.0 * s->params / teacher->params, epoch, train_up, s->infer_ms, infer_up, s->ndcg_mean);
    }
    fprintf(f, "\n![test NDCG@10 against the time to score 1,000 users](pareto.svg)\n");
}

// ----------------------------------------------------------------------------
// the plots

static void plot_depth(const Study* st, const StudySummary* sums, const char* path) {
    double x[4], y[4], lo[4], hi[4], sx = 0, sy = 0, slo = 0, shi = 0;
    int n = 0, ns = 0;
    for (int d = 1; d <= MAX_REC_LAYERS; d++) {  // the E4SRec_l cells, by depth
        for (int i = 0; i < st->n_cells && n < 4; i++) {
            if (study_cell_depth(&st->cells[i]) != d || !sums[i].done) continue;
            x[n] = d;
            y[n] = sums[i].ndcg_mean;
            lo[n] = y[n] - sums[i].ndcg_sd;
            hi[n] = y[n] + sums[i].ndcg_sd;
            n++;
        }
    }
    for (int i = 0; i < st->n_cells; i++) {
        if (strcmp(st->cells[i].key, "slmrec") != 0 || !sums[i].done) continue;
        sx = st->preset.N;
        sy = sums[i].ndcg_mean;
        slo = sy - sums[i].ndcg_sd;
        shi = sy + sums[i].ndcg_sd;
        ns = 1;
    }
    SvgSeries s[2] = {{"E4SRec_l, trained alone", n, x, y, lo, hi}, {"SLMRec student", ns, &sx, &sy, &slo, &shi}};
    SvgAxes a = {"Test NDCG@10 against decoder depth (mean ± sd over seeds)", "decoder layers l", "test full NDCG@10", 1};
    svg_line_chart(path, &a, s, ns ? 2 : 1);
}

static void plot_pareto(const Study* st, const StudySummary* sums, const char* path) {
    const char* labels[STUDY_MAX_CELLS];
    double x[STUDY_MAX_CELLS], y[STUDY_MAX_CELLS];
    int n = 0;
    for (int i = 0; i < st->n_cells; i++) {
        if (!st->cells[i].main || !sums[i].done) continue;
        labels[n] = st->cells[i].name;
        x[n] = sums[i].infer_ms > 0.0 ? sums[i].infer_ms : NAN;  // too fast for the clock: not drawn on a log axis
        y[n++] = sums[i].ndcg_mean;
    }
    SvgAxes a = {"Quality against inference cost (the Pareto front joined)", "ms to score 1,000 users (log)", "test full NDCG@10", 1};
    svg_scatter_pareto(path, &a, labels, x, y, n);
}

// an E4SRec model (the teacher, E4SRec_l, the SLMRec student), not a conventional one
static int study_cell_llm(const StudyCell* c) { return strncmp(c->key, "e4srec", 6) == 0 || strncmp(c->key, "slmrec", 6) == 0; }

// each main model's valid NDCG@10 per epoch, first seed (its <stem>.epochs.tsv, so far
// for a cell in training): the E4SRec models (llm = 1) or the conventional ones, whose
// epochs are many more and shorter
static void plot_curves(const Study* st, int llm, const char* path) {
    SvgSeries s[STUDY_MAX_CELLS] = {{0}};
    EpochLog logs[STUDY_MAX_CELLS];
    double* xs[STUDY_MAX_CELLS];
    double* ys[STUDY_MAX_CELLS];
    int n = 0;
    for (int i = 0; i < st->n_cells; i++) {
        if (!st->cells[i].main || study_cell_llm(&st->cells[i]) != llm) continue;
        char dir[1100], file[1200];
        study_cell_dir(dir, sizeof(dir), st, st->first_seed, &st->cells[i]);
        snprintf(file, sizeof(file), "%s/%s.epochs.tsv", dir, st->cells[i].stem);
        memset(&logs[n], 0, sizeof(EpochLog));
        epoch_log_read(&logs[n], file, MAX_EPOCHS);
        if (logs[n].n == 0) {  // not started
            epoch_log_free(&logs[n]);
            continue;
        }
        xs[n] = (double*)mallocCheck((size_t)(logs[n].n + 1) * sizeof(double));
        ys[n] = (double*)mallocCheck((size_t)(logs[n].n + 1) * sizeof(double));
        for (int e = 0; e < logs[n].n; e++) {
            xs[n][e] = e + 1;
            ys[n][e] = logs[n].valid[e];
        }
        s[n] = (SvgSeries){st->cells[i].name, logs[n].n, xs[n], ys[n], NULL, NULL};
        n++;
    }
    char title[128];
    snprintf(title, sizeof(title), "Valid NDCG@10 per epoch: %s (seed %d)", llm ? "E4SRec models" : "conventional models", st->first_seed);
    SvgAxes a = {title, "epoch (log)", "valid full NDCG@10", 1};
    svg_line_chart(path, &a, s, n);
    for (int i = 0; i < n; i++) {
        epoch_log_free(&logs[i]);
        free(xs[i]);
        free(ys[i]);
    }
}

// each student's +RD, +ED and +DLLM2Rec minus its plain self, with the 95% interval
static void plot_dllm2rec(const Study* st, const PairedDiff* diffs, const char* path) {
    static const char* const bars[3] = {"+RD (ranking)", "+ED (embedding)", "+DLLM2Rec (both)"};
    static const char* const suffix[3] = {"_rd", "_ed", "_dllm2rec"};
    double v[STUDENT_KINDS * 3], lo[STUDENT_KINDS * 3], hi[STUDENT_KINDS * 3];
    for (int k = 0; k < STUDENT_KINDS; k++) {
        for (int b = 0; b < 3; b++) {
            char a_key[40], b_key[40];
            snprintf(a_key, sizeof(a_key), "%s%s", STUDENT_FLAG_NAMES[k], suffix[b]);
            snprintf(b_key, sizeof(b_key), "%s_plain", STUDENT_FLAG_NAMES[k]);
            v[k * 3 + b] = lo[k * 3 + b] = hi[k * 3 + b] = NAN;
            for (int i = 0; i < st->n_cmp; i++) {
                if (strcmp(st->cells[st->cmp[i].a].key, a_key) || strcmp(st->cells[st->cmp[i].b].key, b_key) || diffs[i].n == 0) continue;
                v[k * 3 + b] = diffs[i].diff;
                lo[k * 3 + b] = diffs[i].lo;
                hi[k * 3 + b] = diffs[i].hi;
            }
        }
    }
    SvgAxes a = {"DLLM2Rec: each part's gain over the plain student (95% interval)", NULL, "test NDCG@10, distilled - plain", 0};
    svg_bar_chart(path, &a, STUDENT_NAMES, STUDENT_KINDS, bars, 3, v, lo, hi);
}

// ----------------------------------------------------------------------------
// study.json

static void study_write_json(const Study* st, const StudySummary* sums, const PairedDiff* diffs, const char* cpu, const char* path) {
    OutFile o;
    outfile_open(&o, path);
    FILE* f = o.f;
    fprintf(f, "{\n \"preset\": \"%s\", \"data\": ", st->preset.name);
    json_write_string(f, st->data);
    fprintf(f, ", \"first_seed\": %d, \"seeds\": %d, \"cpu\": ", st->first_seed, st->seeds);
    json_write_string(f, cpu);
    fprintf(f, ",\n \"cells\": [");
    for (int i = 0; i < st->n_cells; i++) {
        const StudyCell* c = &st->cells[i];
        const StudySummary* s = &sums[i];
        char command[STUDY_LINE];
        study_command(command, sizeof(command), st, st->first_seed, c);
        fprintf(f, "%s\n  {\"key\": \"%s\", \"name\": ", i ? "," : "", c->key);
        json_write_string(f, c->name);
        fprintf(f, ", \"command_first_seed\": ");
        json_write_string(f, command);
        fprintf(f, ", \"done\": %s", s->done ? "true" : "false");
        if (!s->done) {
            fprintf(f, "}");
            continue;
        }
        fprintf(f, ", \"test_full_NDCG@10_mean\": %.6f, \"test_full_NDCG@10_sd\": %.6f, \"test_full_HR@10_mean\": %.6f, "
                "\"params\": %.0f, \"train_s_mean\": %.2f, \"epoch_s_mean\": %.3f, \"epoch_s_timed\": ",
                s->ndcg_mean, s->ndcg_sd, s->hr_mean, s->params, s->train_s, s->epoch_s);
        if (s->epoch_s_timed > 0.0) fprintf(f, "%.3f", s->epoch_s_timed);
        else fprintf(f, "null");  // not a main model, or its timing failed
        fprintf(f, ", \"infer_ms_per_1000_users\": %.3f, \"converged\": %d,\n   \"runs\": [", s->infer_ms, s->converged);
        for (int r = 0; r < st->seeds; r++) {
            const StudyRun* u = &s->runs[r];
            fprintf(f, "%s{\"seed\": %d, \"test_full_NDCG@10\": %.6f, \"test_full_HR@10\": %.6f, \"valid_full_NDCG@10\": %.6f, "
                    "\"train_s\": %.2f, \"infer_s\": %.3f, \"epochs\": %d, \"best_epoch\": %d, \"converged\": %s}", r ? ", " : "",
                    st->first_seed + r, u->ndcg, u->hr, u->valid, u->train_s, u->infer_s, u->epochs, u->best_epoch,
                    u->converged ? "true" : "false");
        }
        fprintf(f, "]}");
    }
    fprintf(f, "\n ],\n \"comparisons\": [");
    for (int i = 0; i < st->n_cmp; i++) {
        const StudyComparison* c = &st->cmp[i];
        const PairedDiff* d = &diffs[i];
        int e = 0;
        while ((1 << e) != c->experiment) e++;
        if (d->n == 0) {
            fprintf(f, "%s\n  {\"experiment\": \"%s\", \"a\": \"%s\", \"b\": \"%s\", \"verdict\": \"pending\"}", i ? "," : "",
                    STUDY_EXPERIMENTS[e], st->cells[c->a].key, st->cells[c->b].key);
            continue;
        }
        fprintf(f, "%s\n  {\"experiment\": \"%s\", \"a\": \"%s\", \"b\": \"%s\", \"users\": %d, \"mean_a\": %.6f, \"mean_b\": %.6f, "
                "\"diff\": %.6f, \"ci95\": [%.6f, %.6f], \"verdict\": \"%s\"}", i ? "," : "", STUDY_EXPERIMENTS[e],
                st->cells[c->a].key, st->cells[c->b].key, d->n, d->mean_a, d->mean_b, d->diff, d->lo, d->hi, paired_verdict(d));
    }
    fprintf(f, "\n ]\n}\n");
    outfile_commit(&o);
}

// ----------------------------------------------------------------------------
// the whole report

// threads: those each cell ran with, or 0 when unknown (--report)
static void study_report(const Study* st, int threads) {
    StudySummary* sums = (StudySummary*)callocCheck((size_t)st->n_cells, sizeof(StudySummary));
    for (int i = 0; i < st->n_cells; i++) study_summarize(&sums[i], st, &st->cells[i]);
    int infer_threads = threads > 0 ? threads : bench_threads();
    study_retime(st, sums, infer_threads);
    PairedDiff diffs[STUDY_MAX_CELLS];
    int done = 0;
    for (int i = 0; i < st->n_cells; i++) done += sums[i].done;
    for (int i = 0; i < st->n_cmp; i++) {  // n = 0: pending, a side not trained yet
        const StudySummary *a = &sums[st->cmp[i].a], *b = &sums[st->cmp[i].b];
        diffs[i] = a->done && b->done ? study_paired(a, b, st->seeds) : (PairedDiff){.n = 0};
    }
    char cpu[256], path[1200], when[64];
    cpu_model_name(cpu, sizeof(cpu));
    time_t now = time(NULL);
    strftime(when, sizeof(when), "%Y-%m-%d", localtime(&now));
    int x = st->experiments;

    char* text = NULL;
    size_t len = 0;
    FILE* f = open_memstream(&text, &len);
    if (f == NULL) die("study: cannot make the report in memory: %s", strerror(errno));
    fprintf(f, "# Study: %s, preset %s, %d seed%s\n\n", st->data, st->preset.name, st->seeds, st->seeds > 1 ? "s" : "");
    char with[80] = "";
    if (threads > 0) snprintf(with, sizeof(with), " with %d thread%s", threads, threads > 1 ? "s" : "");
    if (threads > 0 && st->jobs > 1) snprintf(with + strlen(with), sizeof(with) - strlen(with), " a cell, %d cells at a time", st->jobs);
    fprintf(f, "%d cells (%d models x %d seeds), on %s%s, %s; %.0f s of wall time training them.\n"
               "Every model is selected on valid full NDCG@10 and tested on the held-out last item of each user, ranked "
               "against every item. Values are the mean ± sd over the seeds; *converged* counts the seeds whose best valid "
               "epoch came before their last. Each comparison is the per-user paired difference of test NDCG@10 (each "
               "user's value averaged over the seeds), with its 95%% bootstrap interval over users: better or worse when "
               "the interval excludes 0, else a tie (method.md 7.5). *infer ms/1k users* was timed when this report was "
               "written: each model's checkpoint of seed %d scoring every test user on the CPU (an untimed pass, then "
               "passes until a second has passed), the models one after another, with %d thread%s.\n",
            st->n_cells * st->seeds, st->n_cells, st->seeds, cpu, with, when, study_wall_read(st), st->first_seed, infer_threads,
            infer_threads > 1 ? "s" : "");
    if (done < st->n_cells) {
        fprintf(f, "\n**In progress: %d of %d models trained.** The others are marked *not yet trained* and their "
                   "comparisons *pending*; the learning curves show the epochs so far.\n", done, st->n_cells);
    }
    if (x & EXP_DEPTH) {
        md_experiment(f, st, sums, diffs, EXP_DEPTH, "Depth: how many decoder layers does E4SRec need?",
                      "E4SRec_l for each depth l, each trained alone on the same SASRec item table; each compared with the deepest.",
                      "depth.svg", "test NDCG@10 against depth");
    }
    if (x & EXP_SLMREC) {
        md_experiment(f, st, sums, diffs, EXP_SLMREC, "SLMRec: the distilled student and its ablations",
                      "The teacher against the SASRec whose item table it reads (is it worth distilling?); the student against "
                      "its teacher and against the same depth trained alone; each ablation the preset runs "
                      "against the full method (Dcos, Dnorm or the multi-supervision CE removed; a student started from random "
                      "weights instead of the teacher's first layers; with --preset paper also other block counts B and online "
                      "distillation).", NULL, NULL);
    }
    if (x & EXP_EFFICIENCY) md_efficiency(f, st, sums);
    if (x & EXP_DLLM2REC) {
        md_experiment(f, st, sums, diffs, EXP_DLLM2REC, "DLLM2Rec: plain against distilled students",
                      "Each conventional student plain, with ranking distillation (+RD), embedding distillation (+ED) and both "
                      "(+DLLM2Rec); the teacher against each plain student; the importance weights removed one at a time; the "
                      "authors' BCE+DROS objective beside the full-softmax CE.", "dllm2rec.svg", "DLLM2Rec gains");
    }
    if ((x & EXP_PRETRAINED) && st->init) {
        md_experiment(f, st, sums, diffs, EXP_PRETRAINED, "Pretrained decoder: scratch, full fine-tuning, LoRA",
                      "The teacher's depth from random weights, fine-tuned from --init in full, and with LoRA adapters over it.",
                      NULL, NULL);
    }
    fprintf(f, "\n## Learning curves\n\n![valid NDCG@10 per epoch, E4SRec models](curves_e4srec.svg)\n"
               "![valid NDCG@10 per epoch, conventional models](curves_conventional.svg)\n");
    fprintf(f, "\n## Cells\n\nEach cell is an ordinary command; seed %d's (the others differ in --seed and --out):\n\n",
            st->first_seed);
    for (int i = 0; i < st->n_cells; i++) {
        char command[STUDY_LINE];
        study_command(command, sizeof(command), st, st->first_seed, &st->cells[i]);
        fprintf(f, "* %s: `./slmrec %s`\n", st->cells[i].name, command);
    }
    fclose(f);

    snprintf(path, sizeof(path), "%s/study.md", st->out);
    OutFile o;
    outfile_open(&o, path);
    fwrite(text, 1, len, o.f);
    outfile_commit(&o);
    fwrite(text, 1, len, stdout);
    if (log_file) fwrite(text, 1, len, log_file);
    free(text);
    snprintf(path, sizeof(path), "%s/study.json", st->out);
    study_write_json(st, sums, diffs, cpu, path);
    if (x & EXP_DEPTH) { snprintf(path, sizeof(path), "%s/depth.svg", st->out); plot_depth(st, sums, path); }
    if (x & EXP_DLLM2REC) { snprintf(path, sizeof(path), "%s/dllm2rec.svg", st->out); plot_dllm2rec(st, diffs, path); }
    snprintf(path, sizeof(path), "%s/pareto.svg", st->out);
    plot_pareto(st, sums, path);
    snprintf(path, sizeof(path), "%s/curves_e4srec.svg", st->out);
    plot_curves(st, 1, path);
    snprintf(path, sizeof(path), "%s/curves_conventional.svg", st->out);
    plot_curves(st, 0, path);
    logf_("\nstudy: %s/study.md, study.json and the SVG plots beside it\n", st->out);
    for (int i = 0; i < st->n_cells; i++) {
        for (int s = 0; s < st->seeds && sums[i].done; s++) free(sums[i].runs[s].per_user);
    }
    free(sums);
}
