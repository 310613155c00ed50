// llama.h: a pretrained LLaMA language model, the base every E4SRec decoder
// can start from. The SLMRec paper fine-tunes its teacher from a pretrained
// LLaMA and builds its student from the first N of those layers; this file
// holds such a model, writes and reads it as the project's base checkpoint
// (KIND_LLAMA, made by `import-llama2c` / `import-hf`), and runs it as a
// language model with a KV cache (`generate`), which proves that an imported
// model computes what the program that trained it computes.
//
// Weights use the same layout as E4SRec's decoder (e4srec.h): matrices (out, in)
// row-major, q/k/v stacked by rows, gate/up stacked by rows, q and k rows in HF's
// half-split RoPE order (llama2.c's adjacent-pair rows are permuted on import).
#pragma once
#include <ctype.h>
#include "layers.h"
#include "tokenizer.h"

typedef struct {
    int V;         // token vocabulary
    int C;         // hidden width
    int F;         // MLP width
    int L;         // decoder layers
    int NH;        // query heads
    int KVH;       // key/value heads
    int HS;        // head size
    int max_seq;   // longest context the model was trained for
    float rms_eps, rope_theta;
    int tied;      // 1: the classifier is tok_emb (no lm_head tensor)
} LlamaConfig;

#define LLAMA_NUM_PARAMS 9
typedef struct {
    float* tok_emb;    // (V, C)
    float* rms1;       // (L, C)
    float* wqkv;       // (L, (NH+2KVH)*HS, C)
    float* wo;         // (L, C, NH*HS)
    float* rms2;       // (L, C)
    float* wgateup;    // (L, 2F, C)
    float* wdown;      // (L, C, F)
    float* rms_final;  // (C)
    float* lm_head;    // (V, C); points at tok_emb when tied
} LlamaParams;

typedef struct {
    LlamaConfig cfg;
    LlamaParams params;
    size_t param_sizes[LLAMA_NUM_PARAMS];
    size_t num_params;
    float* params_memory;
    Tokenizer tok;   // the model's vocabulary, when it has one
    int has_tok;
} Llama;

// ----------------------------------------------------------------------------
// HF's names for the nine tensors of a decoder layer, and where each lives in
// the layer-stacked tensors that llama.h and e4srec.h share. A matrix slice is
// (rows, cols); a norm weight is (rows) with cols 0.

#define HF_LAYER_TENSORS 9
static const char* const hf_layer_names[HF_LAYER_TENSORS] = {
    "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
    "self_attn.o_proj.weight", "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
    "mlp.down_proj.weight"};

typedef struct {
    float *rms1, *wqkv, *wo, *rms2, *wgateup, *wdown;  // layer-stacked, as LlamaParams / E4SRecParams
    int C, F, NH, KVH, HS;
} DecoderTensors;

static void hf_layer_slices(const DecoderTensors* d, int l, float* ptrs[HF_LAYER_TENSORS],
                            size_t rows[HF_LAYER_TENSORS], size_t cols[HF_LAYER_TENSORS]) {
    size_t C = d->C, F = d->F, Q = (size_t)d->NH * d->HS, KV = (size_t)d->KVH * d->HS, QKV = Q + 2 * KV;
    float* wqkv = d->wqkv + l * QKV * C;
    float* wgu = d->wgateup + l * 2 * F * C;
    float* p[HF_LAYER_TENSORS] = {d->rms1 + l * C, wqkv, wqkv + Q * C, wqkv + (Q + KV) * C, d->wo + l * C * Q,
                                  d->rms2 + l * C, wgu, wgu + F * C, d->wdown + l * C * F};
    size_t r[HF_LAYER_TENSORS] = {C, Q, KV, KV, C, C, F, F, C};
    size_t k[HF_LAYER_TENSORS] = {0, C, C, C, Q, 0, C, C, F};
    memcpy(ptrs, p, sizeof(p));
    memcpy(rows, r, sizeof(r));
    memcpy(cols, k, sizeof(k));
}

static int llama_QKV(const LlamaConfig* c) { return (c->NH + 2 * c->KVH) * c->HS; }

// a decoder's shape, wherever it was read (a checkpoint, config.json, flags). The bounds
// are far beyond any model this runs, and keep every product the code forms in int
// (heads x head size, C x F, T x QKV) below 2^31 and the parameter count inside size_t.
#define DEC_MAX_VOCAB (1 << 20)
#define DEC_MAX_WIDTH (1 << 14)   // C, and heads x head size
#define DEC_MAX_MLP (1 << 16)
#define DEC_MAX_LAYERS 256
#define DEC_MAX_HEADS 256
#define DEC_MAX_HEAD_SIZE 512
#define DEC_MAX_POSITIONS (1 << 16)
static void decoder_check(const char* source, int V, int C, int F, int L, int NH, int KVH, int HS, float eps, float theta) {
    check_range(source, "vocab_size", V, 1, DEC_MAX_VOCAB);
    check_range(source, "hidden size", C, 1, DEC_MAX_WIDTH);
    check_range(source, "MLP width", F, 1, DEC_MAX_MLP);
    check_range(source, "layers", L, 1, DEC_MAX_LAYERS);
    check_range(source, "query heads", NH, 1, DEC_MAX_HEADS);
    check_range(source, "key/value heads", KVH, 1, NH);
    check_range(source, "head size", HS, 2, DEC_MAX_HEAD_SIZE);
    check_range(source, "query heads x head size", (double)NH * HS, 1, DEC_MAX_WIDTH);
    if (NH % KVH != 0) die("%s: %d query heads are not a multiple of %d key/value heads", source, NH, KVH);
    if (HS % 2 != 0) die("%s: head size %d must be even for RoPE", source, HS);
    check_range(source, "rms_norm_eps", eps, 1e-12, 0.1);
    check_range(source, "rope_theta", theta, 2.0, 1e9);
}

static void llama_validate_config(const LlamaConfig* c, const char* source) {
    decoder_check(source, c->V, c->C, c->F, c->L, c->NH, c->KVH, c->HS, c->rms_eps, c->rope_theta);
    check_range(source, "max_seq", c->max_seq, 1, DEC_MAX_POSITIONS);
    check_range(source, "the tied-classifier flag", c->tied, 0, 1);
}

// allocates the parameters (zeroed) for cfg; the caller fills them
static void llama_build(Llama* m, const LlamaConfig* cfg, const char* source) {
    memset(m, 0, sizeof(*m));
    llama_validate_config(cfg, source);
    m->cfg = *cfg;
    size_t L = cfg->L, C = cfg->C, F = cfg->F, V = cfg->V, QKV = llama_QKV(cfg), Q = (size_t)cfg->NH * cfg->HS;
    size_t* s = m->param_sizes;
    s[0] = V * C;
    s[1] = L * C;
    s[2] = L * QKV * C;
    s[3] = L * C * Q;
    s[4] = L * C;
    s[5] = L * 2 * F * C;
    s[6] = L * C * F;
    s[7] = C;
    s[8] = cfg->tied ? 0 : V * C;
    m->num_params = sizes_total(s, LLAMA_NUM_PARAMS);
    m->params_memory = (float*)callocCheck(m->num_params, sizeof(float));
    LlamaParams* p = &m->params;
    float** ptrs[LLAMA_NUM_PARAMS] = {&p->tok_emb, &p->rms1, &p->wqkv, &p->wo, &p->rms2, &p->wgateup, &p->wdown,
                                      &p->rms_final, &p->lm_head};
    arena_point(m->params_memory, ptrs, s, LLAMA_NUM_PARAMS);
    if (cfg->tied) p->lm_head = p->tok_emb;
}

static DecoderTensors llama_decoder(const Llama* m) {
    const LlamaParams* p = &m->params;
    const LlamaConfig* c = &m->cfg;
    DecoderTensors d = {p->rms1, p->wqkv, p->wo, p->rms2, p->wgateup, p->wdown, c->C, c->F, c->NH, c->KVH, c->HS};
    return d;
}

static void llama_free(Llama* m) {
    free(m->params_memory);
    if (m->has_tok) tokenizer_free(&m->tok);
    memset(m, 0, sizeof(*m));
}

// ----------------------------------------------------------------------------
// the base checkpoint. header dims: V C F L NH KVH HS max_seq eps-bits theta-bits tied has_tokenizer
// payload: [tokenizer section] | params (f32, llama_build's order; no lm_head when tied)

#define LLAMA_DIMS 12

static void llama_save(const char* path, const Llama* m) {
    const LlamaConfig* c = &m->cfg;
    int dims[LLAMA_DIMS] = {c->V, c->C, c->F, c->L, c->NH, c->KVH, c->HS, c->max_seq, 0, 0, c->tied, m->has_tok};
    memcpy(&dims[8], &c->rms_eps, sizeof(float));
    memcpy(&dims[9], &c->rope_theta, sizeof(float));
    Buffer b = {NULL, 0, 0};
    if (m->has_tok) tokenizer_write_to(&b, &m->tok);
    buffer_put(&b, m->params_memory, m->num_params * sizeof(float));
    binfile_write(path, KIND_LLAMA, dims, LLAMA_DIMS, b.data, b.size);
    free(b.data);
}

static void llama_load(Llama* m, const char* path) {
    const char* outer = input_begin(path);  // named by any refusal below
    int dims[HEADER_DIMS];
    size_t nbytes = 0;
    char* payload = (char*)binfile_read(path, KIND_LLAMA, dims, &nbytes);
    LlamaConfig c = {.V = dims[0], .C = dims[1], .F = dims[2], .L = dims[3], .NH = dims[4], .KVH = dims[5],
                     .HS = dims[6], .max_seq = dims[7], .rms_eps = 0.0f, .rope_theta = 0.0f, .tied = dims[10]};
    memcpy(&c.rms_eps, &dims[8], sizeof(float));
    memcpy(&c.rope_theta, &dims[9], sizeof(float));
    payload_must_hold(path, nbytes, 4.0 * c.V * c.C, "the token embeddings");
    llama_build(m, &c, path);
    Cursor cur = {payload, nbytes, 0, path};
    if (dims[11]) {
        tokenizer_read_from(&cur, &m->tok);
        m->has_tok = 1;
        if (m->tok.vocab_size != c.V) die("'%s': its tokenizer has %d tokens, the model %d", path, m->tok.vocab_size, c.V);
    }
    cursor_take(&cur, m->params_memory, m->num_params * sizeof(float), "the parameters");
    cursor_done(&cur);
    free(payload);
    input_end(outer);
}

// ----------------------------------------------------------------------------
// inference with a KV cache: llama_forward runs n new tokens at positions
// pos0 .. pos0+n-1, appends their keys and values to the cache, and leaves the
// logits of the last one. n = the whole prompt at pos0 = 0 (prefill) and n = 1
// afterwards (decoding) are the same code.

typedef struct {
    int capacity;       // positions the cache holds
    int max_n;          // tokens per call
    float* key_cache;   // (L, capacity, KVH*HS) keys after RoPE
    float* value_cache; // (L, capacity, KVH*HS)
    float* x;           // (max_n, C) residual stream
    float* xn;          // (max_n, C) RMSNorm output
    float* rstd;        // (max_n)
    float* qkv;         // (max_n, QKV)
    float* atty;        // (max_n, NH*HS)
    float* scores;      // (max_n, NH, capacity) attention probabilities (scratch)
    float* gateup;      // (max_n, 2F)
    float* swiglu;      // (max_n, F)
    float* branch;      // (max_n, C)
    float* logits;      // (V) of the last token
    int* pos;           // (max_n) the positions of the tokens of a call
    RopeTable rope;     // the capacity positions' RoPE angles
} LlamaState;

#define LLAMA_STATE_BUFFERS 12
static void llama_state_build(LlamaState* s, const LlamaConfig* c, int capacity, int max_n) {
    memset(s, 0, sizeof(*s));
    s->capacity = capacity;
    s->max_n = max_n;
    size_t KV = (size_t)c->KVH * c->HS, n = max_n, C = c->C;
    size_t sizes[LLAMA_STATE_BUFFERS] = {c->L * capacity * KV, c->L * capacity * KV, n * C, n * C, n,
                                         n * llama_QKV(c), n * c->NH * c->HS, n * c->NH * capacity,
                                         n * 2 * c->F, n * c->F, n * C, (size_t)c->V};
    float** ptrs[LLAMA_STATE_BUFFERS] = {&s->key_cache, &s->value_cache, &s->x, &s->xn, &s->rstd, &s->qkv, &s->atty,
                                         &s->scores, &s->gateup, &s->swiglu, &s->branch, &s->logits};
    arena_alloc(ptrs, sizes, LLAMA_STATE_BUFFERS);
    s->pos = (int*)mallocCheck((size_t)max_n * sizeof(int));
    rope_table_build(&s->rope, capacity, c->HS, c->rope_theta);
}

static void llama_state_free(LlamaState* s) {
    free(s->key_cache);  // the arena starts here
    free(s->pos);
    rope_table_free(&s->rope);
    memset(s, 0, sizeof(*s));
}

static void llama_forward(const Llama* m, LlamaState* s, const int* tokens, int n, int pos0) {
    const LlamaConfig* c = &m->cfg;
    const LlamaParams* p = &m->params;
    if (n < 1 || n > s->max_n || pos0 < 0 || pos0 + n > s->capacity) {
        die("llama_forward: %d tokens at position %d do not fit (at most %d per call, %d positions)", n, pos0, s->max_n, s->capacity);
    }
    int C = c->C, F = c->F, QKV = llama_QKV(c), Q = c->NH * c->HS, KV = c->KVH * c->HS;
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->V) die("llama_forward: token %d is outside the vocabulary 0..%d", tokens[i], c->V - 1);
    }
    for (int i = 0; i < n; i++) s->pos[i] = pos0 + i;
    embedding_forward(s->x, tokens, p->tok_emb, n, C);
    for (int l = 0; l < c->L; l++) {
        float* kc = s->key_cache + (size_t)l * s->capacity * KV;
        float* vc = s->value_cache + (size_t)l * s->capacity * KV;
        rmsnorm_forward(s->xn, s->rstd, s->x, p->rms1 + (size_t)l * C, n, C, c->rms_eps);
        matmul_forward(s->qkv, s->xn, p->wqkv + (size_t)l * QKV * C, NULL, n, C, QKV);
        rope_forward(s->qkv, n, s->pos, QKV, c->NH + c->KVH, &s->rope);
        for (int i = 0; i < n; i++) {
            memcpy(kc + (size_t)(pos0 + i) * KV, s->qkv + (size_t)i * QKV + Q, KV * sizeof(float));
            memcpy(vc + (size_t)(pos0 + i) * KV, s->qkv + (size_t)i * QKV + Q + KV, KV * sizeof(float));
        }
        attention_query(s->atty, s->scores, s->qkv, QKV, kc, vc, KV, n, pos0, c->NH, c->KVH, c->HS);
        matmul_forward(s->branch, s->atty, p->wo + (size_t)l * C * Q, NULL, n, Q, C);
        residual_forward(s->x, s->x, s->branch, (size_t)n * C);
        rmsnorm_forward(s->xn, s->rstd, s->x, p->rms2 + (size_t)l * C, n, C, c->rms_eps);
        matmul_forward(s->gateup, s->xn, p->wgateup + (size_t)l * 2 * F * C, NULL, n, C, 2 * F);
        swiglu_forward(s->swiglu, s->gateup, n, F);
        matmul_forward(s->branch, s->swiglu, p->wdown + (size_t)l * C * F, NULL, n, F, C);
        residual_forward(s->x, s->x, s->branch, (size_t)n * C);
    }
    const float* last = s->x + (size_t)(n - 1) * C;
    rmsnorm_forward(s->xn, s->rstd, last, p->rms_final, 1, C, c->rms_eps);
    matmul_forward(s->logits, s->xn, p->lm_head, NULL, 1, C, c->V);
}

// ----------------------------------------------------------------------------
// sampling the next token: greedy at temperature 0, else from softmax(logits / T),
// restricted to the smallest set of most likely tokens whose mass reaches top_p
// (nucleus sampling) when 0 < top_p < 1

typedef struct {
    float p;
    int id;
} TokenProb;

static int token_prob_desc(const void* a, const void* b) {
    float x = ((const TokenProb*)a)->p, y = ((const TokenProb*)b)->p;
    return x > y ? -1 : (x < y ? 1 : ((const TokenProb*)a)->id - ((const TokenProb*)b)->id);
}

static int sample_token(float* logits, int V, float temperature, float top_p, Rng* rng, TokenProb* scratch) {
    // scratch (V); logits are overwritten when sampling
    int best = 0;
    for (int i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;  // the first maximum, as llama2.c
    if (temperature <= 0.0f) return best;
    float maxv = logits[best];
    double sum = 0.0;
    for (int i = 0; i < V; i++) { logits[i] = expf((logits[i] - maxv) / temperature); sum += logits[i]; }
    int n = V;
    for (int i = 0; i < V; i++) scratch[i] = (TokenProb){(float)(logits[i] / sum), i};
    if (top_p > 0.0f && top_p < 1.0f) {
        qsort(scratch, (size_t)V, sizeof(TokenProb), token_prob_desc);
        double mass = 0.0;
        for (n = 0; n < V && mass < top_p; n++) mass += scratch[n].p;
    }
    double total = 0.0;
    for (int i = 0; i < n; i++) total += scratch[i].p;
    double coin = rng_f32(rng) * total, cdf = 0.0;
    for (int i = 0; i < n; i++) {
        cdf += scratch[i].p;
        if (coin < cdf) return scratch[i].id;
    }
    return scratch[n - 1].id;  // rounding
}

// ----------------------------------------------------------------------------
// text generation, as llama2.c's `run` does it: the prompt (BOS + its tokens)
// is fed in one prefill, then each sampled token is fed back, until `steps`
// positions are used or the model emits BOS. Prints the prompt's text and the
// continuation, skipping single bytes that are neither printable nor space,
// then a newline. Returns the number of tokens sampled.

static void print_piece(FILE* out, const Tokenizer* t, int prev_id, int id) {
    int len;
    const char* piece = tokenizer_piece(t, prev_id, id, &len);
    if (len == 1 && !(isprint((unsigned char)piece[0]) || isspace((unsigned char)piece[0]))) return;
    fwrite(piece, 1, (size_t)len, out);
}

static int llama_generate(const Llama* m, const char* prompt, int steps, float temperature, float top_p, uint64_t seed,
                          FILE* out) {
    const LlamaConfig* c = &m->cfg;
    if (!m->has_tok) die("generate: the model has no tokenizer (import it with one)");
    if (steps < 1 || steps > c->max_seq) die("generate: --steps %d is outside 1..%d (the model's context)", steps, c->max_seq);
    // refused by its length first: encoding a long text costs far more than this check
    size_t len = strlen(prompt);
    size_t at_least = tokenizer_min_ids(&m->tok, len, 1, 0);
    if (at_least > (size_t)steps) {
        die("generate: the prompt is %zu bytes, at least %zu tokens with BOS (no token covers more than %d bytes), more than --steps %d",
            len, at_least, m->tok.max_token_length, steps);
    }
    int cap = (int)len + 3;
    int* ids = (int*)mallocCheck((size_t)cap * sizeof(int));
    int n_prompt = tokenizer_encode(&m->tok, prompt, 1, 0, ids, cap);
    if (n_prompt > steps) die("generate: the prompt is %d tokens, more than --steps %d", n_prompt, steps);
    LlamaState s;
    llama_state_build(&s, c, steps, n_prompt);
    TokenProb* scratch = (TokenProb*)mallocCheck((size_t)c->V * sizeof(TokenProb));
    Rng rng;
    rng_seed(&rng, seed);
    for (int i = 1; i < n_prompt; i++) print_piece(out, &m->tok, ids[i - 1], ids[i]);
    llama_forward(m, &s, ids, n_prompt, 0);
    int token = ids[n_prompt - 1], sampled = 0;
    for (int pos = n_prompt - 1;;) {  // s.logits are those of position pos
        int next = sample_token(s.logits, c->V, temperature, top_p, &rng, scratch);
        sampled++;
        if (next == m->tok.bos_id) break;
        print_piece(out, &m->tok, token, next);
        token = next;
        if (++pos == steps) break;
        llama_forward(m, &s, &token, 1, pos);
    }
    fputc('\n', out);
    free(scratch);
    free(ids);
    llama_state_free(&s);
    return sampled;
}
