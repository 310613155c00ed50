// test_fuzz.c: hostile input, made to stay fixed. Every parser gets a few valid
// files built here with the project's own writers, then a fixed-seed sequence of
// mutants of them (bit flips, random bytes, cuts, repeated or deleted chunks,
// boundary integers in header fields and numbers in text), each parsed in a
// forked child. Every other binfile mutant is resealed (size fields and checksum
// recomputed), or the checksum would refuse it before any dimension is read.
// A mutant passes when the child accepts it (exit 0) or refuses it cleanly (exit
// 1 with an "error: " line); a signal (crash, sanitizer abort, the time limit) or
// any other exit fails, named by parser, mutant index and mutations, and the
// mutant is kept in /tmp to reproduce. One CHECK per parser: its seeds are
// accepted and no mutant failed. test/fuzz.c is the open-ended (libFuzzer)
// version of the same.
// #included into the test runner after the project headers and test.h.
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>

#if defined(__SANITIZE_ADDRESS__)  // gcc's name; clang says it through __has_feature
#define FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif

// Under ASan a fork costs several times more (shadow and quarantine pages are copied
// and torn down): a third of the mutants keeps the suite short. An absurd allocation
// fails there as without ASan (NULL, refused by mallocCheck) because make test-asan
// sets allocator_may_return_null=1.
#ifdef FUZZ_ASAN
#define FUZZ_SHARE 3
#else
#define FUZZ_SHARE 1
#endif

#define FUZZ_SEED 20261201
#define FUZZ_CHILD_SECONDS 20      // a parse of a file of kilobytes that takes longer hangs
#define FUZZ_CHILD_MEMORY (1 << 30) // address space a child may add: a bigger allocation is refused, not attempted
#define FUZZ_MAX_SEEDS 4
#define FUZZ_SHOWN_FAILURES 8       // failing mutants printed per parser

static char fuzz_dir[64];   // the temp directory every mutant is written into
static int fuzz_variant;    // the mutant's index, for parsers with an option to vary
static int fuzz_seed;       // the index of the seed it was made from

static void fuzz_path(char* out, size_t cap, const char* name) { snprintf(out, cap, "%s/%s", fuzz_dir, name); }

// ----------------------------------------------------------------------------
// the parsers as each child runs them: parse, use what was parsed a little, free

static void fuzz_parse_seqfile(const char* path) {
    SeqData d;
    seqdata_load(&d, path, fuzz_variant % 3 == 0 ? 40 : 0);  // every third mutant against a model of 40 items
    seqdata_free(&d);
}

static void fuzz_parse_ratings(const char* path) {
    char out[128];
    fuzz_path(out, sizeof(out), "prep_out");
    PrepOptions layout = prep_options(NULL, NULL, fuzz_seed == 0);  // the first seed starts with a header line
    prep_ratings(path, out, &layout);
}

// a tokenizer that loads must also encode and decode
static void fuzz_use_tokenizer(Tokenizer* t) {
    int ids[64];
    int n = tokenizer_encode(t, "ab abc \xe2\x9c\x93 <s>", 1, 1, ids, 64);
    size_t cap = (size_t)n * t->max_token_length + 1;
    char* text = (char*)mallocCheck(cap);
    tokenizer_decode(t, ids, n, text, cap);
    free(text);
    tokenizer_free(t);
}

static void fuzz_parse_tokenizer(const char* path) {
    Tokenizer t;
    tokenizer_load(&t, path);
    fuzz_use_tokenizer(&t);
}

static void fuzz_parse_llama2c_tokenizer(const char* path) {
    Tokenizer t;
    tokenizer_load_llama2c(&t, path);
    fuzz_use_tokenizer(&t);
}

static void fuzz_parse_sasrec(const char* path) {
    SASRecFile f;
    sasrec_load(&f, path);
    sasrec_file_free(&f);
}

static void fuzz_parse_e4srec(const char* path) {
    E4SRecFile f;
    e4srec_load(&f, path);
    e4srec_file_free(&f);
}

static void fuzz_parse_student(const char* path) {
    StudentFile f;
    student_load(&f, path);
    student_file_free(&f);
}

static void fuzz_parse_llama(const char* path) {
    Llama m;
    llama_load(&m, path);
    llama_free(&m);
}

// every tensor read as float32: st_open's offsets must make that safe
static void fuzz_parse_safetensors(const char* path) {
    Safetensors st;
    st_open(&st, path);
    for (int i = 0; i < st.n_tensors; i++) {
        float* x = (float*)mallocCheck(st.tensors[i].numel * sizeof(float));
        st_read_f32(&st, st.tensors[i].name, x, st.tensors[i].numel);
        free(x);
    }
    st_close(&st);
}

static void fuzz_parse_oracle(const char* path) {
    OracleFixture f;
    oracle_fixture_open(&f, path);
    oracle_fixture_free(&f);
}

// the sidecar is the mutant: open the fixture beside it
static void fuzz_parse_oracle_sidecar(const char* path) {
    (void)path;
    char st_path[128];
    fuzz_path(st_path, sizeof(st_path), "oracle.safetensors");
    fuzz_parse_oracle(st_path);
}

// ----------------------------------------------------------------------------
// valid seeds, written by the project's writers and read back as bytes

typedef struct FuzzTarget {
    const char* name;
    void (*parse)(const char* path);
    void (*make_seeds)(struct FuzzTarget* t);
    const char* file;     // the mutant's name in fuzz_dir (the oracle's sidecar must sit beside its fixture)
    const char* corpus;   // the libFuzzer target (test/fuzz.c) whose seed corpus test/corpus/<corpus>/ gets
    int corpus_seeds;     // bit s: seed s (small ones, and none naming a file in fuzz_dir)
    int binfile;          // a binfile: odd mutants get their size fields and checksum recomputed
    int n_dims;           // binfile: header dimensions the kind uses (boundary integers go there)
    int text;             // numbers in the text get boundary values, and separators are inserted
    int u64_length;       // safetensors: the first 8 bytes are a header length
    size_t focus;         // most mutations land in [0, focus): the structure, not the float payload (0: everywhere)
    int n_mutants;
    const char* beside;   // the file of a target whose first seed sits intact beside the mutants (the oracle's pair)
    Buffer seeds[FUZZ_MAX_SEEDS];
    int n_seeds;
} FuzzTarget;

static void fuzz_add_seed_bytes(FuzzTarget* t, const void* bytes, size_t n) {
    if (t->n_seeds == FUZZ_MAX_SEEDS) die("fuzz: %s has more than %d seeds", t->name, FUZZ_MAX_SEEDS);
    Buffer* b = &t->seeds[t->n_seeds++];
    *b = (Buffer){NULL, 0, 0};
    buffer_put(b, bytes, n);
}

// the file a writer just wrote at fuzz_dir/seed becomes a seed
static void fuzz_add_seed_file(FuzzTarget* t) {
    char path[128];
    fuzz_path(path, sizeof(path), "seed");
    size_t len = 0;
    char* bytes = read_file(path, &len);
    fuzz_add_seed_bytes(t, bytes, len);
    free(bytes);
    unlink(path);
}

static void fuzz_seeds_seqfile(FuzzTarget* t) {
    SeqData d;
    synth_generate(&d, 12, 30, 6, 7);
    char path[128];
    fuzz_path(path, sizeof(path), "seed");
    seqdata_write(&d, path);
    seqdata_free(&d);
    fuzz_add_seed_file(t);
    const char* crlf = "1 3 4 5\r\n2\t7  8 9 10\n\n  3 1 2 3\r4 5 6 7 8 9 10 11 12";  // tabs, blank line, lone CR, no final break
    fuzz_add_seed_bytes(t, crlf, strlen(crlf));
    const char* big = "7 16777216 5 1 2\n2147483647 2 3 4\n";  // the largest item id and user id
    fuzz_add_seed_bytes(t, big, strlen(big));
}

static void fuzz_seeds_ratings(FuzzTarget* t) {
    // 6 users x 6 items, one rating of each too low to keep: the 5-core filter leaves the rest
    Buffer b = {NULL, 0, 0};
    const char* header = "user,item,rating,timestamp\n";
    buffer_put(&b, header, strlen(header));
    char line[96];
    for (int u = 0; u < 6; u++) {
        for (int i = 0; i < 6; i++) {
            int n = snprintf(line, sizeof(line), "u%d,item%d,%s,%d%s", u, (i * 5 + u) % 6, i == u ? "2.5" : "4.5",
                             1000 + 37 * i - u, i == 5 && u == 5 ? "" : (u + i) % 4 == 0 ? "\r\n" : "\n");
            buffer_put(&b, line, (size_t)n);
        }
    }
    fuzz_add_seed_bytes(t, b.data, b.size);
    b.size = 0;
    for (int u = 1; u <= 5; u++) {  // MovieLens "::", no header, a tie on timestamps
        for (int i = 1; i <= 5; i++) {
            int n = snprintf(line, sizeof(line), "%d::%d::%d::%d\n", u, 10 * i, 4 + (u * i) % 2, 978300000 + (i % 3));
            buffer_put(&b, line, (size_t)n);
        }
    }
    fuzz_add_seed_bytes(t, b.data, b.size);
    free(b.data);
}

// a byte-level BPE of 266 tokens, learned here
static void fuzz_tokenizer(Tokenizer* t) {
    const char* corpus = "the user bought these items. predict the next item the user will buy. "
                         "the items the user bought: a b ab abc, then \xe2\x9c\x93 and \xc3\xa9.";
    tokenizer_train_bpe(t, corpus, strlen(corpus), TOK_BASE_VOCAB + 7);
}

static void fuzz_seeds_tokenizer(FuzzTarget* t) {
    Tokenizer tok;
    fuzz_tokenizer(&tok);
    char path[128];
    fuzz_path(path, sizeof(path), "seed");
    tokenizer_save(&tok, path);
    fuzz_add_seed_file(t);
    tok.add_dummy_prefix = 0;  // the other flag, and control ids swapped
    tok.bos_id = TOK_EOS;
    tok.eos_id = TOK_BOS;
    tokenizer_save(&tok, path);
    fuzz_add_seed_file(t);
    tokenizer_free(&tok);
}

// a llama2.c tokenizer: <unk> <s> </s>, the 256 bytes (raw or spelled <0xNN>), a few merges
static void fuzz_llama2c_tokenizer(Buffer* b, int spelled) {
    int32_t max_len = 6;
    buffer_put(b, &max_len, 4);
    const char* control[] = {"<unk>", "\n<s>\n", "\n</s>\n"};
    const char* merged[] = {"ab", " a", " ab", "abc", "bc", "\xe2\x9c\x93"};
    for (int id = 0; id < TOK_BASE_VOCAB + 6; id++) {
        char bytes[8];
        const char* str = bytes;
        if (id < TOK_BYTE_BASE) str = control[id];
        else if (id >= TOK_BASE_VOCAB) str = merged[id - TOK_BASE_VOCAB];
        else if (spelled) snprintf(bytes, sizeof(bytes), "<0x%02X>", id - TOK_BYTE_BASE);
        else bytes[0] = (char)(id - TOK_BYTE_BASE);
        int32_t len = str == bytes && !spelled ? 1 : (int32_t)strlen(str);
        float score = id < TOK_BASE_VOCAB ? 0.0f : -(float)(id - TOK_BASE_VOCAB);
        buffer_put(b, &score, 4);
        buffer_put(b, &len, 4);
        buffer_put(b, str, (size_t)len);
    }
}

static void fuzz_seeds_llama2c_tokenizer(FuzzTarget* t) {
    for (int spelled = 0; spelled < 2; spelled++) {
        Buffer b = {NULL, 0, 0};
        fuzz_llama2c_tokenizer(&b, spelled);
        fuzz_add_seed_bytes(t, b.data, b.size);
        free(b.data);
    }
}

static void fuzz_seeds_sasrec(FuzzTarget* t) {
    SASRecConfig configs[2] = {{.I = 12, .D = 8, .L = 2, .NH = 2, .T = 5, .dropout = 0.2f},
                               {.I = 3, .D = 4, .L = 1, .NH = 1, .T = 1, .dropout = 0.0f}};
    Rng rng;
    rng_seed(&rng, 1);
    char path[128];
    fuzz_path(path, sizeof(path), "seed");
    for (int i = 0; i < 2; i++) {
        SASRec m;
        sasrec_build(&m, &configs[i]);
        rng_fill_normal(&rng, m.params_memory, m.num_params, 0.5f);
        sasrec_save(path, &m, NULL, NULL);
        fuzz_add_seed_file(t);
        sasrec_free(&m);
    }
}

static void fuzz_seeds_e4srec(FuzzTarget* t) {
    Tokenizer tok;
    fuzz_tokenizer(&tok);
    E4SRecConfig c = {.V = tok.vocab_size, .C = 2, .F = 3, .L = 1, .NH = 1, .KVH = 1, .HS = 2, .D = 3, .I = 6,
                      .P1 = 3, .P2 = 2, .S = 4, .rms_eps = 1e-5f, .rope_theta = 10000.0f};  // small: a seed of the corpus too
    int instr[3] = {TOK_BOS, TOK_BASE_VOCAB + 1, 4}, resp[2] = {TOK_BASE_VOCAB + 2, 5};
    Rng rng;
    rng_seed(&rng, 2);
    float* table = (float*)mallocCheck((size_t)c.I * c.D * sizeof(float));
    float* adapters = (float*)mallocCheck((size_t)c.D * c.C * sizeof(float));
    rng_fill_normal(&rng, table, (size_t)c.I * c.D, 0.5f);
    rng_fill_normal(&rng, adapters, (size_t)c.D * c.C, 0.5f);
    E4SRec m;
    e4srec_build(&m, &c, table, instr, resp);
    rng_fill_normal(&rng, m.params_memory, m.num_params, 0.1f);
    char path[128];
    fuzz_path(path, sizeof(path), "seed");
    e4srec_save(path, &m, &tok, adapters, 1, NULL, NULL, NULL);
    fuzz_add_seed_file(t);
    // the same with LoRA adapters over a base of its shape, which stays in fuzz_dir
    // for the mutants (the path and its checksum are in the file)
    LlamaConfig bc = {.V = c.V, .C = c.C, .F = c.F, .L = 2, .NH = c.NH, .KVH = c.KVH, .HS = c.HS, .max_seq = 16,
                      .rms_eps = c.rms_eps, .rope_theta = c.rope_theta, .tied = 1};
    Llama base;
    llama_build(&base, &bc, "fuzz seed");
    rng_fill_normal(&rng, base.params_memory, base.num_params, 0.2f);
    char base_path[128];
    fuzz_path(base_path, sizeof(base_path), "lora_base.bin");
    llama_save(base_path, &base);
    llama_free(&base);
    e4srec_add_lora(&m, 2, 4.0f, LORA_ALL_TARGETS);
    lora_init(m.lora, &rng);
    snprintf(m.lora->base_path, sizeof(m.lora->base_path), "%s", base_path);
    m.lora->base_checksum = binfile_checksum(base_path);
    e4srec_save(path, &m, &tok, NULL, 0, NULL, NULL, NULL);
    fuzz_add_seed_file(t);
    e4srec_free(&m);
    free(table);
    free(adapters);
    tokenizer_free(&tok);
}

static void fuzz_seeds_student(FuzzTarget* t) {
    StudentConfig configs[3] = {
        {.kind = STUDENT_SASREC, .I = 9, .D = 6, .T = 5, .L = 1, .NH = 2, .dropout = 0.1f},
        {.kind = STUDENT_GRU4REC, .I = 9, .D = 4, .T = 3, .ed = 0.5f, .C = 3},
        {.kind = STUDENT_CASER, .I = 7, .D = 4, .T = 4, .NF = 2, .dropout = 0.2f},
    };
    Rng rng;
    rng_seed(&rng, 3);
    float e_T[9 * 3];
    rng_fill_normal(&rng, e_T, 9 * 3, 1.0f);
    char path[128];
    fuzz_path(path, sizeof(path), "seed");
    for (int i = 0; i < 3; i++) {
        Student s;
        student_build(&s, &configs[i], configs[i].ed > 0.0f ? e_T : NULL);
        rng_fill_normal(&rng, s.model_params, s.model_n, 0.5f);
        student_save(path, &s, NULL, NULL);
        fuzz_add_seed_file(t);
        student_free(&s);
    }
}

static void fuzz_seeds_llama(FuzzTarget* t) {
    Tokenizer tok;
    fuzz_tokenizer(&tok);
    LlamaConfig configs[2] = {
        {.V = tok.vocab_size, .C = 8, .F = 12, .L = 1, .NH = 2, .KVH = 1, .HS = 4, .max_seq = 16, .rms_eps = 1e-5f,
         .rope_theta = 10000.0f, .tied = 1},
        {.V = 8, .C = 2, .F = 3, .L = 2, .NH = 1, .KVH = 1, .HS = 2, .max_seq = 8, .rms_eps = 1e-6f, .rope_theta = 500.0f,
         .tied = 0},
    };
    Rng rng;
    rng_seed(&rng, 4);
    char path[128];
    fuzz_path(path, sizeof(path), "seed");
    for (int i = 0; i < 2; i++) {
        Llama m;
        llama_build(&m, &configs[i], "fuzz seed");
        rng_fill_normal(&rng, m.params_memory, m.num_params, 0.2f);
        if (i == 0) {  // the first carries its tokenizer
            tokenizer_copy(&m.tok, &tok);
            m.has_tok = 1;
        }
        llama_save(path, &m);
        fuzz_add_seed_file(t);
        llama_free(&m);
    }
    tokenizer_free(&tok);
}

// a safetensors file: the 8-byte header length, the JSON header, the data
static void fuzz_add_safetensors(FuzzTarget* t, const char* json, const void* data, size_t n) {
    Buffer b = {NULL, 0, 0};
    uint64_t hlen = strlen(json);
    buffer_put(&b, &hlen, 8);
    buffer_put(&b, json, hlen);
    buffer_put(&b, data, n);
    fuzz_add_seed_bytes(t, b.data, b.size);
    free(b.data);
}

static void fuzz_seeds_safetensors(FuzzTarget* t) {
    unsigned char data[64];
    for (int i = 0; i < 64; i++) data[i] = (unsigned char)(37 * i + 11);
    fuzz_add_safetensors(t,
        "{\"__metadata__\":{\"format\":\"pt\",\"nested\":[1,{\"x\":null}]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
        "\"c\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[32,48]},"
        "\"d\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[48,50]},"
        "\"e\":{\"dtype\":\"I32\",\"shape\":[0,5],\"data_offsets\":[50,50]}}", data, 50);
    fuzz_add_safetensors(t,
        "{ \"we\\\"ird\\\\name\" : { \"shape\" : [ 1 , 2 , 2 ] ,\n \"data_offsets\" : [ 0 , 16 ] , \"dtype\" : \"I32\" } ,\n"
        "  \"h\" : {\"dtype\": \"F16\", \"shape\": [8], \"data_offsets\": [16, 32], \"extra\": \"ignored\"} }    ", data, 32);
}

// the oracle fixture (2.5 MB) and its sidecar: mutants of the fixture go into its
// JSON header, mutants of the sidecar into the text; the other file stays intact
#define FUZZ_ORACLE "../shared/fixtures/slmrec_oracle"

static void fuzz_seeds_oracle_fixture(FuzzTarget* t) {
    if (access(FUZZ_ORACLE ".safetensors", R_OK) != 0 || access(FUZZ_ORACLE ".json", R_OK) != 0) return;
    size_t len = 0;
    char* bytes = read_file(FUZZ_ORACLE ".safetensors", &len);
    uint64_t hlen = 0;
    if (len >= 8) memcpy(&hlen, bytes, 8);
    t->focus = len >= 8 && hlen < len - 8 ? (size_t)hlen + 8 : len;
    fuzz_add_seed_bytes(t, bytes, len);
    free(bytes);
}

static void fuzz_seeds_oracle_sidecar(FuzzTarget* t) {
    if (access(FUZZ_ORACLE ".safetensors", R_OK) != 0 || access(FUZZ_ORACLE ".json", R_OK) != 0) return;
    size_t len = 0;
    char* bytes = read_file(FUZZ_ORACLE ".json", &len);
    fuzz_add_seed_bytes(t, bytes, len);
    free(bytes);
}

// ----------------------------------------------------------------------------
// mutations

static const int32_t fuzz_ints[] = {
    0, 1, -1, 2, -2, 3, 7, 255, 256, 4096, 4097, 65535, 65536, 1 << 20, (1 << 20) + 1, 1 << 24, (1 << 24) + 1, 1 << 30,
    INT32_MAX, INT32_MAX - 1, INT32_MIN, INT32_MIN + 1,
    0x7fc00000, 0x7f800000, (int32_t)0xff800000u, 0x00000001, 0x7f7fffff,  // float bits: NaN, inf, -inf, denormal, FLT_MAX
};
static const uint64_t fuzz_u64s[] = {0, 1, 2, 7, 8, 1u << 31, 1ull << 32, (1ull << 32) + 2, 1ull << 63, UINT64_MAX, UINT64_MAX - 7};
static const char* const fuzz_numbers[] = {
    "0", "-1", "1", "-0", "+3", "00", "2147483647", "2147483648", "-2147483648", "4294967296", "16777216", "16777217",
    "99999999999999999999999999", "1e308", "1e-400", "nan", "inf", "0x10", "1.5", "", "9223372036854775807",
    "18446744073709551616",
};
static const char* const fuzz_tokens[] = {
    "\n", "\r", "\r\n", "\t", " ", "\0", ",", "::", ":", "-", "\"", "\\", "{", "}", "[", "]", "\xff", "\xc3", ",,,,", "\"\"",
    "{\"k\":", "[[[[", "\n\n\n",
};

#define FUZZ_N(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct {
    char text[512];
    size_t len;
} FuzzWhat;  // the mutations of one mutant, in words

static void fuzz_say(FuzzWhat* w, const char* fmt, ...) {
    if (w->len >= sizeof(w->text) - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->text + w->len, sizeof(w->text) - w->len, fmt, ap);
    va_end(ap);
    if (n > 0) w->len = min_int((int)(w->len + (size_t)n), (int)sizeof(w->text) - 1);
}

// a position in b: in the focus most of the time
static size_t fuzz_pos(const Buffer* b, const FuzzTarget* t, Rng* r) {
    size_t span = t->focus && t->focus < b->size && rng_int(r, 4) != 0 ? t->focus : b->size;
    return span ? (size_t)((uint64_t)rng_u32(r) * span >> 32) : 0;
}

// replaces b[at, at + n) with src[0, m)
static void fuzz_splice(Buffer* b, size_t at, size_t n, const void* src, size_t m) {
    Buffer out = {NULL, 0, 0};
    buffer_put(&out, b->data, at);
    buffer_put(&out, src, m);
    buffer_put(&out, b->data + at + n, b->size - at - n);
    free(b->data);
    *b = out;
}

static size_t fuzz_next_digit(const Buffer* b, size_t from) {
    while (from < b->size && !isdigit((unsigned char)b->data[from])) from++;
    return from;
}

static void fuzz_mutate(Buffer* b, const FuzzTarget* t, Rng* r, FuzzWhat* w) {
    enum { FLIP, RANDOM, CUT, DUP, DELETE, INT, NUMBER, TOKEN, N_KINDS };
    int kind;
    do kind = rng_int(r, N_KINDS + 2); while ((kind == NUMBER || kind == TOKEN) && !t->text);
    if (kind >= N_KINDS) kind = t->text ? NUMBER + rng_int(r, 2) : INT;  // the structured ones, twice as often
    if (b->size == 0 && kind != DUP && kind != TOKEN) kind = TOKEN;
    size_t at = fuzz_pos(b, t, r);
    if (kind == FLIP && b->size) {
        int bit = rng_int(r, 8);
        b->data[at] ^= (char)(1 << bit);
        fuzz_say(w, "flip bit %d of byte %zu; ", bit, at);
    } else if (kind == RANDOM && b->size) {
        int n = 1 + rng_int(r, 8);
        for (int i = 0; i < n && at + i < b->size; i++) b->data[at + i] = (char)rng_u32(r);
        fuzz_say(w, "%d random bytes at %zu; ", n, at);
    } else if (kind == CUT) {
        b->size = at;
        fuzz_say(w, "cut to %zu bytes; ", at);
    } else if (kind == DUP) {
        size_t from = fuzz_pos(b, t, r), n = 1 + (size_t)rng_int(r, rng_int(r, 2) ? 16 : 512);
        if (from + n > b->size) n = b->size - from;
        char* chunk = (char*)mallocCheck(n);
        if (n) memcpy(chunk, b->data + from, n);
        fuzz_splice(b, at, 0, chunk, n);
        free(chunk);
        fuzz_say(w, "copy %zu bytes from %zu to %zu; ", n, from, at);
    } else if (kind == DELETE) {
        size_t n = 1 + (size_t)rng_int(r, rng_int(r, 2) ? 16 : 512);
        if (at + n > b->size) n = b->size - at;
        fuzz_splice(b, at, n, NULL, 0);
        fuzz_say(w, "delete %zu bytes at %zu; ", n, at);
    } else if (kind == INT && t->u64_length && rng_int(r, 2)) {
        uint64_t v = fuzz_u64s[rng_int(r, FUZZ_N(fuzz_u64s))];
        if (b->size >= 8) memcpy(b->data, &v, 8);
        fuzz_say(w, "header length %llu; ", (unsigned long long)v);
    } else if (kind == INT) {
        int32_t v = fuzz_ints[rng_int(r, FUZZ_N(fuzz_ints))];
        if (t->binfile && t->n_dims && rng_int(r, 3) != 0) at = (6 + (size_t)rng_int(r, t->n_dims)) * sizeof(int32_t);  // a header dim
        else if (t->binfile && b->size > HEADER_INTS * sizeof(int32_t) + 4) {  // a payload int, often one of the first
            int payload_ints = (int)((b->size - HEADER_INTS * sizeof(int32_t)) / 4);
            at = (HEADER_INTS + (size_t)rng_int(r, min_int(payload_ints, rng_int(r, 2) ? 64 : payload_ints))) * sizeof(int32_t);
        }
        if (at + 4 <= b->size) memcpy(b->data + at, &v, 4);
        fuzz_say(w, "int %d at %zu; ", v, at);
    } else if (kind == NUMBER) {
        // the digit run at or after at (else the first one), replaced
        size_t s = fuzz_next_digit(b, at);
        if (s == b->size) s = fuzz_next_digit(b, 0);
        size_t e = s;
        while (e < b->size && isdigit((unsigned char)b->data[e])) e++;
        const char* v = fuzz_numbers[rng_int(r, FUZZ_N(fuzz_numbers))];
        fuzz_splice(b, s, e - s, v, strlen(v));
        fuzz_say(w, "number '%s' at %zu; ", v, s);
    } else {  // TOKEN
        int i = rng_int(r, FUZZ_N(fuzz_tokens));
        size_t n = fuzz_tokens[i][0] ? strlen(fuzz_tokens[i]) : 1;  // "\0" inserts one NUL byte
        if (at > b->size) at = b->size;
        fuzz_splice(b, at, 0, fuzz_tokens[i], n);
        char shown[ECHO_CAP];
        fuzz_say(w, "insert '%s' at %zu; ", echo_input(fuzz_tokens[i], n, shown), at);
    }
}

// the size fields and checksum a writer would have put there, so that the mutant
// reaches the dimension checks and the payload instead of failing the checksum
static void fuzz_reseal(Buffer* b) {
    if (b->size < HEADER_INTS * sizeof(int32_t)) return;
    uint64_t payload = b->size - HEADER_INTS * sizeof(int32_t);
    uint32_t lo = (uint32_t)payload, hi = (uint32_t)(payload >> 32);
    memcpy(b->data + 3 * sizeof(int32_t), &lo, 4);
    memcpy(b->data + 4 * sizeof(int32_t), &hi, 4);
    binfile_reseal(b->data, b->size);
}

// ----------------------------------------------------------------------------
// running one mutant

typedef enum { FUZZ_ACCEPTED, FUZZ_REFUSED, FUZZ_FAILED } FuzzOutcome;

static void fuzz_write(const char* path, const Buffer* b) {
    FILE* f = fopenCheck(path, "wb");
    if (b->size) fwriteCheck(b->data, 1, b->size, f);
    fcloseCheck(f);
}

// parses path in a child with stderr in err_fd; *alloc_refused is set when the refusal
// was a failed allocation (the child's address space is capped: see FUZZ_CHILD_MEMORY)
static FuzzOutcome fuzz_run(const FuzzTarget* t, const char* path, int err_fd, char* why, size_t cap, int* alloc_refused) {
    if (ftruncate(err_fd, 0) != 0 || lseek(err_fd, 0, SEEK_SET) != 0) die("fuzz: cannot reset the stderr file");
    fflush(stdout); fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) die("fuzz: fork failed: %s", strerror(errno));
    if (pid == 0) {
#ifdef _OPENMP
        omp_set_num_threads(1);  // the parent's OpenMP workers do not exist in a forked child
#endif
        dup2(err_fd, 2);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        alarm(FUZZ_CHILD_SECONDS);
        // statm's first field: the address space in pages; under ASan mostly reserved shadow
        FILE* statm = fopen("/proc/self/statm", "r");
        unsigned long long pages = 0;
        if (statm && fscanf(statm, "%llu", &pages) == 1) {
            struct rlimit lim;
            lim.rlim_cur = lim.rlim_max = (rlim_t)(pages * (unsigned long long)sysconf(_SC_PAGESIZE) + FUZZ_CHILD_MEMORY);
            setrlimit(RLIMIT_AS, &lim);
        }
        if (statm) fclose(statm);
        t->parse(path);
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    char err[2048];
    ssize_t n = pread(err_fd, err, sizeof(err) - 1, 0);
    err[n > 0 ? n : 0] = 0;
    int sanitizer = strstr(err, "Sanitizer") != NULL || strstr(err, "runtime error:") != NULL;
    int said_error = strncmp(err, "error: ", 7) == 0 || strstr(err, "\nerror: ") != NULL;
    *alloc_refused = strstr(err, "malloc of") != NULL || strstr(err, "calloc of") != NULL || strstr(err, "out of memory") != NULL;
    FuzzOutcome o = FUZZ_FAILED;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && !sanitizer) o = FUZZ_ACCEPTED;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 1 && said_error && !sanitizer) o = FUZZ_REFUSED;
    if (sanitizer) {  // the sanitizer's own line says what it found
        char* s = strstr(err, "ERROR: ");
        if (s == NULL) s = strstr(err, "runtime error:");
        if (s) memmove(err, s, strlen(s) + 1);
    }
    char* line_end = strchr(err, '\n');
    if (line_end) *line_end = 0;
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        snprintf(why, cap, "killed by signal %d (%s)%s: %.600s", sig, strsignal(sig), sig == SIGALRM ? ", over the time limit" : "", err);
    } else {
        snprintf(why, cap, "exit %d: %.600s", WEXITSTATUS(status), err[0] ? err : "(nothing on stderr)");
    }
    return o;
}

// t's mutants, one CHECK for all of them
static void fuzz_target(FuzzTarget* t, const Buffer* beside, uint64_t seed, int err_fd) {
    Rng r;
    rng_seed(&r, seed);
    char path[128];
    if (beside) {
        fuzz_path(path, sizeof(path), t->beside);
        fuzz_write(path, beside);
    }
    fuzz_path(path, sizeof(path), t->file);
    int bad_seeds = 0;
    for (int s = 0; s < t->n_seeds; s++) {  // mutants of a refused seed would test only the refusal
        char why[1024];
        int alloc = 0;
        fuzz_write(path, &t->seeds[s]);
        fuzz_variant = 1;
        fuzz_seed = s;
        if (fuzz_run(t, path, err_fd, why, sizeof(why), &alloc) != FUZZ_ACCEPTED) {
            bad_seeds++;
            printf("  fuzz: %s: seed %d is not accepted: %s\n", t->name, s, why);
        }
    }
    int counts[3] = {0, 0, 0}, alloc_refusals = 0;
    Buffer b = {NULL, 0, 0};
    int n_mutants = t->n_mutants / FUZZ_SHARE;
    for (int k = 0; k < n_mutants; k++) {
        int s = k % t->n_seeds;
        b.size = 0;
        buffer_put(&b, t->seeds[s].data, t->seeds[s].size);
        FuzzWhat what = {.len = 0};
        fuzz_say(&what, "seed %d: ", s);
        for (int m = 0, n = 1 + rng_int(&r, 3); m < n; m++) fuzz_mutate(&b, t, &r, &what);
        if (t->binfile && k % 2 == 1) {
            fuzz_reseal(&b);
            fuzz_say(&what, "resealed");
        }
        fuzz_write(path, &b);
        fuzz_variant = k;
        fuzz_seed = s;
        char why[1024];
        int alloc = 0;
        FuzzOutcome o = fuzz_run(t, path, err_fd, why, sizeof(why), &alloc);
        counts[o]++;
        alloc_refusals += o == FUZZ_REFUSED && alloc;
        if (o == FUZZ_FAILED && counts[FUZZ_FAILED] <= FUZZ_SHOWN_FAILURES) {
            char keep[128];  // the mutant itself, to reproduce
            snprintf(keep, sizeof(keep), "/tmp/slmrec_fuzz_%s_%d", t->file, k);
            fuzz_write(keep, &b);
            printf("  fuzz: %s: mutant %d (%s) %s\n    kept in %s\n", t->name, k, what.text, why, keep);
        }
    }
    free(b.data);
    unlink(path);
    printf("  fuzz: %s: %d mutants, %d accepted, %d refused\n", t->name, n_mutants, counts[FUZZ_ACCEPTED], counts[FUZZ_REFUSED]);
    if (alloc_refusals) {
        printf("    (%d of the refusals were allocations over the %d MiB a child may add: dimensions not checked against the file size)\n",
               alloc_refusals, FUZZ_CHILD_MEMORY >> 20);
    }
    CHECK(counts[FUZZ_FAILED] == 0 && bad_seeds == 0, "fuzz: %s: %d of %d mutants crashed or exited uncleanly, %d seeds refused (above)",
          t->name, counts[FUZZ_FAILED], n_mutants, bad_seeds);
}

// removes everything in fuzz_dir, then the directory
static void fuzz_remove_dir(void) {
    DIR* d = opendir(fuzz_dir);
    if (d == NULL) return;
    for (struct dirent* e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", fuzz_dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(fuzz_dir);
}

// binfiles: mutations focus on the header and the payload's first ints (the float tensors after matter less)
#define FUZZ_HEAD (HEADER_INTS * sizeof(int32_t) + 64)

static FuzzTarget fuzz_targets[] = {
    {.name = "sequence file (seqdata_load)", .parse = fuzz_parse_seqfile, .make_seeds = fuzz_seeds_seqfile,
     .file = "seq.txt", .corpus = "seqfile", .corpus_seeds = 7, .text = 1, .n_mutants = 300},
    {.name = "ratings CSV (prep_ratings)", .parse = fuzz_parse_ratings, .make_seeds = fuzz_seeds_ratings,
     .file = "ratings.csv", .corpus = "ratings", .corpus_seeds = 3, .text = 1, .n_mutants = 300},
    {.name = "tokenizer (tokenizer_load)", .parse = fuzz_parse_tokenizer, .make_seeds = fuzz_seeds_tokenizer,
     .file = "tok.bin", .corpus = "tokenizer", .corpus_seeds = 1, .binfile = 1, .n_dims = TOK_DIMS, .focus = FUZZ_HEAD, .n_mutants = 300},
    {.name = "llama2.c tokenizer (tokenizer_load_llama2c)", .parse = fuzz_parse_llama2c_tokenizer,
     .make_seeds = fuzz_seeds_llama2c_tokenizer, .file = "tok512.bin", .corpus = "tokenizer", .corpus_seeds = 1, .n_mutants = 300},
    {.name = "SASRec checkpoint (sasrec_load)", .parse = fuzz_parse_sasrec, .make_seeds = fuzz_seeds_sasrec,
     .file = "sasrec.bin", .corpus = "checkpoint", .corpus_seeds = 2, .binfile = 1, .n_dims = SASREC_DIMS, .focus = FUZZ_HEAD, .n_mutants = 300},
    {.name = "E4SRec checkpoint (e4srec_load)", .parse = fuzz_parse_e4srec, .make_seeds = fuzz_seeds_e4srec,
     .file = "e4srec.bin", .corpus = "checkpoint", .corpus_seeds = 1, .binfile = 1, .n_dims = E4SREC_DIMS, .focus = FUZZ_HEAD, .n_mutants = 300},
    {.name = "student checkpoint (student_load)", .parse = fuzz_parse_student, .make_seeds = fuzz_seeds_student,
     .file = "student.bin", .corpus = "checkpoint", .corpus_seeds = 2, .binfile = 1, .n_dims = STUDENT_DIMS, .focus = FUZZ_HEAD, .n_mutants = 300},
    {.name = "LLaMA base (llama_load)", .parse = fuzz_parse_llama, .make_seeds = fuzz_seeds_llama,
     .file = "llama.bin", .corpus = "checkpoint", .corpus_seeds = 2, .binfile = 1, .n_dims = LLAMA_DIMS, .focus = FUZZ_HEAD, .n_mutants = 300},
    {.name = "safetensors (st_open)", .parse = fuzz_parse_safetensors, .make_seeds = fuzz_seeds_safetensors,
     .file = "tiny.safetensors", .corpus = "safetensors", .corpus_seeds = 3, .text = 1, .u64_length = 1, .n_mutants = 300},
    // the fixture's focus (its JSON header) is set with its seed
    {.name = "oracle fixture header (oracle_fixture_open)", .parse = fuzz_parse_oracle, .make_seeds = fuzz_seeds_oracle_fixture,
     .file = "oracle.safetensors", .beside = "oracle.json", .text = 1, .u64_length = 1, .n_mutants = 60},
    {.name = "oracle fixture sidecar (oracle_fixture_open)", .parse = fuzz_parse_oracle_sidecar,
     .make_seeds = fuzz_seeds_oracle_sidecar, .file = "oracle.json", .beside = "oracle.safetensors", .text = 1, .n_mutants = 60},
};

// fuzz_dir, created
static void fuzz_make_dir(const char* parent) {
    snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/slmrec_fuzz_XXXXXX", parent);
    if (mkdtemp(fuzz_dir) == NULL) die("fuzz: cannot create a directory in '%s': %s", parent, strerror(errno));
}

static void fuzz_make_seeds(void) {
    for (int i = 0; i < FUZZ_N(fuzz_targets); i++) fuzz_targets[i].make_seeds(&fuzz_targets[i]);
}

static void fuzz_free_seeds(void) {
    for (int i = 0; i < FUZZ_N(fuzz_targets); i++) {
        for (int s = 0; s < fuzz_targets[i].n_seeds; s++) free(fuzz_targets[i].seeds[s].data);
        fuzz_targets[i].n_seeds = 0;
    }
}

static void run_fuzz_tests(void) {
    fuzz_make_dir(access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");  // tmpfs: the writers' fsyncs cost nothing
    char err_path[128];
    fuzz_path(err_path, sizeof(err_path), "stderr");
    int err_fd = open(err_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (err_fd < 0) die("fuzz: cannot create '%s': %s", err_path, strerror(errno));
    fuzz_make_seeds();
    for (int i = 0; i < FUZZ_N(fuzz_targets); i++) {
        FuzzTarget* t = &fuzz_targets[i];
        if (t->n_seeds == 0) { skip(t->name, FUZZ_ORACLE ".safetensors or .json not found"); continue; }
        const Buffer* beside = NULL;
        for (int j = 0; j < FUZZ_N(fuzz_targets) && t->beside; j++) {
            if (strcmp(fuzz_targets[j].file, t->beside) == 0) beside = &fuzz_targets[j].seeds[0];
        }
        fuzz_target(t, beside, FUZZ_SEED + (uint64_t)i, err_fd);
    }
    fuzz_free_seeds();
    close(err_fd);
    fuzz_remove_dir();
}
