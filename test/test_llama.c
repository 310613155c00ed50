// test_llama.c: pretrained LLaMA models. llama2.c import against a reference
// forward written here in llama2.c's own layout (adjacent-pair RoPE), the golden
// texts of llama2.c's `run`, the KV cache against full recomputes, the HF import
// against the HF oracle's hidden states, dtypes, shards, and every refusal.

#define TEST_STORIES_MODEL "../shared/pretrained/stories260K.bin"
#define TEST_STORIES_TOK "../shared/pretrained/tok512.bin"
#define TEST_ORACLE_FIXTURE "../shared/fixtures/slmrec_oracle.safetensors"

// ----------------------------------------------------------------------------
// a random llama2.c checkpoint and, independently of the importer, its forward pass

typedef struct {
    int C, F, L, NH, KVH, V, seq;
    int shared;
    float* file;  // the tensors after the 7 ints, in llama2.c's order
    size_t n;
} TestL2C;

static void test_l2c_make(TestL2C* m, Rng* rng, int shared) {
    *m = (TestL2C){.C = 16, .F = 24, .L = 2, .NH = 4, .KVH = 2, .V = 265, .seq = 32, .shared = shared};
    int HS = m->C / m->NH, KV = m->KVH * HS;
    m->n = (size_t)m->V * m->C + m->L * (2 * m->C + 2 * m->C * m->C + 2 * KV * m->C + 3 * m->F * m->C) + m->C +
           (size_t)m->seq * HS + (shared ? 0 : (size_t)m->V * m->C);
    m->file = (float*)mallocCheck(m->n * sizeof(float));
    rng_fill_normal(rng, m->file, m->n, 0.3f);
}

// the 265-token llama2.c vocabulary of test_tokenizer.c, in a temp file
static void test_l2c_write_tokenizer(char* path) {
    Buffer b = {NULL, 0, 0};
    test_tok_llama2c_blob(&b);
    write_temp(path, b.data, b.size);
    free(b.data);
}

static void test_l2c_write(const TestL2C* m, char* path, size_t drop_bytes) {
    Buffer b = {NULL, 0, 0};
    int32_t h[7] = {m->C, m->F, m->L, m->NH, m->KVH, m->shared ? m->V : -m->V, m->seq};
    buffer_put(&b, h, sizeof(h));
    buffer_put(&b, m->file, m->n * sizeof(float));
    write_temp(path, b.data, b.size - drop_bytes);
    free(b.data);
}

static void test_ref_rmsnorm(float* out, const float* x, const float* w, int C) {
    float ss = 0.0f;
    for (int i = 0; i < C; i++) ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / C + 1e-5f);
    for (int i = 0; i < C; i++) out[i] = x[i] * r * w[i];
}

static void test_ref_matvec(float* out, const float* x, const float* w, int in, int outn) {
    for (int o = 0; o < outn; o++) {
        double s = 0.0;
        for (int i = 0; i < in; i++) s += (double)w[(size_t)o * in + i] * x[i];
        out[o] = (float)s;
    }
}

// logits after tokens[0..n), token by token as llama2.c's forward(), adjacent-pair RoPE
static void test_l2c_forward(const TestL2C* m, const int* tokens, int n, float* logits) {
    int C = m->C, F = m->F, L = m->L, HS = C / m->NH, KV = m->KVH * HS, group = m->NH / m->KVH;
    const float* p = m->file;
    const float *emb = p, *rms_att = emb + (size_t)m->V * C, *wq = rms_att + L * C, *wk = wq + (size_t)L * C * C;
    const float *wv = wk + (size_t)L * KV * C, *wo = wv + (size_t)L * KV * C, *rms_ffn = wo + (size_t)L * C * C;
    const float *w1 = rms_ffn + L * C, *w2 = w1 + (size_t)L * F * C, *w3 = w2 + (size_t)L * C * F;
    const float* rms_final = w3 + (size_t)L * F * C;
    const float* cls = m->shared ? emb : rms_final + C + (size_t)m->seq * HS;
    float *kc = (float*)callocCheck((size_t)L * n * KV, 4), *vc = (float*)callocCheck((size_t)L * n * KV, 4);
    float x[64], xb[64], q[64], k[64], v[64], att[64], h1[64], h3[64], y[64], sc[64];
    for (int pos = 0; pos < n; pos++) {
        memcpy(x, emb + (size_t)tokens[pos] * C, C * sizeof(float));
        for (int l = 0; l < L; l++) {
            test_ref_rmsnorm(xb, x, rms_att + l * C, C);
            test_ref_matvec(q, xb, wq + (size_t)l * C * C, C, C);
            test_ref_matvec(k, xb, wk + (size_t)l * KV * C, C, KV);
            test_ref_matvec(v, xb, wv + (size_t)l * KV * C, C, KV);
            for (int i = 0; i < C; i += 2) {  // llama2.c: pairs (i, i+1), frequency of i % HS
                float f = 1.0f / powf(10000.0f, (float)(i % HS) / (float)HS), a = pos * f, cs = cosf(a), sn = sinf(a);
                float q0 = q[i], q1 = q[i + 1];
                q[i] = q0 * cs - q1 * sn; q[i + 1] = q0 * sn + q1 * cs;
                if (i < KV) { float k0 = k[i], k1 = k[i + 1]; k[i] = k0 * cs - k1 * sn; k[i + 1] = k0 * sn + k1 * cs; }
            }
            memcpy(kc + ((size_t)l * n + pos) * KV, k, KV * sizeof(float));
            memcpy(vc + ((size_t)l * n + pos) * KV, v, KV * sizeof(float));
            for (int h = 0; h < m->NH; h++) {
                int kvo = (h / group) * HS;
                float mx = -INFINITY, sum = 0.0f;
                for (int t = 0; t <= pos; t++) {
                    float s = 0.0f;
                    for (int i = 0; i < HS; i++) s += q[h * HS + i] * kc[((size_t)l * n + t) * KV + kvo + i];
                    sc[t] = s / sqrtf((float)HS);
                    mx = fmaxf(mx, sc[t]);
                }
                for (int t = 0; t <= pos; t++) { sc[t] = expf(sc[t] - mx); sum += sc[t]; }
                for (int i = 0; i < HS; i++) {
                    float o = 0.0f;
                    for (int t = 0; t <= pos; t++) o += sc[t] / sum * vc[((size_t)l * n + t) * KV + kvo + i];
                    att[h * HS + i] = o;
                }
            }
            test_ref_matvec(y, att, wo + (size_t)l * C * C, C, C);
            for (int i = 0; i < C; i++) x[i] += y[i];
            test_ref_rmsnorm(xb, x, rms_ffn + l * C, C);
            test_ref_matvec(h1, xb, w1 + (size_t)l * F * C, C, F);
            test_ref_matvec(h3, xb, w3 + (size_t)l * F * C, C, F);
            for (int i = 0; i < F; i++) h1[i] = h1[i] / (1.0f + expf(-h1[i])) * h3[i];
            test_ref_matvec(y, h1, w2 + (size_t)l * C * F, F, C);
            for (int i = 0; i < C; i++) x[i] += y[i];
        }
    }
    test_ref_rmsnorm(xb, x, rms_final, C);
    test_ref_matvec(logits, xb, cls, C, m->V);
    free(kc);
    free(vc);
}

static void test_llama_import_llama2c(Rng* rng) {
    char tok[] = "/tmp/slmrec_l2c_tok_XXXXXX";
    test_l2c_write_tokenizer(tok);
    int tokens[20];
    for (int i = 0; i < 20; i++) tokens[i] = rng_int(rng, 265);
    for (int shared = 0; shared <= 1; shared++) {
        TestL2C m;
        test_l2c_make(&m, rng, shared);
        char path[] = "/tmp/slmrec_l2c_XXXXXX";
        test_l2c_write(&m, path, 0);
        Llama base;
        llama_import_llama2c(&base, path, tok);
        CHECK(base.cfg.tied == shared && base.cfg.HS == 4 && base.cfg.KVH == 2 && base.has_tok,
              "llama2c import: tied %d HS %d KVH %d", base.cfg.tied, base.cfg.HS, base.cfg.KVH);
        float ref[265];
        test_l2c_forward(&m, tokens, 20, ref);
        // the KV cache: the whole sequence at once, token by token, and in two chunks
        LlamaState s;
        llama_state_build(&s, &base.cfg, 20, 20);
        llama_forward(&base, &s, tokens, 20, 0);
        float full[265], stepwise[265];
        memcpy(full, s.logits, sizeof(full));
        for (int i = 0; i < 20; i++) llama_forward(&base, &s, tokens + i, 1, i);
        memcpy(stepwise, s.logits, sizeof(stepwise));
        llama_forward(&base, &s, tokens, 7, 0);
        llama_forward(&base, &s, tokens + 7, 13, 7);
        const char* what = shared ? "llama2c import (shared classifier)" : "llama2c import (separate classifier)";
        char name[128];
        snprintf(name, sizeof(name), "%s: logits vs llama2.c-layout reference", what);
        check_close(name, full, ref, 265, 1e-4f, 1e-4f);
        snprintf(name, sizeof(name), "%s: KV cache token by token vs one pass", what);
        check_close(name, stepwise, full, 265, 1e-5f, 1e-5f);
        snprintf(name, sizeof(name), "%s: KV cache in two chunks vs one pass", what);
        check_close(name, s.logits, full, 265, 1e-5f, 1e-5f);
        llama_state_free(&s);
        // the base checkpoint round trip
        char saved[] = "/tmp/slmrec_base_XXXXXX";
        write_temp(saved, "", 0);
        llama_save(saved, &base);
        Llama back;
        llama_load(&back, saved);
        CHECK(memcmp(&back.cfg, &base.cfg, sizeof(LlamaConfig)) == 0 && back.num_params == base.num_params &&
              memcmp(back.params_memory, base.params_memory, base.num_params * sizeof(float)) == 0 &&
              back.tok.vocab_size == 265, "%s: the base checkpoint does not read back as written", what);
        llama_free(&back);
        llama_free(&base);
        unlink(saved);
        unlink(path);
        free(m.file);
    }
    unlink(tok);
}

// ----------------------------------------------------------------------------
// llama2.c's golden texts

typedef struct {
    const Llama* m;
    const char* prompt;
    int steps;
} TestGenerate;

static void test_generate_die(void* arg) {
    const TestGenerate* g = (const TestGenerate*)arg;
    llama_generate(g->m, g->prompt, g->steps, 0.0f, 0.9f, 1, stdout);
}

static void test_llama_golden(void) {
    if (access(TEST_STORIES_MODEL, R_OK) != 0) {
        skip("stories260K golden text", TEST_STORIES_MODEL " not found (tests run from the repo root with ../shared present)");
        return;
    }
    Llama m;
    llama_import_llama2c(&m, TEST_STORIES_MODEL, TEST_STORIES_TOK);
    struct { const char* golden; const char* prompt; int steps; } cases[] = {
        {"../shared/pretrained/stories260K_greedy_256.txt", "", 256},
        {"../shared/pretrained/stories260K_greedy_prompt.txt", "Lily bought a red ball", 64},
    };
    for (int i = 0; i < 2; i++) {
        char path[] = "/tmp/slmrec_gen_XXXXXX";
        write_temp(path, "", 0);
        FILE* f = fopenCheck(path, "wb");
        llama_generate(&m, cases[i].prompt, cases[i].steps, 0.0f, 0.9f, 1, f);
        fcloseCheck(f);
        size_t got_len = 0, want_len = 0;
        char* got = read_file(path, &got_len);
        char* want = read_file(cases[i].golden, &want_len);
        int same = got_len == want_len && memcmp(got, want, got_len) == 0;
        CHECK(same, "generate: %s differs (%zu bytes, golden %zu)", cases[i].golden, got_len, want_len);
        if (same) printf("  golden: %s reproduced byte for byte (%zu bytes)\n", strrchr(cases[i].golden, '/') + 1, got_len);
        free(got);
        free(want);
        unlink(path);
    }
    // sampling: a seed gives one text, and temperature > 0 leaves the greedy path
    char* texts[3];
    float temps[3] = {1.0f, 1.0f, 1.0f};
    int seeds[3] = {7, 7, 8};
    for (int i = 0; i < 3; i++) {
        char path[] = "/tmp/slmrec_gen_XXXXXX";
        write_temp(path, "", 0);
        FILE* f = fopenCheck(path, "wb");
        llama_generate(&m, "Tom", 48, temps[i], 0.9f, (uint64_t)seeds[i], f);
        fcloseCheck(f);
        texts[i] = read_file(path, NULL);
        unlink(path);
    }
    CHECK(strcmp(texts[0], texts[1]) == 0 && strcmp(texts[0], texts[2]) != 0 && strncmp(texts[0], "Tom", 3) == 0,
          "generate: sampling with one seed should repeat and another differ: '%s' / '%s'", texts[0], texts[2]);
    for (int i = 0; i < 3; i++) free(texts[i]);

    // a prompt longer than --steps allows is refused: by its byte length before
    // it is encoded (32 KB needs at least 4,683 tokens of at most 7 bytes), and
    // else by its token count (300 bytes 0xFF, no UTF-8: 302 tokens, bound 44)
    char* prompt = (char*)mallocCheck(32768 + 1);
    for (int n = 0; n < 32768; n++) prompt[n] = test_tok_corpus[n % strlen(test_tok_corpus)];
    prompt[32768] = 0;
    TestGenerate g = {&m, prompt, 256};
    check_dies("generate: a 32 KB prompt with --steps 256", test_generate_die, &g, "32768 bytes, at least 4683 tokens");
    memset(prompt, 0xFF, 300);
    prompt[300] = 0;
    check_dies("generate: 300 byte tokens with --steps 256", test_generate_die, &g, "302 tokens, more than --steps 256");
    free(prompt);
    llama_free(&m);
}

// ----------------------------------------------------------------------------
// Hugging Face directories, written here from the HF oracle's teacher

typedef struct {
    char name[256];
    const float* data;
    size_t rows, cols;     // cols 0: a vector
    const char* bytes_of;  // NULL, or the tensor of this shard whose bytes this entry names instead of its own
} TestHfTensor;

static void test_put_converted(Buffer* b, const float* x, size_t n, StDtype dtype) {
    for (size_t i = 0; i < n; i++) {
        if (dtype == ST_F32) { buffer_put(b, &x[i], 4); continue; }
        uint16_t h;
        if (dtype == ST_F16) {
            _Float16 v = (_Float16)x[i];
            memcpy(&h, &v, 2);
        } else {  // bf16, round to nearest even
            uint32_t bits;
            memcpy(&bits, &x[i], 4);
            h = (uint16_t)((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
        }
        buffer_put(b, &h, 2);
    }
}

static void test_write_safetensors(const char* path, const TestHfTensor* t, int n, StDtype dtype) {
    const char* dname = dtype == ST_F32 ? "F32" : dtype == ST_F16 ? "F16" : "BF16";
    Buffer header = {NULL, 0, 0}, data = {NULL, 0, 0};
    size_t begin[128], end[128];
    for (int i = 0; i < n; i++) {
        if (t[i].bytes_of) continue;
        begin[i] = data.size;
        test_put_converted(&data, t[i].data, t[i].rows * (t[i].cols ? t[i].cols : 1), dtype);
        end[i] = data.size;
    }
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n && t[i].bytes_of; j++) {
            if (!t[j].bytes_of && strcmp(t[j].name, t[i].bytes_of) == 0) { begin[i] = begin[j]; end[i] = end[j]; }
        }
    }
    char entry[512];
    buffer_put(&header, "{", 1);
    for (int i = 0; i < n; i++) {
        char shape[64];
        if (t[i].cols) snprintf(shape, sizeof(shape), "[%zu,%zu]", t[i].rows, t[i].cols);
        else snprintf(shape, sizeof(shape), "[%zu]", t[i].rows);
        snprintf(entry, sizeof(entry), "%s\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}",
                 i ? "," : "", t[i].name, dname, shape, begin[i], end[i]);
        buffer_put(&header, entry, strlen(entry));
    }
    buffer_put(&header, "}", 1);
    FILE* f = fopenCheck(path, "wb");
    uint64_t hl = header.size;
    fwriteCheck(&hl, 8, 1, f);
    fwriteCheck(header.data, 1, header.size, f);
    if (data.size) fwriteCheck(data.data, 1, data.size, f);
    fcloseCheck(f);
    free(header.data);
    free(data.data);
}

// the decoder of an E4SRec model as HF LLaMA tensors ("model." names)
static int test_hf_tensors(const E4SRec* m, TestHfTensor* out) {
    const E4SRecConfig* c = &m->cfg;
    char name[256];
    float* ptr;
    size_t numel;
    int n = 0;
    for (int i = 0; e4srec_hf_tensor(m, &m->params, i, "wrapper.", "model.", name, sizeof(name), &ptr, &numel); i++) {
        if (strncmp(name, "model.", 6) != 0) continue;
        TestHfTensor* t = &out[n++];
        snprintf(t->name, sizeof(t->name), "%s", name);
        t->data = ptr;
        t->bytes_of = NULL;
        int vector = strstr(name, "norm.weight") != NULL;
        t->cols = vector ? 0 : strstr(name, "o_proj") ? (size_t)c->NH * c->HS : strstr(name, "down_proj") ? (size_t)c->F : (size_t)c->C;
        t->rows = vector ? numel : numel / t->cols;
    }
    return n;
}

typedef struct {
    char dir[64];
    const char* model_type;
    const char* extra;  // more config.json fields, or NULL
    const char* rope;   // config.json's RoPE fields, or NULL: "rope_theta" with the teacher's value
    int drop;           // 1: leave out the last layer's down_proj
    int bad_shape;      // 1: write q_proj transposed
    int untied;         // 1: config.json says the classifier is separate (none is written)
    int overlap;        // 1: layer 1's input norm written over layer 0's bytes
    int decoy;          // 1: layer 0's q_proj listed twice in its shard, first over o_proj's bytes (HF takes the last)
    const char* poison; // a tensor whose element 3 is written as poison_value, or NULL
    float poison_value;
} TestHfDir;

// writes dir: config.json, two shards (F32, or BF16 then F16 when mixed) and their index
static void test_hf_write_dir(TestHfDir* d, const E4SRec* m, int mixed) {
    const E4SRecConfig* c = &m->cfg;
    snprintf(d->dir, sizeof(d->dir), "/tmp/slmrec_hf_XXXXXX");
    if (mkdtemp(d->dir) == NULL) die("mkdtemp failed");
    char path[256];
    snprintf(path, sizeof(path), "%s/config.json", d->dir);
    char rope[256];
    if (d->rope) snprintf(rope, sizeof(rope), "%s", d->rope);
    else snprintf(rope, sizeof(rope), "\"rope_theta\": %.9g", c->rope_theta);
    FILE* f = fopenCheck(path, "wb");
    fprintf(f, "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n  \"hidden_size\": %d,\n"
               "  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
               "  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n  \"vocab_size\": %d,\n  \"max_position_embeddings\": 128,\n"
               "  \"rms_norm_eps\": %.9g,\n  %s,\n  \"hidden_act\": \"silu\",\n  \"tie_word_embeddings\": %s%s\n}\n",
            strcmp(d->model_type, "llama") == 0 ? "LlamaForCausalLM" : "OtherForCausalLM", d->model_type, c->C, c->F, c->L,
            c->NH, c->KVH, c->HS, c->V, c->rms_eps, rope, d->untied ? "false" : "true", d->extra ? d->extra : "");
    fcloseCheck(f);
    TestHfTensor t[128];
    int n = test_hf_tensors(m, t);
    if (d->drop) {
        for (int i = 0; i < n; i++) {
            char want[64];
            snprintf(want, sizeof(want), "model.layers.%d.mlp.down_proj.weight", c->L - 1);
            if (strcmp(t[i].name, want) == 0) { t[i] = t[n - 1]; n--; break; }
        }
    }
    if (d->bad_shape) { size_t r = t[1].rows; t[1].rows = t[1].cols; t[1].cols = r; }
    float* poisoned = NULL;
    for (int i = 0; i < n && d->poison; i++) {
        if (strcmp(t[i].name, d->poison) != 0) continue;
        size_t numel = t[i].rows * (t[i].cols ? t[i].cols : 1);
        poisoned = (float*)mallocCheck(numel * sizeof(float));
        memcpy(poisoned, t[i].data, numel * sizeof(float));
        poisoned[3] = d->poison_value;
        t[i].data = poisoned;
    }
    for (int i = 0; i < n && d->overlap; i++) {
        if (strcmp(t[i].name, "model.layers.1.input_layernorm.weight") == 0) t[i].bytes_of = "model.layers.0.input_layernorm.weight";
    }
    if (d->decoy) {
        memmove(t + 1, t, n++ * sizeof(t[0]));
        for (int i = 1; i < n; i++) if (strcmp(t[i].name, "model.layers.0.self_attn.q_proj.weight") == 0) t[0] = t[i];
        t[0].bytes_of = "model.layers.0.self_attn.o_proj.weight";
    }
    int half = n / 2;
    const char* shard[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    snprintf(path, sizeof(path), "%s/%s", d->dir, shard[0]);
    test_write_safetensors(path, t, half, mixed ? ST_BF16 : ST_F32);
    snprintf(path, sizeof(path), "%s/%s", d->dir, shard[1]);
    test_write_safetensors(path, t + half, n - half, mixed ? ST_F16 : ST_F32);
    free(poisoned);
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", d->dir);
    f = fopenCheck(path, "wb");
    fprintf(f, "{\"metadata\": {\"total_size\": 0},\n \"weight_map\": {");
    for (int i = 0; i < n; i++) fprintf(f, "%s\n  \"%s\": \"%s\"", i ? "," : "", t[i].name, shard[i >= half]);
    fprintf(f, "\n }\n}\n");
    fcloseCheck(f);
}

static void test_hf_remove_dir(const TestHfDir* d) {
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
    if (system(cmd) != 0) printf("  (could not remove %s)\n", d->dir);
}

// 1 when base's decoder is the teacher's, bit for bit
static int test_hf_same_decoder(const Llama* base, const E4SRec* teacher, const OracleFixture* fx) {
    E4SRec m;
    e4srec_build(&m, &fx->teacher_cfg, fx->table, fx->instr, fx->resp);
    e4srec_init_from_base(&m, base, "the imported base");
    TestHfTensor want[128], got[128];
    int n = test_hf_tensors(teacher, want), same = 1;
    test_hf_tensors(&m, got);
    for (int i = 0; i < n; i++) {
        same &= memcmp(got[i].data, want[i].data, got[i].rows * (got[i].cols ? got[i].cols : 1) * sizeof(float)) == 0;
    }
    e4srec_free(&m);
    return same;
}

static void test_import_hf_dir(void* dir) {
    Llama m;
    llama_import_hf(&m, (const char*)dir, NULL);
}

static void test_llama_import_hf(void) {
    if (access(TEST_ORACLE_FIXTURE, R_OK) != 0) {
        skip("HF import against the oracle", TEST_ORACLE_FIXTURE " not found");
        return;
    }
    OracleFixture fx;
    oracle_fixture_open(&fx, TEST_ORACLE_FIXTURE);
    E4SRec teacher;
    oracle_load_model(&teacher, &fx.st, "teacher", &fx.teacher_cfg, fx.table, fx.instr, fx.resp);
    // F32 shards: the imported decoder, with the fixture's input_proj and score, reproduces HF's hidden states
    TestHfDir d = {.model_type = "llama", .extra = ""};
    test_hf_write_dir(&d, &teacher, 0);
    Llama base;
    llama_import_hf(&base, d.dir, NULL);
    E4SRec m;
    e4srec_build(&m, &fx.teacher_cfg, fx.table, fx.instr, fx.resp);
    st_read_f32(&fx.st, "teacher.input_proj.weight", m.params.proj_w, m.param_sizes[E4SREC_PARAM_proj_w]);
    st_read_f32(&fx.st, "teacher.input_proj.bias", m.params.proj_b, m.param_sizes[E4SREC_PARAM_proj_b]);
    st_read_f32(&fx.st, "teacher.score.weight", m.params.score_w, m.param_sizes[E4SREC_PARAM_score_w]);
    e4srec_init_from_base(&m, &base, d.dir);
    CHECK(memcmp(m.params_memory, teacher.params_memory, m.num_params * sizeof(float)) == 0,
          "import-hf: the decoder read from two F32 shards differs from the fixture's teacher");
    e4srec_forward(&m, fx.items, fx.targets, fx.B);  // with targets: every token of the last layer too
    OracleReport r = {0, 0, 0.0f, 0};
    char name[64];
    for (int k = 0; k <= m.cfg.L; k++) {
        snprintf(name, sizeof(name), "out.teacher.hidden.%d", k);
        oracle_check_hidden(&r, &fx.st, name, &m, k);
    }
    oracle_check(&r, &fx.st, "out.teacher.logits", m.acts.logits, (size_t)fx.B * m.cfg.I);
    CHECK(r.n_failed == 0 && r.n_tensors == m.cfg.L + 2, "import-hf: %d of %d hidden states / logits differ from HF's",
          r.n_failed, r.n_tensors);
    printf("  import-hf: %d hidden states and the logits match the HF oracle through the imported base (max rel %.3e)\n",
           m.cfg.L + 1, r.max_rel);
    // truncation: a 2-layer model from the base takes exactly its first two layers
    E4SRecConfig c2 = fx.teacher_cfg;
    c2.L = 2;
    E4SRec two;
    e4srec_build(&two, &c2, fx.table, fx.instr, fx.resp);
    e4srec_init_from_base(&two, &base, d.dir);
    E4SRec ref2;
    e4srec_build(&ref2, &c2, fx.table, fx.instr, fx.resp);
    e4srec_copy_first_layers(&ref2, &teacher);
    memset(ref2.params.proj_w, 0, (m.param_sizes[E4SREC_PARAM_proj_w] + m.param_sizes[E4SREC_PARAM_proj_b]) * sizeof(float));
    memset(ref2.params.score_w, 0, m.param_sizes[E4SREC_PARAM_score_w] * sizeof(float));
    CHECK(memcmp(two.params_memory, ref2.params_memory, two.num_params * sizeof(float)) == 0,
          "--init: a 2-layer model should hold the base's embeddings, first two layers and final norm");
    e4srec_free(&two);
    e4srec_free(&ref2);
    llama_free(&base);
    test_hf_remove_dir(&d);

    // BF16 and F16 shards convert exactly (every half value is a float)
    test_hf_write_dir(&d, &teacher, 1);
    llama_import_hf(&base, d.dir, NULL);
    TestHfTensor t[128];
    int n = test_hf_tensors(&teacher, t), bad = 0;
    E4SRec back;
    e4srec_build(&back, &fx.teacher_cfg, fx.table, fx.instr, fx.resp);
    e4srec_init_from_base(&back, &base, d.dir);
    TestHfTensor got[128];
    test_hf_tensors(&back, got);
    for (int i = 0; i < n; i++) {
        size_t numel = t[i].rows * (t[i].cols ? t[i].cols : 1);
        Buffer b = {NULL, 0, 0};
        test_put_converted(&b, t[i].data, numel, i < n / 2 ? ST_BF16 : ST_F16);
        for (size_t e = 0; e < numel; e++) {
            uint16_t h;
            memcpy(&h, b.data + 2 * e, 2);
            float want;
            if (i < n / 2) { uint32_t bits = (uint32_t)h << 16; memcpy(&want, &bits, 4); }
            else want = st_half_to_float(h);
            bad += got[i].data[e] != want;
        }
        free(b.data);
    }
    CHECK(bad == 0, "import-hf: %d BF16/F16 values did not convert exactly", bad);
    e4srec_free(&back);
    llama_free(&base);
    test_hf_remove_dir(&d);

    // refusals
    struct { const char* what; TestHfDir d; const char* expect; } cases[] = {
        {"another architecture", {.model_type = "mistral", .extra = ""}, "LLaMA models only"},
        {"scaled RoPE", {.model_type = "llama", .extra = ",\n  \"rope_scaling\": {\"factor\": 8.0}"}, "scaled RoPE"},
        {"a missing tensor", {.model_type = "llama", .extra = "", .drop = 1}, "has no tensor"},
        {"a transposed tensor", {.model_type = "llama", .extra = "", .bad_shape = 1}, "config.json implies"},
        {"separate classifier missing", {.model_type = "llama", .extra = "", .untied = 1}, "lm_head.weight"},
        {"two tensors over the same bytes", {.model_type = "llama", .overlap = 1},
         "tensors 'model.layers.0.input_layernorm.weight' and 'model.layers.1.input_layernorm.weight' overlap"},
        // config.json as Python's json reads it: the last of a key given twice, escapes decoded
        {"a key given twice (the last counts)", {.model_type = "llama", .extra = ",\n  \"hidden_act\": \"gelu\""},
         "hidden_act 'gelu'"},
        {"a key spelled with an escape", {.model_type = "llama", .extra = ",\n  \"rope\\u005fscaling\": {\"factor\": 8.0}"},
         "scaled RoPE"},
        // plain RoPE only, whichever field transformers reads it from
        {"llama3 RoPE in rope_parameters",
         {.model_type = "llama", .rope = "\"rope_parameters\": {\"rope_type\": \"llama3\", \"factor\": 8, \"rope_theta\": 500000}"},
         "\"rope_parameters\" has \"rope_type\": \"llama3\""},
        {"linear RoPE in rope_parameters' older key",
         {.model_type = "llama", .rope = "\"rope_parameters\": {\"type\": \"linear\", \"factor\": 2.0}"}, "\"type\": \"linear\""},
        {"a scaling factor beside rope_type default",
         {.model_type = "llama", .rope = "\"rope_parameters\": {\"rope_type\": \"default\", \"factor\": 2.0}"}, "\"factor\": 2.0"},
        {"rope_theta twice, two values",
         {.model_type = "llama", .extra = ",\n  \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 500000.0}"},
         "\"rope_theta\" is 10000 but \"rope_parameters\" has \"rope_theta\": 500000"},
        {"rope_parameters not an object", {.model_type = "llama", .extra = ",\n  \"rope_parameters\": \"default\""},
         "\"rope_parameters\" is \"default\", expected an object"},
        {"config.json that is not JSON", {.model_type = "llama", .extra = "\n  \"rope_scaling\": null"}, "malformed JSON"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        test_hf_write_dir(&cases[i].d, &teacher, 0);
        check_dies(cases[i].what, test_import_hf_dir, cases[i].d.dir, cases[i].expect);
        test_hf_remove_dir(&cases[i].d);
    }
    // a NaN or an infinity in any tensor, of any dtype, is refused naming the tensor
    struct { const char* tensor; float value; int mixed; const char* expect; } poisons[] = {
        {"model.layers.1.self_attn.q_proj.weight", NAN, 0, "tensor 'model.layers.1.self_attn.q_proj.weight' holds nan"},
        {"model.layers.0.mlp.up_proj.weight", INFINITY, 1, "tensor 'model.layers.0.mlp.up_proj.weight' holds inf"},  // BF16
        {"model.norm.weight", -INFINITY, 1, "tensor 'model.norm.weight' holds -inf"},                                   // F16
    };
    for (size_t i = 0; i < sizeof(poisons) / sizeof(poisons[0]); i++) {
        TestHfDir pd = {.model_type = "llama", .poison = poisons[i].tensor, .poison_value = poisons[i].value};
        test_hf_write_dir(&pd, &teacher, poisons[i].mixed);
        check_dies(poisons[i].expect, test_import_hf_dir, pd.dir, poisons[i].expect);
        test_hf_remove_dir(&pd);
    }
    // every integer field whole and in range before it is cast; every flag true or false
    struct { const char* field; const char* value; } numbers[] = {
        {"hidden_size", "64.5"}, {"hidden_size", "1e30"}, {"intermediate_size", "160.25"}, {"num_hidden_layers", "-4"},
        {"num_hidden_layers", "4.000001"}, {"num_attention_heads", "257"}, {"num_key_value_heads", "2.5"},
        {"vocab_size", "1e7"}, {"max_position_embeddings", "128.5"}, {"head_dim", "16.5"}, {"head_dim", "-1e300"},
        {"tie_word_embeddings", "1"}, {"attention_bias", "\"false\""},
    };
    for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        char extra[128], expect[128];
        snprintf(extra, sizeof(extra), ",\n  \"%s\": %s", numbers[i].field, numbers[i].value);
        if (strstr(numbers[i].field, "tie_") || strstr(numbers[i].field, "_bias")) {
            snprintf(expect, sizeof(expect), "\"%s\" is %s, expected true or false", numbers[i].field, numbers[i].value);
        } else {
            snprintf(expect, sizeof(expect), "\"%s\" is %.15g, expected an integer", numbers[i].field, atof(numbers[i].value));
        }
        TestHfDir nd = {.model_type = "llama", .extra = extra};
        test_hf_write_dir(&nd, &teacher, 0);
        check_dies(expect, test_import_hf_dir, nd.dir, expect);
        test_hf_remove_dir(&nd);
    }
    check_dies("not a directory", test_import_hf_dir, (void*)"/nonexistent/model", "not a Hugging Face model directory");
    // a tensor the header names twice: the last entry, as in HF's safetensors
    TestHfDir dd = {.model_type = "llama", .decoy = 1};
    test_hf_write_dir(&dd, &teacher, 0);
    llama_import_hf(&base, dd.dir, NULL);
    CHECK(test_hf_same_decoder(&base, &teacher, &fx), "import-hf: of a tensor listed twice, the first entry was read");
    llama_free(&base);
    test_hf_remove_dir(&dd);
    // and imports where the value HF would use must be the one taken
    struct { const char* what; TestHfDir d; float theta; } taken[] = {
        {"rope_theta given twice", {.model_type = "llama", .extra = ",\n  \"rope_theta\": 20000"}, 20000.0f},
        {"rope_theta in rope_parameters (transformers 5)",
         {.model_type = "llama", .rope = "\"rope_parameters\": {\"rope_theta\": 500000.0, \"rope_type\": \"default\"}"}, 500000.0f},
        {"plain RoPE said both ways",
         {.model_type = "llama", .extra = ",\n  \"rope_scaling\": null, \"rope_parameters\": {\"type\": \"default\", \"rope_theta\": 10000}"},
         10000.0f},
    };
    for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
        test_hf_write_dir(&taken[i].d, &teacher, 0);
        llama_import_hf(&base, taken[i].d.dir, NULL);
        CHECK(base.cfg.rope_theta == taken[i].theta, "import-hf: %s: rope_theta %g, HF would use %g", taken[i].what,
              base.cfg.rope_theta, taken[i].theta);
        llama_free(&base);
        test_hf_remove_dir(&taken[i].d);
    }
    e4srec_free(&m);
    e4srec_free(&teacher);
    oracle_fixture_free(&fx);
}

// ----------------------------------------------------------------------------
// llama2.c refusals

typedef struct { const char* model; const char* tok; } TestL2CPaths;

static void test_import_l2c_paths(void* arg) {
    TestL2CPaths* p = (TestL2CPaths*)arg;
    Llama m;
    llama_import_llama2c(&m, p->model, p->tok);
}

static void test_load_base(void* path) {
    Llama m;
    llama_load(&m, (const char*)path);
}

static void test_llama_refusals(Rng* rng) {
    char tok[] = "/tmp/slmrec_l2c_tok_XXXXXX";
    test_l2c_write_tokenizer(tok);
    TestL2C m;
    test_l2c_make(&m, rng, 1);
    char cut[] = "/tmp/slmrec_l2c_XXXXXX";
    test_l2c_write(&m, cut, 8);
    TestL2CPaths a = {cut, tok};
    check_dies("llama2c checkpoint cut short", test_import_l2c_paths, &a, "bytes of tensors");
    m.V = 300;  // a model whose vocabulary the tokenizer does not match
    free(m.file);
    m.n += (size_t)35 * m.C;
    m.file = (float*)callocCheck(m.n, sizeof(float));
    char other[] = "/tmp/slmrec_l2c_XXXXXX";
    test_l2c_write(&m, other, 0);
    TestL2CPaths b = {other, tok};
    check_dies("llama2c tokenizer of another vocabulary", test_import_l2c_paths, &b, "has 265 tokens");
    TestL2CPaths c = {tok, tok};
    check_dies("a tokenizer given as the model", test_import_l2c_paths, &c, "not a llama2.c checkpoint");
    check_dies("a llama2c file given as a base checkpoint", test_load_base, cut, "not a slmrec file");
    unlink(cut);
    unlink(other);
    unlink(tok);
    free(m.file);
}

// ----------------------------------------------------------------------------
// LoRA: gradients against finite differences, the frozen base, merging

static void test_lora(Rng* rng) {
    E4SRecConfig c = test_tiny_config(2);
    float* table = test_randn(rng, (size_t)c.I * c.D, 1.0f);
    int instr[3] = {1, 5, 16}, resp[2] = {7, 5};
    int items[3 * 5] = {0, 0, 3, 8, 2,   1, 2, 3, 4, 5,   0, 0, 0, 0, 6};
    int targets[3] = {4, 8, 1};
    E4SRec m;
    e4srec_build(&m, &c, table, instr, resp);
    e4srec_init_random(&m, rng);
    for (size_t i = 0; i < m.num_params; i++) m.params_memory[i] += 0.3f * rng_normal(rng);
    e4srec_add_lora(&m, 3, 6.0f, LORA_ALL_TARGETS);
    lora_init(m.lora, rng);
    float before[3 * 9];
    e4srec_forward(&m, items, NULL, 3);
    memcpy(before, m.acts.logits, sizeof(before));
    E4SRec plain;  // the same weights without adapters: B = 0 leaves the model as it was
    e4srec_build(&plain, &c, table, instr, resp);
    memcpy(plain.params_memory, m.params_memory, m.num_params * sizeof(float));
    e4srec_forward(&plain, items, NULL, 3);
    check_close("lora: B = 0 at init leaves the scores unchanged", before, plain.acts.logits, 27, 1e-6f, 1e-6f);
    for (size_t i = 0; i < m.lora->num_params; i++) m.lora->params_memory[i] += 0.3f * rng_normal(rng);
    e4srec_gradients(&m, items, targets, 3);
    float one = 1.0f;
    ModelCtx ctx = {NULL, &m, items, targets, 3};
    FdLayer f = {e4srec_fd, &ctx, 1, &one};
    size_t sizes[2 * LORA_TARGETS];
    float* grads = test_zeros(m.lora->num_params);
    memcpy(grads, m.lora->grads_memory, m.lora->num_params * sizeof(float));
    for (int t = 0; t < LORA_TARGETS; t++) {
        sizes[2 * t] = (size_t)c.L * 3 * m.lora->shape[t].in;
        sizes[2 * t + 1] = (size_t)c.L * m.lora->shape[t].out * 3;
    }
    fd_check_params("lora CE adapters (A, B of q k v o gate up down)", &f, m.lora->params_memory, grads, sizes, 2 * LORA_TARGETS, FD_EPS);
    fd_check_params("lora CE input_proj", &f, m.params.proj_w, m.grads.proj_w, &m.param_sizes[E4SREC_PARAM_proj_w], 2, FD_EPS);
    fd_check_params("lora CE score", &f, m.params.score_w, m.grads.score_w, &m.param_sizes[E4SREC_PARAM_score_w], 1, FD_EPS);
    // frozen: no gradient reaches the decoder's weights or the token embeddings
    double frozen = 0.0;
    int frozen_tensors[] = {0, 3, 4, 5, 6, 7, 8, 9};
    float* g = m.grads_memory;
    for (int k = 0, t = 0; t < E4SREC_NUM_PARAMS; g += m.param_sizes[t++]) {
        if (k < 8 && frozen_tensors[k] == t) { frozen += grad_sumsq(g, m.param_sizes[t]); k++; }
    }
    CHECK(frozen == 0.0, "lora: the frozen decoder got a gradient (sum of squares %g)", frozen);
    // merging folds the adapters into the weights: the same scores without them
    e4srec_forward(&m, items, NULL, 3);
    memcpy(before, m.acts.logits, sizeof(before));
    e4srec_merge_lora(&m);
    e4srec_forward(&m, items, NULL, 3);
    check_close("lora: merged weights score as weights + adapters", m.acts.logits, before, 27, 1e-5f, 1e-5f);
    CHECK(m.lora == NULL, "lora: merging should drop the adapters");
    free(grads);
    e4srec_free(&plain);
    e4srec_free(&m);
    free(table);
}

static void run_llama_tests(void) {
    Rng rng;
    rng_seed(&rng, 5);
    test_llama_import_llama2c(&rng);
    test_llama_golden();
    test_llama_import_hf();
    test_llama_refusals(&rng);
    test_lora(&rng);
}
