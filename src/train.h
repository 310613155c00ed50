// train.h: the one training loop every model uses (SASRec, E4SRec teacher,
// plain E4SRec_l, SLMRec student, online distillation), and evaluation.
// Per epoch: shuffle the training units (users, or DLLM2Rec's samples), one optimizer step per batch with
// progress lines (loss, samples/s, ETA), then valid full NDCG@10; the best
// epoch's weights go to "<out>.bin", the full training state to
// "<out>.last.bin" so --resume continues exactly where the run stopped, and the
// epoch's line to "<out>.epochs.tsv".
#pragma once
#include "checkpoint.h"
#include "data.h"
#include "eval.h"

#define LOSS_PENDING (-1.0f)  // train_batch: the loss is not known yet (every loss is >= 0)

// a recommender as the training loop and the scorers (evaluate, eval, recommend) see it;
// one that is only scored (a loaded student, say) leaves the training functions NULL
typedef struct {
    const char* name;
    void* model;
    int I;                 // item table rows: scores are (n, I)
    int max_len;           // history length the model reads
    // one optimizer step on a batch of training units (users, whose examples the model
    // samples, or sample ids): forward, backward, then o's AdamW step wherever the model
    // lives. Returns the mean loss of the steps since its previous report (on the CPU:
    // this step's), or LOSS_PENDING while a GPU runs ahead; report = 1 asks for a report
    float (*train_batch)(void* model, Optimizer* o, const int* units, int n, Rng* rng, int report);
    // scores (n, I) for left-padded histories (n, max_len), no dropout
    void (*score)(void* model, const int* histories, int n, float* scores);
    // writes the model, with the training state when o != NULL
    void (*save)(void* model, const char* path, const TrainProgress* p, const Optimizer* o);
    // reads the weights written by save; with o != NULL also the progress and AdamW
    // moments (--resume), after checking the state's run record against p->record
    void (*load)(void* model, const char* path, TrainProgress* p, Optimizer* o);
    // what an epoch goes over: 0 = every user with a train prefix of 2 or more items
    // (train_batch gets user ids), n > 0 = samples 0..n-1 (train_batch gets sample ids)
    int n_samples;
} Recommender;

// the units of one epoch, in a fixed order; returns how many
static int training_units(const Recommender* t, const SeqData* d, int* units) {
    if (t->n_samples == 0) return trainable_users(d, units);
    for (int i = 0; i < t->n_samples; i++) units[i] = i;
    return t->n_samples;
}

typedef struct {
    int epochs;           // at most this many epochs
    int batch;            // samples per optimizer step
    int patience;         // stop after this many epochs without a better valid NDCG@10 (0 = never)
    float time_budget;    // stop after this many seconds of training, resumed processes included (0 = none)
    int stop_after;       // stop after this many epochs in this process, schedule unchanged (0 = none)
    int time_steps;       // > 0: time rounds of this many steps instead of training (train_time_steps)
    int eval_batch;       // users per scoring batch
    uint64_t seed;
    const RunRecord* record;  // what the run computes: saved in "<out>.last.bin", matched on resume
} TrainConfig;

// ----------------------------------------------------------------------------
// evaluation: rank every user's split target with both protocols

// per_user: NULL, or (n_users) each user's full NDCG@10
static Metrics evaluate(const Recommender* t, const SeqData* d, Split split, const Negatives* neg, int batch, float* per_user) {
    Metrics m;
    metrics_init(&m);
    m.per_row = per_user;
    int* hist = (int*)mallocCheck((size_t)batch * t->max_len * sizeof(int));
    int* targets = (int*)mallocCheck((size_t)batch * sizeof(int));
    float* scores = (float*)mallocCheck((size_t)batch * t->I * sizeof(float));
    for (int u0 = 0; u0 < d->n_users; u0 += batch) {
        int n = min_int(batch, d->n_users - u0);
        eval_batch(d, split, u0, n, t->max_len, hist, targets);
        t->score(t->model, hist, n, scores);
        metrics_add_batch(&m, scores, d->n_items, n, targets, neg, u0);
    }
    metrics_finalize(&m);
    free(hist); free(targets); free(scores);
    return m;
}

static void format_duration(char* buf, size_t cap, double s) {
    if (s < 60) snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600) snprintf(buf, cap, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, cap, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

// ----------------------------------------------------------------------------
// an epoch's loss, from a device that may run ahead: train_batch returns LOSS_PENDING
// for the steps it has not reported yet, then the mean of all of them at once

typedef struct {
    double sum;      // the losses of the reported steps, summed
    int unreported;  // steps taken since the last report
} LossTally;

// counts one step whose train_batch returned loss; dies when a reported loss is not finite
static void loss_tally_step(LossTally* l, float loss, const char* name, int epoch, int step) {
    l->unreported++;
    if (loss == LOSS_PENDING) return;
    if (!isfinite(loss)) {  // the mean of the unreported steps up to this one
        die("%s: the loss became %g at epoch %d, step %d%s: lower --lr", name, loss, epoch + 1, step + 2 - l->unreported,
            l->unreported > 1 ? " or one of the steps after it up to this one" : "");
    }
    l->sum += (double)loss * l->unreported;
    l->unreported = 0;
}

// ----------------------------------------------------------------------------
// the history of a training: "<out>.epochs.tsv", one line per epoch (train loss, valid
// full NDCG@10, seconds), rewritten whole after every epoch so that it always matches
// the state in "<out>.last.bin"; study plots the learning curves from it

typedef struct {
    int n, cap;
    float* loss;      // (n) the epoch's mean train loss
    float* valid;     // (n) its valid full NDCG@10
    float* seconds;   // (n) its wall time, evaluation included
} EpochLog;

static void epoch_log_add(EpochLog* h, float loss, float valid, float seconds) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->loss = (float*)realloc(h->loss, (size_t)h->cap * sizeof(float));
        h->valid = (float*)realloc(h->valid, (size_t)h->cap * sizeof(float));
        h->seconds = (float*)realloc(h->seconds, (size_t)h->cap * sizeof(float));
        if (!h->loss || !h->valid || !h->seconds) die("epoch_log_add: out of memory for %d epochs", h->cap);
    }
    h->loss[h->n] = loss;
    h->valid[h->n] = valid;
    h->seconds[h->n++] = seconds;
}

// the first `epochs` lines of path (a resumed run's epochs so far); a missing file or a
// shorter one (written by a version without it) leaves the log short, and nothing fails
static void epoch_log_read(EpochLog* h, const char* path, int epochs) {
    FILE* f = fopen(path, "r");
    if (f == NULL) return;
    char line[256];
    int e;
    float loss, valid, seconds;
    while (h->n < epochs && fgets(line, sizeof(line), f)) {
        if (line[0] != '#' && sscanf(line, "%d\t%f\t%f\t%f", &e, &loss, &valid, &seconds) == 4 && e == h->n + 1) {
            epoch_log_add(h, loss, valid, seconds);
        }
    }
    fclose(f);
}

static void epoch_log_write(const EpochLog* h, const char* path) {
    OutFile o;
    outfile_open(&o, path);
    fprintf(o.f, "# epoch\ttrain_loss\tvalid_full_NDCG@10\tseconds\n");
    for (int i = 0; i < h->n; i++) fprintf(o.f, "%d\t%.6f\t%.6f\t%.2f\n", i + 1, h->loss[i], h->valid[i], h->seconds[i]);
    outfile_commit(&o);
}

static void epoch_log_free(EpochLog* h) {
    free(h->loss);
    free(h->valid);
    free(h->seconds);
}

// ----------------------------------------------------------------------------
// the loop

typedef struct {
    double train_seconds;  // wall time in optimizer steps, resumed processes included
    int epochs, best_epoch;  // epochs trained in all (resumed runs included), the selected one
    float best_valid;
    int stopped;           // --stop-after ended it before its last epoch: resume to finish
    int timed;             // --time-steps: steps were timed, nothing was trained to keep
} TrainResult;

#define TIME_STEPS_WARMUP 2
#define TIME_STEPS_MIN_SECONDS 1.0

// count training steps from step *s on, over the batches of units (taken again from the
// start once an epoch of them is done); the last asks for its loss, so a device that runs
// ahead has finished them all when it returns. Returns the samples they took
static long time_steps_run(Recommender* t, Optimizer* opt, const int* units, int n_train, int batch, int* s, int count, Rng* rng) {
    int steps_per_epoch = (n_train + batch - 1) / batch;
    long samples = 0;
    for (int i = 0; i < count; i++, (*s)++) {
        int first = (*s % steps_per_epoch) * batch, n = min_int(batch, n_train - first);
        t->train_batch(t->model, opt, units + first, n, rng, i == count - 1);
        samples += n;
    }
    return samples;
}

// --time-steps N: from a fresh start over a shuffled epoch, TIME_STEPS_WARMUP untimed steps,
// then rounds of N timed ones until at least TIME_STEPS_MIN_SECONDS have passed (a small model's
// N steps are too short for the clock alone). Writes <out>.step_time.json: the batch, the steps
// timed, seconds per step and per epoch (an epoch of steps, without its evaluation). Saves no model.
static TrainResult train_time_steps(Recommender* t, Optimizer* opt, const TrainConfig* cfg, const char* out, int* units,
                                    int n_train) {
    int steps_per_epoch = (n_train + cfg->batch - 1) / cfg->batch;
    Rng rng;
    rng_seed(&rng, cfg->seed);
    rng_shuffle(&rng, units, n_train);
    int s = 0, timed = 0;
    time_steps_run(t, opt, units, n_train, cfg->batch, &s, TIME_STEPS_WARMUP, &rng);
    double t0 = now_seconds(), seconds = 0.0;
    long samples = 0;
    while (timed == 0 || seconds < TIME_STEPS_MIN_SECONDS) {
        samples += time_steps_run(t, opt, units, n_train, cfg->batch, &s, cfg->time_steps, &rng);
        timed += cfg->time_steps;
        seconds = now_seconds() - t0;
    }
    double step_s = seconds / timed;
    logf_("  [%s] %d steps of up to %d samples timed after %d untimed: %.2f ms a step, %.0f samples/s, %.1f s an epoch of %d steps\n",
          t->name, timed, cfg->batch, TIME_STEPS_WARMUP, 1e3 * step_s, samples / seconds, step_s * steps_per_epoch, steps_per_epoch);
    char path[1100];
    snprintf(path, sizeof(path), "%s.step_time.json", out);
    OutFile o;
    outfile_open(&o, path);
    fprintf(o.f, "{\"model\": ");
    json_write_string(o.f, t->name);
    fprintf(o.f, ", \"batch\": %d, \"steps_timed\": %d, \"samples_timed\": %ld, \"step_s\": %.6f, \"steps_per_epoch\": %d, "
            "\"epoch_s\": %.6f}\n", cfg->batch, timed, samples, step_s, steps_per_epoch, step_s * steps_per_epoch);
    outfile_commit(&o);
    TrainResult r = {0};
    r.timed = 1;
    return r;
}

// trains t on d; out is the checkpoint path stem ("DIR/e4srec_8"); resume continues
// from "<out>.last.bin" (whose moments must match opt). opt must be ready.
static TrainResult train(Recommender* t, Optimizer* opt, const SeqData* d, const Negatives* valid_neg,
                         const TrainConfig* cfg, const char* out, int resume) {
    char best_path[1100], last_path[1100], epochs_path[1100];
    snprintf(best_path, sizeof(best_path), "%s.bin", out);
    snprintf(last_path, sizeof(last_path), "%s.last.bin", out);
    snprintf(epochs_path, sizeof(epochs_path), "%s.epochs.tsv", out);
    int* units = (int*)mallocCheck((size_t)max_int(d->n_users, t->n_samples) * sizeof(int));
    int n_train = training_units(t, d, units);
    if (n_train == 0) die("%s: no user has a train prefix of 2 or more items", t->name);
    if (cfg->time_steps > 0) {
        TrainResult r = train_time_steps(t, opt, cfg, out, units, n_train);
        free(units);
        return r;
    }
    int steps_per_epoch = (n_train + cfg->batch - 1) / cfg->batch;
    TrainProgress p = {.batch = cfg->batch, .best = -1.0f, .record = cfg->record};
    Rng rng;
    rng_seed(&rng, cfg->seed);
    if (resume && access(last_path, R_OK) == 0) {
        t->load(t->model, last_path, &p, opt);
        rng.state = p.rng;
        logf_("  [%s] resumed from %s at epoch %d (step %d, best valid NDCG@10 %.4f)\n", t->name, last_path, p.epoch, p.step, p.best);
    }
    EpochLog history = {0};
    epoch_log_read(&history, epochs_path, p.epoch);
    TrainResult r = {.train_seconds = p.train_seconds, .epochs = p.epoch, .best_epoch = p.best_epoch, .best_valid = p.best};
    int epochs_now = 0;  // in this process, for --stop-after
    double t_start = now_seconds(), last_print = t_start;
    // --epochs is the learning-rate schedule's length, not where a model still inside its
    // patience stops: it goes on at the schedule's final rate until its patience runs out,
    // for at most as many epochs again (method.md 4.7). Without a patience it is the end.
    int max_epochs = cfg->patience > 0 ? min_int(2 * cfg->epochs, MAX_EPOCHS) : cfg->epochs;
    long samples_done = 0, samples_total = (long)(cfg->epochs - p.epoch) * n_train;  // to the schedule's end
    for (int epoch = p.epoch; epoch < max_epochs; epoch++) {
        if (cfg->patience > 0 && p.bad_epochs >= cfg->patience) break;
        if (cfg->time_budget > 0 && r.train_seconds >= cfg->time_budget) break;
        if (cfg->stop_after > 0 && epochs_now >= cfg->stop_after) { r.stopped = 1; break; }
        training_units(t, d, units);  // from the same order every epoch, so the shuffle depends on the RNG state alone
        rng_shuffle(&rng, units, n_train);
        double te = now_seconds();
        LossTally loss = {0.0, 0};
        int steps_done = 0, budget_stop = 0;
        for (int s = 0; s < steps_per_epoch; s++) {
            int n = min_int(cfg->batch, n_train - s * cfg->batch);
            // the time budget is checked before every step but the first: once it is spent the
            // epoch ends (and is evaluated and saved as any other), after one more step only
            // when a device that runs ahead still owes losses (it reports with that step)
            double before = now_seconds();
            int last_step = s == steps_per_epoch - 1;
            int out_of_time = s > 0 && cfg->time_budget > 0 && r.train_seconds + (before - te) >= cfg->time_budget;
            if (out_of_time && loss.unreported == 0) { budget_stop = s; break; }
            int print_due = before - last_print > 10.0 || (last_step && before - t_start > 10.0);
            float step_loss = t->train_batch(t->model, opt, units + s * cfg->batch, n, &rng, last_step || out_of_time || print_due);
            samples_done += n;
            steps_done++;
            loss_tally_step(&loss, step_loss, t->name, epoch, s);
            if (print_due) {
                double now = now_seconds(), rate = samples_done / (now - t_start);
                char eta[32], of[48];
                // past the schedule the ETA is the epoch's: the patience decides how many follow
                long left = epoch < cfg->epochs ? samples_total - samples_done : (long)(steps_per_epoch - s - 1) * cfg->batch;
                format_duration(eta, sizeof(eta), (double)left / rate);
                if (epoch < cfg->epochs) snprintf(of, sizeof(of), "/%d", cfg->epochs);
                else snprintf(of, sizeof(of), " (after the schedule's %d)", cfg->epochs);
                logf_("  [%s] epoch %d%s step %d/%d loss %.4f lr %.2e %.0f samples/s ETA %s\n", t->name, epoch + 1, of,
                      s + 1, steps_per_epoch, loss.sum / (s + 1), opt->last_lr, rate, eta);
                last_print = now;
            }
            if (out_of_time) { budget_stop = s + 1; break; }
        }
        if (budget_stop && budget_stop < steps_per_epoch) {
            logf_("  [%s] time budget of %.0fs reached after step %d of %d in epoch %d\n", t->name, cfg->time_budget,
                  budget_stop, steps_per_epoch, epoch + 1);
        }
        r.train_seconds += now_seconds() - te;
        Metrics m = evaluate(t, d, SPLIT_VALID, valid_neg, cfg->eval_batch, NULL);
        float ndcg = (float)metrics_selection(&m);
        p.epoch = epoch + 1;
        p.step = opt->step;
        if (ndcg > p.best) {
            p.best = ndcg;
            p.bad_epochs = 0;
            p.best_epoch = p.epoch;
            t->save(t->model, best_path, NULL, NULL);
        } else {
            p.bad_epochs++;
        }
        p.rng = rng.state;
        p.train_seconds = r.train_seconds;
        t->save(t->model, last_path, &p, opt);
        epochs_now++;
        float seconds = (float)(now_seconds() - te);
        epoch_log_add(&history, (float)(loss.sum / steps_done), ndcg, seconds);
        epoch_log_write(&history, epochs_path);
        logf_("  [%s] epoch %d: train loss %.4f, valid NDCG@10 %.4f (best %.4f at epoch %d), %.1fs\n", t->name, p.epoch,
              loss.sum / steps_done, ndcg, p.best, p.best_epoch, seconds);
    }
    epoch_log_free(&history);
    r.epochs = p.epoch;
    r.best_epoch = p.best_epoch;
    r.best_valid = p.best;
    free(units);
    return r;
}
