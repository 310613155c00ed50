// slmrec.c: SLMRec (small language models for sequential recommendation) and
// DLLM2Rec in C. The CPU reference and the command-line driver.
//
// Read in data-flow order; each header is one section:
#include "src/utils.h"       // checked libc calls, arenas, RNG, timing, atomic outputs
#include "src/binfile.h"     // the project's binary container (header, checksum)
#include "src/safetensors.h" // HF safetensors reader (oracle fixture, HF checkpoints)
#include "src/layers.h"      // every layer, forward next to backward
#include "src/e4srec.h"      // the E4SRec model: LLaMA decoder over [prompt | items | prompt]
#include "src/distill.h"     // the SLMRec loss: CE + Dcos + Dnorm + multi-supervision
#include "src/optim.h"       // AdamW, cosine schedule, clipping
#include "src/data.h"        // sequence files, split, batches, synthetic data, prep
#include "src/eval.h"        // full and sampled ranking metrics
#include "src/tokenizer.h"   // byte-level BPE and llama2.c vocabularies

// ----------------------------------------------------------------------------
// command-line flags: one table per command, which also prints its --help

typedef enum { ARG_INT, ARG_FLOAT, ARG_STR, ARG_BOOL } ArgType;

typedef struct {
    const char* name;  // "--lr"
    ArgType type;
    void* dst;         // int*, float*, const char**, int*
    const char* help;
} ArgSpec;

static void print_usage(const char* cmd, const char* summary, const ArgSpec* specs, int n) {
    printf("usage: ./slmrec %s [flags]\n\n%s\n\nflags:\n", cmd, summary);
    for (int i = 0; i < n; i++) {
        char def[64] = "";
        switch (specs[i].type) {
            case ARG_INT: snprintf(def, sizeof(def), "%d", *(int*)specs[i].dst); break;
            case ARG_FLOAT: snprintf(def, sizeof(def), "%g", *(float*)specs[i].dst); break;
            case ARG_STR: snprintf(def, sizeof(def), "%s", *(const char**)specs[i].dst ? *(const char**)specs[i].dst : "(none)"); break;
            case ARG_BOOL: snprintf(def, sizeof(def), "%s", *(int*)specs[i].dst ? "on" : "off"); break;
        }
        printf("  %-18s %s (default: %s)\n", specs[i].name, specs[i].help, def);
    }
    printf("  %-18s %s\n", "--help", "this message");
}

// parses argv (after the command name) against specs; exits 0 after --help, 1 on a bad flag
static void parse_args(const char* cmd, const char* summary, int argc, char** argv, const ArgSpec* specs, int n) {
    for (int a = 0; a < argc; a++) {
        if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
            print_usage(cmd, summary, specs, n);
            exit(EXIT_SUCCESS);
        }
        const ArgSpec* s = NULL;
        for (int i = 0; i < n; i++) if (strcmp(argv[a], specs[i].name) == 0) s = &specs[i];
        if (s == NULL) die("%s: unknown flag '%s' (see ./slmrec %s --help)", cmd, argv[a], cmd);
        if (s->type == ARG_BOOL) { *(int*)s->dst = 1; continue; }
        if (a + 1 >= argc) die("%s: flag %s needs a value (%s)", cmd, s->name, s->help);
        const char* v = argv[++a];
        char* end = NULL;
        errno = 0;
        if (s->type == ARG_INT) {
            long x = strtol(v, &end, 10);
            if (*v == 0 || *end != 0 || errno || x < -2147483647L || x > 2147483647L) {
                die("%s: flag %s expects an integer, got '%s'", cmd, s->name, v);
            }
            *(int*)s->dst = (int)x;
        } else if (s->type == ARG_FLOAT) {
            float x = strtof(v, &end);
            if (*v == 0 || *end != 0 || errno || !isfinite(x)) die("%s: flag %s expects a number, got '%s'", cmd, s->name, v);
            *(float*)s->dst = x;
        } else {
            *(const char**)s->dst = v;
        }
    }
}

// ----------------------------------------------------------------------------
// oracle: the fixture's HF transformers numbers against this implementation

// a number from a flat JSON text: the value after "key": (the fixture's sidecar)
static double json_number(const char* text, const char* key, const char* path) {
    char pattern[128];
    snprintf(pattern, sizeof(pattern), "\"%s\"", key);
    const char* p = strstr(text, pattern);
    if (p == NULL) die("'%s' has no \"%s\"", path, key);
    p = strchr(p + strlen(pattern), ':');
    while (p && (*p == ':' || *p == ' ' || *p == '\n' || *p == '[')) p++;
    char* end = NULL;
    double v = p ? strtod(p, &end) : 0.0;
    if (p == NULL || end == p) die("'%s': \"%s\" is not followed by a number", path, key);
    return v;
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

// compares hidden states, logits and every parameter gradient of m
static void oracle_check_model(OracleReport* r, const Safetensors* st, const E4SRec* m, const char* who) {
    const E4SRecConfig* c = &m->cfg;
    size_t BTC = (size_t)m->B * e4srec_T(c) * c->C;
    char name[256], wrap[64], llama[64], gname[300];
    for (int k = 0; k <= c->L; k++) {
        snprintf(name, sizeof(name), "out.%s.hidden.%d", who, k);
        oracle_check(r, st, name, k < c->L ? m->acts.residual + k * BTC : m->acts.lnf, BTC);
    }
    snprintf(name, sizeof(name), "out.%s.logits", who);
    oracle_check(r, st, name, m->acts.logits, (size_t)m->B * c->I);
    snprintf(wrap, sizeof(wrap), "%s.", who);
    snprintf(llama, sizeof(llama), "%s.llama.", who);
    float* ptr;
    size_t numel;
    for (int i = 0; e4srec_hf_tensor(m, &m->grads, i, wrap, llama, name, sizeof(name), &ptr, &numel); i++) {
        snprintf(gname, sizeof(gname), "grad.%s", name);
        oracle_check(r, st, gname, ptr, numel);
    }
}

static OracleReport oracle_run(const char* path, int print) {
    OracleReport r = {0, 0, 0.0f, print};
    Safetensors st;
    st_open(&st, path);
    char json_path[1024];
    snprintf(json_path, sizeof(json_path), "%s", path);
    char* dot = strrchr(json_path, '.');
    if (dot == NULL || strcmp(dot, ".safetensors") != 0) die("oracle: '%s' should end in .safetensors (its .json sidecar sits beside it)", path);
    snprintf(dot, sizeof(json_path) - (dot - json_path), ".json");
    char* meta = read_file(json_path, NULL);

    const StTensor* tok = st_get(&st, "teacher.llama.embed_tokens.weight", 0);
    const StTensor* items_t = st_get(&st, "inputs.items", 0);
    const StTensor* table_t = st_get(&st, "teacher.item_emb", 0);
    E4SRecConfig cfg = {0};
    cfg.V = (int)tok->shape[0];
    cfg.C = (int)tok->shape[1];
    cfg.F = (int)st_get(&st, "teacher.llama.layers.0.mlp.gate_proj.weight", 0)->shape[0];
    cfg.NH = (int)json_number(meta, "num_attention_heads", json_path);
    cfg.KVH = (int)json_number(meta, "num_key_value_heads", json_path);
    cfg.HS = (int)json_number(meta, "head_dim", json_path);
    cfg.rms_eps = (float)json_number(meta, "rms_norm_eps", json_path);
    cfg.rope_theta = (float)json_number(meta, "rope_theta", json_path);
    cfg.D = (int)table_t->shape[1];
    cfg.I = (int)table_t->shape[0];
    cfg.P1 = (int)st_get(&st, "inputs.instr", 0)->shape[1];
    cfg.P2 = (int)st_get(&st, "inputs.resp", 0)->shape[1];
    cfg.S = (int)items_t->shape[1];
    int B = (int)items_t->shape[0];
    int teacher_L = 0;
    char name[256];
    for (;; teacher_L++) {
        snprintf(name, sizeof(name), "teacher.llama.layers.%d.input_layernorm.weight", teacher_L);
        if (st_find(&st, name) == NULL) break;
    }
    int student_L = (int)json_number(meta, "student_layers", json_path);
    int blocks = (int)json_number(meta, "distill_blocks", json_path);
    float l1 = (float)json_number(meta, "lambdas", json_path);  // the first of the three
    const char* lam = strstr(meta, "\"lambdas\"");
    float l2 = 0.0f, l3 = 0.0f;
    if (lam == NULL || sscanf(strchr(lam, '[') + 1, "%*f , %f , %f", &l2, &l3) != 2) die("'%s': cannot read \"lambdas\"", json_path);

    float* table = (float*)mallocCheck((size_t)cfg.I * cfg.D * sizeof(float));
    int* instr = (int*)mallocCheck(cfg.P1 * sizeof(int));
    int* resp = (int*)mallocCheck(cfg.P2 * sizeof(int));
    int* items = (int*)mallocCheck((size_t)B * cfg.S * sizeof(int));
    int* mask = (int*)mallocCheck((size_t)B * cfg.S * sizeof(int));
    int* targets = (int*)mallocCheck(B * sizeof(int));
    st_read_f32(&st, "teacher.item_emb", table, (size_t)cfg.I * cfg.D);
    st_read_i32(&st, "inputs.instr", instr, cfg.P1);
    st_read_i32(&st, "inputs.resp", resp, cfg.P2);
    st_read_i32(&st, "inputs.items", items, (size_t)B * cfg.S);
    st_read_i32(&st, "inputs.mask", mask, (size_t)B * cfg.S);
    st_read_i32(&st, "inputs.target", targets, B);
    for (int i = 0; i < B * cfg.S; i++) {
        if (mask[i] != (items[i] > 0)) die("'%s': inputs.mask must be 1 exactly where inputs.items is not the pad id 0", path);
    }

    // teacher: CE forward and backward
    E4SRec teacher, student;
    E4SRecConfig tcfg = cfg, scfg = cfg;
    tcfg.L = teacher_L;
    scfg.L = student_L;
    oracle_load_model(&teacher, &st, "teacher", &tcfg, table, instr, resp);
    float teacher_loss = e4srec_forward(&teacher, items, targets, B);
    e4srec_zero_grad(&teacher);
    e4srec_ce_backward(&teacher, 1.0f);
    e4srec_backward(&teacher);
    if (print) printf("%-60s %11s %11s\n", "tensor", "max abs", "max rel");
    oracle_check(&r, &st, "out.teacher.loss", &teacher_loss, 1);
    oracle_check_model(&r, &st, &teacher, "teacher");

    // student: the SLMRec loss against the frozen teacher
    oracle_load_model(&student, &st, "student", &scfg, table, instr, resp);
    SLMRec slm;
    slmrec_build(&slm, &student, &teacher, blocks, l1, l2, l3, NULL);
    for (int i = 0; i < blocks - 1; i++) {
        snprintf(name, sizeof(name), "adapter.%d.weight", i);
        st_read_f32(&st, name, slm.adapters + (size_t)i * cfg.D * cfg.C, (size_t)cfg.D * cfg.C);
    }
    SLMRecLosses loss = slmrec_forward(&slm, items, targets, B);
    slmrec_backward(&slm);
    const char* loss_names[] = {"out.student.loss.ce", "out.student.loss.dcos", "out.student.loss.dnorm",
                                "out.student.loss.lms", "out.student.loss.total"};
    float loss_values[] = {loss.ce, loss.dcos, loss.dnorm, loss.lms, loss.total};
    for (int i = 0; i < 5; i++) oracle_check(&r, &st, loss_names[i], &loss_values[i], 1);
    oracle_check_model(&r, &st, &student, "student");
    for (int i = 0; i < blocks - 1; i++) {
        snprintf(name, sizeof(name), "grad.adapter.%d.weight", i);
        oracle_check(&r, &st, name, slm.dadapters + (size_t)i * cfg.D * cfg.C, (size_t)cfg.D * cfg.C);
    }

    slmrec_free(&slm);
    e4srec_free(&student);
    e4srec_free(&teacher);
    free(table); free(instr); free(resp); free(items); free(mask); free(targets); free(meta);
    st_close(&st);
    return r;
}

static int cmd_oracle(int argc, char** argv) {
    const char* fixture = "../shared/fixtures/slmrec_oracle.safetensors";
    ArgSpec specs[] = {
        {"--fixture", ARG_STR, &fixture, "HF transformers reference (.safetensors with its .json beside it)"},
    };
    parse_args("oracle", "Runs the E4SRec teacher forward/backward and the SLMRec student loss forward/backward\n"
               "on the fixture's weights and inputs, and compares every hidden state, logit, loss term and\n"
               "parameter gradient with HF transformers. Tolerance per element: 1e-5 + 1e-4 |ref|.",
               argc, argv, specs, 1);
    OracleReport r = oracle_run(fixture, 1);
    if (r.n_failed == 0) {
        printf("oracle: PASS (%d tensors, max rel err %.3e)\n", r.n_tensors, r.max_rel);
        return 0;
    }
    printf("oracle: FAIL (%d of %d tensors outside tolerance, max rel err %.3e)\n", r.n_failed, r.n_tensors, r.max_rel);
    return 1;
}

// ----------------------------------------------------------------------------
// main

typedef struct {
    const char* name;
    int (*run)(int argc, char** argv);
    const char* help;
} Command;

static const Command commands[] = {
    {"oracle", cmd_oracle, "compare the teacher and the SLMRec loss with the HF transformers fixture"},
};
#define NUM_COMMANDS ((int)(sizeof(commands) / sizeof(commands[0])))

static void print_commands(void) {
    printf("usage: ./slmrec <command> [flags]   (./slmrec <command> --help for its flags)\n\ncommands:\n");
    for (int i = 0; i < NUM_COMMANDS; i++) printf("  %-16s %s\n", commands[i].name, commands[i].help);
}

#ifndef TESTING
int main(int argc, char** argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_commands();
        return 0;
    }
    for (int i = 0; i < NUM_COMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 2, argv + 2);
    }
    die("unknown command '%s' (./slmrec --help lists the commands)", argv[1]);
    return 1;
}
#endif
