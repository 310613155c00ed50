// study.h: ./slmrec study, the papers' experiments as one resumable grid of cells.
// A cell is one ordinary command (train-sasrec, train-teacher, distill, dllm2rec)
// run as a child process of this binary with its own --out, <out>/seed_<s>/<key>,
// its output in that directory's output.txt. A cell is done once its
// <stem>.results.json exists, so a study run again with --resume skips the finished
// cells and continues an unfinished one from its last epoch (the command's own
// --resume). With --jobs N, N cells train at once, each started once the cells whose
// files it reads are done. The report (study_report.h) reads the cells' files back.
#pragma once
#include <sys/prctl.h>
#include <sys/wait.h>

#define STUDY_MAX_CELLS 64
#define STUDY_MAX_SEEDS 16
#define STUDY_MAX_JOBS 16
#define STUDY_LINE 8192  // a cell's whole command line

enum { EXP_DEPTH = 1, EXP_SLMREC = 2, EXP_EFFICIENCY = 4, EXP_DLLM2REC = 8, EXP_PRETRAINED = 16 };
static const char* const STUDY_EXPERIMENTS[] = {"depth", "slmrec", "efficiency", "dllm2rec", "pretrained"};
#define STUDY_N_EXPERIMENTS 5

// a preset: the data it makes when no --data is given, the depths of its grid, and the
// flags its cells get beside the grid's own (shapes and budgets), one string per command
typedef struct {
    const char* name;
    int synth_users, synth_items, synth_len;  // the synthetic set it writes without --data
    int seeds;                                // --seeds on that synthetic set (1 on a data file)
    int M, N, B;                              // teacher and student depth, distillation blocks
    int depths[4], n_depths;                  // the depth experiment's E4SRec_l
    int ablate_blocks[2], n_ablate_blocks;    // SLMRec's other block counts
    int ablate_online;                        // SLMRec online beside the offline student
    int ablate_all_students;                  // DLLM2Rec's ablations for each student (else SASRec's only)
    const char* common;                       // every cell (flags every command takes)
    const char* sasrec;                       // train-sasrec
    const char* teacher;                      // train-teacher (every E4SRec_l)
    const char* distill;                      // distill
    const char* student;                      // dllm2rec
} StudyPreset;

static const StudyPreset STUDY_PRESETS[] = {
    // a course's: minutes on a 2-core laptop, every model to convergence
    // (the SLMRec ablations of the loss terms and the start; B and online are the paper preset's)
    {"demo", 600, 150, 10, 3, 8, 4, 4, {1, 2, 4, 8}, 4, {0}, 0, 0, 0, "--max-len 10",
     "--sasrec-dim 32", "--hidden 32 --ffn 64 --warmup 30", "--warmup 30", "--dim 32 --student-epochs 400"},
    // the papers' grid at the project's default shapes: hours on a data file, resumable
    // (DLLM2Rec's ablations for the SASRec student only: each Beauty student cell is ~half an hour on 2 cores)
    {"paper", SYNTH_USERS, SYNTH_ITEMS, SYNTH_MEAN_LEN, 3, 8, 4, 4, {1, 2, 4, 8}, 4, {1, 2}, 2, 1, 0, "", "", "", "", ""},
    // the machinery in seconds (the tests'): tiny models, two epochs (no patience: nothing goes
    // on past its schedule), nothing converges
    {"smoke", 60, 30, 6, 1, 2, 1, 1, {1, 2}, 2, {0}, 0, 1, 0, "--max-len 5", "--sasrec-dim 8 --sasrec-epochs 2 --sasrec-patience 0",
     "--hidden 8 --ffn 16 --heads 2 --kv-heads 1 --vocab 280 --epochs 2 --patience 0", "--epochs 2 --patience 0",
     "--dim 8 --topk 5 --student-epochs 2 --student-patience 0"},
};
#define STUDY_N_PRESETS 3

typedef struct {
    char key[40];    // its directory under seed_<s>/ (unique)
    char name[48];   // its name in the tables
    char stem[40];   // the file stem its command writes
    char args[600];  // the command and its flags, space separated; '@' stands for the seed's directory
    int main;        // a model of its own, not an ablation: in the efficiency table, the plots
    int e4srec;      // an E4SRec model (train-teacher, distill): its command takes --device
} StudyCell;

typedef struct {
    int experiment;  // EXP_*
    int a, b;        // cells: is A better than B?
} StudyComparison;

typedef struct {
    StudyPreset preset;
    const char* out;
    char data[1100];     // the sequence file every cell reads
    const char* init;    // a pretrained base for the pretrained experiment, or NULL
    int seeds;           // seeds first_seed, first_seed + 1, ...
    int first_seed;
    int jobs;            // cells training at once
    int experiments;     // EXP_* bits
    const char* exe;     // the binary each cell runs: this one
    StudyCell cells[STUDY_MAX_CELLS];
    int n_cells;
    StudyComparison cmp[STUDY_MAX_CELLS];
    int n_cmp;
} Study;

// ----------------------------------------------------------------------------
// the grid

// adds a cell unless one of that key is there already (experiments share cells); returns its index
static int study_cell(Study* st, const char* key, const char* name, const char* stem, const char* fmt, ...) {
    for (int i = 0; i < st->n_cells; i++) if (strcmp(st->cells[i].key, key) == 0) return i;
    if (st->n_cells == STUDY_MAX_CELLS) die("study: more than %d cells", STUDY_MAX_CELLS);
    StudyCell* c = &st->cells[st->n_cells];
    snprintf(c->key, sizeof(c->key), "%s", key);
    snprintf(c->name, sizeof(c->name), "%s", name);
    snprintf(c->stem, sizeof(c->stem), "%s", stem);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->args, sizeof(c->args), fmt, ap);
    va_end(ap);
    c->main = 0;
    c->e4srec = 0;
    return st->n_cells++;
}

static void study_compare(Study* st, int experiment, int a, int b) {
    if (st->n_cmp == STUDY_MAX_CELLS) die("study: more than %d comparisons", STUDY_MAX_CELLS);
    st->cmp[st->n_cmp++] = (StudyComparison){experiment, a, b};
}

// E4SRec_l on the seed's SASRec item table
static int study_e4srec(Study* st, int layers) {
    ModelName mn = model_name(layers, NULL);
    int i = study_cell(st, mn.stem, mn.name, mn.stem, "train-teacher --sasrec @/sasrec/sasrec.bin --layers %d %s", layers,
                       st->preset.teacher);
    st->cells[i].main = 1;
    st->cells[i].e4srec = 1;
    return i;
}

// SLMRec_N<-M with B distillation blocks and extra flags (an ablation), from the seed's E4SRec_M
static int study_slmrec(Study* st, const char* key, const char* name, int blocks, const char* flags) {
    const StudyPreset* p = &st->preset;
    char stem[40];
    snprintf(stem, sizeof(stem), "slmrec_%d_from_%d", p->N, p->M);
    int i = study_cell(st, key, name, stem, "distill --teacher @/e4srec_%d/e4srec_%d.bin --layers %d --blocks %d %s %s", p->M, p->M,
                       p->N, blocks, p->distill, flags);
    st->cells[i].e4srec = 1;
    return i;
}

// a DLLM2Rec student of the seed's E4SRec_M teacher with weights lam (ranking) and ed
// (embedding); an ablation adds its key and name suffixes and flags
static int study_student(Study* st, StudentKind kind, float lam, float ed, const char* key_suffix, const char* name_suffix,
                         const char* flags) {
    const StudyPreset* p = &st->preset;
    ModelName mn = student_name(kind, lam, ed);
    char key[40], name[48], teacher[200] = "";
    snprintf(key, sizeof(key), "%s%s", mn.stem, key_suffix);
    snprintf(name, sizeof(name), "%s%s", mn.name, name_suffix);
    if (lam > 0.0f || ed > 0.0f) snprintf(teacher, sizeof(teacher), "--teacher @/e4srec_%d/e4srec_%d.bin --signals @/teacher_signals.bin", p->M, p->M);
    return study_cell(st, key, name, mn.stem, "dllm2rec --student %s --lam %g --ed %g %s %s %s", STUDENT_FLAG_NAMES[kind], lam, ed,
                      teacher, p->student, flags);
}

// the cells and comparisons of the chosen experiments, in an order where every cell
// comes after the cells whose files it reads: first the models of run's pipeline (so a
// long study has its main table early; the plain students, which need no teacher,
// before the teacher), then the other depths and the ablations
static void study_plan(Study* st) {
    const StudyPreset* p = &st->preset;
    int x = st->experiments;
    Config dc = config_defaults();  // dllm2rec's own weights: lam, ed, gammas
    int sasrec = study_cell(st, "sasrec", "SASRec", "sasrec", "train-sasrec %s", p->sasrec);
    st->cells[sasrec].main = 1;
    int full = -1, plain[STUDENT_KINDS], both[STUDENT_KINDS];
    for (int k = 0; k < STUDENT_KINDS && (x & EXP_DLLM2REC); k++) {
        plain[k] = study_student(st, (StudentKind)k, 0.0f, 0.0f, "", "", "");
        st->cells[plain[k]].main = 1;
    }
    int teacher = study_e4srec(st, p->M);
    if (x & (EXP_SLMREC | EXP_EFFICIENCY)) {
        int plain_n = study_e4srec(st, p->N);
        char name[48];
        snprintf(name, sizeof(name), "SLMRec_%d<-%d", p->N, p->M);
        full = study_slmrec(st, "slmrec", name, p->B, "");
        st->cells[full].main = 1;
        study_compare(st, EXP_SLMREC, teacher, sasrec);  // is the teacher worth distilling?
        study_compare(st, EXP_SLMREC, full, teacher);
        study_compare(st, EXP_SLMREC, full, plain_n);
    }
    for (int k = 0; k < STUDENT_KINDS && (x & EXP_DLLM2REC); k++) {
        both[k] = study_student(st, (StudentKind)k, dc.lam, dc.ed, "", "", "");
        st->cells[both[k]].main = 1;
        study_compare(st, EXP_DLLM2REC, teacher, plain[k]);
        study_compare(st, EXP_DLLM2REC, both[k], plain[k]);
    }
    for (int i = 0; i < p->n_depths && (x & EXP_DEPTH); i++) {
        int l = study_e4srec(st, p->depths[i]);
        if (l != teacher) study_compare(st, EXP_DEPTH, l, teacher);
    }
    if (x & EXP_SLMREC) {
        struct { const char* key; const char* name; int blocks; const char* flags; } ablations[8] = {
            {"slmrec_no_cos", "SLMRec w/o Dcos", p->B, "--lambda-cos 0"},
            {"slmrec_no_norm", "SLMRec w/o Dnorm", p->B, "--lambda-norm 0"},
            {"slmrec_no_ms", "SLMRec w/o multi-supervision", p->B, "--lambda-ms 0"},
            {"slmrec_random", "SLMRec from random weights", p->B, "--init-random"},
            {"slmrec_online", "SLMRec online", p->B, "--online"},
        };
        int n = p->ablate_online ? 5 : 4;
        char keys[2][40], names[2][48];
        for (int i = 0; i < p->n_ablate_blocks; i++, n++) {
            snprintf(keys[i], sizeof(keys[i]), "slmrec_b%d", p->ablate_blocks[i]);
            snprintf(names[i], sizeof(names[i]), "SLMRec B=%d", p->ablate_blocks[i]);
            ablations[n].key = keys[i];
            ablations[n].name = names[i];
            ablations[n].blocks = p->ablate_blocks[i];
            ablations[n].flags = "";
        }
        for (int i = 0; i < n; i++) {
            int cell = study_slmrec(st, ablations[i].key, ablations[i].name, ablations[i].blocks, ablations[i].flags);
            study_compare(st, EXP_SLMREC, cell, full);
        }
    }
    if (x & EXP_DLLM2REC) {
        float g[3];
        if (sscanf(dc.gammas, "%f,%f,%f", &g[0], &g[1], &g[2]) != 3) die("study: the default --gammas '%s' is not three weights", dc.gammas);
        for (int k = 0; k < STUDENT_KINDS; k++) {
            StudentKind kind = (StudentKind)k;
            study_compare(st, EXP_DLLM2REC, study_student(st, kind, dc.lam, 0.0f, "", "", ""), plain[k]);
            study_compare(st, EXP_DLLM2REC, study_student(st, kind, 0.0f, dc.ed, "", "", ""), plain[k]);
            if (k > 0 && !p->ablate_all_students) continue;
            static const char* const weight[3] = {"position", "confidence", "consistency"};
            for (int w = 0; w < 3; w++) {
                char key[24], name[40], flags[64];
                snprintf(key, sizeof(key), "_no_%s", weight[w]);
                snprintf(name, sizeof(name), " w/o %s", weight[w]);
                snprintf(flags, sizeof(flags), "--gammas %g,%g,%g", w == 0 ? 0.0f : g[0], w == 1 ? 0.0f : g[1], w == 2 ? 0.0f : g[2]);
                study_compare(st, EXP_DLLM2REC, study_student(st, kind, dc.lam, dc.ed, key, name, flags), both[k]);
            }
            int bce_plain = study_student(st, kind, 0.0f, 0.0f, "_bce", " (BCE+DROS)", "--base-loss bce-dros");
            int bce_both = study_student(st, kind, dc.lam, dc.ed, "_bce", " (BCE+DROS)", "--base-loss bce-dros");
            study_compare(st, EXP_DLLM2REC, bce_both, bce_plain);
            study_compare(st, EXP_DLLM2REC, bce_both, both[k]);
        }
    }
    if ((x & EXP_PRETRAINED) && st->init) {
        char name[48];
        snprintf(name, sizeof(name), "E4SRec_%d from --init", p->M);
        int init_full = study_cell(st, "e4srec_init", name, model_name(p->M, NULL).stem,
                                   "train-teacher --sasrec @/sasrec/sasrec.bin --layers %d --init %s %s", p->M, st->init, p->teacher);
        snprintf(name, sizeof(name), "E4SRec_%d from --init, LoRA", p->M);
        int lora = study_cell(st, "e4srec_init_lora", name, model_name(p->M, NULL).stem,
                              "train-teacher --sasrec @/sasrec/sasrec.bin --layers %d --init %s --lora-rank 8 %s", p->M, st->init,
                              p->teacher);
        st->cells[init_full].e4srec = st->cells[lora].e4srec = 1;
        study_compare(st, EXP_PRETRAINED, init_full, teacher);
        study_compare(st, EXP_PRETRAINED, lora, teacher);
        study_compare(st, EXP_PRETRAINED, lora, init_full);
    }
}

// the binary each cell runs: this one (the tests, built without main, point it at ./slmrec)
static const char* study_exe = "/proc/self/exe";

// "depth,slmrec" -> EXP_* bits
static int study_parse_only(const char* list) {
    int bits = 0;
    char copy[256];
    snprintf(copy, sizeof(copy), "%s", list);
    for (char* tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
        int e = 0;
        while (e < STUDY_N_EXPERIMENTS && strcmp(tok, STUDY_EXPERIMENTS[e]) != 0) e++;
        if (e == STUDY_N_EXPERIMENTS) {
            char echo[ECHO_CAP];
            die("study: --only names '%s', not an experiment: depth, slmrec, efficiency, dllm2rec, pretrained",
                echo_input(tok, strlen(tok), echo));
        }
        bits |= 1 << e;
    }
    if (bits == 0) die("study: --only names no experiment");
    return bits;
}

// study.txt in --out: the preset and data a study was started with, which --resume must keep
static void study_state(const Study* st, int resume) {
    char path[1100], want[1400];
    snprintf(path, sizeof(path), "%s/study.txt", st->out);
    snprintf(want, sizeof(want), "preset %s\ndata %s\n", st->preset.name, st->data);
    if (access(path, R_OK) == 0) {
        if (!resume) die("study: '%s' holds a study already: add --resume to go on with it, or choose another --out", st->out);
        char* have = read_file(path, NULL);
        int same = strcmp(have, want) == 0;
        if (!same) die("study: '%s' was started as\n%sthis run is\n%s  resume it with its own --preset and --data", path, have, want);
        free(have);
        return;
    }
    OutFile o;
    outfile_open(&o, path);
    fputs(want, o.f);
    outfile_commit(&o);
}

// the study of the command's flags, checked: every refusal before anything is written
static void study_setup(Study* st, const char* preset, const char* data, const char* out, const char* only, const char* init,
                        int seeds, int first_seed, int jobs) {
    memset(st, 0, sizeof(*st));
    int p = 0;
    while (p < STUDY_N_PRESETS && strcmp(preset, STUDY_PRESETS[p].name) != 0) p++;
    if (p == STUDY_N_PRESETS) die("study: --preset must be demo, paper or smoke, got '%s'", preset);
    st->preset = STUDY_PRESETS[p];
    st->out = out;
    st->init = init;
    st->exe = study_exe;
    st->first_seed = first_seed;
    st->jobs = jobs;
    if (jobs < 1 || jobs > STUDY_MAX_JOBS) die("study: --jobs must be in 1..%d, got %d", STUDY_MAX_JOBS, jobs);
    st->seeds = seeds ? seeds : data ? 1 : st->preset.seeds;
    if (st->seeds < 1 || st->seeds > STUDY_MAX_SEEDS) die("study: --seeds must be in 1..%d, got %d", STUDY_MAX_SEEDS, st->seeds);
    st->experiments = only ? study_parse_only(only) : (EXP_DEPTH | EXP_SLMREC | EXP_EFFICIENCY | EXP_DLLM2REC | (init ? EXP_PRETRAINED : 0));
    if ((st->experiments & EXP_PRETRAINED) && init == NULL) die("study: the pretrained experiment needs --init BASE.bin");
    if (strlen(out) > MAX_OUT_DIR - 100) die("study: --out is %zu characters long, at most %d are supported", strlen(out), MAX_OUT_DIR - 100);
    const char* paths[3] = {out, data, init};
    for (int i = 0; i < 3; i++) {
        if (paths[i] && strpbrk(paths[i], " \t@")) die("study: '%s' has a space or an '@': the cells' command lines cannot hold it", paths[i]);
    }
    if (data) {
        SeqData d;
        seqdata_load(&d, data, 0);  // refused now, not in the first cell
        seqdata_free(&d);
        absolute_path(data, st->data, sizeof(st->data), "--data");
    } else {  // the preset's synthetic set, written by study_open
        char rel[1100];
        snprintf(rel, sizeof(rel), "%s/data.txt", out);
        absolute_path(rel, st->data, sizeof(st->data), "--out");
    }
}

// --report: --out must hold a study started with this --preset and --data
static void study_state_check(const Study* st) {
    char path[1100];
    snprintf(path, sizeof(path), "%s/study.txt", st->out);
    if (access(path, R_OK) != 0) die("study --report: '%s' holds no study (no study.txt)", st->out);
    study_state(st, 1);
}

// takes --out's lock (returned, to close at the end), checks or writes study.txt, writes the
// preset's synthetic set where the study makes its own data, opens the study's log
static int study_open(Study* st, int synthetic, int resume) {
    int lock = outdir_lock(st->out);
    study_state(st, resume);
    if (synthetic && access(st->data, R_OK) != 0) {
        SeqData d;
        synth_generate(&d, st->preset.synth_users, st->preset.synth_items, st->preset.synth_len, SYNTH_SEED);
        seqdata_write(&d, st->data);
        seqdata_free(&d);
    }
    char path[1100];
    snprintf(path, sizeof(path), "%s/log.txt", st->out);
    log_file = fopenCheck(path, "a");
    return lock;
}

// ----------------------------------------------------------------------------
// running the cells

static void study_cell_dir(char* out, size_t cap, const Study* st, int seed, const StudyCell* c) {
    snprintf(out, cap, "%s/seed_%d/%s", st->out, seed, c->key);
}

static int study_cell_done(const Study* st, int seed, const StudyCell* c) {
    char dir[1100], path[1200];
    study_cell_dir(dir, sizeof(dir), st, seed, c);
    snprintf(path, sizeof(path), "%s/%s.results.json", dir, c->stem);
    return access(path, R_OK) == 0;
}

// the cell's whole command line, '@' expanded, with --out dir and the flags in tail last
static void study_command_in(char* out, size_t cap, const Study* st, int seed, const StudyCell* c, const char* dir, const char* tail) {
    char seed_dir[1100], args[2400];
    snprintf(seed_dir, sizeof(seed_dir), "%s/seed_%d", st->out, seed);
    size_t n = 0;
    for (const char* a = c->args; *a && n + strlen(seed_dir) + 1 < sizeof(args); a++) {
        if (*a == '@') n += (size_t)snprintf(args + n, sizeof(args) - n, "%s", seed_dir);
        else args[n++] = *a;
    }
    args[n] = 0;
    char line[STUDY_LINE];
    snprintf(line, sizeof(line), "%s --data %s --seed %d --out %s %s %s", args, st->data, seed, dir, st->preset.common, tail);
    size_t k = 0;  // one space between flags, where a preset's empty string left two
    for (const char* q = line; *q && k + 1 < cap; q++) {
        if (*q == ' ' && (k == 0 || out[k - 1] == ' ')) continue;
        out[k++] = *q;
    }
    out[k] = 0;
}

// the cell's own command, resuming in its directory: what its command.txt says and what runs
static void study_command(char* out, size_t cap, const Study* st, int seed, const StudyCell* c) {
    char dir[1100];
    study_cell_dir(dir, sizeof(dir), st, seed, c);
    study_command_in(out, cap, st, seed, c, dir, "--resume");
}

// does cell i read a file that cell j writes? Its command names j's directory, or both
// read the seed's teacher signals and j is the first of the plan to (j writes them, i
// waits for them). The plan puts every cell after those it reads (j < i).
static int study_needs(const Study* st, int i, int j) {
    if (j >= i) return 0;
    char dir[64];
    snprintf(dir, sizeof(dir), "@/%s/", st->cells[j].key);
    if (strstr(st->cells[i].args, dir)) return 1;
    const char* signals = "@/teacher_signals.bin";
    if (!strstr(st->cells[i].args, signals) || !strstr(st->cells[j].args, signals)) return 0;
    for (int k = 0; k < j; k++) if (strstr(st->cells[k].args, signals)) return 0;  // j is not the first reader
    return 1;
}

// runs `./slmrec line` as a child process (this binary), its stdout and stderr appended to
// output; returns its pid. The child ends with the study (killed, a cell would go on holding
// its directory's lock). line is cut into words here
static pid_t study_spawn(const Study* st, char* line, const char* output, const char* what) {
    char* argv[96];
    int argc = 0;
    argv[argc++] = (char*)"slmrec";  // its name in ps; execv runs st->exe
    for (char* tok = strtok(line, " "); tok && argc < 95; tok = strtok(NULL, " ")) argv[argc++] = tok;
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) die("study: cannot start a process for %s: %s", what, strerror(errno));
    if (pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) _exit(125);
        int fd = open(output, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0) { fprintf(stderr, "study: cannot open '%s': %s\n", output, strerror(errno)); _exit(126); }
        dup2(fd, 1);
        dup2(fd, 2);
        execv(st->exe, argv);
        fprintf(stderr, "study: cannot run '%s': %s\n", st->exe, strerror(errno));
        _exit(127);
    }
    return pid;
}

// <dir>/command.txt: the command a child process of the study runs there
static void study_write_command(const char* dir, const char* line) {
    char path[1200];
    snprintf(path, sizeof(path), "%s/command.txt", dir);
    OutFile o;
    outfile_open(&o, path);
    fprintf(o.f, "./slmrec %s\n", line);
    outfile_commit(&o);
}

// starts one cell as a child process (the cell's command, resuming); returns its pid
static pid_t study_start_cell(const Study* st, int seed, const StudyCell* c) {
    char dir[1100], line[STUDY_LINE], path[1200];
    study_cell_dir(dir, sizeof(dir), st, seed, c);
    make_dir(dir);
    study_command(line, sizeof(line), st, seed, c);
    study_write_command(dir, line);
    snprintf(path, sizeof(path), "%s/output.txt", dir);
    return study_spawn(st, line, path, c->key);
}

#define STUDY_TIME_STEPS 20
#define STUDY_WALL_EVERY 60.0  // seconds: how often a running study adds to its wall time

// a finished cell's training step, re-timed on the CPU: its command of the first seed
// with --time-steps (and --device cpu where it takes one) in <out>/timing/<key> (a fresh
// start: no checkpoint, no results; command.txt says what ran), in a child process
// waited for here. Returns the seconds an epoch of its steps takes, or 0 when the timing
// failed (another report timing the same cell, say): the report says so and shows no
// time for it, and the log names the child's output
static double study_time_training(const Study* st, const StudyCell* c) {
    char dir[1100], line[STUDY_LINE], path[1200], tail[32];
    snprintf(dir, sizeof(dir), "%s/timing", st->out);
    make_dir(dir);
    snprintf(dir, sizeof(dir), "%s/timing/%s", st->out, c->key);
    make_dir(dir);
    // on the CPU, as the inference beside it, where the command could choose a GPU
    snprintf(tail, sizeof(tail), "--time-steps %d%s", STUDY_TIME_STEPS, c->e4srec ? " --device cpu" : "");
    study_command_in(line, sizeof(line), st, st->first_seed, c, dir, tail);
    study_write_command(dir, line);
    snprintf(path, sizeof(path), "%s/output.txt", dir);
    unlink(path);
    pid_t pid = study_spawn(st, line, path, c->key);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) die("study: waiting for the timing of cell %s: %s", c->key, strerror(errno));
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        logf_("study: warning: timing the training of cell %s failed, so the efficiency table has no time for it: see %s\n",
              c->key, path);
        return 0.0;
    }
    snprintf(path, sizeof(path), "%s/%s.step_time.json", dir, c->stem);
    char* json = read_file(path, NULL);
    double epoch_s = json_number(json, "epoch_s", path);
    free(json);
    return epoch_s;
}

// a finished child: did it exit 0 with its results written? If not, why, in why
static int study_cell_ok(const Study* st, int seed, const StudyCell* c, int status, char* why, size_t cap) {
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && study_cell_done(st, seed, c)) return 1;
    char dir[1100];
    study_cell_dir(dir, sizeof(dir), st, seed, c);
    snprintf(why, cap, "study: cell %s of seed %d failed (%s %d): its output is in %s/output.txt\n"
             "  fix the cause, then run the same study command with --resume to go on from there",
             c->key, seed, WIFEXITED(status) ? "exit" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), dir);
    return 0;
}

// <out>/wall_seconds.txt: the study's wall time in cells so far, every process that
// ran it included (a resumed study adds to it)
static double study_wall_read(const Study* st) {
    char path[1100];
    snprintf(path, sizeof(path), "%s/wall_seconds.txt", st->out);
    FILE* f = fopen(path, "r");
    double s = 0.0;
    if (f && fscanf(f, "%lf", &s) != 1) s = 0.0;
    if (f) fclose(f);
    return s;
}

static void study_wall_write(const Study* st, double seconds) {
    char path[1100];
    snprintf(path, sizeof(path), "%s/wall_seconds.txt", st->out);
    OutFile o;
    outfile_open(&o, path);
    fprintf(o.f, "%.1f\n", seconds);
    outfile_commit(&o);
}

// waits for a cell's process to end. Meanwhile, and when it ends, the time since *wall_at
// goes into the study's wall time at least every STUDY_WALL_EVERY seconds, so a study
// killed outright (at a session's end) loses at most that much of it. Returns the pid
static pid_t study_wait(const Study* st, int* status, double* wall_at) {
    for (;;) {
        pid_t child = waitpid(-1, status, WNOHANG);
        if (child < 0 && errno != EINTR) die("study: waiting for the cells: %s", strerror(errno));
        double t = now_seconds();
        if (child > 0 || t - *wall_at >= STUDY_WALL_EVERY) {
            study_wall_write(st, study_wall_read(st) + t - *wall_at);
            *wall_at = t;
        }
        if (child > 0) return child;
        struct timespec pause = {0, 200 * 1000 * 1000};  // 0.2 s between looks
        nanosleep(&pause, NULL);
    }
}

// --jobs N with OMP_NUM_THREADS unset: each cell gets its share of the cores this
// process may run on (set here, the cells inherit it); returns the threads a cell runs with
static int study_cell_threads(const Study* st) {
    if (st->jobs == 1 || getenv("OMP_NUM_THREADS") != NULL) return bench_threads();
#ifdef _OPENMP
    int cores = omp_get_num_procs();
#else
    int cores = 1;  // no OpenMP: a cell runs one thread whatever it is told
#endif
    int threads = cores > st->jobs ? cores / st->jobs : 1;
    char value[16];
    snprintf(value, sizeof(value), "%d", threads);
    setenv("OMP_NUM_THREADS", value, 1);
    return threads;
}

// every cell of every seed, skipping the finished ones, up to --jobs at once: a cell
// starts, in seed then plan order, once every cell it needs is done. When one fails,
// none starts after it, the others running finish, and then the study stops with why.
// Returns the threads each cell ran with.
static int study_run(const Study* st) {
    enum { PENDING, RUNNING, DONE };
    int n = st->n_cells, total = n * st->seeds, todo = 0, ran = 0, running = 0, failed = 0;
    char why[1600] = "";
    int* state = (int*)mallocCheck((size_t)total * sizeof(int));  // [seeds][cells]
    pid_t* pid = (pid_t*)mallocCheck((size_t)total * sizeof(pid_t));
    double* started = (double*)mallocCheck((size_t)total * sizeof(double));
    for (int k = 0; k < total; k++) {
        state[k] = study_cell_done(st, st->first_seed + k / n, &st->cells[k % n]) ? DONE : PENDING;
        todo += state[k] == PENDING;
    }
    int threads = study_cell_threads(st);
    logf_("study: %d cells (%d models x %d seeds), %d done, %d to train, %d at a time with %d thread%s each\n", total, n,
          st->seeds, total - todo, todo, st->jobs, threads, threads > 1 ? "s" : "");
    double t0 = now_seconds(), wall_at = t0;
    while (ran < todo && !(failed && running == 0)) {
        for (int k = 0; k < total && running < st->jobs && !failed; k++) {
            if (state[k] != PENDING) continue;
            int ready = 1, base = k - k % n;
            for (int j = 0; j < n && ready; j++) ready = !study_needs(st, k % n, j) || state[base + j] == DONE;
            if (!ready) continue;
            pid[k] = study_start_cell(st, st->first_seed + k / n, &st->cells[k % n]);
            state[k] = RUNNING;
            started[k] = now_seconds();
            running++;
            logf_("  [study] seed %d %s started\n", st->first_seed + k / n, st->cells[k % n].key);
        }
        if (running == 0) die("study: no cell can start and none is running: the plan puts a cell before one it needs");
        int status = 0;
        pid_t child = study_wait(st, &status, &wall_at);
        int k = 0;
        while (k < total && !(state[k] == RUNNING && pid[k] == child)) k++;
        if (k == total) continue;  // not a cell's process
        const StudyCell* c = &st->cells[k % n];
        running--;
        if (!study_cell_ok(st, st->first_seed + k / n, c, status, why, sizeof(why))) {
            state[k] = PENDING;
            failed = 1;
            logf_("%s\n", why);
            if (running > 0) logf_("  [study] no other cell starts; the %d running go%s on to the end\n", running, running > 1 ? "" : "es");
            continue;
        }
        state[k] = DONE;
        ran++;
        double t = now_seconds();
        char eta[32];
        format_duration(eta, sizeof(eta), (t - t0) / ran * (todo - ran));
        logf_("  [study] %d/%d seed %d %-28s %6.0fs, ETA %s\n", ran, todo, st->first_seed + k / n, c->key, t - started[k], eta);
    }
    free(state);
    free(pid);
    free(started);
    if (failed) die("%s", why);
    return threads;
}
