// oracle.h: the HF transformers oracle fixture (method.md 10.1): a 4-layer teacher, a
// 2-layer student, the distillation adapters, one batch of right-padded
// histories, and every number HF computed from them. Opens it, builds the models
// from it, and compares a tensor of ours with the fixture's (per element
// 1e-5 + 1e-4 |ref|). The CPU comparison (oracle_run, ./slmrec oracle) and the GPU test (test/test_gpu.cu)
// both use it, so it compiles as C and as C++.
#pragma once
#include "distill.h"
#include "safetensors.h"

// numbers from a flat JSON text (a fixture's sidecar): the value after "key": when
// n = 1, the first n elements of its array otherwise
static void json_numbers(const char* text, const char* key, const char* path, double* out, int n) {
    char pattern[128];
    snprintf(pattern, sizeof(pattern), "\"%s\"", key);
    const char* p = strstr(text, pattern);
    if (p == NULL) die("'%s' has no \"%s\"", path, key);
    p += strlen(pattern);
    const char* blank = " \t\r\n";
    p += strspn(p, blank);
    if (*p++ != ':') die("'%s': \"%s\" is not followed by ':'", path, key);
    p += strspn(p, blank);
    if (n > 1 && *p++ != '[') die("'%s': \"%s\" should be an array of %d numbers", path, key, n);
    for (int i = 0; i < n; i++) {
        p += strspn(p, blank);
        if (i > 0 && *p++ != ',') die("'%s': \"%s\" should be an array of %d numbers", path, key, n);
        char* end = NULL;
        out[i] = strtod(p, &end);
        if (end == p) die("'%s': \"%s\" is not followed by %s", path, key, n > 1 ? "an array of numbers" : "a number");
        p = end;
    }
}

static double json_number(const char* text, const char* key, const char* path) {
    double v;
    json_numbers(text, key, path, &v, 1);
    return v;
}

// an integer field of a sidecar, in [lo, hi]
static int json_int(const char* text, const char* key, const char* path, int lo, int hi) {
    double v = json_number(text, key, path);
    check_range(path, key, v, lo, hi);
    if (v != (int)v) die("'%s': \"%s\" is %g, expected an integer", path, key, v);
    return (int)v;
}

typedef struct {
    int n_tensors, n_failed;
    float max_rel;
    int print;
} OracleReport;

// one row: max abs error, max relative error (|d| / (|ref| + 1e-5)), pass if every
// element is within 1e-5 + 1e-4 |ref|
static void oracle_row(OracleReport* r, const char* name, const float* got, const float* ref, size_t n) {
    float max_abs = 0.0f, max_rel = 0.0f;
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(got[i] - ref[i]);
        if (!(d <= 1e-5f + 1e-4f * fabsf(ref[i]))) ok = 0;
        if (!(d <= max_abs)) max_abs = d;
        float rel = d / (fabsf(ref[i]) + 1e-5f);
        if (!(rel <= max_rel)) max_rel = rel;
    }
    r->n_tensors++;
    r->n_failed += !ok;
    if (!(max_rel <= r->max_rel)) r->max_rel = max_rel;
    if (r->print || !ok) printf("%-60s %11.3e %11.3e  %s\n", name, max_abs, max_rel, ok ? "ok" : "FAIL");
}

// compares a tensor of ours with the fixture's tensor `name`
static void oracle_check(OracleReport* r, const Safetensors* st, const char* name, const float* got, size_t n) {
    float* ref = (float*)mallocCheck(n * sizeof(float));
    st_read_f32(st, name, ref, n);
    oracle_row(r, name, got, ref, n);
    free(ref);
}

// hidden state k of m (k = L: the final norm's output) at every real token, against the
// fixture's (B, T, C) tensor at the same tokens. Pads are not computed here (e4srec.h
// packs them away), so the fixture's pad positions are left out of the comparison.
static void oracle_check_hidden(OracleReport* r, const Safetensors* st, const char* name, const E4SRec* m, int k) {
    const E4SRecConfig* c = &m->cfg;
    size_t T = (size_t)e4srec_T(c), C = (size_t)c->C, n = (size_t)m->B * T * C;
    float* ref = (float*)mallocCheck(n * sizeof(float));
    float* ref_real = (float*)callocCheck(n, sizeof(float));
    float* got = (float*)callocCheck(n, sizeof(float));
    st_read_f32(st, name, ref, n);
    const float* h = k < c->L ? m->acts.residual + (size_t)k * m->R * C : m->acts.lnf;
    for (int b = 0; b < m->B; b++) {
        for (int j = 0; j < c->P1 + m->row_start[b + 1] - m->row_start[b]; j++) {
            int row = j < c->P1 ? j : m->row_start[b] + j - c->P1;  // the instruction's rows are every sample's
            size_t at = ((size_t)b * T + (size_t)m->pos[row]) * C;
            memcpy(got + at, h + (size_t)row * C, C * sizeof(float));
            memcpy(ref_real + at, ref + at, C * sizeof(float));
        }
    }
    oracle_row(r, name, got, ref_real, n);
    free(ref); free(ref_real); free(got);
}

// compares every parameter gradient in m->grads with the fixture's grad.<who>.* tensors
static void oracle_check_grads(OracleReport* r, const Safetensors* st, const E4SRec* m, const char* who) {
    char name[256], wrap[64], llama[64], gname[300];
    snprintf(wrap, sizeof(wrap), "%s.", who);
    snprintf(llama, sizeof(llama), "%s.llama.", who);
    float* ptr;
    size_t numel;
    for (int i = 0; e4srec_hf_tensor(m, &m->grads, i, wrap, llama, name, sizeof(name), &ptr, &numel); i++) {
        snprintf(gname, sizeof(gname), "grad.%s", name);
        oracle_check(r, st, gname, ptr, numel);
    }
}

// loads an E4SRec of L layers under HF prefix `who` ("teacher" / "student")
static void oracle_load_model(E4SRec* m, const Safetensors* st, const char* who, const E4SRecConfig* cfg,
                              const float* item_table, const int* instr, const int* resp) {
    e4srec_build(m, cfg, item_table, instr, resp);
    char wrap[64], llama[64], name[256];
    snprintf(wrap, sizeof(wrap), "%s.", who);
    snprintf(llama, sizeof(llama), "%s.llama.", who);
    float* ptr;
    size_t numel;
    for (int i = 0; e4srec_hf_tensor(m, &m->params, i, wrap, llama, name, sizeof(name), &ptr, &numel); i++) {
        st_read_f32(st, name, ptr, numel);
    }
}

typedef struct {
    Safetensors st;
    char* meta;                      // the .json sidecar's text
    E4SRecConfig cfg;                // shared dimensions (L = 0)
    E4SRecConfig teacher_cfg, student_cfg;
    int B, blocks;
    float lambda_cos, lambda_norm, lambda_ms;
    float* table;                    // (I, D)
    int *instr, *resp;               // (P1), (P2)
    int *items, *targets;            // (B, S), (B)
} OracleFixture;

// the text of a fixture's .json sidecar (the same name, .json for .safetensors); json_path gets its path
static char* oracle_read_sidecar(const char* path, char* json_path, size_t cap) {
    snprintf(json_path, cap, "%s", path);
    char* dot = strrchr(json_path, '.');
    if (dot == NULL || strcmp(dot, ".safetensors") != 0) die("oracle: '%s' should end in .safetensors (its .json sidecar sits beside it)", path);
    snprintf(dot, cap - (dot - json_path), ".json");
    return read_file(json_path, NULL);
}

static void oracle_fixture_open(OracleFixture* f, const char* path) {
    memset(f, 0, sizeof(*f));
    const char* outer = input_begin(path);
    Safetensors* st = &f->st;
    st_open(st, path);
    char json_path[1024];
    const char* meta = f->meta = oracle_read_sidecar(path, json_path, sizeof(json_path));

    const StTensor* tok = st_shape(st, "teacher.llama.embed_tokens.weight", 2);
    const StTensor* items_t = st_shape(st, "inputs.items", 2);
    const StTensor* table_t = st_shape(st, "teacher.item_emb", 2);
    E4SRecConfig* cfg = &f->cfg;
    cfg->V = (int)tok->shape[0];
    cfg->C = (int)tok->shape[1];
    cfg->F = (int)st_shape(st, "teacher.llama.layers.0.mlp.gate_proj.weight", 2)->shape[0];
    cfg->NH = json_int(meta, "num_attention_heads", json_path, 1, DEC_MAX_HEADS);
    cfg->KVH = json_int(meta, "num_key_value_heads", json_path, 1, DEC_MAX_HEADS);
    cfg->HS = json_int(meta, "head_dim", json_path, 2, DEC_MAX_HEAD_SIZE);
    cfg->rms_eps = (float)json_number(meta, "rms_norm_eps", json_path);
    cfg->rope_theta = (float)json_number(meta, "rope_theta", json_path);
    cfg->D = (int)table_t->shape[1];
    cfg->I = (int)table_t->shape[0];
    cfg->P1 = (int)st_shape(st, "inputs.instr", 2)->shape[1];
    cfg->P2 = (int)st_shape(st, "inputs.resp", 2)->shape[1];
    cfg->S = (int)items_t->shape[1];
    f->B = (int)items_t->shape[0];
    int teacher_L = 0;
    char name[256];
    for (; teacher_L < DEC_MAX_LAYERS; teacher_L++) {
        snprintf(name, sizeof(name), "teacher.llama.layers.%d.input_layernorm.weight", teacher_L);
        if (st_find(st, name) == NULL) break;
    }
    f->teacher_cfg = f->student_cfg = *cfg;
    f->teacher_cfg.L = teacher_L;
    e4srec_validate_config(&f->teacher_cfg);  // every dimension in range before anything is sized by it
    f->student_cfg.L = json_int(meta, "student_layers", json_path, 1, teacher_L);
    f->blocks = json_int(meta, "distill_blocks", json_path, 1, f->student_cfg.L);
    double lambdas[3];
    json_numbers(meta, "lambdas", json_path, lambdas, 3);
    f->lambda_cos = (float)lambdas[0];
    f->lambda_norm = (float)lambdas[1];
    f->lambda_ms = (float)lambdas[2];

    int B = f->B, S = cfg->S;
    f->table = (float*)mallocCheck((size_t)cfg->I * cfg->D * sizeof(float));
    f->instr = (int*)mallocCheck(cfg->P1 * sizeof(int));
    f->resp = (int*)mallocCheck(cfg->P2 * sizeof(int));
    f->items = (int*)mallocCheck((size_t)B * S * sizeof(int));
    f->targets = (int*)mallocCheck(B * sizeof(int));
    int* mask = (int*)mallocCheck((size_t)B * S * sizeof(int));
    st_read_f32(st, "teacher.item_emb", f->table, (size_t)cfg->I * cfg->D);
    st_read_ids(st, "inputs.instr", f->instr, cfg->P1, 0, cfg->V - 1);
    st_read_ids(st, "inputs.resp", f->resp, cfg->P2, 0, cfg->V - 1);
    st_read_ids(st, "inputs.items", f->items, (size_t)B * S, 0, cfg->I - 1);
    st_read_ids(st, "inputs.mask", mask, (size_t)B * S, 0, 1);
    st_read_ids(st, "inputs.target", f->targets, B, 1, cfg->I - 1);
    for (int i = 0; i < B * S; i++) {
        if (mask[i] != (f->items[i] > 0)) die("'%s': inputs.mask must be 1 exactly where inputs.items is not the pad id 0", path);
    }
    free(mask);
    input_end(outer);
}

static void oracle_fixture_free(OracleFixture* f) {
    free(f->table); free(f->instr); free(f->resp); free(f->items); free(f->targets); free(f->meta);
    st_close(&f->st);
}

// the fixture's adapters into s (built with f->blocks blocks)
static void oracle_load_adapters(SLMRec* s, const OracleFixture* f) {
    char name[64];
    for (int i = 0; i < f->blocks - 1; i++) {
        snprintf(name, sizeof(name), "adapter.%d.weight", i);
        st_read_f32(&f->st, name, s->adapters + (size_t)i * f->cfg.D * f->cfg.C, (size_t)f->cfg.D * f->cfg.C);
    }
}

// the five SLMRec loss terms of the student, against the fixture's
static void oracle_check_student_losses(OracleReport* r, const Safetensors* st, const SLMRecLosses* loss) {
    const char* names[] = {"out.student.loss.ce", "out.student.loss.dcos", "out.student.loss.dnorm",
                           "out.student.loss.lms", "out.student.loss.total"};
    const float values[] = {loss->ce, loss->dcos, loss->dnorm, loss->lms, loss->total};
    for (int i = 0; i < 5; i++) oracle_check(r, st, names[i], &values[i], 1);
}

// the gradients of the blocks - 1 distillation adapters, dadapters (blocks - 1, D, C)
static void oracle_check_adapter_grads(OracleReport* r, const Safetensors* st, const float* dadapters, int blocks, int D, int C) {
    char name[64];
    for (int i = 0; i < blocks - 1; i++) {
        snprintf(name, sizeof(name), "grad.adapter.%d.weight", i);
        oracle_check(r, st, name, dadapters + (size_t)i * D * C, (size_t)D * C);
    }
}

// the CPU model m after its forward and backward: hidden states, logits, every parameter gradient
static void oracle_check_model(OracleReport* r, const Safetensors* st, const E4SRec* m, const char* who) {
    const E4SRecConfig* c = &m->cfg;
    char name[256];
    for (int k = 0; k <= c->L; k++) {
        snprintf(name, sizeof(name), "out.%s.hidden.%d", who, k);
        oracle_check_hidden(r, st, name, m, k);
    }
    snprintf(name, sizeof(name), "out.%s.logits", who);
    oracle_check(r, st, name, m->acts.logits, (size_t)m->B * c->I);
    oracle_check_grads(r, st, m, who);
}

// the whole comparison on the CPU: the teacher's CE forward and backward, then the
// student's SLMRec loss against the frozen teacher, forward and backward
static OracleReport oracle_run(const char* path, int print) {
    OracleReport r = {0, 0, 0.0f, print};
    OracleFixture f;
    oracle_fixture_open(&f, path);
    E4SRec teacher, student;
    oracle_load_model(&teacher, &f.st, "teacher", &f.teacher_cfg, f.table, f.instr, f.resp);
    float teacher_loss = e4srec_forward(&teacher, f.items, f.targets, f.B);
    e4srec_zero_grad(&teacher);
    e4srec_ce_backward(&teacher, 1.0f);
    e4srec_backward(&teacher);
    if (print) printf("%-60s %11s %11s\n", "tensor", "max abs", "max rel");
    oracle_check(&r, &f.st, "out.teacher.loss", &teacher_loss, 1);
    oracle_check_model(&r, &f.st, &teacher, "teacher");

    oracle_load_model(&student, &f.st, "student", &f.student_cfg, f.table, f.instr, f.resp);
    SLMRec slm;
    slmrec_build(&slm, &student, &teacher, f.blocks, f.lambda_cos, f.lambda_norm, f.lambda_ms, NULL);
    oracle_load_adapters(&slm, &f);
    SLMRecLosses loss = slmrec_forward(&slm, f.items, f.targets, f.B);
    slmrec_backward(&slm);
    oracle_check_student_losses(&r, &f.st, &loss);
    oracle_check_model(&r, &f.st, &student, "student");
    oracle_check_adapter_grads(&r, &f.st, slm.dadapters, f.blocks, f.cfg.D, f.cfg.C);

    slmrec_free(&slm);
    e4srec_free(&student);
    e4srec_free(&teacher);
    oracle_fixture_free(&f);
    return r;
}
