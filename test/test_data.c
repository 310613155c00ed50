// test_data.c: tests of data.h and eval.h (loading and its refusals, split,
// batches, synth, prep against a hand-worked file, both evaluation protocols).
// Included into the unity test runner after slmrec's headers and test.h;
// the entry point is run_data_tests().

// writes content to a fresh temp file; path gets its name
static void test_data_temp(char path[64], const char* content) {
    snprintf(path, 64, "/tmp/slmrec_data_XXXXXX");
    write_temp(path, content, strlen(content));
}

// ----------------------------------------------------------------------------
// loading

static void test_data_load_good(void) {
    char path[64];
    test_data_temp(path, "1 1 2 3\n\n7  4\t5 6 2 \r\n   \n3 3 1 2");  // blank lines, tabs, CRLF, no final newline
    SeqData d;
    seqdata_load(&d, path, 0);
    CHECK(d.n_users == 3 && d.n_items == 6 && d.n_events == 10, "load: %d users %d items %d events, want 3 6 10",
          d.n_users, d.n_items, d.n_events);
    const int want_offsets[] = {0, 3, 7, 10}, want_items[] = {1, 2, 3, 4, 5, 6, 2, 3, 1, 2}, want_users[] = {1, 7, 3};
    CHECK(memcmp(d.offsets, want_offsets, sizeof(want_offsets)) == 0, "load: offsets");
    CHECK(memcmp(d.items, want_items, sizeof(want_items)) == 0, "load: items");
    CHECK(memcmp(d.user_ids, want_users, sizeof(want_users)) == 0, "load: user ids");
    seqdata_free(&d);
    seqdata_load(&d, path, 9);
    CHECK(d.n_items == 9, "load: expect_n_items 9 gives n_items %d", d.n_items);
    seqdata_free(&d);
    unlink(path);
    // a lone \r ends a line too (old Mac files): three users, not one
    test_data_temp(path, "1 1 2 3\r2 4 5 6\r\n3 1 2 3\r");
    seqdata_load(&d, path, 0);
    CHECK(d.n_users == 3 && d.n_events == 9 && d.user_ids[1] == 2, "load: lone \\r line ends gave %d users, want 3", d.n_users);
    seqdata_free(&d);
    unlink(path);
}

typedef struct {
    const char* content;
    int expect_n_items;
    const char* message;  // a substring of the refusal
} TestDataBadFile;

static void test_data_load_child(void* arg) {
    const TestDataBadFile* bad = (const TestDataBadFile*)arg;
    char path[64];
    test_data_temp(path, bad->content);
    SeqData d;
    seqdata_load(&d, path, bad->expect_n_items);
}

static void test_data_load_missing(void* arg) {
    (void)arg;
    SeqData d;
    seqdata_load(&d, "/tmp/slmrec_no_such_dir/data.txt", 0);
}

static void test_data_load_dir(void* unused) {
    (void)unused;
    SeqData d;
    seqdata_load(&d, "/tmp", 0);
}

static void test_data_load_refusals(void) {
    TestDataBadFile bad[] = {
        {"1 1 2 3\n2 4 x 6\n", 0, ":2:5: expected an integer item id, got 'x'"},
        {"1 1 2.5 3\n", 0, ":1:5: expected an integer item id, got '2.5'"},
        {"u1 1 2 3\n", 0, ":1:1: expected an integer user id, got 'u1'"},
        {"1 1 0 3\n", 0, ":1:5: item id must be >= 1, got '0'"},
        {"1 1 -4 3\n", 0, "item id must be >= 1, got '-4'"},
        {"0 1 2 3\n", 0, "user id must be >= 1, got '0'"},
        {"1 1 2 99999999999\n", 0, ":1:7: id overflow: item id '99999999999'"},
        {"", 0, ":1:1: empty file"},
        {"\n  \n", 0, "empty file"},
        {"1 1 2 3\n5\n", 0, ":2:1: user 5 has no items"},
        {"1 1 2 3\n 6 1 2\n", 0, ":2:2: user 6 has 2 item(s); leave-one-out needs at least 3"},
        {"1 1 2 3\n2 4 6 5\n", 5, ":2:5: n_items mismatch: item 6 is above the expected n_items = 5"},
        {"1 1 2 2147483647\n", 0, ":1:7: item id 2147483647 is above the limit of 16777216"},
        {"1 1 2 3\x01\x7f\n", 0, ":1:7: expected an integer item id, got '3\\x01\\x7f'"},
        {"1 1 2 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n", 0,
         "got 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'"},
        {"1 1 2 1000000000\n", 0, ":1:7: item id 1000000000 is above the limit"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        check_dies("seqdata_load refuses a bad file", test_data_load_child, &bad[i], bad[i].message);
    }
    check_dies("seqdata_load refuses a missing file", test_data_load_missing, NULL, "cannot open");
    check_dies("seqdata_load names a directory given as a file", test_data_load_dir, NULL, "'/tmp' is a directory, expected a file");
}

// ----------------------------------------------------------------------------
// split, histories, batches

static void test_data_split_and_history(void) {
    char path[64];
    test_data_temp(path, "1 1 2 3 4 5\n2 6 7 8\n");
    SeqData d;
    seqdata_load(&d, path, 0);
    unlink(path);
    CHECK(history_len(&d, 0, SPLIT_VALID) == 3 && split_target(&d, 0, SPLIT_VALID) == 4, "valid split of 1..5");
    CHECK(history_len(&d, 0, SPLIT_TEST) == 4 && split_target(&d, 0, SPLIT_TEST) == 5, "test split of 1..5");
    CHECK(train_len(&d, 1) == 1, "train prefix of a 3-item user is 1 item");

    const int seq[] = {1, 2, 3, 4};
    int out[6];
    history_left_padded(out, seq, 4, 3);
    CHECK(out[0] == 2 && out[1] == 3 && out[2] == 4, "history keeps the last max_len items");
    history_left_padded(out, seq, 4, 6);
    CHECK(memcmp(out, (int[]){0, 0, 1, 2, 3, 4}, sizeof(out)) == 0, "history left-pads with 0");
    history_left_padded(out, seq, 0, 2);
    CHECK(out[0] == 0 && out[1] == 0, "empty history is all pad");

    int hist[2 * 4], targets[2];
    eval_batch(&d, SPLIT_VALID, 0, 2, 4, hist, targets);
    CHECK(memcmp(hist, (int[]){0, 1, 2, 3, 0, 0, 0, 6}, sizeof(hist)) == 0 && targets[0] == 4 && targets[1] == 7,
          "valid eval batch");
    eval_batch(&d, SPLIT_TEST, 1, 1, 4, hist, targets);
    CHECK(memcmp(hist, (int[]){0, 0, 6, 7}, 4 * sizeof(int)) == 0 && targets[0] == 8, "test eval batch of user 1");

    int users[2];
    CHECK(trainable_users(&d, users) == 1 && users[0] == 0, "a 1-item train prefix is not trainable");
    seqdata_free(&d);
}

static void test_data_training_batches(void) {
    char path[64];
    test_data_temp(path, "1 10 11 12 13 14 15\n2 20 21 22\n");  // train prefixes: 10 11 12 13 and 20
    SeqData d;
    seqdata_load(&d, path, 0);
    unlink(path);
    int users[2];
    int n = trainable_users(&d, users);
    CHECK(n == 1 && users[0] == 0, "trainable users");

    // E4SRec, L = 2: cut t in {1,2,3} gives ([0,10],11), ([10,11],12), ([11,12],13)
    Rng rng, again;
    rng_seed(&rng, 5);
    rng_seed(&again, 5);
    int seen[3] = {0, 0, 0}, all_valid = 1, reproducible = 1;
    for (int rep = 0; rep < 200; rep++) {
        int hist[2], target, hist2[2], target2;
        e4srec_sample(&d, users, 1, 2, 0, &rng, hist, &target);
        e4srec_sample(&d, users, 1, 2, 0, &again, hist2, &target2);
        reproducible &= target == target2 && hist[0] == hist2[0] && hist[1] == hist2[1];
        int t = target - 11;  // the cut
        int want0 = t == 0 ? 0 : 9 + t, want1 = 10 + t;
        if (t < 0 || t > 2 || hist[0] != want0 || hist[1] != want1) all_valid = 0;
        else seen[t]++;
    }
    CHECK(all_valid, "e4srec sample: history = the L items before the cut, target = the item at the cut");
    CHECK(seen[0] > 0 && seen[1] > 0 && seen[2] > 0, "e4srec sample: every cut occurs (%d %d %d)", seen[0], seen[1], seen[2]);
    CHECK(reproducible, "e4srec sample: same seed, same samples");
    // --samples last-cut: always the cut t = 3, the whole prefix before the last train item
    int hist[3], target;
    e4srec_sample(&d, users, 1, 3, 1, &rng, hist, &target);
    CHECK(target == 13 && memcmp(hist, (int[]){10, 11, 12}, 3 * sizeof(int)) == 0,
          "e4srec sample, last cut: history 10 11 12, target 13 (got %d %d %d, %d)", hist[0], hist[1], hist[2], target);

    // SASRec: x = s[:-1], y = s[1:] of the last L+1 train items, left-padded
    int x[5], y[5];
    sasrec_batch(&d, users, 1, 3, x, y);
    CHECK(memcmp(x, (int[]){10, 11, 12}, 3 * sizeof(int)) == 0 && memcmp(y, (int[]){11, 12, 13}, 3 * sizeof(int)) == 0,
          "sasrec batch, L = 3");
    sasrec_batch(&d, users, 1, 5, x, y);
    CHECK(memcmp(x, (int[]){0, 0, 10, 11, 12}, sizeof(x)) == 0 && memcmp(y, (int[]){0, 0, 11, 12, 13}, sizeof(y)) == 0,
          "sasrec batch, L = 5 (padded)");
    sasrec_batch(&d, users, 1, 2, x, y);
    CHECK(memcmp(x, (int[]){11, 12}, 2 * sizeof(int)) == 0 && memcmp(y, (int[]){12, 13}, 2 * sizeof(int)) == 0,
          "sasrec batch, L = 2 (truncated)");
    seqdata_free(&d);
}

// ----------------------------------------------------------------------------
// synth

static int test_data_same(const SeqData* a, const SeqData* b) {
    return a->n_users == b->n_users && a->n_items == b->n_items && a->n_events == b->n_events &&
           memcmp(a->offsets, b->offsets, (a->n_users + 1) * sizeof(int)) == 0 &&
           memcmp(a->items, b->items, a->n_events * sizeof(int)) == 0 &&
           memcmp(a->user_ids, b->user_ids, a->n_users * sizeof(int)) == 0;
}

// full NDCG@10 on the test split (through the batch path) of scores = count(prev -> item) * bigram_weight + popularity
// (counts from test histories): a sequence-aware scorer against pure popularity
static double test_data_ndcg(const SeqData* d, double bigram_weight) {
    int I = d->n_items + 1;
    int* pop = (int*)callocCheck(I, sizeof(int));                      // (I)
    int* bigram = (int*)callocCheck((size_t)I * I, sizeof(int));        // (I, I) previous item -> next item
    float* scores = (float*)mallocCheck(I * sizeof(float));            // (I)
    for (int u = 0; u < d->n_users; u++) {
        const int* s = seq_items(d, u);
        for (int t = 0; t < history_len(d, u, SPLIT_TEST); t++) {
            pop[s[t]]++;
            if (t > 0) bigram[(size_t)s[t - 1] * I + s[t]]++;
        }
    }
    Negatives neg;
    negatives_build(&neg, d, SPLIT_TEST);
    Metrics m;
    metrics_init(&m);
    for (int u = 0; u < d->n_users; u++) {
        int last = seq_items(d, u)[history_len(d, u, SPLIT_TEST) - 1];
        int target = split_target(d, u, SPLIT_TEST);
        for (int i = 0; i < I; i++) scores[i] = (float)(bigram_weight * bigram[(size_t)last * I + i] + pop[i]);
        metrics_add_batch(&m, scores, d->n_items, 1, &target, &neg, u);
    }
    metrics_finalize(&m);
    negatives_free(&neg);
    free(pop); free(bigram); free(scores);
    return metrics_selection(&m);
}

static void test_data_synth(void) {
    SeqData a, b, c, loaded;
    synth_generate(&a, SYNTH_USERS, SYNTH_ITEMS, SYNTH_MEAN_LEN, SYNTH_SEED);
    synth_generate(&b, SYNTH_USERS, SYNTH_ITEMS, SYNTH_MEAN_LEN, SYNTH_SEED);
    synth_generate(&c, SYNTH_USERS, SYNTH_ITEMS, SYNTH_MEAN_LEN, SYNTH_SEED + 1);
    CHECK(test_data_same(&a, &b), "synth: same seed, same data");
    CHECK(!test_data_same(&a, &c), "synth: another seed, other data");
    int min_len = INT_MAX, in_range = 1;
    for (int u = 0; u < a.n_users; u++) min_len = min_int(min_len, seq_len(&a, u));
    for (int i = 0; i < a.n_events; i++) in_range &= a.items[i] >= 1 && a.items[i] <= a.n_items;
    double mean_len = (double)a.n_events / a.n_users;
    CHECK(min_len >= SYNTH_MIN_LEN && in_range, "synth: lengths >= %d (min %d), items in 1..n_items", SYNTH_MIN_LEN, min_len);
    CHECK(fabs(mean_len - SYNTH_MEAN_LEN) < 1.0, "synth: mean length %.2f, asked %d", mean_len, SYNTH_MEAN_LEN);

    char path[64];
    test_data_temp(path, "");
    seqdata_write(&a, path);
    seqdata_load(&loaded, path, SYNTH_ITEMS);
    unlink(path);
    CHECK(test_data_same(&a, &loaded), "synth: written file loads back identically");

    double popularity = test_data_ndcg(&a, 0.0), sequential = test_data_ndcg(&a, 1000.0);
    CHECK(sequential > 2.0 * popularity, "synth: a bigram scorer (NDCG@10 %.4f) should clearly beat popularity (%.4f)",
          sequential, popularity);
    seqdata_free(&a); seqdata_free(&b); seqdata_free(&c); seqdata_free(&loaded);
}

// ----------------------------------------------------------------------------
// prep

static void test_data_prep_child(void* arg) {
    const char* content = (const char*)arg;
    char in[64], out[64];
    test_data_temp(in, content);
    test_data_temp(out, "");
    PrepOptions layout = prep_options(NULL, NULL, 0);
    prep_ratings(in, out, &layout);
}

static void test_data_prep_2014_as_2018(void* arg) {
    char in[64], out[64];
    test_data_temp(in, (const char*)arg);
    test_data_temp(out, "");
    PrepOptions layout = prep_options("amazon2018", NULL, 0);
    prep_ratings(in, out, &layout);
}

static void test_data_prep_layout_child(void* format) { prep_options((const char*)format, NULL, 0); }
static void test_data_prep_columns_child(void* columns) { prep_options(NULL, (const char*)columns, 0); }

static int test_data_prep_matches(const char* csv_path, const PrepOptions* layout, const char* expected_path) {
    char out[64];
    test_data_temp(out, "");
    prep_ratings(csv_path, out, layout);
    size_t n_got = 0, n_want = 0;
    char* got = read_file(out, &n_got);
    char* want = read_file(expected_path, &n_want);
    int same = n_got == n_want && memcmp(got, want, n_got) == 0;
    if (!same) printf("  prep of %s wrote:\n%s  expected:\n%s", csv_path, got, want);
    unlink(out);
    free(got);
    free(want);
    return same;
}

// prep of a file whose second line holds a NUL byte (test_data_temp writes C strings)
static void test_data_prep_nul(void* unused) {
    (void)unused;
    const char bytes[] = "u,i,5,1\nu,j\0,5,2\n";
    char in[] = "/tmp/slmrec_prep_nul_XXXXXX";
    write_temp(in, bytes, sizeof(bytes) - 1);
    PrepOptions layout = prep_options(NULL, NULL, 0);
    prep_ratings(in, "/tmp/slmrec_prep_nul_out.txt", &layout);
}

// prep of text with opt into a string (the caller frees it)
static char* test_data_prep_text(const char* text, const PrepOptions* opt) {
    char in[64], out[64];
    test_data_temp(in, text);
    test_data_temp(out, "");
    prep_ratings(in, out, opt);
    char* got = read_file(out, NULL);
    unlink(in);
    unlink(out);
    return got;
}

static void test_data_prep_recbole_child(void* text) {
    PrepOptions opt = prep_options("recbole", NULL, 0);
    test_data_prep_text((const char*)text, &opt);
}

static void test_data_prep_kcore3(void* text) {
    PrepOptions opt = prep_options(NULL, NULL, 0);
    opt.min_rating = -1.0;
    opt.dedupe = 1;
    opt.kcore = 3;
    test_data_prep_text((const char*)text, &opt);
}

// the filters by hand: the rating threshold, repeated (user, item) ratings, the k of k-core
static void test_data_prep_filters(void) {
    // u1 rates i1 twice (at 10 and 30) and i3 with 2 stars; items are numbered as the output meets them
    const char* text = "u1,i1,5,10\nu1,i2,4,20\nu1,i1,5,30\nu1,i3,2,40\nu2,i2,5,15\nu2,i1,4,25\nu2,i3,5,35\n";
    PrepOptions opt = prep_options(NULL, NULL, 0);
    opt.kcore = 1;
    char* got = test_data_prep_text(text, &opt);
    CHECK(strcmp(got, "1 1 2 1\n2 2 1 3\n") == 0, "prep > 3, no dedupe, 1-core: got '%s'", got);
    free(got);
    opt.dedupe = 1;
    got = test_data_prep_text(text, &opt);
    CHECK(strcmp(got, "1 1 2\n2 2 1 3\n") == 0, "prep --dedupe first keeps u1's earliest i1: got '%s'", got);
    free(got);
    opt.min_rating = -1.0;
    opt.kcore = 2;
    got = test_data_prep_text(text, &opt);
    CHECK(strcmp(got, "1 1 2 3\n2 2 1 3\n") == 0, "prep --min-rating -1 keeps the 2-star rating, 2-core keeps all: got '%s'", got);
    free(got);
    check_dies("prep --kcore 3 leaves nothing here (each item has 2 events)", test_data_prep_kcore3, (void*)text,
               "none survive the 3-core filter");
}

static void test_data_prep_default(void* path) {
    PrepOptions opt = prep_options(NULL, NULL, 0);
    prep_ratings((const char*)path, "/tmp/slmrec_prep_default_out.txt", &opt);
}

// data/excerpts/: the tiny set's 45 ratings in each release's layout, with Amazon-like ids: each
// read with its --format gives the tiny set's worked output; the 2018 file without one is refused
static void test_data_prep_excerpts(void) {
    const char* formats[][2] = {{"amazon2014", "data/excerpts/amazon2014.csv"}, {"amazon2018", "data/excerpts/amazon2018.csv"},
                                {"amazon2023", "data/excerpts/amazon2023.csv"}, {"movielens", "data/excerpts/movielens.dat"},
                                {"recbole", "data/excerpts/recbole.inter"}};
    for (int i = 0; i < 5; i++) {
        if (access(formats[i][1], R_OK) != 0) { skip(formats[i][1], "file missing: run the tests from the repo root"); continue; }
        PrepOptions opt = prep_options(formats[i][0], NULL, 0);
        CHECK(test_data_prep_matches(formats[i][1], &opt, "data/tiny_ratings.expected.txt"),
              "prep --format %s on %s: data/tiny_ratings.expected.txt byte for byte", formats[i][0], formats[i][1]);
    }
    check_dies("prep refuses data/excerpts/amazon2018.csv without --format", test_data_prep_default,
               (void*)"data/excerpts/amazon2018.csv", "Amazon 2018 files item,user,rating,timestamp\n  (--format amazon2018)");
}

static void test_data_prep(void) {
    test_data_prep_filters();
    test_data_prep_excerpts();
    check_dies("prep refuses a NUL byte", test_data_prep_nul, NULL, "byte 11 is NUL");
    const char* csv = "data/tiny_ratings.csv";
    const char* expected = "data/tiny_ratings.expected.txt";
    if (access(csv, R_OK) != 0) { skip("prep on data/tiny_ratings.csv", "file missing: run the tests from the repo root"); return; }
    PrepOptions with_header = prep_options(NULL, NULL, 1), no_header = prep_options(NULL, NULL, 0);
    CHECK(test_data_prep_matches(csv, &with_header, expected), "prep --header: %s matches %s byte for byte", csv, expected);
    check_dies("prep without --header refuses a first line of column names", test_data_prep_child,
               "user,item,rating,timestamp\nu,i,5,1\n", ":1: rating 'rating' is not a number (if this line names the columns, add --header)");

    // the same ratings MovieLens-style: "::" separated, no header
    size_t len = 0;
    char* text = read_file(csv, &len);
    char* body = strchr(text, '\n') + 1;
    char* ml = (char*)mallocCheck(2 * len + 1);  // every ',' becomes "::"
    char* w = ml;
    for (const char* r = body; *r; r++) {
        if (*r == ',') { *w++ = ':'; *w++ = ':'; }
        else *w++ = *r;
    }
    *w = 0;
    char ml_path[64];
    test_data_temp(ml_path, ml);
    CHECK(test_data_prep_matches(ml_path, &no_header, expected), "prep: the '::' version gives the same output");
    PrepOptions movielens = prep_options("movielens", NULL, 0);
    CHECK(test_data_prep_matches(ml_path, &movielens, expected), "prep --format movielens: the same output");
    unlink(ml_path);
    // the same with every line ending in a lone \r
    for (char* c = text; *c; c++) if (*c == '\n') *c = '\r';
    char cr_path[64];
    test_data_temp(cr_path, text);
    CHECK(test_data_prep_matches(cr_path, &with_header, expected), "prep: lone \\r line ends give the same output");
    unlink(cr_path);
    // the same ratings in the Amazon 2018 order (item,user,...), and with a column to skip:
    // named by --format or --columns, the same output byte for byte
    // Amazon 2023 (a header of its names, milliseconds) and RecBole (tabs, typed names in another
    // order, an extra field, float seconds) are read by their headers' names; so is a plain --header
    char* swapped = (char*)mallocCheck(2 * len + 64);
    char* skipped = (char*)mallocCheck(2 * len + 64);
    char* a2023 = (char*)mallocCheck(3 * len + 64);
    char* recbole = (char*)mallocCheck(4 * len + 128);
    char* named = (char*)mallocCheck(2 * len + 64);
    char *ws = swapped, *wk = skipped, *w23 = a2023, *wr = recbole, *wn = named;
    w23 += sprintf(w23, "user_id,parent_asin,rating,timestamp\n");
    wr += sprintf(wr, "item_id:token\tuser_id:token\tlabel:float\trating:float\ttimestamp:float\n");
    wn += sprintf(wn, "item,user,rating,timestamp\n");
    char* copy = read_file(csv, NULL);
    for (char* row = strtok(strchr(copy, '\n') + 1, "\n"); row; row = strtok(NULL, "\n")) {
        char* f[4];
        if (prep_split(row, ",", f, 4) != 4) continue;
        ws += sprintf(ws, "%s,%s,%s,%s\n", f[1], f[0], f[2], f[3]);
        wk += sprintf(wk, "%s,x%s,%s,%s,%s\n", f[0], f[3], f[1], f[2], f[3]);
        w23 += sprintf(w23, "%s,%s,%s,%s000\n", f[0], f[1], f[2], f[3]);
        wr += sprintf(wr, "%s\t%s\t1\t%s\t%s.25\n", f[1], f[0], f[2], f[3]);
        wn += sprintf(wn, "%s,%s,%s,%s\n", f[1], f[0], f[2], f[3]);
    }
    char a2023_path[64], recbole_path[64], named_path[64];
    test_data_temp(a2023_path, a2023);
    test_data_temp(recbole_path, recbole);
    test_data_temp(named_path, named);
    PrepOptions o2023 = prep_options("amazon2023", NULL, 0), orecbole = prep_options("recbole", NULL, 0);
    CHECK(test_data_prep_matches(a2023_path, &o2023, expected), "prep --format amazon2023 (header, ms): the same output");
    CHECK(test_data_prep_matches(recbole_path, &orecbole, expected), "prep --format recbole (.inter by its names): the same output");
    CHECK(test_data_prep_matches(named_path, &with_header, expected), "prep --header reads a header of known names: the same output");
    unlink(a2023_path); unlink(recbole_path); unlink(named_path);
    free(a2023); free(recbole); free(named);
    check_dies("prep --format recbole refuses a header without the four names", test_data_prep_recbole_child,
               "user_id:token\titem_id:token\ttimestamp:float\nu\ti\t1\n", ":1: the header should name the user, item, rating and timestamp");
    char swapped_path[64], skipped_path[64];
    test_data_temp(swapped_path, swapped);
    test_data_temp(skipped_path, skipped);
    PrepOptions a2018 = prep_options("amazon2018", NULL, 0), by_name = prep_options(NULL, "item,user,rating,timestamp", 0);
    PrepOptions skip_one = prep_options(NULL, "user,-,item,rating,timestamp", 0);
    CHECK(test_data_prep_matches(swapped_path, &a2018, expected), "prep --format amazon2018 on the 2018 order: the same output");
    CHECK(test_data_prep_matches(swapped_path, &by_name, expected), "prep --columns item,user,rating,timestamp: the same output");
    CHECK(test_data_prep_matches(skipped_path, &skip_one, expected), "prep --columns user,-,item,rating,timestamp: the same output");
    // --in -: the 2018-order text on standard input (a child process, whose stdin is that file)
    char stdin_out[64];
    test_data_temp(stdin_out, "");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(swapped_path, "rb", stdin)) _exit(2);
        prep_ratings("-", stdin_out, &a2018);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    char* from_stdin = read_file(stdin_out, NULL);
    char* want = read_file(expected, NULL);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0 && strcmp(from_stdin, want) == 0,
          "prep --in - reads standard input: the same output (exit %d)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    free(from_stdin);
    free(want);
    unlink(stdin_out);
    unlink(swapped_path);
    unlink(skipped_path);
    free(copy); free(swapped); free(skipped);
    free(ml);
    free(text);
    // Amazon ids in the 2018 order (product, reviewer) read as the default user,item order: refused with
    // the hint; and the other way round, a 2014 file (reviewer, product) read as --format amazon2018
    check_dies("prep refuses Amazon 2018 columns read in the 2014 order", test_data_prep_child,
               "B00004U9V2,A1Z54EM24Y40LL,5.0,1393545600\n", "looks like an Amazon product id (ASIN)");
    check_dies("prep's refusal names the 2018 preset", test_data_prep_child,
               "0205616461,A2V5R832QCSOMX,4.0,1393545600\n", "(--format amazon2018)");
    check_dies("prep --format amazon2018 refuses a file in the 2014 order", test_data_prep_2014_as_2018,
               "A1Z54EM24Y40LL,B00004U9V2,5.0,1393545600\n", "the columns look swapped");
    check_dies("prep refuses an unknown --format", test_data_prep_layout_child, "amazon2099",
               "--format must be amazon2014, amazon2018, amazon2023, movielens or recbole, got 'amazon2099'");
    check_dies("prep refuses --columns naming a column twice", test_data_prep_columns_child, "user,item,user,timestamp",
               "field 3 is 'user'; each of user, item, rating, timestamp must be named once");
    check_dies("prep refuses --columns missing one", test_data_prep_columns_child, "user,item,-,timestamp",
               "does not name the rating column");

    check_dies("prep refuses a bad rating", test_data_prep_child, "a,b,5,1\nu,i,five,2\n", ":2: rating 'five' is not a number");
    check_dies("prep refuses a bad timestamp", test_data_prep_child, "u,i,5,1.5\n", ":1: timestamp '1.5' is not an integer");
    check_dies("prep refuses a short line", test_data_prep_child, "u,i,5,1\nu,i,5\n", ":2: expected 4 fields");
    check_dies("prep refuses an empty id", test_data_prep_child, "u,,5,1\n", ":1: empty item id");
    check_dies("prep refuses when nothing survives", test_data_prep_child, "u,i,5,1\nu,j,5,2\n", "no events left");
    check_dies("prep refuses a hex rating", test_data_prep_child, "u,i,5,1\nu,j,0x5,2\n", ":2: rating '0x5' is not a number");
    check_dies("prep echoes a bad field cut, invisible bytes escaped", test_data_prep_child,
               "u,i,5,1\nu,j,\x01" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,2\n", ":2: rating '\\x01" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' is not");
    check_dies("prep refuses an inf rating", test_data_prep_child, "u,i,5,1\nu,j,inf,2\n", ":2: rating 'inf' is not a number");
}

// ----------------------------------------------------------------------------
// evaluation

static int test_data_near(double a, double b) { return fabs(a - b) < 1e-9; }

static void test_data_metrics_hand(void) {
    // items 1..5; the pad column scores highest and must not count
    const float scores[] = {100.0f, 0.5f, 0.9f, 0.5f, 0.1f, 0.7f};
    Metrics m;
    metrics_init(&m);
    // target 1: items 2 (0.9) and 5 (0.7) are higher, item 3 ties (not higher) -> full rank 2;
    // sampled against {3, 4}: tie and lower -> rank 0
    metrics_add_row(&m, scores, 5, 1, (int[]){3, 4}, 2);
    metrics_finalize(&m);
    const double want_one[N_METRICS] = {0, 1, 1, 1, 0.5, 0.5, 0.5, 1.0 / 3, 1, 1, 1, 1, 1, 1};
    int ok = 1;
    for (int i = 0; i < N_METRICS; i++) ok &= test_data_near(m.mean[i], want_one[i]);
    CHECK(ok, "metrics: rank 2 with a tie (full HR@1 %g HR@5 %g NDCG@5 %g MRR %g)", m.mean[0], m.mean[1], m.mean[4], m.mean[7]);
    // target 2 is the top item: rank 0 in both protocols; means average the two rows
    metrics_add_row(&m, scores, 5, 2, (int[]){1, 5}, 2);
    metrics_finalize(&m);
    CHECK(m.count == 2 && test_data_near(m.mean[0], 0.5) && test_data_near(m.mean[5], 0.75) &&
          test_data_near(m.mean[7], 2.0 / 3) && test_data_near(m.mean[13], 1.0),
          "metrics: means over two rows (HR@1 %g NDCG@10 %g MRR %g)", m.mean[0], m.mean[5], m.mean[7]);

    // the HR@10 boundary: item i scores 100 - i, so target 10 has rank 9 and target 11 rank 10
    float line[31];
    for (int i = 0; i <= 30; i++) line[i] = 100.0f - i;
    Metrics r9, r10;
    metrics_init(&r9);
    metrics_init(&r10);
    metrics_add_row(&r9, line, 30, 10, NULL, 0);
    metrics_add_row(&r10, line, 30, 11, NULL, 0);
    metrics_finalize(&r9);
    metrics_finalize(&r10);
    CHECK(r9.mean[2] == 1.0 && test_data_near(r9.mean[5], 1.0 / log2(11.0)) && r9.mean[4] == 0.0,
          "metrics: rank 9 is a hit at 10 (NDCG@10 %g), a miss at 5", r9.mean[5]);
    CHECK(r10.mean[2] == 0.0 && r10.mean[5] == 0.0 && r10.mean[3] == 1.0 && test_data_near(r10.mean[6], 1.0 / log2(12.0)) &&
          test_data_near(r10.mean[7], 1.0 / 11),
          "metrics: rank 10 misses at 10, hits at 20 (NDCG@20 %g)", r10.mean[6]);
    CHECK(METRIC_SPECS[METRIC_SELECTION].protocol == PROTOCOL_FULL && METRIC_SPECS[METRIC_SELECTION].kind == METRIC_NDCG &&
          METRIC_SPECS[METRIC_SELECTION].k == 10 && metrics_selection(&r9) == r9.mean[5],
          "metrics: model selection is full NDCG@10");

    // a NaN target ranks last, never first
    float nan_scores[] = {0.0f, NAN, 0.2f, 0.1f};
    Metrics bad;
    metrics_init(&bad);
    metrics_add_row(&bad, nan_scores, 3, 1, (int[]){2, 3}, 2);
    metrics_finalize(&bad);
    CHECK(bad.mean[2] == 1.0 && test_data_near(bad.mean[7], 1.0 / 3) && test_data_near(bad.mean[13], 1.0 / 3),
          "metrics: NaN target gets the last rank (full MRR %g, sampled MRR %g)", bad.mean[7], bad.mean[13]);
}

static void test_data_metrics_output(void) {
    float scores[] = {0.0f, 1.0f, 0.0f};
    Metrics m;
    metrics_init(&m);
    int negs[EVAL_N_NEG] = {0};
    for (int j = 0; j < EVAL_N_NEG; j++) negs[j] = 2;
    metrics_add_row(&m, scores, 2, 1, negs, EVAL_N_NEG);
    metrics_finalize(&m);
    FILE* f = tmpfile();
    if (f == NULL) die("tmpfile failed: %s", strerror(errno));
    metrics_write_json(f, &m);
    metrics_print_header(f, m.n_neg);
    metrics_print_row(f, "model", &m);
    long n = ftell(f);
    rewind(f);
    char text[4096] = {0};
    freadCheck(text, 1, (size_t)min_int((int)n, (int)sizeof(text) - 1), f, "metrics output");
    fclose(f);
    const char* keys[] = {"\"full_HR@1\": 1.000000", "\"full_HR@20\"", "\"full_NDCG@10\": 1.000000", "\"full_MRR\"",
                          "\"s1000_HR@1\": 1.000000", "\"s1000_NDCG@5\"", "\"s1000_MRR\": 1.000000", "NDCG@20     MRR |   HR@1",
                          "model               1.0000"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        CHECK(strstr(text, keys[i]) != NULL, "metrics output contains %s:\n%s", keys[i], text);
    }
}

static void test_data_negatives_none_left(void* unused) {
    (void)unused;
    char path[64];
    test_data_temp(path, "1 1 2 3\n2 3 2 1\n4 2 1 2\n");  // users 1 and 2 have seen all 3 items
    SeqData d;
    seqdata_load(&d, path, 0);
    Negatives neg;
    negatives_build(&neg, &d, SPLIT_TEST);
}

static void test_data_negatives(void) {
    check_dies("a user who has seen every item leaves no negatives", test_data_negatives_none_left, NULL,
               "user 1 has interacted with every one of the 3 items");
    SeqData d;
    synth_generate(&d, 300, 60, 8, 3);
    Negatives valid, valid2, test;
    negatives_build(&valid, &d, SPLIT_VALID);
    negatives_build(&valid2, &d, SPLIT_VALID);
    negatives_build(&test, &d, SPLIT_TEST);
    int* mark = (int*)callocCheck(d.n_items + 1, sizeof(int));
    int max_seen = 0, clean = 1;
    for (int u = 0; u < d.n_users; u++) max_seen = max_int(max_seen, mark_user_items(&d, u, mark, u + 1));
    for (int u = 0; u < d.n_users; u++) {
        int stamp = -1 - u;  // not the stamps above
        mark_user_items(&d, u, mark, stamp);
        for (int j = 0; j < valid.n_neg; j++) {
            int item = valid.items[(size_t)u * valid.n_neg + j];
            clean &= item >= 1 && item <= d.n_items && mark[item] != stamp;  // unseen and not drawn twice
            mark[item] = stamp;
        }
    }
    CHECK(valid.n_neg == d.n_items - max_seen && valid.n_neg < EVAL_N_NEG && valid.n_neg > 0,
          "negatives: n_neg %d = n_items %d - most distinct items seen %d", valid.n_neg, d.n_items, max_seen);
    CHECK(clean, "negatives: distinct items the user never interacted with");
    size_t bytes = (size_t)d.n_users * valid.n_neg * sizeof(int);
    CHECK(memcmp(valid.items, valid2.items, bytes) == 0, "negatives: identical on every build (and so for every model)");
    CHECK(memcmp(valid.items, test.items, bytes) != 0, "negatives: valid and test use different seeds");
    free(mark);
    negatives_free(&valid); negatives_free(&valid2); negatives_free(&test);
    seqdata_free(&d);
}

// ----------------------------------------------------------------------------
// the shared Amazon sets, when present

static void test_data_shared_sets(void) {
    const struct { const char* path; int users, items, events; } sets[] = {
        {"../shared/data/beauty.txt", 22363, 12101, 198502},
        {"../shared/data/toys.txt", 19412, 11924, 167597},
    };
    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        if (access(sets[i].path, R_OK) != 0) {
            skip(sets[i].path, "not found (../shared is absent); the load/negatives check of the real data did not run");
            continue;
        }
        SeqData d;
        seqdata_load(&d, sets[i].path, 0);
        CHECK(d.n_users == sets[i].users && d.n_items == sets[i].items && d.n_events == sets[i].events,
              "%s: %d users %d items %d events, want %d %d %d", sets[i].path, d.n_users, d.n_items, d.n_events,
              sets[i].users, sets[i].items, sets[i].events);
        Negatives neg;
        negatives_build(&neg, &d, SPLIT_TEST);
        CHECK(neg.n_neg == EVAL_N_NEG, "%s: %d sampled negatives, want %d", sets[i].path, neg.n_neg, EVAL_N_NEG);
        negatives_free(&neg);
        seqdata_free(&d);
    }
}

// the paired bootstrap against cases worked by hand (method.md 7.5)
static void test_data_bootstrap(void) {
    // d = {0, 0, 3}: a resample's mean is the number K of 3s drawn, K ~ Bin(3, 1/3):
    // P(K = 0) = 8/27 > 2.5%, P(K <= 2) = 26/27 < 97.5%, so the interval is [0, 3]
    float a[3] = {0.5f, 0.25f, 3.0f}, b[3] = {0.5f, 0.25f, 0.0f};
    PairedDiff p = paired_bootstrap(a, b, 3, 20000, 1);
    CHECK(p.diff == 1.0 && p.lo == 0.0 && p.hi == 3.0 && strcmp(paired_verdict(&p), "tie") == 0,
          "bootstrap of d = {0, 0, 3}: mean %g, interval [%g, %g] (want 1, [0, 3], a tie)", p.diff, p.lo, p.hi);
    // a constant difference has an interval of width 0: better, or worse the other way round
    float hi[50], lo[50];
    for (int u = 0; u < 50; u++) { hi[u] = 0.5f + 0.01f * (u % 7); lo[u] = hi[u] - 0.25f; }
    p = paired_bootstrap(hi, lo, 50, 1000, 2);
    CHECK(fabs(p.lo - 0.25) < 1e-6 && fabs(p.hi - 0.25) < 1e-6 && strcmp(paired_verdict(&p), "better") == 0,
          "bootstrap of a constant +0.25: [%g, %g] %s", p.lo, p.hi, paired_verdict(&p));
    p = paired_bootstrap(lo, hi, 50, 1000, 2);
    CHECK(strcmp(paired_verdict(&p), "worse") == 0 && fabs(p.mean_a - p.mean_b + 0.25) < 1e-6, "bootstrap of a constant -0.25: %s",
          paired_verdict(&p));
    // 2000 users, d = +1 for 60% and -1 for 40%: mean 0.2, standard error sqrt(0.96 / 2000) = 0.0219,
    // so the interval is close to 0.2 -+ 1.96 x 0.0219 = [0.157, 0.243]
    float* x = test_zeros(2000);
    float* y = test_zeros(2000);
    for (int u = 0; u < 2000; u++) x[u] = u % 5 < 3 ? 1.0f : 0.0f, y[u] = 1.0f - x[u];
    p = paired_bootstrap(x, y, 2000, 10000, 3);
    CHECK(fabs(p.diff - 0.2) < 1e-9 && fabs(p.lo - 0.157) < 0.005 && fabs(p.hi - 0.243) < 0.005,
          "bootstrap of 2000 users at +-1: %g [%g, %g], want 0.2 [0.157, 0.243] within 0.005", p.diff, p.lo, p.hi);
    free(x);
    free(y);
}

static void test_compare_child(void* args) {
    char** argv = (char**)args;
    exit(slmrec_main(6, argv));
}

// per-user files written, read back, refused when malformed; compare on two of them
static void test_data_per_user_files(void) {
    char pa[] = "/tmp/slmrec_test_pu_a_XXXXXX", pb[] = "/tmp/slmrec_test_pu_b_XXXXXX", pc[] = "/tmp/slmrec_test_pu_c_XXXXXX";
    write_temp(pa, "", 0);
    write_temp(pb, "", 0);
    int ids[3] = {7, 2, 9}, other_ids[3] = {7, 3, 9};
    float va[3] = {1.0f, 0.0f, 0.5f}, vb[3] = {0.63093f, 0.0f, 0.5f};
    per_user_write(pa, "A", "test", ids, va, 3);
    per_user_write(pb, "B", "test", ids, vb, 3);
    PerUser r;
    per_user_read(&r, pb);
    CHECK(r.n == 3 && r.user_ids[1] == 2 && r.user_ids[2] == 9 && r.values[0] == 0.63093f && r.values[2] == 0.5f,
          "per-user file read back: %d users", r.n);
    per_user_free(&r);
    char* argv[7] = {"slmrec", "compare", "--a", pa, "--b", pb, NULL};
    CHECK(slmrec_main(6, argv) == 0, "compare of two per-user files of the same users");
    per_user_write(pb, "B", "test", other_ids, vb, 3);
    check_dies("compare refuses files of different users", test_compare_child, argv, "must list the same users in the same order");
    test_write(pc, "# header\n7\t1.0\n2\t0.5 x\n", 23);
    argv[5] = pc;
    check_dies("a per-user file with a malformed line", test_compare_child, argv, "line 3: expected 'user<TAB>value'");
    test_write(pc, "# header only\n", 14);
    check_dies("a per-user file with no users", test_compare_child, argv, "holds no users");
    unlink(pa); unlink(pb); unlink(pc);
}

// the data-set table on a small file counted by hand
static void test_data_stats(void) {
    // lengths 3 3 5 3 4: mean 18/5, median 3; events per item 1:4 2:4 3:5 4:2 5:2 6:1, so 5 of 6 under 5;
    // density 18 / (5 users x 6 items)
    const char* text = "1 1 2 3\n2 2 3 4\n3 1 2 3 4 5\n4 3 5 1\n5 3 1 2 6\n";
    char path[] = "/tmp/slmrec_test_stats_XXXXXX";
    write_temp(path, text, strlen(text));
    SeqData d;
    seqdata_load(&d, path, 0);
    DataStats s = seqdata_stats(&d);
    CHECK(s.users == 5 && s.items == 6 && s.events == 18 && s.min_len == 3 && s.max_len == 5,
          "stats: 5 users, 6 items, 18 events, lengths 3..5 (got %d, %d, %d, %d..%d)", s.users, s.items, s.events, s.min_len, s.max_len);
    CHECK(fabs(s.mean_len - 3.6) < 1e-12 && s.median_len == 3.0 && fabs(s.density - 0.6) < 1e-12 && fabs(s.rare_items - 5.0 / 6.0) < 1e-12,
          "stats: mean length 3.6, median 3, density 0.6, 5/6 of the items rare (got %g, %g, %g, %g)", s.mean_len, s.median_len,
          s.density, s.rare_items);
    seqdata_free(&d);
    // an even number of users: the median is the mean of the middle two lengths (3 and 5)
    text = "1 1 2 3\n2 1 2 3 4 5\n";
    test_write(path, text, strlen(text));
    seqdata_load(&d, path, 0);
    s = seqdata_stats(&d);
    CHECK(s.median_len == 4.0 && s.rare_items == 1.0, "stats: median of lengths 3 and 5 is 4 (got %g)", s.median_len);
    seqdata_free(&d);
    unlink(path);
    // the tiny set (data/README.md's worked example): 5 users each rating all 5 items once
    if (access("data/tiny_ratings.expected.txt", R_OK) != 0) { skip("stats of the tiny set", "run the tests from the repo root"); return; }
    seqdata_load(&d, "data/tiny_ratings.expected.txt", 0);
    s = seqdata_stats(&d);
    CHECK(s.users == 5 && s.items == 5 && s.events == 25 && s.mean_len == 5.0 && s.median_len == 5.0 && s.density == 1.0 &&
          s.rare_items == 0.0, "stats of the tiny set: 5 users, 5 items, 25 events, length 5, density 1, no rare item");
    seqdata_free(&d);
}

static void run_data_tests(void) {
    printf("data and evaluation\n");
    test_data_load_good();
    test_data_load_refusals();
    test_data_split_and_history();
    test_data_training_batches();
    test_data_synth();
    test_data_prep();
    test_data_metrics_hand();
    test_data_metrics_output();
    test_data_negatives();
    test_data_shared_sets();
    test_data_bootstrap();
    test_data_per_user_files();
    test_data_stats();
}
