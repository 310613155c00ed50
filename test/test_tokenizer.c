// test_tokenizer.c: the BPE trainer, the shared encoder/decoder, both file
// formats (own binfile and llama2.c's tok512.bin) and their refusals.
// #included into the test runner after the project headers and test.h.

#define TEST_TOK512_PATH "../shared/pretrained/tok512.bin"

// the default prompt's wording with variations, as the recommender uses it
static const char* test_tok_corpus =
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n"
    "### Instruction: Given the user's purchase history, predict the next item the user will buy.\n### Response: "
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n### Input: The user bought these items.\n"
    "Below is an instruction that describes a recommendation task. Write a response that completes the request.\n"
    "### Instruction: Recommend the next item for the user.\n### Response: "
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n";

// a path for a temp file the test fills itself; caller unlinks
static void test_tok_temp_path(char* path_template) { write_temp(path_template, "", 0); }

static void test_tok_roundtrip(const Tokenizer* t, const char* text, const char* what) {
    int cap = (int)strlen(text) + 3;
    int* ids = (int*)mallocCheck((size_t)cap * sizeof(int));
    int n = tokenizer_encode(t, text, 1, 1, ids, cap);
    size_t back_cap = 2 * strlen(text) + 16;  // room for a wrong decode, so it fails a CHECK rather than dies
    char* back = (char*)mallocCheck(back_cap);
    size_t len = tokenizer_decode(t, ids, n, back, back_cap);
    CHECK(n >= 2 && ids[0] == t->bos_id && ids[n - 1] == t->eos_id, "%s: encode should start with BOS and end with EOS", what);
    CHECK(len == strlen(text) && strcmp(back, text) == 0, "%s: decode(encode(x)) gave '%s' for '%s'", what, back, text);
    free(back);
    free(ids);
}

// encodes text (BOS, no EOS) into ids; returns the count
static int test_tok_encode(const Tokenizer* t, const char* text, int* ids, int cap) {
    return tokenizer_encode(t, text, 1, 0, ids, cap);
}

static int test_tok_same_ids(const int* a, int na, const int* b, int nb) {
    return na == nb && memcmp(a, b, (size_t)na * sizeof(int)) == 0;
}


// ----------------------------------------------------------------------------
// the project's BPE

static void test_tok_bpe_corpus(void) {
    Tokenizer t, again;
    tokenizer_train_bpe(&t, test_tok_corpus, strlen(test_tok_corpus), 400);
    tokenizer_train_bpe(&again, test_tok_corpus, strlen(test_tok_corpus), 400);
    CHECK(t.vocab_size == 400, "bpe: vocab_size %d, expected 400", t.vocab_size);
    CHECK(tokenizer_same(&t, &again), "bpe: training twice on the same text gave different tokenizers");
    CHECK(t.bos_id == TOK_BOS && t.eos_id == TOK_EOS && t.add_dummy_prefix, "bpe: bos/eos/dummy prefix not set");

    // " instruction" is frequent: one token, and encode finds it
    int id = tokenizer_lookup(&t, " instruction", 12);
    int ids[64];
    int n = test_tok_encode(&t, "instruction", ids, 64);
    CHECK(id >= TOK_BASE_VOCAB && n == 2 && ids[1] == id, "bpe: ' instruction' should be one token (id %d, encoded to %d ids)", id, n);
    // merges follow training order, so the first merge scores highest
    CHECK(t.scores[TOK_BASE_VOCAB] == 0.0f && t.scores[399] == -140.0f, "bpe: scores should be -(merge index)");
    for (int v = TOK_BASE_VOCAB; v < t.vocab_size; v++) {
        CHECK(memchr(t.vocab[v] + 1, ' ', (size_t)t.lengths[v] - 1) == NULL, "bpe: token %d '%s' spans a word boundary", v, t.vocab[v]);
    }

    test_tok_roundtrip(&t, "Below is an instruction that describes a task.", "bpe ascii seen");
    test_tok_roundtrip(&t, "Zebras quack 42 times!\tTabs,  double  spaces, and\nnew lines ", "bpe ascii unseen");
    test_tok_roundtrip(&t, " leading space", "bpe leading space");
    test_tok_roundtrip(&t, "na\xc3\xafve caf\xc3\xa9 \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x99\x82 \x01\x7f",
                       "bpe utf-8 never seen (byte fallback)");
    test_tok_roundtrip(&t, "", "bpe empty string");
    CHECK(tokenizer_encode(&t, "", 0, 0, ids, 64) == 0, "bpe: the empty string without BOS/EOS should encode to nothing");

    // save -> load, and the embedded section, reproduce the tokenizer exactly
    char path[] = "/tmp/slmrec_test_tok_XXXXXX";
    test_tok_temp_path(path);
    tokenizer_save(&t, path);
    Tokenizer loaded;
    tokenizer_load(&loaded, path);
    unlink(path);
    CHECK(tokenizer_same(&t, &loaded), "bpe: save/load changed the tokenizer");
    const char* texts[] = {test_tok_corpus, "a response for the user", "caf\xc3\xa9 \xe2\x9c\x93", ""};
    for (int i = 0; i < 4; i++) {
        int a[1024], b[1024];
        int na = tokenizer_encode(&t, texts[i], 1, 1, a, 1024);
        int nb = tokenizer_encode(&loaded, texts[i], 1, 1, b, 1024);
        CHECK(test_tok_same_ids(a, na, b, nb), "bpe: the loaded tokenizer encodes text %d differently", i);
    }
    // a checkpoint embeds the section between its own tensors: it must delimit itself
    Buffer buf = {0};
    int32_t before = 1234, after = 5678, got_before, got_after;
    buffer_put(&buf, &before, sizeof(before));
    tokenizer_write_to(&buf, &t);
    buffer_put(&buf, &after, sizeof(after));
    Cursor c = {buf.data, buf.size, 0, "embedded"};
    Tokenizer embedded;
    cursor_take(&c, &got_before, sizeof(got_before), "before");
    tokenizer_read_from(&c, &embedded);
    cursor_take(&c, &got_after, sizeof(got_after), "after");
    cursor_done(&c);
    CHECK(got_before == before && got_after == after && tokenizer_same(&t, &embedded),
          "bpe: write_to/read_from inside a larger payload did not round trip");
    free(buf.data);
    tokenizer_free(&embedded);
    tokenizer_free(&loaded);
    tokenizer_free(&again);
    tokenizer_free(&t);
}

// Worked by hand. The corpus " aaab aaab" (dummy prefix) is the word " aaab"
// twice; bytes are ids 3 + byte: ' ' = 35, 'a' = 100, 'b' = 101.
//   word [35 100 100 100 101] x2: pairs (35,100) 2, (100,100) 4, (100,101) 2
//   merge 0: (100,100) -> 259 "aa", score -0; left to right: [35 259 100 101]
//   pairs (35,259) 2, (259,100) 2, (100,101) 2: a tie, lowest ids win
//   merge 1: (35,259) -> 260 " aa", score -1; vocab_size 261 reached.
// Encoding "aaab": BOS, then " aaab" as [35 100 100 100 101]; "aa" (score 0)
// merges at its leftmost place -> [35 259 100 101]; " aa" (-1) -> [260 100 101];
// "aaa" and "ab" are not tokens, so: [1 260 100 101].
static void test_tok_bpe_by_hand(void) {
    Tokenizer t;
    tokenizer_train_bpe(&t, "aaab aaab", 9, 261);
    CHECK(t.vocab_size == 261, "by hand: vocab_size %d, expected 261", t.vocab_size);
    CHECK(strcmp(t.vocab[259], "aa") == 0 && strcmp(t.vocab[260], " aa") == 0, "by hand: merges are '%s', '%s'", t.vocab[259], t.vocab[260]);
    CHECK(t.scores[259] == 0.0f && t.scores[260] == -1.0f, "by hand: scores %g %g, expected 0 -1", t.scores[259], t.scores[260]);
    int ids[16];
    int n = test_tok_encode(&t, "aaab", ids, 16);
    int expect[] = {1, 260, 100, 101};
    CHECK(test_tok_same_ids(ids, n, expect, 4), "by hand: 'aaab' encoded to %d ids [%d %d %d %d ...], expected [1 260 100 101]",
          n, ids[0], n > 1 ? ids[1] : -1, n > 2 ? ids[2] : -1, n > 3 ? ids[3] : -1);
    tokenizer_free(&t);

    // a corpus with fewer pairs than asked for stops early: " ab" allows " a", then " ab"
    tokenizer_train_bpe(&t, "ab", 2, 1000);
    CHECK(t.vocab_size == 261 && strcmp(t.vocab[260], " ab") == 0, "by hand: 'ab' should stop at 261 tokens, got %d", t.vocab_size);
    tokenizer_free(&t);

    // tokenizer_min_ids is reached: " abcd" is learned (" a", "bc", " abc", " abcd")
    // and is the longest token, so "abcd" and "abcdx" need BOS + ceil(5 / 5) and
    // BOS + ceil(6 / 5) ids, the dummy prefix counted
    tokenizer_train_bpe(&t, "abcd abcd", 9, 263);
    CHECK(t.max_token_length == 5 && tokenizer_lookup(&t, " abcd", 5) >= 0, "by hand: ' abcd' should be the longest token");
    CHECK(test_tok_encode(&t, "abcd", ids, 16) == 2 && tokenizer_min_ids(&t, 4, 1, 0) == 2, "by hand: 'abcd' should be 2 ids");
    CHECK(test_tok_encode(&t, "abcdx", ids, 16) == 3 && tokenizer_min_ids(&t, 5, 1, 0) == 3, "by hand: 'abcdx' should be 3 ids");
    tokenizer_free(&t);
}

// multi-byte characters are completed before they merge with neighbours, so the
// encoder's whole-character lookup agrees with the training order
static void test_tok_bpe_utf8(void) {
    const char* corpus = "caf\xc3\xa9 caf\xc3\xa9 caf\xc3\xa9 na\xc3\xafve na\xc3\xafve \xe2\x82\xac\xe2\x82\xac \xe2\x82\xac" "5 \xe2\x82\xac" "5";
    Tokenizer t;
    tokenizer_train_bpe(&t, corpus, strlen(corpus), 300);
    for (int v = TOK_BASE_VOCAB; v < t.vocab_size; v++) {
        CHECK(tok_utf8_mergeable((const unsigned char*)t.vocab[v], t.lengths[v]), "utf8: token %d splits a character", v);
    }
    int id = tokenizer_lookup(&t, " caf\xc3\xa9", 6);
    int ids[16];
    int n = test_tok_encode(&t, "caf\xc3\xa9", ids, 16);
    CHECK(id >= 0 && n == 2 && ids[1] == id, "utf8: ' caf\xc3\xa9' should be one token");
    test_tok_roundtrip(&t, corpus, "utf8 corpus");
    test_tok_roundtrip(&t, "\xe2\x82\xac caf\xc3\xa9\xe2\x82\xac \xc3\xa9\xe2\x82 \x80\x80 \xff", "utf8 with invalid bytes");
    tokenizer_free(&t);
}

// ----------------------------------------------------------------------------
// llama2.c's tok512.bin layout

// a small tok512-layout vocabulary: the 259 base tokens, then " " a b and the
// merges "ab" (score 0), " a" (-1), " ab" (-2): ids 259..264
static void test_tok_llama2c_blob(Buffer* b) {
    int32_t max_len = 6;
    buffer_put(b, &max_len, 4);
    for (int id = 0; id < 265; id++) {
        const char* fixed[] = {"<unk>", "\n<s>\n", "\n</s>\n"};
        const char* merged[] = {" ", "a", "b", "ab", " a", " ab"};
        float scores[] = {-10.0f, -11.0f, -12.0f, 0.0f, -1.0f, -2.0f};
        char spelled[8];
        const char* str = id < 3 ? fixed[id] : id < 259 ? spelled : merged[id - 259];
        if (id >= 3 && id < 259) snprintf(spelled, sizeof(spelled), "<0x%02X>", id - 3);
        float score = id < 259 ? 0.0f : scores[id - 259];
        int32_t len = (int32_t)strlen(str);
        buffer_put(b, &score, 4);
        buffer_put(b, &len, 4);
        buffer_put(b, str, (size_t)len);
    }
}

static void test_tok_llama2c_small(void) {
    Buffer b = {0};
    test_tok_llama2c_blob(&b);
    char path[] = "/tmp/slmrec_test_tok_XXXXXX";
    write_temp(path, b.data, b.size);
    Tokenizer t;
    tokenizer_load_llama2c(&t, path);
    unlink(path);
    CHECK(t.vocab_size == 265 && t.max_token_length == 6 && t.add_dummy_prefix, "llama2c small: V %d max %d", t.vocab_size, t.max_token_length);
    // " ab ab": "ab" (0) twice first, then " ab" (-2) twice; " a" (-1) never gets a chance
    int ids[16];
    int n = test_tok_encode(&t, "ab ab", ids, 16);
    int expect[] = {1, 264, 264};
    CHECK(test_tok_same_ids(ids, n, expect, 3), "llama2c small: 'ab ab' encoded to %d ids, expected [1 264 264]", n);
    // "c" is not a token: its byte token <0x63> decodes to the byte
    n = test_tok_encode(&t, "ac", ids, 16);
    int expect_c[] = {1, 263, 3 + 'c'};
    CHECK(test_tok_same_ids(ids, n, expect_c, 3), "llama2c small: 'ac' should be [1 263 102]");
    test_tok_roundtrip(&t, "abc ab \xe2\x9c\x93", "llama2c small");
    tokenizer_free(&t);
    free(b.data);
}

static void test_tok_llama2c_pretrained(void) {
    if (access(TEST_TOK512_PATH, R_OK) != 0) {
        skip("tokenizer tok512", TEST_TOK512_PATH " not found (tests run from the repo root with ../shared present)");
        return;
    }
    Tokenizer t;
    tokenizer_load_llama2c(&t, TEST_TOK512_PATH);
    CHECK(t.vocab_size == 512 && t.max_token_length == 7, "tok512: V %d max %d, expected 512 7", t.vocab_size, t.max_token_length);
    CHECK(t.bos_id == 1 && t.eos_id == 2 && strcmp(t.vocab[0], "<unk>") == 0 && strcmp(t.vocab[1], "\n<s>\n") == 0 &&
          strcmp(t.vocab[2], "\n</s>\n") == 0, "tok512: control tokens are not <unk>, \\n<s>\\n, \\n</s>\\n");
    CHECK(tokenizer_lookup(&t, " the", 4) == 265 && tokenizer_lookup(&t, "<0x41>", 6) == 3 + 0x41 &&
          tokenizer_lookup(&t, "\n<s>\n", 5) == -1, "tok512: lookup of ' the', '<0x41>', BOS wrong");
    // expected ids from a line-by-line Python port of llama2.c's encode()
    int ids[64];
    int n = test_tok_encode(&t, "Lily bought a red ball", ids, 64);
    int expect[] = {1, 317, 268, 277, 428, 415, 413, 261, 352, 266, 268, 388};
    CHECK(n > 0 && ids[0] == 1, "tok512: encode with BOS should start with 1");
    CHECK(test_tok_same_ids(ids, n, expect, 12), "tok512: 'Lily bought a red ball' encodes differently from llama2.c (%d ids)", n);
    n = test_tok_encode(&t, "Once upon a time, caf\xc3\xa9 \xe2\x82\xac" "5 \xe6\x97\xa5\xe6\x9c\xac", ids, 64);
    int expect_utf8[] = {1, 403, 407, 261, 378, 432, 280, 412, 431, 485, 410, 503, 480, 410, 233, 154, 168, 233, 159, 175};
    CHECK(test_tok_same_ids(ids, n, expect_utf8, 20), "tok512: the UTF-8 sentence encodes differently from llama2.c (%d ids)", n);
    test_tok_roundtrip(&t, "Lily bought a red ball", "tok512");
    test_tok_roundtrip(&t, "Once upon a time, caf\xc3\xa9 \xe2\x82\xac" "5 \xe6\x97\xa5\xe6\x9c\xac", "tok512 utf-8");
    int piece_len;
    const char* piece = tokenizer_piece(&t, 1, 317, &piece_len);
    CHECK(piece_len == 4 && memcmp(piece, "Lily", 4) == 0, "tok512: ' Lily' after BOS should print 'Lily'");
    piece = tokenizer_piece(&t, 317, 3 + 0xE6, &piece_len);
    CHECK(piece_len == 1 && (unsigned char)piece[0] == 0xE6, "tok512: <0xE6> should print the byte 0xE6");
    tokenizer_free(&t);
}

// ----------------------------------------------------------------------------
// the encoder's merge order against llama2.c's own loop

// llama2.c's merge loop, the oracle: after every merge, all adjacent pairs are
// rescanned for the highest score, a strict > keeping the leftmost of equals.
// Quadratic, so for short texts only. ids has room for strlen(text) + 3.
static int test_tok_encode_rescan(const Tokenizer* t, const char* text, int add_bos, int add_eos, int* ids) {
    int len = (int)strlen(text), n = 0;
    if (add_bos) ids[n++] = t->bos_id;
    int first = n;
    if (t->add_dummy_prefix && len > 0) n = tok_push_char(t, " ", 1, ids, n);
    for (int i = 0; i < len;) {
        int char_len = 1;
        while (char_len < 4 && i + char_len < len && ((unsigned char)text[i + char_len] & 0xC0) == 0x80) char_len++;
        n = tok_push_char(t, text + i, char_len, ids, n);
        i += char_len;
    }
    char* pair = (char*)mallocCheck((size_t)t->max_token_length);
    for (;;) {
        int best_at = -1, best_id = -1;
        float best_score = 0.0f;
        for (int i = first; i + 1 < n; i++) {
            if (t->lengths[ids[i]] + t->lengths[ids[i + 1]] > t->max_token_length) continue;
            int id = tokenizer_lookup(t, pair, tok_concat(t, ids[i], ids[i + 1], pair));
            if (id >= 0 && (best_at < 0 || t->scores[id] > best_score)) {
                best_at = i;
                best_id = id;
                best_score = t->scores[id];
            }
        }
        if (best_at < 0) break;
        ids[best_at] = best_id;
        memmove(ids + best_at + 1, ids + best_at + 2, (size_t)(n - best_at - 2) * sizeof(int));
        n--;
    }
    free(pair);
    if (add_eos) ids[n++] = t->eos_id;
    return n;
}

// len random bytes, no NUL: the corpus's words, runs and alternations that make
// many equal-score pairs ("aaaa", "abab"), words over a tiny alphabet, multi-byte
// UTF-8 characters (cut anywhere, so invalid UTF-8 too) and raw bytes
static void test_tok_random_text(Rng* rng, char* out, int len) {
    const char* chars[] = {"\xc3\xa9", "\xc3\xaf", "\xe2\x82\xac", "\xe2\x80\x94", "\xe6\x97\xa5", "\xf0\x9f\x99\x82"};
    int n = 0;
    while (n < len) {
        char piece[32];
        int m = 0;
        switch (rng_int(rng, 6)) {
        case 0: {
            int at = rng_int(rng, (int)strlen(test_tok_corpus) - 20);
            m = 1 + rng_int(rng, 20);
            memcpy(piece, test_tok_corpus + at, (size_t)m);
            break;
        }
        case 1: {
            char c = "ab e"[rng_int(rng, 4)];
            for (int k = 2 + rng_int(rng, 20); m < k; m++) piece[m] = c;
            break;
        }
        case 2: {
            char c[2] = {"ab e"[rng_int(rng, 4)], "ab e"[rng_int(rng, 4)]};
            for (int k = 2 + rng_int(rng, 20); m < k; m++) piece[m] = c[m % 2];
            break;
        }
        case 3:
            for (int k = 1 + rng_int(rng, 12); m < k; m++) piece[m] = "ab "[rng_int(rng, 3)];
            break;
        case 4:
            m = (int)strlen(strcpy(piece, chars[rng_int(rng, 6)]));
            break;
        default:
            piece[m++] = (char)(1 + rng_int(rng, 255));
        }
        m = min_int(m, len - n);
        memcpy(out + n, piece, (size_t)m);
        n += m;
    }
    out[len] = 0;
}

// A vocabulary of random merged tokens spelled with "a", "b", " " and "\xc3\xa9",
// scored from {1, 0, -0, -1}: equal scores everywhere, so the tie order decides
// most merges, and 0 against -0 checks that they tie too.
static void test_tok_tie_vocab(Tokenizer* t, Rng* rng, int n_merged) {
    tokenizer_base_vocab(t, TOK_BASE_VOCAB + n_merged);
    const char* pieces[] = {"a", "b", " ", "\xc3\xa9"};
    const float scores[] = {1.0f, 0.0f, -0.0f, -1.0f};
    while (t->vocab_size < TOK_BASE_VOCAB + n_merged) {
        char s[16];
        int len = 0;
        for (int k = 1 + rng_int(rng, 5); k > 0; k--) {
            const char* p = pieces[rng_int(rng, 4)];
            memcpy(s + len, p, strlen(p));
            len += (int)strlen(p);
        }
        int taken = 0;
        for (int v = TOK_BYTE_BASE; v < t->vocab_size && !taken; v++) {
            taken = t->lengths[v] == len && memcmp(t->vocab[v], s, (size_t)len) == 0;
        }
        if (taken) continue;
        tokenizer_set(t, t->vocab_size++, s, len, scores[rng_int(rng, 4)]);
        t->max_token_length = max_int(t->max_token_length, len);
    }
    t->bos_id = TOK_BOS;
    t->eos_id = TOK_EOS;
    t->add_dummy_prefix = rng_int(rng, 2);
    tokenizer_index(t, "a random tie vocabulary");
}

// n_texts random texts of up to max_len bytes, random BOS and EOS: the encoder
// must give the oracle's ids, never fewer than tokenizer_min_ids promises
static void test_tok_against_rescan(const Tokenizer* t, const char* what, Rng* rng, int n_texts, int max_len) {
    char* text = (char*)mallocCheck((size_t)max_len + 1);
    int* got = (int*)mallocCheck(((size_t)max_len + 3) * sizeof(int));
    int* want = (int*)mallocCheck(((size_t)max_len + 3) * sizeof(int));
    int differ = 0, below_bound = 0, first_differ = -1;
    for (int k = 0; k < n_texts; k++) {
        test_tok_random_text(rng, text, rng_int(rng, max_len + 1));
        int bos = rng_int(rng, 2), eos = rng_int(rng, 2);
        int n_got = tokenizer_encode(t, text, bos, eos, got, max_len + 3);
        int n_want = test_tok_encode_rescan(t, text, bos, eos, want);
        if (!test_tok_same_ids(got, n_got, want, n_want) && differ++ == 0) first_differ = k;
        if ((size_t)n_got < tokenizer_min_ids(t, strlen(text), bos, eos)) below_bound++;
    }
    CHECK(differ == 0, "%s: %d of %d random texts encode differently from llama2.c's rescan, the first is text %d",
          what, differ, n_texts, first_differ);
    CHECK(below_bound == 0, "%s: %d of %d random texts encode to fewer ids than tokenizer_min_ids", what, below_bound, n_texts);
    free(want);
    free(got);
    free(text);
}

static void test_tok_merge_order(void) {
    Rng rng;
    rng_seed(&rng, 2024);
    Tokenizer t;
    for (int i = 0; i < 4; i++) {
        test_tok_tie_vocab(&t, &rng, 40 + 40 * i);
        test_tok_against_rescan(&t, "tie vocabulary", &rng, 100, 200);
        tokenizer_free(&t);
    }
    tokenizer_train_bpe(&t, test_tok_corpus, strlen(test_tok_corpus), 400);
    test_tok_against_rescan(&t, "bpe on the corpus", &rng, 100, 200);
    test_tok_against_rescan(&t, "bpe on the corpus, long texts", &rng, 2, 3000);
    tokenizer_free(&t);
    // trained on the random texts themselves, so runs like "aaaa" become tokens
    char corpus[4001];
    test_tok_random_text(&rng, corpus, 4000);
    tokenizer_train_bpe(&t, corpus, strlen(corpus), 600);
    test_tok_against_rescan(&t, "bpe on random text", &rng, 100, 200);
    tokenizer_free(&t);
    if (access(TEST_TOK512_PATH, R_OK) != 0) {
        skip("tokenizer tok512 merge order", TEST_TOK512_PATH " not found (tests run from the repo root with ../shared present)");
        return;
    }
    tokenizer_load_llama2c(&t, TEST_TOK512_PATH);
    test_tok_against_rescan(&t, "tok512", &rng, 100, 200);
    test_tok_against_rescan(&t, "tok512, long texts", &rng, 2, 3000);
    tokenizer_free(&t);
}

// 128 KB, too long for the oracle: decode(encode(x)) == x, no two adjacent ids
// that would still merge, and no fewer ids than tokenizer_min_ids. Its time is
// printed, not checked.
static void test_tok_long_text(void) {
    Tokenizer t;
    tokenizer_train_bpe(&t, test_tok_corpus, strlen(test_tok_corpus), 400);
    int len = 128 * 1024;
    char* text = (char*)mallocCheck((size_t)len + 1);
    for (int n = 0; n < len; n += (int)strlen(test_tok_corpus)) {
        memcpy(text + n, test_tok_corpus, (size_t)min_int((int)strlen(test_tok_corpus), len - n));
    }
    text[len] = 0;
    int* ids = (int*)mallocCheck(((size_t)len + 3) * sizeof(int));
    double t0 = now_seconds();
    int n = tokenizer_encode(&t, text, 1, 0, ids, len + 3);
    double seconds = now_seconds() - t0;
    char* back = (char*)mallocCheck((size_t)len + 1);
    size_t back_len = tokenizer_decode(&t, ids, n, back, (size_t)len + 1);
    CHECK(back_len == (size_t)len && memcmp(back, text, (size_t)len) == 0, "long text: decode(encode(x)) differs from x");
    int mergeable = 0;
    char* pair = (char*)mallocCheck((size_t)t.max_token_length);
    for (int i = 1; i + 1 < n; i++) {
        if (t.lengths[ids[i]] + t.lengths[ids[i + 1]] > t.max_token_length) continue;
        if (tokenizer_lookup(&t, pair, tok_concat(&t, ids[i], ids[i + 1], pair)) >= 0) mergeable++;
    }
    CHECK(mergeable == 0, "long text: %d adjacent pairs were left unmerged", mergeable);
    CHECK((size_t)n >= tokenizer_min_ids(&t, (size_t)len, 1, 0), "long text: %d ids, fewer than tokenizer_min_ids", n);
    printf("  encode: %d KB into %d ids in %.3f s\n", len / 1024, n, seconds);
    free(pair);
    free(back);
    free(ids);
    free(text);
    tokenizer_free(&t);
}

// ----------------------------------------------------------------------------
// refusals

static void test_tok_die_load(void* path) {
    Tokenizer t;
    tokenizer_load(&t, (const char*)path);
}

static void test_tok_die_load_llama2c(void* path) {
    Tokenizer t;
    tokenizer_load_llama2c(&t, (const char*)path);
}

static void test_tok_die_encode_small(void* tok) {
    int ids[3];
    tokenizer_encode((const Tokenizer*)tok, "a fairly long text", 1, 0, ids, 3);
}

static void test_tok_die_decode_bad_id(void* tok) {
    int ids[2] = {1, 100000};
    char out[64];
    tokenizer_decode((const Tokenizer*)tok, ids, 2, out, sizeof(out));
}

static void test_tok_die_train_small_vocab(void* unused) {
    (void)unused;
    Tokenizer t;
    tokenizer_train_bpe(&t, "abc", 3, 100);
}

// writes bytes to a temp file, expects the loader to refuse it with expect
static void test_tok_refuse_bytes(const char* name, void (*loader)(void*), const void* bytes, size_t n, const char* expect) {
    char path[] = "/tmp/slmrec_test_tok_XXXXXX";
    write_temp(path, bytes, n);
    check_dies(name, loader, path, expect);
    unlink(path);
}

static void test_tok_refusals(void) {
    Buffer blob = {0};
    test_tok_llama2c_blob(&blob);
    // llama2.c layout: truncation inside a token's bytes and inside a record header
    test_tok_refuse_bytes("llama2c truncated in bytes", test_tok_die_load_llama2c, blob.data, blob.size - 2, "truncated");
    test_tok_refuse_bytes("llama2c truncated in header", test_tok_die_load_llama2c, blob.data, 4 + 8 + 5 + 3, "truncated");
    test_tok_refuse_bytes("llama2c too few tokens", test_tok_die_load_llama2c, blob.data, 4 + 8 + 5, "fewer than");
    int32_t bad_len[] = {-1, 1 << 30, 0};
    for (int i = 0; i < 3; i++) {
        char* copy = (char*)mallocCheck(blob.size);
        memcpy(copy, blob.data, blob.size);
        memcpy(copy + 4 + 4, &bad_len[i], 4);  // token 0's length
        test_tok_refuse_bytes("llama2c bad length", test_tok_die_load_llama2c, copy, blob.size, "has length");
        free(copy);
    }
    int32_t huge_max = 1 << 30;
    char* copy = (char*)mallocCheck(blob.size);
    memcpy(copy, blob.data, blob.size);
    memcpy(copy, &huge_max, 4);
    test_tok_refuse_bytes("llama2c huge max_token_length", test_tok_die_load_llama2c, copy, blob.size, "max_token_length");
    memcpy(copy, blob.data, blob.size);
    memcpy(copy + 4 + (5 + 8) + (5 + 8) + (6 + 8) + 8, "<0x99>", 6);  // token 3 should spell byte 0x00
    test_tok_refuse_bytes("llama2c wrong byte token", test_tok_die_load_llama2c, copy, blob.size, "should be byte 0x00");
    free(copy);
    if (access(TEST_TOK512_PATH, R_OK) == 0) {
        size_t size;
        char* real = read_file(TEST_TOK512_PATH, &size);
        test_tok_refuse_bytes("tok512 truncated", test_tok_die_load_llama2c, real, size - 3, "truncated");
        free(real);
    }

    // own format
    Tokenizer t;
    tokenizer_train_bpe(&t, test_tok_corpus, strlen(test_tok_corpus), 300);
    char path[] = "/tmp/slmrec_test_tok_XXXXXX";
    test_tok_temp_path(path);
    tokenizer_save(&t, path);
    size_t size;
    char* file = read_file(path, &size);
    unlink(path);
    file[HEADER_INTS * 4 + 100] ^= 0x10;
    test_tok_refuse_bytes("own format corrupted", test_tok_die_load, file, size, "checksum");
    file[HEADER_INTS * 4 + 100] ^= 0x10;
    test_tok_refuse_bytes("own format truncated", test_tok_die_load, file, size - 10, "truncated");
    test_tok_refuse_bytes("own format foreign (llama2.c file)", test_tok_die_load, blob.data, blob.size, "magic");
    test_tok_refuse_bytes("llama2c loader given own format", test_tok_die_load_llama2c, file, size, "max_token_length");
    free(file);

    Buffer payload = {0};
    tokenizer_write_to(&payload, &t);
    int32_t dims[TOK_DIMS];
    tokenizer_dims(&t, dims);
    char bin_path[] = "/tmp/slmrec_test_tok_XXXXXX";
    test_tok_temp_path(bin_path);
    binfile_write(bin_path, KIND_SASREC, dims, TOK_DIMS, payload.data, payload.size);
    check_dies("own format wrong kind", test_tok_die_load, bin_path, "holds a sasrec");
    dims[1] += 1;
    binfile_write(bin_path, KIND_TOKENIZER, dims, TOK_DIMS, payload.data, payload.size);
    check_dies("own format header/payload dims disagree", test_tok_die_load, bin_path, "disagree");
    int32_t small_vocab = 5;  // a valid checksum over insane dimensions
    memcpy(payload.data, &small_vocab, 4);
    binfile_write(bin_path, KIND_TOKENIZER, dims, TOK_DIMS, payload.data, payload.size);
    check_dies("own format insane vocab_size", test_tok_die_load, bin_path, "vocab_size 5");
    unlink(bin_path);
    free(payload.data);

    check_dies("encode into too few ids", test_tok_die_encode_small, &t, "needs");
    check_dies("decode an id outside the vocab", test_tok_die_decode_bad_id, &t, "outside the vocabulary");
    check_dies("train with a vocab below 259", test_tok_die_train_small_vocab, NULL, "vocab_size 100");
    tokenizer_free(&t);
    free(blob.data);
}

static void run_tokenizer_tests(void) {
    test_tok_bpe_corpus();
    test_tok_bpe_by_hand();
    test_tok_bpe_utf8();
    test_tok_llama2c_small();
    test_tok_llama2c_pretrained();
    test_tok_merge_order();
    test_tok_long_text();
    test_tok_refusals();
}
