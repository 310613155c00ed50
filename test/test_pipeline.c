// test_pipeline.c: the training driver. A resumed run ends bit-identical to an
// uninterrupted one; online distillation trains the teacher, offline does not; checkpoints round-trip and bad ones are refused; the
// prompt and tokenizer travel inside checkpoints; top-k and history parsing;
// a tiny whole pipeline learns better than chance.

// a tiny configuration: 120 synthetic users, models of a few thousand parameters
static Config test_pipe_config(const char* out) {
    Config c = config_defaults();
    c.out = out;
    c.max_len = 8;
    c.eval_batch = 64;
    c.sas_dim = 16; c.sas_epochs = 3; c.sas_batch = 32; c.sas_dropout = 0.2f;
    c.hidden = 16; c.ffn = 24; c.heads = 2; c.kv_heads = 1; c.teacher_layers = 4; c.student_layers = 2;
    c.epochs = 3; c.batch = 32; c.warmup = 2; c.blocks = 2;
    c.st_dim = 12; c.st_epochs = 3; c.st_batch = 64; c.caser_filters = 4; c.topk = 5;
    c.instruction = "### Instruction:\nNext item?\n";
    c.response = "\n### Response:\n";
    return c;
}

// two checkpoints with a training state match in every byte but the training
// time: the state's last 8 bytes, and so the header's payload checksum (int 5)
static int states_equal(const char* a, const char* b) {
    size_t na = 0, nb = 0;
    char* x = read_file(a, &na);
    char* y = read_file(b, &nb);
    size_t checksum = 5 * sizeof(int32_t), after = checksum + sizeof(int32_t);
    int eq = na == nb && na > HEADER_INTS * sizeof(int32_t) + sizeof(double) && memcmp(x, y, checksum) == 0 &&
             memcmp(x + after, y + after, na - after - sizeof(double)) == 0;
    free(x); free(y);
    return eq;
}

// rewrites the training time recorded in a checkpoint's state (the payload's last 8 bytes)
static void set_state_seconds(const char* path, double seconds) {
    size_t len = 0;
    char* x = read_file(path, &len);
    const int32_t* header = (const int32_t*)x;
    size_t payload = len - HEADER_INTS * sizeof(int32_t);
    memcpy(x + len - sizeof(double), &seconds, sizeof(double));
    binfile_write(path, header[2], header + 6, HEADER_DIMS, x + HEADER_INTS * sizeof(int32_t), payload);
    free(x);
}

static void test_pipe_data(SeqData* d) { synth_generate(d, 120, 40, 8, 5); }

// header int i of a slmrec file
static int32_t test_header_int(const char* path, int i) {
    size_t len = 0;
    char* buf = read_file(path, &len);
    int32_t v = 0;
    if (len >= (size_t)(i + 1) * 4) memcpy(&v, buf + (size_t)i * 4, 4);
    free(buf);
    return v;
}

static int files_equal(const char* a, const char* b) {
    size_t na = 0, nb = 0;
    char* x = read_file(a, &na);
    char* y = read_file(b, &nb);
    int eq = na == nb && memcmp(x, y, na) == 0;
    free(x); free(y);
    return eq;
}

// trains an E4SRec (student of teacher when given) in c->out, the whole of c->epochs
static void test_pipe_train_e4srec(const Config* c, const SeqData* d, const Negatives* vn, const Negatives* tn,
                                   const float* table, const Prompt* p, E4SRec* teacher, int L) {
    E4SRecConfig ec = e4srec_config_for(config_widths(c), NULL, p, L, c->sas_dim, d->n_items + 1);
    E4SRec m;
    e4srec_build(&m, &ec, table, p->instr, p->resp);
    Rng rng;
    rng_seed(&rng, 3);
    e4srec_init_random(&m, &rng);
    ResultRow row;
    RunRecord record;
    record_e4srec(&record, c, d, &m, teacher);
    stage_e4srec(c, d, vn, tn, &m, &p->tok, teacher, &record, "tiny", "tiny", &row);
    results_free(&row, 1);
    e4srec_free(&m);
}

// tiny data, its negatives, a prompt, a random item table and a random 4-layer teacher
typedef struct {
    SeqData d;
    Negatives vn, tn;
    Config c;
    Prompt p;
    float* table;  // (I, sas_dim)
    E4SRec teacher;
} PipeFixture;

static void pipe_fixture_init(PipeFixture* f) {
    test_pipe_data(&f->d);
    negatives_build(&f->vn, &f->d, SPLIT_VALID);
    negatives_build(&f->tn, &f->d, SPLIT_TEST);
    f->c = test_pipe_config("/tmp/slmrec_test_resume_a");
    prompt_build(&f->p, f->c.instruction, f->c.response, f->c.vocab, NULL);
    Rng rng;
    rng_seed(&rng, 9);
    f->table = test_randn(&rng, (size_t)(f->d.n_items + 1) * f->c.sas_dim, 0.5f);
    E4SRecConfig tc = e4srec_config_for(config_widths(&f->c), NULL, &f->p, f->c.teacher_layers, f->c.sas_dim, f->d.n_items + 1);
    e4srec_build(&f->teacher, &tc, f->table, f->p.instr, f->p.resp);
    e4srec_init_random(&f->teacher, &rng);
}

static void pipe_fixture_free(PipeFixture* f) {
    e4srec_free(&f->teacher);
    free(f->table);
    prompt_free(&f->p);
    negatives_free(&f->vn);
    negatives_free(&f->tn);
    seqdata_free(&f->d);
}

// each of E4SRec, SLMRec offline and SLMRec online: a run stopped after 1 of 3 epochs and
// resumed in a new process ends as the uninterrupted one. Online, the teacher trains too: each
// process starts from the untrained teacher, so the resumed one must take it from the state
static void test_pipe_resume(void) {
    PipeFixture f;
    pipe_fixture_init(&f);
    size_t bytes = f.teacher.num_params * sizeof(float);
    float* initial = (float*)mallocCheck(bytes);
    memcpy(initial, f.teacher.params_memory, bytes);
    float* trained = (float*)mallocCheck(bytes);
    const char* names[3] = {"E4SRec", "SLMRec", "SLMRec online"};
    for (int kind = 0; kind < 3; kind++) {
        E4SRec* t = kind ? &f.teacher : NULL;
        int L = kind ? f.c.student_layers : f.c.teacher_layers;
        // a: 3 epochs at once; b: 1 epoch, then a resumed process for the rest
        Config a = f.c, b = f.c;
        a.out = "/tmp/slmrec_test_resume_a";
        b.out = "/tmp/slmrec_test_resume_b";
        a.online = b.online = kind == 2;
        make_dir(a.out);
        make_dir(b.out);
        unlink("/tmp/slmrec_test_resume_b/tiny.last.bin");
        test_pipe_train_e4srec(&a, &f.d, &f.vn, &f.tn, f.table, &f.p, t, L);
        memcpy(trained, f.teacher.params_memory, bytes);
        CHECK((kind == 2) == (memcmp(trained, initial, bytes) != 0), "%s: the teacher %s", names[kind],
              kind == 2 ? "trains with the student" : "stays as it was");
        memcpy(f.teacher.params_memory, initial, bytes);
        b.stop_after = 1;
        test_pipe_train_e4srec(&b, &f.d, &f.vn, &f.tn, f.table, &f.p, t, L);
        memcpy(f.teacher.params_memory, initial, bytes);
        b.stop_after = 0;
        b.resume = 1;
        test_pipe_train_e4srec(&b, &f.d, &f.vn, &f.tn, f.table, &f.p, t, L);
        CHECK(states_equal("/tmp/slmrec_test_resume_a/tiny.last.bin", "/tmp/slmrec_test_resume_b/tiny.last.bin"),
              "%s: a run resumed after 1 of 3 epochs ends with a different training state", names[kind]);
        CHECK(files_equal("/tmp/slmrec_test_resume_a/tiny.bin", "/tmp/slmrec_test_resume_b/tiny.bin"),
              "%s: a resumed run selects a different best model", names[kind]);
        CHECK(memcmp(f.teacher.params_memory, trained, bytes) == 0, "%s: the resumed run ends with the teacher of the "
              "uninterrupted one", names[kind]);
        memcpy(f.teacher.params_memory, initial, bytes);
    }
    free(initial);
    free(trained);
    // the checkpoint carries the prompt and its tokenizer
    E4SRecFile ck;
    e4srec_load(&ck, "/tmp/slmrec_test_resume_a/tiny.bin");
    int ids[64];
    int n = tokenizer_encode(&ck.tok, f.c.instruction, 1, 0, ids, 64);
    CHECK(n == f.p.P1 && memcmp(ids, f.p.instr, n * sizeof(int)) == 0 && memcmp(ck.model.instr, f.p.instr, n * sizeof(int)) == 0,
          "the checkpoint's tokenizer re-encodes the instruction to the stored prompt ids");
    CHECK(ck.n_adapters == f.c.blocks - 1 && !ck.has_state, "a best-model file holds the adapters and no training state");
    e4srec_file_free(&ck);
    pipe_fixture_free(&f);
}

// --time-budget is checked after every step: a budget shorter than one step stops the first epoch after its first step
static void test_pipe_time_budget(void) {
    PipeFixture f;
    pipe_fixture_init(&f);
    Config c = f.c;
    c.out = "/tmp/slmrec_test_budget";
    c.time_budget = 1e-6f;
    make_dir(c.out);
    unlink("/tmp/slmrec_test_budget/tiny.last.bin");
    test_pipe_train_e4srec(&c, &f.d, &f.vn, &f.tn, f.table, &f.p, NULL, 2);
    E4SRecFile ck;
    e4srec_load(&ck, "/tmp/slmrec_test_budget/tiny.last.bin");
    int32_t progress[2] = {0, 0};  // epoch, step: the training state's first ints
    cursor_take(&ck.state, progress, sizeof(progress), "the training progress");
    CHECK(progress[0] == 1 && progress[1] == 1, "a %g s budget should end training after epoch 1's first step, "
          "not at epoch %d step %d", c.time_budget, progress[0], progress[1]);
    e4srec_file_free(&ck);
    pipe_fixture_free(&f);
}

// offline distillation leaves the teacher as it was; online trains it with the student
static void test_pipe_online(void) {
    PipeFixture f;
    pipe_fixture_init(&f);
    size_t bytes = f.teacher.num_params * sizeof(float);
    float* initial = (float*)mallocCheck(bytes);
    memcpy(initial, f.teacher.params_memory, bytes);
    for (int online = 0; online <= 1; online++) {
        Config c = f.c;
        c.out = "/tmp/slmrec_test_online";
        c.online = online;
        c.epochs = 1;
        make_dir(c.out);
        memcpy(f.teacher.params_memory, initial, bytes);
        test_pipe_train_e4srec(&c, &f.d, &f.vn, &f.tn, f.table, &f.p, &f.teacher, c.student_layers);
        int unchanged = memcmp(f.teacher.params_memory, initial, bytes) == 0;
        CHECK(online ? !unchanged : unchanged, "%s distillation %s the teacher", online ? "online" : "offline",
              unchanged ? "left" : "changed");
        CHECK(access("/tmp/slmrec_test_online/tiny.bin", R_OK) == 0, "the student checkpoint is written");
    }
    free(initial);
    pipe_fixture_free(&f);
}

static void test_pipe_load_e4srec(void* path) { E4SRecFile f; e4srec_load(&f, (const char*)path); }
static void test_pipe_load_sasrec(void* path) { SASRecFile f; sasrec_load(&f, (const char*)path); }

static void test_pipe_bad_checkpoints(void) {
    const char* good = "/tmp/slmrec_test_resume_a/tiny.bin";
    size_t len = 0;
    char* bytes = read_file(good, &len);
    char path[] = "/tmp/slmrec_ckpt_XXXXXX";
    write_temp(path, bytes, len - 5);
    check_dies("a truncated checkpoint", test_pipe_load_e4srec, path, "truncated");
    unlink(path);
    bytes[len - 100] ^= 0x40;
    char flipped[] = "/tmp/slmrec_ckpt_XXXXXX";
    write_temp(flipped, bytes, len);
    check_dies("a corrupted checkpoint", test_pipe_load_e4srec, flipped, "checksum");
    unlink(flipped);
    char foreign[] = "/tmp/slmrec_ckpt_XXXXXX";
    write_temp(foreign, "GGUF this is some other format, long enough to hold a header......", 64);
    check_dies("a foreign file", test_pipe_load_e4srec, foreign, "not a slmrec");
    unlink(foreign);
    check_dies("an E4SRec file read as SASRec", test_pipe_load_sasrec, (void*)good, "expected a sasrec");
    bytes[len - 100] ^= 0x40;
    // the header is under the checksum: an edited dimension is refused as damage...
    char edited[] = "/tmp/slmrec_ckpt_XXXXXX";
    int32_t eps_bits = ((int32_t*)bytes)[6 + 12];
    ((int32_t*)bytes)[6 + 12] = eps_bits + 1;
    write_temp(edited, bytes, len);
    check_dies("a checkpoint with an edited rms_eps", test_pipe_load_e4srec, edited, "checksum");
    unlink(edited);
    ((int32_t*)bytes)[6 + 12] = eps_bits;
    // ...and a forged one (checksum recomputed) by its range check, before anything is sized by it
    struct { int dim; int32_t value; const char* expect; } forged[] = {
        {1, -1, "hidden size"}, {4, 1 << 30, "query heads"}, {5, 3, "key/value heads"}, {6, 7, "head size"},
        {8, 1 << 30, "item table rows"}, {8, 1 << 24, "bytes for the item table, the payload is"}, {9, -5, "instruction tokens"}, {11, 0, "history length"},
        {12, 0x7fc00000, "rms_norm_eps"}, {13, 0x3f000000, "rope_theta"}, {14, 99, "adapter count"},
        {15, 7, "training-state flag"}, {16, -1, "LoRA rank"},
    };
    for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
        char* copy = (char*)mallocCheck(len);
        memcpy(copy, bytes, len);
        ((int32_t*)copy)[6 + forged[i].dim] = forged[i].value;
        binfile_reseal(copy, len);
        char name[80], fpath[] = "/tmp/slmrec_ckpt_XXXXXX";
        snprintf(name, sizeof(name), "a forged checkpoint header (dimension %d = %d)", forged[i].dim, forged[i].value);
        write_temp(fpath, copy, len);
        check_dies(name, test_pipe_load_e4srec, fpath, forged[i].expect);
        unlink(fpath);
        free(copy);
    }
    // dimensions each in range whose parameters need 4 TiB: the failed allocation names the file
    int32_t* dims = (int32_t*)bytes + 6;
    dims[0] = 1 << 20;  // V
    dims[1] = 1 << 14;  // C
    dims[2] = 1 << 16;  // F
    dims[3] = 256;      // L
    binfile_reseal(bytes, len);
    char huge[] = "/tmp/slmrec_ckpt_XXXXXX";
    write_temp(huge, bytes, len);
    check_dies("a checkpoint whose model cannot be allocated", test_pipe_load_e4srec, huge, "failed (reading '/tmp/slmrec_ckpt_");
    unlink(huge);
    free(bytes);
}

// a crafted training state (checksum recomputed) is refused when a run resumes from it
typedef struct { PipeFixture* f; const char* out; } TestResume;

static void test_pipe_resume_child(void* arg) {
    TestResume* r = (TestResume*)arg;
    Config c = r->f->c;
    c.out = r->out;
    c.resume = 1;
    test_pipe_train_e4srec(&c, &r->f->d, &r->f->vn, &r->f->tn, r->f->table, &r->f->p, NULL, 2);
}

static void test_pipe_crafted_state(void) {
    PipeFixture f;
    pipe_fixture_init(&f);
    Config c = f.c;
    c.out = "/tmp/slmrec_test_crafted";
    c.stop_after = 1;
    make_dir(c.out);
    const char* last = "/tmp/slmrec_test_crafted/tiny.last.bin";
    unlink(last);
    test_pipe_train_e4srec(&c, &f.d, &f.vn, &f.tn, f.table, &f.p, NULL, 2);
    E4SRecFile ck;
    e4srec_load(&ck, last);
    size_t state_at = HEADER_INTS * sizeof(int32_t) + ck.state.pos;  // the state's first byte in the file
    e4srec_file_free(&ck);
    size_t len = 0;
    char* good = read_file(last, &len);
    // int fields: epoch, step, bad epochs, best epoch; then the best metric (f32)
    struct { size_t at; int32_t value; const char* expect; } crafted[] = {
        {0, -1, "epochs completed"}, {4, -7, "steps taken"}, {8, 5, "epochs without improvement"},
        {12, 9, "best epoch"}, {20, 0x7fc00000, "best valid NDCG@10"},
    };
    TestResume r = {&f, c.out};
    for (size_t i = 0; i < sizeof(crafted) / sizeof(crafted[0]); i++) {
        char* copy = (char*)mallocCheck(len);
        memcpy(copy, good, len);
        memcpy(copy + state_at + crafted[i].at, &crafted[i].value, sizeof(int32_t));
        binfile_reseal(copy, len);
        test_write(last, copy, len);
        check_dies(crafted[i].expect, test_pipe_resume_child, &r, crafted[i].expect);
        free(copy);
    }
    free(good);
    pipe_fixture_free(&f);
}

// format 3 (checksum over the payload only) is refused with the conversion command, which converts it
static void test_pipe_upgrade(void) {
    const char* good = "/tmp/slmrec_test_resume_a/tiny.bin";
    size_t len = 0;
    char* bytes = read_file(good, &len);
    int32_t* header = (int32_t*)bytes;
    const char* payload = bytes + HEADER_INTS * sizeof(int32_t);
    header[1] = 3;
    header[5] = (int32_t)fnv1a(FNV_START, payload, len - HEADER_INTS * sizeof(int32_t));
    const char* old = "/tmp/slmrec_test_v3.bin";
    const char* upgraded = "/tmp/slmrec_test_v4.bin";
    test_write(old, bytes, len);
    check_dies("a format-3 checkpoint", test_pipe_load_e4srec, (void*)old, "`./slmrec upgrade --in /tmp/slmrec_test_v3.bin --out NEW`");
    char in_flag[] = "--in", out_flag[] = "--out";
    char* argv[] = {in_flag, (char*)old, out_flag, (char*)upgraded};
    unlink(upgraded);
    cmd_upgrade(4, argv);
    CHECK(files_equal(good, upgraded), "upgrade turns a format-3 file into the format-4 file of the same contents");
    unlink(old);
    unlink(upgraded);
    free(bytes);
}

static void test_pipe_topk(void) {
    float scores[8] = {9.0f, 0.5f, 3.0f, 3.0f, -1.0f, 7.0f, 0.1f, 2.0f};  // column 0 is the pad: never recommended
    int best[3];
    float bs[3];
    top_k(scores, 7, 3, NULL, 0, best, bs);
    CHECK(best[0] == 5 && best[1] == 2 && best[2] == 3, "top-3 is 5, 2, 3 (ties keep id order): got %d %d %d", best[0], best[1], best[2]);
    int seen[1] = {5};
    top_k(scores, 7, 3, seen, 1, best, bs);
    CHECK(best[0] == 2 && best[1] == 3 && best[2] == 7, "top-3 without seen item 5: got %d %d %d", best[0], best[1], best[2]);
    int history[5] = {1, 2, 3, 5, 7};  // 2 of the 7 items left: the pad item 0 is never listed
    int found = top_k(scores, 7, 3, history, 5, best, bs);
    CHECK(found == 2 && best[0] == 6 && best[1] == 4 && best[2] == 0, "top-3 of the 2 unseen items: found %d, got %d %d",
          found, best[0], best[1]);
    float low[4] = {0.0f, -INFINITY, -INFINITY, 1.0f};  // a -inf score is still an item
    found = top_k(low, 3, 3, NULL, 0, best, bs);
    CHECK(found == 3 && best[0] == 3 && best[1] == 1 && best[2] == 2, "top-3 with -inf scores: found %d, got %d %d %d",
          found, best[0], best[1], best[2]);
    int ids[8];
    CHECK(parse_history("3, 17 42", ids, 8, 50) == 3 && ids[2] == 42, "history '3, 17 42' parses");
}

static void test_pipe_history_bad(void* text) { int ids[8]; parse_history((const char*)text, ids, 8, 50); }

static void test_pipe_bad_history(void) {
    check_dies("history with an id out of range", test_pipe_history_bad, "3 51", "not an item id");
    check_dies("history with a word", test_pipe_history_bad, "3 x", "not an item id");
    check_dies("empty history", test_pipe_history_bad, " ", "empty");
}

// the whole pipeline on tiny data: every model is trained, tested and reported;
// stopped with --stop-after and resumed, it ends bit-identical
// recommend --data against one-user scoring of every user through the same line writer
static void test_pipe_recommend_batched(const char* model, char* data_path, const SeqData* d) {
    const char* out = "/tmp/slmrec_test_recommend.txt";
    char* argv[] = {"--model", (char*)model, "--data", data_path, "--out", (char*)out, "--k", "5", "--exclude-seen"};
    CHECK(cmd_recommend(9, argv) == 0, "recommend --data exits 0 (%s)", model);
    LoadedModel lm;
    model_load(&lm, model, NULL, 1);
    int I = lm.t.I, hist[64], best[5];
    float* scores = test_zeros(I);
    float best_scores[5];
    char* want = NULL;
    size_t want_len = 0, got_len = 0;
    FILE* f = open_memstream(&want, &want_len);
    for (int u = 0; u < d->n_users; u++) {
        history_left_padded(hist, seq_items(d, u), seq_len(d, u), lm.t.max_len);
        lm.t.score(lm.t.model, hist, 1, scores);
        recommend_line(f, d, u, scores, I - 1, 5, 1, best, best_scores);
    }
    fclose(f);
    char* got = access(out, R_OK) == 0 ? read_file(out, &got_len) : NULL;
    CHECK(got && got_len == want_len && memcmp(got, want, want_len) == 0,
          "recommend --data in batches writes the one-user-at-a-time lines for all %d users (%s)", d->n_users, model);
    free(got); free(want); free(scores);
    unlink(out);
    model_free(&lm);
}

static void test_pipe_run(void* config) { pipeline((Config*)config, NULL); }

// the dllm2rec command: argv for it, to run in-process or in a refusal check
typedef struct { int argc; char* argv[24]; } PipeArgs;
static void test_pipe_dllm2rec_run(void* a) { PipeArgs* p = (PipeArgs*)a; cmd_dllm2rec(p->argc, p->argv); }
static PipeArgs pipe_dllm2rec_args(const char* data, const char* teacher, const char* student, const char* extra) {
    static char buf[4][512];
    static int slot = 0;
    char* line = buf[slot++ % 4];
    snprintf(line, 512, "--data %s --teacher %s --student %s --out /tmp/slmrec_test_dllm2rec --max-len 8 --dim 12 "
             "--student-epochs 2 --student-batch 64 --caser-filters 4 --topk 5 %s", data, teacher, student, extra);
    PipeArgs a = {0, {0}};
    for (char* tok = strtok(line, " "); tok && a.argc < 24; tok = strtok(NULL, " ")) a.argv[a.argc++] = tok;
    return a;
}

// the checksum of a teacher file's weights as DLLM2Rec runs them (frozen, LoRA merged)
static uint32_t test_teacher_checksum(const char* path) {
    E4SRecFile f;
    e4srec_load(&f, path);
    e4srec_freeze(&f.model);
    uint32_t h = e4srec_checksum(&f.model);
    e4srec_file_free(&f);
    return h;
}

// the teacher signals are cached, keyed by the teacher's weights: reused for the same
// teacher, recomputed for another, refused for other data; bad input is refused
static void test_pipe_dllm2rec(char* data_path, const SeqData* d) {
    const char* teacher = "/tmp/slmrec_test_pipeline/e4srec_4.bin";
    const char* other_teacher = "/tmp/slmrec_test_pipeline/e4srec_2.bin";
    const char* signals = "/tmp/slmrec_test_dllm2rec/teacher_signals.bin";
    CHECK(system("rm -rf /tmp/slmrec_test_dllm2rec") == 0, "clear /tmp/slmrec_test_dllm2rec");
    PipeArgs a = pipe_dllm2rec_args(data_path, teacher, "gru4rec", "");
    CHECK(cmd_dllm2rec(a.argc, a.argv) == 0, "dllm2rec --student gru4rec exits 0");
    CHECK(access("/tmp/slmrec_test_dllm2rec/gru4rec_dllm2rec.results.json", R_OK) == 0, "dllm2rec writes gru4rec_dllm2rec.results.json");
    CHECK(test_teacher_checksum(teacher) == (uint32_t)test_header_int(signals, 6 + 4), "the signals are keyed by the teacher's weights");
    // the same teacher reads the cache: the file is not rewritten
    CHECK(system("cp /tmp/slmrec_test_dllm2rec/teacher_signals.bin /tmp/slmrec_signals_before") == 0, "copy the cache");
    a = pipe_dllm2rec_args(data_path, teacher, "caser", "--lam 0.5");
    CHECK(cmd_dllm2rec(a.argc, a.argv) == 0, "dllm2rec --student caser exits 0 on the cached signals");
    CHECK(files_equal("/tmp/slmrec_signals_before", signals), "the same teacher reuses the cache unchanged");
    a = pipe_dllm2rec_args(data_path, other_teacher, "gru4rec", "--ed 0 --student-epochs 1");
    CHECK(cmd_dllm2rec(a.argc, a.argv) == 0, "dllm2rec with another teacher exits 0");
    CHECK(test_teacher_checksum(other_teacher) == (uint32_t)test_header_int(signals, 6 + 4), "another teacher's signals are recomputed");
    CHECK(access("/tmp/slmrec_test_dllm2rec/gru4rec_rd.bin", R_OK) == 0, "--ed 0 trains the ranking-only ablation gru4rec_rd");
    // the plain student needs no teacher; eval reads a student checkpoint
    a = pipe_dllm2rec_args(data_path, teacher, "sasrec", "--lam 0 --ed 0 --student-epochs 1");
    CHECK(cmd_dllm2rec(a.argc, a.argv) == 0, "the plain SASRec student exits 0");
    LoadedModel lm;
    model_load(&lm, "/tmp/slmrec_test_dllm2rec/sasrec_plain.bin", d, 64);
    Negatives tn;
    negatives_build(&tn, d, SPLIT_TEST);
    Metrics m = evaluate(&lm.t, d, SPLIT_TEST, &tn, 64, NULL);
    CHECK(m.mean[METRIC_SELECTION] > 0.0 && m.mean[METRIC_SELECTION] <= 1.0, "a student checkpoint evaluates: NDCG@10 %.3f", m.mean[METRIC_SELECTION]);
    negatives_free(&tn);
    model_free(&lm);
    // refusals
    PipeArgs bad = pipe_dllm2rec_args(data_path, teacher, "gru4rec", "--topk 41");
    check_dies("--topk above the item count", test_pipe_dllm2rec_run, &bad, "exceeds the 40 items");
    bad = pipe_dllm2rec_args(data_path, "/tmp/slmrec_test_dllm2rec/gru4rec_dllm2rec.bin", "gru4rec", "");
    check_dies("a student given as the teacher", test_pipe_dllm2rec_run, &bad, "holds a dllm2rec student, expected an e4srec");
    bad = pipe_dllm2rec_args(data_path, teacher, "bert4rec", "");
    check_dies("an unknown student", test_pipe_dllm2rec_run, &bad, "--student must be sasrec, gru4rec or caser");
    SeqData other;
    synth_generate(&other, 120, 50, 8, 9);
    char other_path[] = "/tmp/slmrec_pipe_other_XXXXXX";
    write_temp(other_path, "", 0);
    seqdata_write(&other, other_path);
    bad = pipe_dllm2rec_args(other_path, teacher, "gru4rec", "");
    check_dies("a teacher trained on other items", test_pipe_dllm2rec_run, &bad, "was trained on 40 items");
    // the cache now holds other_teacher's signals on d: the same teacher on other data of 40 items is refused
    SeqData shuffled;
    synth_generate(&shuffled, 120, 40, 8, 11);
    seqdata_write(&shuffled, other_path);
    bad = pipe_dllm2rec_args(other_path, other_teacher, "gru4rec", "");
    check_dies("signals cached for other data", test_pipe_dllm2rec_run, &bad, "holds this teacher's signals for another data file");
    // another --topk with the same teacher recomputes
    a = pipe_dllm2rec_args(data_path, other_teacher, "gru4rec", "--topk 3 --ed 0 --student-epochs 1");
    CHECK(cmd_dllm2rec(a.argc, a.argv) == 0, "dllm2rec with another --topk exits 0");
    CHECK(test_header_int(signals, 6 + 1) == 3, "another --topk recomputes the cache: it holds the top-%d", test_header_int(signals, 6 + 1));
    unlink(other_path);
    unlink("/tmp/slmrec_signals_before");
    seqdata_free(&other);
    seqdata_free(&shuffled);
    CHECK(system("rm -rf /tmp/slmrec_test_dllm2rec") == 0, "remove /tmp/slmrec_test_dllm2rec");
}

static void test_pipe_whole(void) {
    CHECK(system("rm -rf /tmp/slmrec_test_pipeline") == 0, "clear /tmp/slmrec_test_pipeline");
    Config c = test_pipe_config("/tmp/slmrec_test_pipeline");
    c.sas_epochs = 8;
    c.epochs = 4;
    SeqData d;
    test_pipe_data(&d);
    char path[] = "/tmp/slmrec_pipe_data_XXXXXX";
    write_temp(path, "", 0);
    seqdata_write(&d, path);
    c.data = path;
    int rc = pipeline(&c, NULL);
    CHECK(rc == 0 && access("/tmp/slmrec_test_pipeline/results.json", R_OK) == 0, "pipeline writes results.json");
    size_t len = 0;
    char* json = read_file("/tmp/slmrec_test_pipeline/results.json", &len);
    CHECK(strstr(json, "\"SASRec\"") && strstr(json, "\"E4SRec_4\"") && strstr(json, "\"E4SRec_2\"") &&
          strstr(json, "\"SLMRec_2<-4\"") && strstr(json, "full_NDCG@10"), "results.json names every model and metric");
    const char* student_rows[] = {"\"SASRec-plain\"", "\"SASRec+DLLM2Rec\"", "\"GRU4Rec-plain\"", "\"GRU4Rec+DLLM2Rec\"",
                                  "\"Caser-plain\"", "\"Caser+DLLM2Rec\""};
    for (int i = 0; i < 6; i++) CHECK(strstr(json, student_rows[i]) != NULL, "results.json has the row %s", student_rows[i]);
    // a trained teacher beats random ranking (NDCG@10 of a random ranking of 40 items is about 0.11)
    LoadedModel lm;
    model_load(&lm, "/tmp/slmrec_test_pipeline/e4srec_4.bin", &d, 64);
    Negatives tn;
    negatives_build(&tn, &d, SPLIT_TEST);
    Metrics m = evaluate(&lm.t, &d, SPLIT_TEST, &tn, 64, NULL);
    CHECK(m.mean[METRIC_SELECTION] > 0.15, "the tiny teacher's test NDCG@10 %.3f beats a random ranking", m.mean[METRIC_SELECTION]);
    negatives_free(&tn);
    model_free(&lm);
    free(json);
    // the same pipeline stopped every 3 epochs and resumed until done ends in the same states
    const char* resumed = "/tmp/slmrec_test_pipeline_resumed";
    CHECK(system("rm -rf /tmp/slmrec_test_pipeline_resumed") == 0, "clear %s", resumed);
    Config r = c;
    r.out = resumed;
    r.stop_after = 3;
    int runs = 0;
    char done[256];
    snprintf(done, sizeof(done), "%s/results.json", resumed);
    char sas_state[256];
    snprintf(sas_state, sizeof(sas_state), "%s/sasrec.last.bin", resumed);
    for (; runs < 20 && access(done, R_OK) != 0; runs++) {
        CHECK(pipeline(&r, NULL) == 0, "a stopped pipeline run exits 0");
        if (runs == 0) set_state_seconds(sas_state, 1000.0);  // as if the first 3 epochs had taken 1000 s
        r.resume = 1;
    }
    CHECK(runs > 4 && access(done, R_OK) == 0, "the pipeline finished after %d stop-and-resume runs", runs);
    CHECK(files_equal("/tmp/slmrec_test_pipeline/teacher_signals.bin", "/tmp/slmrec_test_pipeline_resumed/teacher_signals.bin"),
          "the resumed pipeline computed the same teacher signals");
    const char* stems[] = {"sasrec", "e4srec_4", "e4srec_2", "slmrec_2_from_4", "sasrec_plain", "sasrec_dllm2rec",
                           "gru4rec_plain", "gru4rec_dllm2rec", "caser_plain", "caser_dllm2rec"};
    for (int i = 0; i < 10; i++) {
        char a[256], b[256];
        snprintf(a, sizeof(a), "/tmp/slmrec_test_pipeline/%s.last.bin", stems[i]);
        snprintf(b, sizeof(b), "%s/%s.last.bin", resumed, stems[i]);
        CHECK(states_equal(a, b), "%s: the stopped-and-resumed pipeline ends in the uninterrupted run's state", stems[i]);
    }
    // the training time adds up over the processes: the 1000 s recorded after the first one stay counted
    size_t state_len = 0;
    char* state = read_file(sas_state, &state_len);
    double secs = 0.0;
    memcpy(&secs, state + state_len - sizeof(double), sizeof(double));
    CHECK(secs > 1000.0 && secs < 1100.0, "the resumed SASRec state counts the 1000 s before its resumes: %g s", secs);
    free(state);
    json = read_file(done, &len);
    const char* sas_row = strstr(json, "\"SASRec\"");
    const char* train_s = sas_row ? strstr(sas_row, "\"train_s\": ") : NULL;
    // train_s has 2 decimals: the resumed epochs of this tiny SASRec can take under 5 ms, so the
    // planted 1000 s may print as 1000.00; without it the time would be a fraction of a second
    CHECK(train_s && atof(train_s + 11) >= 1000.0, "results.json reports SASRec's training time over all processes");
    free(json);
    // resuming with other optimizer settings or batch size is refused
    Config other_lr = r, other_batch = r;
    other_lr.lr *= 2.0f;
    other_batch.batch += 1;
    check_dies("resume with another --lr", test_pipe_run, &other_lr, "was trained with lr");
    check_dies("resume with another --batch", test_pipe_run, &other_batch, "was trained with batches of");
    // recommend --data scores users in batches: the same lines as one user at a time
    // (300 users of the same 40 items: a full batch of 256 and a partial one)
    SeqData many;
    synth_generate(&many, 300, 40, 8, 6);
    char many_path[] = "/tmp/slmrec_pipe_many_XXXXXX";
    write_temp(many_path, "", 0);
    seqdata_write(&many, many_path);
    const char* models[] = {"/tmp/slmrec_test_pipeline/e4srec_4.bin", "/tmp/slmrec_test_pipeline/sasrec.bin",
                            "/tmp/slmrec_test_pipeline/caser_dllm2rec.bin"};
    for (int i = 0; i < 3; i++) test_pipe_recommend_batched(models[i], many_path, &many);
    unlink(many_path);
    seqdata_free(&many);
    // a one-stage command writes its row as <out>/<stem>.results.json
    CHECK(system("rm -rf /tmp/slmrec_test_stage") == 0, "clear /tmp/slmrec_test_stage");
    char* argv[] = {"--data", path, "--out", "/tmp/slmrec_test_stage", "--sasrec-epochs", "2", "--max-len", "10"};
    CHECK(cmd_train_sasrec(8, argv) == 0, "train-sasrec exits 0");
    const char* stage_json = "/tmp/slmrec_test_stage/sasrec.results.json";
    CHECK(access(stage_json, R_OK) == 0, "train-sasrec writes %s", stage_json);
    if (access(stage_json, R_OK) == 0) {
        json = read_file(stage_json, &len);
        CHECK(strstr(json, "\"SASRec\"") && strstr(json, "full_NDCG@10"), "sasrec.results.json names the model and its metrics");
        free(json);
    }
    // distill records the student's dimensions, which are the teacher's, not the flags' defaults
    char* dargv[] = {"--data", path, "--teacher", "/tmp/slmrec_test_pipeline/e4srec_4.bin", "--out", "/tmp/slmrec_test_stage",
                     "--layers", "2", "--epochs", "1", "--blocks", "2"};
    CHECK(cmd_distill(12, dargv) == 0, "distill exits 0");
    json = read_file("/tmp/slmrec_test_stage/slmrec_2_from_4.results.json", &len);
    CHECK(strstr(json, "\"max_len\": 8, \"hidden\": 16, \"ffn\": 24, \"heads\": 2, \"kv_heads\": 1") &&
          strstr(json, "\"sasrec_dim\": 16"), "distill's results JSON records the teacher's dimensions: %.300s", json);
    free(json);
    CHECK(system("rm -rf /tmp/slmrec_test_stage") == 0, "remove /tmp/slmrec_test_stage");
    test_pipe_dllm2rec(path, &d);
    unlink(path);
    seqdata_free(&d);
}

// ----------------------------------------------------------------------------
// a pretrained base and LoRA through the training driver: --init, resume, the
// adapter checkpoint (only what trained, refused against another base), merging

#define TEST_LORA_DIR "/tmp/slmrec_test_lora"

// a random base of the fixture's shape and vocabulary, written to path
static void test_pipe_write_base(const PipeFixture* f, const char* path, uint64_t seed) {
    LlamaConfig bc = {.V = f->p.tok.vocab_size, .C = f->c.hidden, .F = f->c.ffn, .L = f->c.teacher_layers, .NH = f->c.heads,
                      .KVH = f->c.kv_heads, .HS = f->c.hidden / f->c.heads, .max_seq = 64, .rms_eps = 1e-5f,
                      .rope_theta = 10000.0f, .tied = 1};
    Llama base;
    llama_build(&base, &bc, "test base");
    Rng rng;
    rng_seed(&rng, seed);
    rng_fill_normal(&rng, base.params_memory, base.num_params, 0.2f);
    tokenizer_copy(&base.tok, &f->p.tok);
    base.has_tok = 1;
    llama_save(path, &base);
    llama_free(&base);
}

// trains a LoRA E4SRec of L layers over the base (and the fixture's teacher when distilling) in c->out
static void test_pipe_train_lora(const Config* c, const PipeFixture* f, E4SRec* m, int L) {
    Llama base;
    llama_load(&base, c->init);
    E4SRecConfig ec = e4srec_config_for(config_widths(c), &base, &f->p, L, c->sas_dim, f->d.n_items + 1);
    e4srec_build(m, &ec, f->table, f->p.instr, f->p.resp);
    Rng rng;
    rng_seed(&rng, 3);
    LoraSpec lora = config_lora(c);
    e4srec_start(m, &base, c->init, &rng);
    e4srec_start_lora(m, &lora, c->init, &rng);
    ResultRow row;
    RunRecord record;
    record_e4srec(&record, c, &f->d, m, NULL);
    stage_e4srec(c, &f->d, &f->vn, &f->tn, m, &f->p.tok, NULL, &record, "tiny", "tiny", &row);
    results_free(&row, 1);
    llama_free(&base);
}

static void test_pipe_base_width(void* path) {
    Config c = config_defaults();
    c.init = (const char*)path;
    c.hidden = 32;
    char flag[] = "--hidden", value[] = "32";
    char* argv[] = {flag, value};
    Llama base;
    config_base(&c, &base, 2, argv);
}

static void test_pipe_base_depth(void* path) {
    Config c = config_defaults();
    c.init = (const char*)path;
    Llama base;
    config_check_depth(&c, config_base(&c, &base, 0, NULL), "--layers", 9);
}

static void test_pipe_lora(void) {
    PipeFixture f;
    pipe_fixture_init(&f);
    make_dir(TEST_LORA_DIR);
    test_pipe_write_base(&f, TEST_LORA_DIR "/base.bin", 1);
    check_dies("--hidden against --init", test_pipe_base_width, (void*)(TEST_LORA_DIR "/base.bin"), "--hidden 32 contradicts");
    check_dies("--layers beyond --init", test_pipe_base_depth, (void*)(TEST_LORA_DIR "/base.bin"), "exceeds the 4 layers");
    Config a = f.c, b = f.c;
    a.init = b.init = TEST_LORA_DIR "/base.bin";
    a.lora_rank = b.lora_rank = 2;
    a.lora_targets = b.lora_targets = "q,v,down";
    a.out = TEST_LORA_DIR "/a";
    b.out = TEST_LORA_DIR "/b";
    make_dir(a.out);
    make_dir(b.out);
    unlink(TEST_LORA_DIR "/b/tiny.last.bin");
    E4SRec ma, mb;
    test_pipe_train_lora(&a, &f, &ma, 3);
    b.stop_after = 1;
    test_pipe_train_lora(&b, &f, &mb, 3);
    e4srec_free(&mb);
    b.stop_after = 0;
    b.resume = 1;
    test_pipe_train_lora(&b, &f, &mb, 3);
    CHECK(states_equal(TEST_LORA_DIR "/a/tiny.last.bin", TEST_LORA_DIR "/b/tiny.last.bin"),
          "LoRA: a run resumed after 1 of 3 epochs ends with a different training state");
    // the adapter checkpoint: what trained, and the frozen rest read from the base
    const char* best = TEST_LORA_DIR "/a/tiny.bin";
    Buffer tok = {NULL, 0, 0};
    tokenizer_write_to(&tok, &f.p.tok);
    size_t trained = e4srec_trainable_params(&ma);
    size_t expect = 4 * ((size_t)f.p.P1 + f.p.P2 + (size_t)ma.cfg.I * ma.cfg.D + trained) + tok.size + 4 + strlen(a.init);
    size_t payload = (size_t)(uint32_t)test_header_int(best, 3);
    CHECK(payload == expect && test_header_int(best, 6 + 16) == 2, "LoRA: the checkpoint's payload is %zu bytes; prompt, "
          "tokenizer, item table, base path and the %zu trained parameters are %zu (the frozen %zu are not stored)",
          payload, trained, expect, ma.num_params);
    free(tok.data);
    E4SRecFile ck;
    e4srec_load(&ck, best);
    CHECK(ck.model.lora && ck.model.lora->rank == 2 && ck.model.lora->targets == ((1 << LORA_Q) | (1 << LORA_V) | (1 << LORA_DOWN)),
          "LoRA: the checkpoint reads back without its adapters' settings");
    int items[2 * 8] = {0, 0, 0, 3, 9, 4, 1, 2,   5, 6, 7, 8, 9, 10, 11, 12};
    size_t I = (size_t)ma.cfg.I;
    float* want = (float*)mallocCheck(2 * I * sizeof(float));
    e4srec_forward(&ma, items, NULL, 2);  // the trained model as it stands in memory (best weights)
    memcpy(want, ma.acts.logits, 2 * I * sizeof(float));
    e4srec_forward(&ck.model, items, NULL, 2);
    check_close("LoRA: the reloaded adapter checkpoint scores as the trained model", ck.model.acts.logits, want, 2 * I, 1e-6f, 1e-6f);
    e4srec_merge_lora(&ck.model);
    e4srec_forward(&ck.model, items, NULL, 2);
    check_close("LoRA: the merged checkpoint scores as the trained model", ck.model.acts.logits, want, 2 * I, 1e-5f, 1e-5f);
    e4srec_file_free(&ck);
    // the same path now holds another base: the adapters are refused
    test_pipe_write_base(&f, TEST_LORA_DIR "/base.bin", 2);
    check_dies("LoRA checkpoint over another base", test_pipe_load_e4srec, (void*)best, "another base");
    free(want);
    e4srec_free(&ma);
    e4srec_free(&mb);
    pipe_fixture_free(&f);
}

// every numeric flag is checked before any work: one bad value each
typedef struct { const char* flag; const char* value; } TestBadFlag;

static void test_pipe_bad_flag_run(void* arg) {
    const TestBadFlag* f = (const TestBadFlag*)arg;
    char data_flag[] = "--data", data[] = "/nonexistent/never-read.txt";
    char* argv[] = {(char*)f->flag, (char*)f->value, data_flag, data};
    cmd_run(4, argv);
}

static void test_pipe_main_child(void* arg) {
    char* argv[] = {(char*)"slmrec", (char*)arg};
    exit(slmrec_main(2, argv));
}

static void test_pipe_synth_child(void* arg) {
    char* argv[] = {(char*)"--out", (char*)"/tmp/slmrec_test_synth_never.txt", (char*)"--users", (char*)arg, (char*)"--mean-len", (char*)"4096"};
    cmd_synth(6, argv);
}

static void test_pipe_bad_flags(void) {
    TestBadFlag bad[] = {{"--time-budget", "-1"}, {"--clip", "-0.5"}, {"--weight-decay", "-1"}, {"--patience", "-2"},
                         {"--stop-after", "-1"}, {"--lambda-cos", "-1"}, {"--lambda-ms", "-0.1"}, {"--sasrec-patience", "-1"},
                         {"--epochs", "2147483647"}, {"--lora-rank", "-3"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char name[96];
        snprintf(name, sizeof(name), "run refuses %s %s before reading any data", bad[i].flag, bad[i].value);
        check_dies(name, test_pipe_bad_flag_run, &bad[i], bad[i].flag);
    }
    char long_out[1002];
    memset(long_out, 'a', 1001);
    long_out[1001] = 0;
    TestBadFlag too_long = {"--out", long_out};
    check_dies("run refuses an --out path too long to hold its files' names", test_pipe_bad_flag_run, &too_long,
               "--out is 1001 characters long");
    check_dies("an unknown command is named, cut to 32 bytes", test_pipe_main_child, "frobnicate-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
               "unknown command 'frobnicate-aaaaaaaaaaaaaaaaaaaaa...'");
    check_dies("synth refuses --users beyond its limit", test_pipe_synth_child, "100000000", "--users is 100000000");
    check_dies("synth refuses --users x --mean-len beyond 2^31 events", test_pipe_synth_child, "60000000", "more than the");
    CHECK(access("/tmp/slmrec_test_synth_never.txt", F_OK) != 0, "a refused synth leaves no file");
}

// a command refused for a bad input file leaves no output directory and no log.txt behind
typedef struct { int (*cmd)(int, char**); const char* flag; const char* file; } TestRefusedRun;

static void test_pipe_refused_run(void* arg) {
    const TestRefusedRun* r = (const TestRefusedRun*)arg;
    char out_flag[] = "--out", out[] = "/tmp/slmrec_test_left/out", student_flag[] = "--student", student[] = "gru4rec";
    char* argv[] = {(char*)r->flag, (char*)r->file, out_flag, out, student_flag, student};
    r->cmd(r->cmd == cmd_dllm2rec ? 6 : 4, argv);
}

static void test_pipe_nothing_left(void) {
    char garbage[] = "/tmp/slmrec_test_garbage_XXXXXX";
    write_temp(garbage, "not a checkpoint, not a sequence file\n\x01", 40);
    TestRefusedRun runs[] = {
        {cmd_train_teacher, "--sasrec", garbage}, {cmd_distill, "--teacher", garbage},
        {cmd_dllm2rec, "--teacher", garbage}, {cmd_train_sasrec, "--data", garbage},
        {cmd_train_teacher, "--sasrec", "/tmp/slmrec_test_no_such_file.bin"},
    };
    for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
        CHECK(system("rm -rf /tmp/slmrec_test_left") == 0, "clear /tmp/slmrec_test_left");
        char name[128];
        snprintf(name, sizeof(name), "a refused %s %s", runs[i].flag, runs[i].file);
        check_dies(name, test_pipe_refused_run, &runs[i], runs[i].file);
        CHECK(access("/tmp/slmrec_test_left", F_OK) != 0, "%s left /tmp/slmrec_test_left behind", name);
    }
    unlink(garbage);
}

// the CUDA path's memory plan (src/gpu_plan.h), which needs no GPU: a forward-only handle
// keeps one layer's buffers (depth adds only the last-token states), a training handle
// every layer's; bf16 halves the activations but the fp32 residual stream; the arenas add
// up to the total; `bench --plan` writes every config's plan
static void test_pipe_gpu_plan(void) {
    E4SRecConfig t8 = bench_config(&bench_shapes[2]), s4 = bench_config(&bench_shapes[3]);
    int B = 256;
    GpuPlan f8 = gpu_plan(&t8, 0, B, 1, 0, 0), f4 = gpu_plan(&s4, 0, B, 1, 0, 0);
    size_t last_grows = gpu_align((size_t)(t8.L + 1) * B * t8.C * 4) - gpu_align((size_t)(s4.L + 1) * B * s4.C * 4);
    CHECK(f8.bytes[GPU_ARENA_ACTS] - f4.bytes[GPU_ARENA_ACTS] == last_grows && f8.bytes[GPU_ARENA_DACTS] == 0 &&
          f8.bytes[GPU_ARENA_GRADS] == 0 && f8.bytes[GPU_ARENA_MOMENTS] == 0,
          "forward-only plan: 8 layers take %zu activation bytes more than 4 (the last-token states: %zu), no gradients",
          f8.bytes[GPU_ARENA_ACTS] - f4.bytes[GPU_ARENA_ACTS], last_grows);
    GpuPlan t8_32 = gpu_plan(&t8, 0, B, 0, 1, 0), t4_32 = gpu_plan(&s4, 0, B, 0, 1, 0), t8_16 = gpu_plan(&t8, 0, B, 1, 1, 0);
    double depth = (double)t8_32.bytes[GPU_ARENA_ACTS] / t4_32.bytes[GPU_ARENA_ACTS];
    double half = (double)t8_16.bytes[GPU_ARENA_ACTS] / t8_32.bytes[GPU_ARENA_ACTS];
    CHECK(depth > 1.9 && depth < 2.0, "training plan: 8 layers' activations are %.3fx 4 layers' (every layer kept)", depth);
    CHECK(half > 0.5 && half < 0.6, "training plan: bf16 activations are %.3f of fp32's (the residual stream stays fp32)", half);
    CHECK(t8_32.bytes[GPU_ARENA_MOMENTS] == 2 * t8_32.bytes[GPU_ARENA_WEIGHTS] && t8_32.bytes[GPU_ARENA_SHADOW] == 0 &&
          t8_16.bytes[GPU_ARENA_SHADOW] * 2 >= t8_16.bytes[GPU_ARENA_WEIGHTS] - 256,
          "training plan: AdamW holds two copies of the weights, the bf16 shadow half of one");
    size_t sum = 0;
    for (int a = 0; a < GPU_NUM_ARENAS; a++) sum += t8_16.bytes[a];
    CHECK(sum == t8_16.total, "the arenas add up to the plan's total (%zu of %zu)", sum, t8_16.total);
    // the every-position CE: a training handle adds its fp32 buffers of B S rows (h, user, CE stats and
    // losses; their gradients h and user; the items' rows and targets), a forward-only one nothing
    GpuPlan p8 = gpu_plan(&t8, 0, B, 1, 1, 1), pf8 = gpu_plan(&t8, 0, B, 1, 0, 1);
    size_t BS = (size_t)B * t8.S, C = t8.C, D = t8.D;
    size_t acts = gpu_align(BS * C * 4) + gpu_align(BS * D * 4) + gpu_align(BS * 3 * 4) + gpu_align(BS * 4);
    size_t dacts = gpu_align(BS * D * 4) + gpu_align(BS * C * 4), inputs = 2 * gpu_align(BS * 4);
    CHECK(p8.bytes[GPU_ARENA_ACTS] - t8_16.bytes[GPU_ARENA_ACTS] == acts && p8.bytes[GPU_ARENA_DACTS] - t8_16.bytes[GPU_ARENA_DACTS] == dacts &&
          p8.bytes[GPU_ARENA_INPUTS] - t8_16.bytes[GPU_ARENA_INPUTS] == inputs && p8.total - t8_16.total == acts + dacts + inputs &&
          memcmp(&pf8, &f8, sizeof(GpuPlan)) == 0,
          "training plan with the every-position CE: %zu bytes more (want %zu), forward-only plan unchanged",
          p8.total - t8_16.total, acts + dacts + inputs);
    char dir[] = "/tmp/slmrec_test_plan_XXXXXX", json_path[64];
    if (mkdtemp(dir) == NULL) die("mkdtemp: %s", strerror(errno));
    snprintf(json_path, sizeof(json_path), "%s/plan.json", dir);
    char* argv[] = {(char*)"--plan", (char*)"--out", dir};
    cmd_bench(3, argv);
    char* json = read_file(json_path, NULL);
    CHECK(strstr(json, "\"paper_S4\", \"precision\": \"bf16\", \"handle\": \"distill: student\"") != NULL,
          "bench --plan writes every config's plan to plan.json, the distillation pair included");
    free(json);
    unlink(json_path);
    rmdir(dir);
}

// the results table flags a model whose best epoch is its last (it may still improve), and the JSON says so
static void test_pipe_results_convergence(void) {
    ResultRow rows[2];
    memset(rows, 0, sizeof(rows));
    snprintf(rows[0].name, sizeof(rows[0].name), "StillRising");
    rows[0].epochs = 4; rows[0].best_epoch = 4;
    snprintf(rows[1].name, sizeof(rows[1].name), "Settled");
    rows[1].epochs = 9; rows[1].best_epoch = 4;
    for (int i = 0; i < 2; i++) rows[i].test.count = 1;  // metrics of 0, as if evaluated
    char path[] = "/tmp/slmrec_test_results_XXXXXX";
    write_temp(path, "", 0);
    log_file = fopenCheck(path, "w");
    results_print(rows, 2);
    fcloseCheck(log_file);
    log_file = NULL;
    char* table = read_file(path, NULL);
    CHECK(strstr(table, " 4/4* ") && strstr(table, " 4/9  ") && strstr(table, "* not converged: its best epoch is its last"),
          "the results table marks the row whose best epoch is its last, and only it: %s", table);
    free(table);
    Config c = config_defaults();
    SeqData d = {0};
    results_write_json(path, rows, 2, NULL, &c, &d);
    char* json = read_file(path, NULL);
    const char* rising = strstr(json, "\"StillRising\"");
    const char* settled = strstr(json, "\"Settled\"");
    CHECK(rising && settled && strstr(rising, "\"converged\": false") < settled && strstr(settled, "\"converged\": true"),
          "results.json says which model converged: %s", json);
    free(json);
    unlink(path);
}

// --samples every-cut: an E4SRec epoch is every (user, cut) sample once; a batch of sample
// ids trains on exactly those samples' histories and targets
static void test_pipe_every_cut(void) {
    PipeFixture f;
    pipe_fixture_init(&f);
    E4SRecJob job;
    e4srec_job_init(&job, &f.teacher, NULL, 0, &f.d, &f.p.tok, 8);
    e4srec_job_every_cut(&job);
    Recommender t = e4srec_recommender(&job, "every cut");
    int count = sample_count(&f.d);
    CHECK(t.n_samples == count && count > f.d.n_users, "an every-cut epoch has %d units, the data's %d samples", t.n_samples, count);
    Optimizer opt;
    AdamWConfig a = adamw_defaults();
    a.total_steps = 10;
    e4srec_job_optimizer(&opt, &job, a);
    int ids[3] = {count - 1, 0, count / 2};
    Rng rng;
    rng_seed(&rng, 1);
    t.train_batch(t.model, &opt, ids, 3, &rng, 1);
    int S = f.teacher.cfg.S, same = 1;
    int* hist = (int*)mallocCheck((size_t)S * sizeof(int));
    for (int i = 0; i < 3; i++) {
        int target = sample_history(hist, &job.samples, ids[i], S);
        same &= target == job.targets[i] && memcmp(hist, job.histories + (size_t)i * S, (size_t)S * sizeof(int)) == 0;
    }
    CHECK(same, "a batch of sample ids trains on those samples' histories and targets");
    optimizer_free(&opt);
    e4srec_job_free(&job);
    // --samples last-cut: a batch of user ids trains on each whole prefix before its last train item
    e4srec_job_init(&job, &f.teacher, NULL, 0, &f.d, &f.p.tok, 8);
    job.last_cut = 1;
    t = e4srec_recommender(&job, "last cut");
    CHECK(t.n_samples == 0, "a last-cut epoch goes over the users");
    e4srec_job_optimizer(&opt, &job, a);
    int users[2] = {1, 0};
    t.train_batch(t.model, &opt, users, 2, &rng, 1);
    same = 1;
    for (int i = 0; i < 2; i++) {
        const int* s = seq_items(&f.d, users[i]);
        int len = train_len(&f.d, users[i]);
        history_left_padded(hist, s, len - 1, S);
        same &= job.targets[i] == s[len - 1] && memcmp(hist, job.histories + (size_t)i * S, (size_t)S * sizeof(int)) == 0;
    }
    CHECK(same, "a last-cut batch trains on each user's prefix before its last train item");
    free(hist);
    optimizer_free(&opt);
    e4srec_job_free(&job);
    // a stage of 2 epochs takes 2 x ceil(samples / batch) steps (no patience: the schedule is the end)
    Config c = f.c;
    c.out = "/tmp/slmrec_test_every_cut";
    c.samples = "every-cut";
    c.epochs = 2;
    c.patience = 0;
    make_dir(c.out);
    unlink("/tmp/slmrec_test_every_cut/tiny.last.bin");
    test_pipe_train_e4srec(&c, &f.d, &f.vn, &f.tn, f.table, &f.p, NULL, 2);
    E4SRecFile ck;
    e4srec_load(&ck, "/tmp/slmrec_test_every_cut/tiny.last.bin");
    int32_t progress[2] = {0, 0};  // epoch, step
    cursor_take(&ck.state, progress, sizeof(progress), "the training progress");
    int steps = 2 * ((count + c.batch - 1) / c.batch);
    CHECK(progress[0] == 2 && progress[1] == steps, "2 every-cut epochs take %d steps, the state says epoch %d step %d",
          steps, progress[0], progress[1]);
    e4srec_file_free(&ck);
    // the history beside it: one line per epoch; read back up to a resumed run's epoch
    EpochLog h = {0};
    epoch_log_read(&h, "/tmp/slmrec_test_every_cut/tiny.epochs.tsv", 1000);
    CHECK(h.n == 2 && h.valid[0] >= 0.0f && h.valid[1] <= 1.0f && h.loss[0] > 0.0f, "tiny.epochs.tsv holds the 2 epochs (%d)", h.n);
    epoch_log_free(&h);
    memset(&h, 0, sizeof(h));
    epoch_log_read(&h, "/tmp/slmrec_test_every_cut/tiny.epochs.tsv", 1);
    CHECK(h.n == 1, "a run resumed at epoch 1 keeps the history's first epoch only (%d)", h.n);
    epoch_log_free(&h);
    // with a patience that never runs out, the model goes on past the schedule's 2 epochs, up to 2 more
    c.patience = 100;
    unlink("/tmp/slmrec_test_every_cut/tiny.last.bin");
    unlink("/tmp/slmrec_test_every_cut/tiny.epochs.tsv");
    test_pipe_train_e4srec(&c, &f.d, &f.vn, &f.tn, f.table, &f.p, NULL, 2);
    e4srec_load(&ck, "/tmp/slmrec_test_every_cut/tiny.last.bin");
    cursor_take(&ck.state, progress, sizeof(progress), "the training progress");
    CHECK(progress[0] == 4 && progress[1] == 2 * steps, "patience left at the schedule's end: 4 epochs of %d steps, the state says epoch %d step %d",
          steps / 2, progress[0], progress[1]);
    e4srec_file_free(&ck);
    pipe_fixture_free(&f);
}

static void run_pipeline_tests(void) {
    test_pipe_every_cut();
    test_pipe_results_convergence();
    test_pipe_resume();
    test_pipe_online();
    test_pipe_bad_checkpoints();
    test_pipe_upgrade();
    test_pipe_crafted_state();
    test_pipe_topk();
    test_pipe_bad_history();
    test_pipe_whole();
    test_pipe_lora();
    test_pipe_time_budget();
    test_pipe_bad_flags();
    test_pipe_nothing_left();
    test_pipe_gpu_plan();
}
