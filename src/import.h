// import.h: pretrained LLaMA models from the two places people keep them, into
// a Llama (llama.h) that `llama_save` writes as the project's base checkpoint.
//   * llama2.c: one float32 file (7 int32 dims, then the tensors in a fixed
//     order) and a tokenizer file; RoPE rotates adjacent pairs (x[2j], x[2j+1]).
//   * Hugging Face: a directory with config.json and one model.safetensors, or
//     several shards listed by model.safetensors.index.json; F32/F16/BF16.
//     RoPE rotates (x[j], x[j + HS/2]), the layout this project computes in.
// llama2.c's q and k rows are permuted into HF's order on import, so the
// kernels know one RoPE layout. The permutation is the same for q and k within
// each head, so q.k, and with it attention, is unchanged.
#pragma once
#include "llama.h"
#include "safetensors.h"

// ----------------------------------------------------------------------------
// llama2.c

// dst (heads*HS, C) = src's rows reordered from adjacent pairs (2j, 2j+1) to halves (j, j + HS/2)
static void rope_rows_to_half_split(float* dst, const float* src, int heads, int HS, int C) {
    for (int h = 0; h < heads; h++) {
        for (int r = 0; r < HS; r++) {
            int to = h * HS + (r % 2) * (HS / 2) + r / 2;
            memcpy(dst + (size_t)to * C, src + ((size_t)h * HS + r) * C, (size_t)C * sizeof(float));
        }
    }
}

static void llama_import_llama2c(Llama* m, const char* model_path, const char* tok_path) {
    const char* outer = input_begin(model_path);  // named by any refusal below
    size_t size = 0;
    char* file = read_file(model_path, &size);
    int32_t h[7];
    if (size < sizeof(h)) die("'%s' is %zu bytes, too short for a llama2.c checkpoint (7 int32 dimensions first)", model_path, size);
    memcpy(h, file, sizeof(h));
    for (int i = 0; i < 7; i++) {
        if (h[i] == 0 || h[i] == INT32_MIN || (i != 5 && h[i] < 0)) {
            die("'%s': dimension %d of 7 is %d: not a llama2.c checkpoint (dim, hidden_dim, n_layers, n_heads, "
                "n_kv_heads, vocab_size, seq_len)", model_path, i + 1, h[i]);
        }
    }
    if (h[0] % h[3] != 0) die("'%s': dim %d is not a multiple of its %d heads", model_path, h[0], h[3]);
    LlamaConfig c = {.V = abs(h[5]), .C = h[0], .F = h[1], .L = h[2], .NH = h[3], .KVH = h[4], .HS = h[0] / h[3],
                     .max_seq = h[6], .rms_eps = 1e-5f, .rope_theta = 10000.0f, .tied = h[5] > 0};
    llama_build(m, &c, model_path);
    size_t C = c.C, F = c.F, L = c.L, V = c.V, Q = (size_t)c.NH * c.HS, KV = (size_t)c.KVH * c.HS, QKV = Q + 2 * KV;
    size_t rope_tables = (size_t)c.max_seq * c.HS;  // two (seq_len, HS/2) tables, unused
    size_t expected = m->num_params + rope_tables;
    if (size - sizeof(h) != expected * sizeof(float)) {
        die("'%s' holds %zu bytes of tensors, the dimensions (C %d, F %d, L %d, heads %d/%d, V %d%s, seq %d) need %zu",
            model_path, size - sizeof(h), c.C, c.F, c.L, c.NH, c.KVH, c.V, c.tied ? " shared" : " separate", c.max_seq,
            expected * sizeof(float));
    }
    const float* f = (const float*)(file + sizeof(h));
    LlamaParams* p = &m->params;
#define TAKE(n) (f += (n), f - (n))
    memcpy(p->tok_emb, TAKE(V * C), V * C * sizeof(float));
    memcpy(p->rms1, TAKE(L * C), L * C * sizeof(float));
    const float* wq = TAKE(L * Q * C);
    const float* wk = TAKE(L * KV * C);
    const float* wv = TAKE(L * KV * C);
    for (size_t l = 0; l < L; l++) {
        float* w = p->wqkv + l * QKV * C;
        rope_rows_to_half_split(w, wq + l * Q * C, c.NH, c.HS, c.C);
        rope_rows_to_half_split(w + Q * C, wk + l * KV * C, c.KVH, c.HS, c.C);
        memcpy(w + (Q + KV) * C, wv + l * KV * C, KV * C * sizeof(float));
    }
    memcpy(p->wo, TAKE(L * C * Q), L * C * Q * sizeof(float));
    memcpy(p->rms2, TAKE(L * C), L * C * sizeof(float));
    const float* w1 = TAKE(L * F * C);  // gate
    memcpy(p->wdown, TAKE(L * C * F), L * C * F * sizeof(float));
    const float* w3 = TAKE(L * F * C);  // up
    for (size_t l = 0; l < L; l++) {
        memcpy(p->wgateup + l * 2 * F * C, w1 + l * F * C, F * C * sizeof(float));
        memcpy(p->wgateup + (l * 2 + 1) * F * C, w3 + l * F * C, F * C * sizeof(float));
    }
    memcpy(p->rms_final, TAKE(C), C * sizeof(float));
    f += rope_tables;
    if (!c.tied) memcpy(p->lm_head, TAKE(V * C), V * C * sizeof(float));
#undef TAKE
    free(file);
    tokenizer_load_llama2c(&m->tok, tok_path);
    m->has_tok = 1;
    if (m->tok.vocab_size != c.V) die("'%s' has %d tokens, the model '%s' %d", tok_path, m->tok.vocab_size, model_path, c.V);
    input_end(outer);
}

// ----------------------------------------------------------------------------
// Hugging Face

// config.json's fields, read as transformers reads them: the last of a key given twice,
// absent and null alike (the default), and a value of the wrong type refused rather
// than taken for absent. *len gets the value's length (to quote it in a refusal).
static const char* config_value(const char* cfg, const char* key, size_t* len, const char* path) {
    const char* v = json_get(cfg, key, len, path);
    return v == NULL || strncmp(v, "null", 4) == 0 ? NULL : v;
}

// of a value quoted in a refusal, the first 120 characters
static int config_quote(size_t len) { return (int)(len < 120 ? len : 120); }

static double config_number(const char* cfg, const char* key, double fallback, const char* path) {
    size_t len = 0;
    const char* v = config_value(cfg, key, &len, path);
    if (v == NULL) {
        if (isnan(fallback)) die("'%s' has no \"%s\"", path, key);
        return fallback;
    }
    char* end = NULL;
    double x = strtod(v, &end);
    if (end != v + len) die("'%s': \"%s\" is %.*s, expected a number", path, key, config_quote(len), v);
    return x;
}

// a string field into out, "" when absent (of a list, as architectures is, the first)
static void config_string(const char* cfg, const char* key, char* out, size_t cap, const char* path) {
    size_t len = 0;
    const char* v = config_value(cfg, key, &len, path);
    out[0] = 0;
    if (v == NULL) return;
    Json j = {v, v, v + len, path};
    if (json_peek(&j, '[')) j.p++;
    if (json_peek(&j, ']')) return;
    if (!json_peek(&j, '"')) die("'%s': \"%s\" is %.*s, expected a string", path, key, config_quote(len), v);
    json_string(&j, out, cap);
}

// an integer field: a whole number in [lo, hi], fallback when absent. Checked before the
// cast: 64.5 would truncate, and a double beyond int's range cast to int is undefined
static int config_int(const char* cfg, const char* key, double fallback, int lo, int hi, const char* path) {
    double v = config_number(cfg, key, fallback, path);
    if (!(v >= lo && v <= hi && v == floor(v))) die("'%s': \"%s\" is %.15g, expected an integer from %d to %d", path, key, v, lo, hi);
    return (int)v;
}

// a flag: true or false, false when absent (LlamaConfig's default for each flag read
// here). Anything else is refused: Python would take 1 or "false" for true
static int config_bool(const char* cfg, const char* key, const char* path) {
    size_t len = 0;
    const char* v = config_value(cfg, key, &len, path);
    if (v == NULL || (len == 5 && memcmp(v, "false", 5) == 0)) return 0;
    if (len == 4 && memcmp(v, "true", 4) == 0) return 1;
    die("'%s': \"%s\" is %.*s, expected true or false", path, key, config_quote(len), v);
    return 0;
}

// rope_theta, where config.json asks for plain RoPE; any other is refused. transformers
// before 5 says so with rope_scaling null; 5 and later with rope_parameters holding
// rope_type "default" and rope_theta, nothing more (a factor, a partial_rotary_factor,
// ... each changes the rotation)
static double hf_rope_theta(const char* cfg, const char* path) {
    size_t len = 0;
    const char* v = config_value(cfg, "rope_scaling", &len, path);
    if (v) die("'%s': \"rope_scaling\" is %.*s: scaled RoPE is not implemented, only plain RoPE", path, config_quote(len), v);
    double theta = config_number(cfg, "rope_theta", 10000.0, path);  // transformers' default
    const char* rope = config_value(cfg, "rope_parameters", &len, path);
    if (rope == NULL) return theta;
    if (*rope != '{') die("'%s': \"rope_parameters\" is %.*s, expected an object", path, config_quote(len), rope);
    static const char* const type_keys[2] = {"rope_type", "type"};
    for (int k = 0; k < 2; k++) {
        char type[256];
        config_string(rope, type_keys[k], type, sizeof(type), path);
        if (config_value(rope, type_keys[k], NULL, path) && strcmp(type, "default") != 0) {
            die("'%s': \"rope_parameters\" has \"%s\": \"%s\": only plain RoPE (\"default\") is implemented", path,
                type_keys[k], type);
        }
    }
    Json j = {rope, rope, rope + len, path};
    char key[256];
    json_expect(&j, '{');
    for (int i = 0; json_member(&j, key, sizeof(key), i); i++) {
        json_ws(&j);
        const char* value = j.p;
        json_skip(&j, 1);
        if (strcmp(key, "rope_type") != 0 && strcmp(key, "type") != 0 && strcmp(key, "rope_theta") != 0) {
            die("'%s': \"rope_parameters\" has \"%s\": %.*s: scaled RoPE is not implemented (plain RoPE has rope_type "
                "\"default\" and rope_theta, nothing more)", path, key, config_quote((size_t)(j.p - value)), value);
        }
    }
    if (config_value(rope, "rope_theta", NULL, path) == NULL) return theta;
    double inner = config_number(rope, "rope_theta", NAN, path);
    if (config_value(cfg, "rope_theta", NULL, path) && inner != theta) {
        die("'%s': \"rope_theta\" is %.15g but \"rope_parameters\" has \"rope_theta\": %.15g: transformers versions "
            "differ on which counts", path, theta, inner);
    }
    return inner;
}

// the shard files of dir: those model.safetensors.index.json names, or model.safetensors
static int hf_shards(const char* dir, char (*shards)[512], int cap) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    if (access(path, R_OK) != 0) {
        snprintf(shards[0], 512, "model.safetensors");
        return 1;
    }
    char* text = read_file(path, NULL);
    size_t len = 0;
    const char* map = json_get(text, "weight_map", &len, path);
    if (map == NULL || *map != '{') die("'%s' has no \"weight_map\" object", path);
    Json j = {map, map, map + len, path};
    int n = 0;
    char file[512];
    json_expect(&j, '{');
    for (int k = 0; json_member(&j, NULL, 0, k); k++) {
        json_string(&j, file, sizeof(file));
        if (strchr(file, '/') != NULL) die("'%s': shard '%s' is outside the model directory", path, file);
        int seen = 0;
        for (int i = 0; i < n && !seen; i++) seen = strcmp(shards[i], file) == 0;
        if (!seen) {
            if (n == cap) die("'%s' lists more than %d shards", path, cap);
            snprintf(shards[n++], 512, "%s", file);
        }
    }
    free(text);
    if (n == 0) die("'%s' lists no tensors", path);
    return n;
}

// one expected tensor: where it goes and its shape (cols 0 = a vector)
typedef struct {
    char name[128];
    float* dst;
    size_t rows, cols;
    int filled;
} HfSlot;

static void llama_import_hf(Llama* m, const char* dir, const char* tok_path) {
    const char* outer = input_begin(dir);  // named by any refusal below
    char path[1024];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    if (access(path, R_OK) != 0) die("'%s' not found: '%s' is not a Hugging Face model directory", path, dir);
    char* cfg = read_file(path, NULL);
    char arch[256], model_type[256], act[256];
    config_string(cfg, "architectures", arch, sizeof(arch), path);
    config_string(cfg, "model_type", model_type, sizeof(model_type), path);
    config_string(cfg, "hidden_act", act, sizeof(act), path);
    if (strcmp(model_type, "llama") != 0 || (arch[0] && strcmp(arch, "LlamaForCausalLM") != 0)) {
        die("'%s': architecture '%s', model_type '%s': import-hf reads LLaMA models only (LlamaForCausalLM, model_type "
            "\"llama\")", path, arch[0] ? arch : "(none)", model_type[0] ? model_type : "(none)");
    }
    if (act[0] && strcmp(act, "silu") != 0) die("'%s': hidden_act '%s': a LLaMA MLP is SwiGLU (silu)", path, act);
    if (config_bool(cfg, "attention_bias", path) || config_bool(cfg, "mlp_bias", path)) die("'%s': biased projections are not LLaMA's", path);
    LlamaConfig c;
    c.C = config_int(cfg, "hidden_size", NAN, 1, DEC_MAX_WIDTH, path);
    c.F = config_int(cfg, "intermediate_size", NAN, 1, DEC_MAX_MLP, path);
    c.L = config_int(cfg, "num_hidden_layers", NAN, 1, DEC_MAX_LAYERS, path);
    c.NH = config_int(cfg, "num_attention_heads", NAN, 1, DEC_MAX_HEADS, path);
    c.KVH = config_int(cfg, "num_key_value_heads", c.NH, 1, c.NH, path);
    c.V = config_int(cfg, "vocab_size", NAN, 1, DEC_MAX_VOCAB, path);
    c.max_seq = config_int(cfg, "max_position_embeddings", 2048, 1, DEC_MAX_POSITIONS, path);
    c.HS = config_int(cfg, "head_dim", c.C / c.NH, 2, DEC_MAX_HEAD_SIZE, path);
    c.rms_eps = (float)config_number(cfg, "rms_norm_eps", 1e-6, path);
    c.rope_theta = (float)hf_rope_theta(cfg, path);
    c.tied = config_bool(cfg, "tie_word_embeddings", path);
    free(cfg);
    llama_build(m, &c, path);

    // every tensor the model needs, by its HF name
    int n_known = 3 + c.L * HF_LAYER_TENSORS, n_required = n_known - c.tied;  // a tied model needs no lm_head
    HfSlot* slots = (HfSlot*)callocCheck((size_t)n_known, sizeof(HfSlot));
    LlamaParams* p = &m->params;
    DecoderTensors dt = llama_decoder(m);
    for (int l = 0; l < c.L; l++) {
        float* ptrs[HF_LAYER_TENSORS];
        size_t rows[HF_LAYER_TENSORS], cols[HF_LAYER_TENSORS];
        hf_layer_slices(&dt, l, ptrs, rows, cols);
        for (int k = 0; k < HF_LAYER_TENSORS; k++) {
            HfSlot* s = &slots[l * HF_LAYER_TENSORS + k];
            snprintf(s->name, sizeof(s->name), "model.layers.%d.%s", l, hf_layer_names[k]);
            s->dst = ptrs[k]; s->rows = rows[k]; s->cols = cols[k];
        }
    }
    HfSlot* tail = &slots[c.L * HF_LAYER_TENSORS];
    tail[0] = (HfSlot){"model.embed_tokens.weight", p->tok_emb, (size_t)c.V, (size_t)c.C, 0};
    tail[1] = (HfSlot){"model.norm.weight", p->rms_final, (size_t)c.C, 0, 0};
    tail[2] = (HfSlot){"lm_head.weight", p->lm_head, (size_t)c.V, (size_t)c.C, 0};

    // one shard in memory at a time: each of its tensors fills its slot
    char (*shards)[512] = (char (*)[512])mallocCheck(4096 * 512);
    int n_shards = hf_shards(dir, shards, 4096);
    for (int i = 0; i < n_shards; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, shards[i]);
        Safetensors st;
        st_open(&st, path);
        for (int t = 0; t < st.n_tensors; t++) {
            const StTensor* x = &st.tensors[t];
            HfSlot* s = NULL;
            for (int k = 0; k < n_known && s == NULL; k++) if (strcmp(slots[k].name, x->name) == 0) s = &slots[k];
            if (s == NULL) {
                if (strstr(x->name, "rotary_emb.inv_freq") != NULL) continue;  // a buffer older exports saved
                die("'%s' holds tensor '%s', which a LLaMA model of this config does not have", path, x->name);
            }
            if (s >= slots + n_required) continue;  // an lm_head.weight beside tied embeddings is ignored, as HF does
            if (x->dtype != ST_F32 && x->dtype != ST_F16 && x->dtype != ST_BF16) {
                die("'%s': tensor '%s' is not floating point (F32, F16 or BF16)", path, x->name);
            }
            int shape_ok = s->cols ? (x->ndim == 2 && x->shape[0] == s->rows && x->shape[1] == s->cols)
                                   : (x->ndim == 1 && x->shape[0] == s->rows);
            if (!shape_ok) {
                die("'%s': tensor '%s' has %d dimensions (%zu x %zu), config.json implies (%zu x %zu)", path, x->name,
                    x->ndim, x->shape[0], x->ndim > 1 ? x->shape[1] : 1, s->rows, s->cols ? s->cols : 1);
            }
            if (s->filled) die("'%s': tensor '%s' appears twice in the shards", path, x->name);
            st_read_f32(&st, x->name, s->dst, x->numel);
            // a NaN or an infinity would surface only later, as a training loss of NaN
            for (size_t e = 0; e < x->numel; e++) {
                if (!isfinite(s->dst[e])) die("'%s': tensor '%s' holds %g at element %zu, expected finite weights", path, x->name, s->dst[e], e);
            }
            s->filled = 1;
        }
        st_close(&st);
    }
    for (int k = 0; k < n_required; k++) {
        if (!slots[k].filled) die("'%s' has no tensor '%s'%s", dir, slots[k].name,
                                  k == n_known - 1 ? " (config.json says tie_word_embeddings is false)" : "");
    }
    free(shards);
    free(slots);
    if (tok_path) {
        tokenizer_load_llama2c(&m->tok, tok_path);
        m->has_tok = 1;
        if (m->tok.vocab_size != c.V) die("'%s' has %d tokens, the model in '%s' %d", tok_path, m->tok.vocab_size, dir, c.V);
    }
    input_end(outer);
}
