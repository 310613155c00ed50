// test_runs.c: runs that cannot mix or mislead. A teacher-signals cache is keyed
// by the teacher's weights as they ran; --resume refuses a state whose run record
// (teacher, objective, data) differs from this run's, before anything is written;
// one run per --out at a time, the log appended and kept when a run is refused;
// flags are refused where the loaders would refuse the files they produce.

#define RUNS_DIR "/tmp/slmrec_test_runs"

// a command and its argv, split from one line of flags, to run in-process or in a refusal check
typedef struct {
    int (*cmd)(int, char**);
    PipeArgs a;
} RunsCommand;

static RunsCommand runs_command(int (*cmd)(int, char**), const char* fmt, ...) {
    static char lines[8][1600];
    static int slot = 0;
    char* line = lines[slot++ % 8];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(lines[0]), fmt, ap);
    va_end(ap);
    RunsCommand r = {cmd, {0, {0}}};
    for (char* tok = strtok(line, " "); tok && r.a.argc < 24; tok = strtok(NULL, " ")) r.a.argv[r.a.argc++] = tok;
    return r;
}

static int runs_exec(RunsCommand r) { return r.cmd(r.a.argc, r.a.argv); }
static void runs_exec_child(void* arg) { runs_exec(*(RunsCommand*)arg); }

static char* runs_read(const char* path) { return access(path, R_OK) == 0 ? read_file(path, NULL) : NULL; }


// the times a line starts with prefix in text
static int runs_count_lines(const char* text, const char* prefix) {
    int n = 0;
    for (const char* p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) n += strncmp(p, prefix, strlen(prefix)) == 0;
    return n;
}

// the weights checksum that keys a signals cache (header dim 4)
static uint32_t runs_signals_key(const char* path) { return (uint32_t)test_header_int(path, 6 + 4); }

// run --online trains the teacher on after e4srec_4.bin is written: its signals are keyed
// by the weights that computed them, so dllm2rec with the file recomputes instead of
// reusing candidates from another model
static void test_runs_online_cache(const char* data) {
    Config c = test_pipe_config(RUNS_DIR "/online");
    c.data = data;
    c.online = 1;
    c.sas_epochs = 2;
    c.epochs = 2;
    c.st_epochs = 1;
    CHECK(pipeline(&c, NULL) == 0, "run --online exits 0");
    const char* signals = RUNS_DIR "/online/teacher_signals.bin";
    const char* teacher = RUNS_DIR "/online/e4srec_4.bin";
    // the run's comparisons, and each model's per-user file, which eval --per-user writes again
    char* json = runs_read(RUNS_DIR "/online/results.json");
    CHECK(json && runs_count_lines(strstr(json, "\"comparisons\""), "  {\"a\": ") == 9 &&
          strstr(json, "{\"a\": \"SLMRec_2<-4\", \"b\": \"E4SRec_4\", \"users\": 120,"),
          "results.json holds the nine comparisons over the 120 test users");
    free(json);
    RunsCommand ev = runs_command(cmd_eval, "--data %s --model %s --per-user " RUNS_DIR "/online/eval.tsv", data, teacher);
    CHECK(runs_exec(ev) == 0, "eval --per-user exits 0");
    char* from_run = runs_read(RUNS_DIR "/online/e4srec_4.test_ndcg.tsv");
    char* from_eval = runs_read(RUNS_DIR "/online/eval.tsv");
    CHECK(from_run && from_eval && strchr(from_run, '\n') && strchr(from_eval, '\n') &&
          runs_count_lines(from_run, "") == 121 && strcmp(strchr(from_run, '\n'), strchr(from_eval, '\n')) == 0,
          "eval --per-user writes the teacher's per-user NDCG@10 as the run did: a header and 120 user lines");
    free(from_run);
    free(from_eval);
    uint32_t online_key = runs_signals_key(signals), file_key = test_teacher_checksum(teacher);
    CHECK(online_key != file_key, "run --online keys its signals by the teacher it trained on (%08x), not the file's weights (%08x)",
          online_key, file_key);
    CHECK(system("cp " RUNS_DIR "/online/teacher_signals.bin " RUNS_DIR "/online_signals_before") == 0, "copy the online cache");
    RunsCommand dl = runs_command(cmd_dllm2rec, "--data %s --teacher %s --student gru4rec --out " RUNS_DIR "/online "
                                  "--max-len 8 --dim 12 --student-epochs 1 --student-batch 64 --topk 5", data, teacher);
    CHECK(runs_exec(dl) == 0, "dllm2rec with the online run's teacher file exits 0");
    CHECK(runs_signals_key(signals) == file_key, "dllm2rec recomputes the signals of the teacher file (%08x), got %08x",
          file_key, runs_signals_key(signals));
    // what the cache holds now is what the file's teacher computes, and differs from the online teacher's
    SeqData d;
    seqdata_load(&d, data, 0);
    E4SRecFile f;
    e4srec_load(&f, teacher);
    e4srec_freeze(&f.model);
    TeacherSignals fresh, cached;
    signals_compute(&fresh, &f.model, &d, 5);
    char why[1400];
    CHECK(signals_load_cached(&cached, signals, &d, &f.model, file_key, 5, why, sizeof(why)), "the cache loads: %s", why);
    size_t n = (size_t)fresh.n_samples * 5;
    CHECK(cached.n_samples == fresh.n_samples && memcmp(cached.cand, fresh.cand, n * sizeof(int)) == 0,
          "the cache holds the file teacher's top-5 of every sample");
    TeacherSignals online;
    signals_alloc(&online, &d, 5, cached.I, cached.C);
    size_t len = 0;
    char* bytes = read_file(RUNS_DIR "/online_signals_before", &len);
    memcpy(online.cand, bytes + HEADER_INTS * sizeof(int32_t), n * sizeof(int));
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) differ += online.cand[i] != fresh.cand[i];
    CHECK(differ > 0, "the online teacher's candidates differ from the file teacher's in %zu of %zu entries", differ, n);
    free(bytes);
    signals_free(&online);
    signals_free(&fresh);
    signals_free(&cached);
    e4srec_file_free(&f);
    seqdata_free(&d);
    char* log = runs_read(RUNS_DIR "/online/log.txt");
    CHECK(log && strstr(log, "was made from another teacher: computing them"), "the log says why the cache was recomputed");
    CHECK(log && runs_count_lines(log, "==== ") == 2, "log.txt keeps both runs, each after its own header line");
    free(log);
}

// --resume must agree with the run record of the state it continues: every mismatch is
// refused naming the flag and both values, before the log or the signals cache is touched
static void test_runs_resume_records(const char* data) {
    const char* teacher = RUNS_DIR "/online/e4srec_4.bin";
    const char* other = RUNS_DIR "/other/e4srec_4.bin";  // another teacher of the same depth: the same file names
    RunsCommand t = runs_command(cmd_train_teacher, "--data %s --sasrec " RUNS_DIR "/online/sasrec.bin --out " RUNS_DIR "/other "
                                 "--layers 4 --epochs 1 --max-len 8 --hidden 16 --ffn 24 --heads 2 --kv-heads 1 --batch 32", data);
    CHECK(runs_exec(t) == 0, "train-teacher of another 4-layer teacher exits 0");
    const char* common = "--student gru4rec --out " RUNS_DIR "/records --max-len 8 --dim 12 --student-batch 64 --student-epochs 3";
    RunsCommand first = runs_command(cmd_dllm2rec, "--data %s --teacher %s %s --topk 5 --stop-after 1", data, teacher, common);
    CHECK(runs_exec(first) == 0, "dllm2rec --stop-after 1 exits 0");
    char* log = runs_read(RUNS_DIR "/records/log.txt");
    CHECK(system("cp " RUNS_DIR "/records/teacher_signals.bin " RUNS_DIR "/cache_before") == 0, "copy the signals cache");
    struct { const char* flags; const char* expect; } changed[] = {
        {"--topk 5 --lam 0.5", "was trained with --lam 0.7; this run has --lam 0.5"},
        {"--topk 3", "was trained with --topk 5; this run has --topk 3"},
        {"--topk 5 --gammas 0.2,0.5,0.1", "was trained with --gammas 0.3,0.5,0.1; this run has --gammas 0.2,0.5,0.1"},
        {"--topk 5 --base-loss bce-dros", "was trained with --base-loss ce; this run has --base-loss bce-dros"},
        {"--topk 5 --rd-neg authors", "was trained with --rd-neg paper; this run has --rd-neg authors"},
        {"--topk 5 --dim 16", "was trained with --dim 12; this run has --dim 16"},
    };
    for (size_t i = 0; i < sizeof(changed) / sizeof(changed[0]); i++) {
        RunsCommand r = runs_command(cmd_dllm2rec, "--data %s --teacher %s %s %s --resume", data, teacher, common, changed[i].flags);
        char name[128];
        snprintf(name, sizeof(name), "dllm2rec --resume with %s", changed[i].flags);
        check_dies(name, runs_exec_child, &r, changed[i].expect);
    }
    RunsCommand r = runs_command(cmd_dllm2rec, "--data %s --teacher %s %s --topk 5 --resume", data, other, common);
    check_dies("dllm2rec --resume with another --teacher", runs_exec_child, &r, "was trained with --teacher weights fnv");
    char* log_after = runs_read(RUNS_DIR "/records/log.txt");
    CHECK(log && log_after && strcmp(log, log_after) == 0, "refused resumes leave log.txt as it was");
    CHECK(files_equal(RUNS_DIR "/cache_before", RUNS_DIR "/records/teacher_signals.bin"),
          "refused resumes leave the first teacher's signals cache as it was");
    free(log_after);
    r = runs_command(cmd_dllm2rec, "--data %s --teacher %s %s --topk 5 --resume", data, teacher, common);
    CHECK(runs_exec(r) == 0 && access(RUNS_DIR "/records/gru4rec_dllm2rec.results.json", R_OK) == 0,
          "dllm2rec --resume with the flags it started with finishes");
    // distill: the teacher is in the student's record too
    const char* distill = "--out " RUNS_DIR "/records --layers 2 --blocks 2 --epochs 2 --batch 32 --warmup 2";
    r = runs_command(cmd_distill, "--data %s --teacher %s %s --stop-after 1", data, teacher, distill);
    CHECK(runs_exec(r) == 0, "distill --stop-after 1 exits 0");
    r = runs_command(cmd_distill, "--data %s --teacher %s %s --resume", data, other, distill);
    check_dies("distill --resume with another --teacher", runs_exec_child, &r, "was trained with --teacher weights fnv");
    r = runs_command(cmd_distill, "--data %s --teacher %s %s --resume --lambda-norm 0.5", data, teacher, distill);
    check_dies("distill --resume with another --lambda-norm", runs_exec_child, &r, "was trained with --lambda-norm 0.1; this run has --lambda-norm 0.5");
    r = runs_command(cmd_distill, "--data %s --teacher %s %s --resume --position-ce 0.5", data, teacher, distill);
    check_dies("distill --resume with another --position-ce", runs_exec_child, &r, "was trained with --position-ce 1; this run has --position-ce 0.5");
    r = runs_command(cmd_distill, "--data %s --teacher %s %s --resume --samples one-cut", data, teacher, distill);
    check_dies("distill --resume with another --samples", runs_exec_child, &r, "was trained with --samples every-cut; this run has --samples one-cut");
    // a state from a build before run records is refused with what to do
    const char* last = RUNS_DIR "/records/slmrec_2_from_4.last.bin";
    size_t len = 0;
    char* bytes = read_file(last, &len);
    int32_t old_flag = 1;
    memcpy(bytes + (6 + 15) * sizeof(int32_t), &old_flag, sizeof(old_flag));  // E4SRec dim 15: has_state
    binfile_reseal(bytes, len);
    test_write(last, bytes, len);
    free(bytes);
    r = runs_command(cmd_distill, "--data %s --teacher %s %s --resume", data, teacher, distill);
    check_dies("a state without a run record", runs_exec_child, &r, "without a run record");
    free(log);
}

// a state an --online run wrote before the teacher went into it (online layers 0, no teacher's
// weights) is refused with what to do before log.txt is touched, as other bad resumes are
static void test_runs_online_state_without_teacher(const char* data) {
    const char* teacher = RUNS_DIR "/online/e4srec_4.bin";
    const char* distill = "--out " RUNS_DIR "/online_old --layers 2 --blocks 2 --epochs 2 --batch 32 --warmup 2 --online";
    RunsCommand r = runs_command(cmd_distill, "--data %s --teacher %s %s --stop-after 1", data, teacher, distill);
    CHECK(runs_exec(r) == 0, "distill --online --stop-after 1 exits 0");
    const char* last = RUNS_DIR "/online_old/slmrec_2_from_4.last.bin";
    E4SRecFile f;
    e4srec_load(&f, last);
    size_t len = 0;
    char* bytes = read_file(last, &len);
    size_t header = HEADER_INTS * sizeof(int32_t);
    size_t state_at = header + f.state.pos, teacher_bytes = f.online_teacher_params * sizeof(float);  // the teacher ends where the state begins
    memmove(bytes + state_at - teacher_bytes, bytes + state_at, len - state_at);
    len -= teacher_bytes;
    uint64_t payload = len - header;
    int32_t fields[2] = {(int32_t)(uint32_t)payload, (int32_t)(uint32_t)(payload >> 32)}, no_teacher = 0;
    memcpy(bytes + 3 * sizeof(int32_t), fields, sizeof(fields));  // the payload's bytes
    memcpy(bytes + (6 + 20) * sizeof(int32_t), &no_teacher, sizeof(no_teacher));  // E4SRec dim 20: online_layers
    binfile_reseal(bytes, len);
    test_write(last, bytes, len);
    free(bytes);
    e4srec_file_free(&f);
    char* log = runs_read(RUNS_DIR "/online_old/log.txt");
    r = runs_command(cmd_distill, "--data %s --teacher %s %s --resume", data, teacher, distill);
    check_dies("an --online state without its teacher", runs_exec_child, &r, "holds no online teacher");
    char* log_after = runs_read(RUNS_DIR "/online_old/log.txt");
    CHECK(log && log_after && strcmp(log, log_after) == 0, "the refused --online resume leaves log.txt as it was");
    free(log);
    free(log_after);
}

// a damaged signals cache (here a forged item count at INT_MIN) is refused before log.txt is touched
static void test_runs_cache_refused(const char* data) {
    const char* signals = RUNS_DIR "/records/teacher_signals.bin";
    size_t len = 0;
    char* bytes = read_file(signals, &len);
    int32_t forged = INT32_MIN;
    memcpy(bytes + (6 + 2) * sizeof(int32_t), &forged, sizeof(forged));  // signals dim 2: the item rows
    binfile_reseal(bytes, len);
    test_write(signals, bytes, len);
    free(bytes);
    char* log = runs_read(RUNS_DIR "/records/log.txt");
    RunsCommand r = runs_command(cmd_dllm2rec, "--data %s --teacher " RUNS_DIR "/online/e4srec_4.bin --student caser "
                                 "--out " RUNS_DIR "/records --max-len 8 --dim 12 --caser-filters 4 --topk 5", data);
    check_dies("a forged signals cache", runs_exec_child, &r, "for another data file (");
    char* after = runs_read(RUNS_DIR "/records/log.txt");
    CHECK(log && after && strcmp(log, after) == 0, "a refused cache leaves log.txt as it was");
    free(log);
    free(after);
}

// one run per --out: a held lock refuses a second run naming the holder; two runs
// started together each end clearly (finished, or refused before writing) and lose nothing
static void test_runs_one_per_out(const char* data) {
    const char* out = RUNS_DIR "/shared_out";
    int held = outdir_lock(out);
    RunsCommand sas = runs_command(cmd_train_sasrec, "--data %s --out %s --sasrec-epochs 4 --sasrec-dim 16 --max-len 8", data, out);
    char expect[96];
    snprintf(expect, sizeof(expect), "is in use by another slmrec run (process %ld", (long)getpid());
    check_dies("a second run into a held --out", runs_exec_child, &sas, expect);
    CHECK(access(RUNS_DIR "/shared_out/log.txt", F_OK) != 0, "the refused run wrote no log");
    close(held);
    // two at once, twice over
    int finished = 0;
    for (int trial = 0; trial < 2; trial++) {
        pid_t pids[2];
        char err[2][64];
        for (int k = 0; k < 2; k++) {
            snprintf(err[k], sizeof(err[k]), RUNS_DIR "/err_%d_%d.txt", trial, k);
            fflush(stdout);
            pids[k] = fork();
            if (pids[k] == 0) {
#ifdef _OPENMP
                omp_set_num_threads(1);  // the parent's OpenMP workers do not exist in a forked child
#endif
                int fd = open(err[k], O_WRONLY | O_CREAT | O_TRUNC, 0644);
                dup2(fd, 2);
                int null = open("/dev/null", O_WRONLY);
                dup2(null, 1);
                exit(runs_exec(sas));
            }
        }
        for (int k = 0; k < 2; k++) {
            int status = 0;
            waitpid(pids[k], &status, 0);
            char* msg = runs_read(err[k]);
            int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            int refused = WIFEXITED(status) && WEXITSTATUS(status) != 0 && msg && strstr(msg, "is in use by another slmrec run");
            CHECK(ok || refused, "a run into a shared --out either finishes or is refused for the lock: exit %d, %s",
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1, msg ? msg : "");
            finished += ok;
            free(msg);
            unlink(err[k]);
        }
    }
    char* log = runs_read(RUNS_DIR "/shared_out/log.txt");
    CHECK(finished >= 2, "at least one run of each pair finished (%d did)", finished);
    CHECK(log && runs_count_lines(log, "==== ") == finished && runs_count_lines(log, "  [SASRec] epoch 4:") == finished,
          "log.txt holds each of the %d finished runs, every epoch", finished);
    free(log);
    SASRecFile f;
    sasrec_load(&f, RUNS_DIR "/shared_out/sasrec.bin");
    sasrec_file_free(&f);
    glob_t g;
    CHECK(glob(RUNS_DIR "/shared_out/*.tmp*", 0, NULL, &g) == GLOB_NOMATCH, "no temporary file is left behind");
    globfree(&g);
}

// a temporary file of a writer that is gone is removed when the next run takes --out;
// one of a live process stays
static void test_runs_stale_tmp(const char* data) {
    const char* out = RUNS_DIR "/stale";
    make_dir(out);
    pid_t gone = fork();
    if (gone == 0) _exit(0);
    waitpid(gone, NULL, 0);
    char dead[128], live[128];
    snprintf(dead, sizeof(dead), "%s/sasrec.bin" TMP_SUFFIX "%ld", out, (long)gone);
    snprintf(live, sizeof(live), "%s/sasrec.bin" TMP_SUFFIX "1", out);  // init: always running
    test_write(dead, "half", 4);
    test_write(live, "half", 4);
    RunsCommand sas = runs_command(cmd_train_sasrec, "--data %s --out %s --sasrec-epochs 1 --sasrec-dim 16 --max-len 8", data, out);
    CHECK(runs_exec(sas) == 0, "train-sasrec into a directory with stale temporary files exits 0");
    CHECK(access(dead, F_OK) != 0, "the temporary file of a killed writer is removed");
    CHECK(access(live, F_OK) == 0, "the temporary file of a live process stays");
    unlink(live);
}

// flags whose values a loader would refuse are refused before any work
static void test_runs_flag_limits(void) {
    TestBadFlag bad[] = {{"--ed", "1e30"}, {"--ed", "1e7"}, {"--lora-alpha", "1e7"}, {"--lora-alpha", "1e-7"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char name[96];
        snprintf(name, sizeof(name), "run refuses %s %s, which no checkpoint may hold", bad[i].flag, bad[i].value);
        check_dies(name, test_pipe_bad_flag_run, &bad[i], bad[i].flag);
    }
}

static void test_runs_bad_recipe(void* unused) {
    (void)unused;
    Config c = config_defaults();
    char* argv[] = {"--recipe", "fast"};
    parse_training_flags("train-teacher", "", 2, argv, &c, FLAGS_RUN | FLAGS_E4SREC, NULL, 0);
}

// --recipe paper puts back the papers' settings; a flag beside it wins, before or after it
static void test_runs_recipe(void) {
    Config c = config_defaults();
    CHECK(strcmp(c.samples, "every-cut") == 0 && c.position_ce == 1.0f && c.sas_lr == 3e-3f && c.sas_dropout == 0.3f,
          "the default recipe: every-cut, --position-ce 1, SASRec lr 3e-3 and dropout 0.3");
    CHECK(student_lr(&c, STUDENT_SASREC) == 3e-3f && student_lr(&c, STUDENT_GRU4REC) == 3e-3f && student_lr(&c, STUDENT_CASER) == 1e-3f,
          "the default recipe's student rates: SASRec and GRU4Rec 3e-3, Caser 1e-3");
    char* paper[] = {"--recipe", "paper"};
    parse_training_flags("run", "", 2, paper, &c, FLAGS_RUN | FLAGS_SASREC | FLAGS_E4SREC, NULL, 0);
    CHECK(student_lr(&c, STUDENT_SASREC) == 1e-3f && student_lr(&c, STUDENT_CASER) == 1e-3f, "--recipe paper: every student at 1e-3");
    CHECK(strcmp(c.samples, "one-cut") == 0 && c.position_ce == 0.0f && c.sas_lr == 1e-3f && c.sas_dropout == 0.5f,
          "--recipe paper: one-cut, no every-position CE, SASRec lr 1e-3 and dropout 0.5 (got %s, %g, %g, %g)", c.samples,
          c.position_ce, c.sas_lr, c.sas_dropout);
    char* mixed[] = {"--position-ce", "0.5", "--recipe", "paper", "--sasrec-lr", "2e-3"};
    c = config_defaults();
    parse_training_flags("run", "", 6, mixed, &c, FLAGS_RUN | FLAGS_SASREC | FLAGS_E4SREC, NULL, 0);
    CHECK(c.position_ce == 0.5f && c.sas_lr == 2e-3f && strcmp(c.samples, "one-cut") == 0 && c.sas_dropout == 0.5f,
          "flags beside --recipe paper win, before or after it (got %g, %g)", c.position_ce, c.sas_lr);
    check_dies("an unknown --recipe", test_runs_bad_recipe, NULL, "--recipe must be default or paper, got 'fast'");
}

// input and output the same file, however the paths are spelled: refused, the input kept
static void test_runs_same_file(const char* data) {
    RunsCommand r = runs_command(cmd_recommend, "--model " RUNS_DIR "/online/e4srec_4.bin --data %s --out %s", data, data);
    char* before = runs_read(data);
    check_dies("recommend --out its own --data", runs_exec_child, &r, "is the input file");
    char* after = runs_read(data);
    CHECK(before && after && strcmp(before, after) == 0, "a refused recommend leaves its input as it was");
    free(before);
    free(after);
    r = runs_command(cmd_upgrade, "--in " RUNS_DIR "/online/sasrec.bin --out " RUNS_DIR "/./online/sasrec.bin");
    check_dies("upgrade --out the --in file by another spelling", runs_exec_child, &r, "are the same file");
}

// ----------------------------------------------------------------------------
// LoRA: the base path stored absolute, path lengths and chain depths checked before training

#define RUNS_LORA RUNS_DIR "/lora"

// a LoRA SLMRec student (L layers, one block) of the teacher file `teacher`, written to <c->out>/<stem>.bin
static void test_runs_lora_student(const Config* c, const PipeFixture* f, const char* teacher, const char* stem) {
    E4SRecFile t;
    e4srec_load(&t, teacher);
    e4srec_freeze(&t.model);
    E4SRecConfig sc = t.model.cfg;
    E4SRec s;
    e4srec_build(&s, &sc, t.item_table, t.model.instr, t.model.resp);
    Rng rng;
    rng_seed(&rng, 4);
    LoraSpec lora = config_lora(c);
    slmrec_student_start(&s, &t.model, teacher, NULL, NULL, 0, &lora, &rng);
    ResultRow row;
    RunRecord record;
    record_e4srec(&record, c, &f->d, &s, &t.model);
    stage_e4srec(c, &f->d, &f->vn, &f->tn, &s, &t.tok, &t.model, &record, stem, stem, &row);
    results_free(&row, 1);
    e4srec_free(&s);
    e4srec_file_free(&t);
}

static void test_runs_lora(const char* data) {
    PipeFixture f;
    pipe_fixture_init(&f);
    make_dir(RUNS_LORA);
    test_pipe_write_base(&f, RUNS_LORA "/base.bin", 1);
    // trained from the base by a relative --init: the file reads back from another directory
    char cwd[4096];
    CHECK(getcwd(cwd, sizeof(cwd)) != NULL, "getcwd");
    Config c = f.c;
    c.out = "chain";
    c.init = "base.bin";
    c.lora_rank = 2;
    c.blocks = 1;
    c.epochs = 1;
    CHECK(chdir(RUNS_LORA) == 0, "chdir " RUNS_LORA);
    make_dir(c.out);
    E4SRec m;
    test_pipe_train_lora(&c, &f, &m, 2);
    e4srec_free(&m);
    CHECK(chdir("/") == 0, "chdir /");
    E4SRecFile ck;
    e4srec_load(&ck, RUNS_LORA "/chain/tiny.bin");
    CHECK(strcmp(ck.model.lora->base_path, RUNS_LORA "/base.bin") == 0 && ck.lora_chain == 1,
          "a LoRA file stores its base as an absolute path ('%s') and reads back from another directory", ck.model.lora->base_path);
    e4srec_file_free(&ck);
    CHECK(chdir(cwd) == 0, "chdir back");
    // a chain of LORA_MAX_CHAIN files: each a LoRA student over the one before
    c.out = RUNS_LORA "/chain";
    c.init = NULL;
    char prev[256] = RUNS_LORA "/chain/tiny.bin", stem[32];
    for (int k = 2; k <= LORA_MAX_CHAIN; k++) {
        snprintf(stem, sizeof(stem), "link%d", k);
        test_runs_lora_student(&c, &f, prev, stem);
        snprintf(prev, sizeof(prev), RUNS_LORA "/chain/%s.bin", stem);
    }
    e4srec_load(&ck, prev);
    CHECK(ck.lora_chain == LORA_MAX_CHAIN, "the last link's frozen weights come through %d LoRA files, read %d", LORA_MAX_CHAIN, ck.lora_chain);
    e4srec_file_free(&ck);
    char data_path[256];
    snprintf(data_path, sizeof(data_path), "%s", data);
    seqdata_write(&f.d, data_path);
    RunsCommand r = runs_command(cmd_distill, "--data %s --teacher %s --out " RUNS_LORA "/deeper --layers 2 --blocks 1 "
                                 "--lora-rank 2 --epochs 1", data_path, prev);
    check_dies("distill with LoRA over a chain already at its limit", runs_exec_child, &r, "would make a chain of 9");
    CHECK(access(RUNS_LORA "/deeper", F_OK) != 0, "the refused distill created no --out");
    // an --init path too long to store is refused before any work
    char deep[1400] = RUNS_LORA;
    while (strlen(deep) < 1100) {
        strcat(deep, "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        CHECK(mkdir(deep, 0755) == 0 || errno == EEXIST, "mkdir %.40s...", deep);  // make_dir stops at --out's limit
    }
    char long_base[1500];
    snprintf(long_base, sizeof(long_base), "%s/base.bin", deep);
    char copy[3200];
    snprintf(copy, sizeof(copy), "cp " RUNS_LORA "/base.bin %s", long_base);  // longer than an output path may be
    CHECK(system(copy) == 0, "copy the base to a path of %zu characters", strlen(long_base));
    r = runs_command(cmd_run, "--data /nonexistent/never-read.txt --init %s --lora-rank 2 --teacher-layers 2 --student-layers 2", long_base);
    check_dies("an --init path too long to store in a LoRA file", runs_exec_child, &r, "characters long as an absolute path");
    pipe_fixture_free(&f);
}

// --time-steps: each training command times that many steps of a fresh start and writes
// <stem>.step_time.json, and nothing else (no checkpoint, no results); it takes no --resume,
// and a pipeline refuses it
static void test_runs_time_steps(const char* data) {
    const char* teacher = RUNS_DIR "/online/e4srec_4.bin";
    struct { RunsCommand r; const char* stem; int batch; } timed[3] = {
        {runs_command(cmd_distill, "--data %s --teacher %s --out " RUNS_DIR "/timed --layers 2 --blocks 2 --batch 32 --time-steps 3",
                      data, teacher), "slmrec_2_from_4", 32},
        {runs_command(cmd_dllm2rec, "--data %s --teacher %s --signals " RUNS_DIR "/online/teacher_signals.bin --student caser "
                      "--out " RUNS_DIR "/timed --max-len 8 --dim 12 --student-batch 64 --topk 5 --time-steps 3", data, teacher),
         "caser_dllm2rec", 64},
        {runs_command(cmd_train_sasrec, "--data %s --out " RUNS_DIR "/timed --sasrec-dim 16 --max-len 8 --time-steps 3", data),
         "sasrec", 128},
    };
    for (int i = 0; i < 3; i++) {
        CHECK(runs_exec(timed[i].r) == 0, "%s --time-steps 3 exits 0", timed[i].stem);
        char path[256], bin[256], last[256], results[256];
        snprintf(path, sizeof(path), RUNS_DIR "/timed/%s.step_time.json", timed[i].stem);
        snprintf(bin, sizeof(bin), RUNS_DIR "/timed/%s.bin", timed[i].stem);
        snprintf(last, sizeof(last), RUNS_DIR "/timed/%s.last.bin", timed[i].stem);
        snprintf(results, sizeof(results), RUNS_DIR "/timed/%s.results.json", timed[i].stem);
        char* json = runs_read(path);
        double step_s = json ? json_number(json, "step_s", path) : -1.0, epoch_s = json ? json_number(json, "epoch_s", path) : -1.0;
        int steps = json ? (int)json_number(json, "steps_timed", path) : 0, batch = json ? (int)json_number(json, "batch", path) : 0;
        int per_epoch = json ? (int)json_number(json, "steps_per_epoch", path) : 0;
        CHECK(steps >= 3 && steps % 3 == 0 && batch == timed[i].batch && step_s > 0.0 && step_s * steps >= 0.999 && per_epoch > 0 &&
              fabs(epoch_s - step_s * per_epoch) <= 1e-3 + 1e-3 * epoch_s,
              "%s: rounds of 3 timed steps of batch %d over at least a second, an epoch the steps of one "
              "(got %d steps of %d, %g s a step, %d a epoch, %g s)",
              timed[i].stem, timed[i].batch, steps, batch, step_s, per_epoch, epoch_s);
        CHECK(access(bin, R_OK) != 0 && access(last, R_OK) != 0 && access(results, R_OK) != 0,
              "%s --time-steps writes no checkpoint and no results", timed[i].stem);
        free(json);
    }
    RunsCommand r = runs_command(cmd_train_sasrec, "--data %s --out " RUNS_DIR "/timed --time-steps 3 --resume", data);
    check_dies("--time-steps with --resume", runs_exec_child, &r, "--time-steps times the steps of a fresh start: it takes no --resume");
    r = runs_command(cmd_run, "--data %s --out " RUNS_DIR "/timed_run --time-steps 3", data);
    check_dies("run --time-steps", runs_exec_child, &r, "--time-steps times one model: give it to train-sasrec");
    CHECK(access(RUNS_DIR "/timed_run", F_OK) != 0, "run --time-steps refused before it made its --out");
}

// study: the grid runs, is reported, and resumes without retraining a finished cell
#define STUDY_DIR RUNS_DIR "/study"
static PipeArgs study_args(const char* extra) {
    static char line[512];
    snprintf(line, sizeof(line), "--preset smoke --only depth --out " STUDY_DIR " %s", extra);
    PipeArgs a = {0, {0}};
    for (char* tok = strtok(line, " "); tok && a.argc < 24; tok = strtok(NULL, " ")) a.argv[a.argc++] = tok;
    return a;
}
static void study_child(void* arg) { PipeArgs* a = (PipeArgs*)arg; cmd_study(a->argc, a->argv); }

static int64_t file_mtime_ns(const char* path) {
    struct stat s;
    if (stat(path, &s) != 0) return -1;
    return (int64_t)s.st_mtim.tv_sec * 1000000000 + s.st_mtim.tv_nsec;
}

// the wall time a study has recorded, 0 when it has none
static double study_wall_seconds(void) {
    char* text = runs_read(STUDY_DIR "/wall_seconds.txt");
    double s = text ? atof(text) : 0.0;
    free(text);
    return s;
}

static void test_runs_study(void) {
    if (access("./slmrec", X_OK) != 0) {
        skip("study", "./slmrec is not built: make test builds it, and the study's cells run it");
        return;
    }
    study_exe = "./slmrec";
    PipeArgs a = study_args("--jobs 2");
    double t0 = now_seconds();
    CHECK(cmd_study(a.argc, a.argv) == 0, "study --preset smoke --only depth --jobs 2 exits 0");
    double elapsed = now_seconds() - t0, wall = study_wall_seconds();
    CHECK(wall > 0.0 && wall <= elapsed + 0.1, "the study's wall time (%.1f s) is within the command's %.1f s", wall, elapsed);
    // both E4SRec cells read SASRec's table: they start together once it is done
    char* log = runs_read(STUDY_DIR "/log.txt");
    const char* sasrec_done = log ? strstr(log, "] 1/3 seed 42 sasrec ") : NULL;
    const char* first_done = sasrec_done ? strstr(sasrec_done + 1, "] 2/3 seed 42") : NULL;
    const char* start1 = sasrec_done ? strstr(sasrec_done, "seed 42 e4srec_1 started") : NULL;
    const char* start2 = sasrec_done ? strstr(sasrec_done, "seed 42 e4srec_2 started") : NULL;
    CHECK(log && strstr(log, "2 at a time") && start1 && start2 && first_done &&
          start1 < first_done && start2 < first_done, "study --jobs 2: the E4SRec cells start after SASRec, together");
    free(log);
    char* md = runs_read(STUDY_DIR "/study.md");
    CHECK(md && strstr(md, "| E4SRec_1 | E4SRec_2 |") && strstr(md, "![test NDCG@10 against depth](depth.svg)") &&
          strstr(md, "`./slmrec train-teacher --sasrec "), "study.md: the depth comparison, its plot, each cell's command");
    free(md);
    char* json = runs_read(STUDY_DIR "/study.json");
    CHECK(json && strstr(json, "\"experiment\": \"depth\", \"a\": \"e4srec_1\", \"b\": \"e4srec_2\"") &&
          strstr(json, "\"runs\": [{\"seed\": 42,"), "study.json: the comparison and each seed's run");
    free(json);
    const char* plots[4] = {STUDY_DIR "/depth.svg", STUDY_DIR "/pareto.svg", STUDY_DIR "/curves_e4srec.svg",
                            STUDY_DIR "/curves_conventional.svg"};
    for (int i = 0; i < 4; i++) CHECK(access(plots[i], R_OK) == 0, "study wrote %s", plots[i]);
    EpochLog h = {0};  // smoke has no patience: its cells stop at their 2-epoch schedule
    epoch_log_read(&h, STUDY_DIR "/seed_42/e4srec_1/e4srec_1.epochs.tsv", 1000);
    CHECK(h.n == 2, "a smoke cell trains its 2 epochs and no more (%d)", h.n);
    epoch_log_free(&h);
    // a cell cut off before its results: --resume trains it alone, the finished cells stay as they were
    const char* kept[2] = {STUDY_DIR "/seed_42/sasrec/sasrec.bin", STUDY_DIR "/seed_42/e4srec_1/e4srec_1.bin"};
    int64_t before[2] = {file_mtime_ns(kept[0]), file_mtime_ns(kept[1])};
    unlink(STUDY_DIR "/seed_42/e4srec_2/e4srec_2.results.json");
    usleep(20000);
    // the costs are re-timed for the report, not the cell's own timings (here set to a day)
    CHECK(system("sed -i 's/\"infer_s\": [0-9.]*/\"infer_s\": 86400.0/; s/\"train_s\": [0-9.]*/\"train_s\": 86400.0/' "
                 STUDY_DIR "/seed_42/e4srec_1/e4srec_1.results.json") == 0, "set E4SRec_1's own inference and training times to a day");
    // the report of a study in progress: the finished cells, the cut-off one not yet trained, its comparison pending
    a = study_args("--report");
    CHECK(cmd_study(a.argc, a.argv) == 0, "study --report exits 0");
    json = runs_read(STUDY_DIR "/study.json");
    const char* e1 = json ? strstr(json, "\"key\": \"e4srec_1\"") : NULL;
    const char* infer = e1 ? strstr(e1, "\"infer_ms_per_1000_users\": ") : NULL;
    double infer_ms = infer ? atof(infer + 27) : -1.0;
    // (not held to the cell's own timing: the cell ran ./slmrec, this report runs in the test
    // runner, which under make test-asan is many times slower)
    CHECK(e1 && strstr(e1, "\"infer_s\": 86400.000") && infer_ms > 0.0 && infer_ms < 1e6,
          "study --report: E4SRec_1's inference re-timed (%.3f ms per 1,000 users), not the day its results say", infer_ms);
    const char* timed = e1 ? strstr(e1, "\"epoch_s_timed\": ") : NULL;
    const char* own = e1 ? strstr(e1, "\"epoch_s_mean\": ") : NULL;
    double epoch_timed = timed ? atof(timed + 17) : -1.0, epoch_own = own ? atof(own + 16) : -1.0;
    CHECK(epoch_own == 43200.0 && epoch_timed > 0.0 && epoch_timed < 1e3,
          "study --report: E4SRec_1's epoch re-timed by its command (%.3f s), its cell's own the day over 2 epochs (%.1f s)",
          epoch_timed, epoch_own);
    char* timing_e4srec = runs_read(STUDY_DIR "/timing/e4srec_1/command.txt");
    char* timing_sasrec = runs_read(STUDY_DIR "/timing/sasrec/command.txt");
    CHECK(timing_e4srec && strstr(timing_e4srec, "./slmrec train-teacher ") && strstr(timing_e4srec, " --time-steps 20 --device cpu\n") &&
          timing_sasrec && strstr(timing_sasrec, " --time-steps 20\n"), "the timings' commands: E4SRec's on the CPU "
          "(--device cpu), SASRec's (which takes no --device) as it is");
    free(timing_e4srec);
    free(timing_sasrec);
    CHECK(access(STUDY_DIR "/timing/e4srec_1/e4srec_1.step_time.json", R_OK) == 0 &&
          access(STUDY_DIR "/timing/e4srec_1/e4srec_1.bin", R_OK) != 0, "the timing ran in timing/e4srec_1 and saved no model");
    free(json);
    md = runs_read(STUDY_DIR "/study.md");
    const char* row = md ? strstr(md, "| E4SRec_1 | ") : NULL;  // the depth table's row comes before the comparison's
    CHECK(md && strstr(md, "**In progress: 2 of 3 models trained.**") && strstr(md, "| E4SRec_2 | - | - |") &&
          strstr(md, "| E4SRec_1 | E4SRec_2 | - | - | - | - | pending |") && row && strncmp(row, "| E4SRec_1 | -", 14) != 0,
          "study --report: the finished cells' rows, the cut-off cell not yet trained, its comparison pending");
    free(md);
    json = runs_read(STUDY_DIR "/study.json");
    CHECK(json && strstr(json, "\"key\": \"e4srec_2\"") && strstr(json, "\"done\": false}") &&
          strstr(json, "\"a\": \"e4srec_1\", \"b\": \"e4srec_2\", \"verdict\": \"pending\""),
          "study.json in progress: the cut-off cell not done, its comparison pending");
    free(json);
    CHECK(access(kept[0], R_OK) == 0 && access(STUDY_DIR "/seed_42/e4srec_2/e4srec_2.results.json", R_OK) != 0,
          "study --report trains nothing");
    // a timing that fails (its directory locked, as by another report) leaves that cell without a
    // training time (the report prints why), and the report is still written
    int held = outdir_lock(STUDY_DIR "/timing/e4srec_1");
    CHECK(cmd_study(a.argc, a.argv) == 0, "study --report exits 0 when a cell's timing fails");
    close(held);
    json = runs_read(STUDY_DIR "/study.json");
    e1 = json ? strstr(json, "\"key\": \"e4srec_1\"") : NULL;
    CHECK(e1 && strstr(e1, "\"epoch_s_timed\": null"), "a failed timing: E4SRec_1's epoch_s_timed is null");
    free(json);
    a = study_args("--resume");
    t0 = now_seconds();
    CHECK(cmd_study(a.argc, a.argv) == 0, "study --resume exits 0");
    elapsed = now_seconds() - t0;
    double added = study_wall_seconds() - wall;
    CHECK(added > 0.0 && added <= elapsed + 0.1, "study --resume adds its time training (%.1f s) to the wall time, "
          "within the command's %.1f s", added, elapsed);
    CHECK(before[0] > 0 && file_mtime_ns(kept[0]) == before[0] && file_mtime_ns(kept[1]) == before[1],
          "study --resume leaves the finished cells' checkpoints untouched");
    CHECK(access(STUDY_DIR "/seed_42/e4srec_2/e4srec_2.results.json", R_OK) == 0, "study --resume finished the cut-off cell");
    log = runs_read(STUDY_DIR "/log.txt");
    CHECK(log && strstr(log, "study: 3 cells (3 models x 1 seeds), 2 done, 1 to train"), "the resumed study trained one cell");
    free(log);
    // refusals
    a = study_args("");
    check_dies("study over a study without --resume", study_child, &a, "holds a study already: add --resume");
    a = study_args("--resume --preset demo");
    check_dies("study --resume with another preset", study_child, &a, "resume it with its own --preset and --data");
    a = study_args("--only depth,width");
    check_dies("study --only with an unknown experiment", study_child, &a, "--only names 'width', not an experiment");
    a = study_args("--jobs 0");
    check_dies("study --jobs 0", study_child, &a, "--jobs must be in 1..16, got 0");
    a = study_args("--only pretrained");
    check_dies("study --only pretrained without --init", study_child, &a, "needs --init BASE.bin");
    a = study_args("--report --out " RUNS_DIR "/no_study");
    check_dies("study --report where no study is", study_child, &a, "holds no study (no study.txt)");
    study_exe = "/proc/self/exe";
}

// --jobs 2: a cell that fails does not stop the one beside it; the study stops after it, with why
static void test_runs_study_failed_cell(void) {
    if (access("./slmrec", X_OK) != 0) {
        skip("study: a failed cell", "./slmrec is not built: make test builds it, and the study's cells run it");
        return;
    }
    study_exe = "./slmrec";
    const char* dir = RUNS_DIR "/study_failed";
    make_dir(dir);
    make_dir(RUNS_DIR "/study_failed/seed_42");
    make_dir(RUNS_DIR "/study_failed/seed_42/e4srec_1");
    FILE* f = fopenCheck(RUNS_DIR "/study_failed/seed_42/e4srec_1/e4srec_1.last.bin", "w");  // its resume: not a checkpoint
    fputs("not a checkpoint\n", f);
    fcloseCheck(f);
    static char line[256];
    snprintf(line, sizeof(line), "--preset smoke --only depth --jobs 2 --out %s", dir);
    PipeArgs a = {0, {0}};
    for (char* tok = strtok(line, " "); tok && a.argc < 24; tok = strtok(NULL, " ")) a.argv[a.argc++] = tok;
    check_dies("study --jobs 2 with a cell that fails", study_child, &a, "cell e4srec_1 of seed 42 failed (exit 1)");
    CHECK(access(RUNS_DIR "/study_failed/seed_42/e4srec_2/e4srec_2.results.json", R_OK) == 0,
          "study --jobs 2: the cell beside the failed one went on to its results");
    char* log = runs_read(RUNS_DIR "/study_failed/log.txt");
    CHECK(log && strstr(log, "cell e4srec_1 of seed 42 failed") && strstr(log, "] 2/3 seed 42 e4srec_2"),
          "study --jobs 2: the failure and the other cell's end in the study's log");
    free(log);
    study_exe = "/proc/self/exe";
}

// the study's comparison averages each user over the seeds before the bootstrap: users
// {1, 0} and {0, 0} in two seeds against zeros are the differences {0.5, 0}, whose
// resampled means are 0, 0.25 and 0.5: mean 0.25, interval [0, 0.5], a tie
static void test_runs_study_paired(void) {
    StudySummary a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    float a1[2] = {1.0f, 0.0f}, a2[2] = {0.0f, 0.0f}, zero[2] = {0.0f, 0.0f};
    a.runs[0] = (StudyRun){.users = 2, .per_user = a1};
    a.runs[1] = (StudyRun){.users = 2, .per_user = a2};
    b.runs[0] = b.runs[1] = (StudyRun){.users = 2, .per_user = zero};
    PairedDiff d = study_paired(&a, &b, 2);
    CHECK(fabs(d.diff - 0.25) < 1e-9 && d.lo == 0.0 && fabs(d.hi - 0.5) < 1e-9 && strcmp(paired_verdict(&d), "tie") == 0,
          "study: seeds averaged per user, then the bootstrap: 0.25 [0, 0.5] tie, got %g [%g, %g]", d.diff, d.lo, d.hi);
}

// the slmrec experiment asks first whether the teacher beats the SASRec it reads
static void test_runs_study_plan(void) {
    Study st;
    study_setup(&st, "smoke", NULL, RUNS_DIR "/plan", "slmrec", NULL, 0, 42, 1);
    study_plan(&st);
    int found = 0;
    for (int i = 0; i < st.n_cmp; i++) {
        const StudyComparison* c = &st.cmp[i];
        found |= c->experiment == EXP_SLMREC && strcmp(st.cells[c->a].key, "e4srec_2") == 0 && strcmp(st.cells[c->b].key, "sasrec") == 0;
    }
    CHECK(found, "study --only slmrec compares the teacher E4SRec_2 against SASRec (%d comparisons)", st.n_cmp);
    // each SLMRec cell names its block count once, the B ablations theirs (the paper preset's)
    study_setup(&st, "paper", NULL, RUNS_DIR "/plan", "slmrec", NULL, 0, 42, 1);
    study_plan(&st);
    int blocks_ok = 1, b_cells = 0;
    for (int i = 0; i < st.n_cells; i++) {
        const char* b = strstr(st.cells[i].args, "--blocks ");
        if (!b) continue;
        int want = st.preset.B;
        if (sscanf(st.cells[i].key, "slmrec_b%d", &want) == 1) b_cells++;
        blocks_ok &= atoi(b + 9) == want && !strstr(b + 1, "--blocks");
    }
    CHECK(blocks_ok && b_cells == 2, "study: every SLMRec cell gives --blocks once, its own (%d B cells)", b_cells);
    // the plain students read no teacher: they run before it, so a long study can train them while the teacher's recipe is settled
    study_setup(&st, "smoke", NULL, RUNS_DIR "/plan", "dllm2rec", NULL, 0, 42, 1);
    study_plan(&st);
    int plain_first = st.n_cells > STUDENT_KINDS + 1 && strcmp(st.cells[STUDENT_KINDS + 1].key, "e4srec_2") == 0;
    for (int k = 1; k <= STUDENT_KINDS && plain_first; k++) plain_first = strstr(st.cells[k].key, "_plain") && !strstr(st.cells[k].args, "--teacher");
    CHECK(plain_first, "study: SASRec and the %d plain students come before the teacher (%d cells)", STUDENT_KINDS, st.n_cells);
    // --jobs: what each cell waits for. The teacher reads SASRec's table; a distilled student
    // the teacher and, unless it writes them, the first distilled student's signals
    int signals_first = -1, needs_ok = 1, n_signals = 0;
    for (int i = 0; i < st.n_cells; i++) {
        int reads_signals = strstr(st.cells[i].args, "teacher_signals.bin") != NULL;
        if (reads_signals && signals_first < 0) signals_first = i;
        n_signals += reads_signals;
        for (int j = 0; j < st.n_cells; j++) {
            const char* kj = st.cells[j].key;
            int want = (strcmp(st.cells[i].key, "e4srec_2") == 0 && strcmp(kj, "sasrec") == 0) ||
                       (reads_signals && (strcmp(kj, "e4srec_2") == 0 || (j == signals_first && i != j)));
            needs_ok &= study_needs(&st, i, j) == want;
        }
    }
    CHECK(needs_ok && n_signals > 2, "study: each cell needs the cells whose files it reads, and no other (%d read signals)", n_signals);
}

static void run_runs_tests(void) {
    CHECK(system("rm -rf " RUNS_DIR) == 0, "clear " RUNS_DIR);
    make_dir(RUNS_DIR);
    SeqData d;
    test_pipe_data(&d);
    char data[] = RUNS_DIR "/data.txt";
    seqdata_write(&d, data);
    test_runs_online_cache(data);
    test_runs_time_steps(data);
    test_runs_resume_records(data);
    test_runs_online_state_without_teacher(data);
    test_runs_cache_refused(data);
    test_runs_one_per_out(data);
    test_runs_stale_tmp(data);
    test_runs_flag_limits();
    test_runs_recipe();
    test_runs_same_file(data);
    char lora_data[] = RUNS_DIR "/lora_data.txt";
    test_runs_lora(lora_data);
    test_runs_study();
    test_runs_study_failed_cell();
    test_runs_study_paired();
    test_runs_study_plan();
    seqdata_free(&d);
    CHECK(system("rm -rf " RUNS_DIR) == 0, "remove " RUNS_DIR);
}
