// slmrec.c: SLMRec (small language models for sequential recommendation) and
// DLLM2Rec in C. The CPU reference and the command-line driver.
//
// Read in data-flow order; each header is one section (docs/method.md explains the
// method; src/layers.h, src/e4srec.h and src/distill.h are the heart of it):
#include <sys/stat.h>
#include "src/utils.h"       // checked libc calls, arenas, RNG, timing, atomic outputs
#include "src/data.h"        // sequence files, split, batches, synthetic data, prep
#include "src/layers.h"      // every layer, forward next to backward
#include "src/sasrec.h"      // SASRec: stage 1, its item table feeds E4SRec; a DLLM2Rec student
#include "src/tokenizer.h"   // byte-level BPE and llama2.c vocabularies
#include "src/llama.h"       // the LLaMA decoder's shape; a pretrained base, generation with a KV cache
#include "src/lora.h"        // low-rank adapters inside the decoder's matmuls
#include "src/e4srec.h"      // the E4SRec model: LLaMA decoder over [prompt | items | prompt]
#include "src/gpu_plan.h"    // the device memory of the CUDA path's handles, planned from a config (no GPU needed)
#include "src/distill.h"     // the SLMRec loss: CE + Dcos + Dnorm + multi-supervision
#include "src/gru4rec.h"     // GRU4Rec: a DLLM2Rec student
#include "src/caser.h"       // Caser: a DLLM2Rec student
#include "src/dllm2rec.h"    // the DLLM2Rec objective: CE or BCE + DROS, importance-weighted ranking distillation
#include "src/optim.h"       // AdamW, cosine schedule, clipping
#include "src/eval.h"        // full and sampled ranking metrics
#include "src/binfile.h"     // the project's binary container (header, checksum)
#include "src/checkpoint.h"  // model files: weights, prompt, tokenizer, training state
#include "src/student.h"     // a DLLM2Rec student behind one interface, its checkpoint
#include "src/signals.h"     // the teacher's top-K per training sample and item table, cached
#include "src/train.h"       // the training loop, evaluation, progress lines
#ifdef SLMREC_CUDA
#include "src/gpu.h"         // the CUDA path (kernels.cu): E4SRec/SLMRec on the GPU behind opaque handles
#endif
#include "src/jobs.h"        // each model as the trainer sees it (on the CPU or through gpu.h)
#include "src/safetensors.h" // HF safetensors reader (oracle fixtures, HF checkpoints)
#include "src/import.h"      // llama2.c and Hugging Face LLaMA models -> the base checkpoint
#include "src/oracle.h"      // the HF oracle fixture: its model, inputs, and the per-tensor comparison
#include "src/oracle_dllm2rec.h" // the PyTorch oracle fixture of DLLM2Rec: its students, inputs and comparison
#include "src/bench.h"       // the CPU bench: FMA peak, matmul GFLOP/s, model samples/s

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
        if (s == NULL) {
            char echo[ECHO_CAP];
            die("%s: unknown flag '%s' (see ./slmrec %s --help)", cmd, echo_input(argv[a], strlen(argv[a]), echo), cmd);
        }
        if (s->type == ARG_BOOL) { *(int*)s->dst = 1; continue; }
        if (a + 1 >= argc) die("%s: flag %s needs a value (%s)", cmd, s->name, s->help);
        const char* v = argv[++a];
        char* end = NULL;
        char echo[ECHO_CAP];
        errno = 0;
        if (s->type == ARG_INT) {
            long x = strtol(v, &end, 10);
            if (*v == 0 || *end != 0 || errno || x < -2147483647L || x > 2147483647L) {
                die("%s: flag %s expects an integer, got '%s'", cmd, s->name, echo_input(v, strlen(v), echo));
            }
            *(int*)s->dst = (int)x;
        } else if (s->type == ARG_FLOAT) {
            float x = strtof(v, &end);
            if (*v == 0 || *end != 0 || errno || !isfinite(x)) {
                die("%s: flag %s expects a number, got '%s'", cmd, s->name, echo_input(v, strlen(v), echo));
            }
            *(float*)s->dst = x;
        } else {
            *(const char**)s->dst = v;
        }
    }
}

static int cmd_oracle(int argc, char** argv) {
    const char* fixture = "../shared/fixtures/slmrec_oracle.safetensors";
    ArgSpec specs[] = {
        {"--fixture", ARG_STR, &fixture, "reference fixture (.safetensors with its .json beside it)"},
    };
    parse_args("oracle", "Compares this implementation with a reference fixture, tensor by tensor, and says which it\n"
               "found. slmrec_oracle: the E4SRec teacher forward/backward and the SLMRec student loss\n"
               "forward/backward against HF transformers: every hidden state, logit, loss term and parameter\n"
               "gradient. dllm2rec_oracle: the GRU4Rec and Caser students with the collaborative embedding\n"
               "distillation against PyTorch autograd: logits, features, the importance weights, every loss\n"
               "term and the gradients of both objectives. Tolerance per element: 1e-5 + 1e-4 |ref|.",
               argc, argv, specs, 1);
    OracleReport r = oracle_run_any(fixture, 1);
    if (r.n_failed == 0) {
        printf("oracle: PASS (%d tensors, max rel err %.3e)\n", r.n_tensors, r.max_rel);
        return 0;
    }
    printf("oracle: FAIL (%d of %d tensors outside tolerance, max rel err %.3e)\n", r.n_failed, r.n_tensors, r.max_rel);
    return 1;
}


// ----------------------------------------------------------------------------
// configuration of the training commands: one struct, flag tables per group

typedef struct {
    // data and run
    const char* data;          // sequence file; NULL = the built-in synthetic data
    const char* out;           // output directory
    int seed, max_len, eval_batch, resume, stop_after;
    // SASRec (stage 1)
    int sas_dim, sas_blocks, sas_heads, sas_epochs, sas_batch, sas_patience;
    float sas_dropout, sas_lr;
    // E4SRec teacher, plain E4SRec_l, SLMRec student (stages 2 and 3)
    int hidden, ffn, heads, kv_heads, teacher_layers, student_layers;
    int epochs, batch, patience, warmup, vocab;
    float lr, min_lr, weight_decay, clip, time_budget;
    const char* instruction;
    const char* response;
    const char* init;          // pretrained base checkpoint the decoders start from; NULL = random
    int lora_rank;             // 0: full fine-tuning; else LoRA adapters of this rank over a frozen decoder
    float lora_alpha;
    const char* lora_targets;
    int blocks, online, init_random;
    float lambda_cos, lambda_norm, lambda_ms;
    // DLLM2Rec students (SASRec reads its blocks and heads from the SASRec flags)
    int st_dim, st_epochs, st_batch, st_patience, caser_filters, topk;
    float st_lr, st_dropout, lam, ed, dros_alpha, dros_beta;
    const char* gammas;        // "position,confidence,consistency"
    const char* base_loss;     // "ce" or "bce-dros"
    const char* rd_neg;        // "paper" or "authors"
    const char* signals;       // the teacher-signals cache; NULL = <out>/teacher_signals.bin
    // where the E4SRec models run: "auto" until config_check makes it "cpu" or "cuda"
    const char* device;
    const char* precision;     // on the GPU: "fp32" or "bf16" activations and matmuls
} Config;

// the authors' prompt format (E4SRec / SLMRec), kept short: every token is computed at every layer
#define DEFAULT_INSTRUCTION "### Instruction:\nGiven the user's item history, predict the next item.\n### Input:\n"
#define DEFAULT_RESPONSE "\n### Response:\n"

static Config config_defaults(void) {
    Config c = {
        .data = NULL, .out = "runs/synth", .seed = 42, .max_len = 50, .eval_batch = 256, .resume = 0, .stop_after = 0,
        .sas_dim = 64, .sas_blocks = 2, .sas_heads = 1, .sas_epochs = 200, .sas_batch = 128, .sas_patience = 20,
        .sas_dropout = 0.5f, .sas_lr = 1e-3f,
        .hidden = 64, .ffn = 172, .heads = 4, .kv_heads = 2, .teacher_layers = 8, .student_layers = 4,
        .epochs = 30, .batch = 64, .patience = 5, .warmup = 100, .vocab = 320,
        .lr = 1e-3f, .min_lr = 1e-4f, .weight_decay = 0.0f, .clip = 1.0f, .time_budget = 0.0f,
        .instruction = DEFAULT_INSTRUCTION, .response = DEFAULT_RESPONSE,
        .init = NULL, .lora_rank = 0, .lora_alpha = 16.0f, .lora_targets = "q,k,v,o,gate,up,down",
        .blocks = 4, .online = 0, .init_random = 0, .lambda_cos = 1.0f, .lambda_norm = 0.1f, .lambda_ms = 1.0f,
        .st_dim = 64, .st_epochs = 100, .st_batch = 256, .st_patience = 10, .caser_filters = 16, .topk = 10,
        .st_lr = 1e-3f, .st_dropout = -1.0f, .lam = 0.7f, .ed = 0.3f, .dros_alpha = 1.0f, .dros_beta = 1.0f,
        .gammas = "0.3,0.5,0.1", .base_loss = "ce", .rd_neg = "paper", .signals = NULL,
        .device = "auto", .precision = "fp32",
    };
    return c;
}

static int flags_run(ArgSpec* s, Config* c) {
    ArgSpec f[] = {
        {"--data", ARG_STR, &c->data, "sequence file (user item item ...); none = built-in synthetic data"},
        {"--out", ARG_STR, &c->out, "output directory: checkpoints, log.txt, the results JSON"},
        {"--seed", ARG_INT, &c->seed, "seed of every random choice"},
        {"--max-len", ARG_INT, &c->max_len, "history length fed to the models"},
        {"--eval-batch", ARG_INT, &c->eval_batch, "users per scoring batch"},
        {"--resume", ARG_BOOL, &c->resume, "continue from <out>/<model>.last.bin where present"},
        {"--stop-after", ARG_INT, &c->stop_after, "train this many epochs per model now, then stop (resume later)"},
    };
    memcpy(s, f, sizeof(f));
    return (int)(sizeof(f) / sizeof(f[0]));
}

static int flags_sasrec(ArgSpec* s, Config* c) {
    ArgSpec f[] = {
        {"--sasrec-dim", ARG_INT, &c->sas_dim, "SASRec embedding width D (the item table E4SRec reads)"},
        {"--sasrec-blocks", ARG_INT, &c->sas_blocks, "SASRec transformer blocks"},
        {"--sasrec-heads", ARG_INT, &c->sas_heads, "SASRec attention heads"},
        {"--sasrec-dropout", ARG_FLOAT, &c->sas_dropout, "SASRec dropout"},
        {"--sasrec-lr", ARG_FLOAT, &c->sas_lr, "SASRec Adam learning rate"},
        {"--sasrec-epochs", ARG_INT, &c->sas_epochs, "SASRec epochs at most"},
        {"--sasrec-batch", ARG_INT, &c->sas_batch, "SASRec users per step"},
        {"--sasrec-patience", ARG_INT, &c->sas_patience, "SASRec early stop: epochs without a better valid NDCG@10"},
    };
    memcpy(s, f, sizeof(f));
    return (int)(sizeof(f) / sizeof(f[0]));
}

static int flags_e4srec(ArgSpec* s, Config* c) {
    ArgSpec f[] = {
        {"--hidden", ARG_INT, &c->hidden, "decoder width C (d1)"},
        {"--ffn", ARG_INT, &c->ffn, "SwiGLU MLP width F"},
        {"--heads", ARG_INT, &c->heads, "query heads"},
        {"--kv-heads", ARG_INT, &c->kv_heads, "key/value heads (grouped-query attention when < heads)"},
        {"--epochs", ARG_INT, &c->epochs, "epochs at most"},
        {"--batch", ARG_INT, &c->batch, "samples per step"},
        {"--lr", ARG_FLOAT, &c->lr, "AdamW peak learning rate"},
        {"--min-lr", ARG_FLOAT, &c->min_lr, "end of the cosine schedule"},
        {"--warmup", ARG_INT, &c->warmup, "linear warmup steps"},
        {"--weight-decay", ARG_FLOAT, &c->weight_decay, "AdamW decoupled weight decay"},
        {"--clip", ARG_FLOAT, &c->clip, "global gradient-norm clip (0 = off)"},
        {"--patience", ARG_INT, &c->patience, "early stop: epochs without a better valid NDCG@10 (0 = never)"},
        {"--time-budget", ARG_FLOAT, &c->time_budget, "stop a model's training after this many seconds (0 = none)"},
        {"--instruction", ARG_STR, &c->instruction, "prompt text before the item history"},
        {"--response", ARG_STR, &c->response, "prompt text after the item history"},
        {"--vocab", ARG_INT, &c->vocab, "BPE vocabulary size learned on the prompt (without --init)"},
        {"--init", ARG_STR, &c->init, "pretrained base checkpoint (import-llama2c / import-hf): the decoder starts from its\n"
         "                     first layers, the prompt is in its vocabulary, --hidden etc. come from it"},
        {"--lora-rank", ARG_INT, &c->lora_rank, "LoRA rank: adapters over the frozen pretrained decoder (0 = full fine-tuning)"},
        {"--lora-alpha", ARG_FLOAT, &c->lora_alpha, "LoRA scale alpha (the update is alpha/rank B A)"},
        {"--lora-targets", ARG_STR, &c->lora_targets, "projections LoRA adapts, from q,k,v,o,gate,up,down"},
        {"--device", ARG_STR, &c->device, "cpu or cuda for the E4SRec models; auto = cuda when a GPU is visible, unless --online (SASRec: cpu)"},
        {"--precision", ARG_STR, &c->precision, "on the GPU: fp32, or bf16 activations and matmuls (fp32 master weights)"},
    };
    memcpy(s, f, sizeof(f));
    return (int)(sizeof(f) / sizeof(f[0]));
}

static int flags_distill(ArgSpec* s, Config* c) {
    ArgSpec f[] = {
        {"--blocks", ARG_INT, &c->blocks, "distillation blocks B (must divide both layer counts)"},
        {"--lambda-cos", ARG_FLOAT, &c->lambda_cos, "weight of Dcos"},
        {"--lambda-norm", ARG_FLOAT, &c->lambda_norm, "weight of Dnorm"},
        {"--lambda-ms", ARG_FLOAT, &c->lambda_ms, "weight of the multi-supervision CE"},
        {"--online", ARG_BOOL, &c->online, "train the teacher together with the student (online KD)"},
        {"--init-random", ARG_BOOL, &c->init_random, "start the student from random weights, not the teacher's first layers"},
    };
    memcpy(s, f, sizeof(f));
    return (int)(sizeof(f) / sizeof(f[0]));
}

static int flags_dllm2rec(ArgSpec* s, Config* c) {
    ArgSpec f[] = {
        {"--lam", ARG_FLOAT, &c->lam, "weight of the ranking distillation L_rd (0 = none)"},
        {"--ed", ARG_FLOAT, &c->ed, "weight of the teacher's part of the input embedding (0 = no embedding distillation)"},
        {"--topk", ARG_INT, &c->topk, "teacher candidates K per training sample"},
        {"--gammas", ARG_STR, &c->gammas, "importance-weight mix: position,confidence,consistency"},
        {"--base-loss", ARG_STR, &c->base_loss, "ce (full softmax), or bce-dros (the authors': BCE + alpha DROS, and DROS in L_rd)"},
        {"--rd-neg", ARG_STR, &c->rd_neg, "L_rd's negative term: paper -log sig(-s), or authors -log sig(1 - s)"},
        {"--dros-alpha", ARG_FLOAT, &c->dros_alpha, "DROS weight (with --base-loss bce-dros)"},
        {"--dros-beta", ARG_FLOAT, &c->dros_beta, "DROS temperature"},
        {"--signals", ARG_STR, &c->signals, "teacher-signals cache (default <out>/teacher_signals.bin)"},
        {"--dim", ARG_INT, &c->st_dim, "student embedding width D"},
        {"--caser-filters", ARG_INT, &c->caser_filters, "Caser: horizontal filters per height (2, 3, 4)"},
        {"--dropout", ARG_FLOAT, &c->st_dropout, "student dropout; -1 = its own default (SASRec 0.5, Caser 0.1; GRU4Rec none)"},
        {"--student-epochs", ARG_INT, &c->st_epochs, "student epochs at most (an epoch = every training sample)"},
        {"--student-batch", ARG_INT, &c->st_batch, "student samples per step"},
        {"--student-lr", ARG_FLOAT, &c->st_lr, "student Adam learning rate"},
        {"--student-patience", ARG_INT, &c->st_patience, "student early stop: epochs without a better valid NDCG@10"},
    };
    memcpy(s, f, sizeof(f));
    return (int)(sizeof(f) / sizeof(f[0]));
}

// "auto" -> "cpu" or "cuda", saying which and why; dies on a device this binary or machine cannot give
static void config_device(const char** device, const char* precision, int online) {
    if (strcmp(precision, "fp32") != 0 && strcmp(precision, "bf16") != 0) die("--precision must be fp32 or bf16, got '%s'", precision);
    if (strcmp(*device, "auto") == 0) {
        char why[300] = "this ./slmrec was built without CUDA (no nvcc at build time)";
        int gpu = 0;
#ifdef SLMREC_CUDA
        char info[256];
        gpu = gpu_device_info(info, sizeof(info));
        snprintf(why, sizeof(why), gpu ? "a CUDA GPU is visible: %s" : "no usable CUDA GPU (%s)", info);
#endif
        if (gpu && online) snprintf(why, sizeof(why), "--online distillation runs on the CPU only");
        *device = gpu && !online ? "cuda" : "cpu";
        printf("--device auto: %s, because %s\n", *device, why);
    }
    if (strcmp(*device, "cpu") != 0 && strcmp(*device, "cuda") != 0) die("--device must be cpu, cuda or auto, got '%s'", *device);
    if (strcmp(*device, "cpu") == 0 && strcmp(precision, "bf16") == 0) die("--precision bf16 needs --device cuda: the CPU path is fp32");
    if (strcmp(*device, "cuda") == 0) {
#ifdef SLMREC_CUDA
        gpu_require("--device cuda");
#else
        die("--device cuda: this ./slmrec was built without CUDA (no nvcc at build time)\n"
            "  hint: run with --device cpu, or rebuild where nvcc is on PATH");
#endif
    }
}

static int config_on_gpu(const Config* c) { return strcmp(c->device, "cuda") == 0; }

// the DLLM2Rec objective of the flags (the weights lam, ed are the caller's to zero for a baseline)
static DLLM2RecConfig config_dllm2rec(const Config* c) {
    DLLM2RecConfig r = dllm2rec_defaults();
    char tail = 0;
    if (sscanf(c->gammas, "%f ,%f ,%f %c", &r.gamma_pos, &r.gamma_conf, &r.gamma_cons, &tail) != 3 ||
        !(r.gamma_pos >= 0 && r.gamma_conf >= 0 && r.gamma_cons >= 0 && r.gamma_pos + r.gamma_conf + r.gamma_cons > 0)) {
        die("--gammas expects three weights 'position,confidence,consistency', not negative and not all 0, got '%s'", c->gammas);
    }
    if (strcmp(c->base_loss, "ce") == 0) r.base = BASE_CE;
    else if (strcmp(c->base_loss, "bce-dros") == 0) r.base = BASE_BCE_DROS;
    else die("--base-loss must be ce or bce-dros, got '%s'", c->base_loss);
    if (strcmp(c->rd_neg, "paper") == 0) r.rd_neg = RD_NEG_PAPER;
    else if (strcmp(c->rd_neg, "authors") == 0) r.rd_neg = RD_NEG_AUTHORS;
    else die("--rd-neg must be paper or authors, got '%s'", c->rd_neg);
    if (!(c->dros_beta > 0.0f) || c->dros_alpha < 0.0f) die("--dros-beta must be positive and --dros-alpha not negative");
    r.lam = c->lam;
    r.dros_alpha = c->dros_alpha;
    r.dros_beta = c->dros_beta;
    r.K = c->topk;
    return r;
}

// a LoRA file stores the absolute path of the file its frozen weights come from: it must fit
static void config_check_lora_base(const char* flag, const char* path) {
    char absolute[sizeof(((Lora*)0)->base_path)];
    absolute_path(path, absolute, sizeof(absolute), flag);
}

static void config_check(Config* c) {
    if (c->out && strlen(c->out) > MAX_OUT_DIR) die("--out is %zu characters long, at most %d are supported", strlen(c->out), MAX_OUT_DIR);
    if (c->max_len < 1 || c->eval_batch < 1) die("--max-len and --eval-batch must be positive");
    if (c->batch < 1 || c->sas_batch < 1) die("--batch and --sasrec-batch must be positive");
    if (c->heads < 1 || c->kv_heads < 1 || c->heads % c->kv_heads || c->hidden % c->heads || (c->hidden / c->heads) % 2) {
        die("--hidden %d, --heads %d, --kv-heads %d: heads must divide hidden into an even head size, kv-heads must divide heads",
            c->hidden, c->heads, c->kv_heads);
    }
    if (c->sas_heads < 1 || c->sas_dim % c->sas_heads) die("--sasrec-heads %d must divide --sasrec-dim %d", c->sas_heads, c->sas_dim);
    if (!(c->sas_dropout >= 0.0f && c->sas_dropout < 1.0f)) die("--sasrec-dropout must be in [0, 1)");
    if (c->vocab < TOK_BASE_VOCAB) die("--vocab %d is below the %d byte-level base tokens", c->vocab, TOK_BASE_VOCAB);
    if (c->epochs < 1 || c->sas_epochs < 1) die("--epochs and --sasrec-epochs must be at least 1");
    if (c->epochs > MAX_EPOCHS || c->sas_epochs > MAX_EPOCHS || c->st_epochs > MAX_EPOCHS) {
        die("--epochs, --sasrec-epochs and --student-epochs must be at most %d (the schedule counts epochs x steps)", MAX_EPOCHS);
    }
    struct { const char* flag; float value; } not_negative[] = {
        {"--time-budget", c->time_budget}, {"--clip", c->clip}, {"--weight-decay", c->weight_decay},
        {"--patience", (float)c->patience}, {"--sasrec-patience", (float)c->sas_patience},
        {"--student-patience", (float)c->st_patience}, {"--stop-after", (float)c->stop_after},
        {"--lambda-cos", c->lambda_cos}, {"--lambda-norm", c->lambda_norm}, {"--lambda-ms", c->lambda_ms}};
    for (size_t i = 0; i < sizeof(not_negative) / sizeof(not_negative[0]); i++) {
        if (not_negative[i].value < 0.0f) die("%s must not be negative, got %g", not_negative[i].flag, not_negative[i].value);
    }
    if (c->hidden < 1 || c->ffn < 1 || c->sas_dim < 1 || c->sas_blocks < 1) {
        die("--hidden, --ffn, --sasrec-dim and --sasrec-blocks must be positive");
    }
    if (!(c->lr > 0.0f) || !(c->sas_lr > 0.0f) || c->min_lr < 0.0f || c->warmup < 0) {
        die("--lr and --sasrec-lr must be positive, --min-lr and --warmup not negative");
    }
    if (c->st_dim < 1 || c->st_epochs < 1 || c->st_batch < 1 || c->caser_filters < 1 || !(c->st_lr > 0.0f)) {
        die("--dim, --student-epochs, --student-batch, --caser-filters and --student-lr must be positive");
    }
    if (!(c->st_dropout == -1.0f || (c->st_dropout >= 0.0f && c->st_dropout < 1.0f))) die("--dropout must be in [0, 1), or -1");
    if (c->lam < 0.0f) die("--lam must not be negative");
    check_range("flag", "--ed", c->ed, 0.0, STUDENT_MAX_ED);  // what a student file may hold
    if (c->topk < 1) die("--topk must be at least 1, got %d", c->topk);
    if (c->lora_rank < 0 || c->lora_rank > LORA_MAX_RANK) die("--lora-rank must be in 0..%d, got %d", LORA_MAX_RANK, c->lora_rank);
    check_range("flag", "--lora-alpha", c->lora_alpha, LORA_MIN_ALPHA, LORA_MAX_ALPHA);  // what a LoRA file may hold
    if (c->lora_rank && c->init) config_check_lora_base("--init", c->init);
    lora_parse_targets(c->lora_targets);
    config_dllm2rec(c);  // checks --gammas, --base-loss, --rd-neg
    config_device(&c->device, c->precision, c->online);
}

static int flag_given(int argc, char** argv, const char* flag) {
    for (int i = 0; i < argc; i++) if (strcmp(argv[i], flag) == 0) return 1;
    return 0;
}

// --init: loads the pretrained base into *base and takes the decoder's shape from it
// (a width flag given on the command line must agree). Returns base, or NULL without --init.
static const Llama* config_base(Config* c, Llama* base, int argc, char** argv) {
    if (c->init == NULL) return NULL;
    llama_load(base, c->init);
    if (!base->has_tok) {
        die("--init '%s' has no tokenizer, and the prompt must be in its vocabulary: import it with --tokenizer", c->init);
    }
    const LlamaConfig* b = &base->cfg;
    struct { const char* flag; int* value; int from_base; } widths[] = {
        {"--hidden", &c->hidden, b->C}, {"--ffn", &c->ffn, b->F}, {"--heads", &c->heads, b->NH}, {"--kv-heads", &c->kv_heads, b->KVH}};
    for (int i = 0; i < 4; i++) {
        if (flag_given(argc, argv, widths[i].flag) && *widths[i].value != widths[i].from_base) {
            die("%s %d contradicts --init '%s', whose decoder has %d (leave the flag out to take it from the base)",
                widths[i].flag, *widths[i].value, c->init, widths[i].from_base);
        }
        *widths[i].value = widths[i].from_base;
    }
    return base;
}

// the base's depth bounds every model that starts from its first layers
static void config_check_depth(const Config* c, const Llama* base, const char* flag, int layers) {
    if (base && layers > base->cfg.L) {
        die("%s %d exceeds the %d layers of --init '%s': a model takes the base's first layers", flag, layers, base->cfg.L, c->init);
    }
}

// a fresh E4SRec's weights: random, then with --init the base's first layers
static void e4srec_start(E4SRec* m, const Config* c, const Llama* base, Rng* rng) {
    e4srec_init_random(m, rng);
    if (base) e4srec_init_from_base(m, base, c->init);
}

// with --lora-rank: adapters over m's frozen decoder, whose weights come from the file
// `frozen_from`, stored as an absolute path
static void e4srec_start_lora(E4SRec* m, const Config* c, const char* frozen_from, Rng* rng) {
    if (c->lora_rank == 0) return;
    e4srec_add_lora(m, c->lora_rank, c->lora_alpha, lora_parse_targets(c->lora_targets));
    lora_init(m->lora, rng);
    absolute_path(frozen_from, m->lora->base_path, sizeof(m->lora->base_path), "the LoRA base");  // read from anywhere
    m->lora->base_checksum = binfile_checksum(frozen_from);
}

// the SLMRec student's start, for run and distill alike (method.md 5): random with
// --init-random; else the teacher's first N layers with its input_proj and score, the
// decoder layers taken from a base's first N instead when one is given (distill --init);
// with --lora-rank, adapters over those frozen weights, keyed by the file they came from
static void slmrec_student_start(E4SRec* student, const E4SRec* teacher, const char* teacher_path, const Llama* base,
                                 const Config* c, Rng* rng) {
    if (c->init_random) {
        e4srec_init_random(student, rng);
    } else {
        e4srec_copy_first_layers(student, teacher);
        if (base) e4srec_init_from_base(student, base, c->init);
    }
    e4srec_start_lora(student, c, base ? c->init : teacher_path, rng);
}

static AdamWConfig config_adamw(const Config* c, int steps_per_epoch) {
    AdamWConfig a = adamw_defaults();
    a.lr = c->lr;
    a.min_lr = c->min_lr;
    a.weight_decay = c->weight_decay;
    a.clip = c->clip;
    a.warmup = c->warmup;
    a.total_steps = c->epochs * steps_per_epoch;
    return a;
}

typedef enum { TRAIN_SASREC, TRAIN_E4SREC, TRAIN_STUDENT } TrainWhat;

// the loop's settings for stage 1's SASRec, an E4SRec model, or a DLLM2Rec student
static TrainConfig config_train(const Config* c, TrainWhat what, const RunRecord* record) {
    TrainConfig t = {c->epochs, c->batch, c->patience, c->time_budget, c->stop_after, c->eval_batch, (uint64_t)c->seed, record};
    if (what == TRAIN_SASREC) { t.epochs = c->sas_epochs; t.batch = c->sas_batch; t.patience = c->sas_patience; t.time_budget = 0.0f; }
    if (what == TRAIN_STUDENT) { t.epochs = c->st_epochs; t.batch = c->st_batch; t.patience = c->st_patience; }
    return t;
}

// ----------------------------------------------------------------------------
// run records (checkpoint.h): what each stage computes, from its flags and inputs.
// A stage saves its record with its training state, and --resume refuses a state
// whose record differs in any line. Commands check it before they write anything.

static void record_data(RunRecord* r, const Config* c, const SeqData* d) {
    r->len = 0;
    r->text[0] = 0;
    run_record_add(r, "--data", "%d users, %d items, %d events (fnv %08x)", d->n_users, d->n_items, d->n_events, seqdata_checksum(d));
    run_record_add(r, "--max-len", "%d", c->max_len);
}

static void record_sasrec(RunRecord* r, const Config* c, const SeqData* d) {
    record_data(r, c, d);
    run_record_add(r, "--sasrec-dim", "%d", c->sas_dim);
    run_record_add(r, "--sasrec-blocks", "%d", c->sas_blocks);
    run_record_add(r, "--sasrec-heads", "%d", c->sas_heads);
    run_record_add(r, "--sasrec-dropout", "%s", float_text(c->sas_dropout).s);
}

// an E4SRec model m (built and started), the SLMRec student of teacher when given
static void record_e4srec(RunRecord* r, const Config* c, const SeqData* d, const E4SRec* m, const E4SRec* teacher) {
    const E4SRecConfig* e = &m->cfg;
    record_data(r, c, d);
    if (teacher) {
        run_record_add(r, "--teacher", "weights fnv %08x", e4srec_checksum(teacher));
        run_record_add(r, "--blocks", "%d", c->blocks);
        run_record_add(r, "--lambda-cos", "%s", float_text(c->lambda_cos).s);
        run_record_add(r, "--lambda-norm", "%s", float_text(c->lambda_norm).s);
        run_record_add(r, "--lambda-ms", "%s", float_text(c->lambda_ms).s);
        run_record_add(r, "--online", "%s", c->online ? "on" : "off");
    }
    run_record_add(r, "layers", "%d", e->L);
    run_record_add(r, "--hidden", "%d", e->C);
    run_record_add(r, "--ffn", "%d", e->F);
    run_record_add(r, "--heads", "%d", e->NH);
    run_record_add(r, "--kv-heads", "%d", e->KVH);
    run_record_add(r, "--sasrec", "an item table of %d x %d (fnv %08x)", e->I, e->D,
                   fnv1a(FNV_START, m->item_table, (size_t)e->I * e->D * sizeof(float)));
    run_record_add(r, "--instruction/--response", "%d + %d tokens of a vocabulary of %d (fnv %08x)", e->P1, e->P2, e->V,
                   fnv1a(fnv1a(FNV_START, m->instr, (size_t)e->P1 * sizeof(int)), m->resp, (size_t)e->P2 * sizeof(int)));
    if (c->init) run_record_add(r, "--init", "a base of fnv %08x", binfile_checksum(c->init));
    else run_record_add(r, "--init", "none");
    run_record_add(r, "--lora-rank", "%d", m->lora ? m->lora->rank : 0);
    if (m->lora) {
        run_record_add(r, "--lora-alpha", "%s", float_text(m->lora->alpha).s);
        run_record_add(r, "--lora-targets", "%d (bit mask)", m->lora->targets);
        run_record_add(r, "LoRA base", "fnv %08x", m->lora->base_checksum);
    }
    run_record_add(r, "--precision", "%s", c->precision);
}

// a student's dropout: --dropout, or its kind's own default
static float student_dropout(const Config* c, StudentKind kind) {
    if (c->st_dropout >= 0.0f) return c->st_dropout;
    return kind == STUDENT_SASREC ? c->sas_dropout : kind == STUDENT_CASER ? 0.1f : 0.0f;
}

// a DLLM2Rec student with weights lam and ed, distilled from the teacher whose weights
// have checksum teacher_checksum (unused when both weights are 0)
static void record_student(RunRecord* r, const Config* c, const SeqData* d, StudentKind kind, float lam, float ed,
                           uint32_t teacher_checksum) {
    record_data(r, c, d);
    run_record_add(r, "--student", "%s", STUDENT_FLAG_NAMES[kind]);
    run_record_add(r, "--dim", "%d", c->st_dim);
    run_record_add(r, "--dropout", "%s", float_text(student_dropout(c, kind)).s);
    if (kind == STUDENT_SASREC) run_record_add(r, "--sasrec-blocks/--sasrec-heads", "%d/%d", c->sas_blocks, c->sas_heads);
    if (kind == STUDENT_CASER) run_record_add(r, "--caser-filters", "%d", c->caser_filters);
    DLLM2RecConfig dc = config_dllm2rec(c);
    run_record_add(r, "--base-loss", "%s", c->base_loss);
    if (dc.base == BASE_BCE_DROS) {
        run_record_add(r, "--dros-alpha/--dros-beta", "%s/%s", float_text(dc.dros_alpha).s, float_text(dc.dros_beta).s);
    }
    run_record_add(r, "--lam", "%s", float_text(lam).s);
    run_record_add(r, "--ed", "%s", float_text(ed).s);
    if (lam > 0.0f) {
        run_record_add(r, "--topk", "%d", dc.K);
        run_record_add(r, "--gammas", "%s,%s,%s", float_text(dc.gamma_pos).s, float_text(dc.gamma_conf).s, float_text(dc.gamma_cons).s);
        run_record_add(r, "--rd-neg", "%s", c->rd_neg);
    }
    if (lam > 0.0f || ed > 0.0f) run_record_add(r, "--teacher", "weights fnv %08x", teacher_checksum);
}

// with --resume: the state a stage of file stem `stem` would continue from must be of this record
static void resume_precheck(const Config* c, const char* stem, const RunRecord* r) {
    if (!c->resume) return;
    char last[1200];
    snprintf(last, sizeof(last), "%s/%s.last.bin", c->out, stem);
    resume_check(last, r);
}

static void read_data(SeqData* d, const Config* c) {
    if (c->data) {
        seqdata_load(d, c->data, 0);
    } else {
        synth_generate(d, SYNTH_USERS, SYNTH_ITEMS, SYNTH_MEAN_LEN, SYNTH_SEED);
    }
}

static void log_data(const SeqData* d, const Config* c) {
    logf_("data: %s: %d users, %d items, %d events\n", c->data ? c->data : "built-in synthetic", d->n_users, d->n_items, d->n_events);
}

static int steps_per_epoch(const SeqData* d, int batch) {
    int* users = (int*)mallocCheck((size_t)d->n_users * sizeof(int));
    int n = trainable_users(d, users);
    free(users);
    return (n + batch - 1) / batch;
}

// ----------------------------------------------------------------------------
// results: one row per model, printed as a table and written as JSON

typedef struct {
    char name[32];
    int layers;
    size_t params;
    double train_seconds, infer_seconds;
    int epochs, best_epoch;
    float best_valid;
    int stopped;  // training was cut short by --stop-after
    Metrics test;
} ResultRow;

// the test-set evaluation of a trained model, timed
static void result_fill(ResultRow* r, const Trainable* t, const SeqData* d, const Negatives* test_neg, int eval_batch,
                        const char* name, int layers, size_t params, const TrainResult* tr) {
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->layers = layers;
    r->params = params;
    r->train_seconds = tr->train_seconds;
    r->epochs = tr->epochs;
    r->best_epoch = tr->best_epoch;
    r->best_valid = tr->best_valid;
    r->stopped = tr->stopped;
    double t0 = now_seconds();
    r->test = evaluate(t, d, SPLIT_TEST, test_neg, eval_batch);
    r->infer_seconds = now_seconds() - t0;
    logf_("  [%s] test: full HR@10 %.4f NDCG@10 %.4f (%.1fs to score %d users)\n", name, r->test.mean[2], r->test.mean[5],
          r->infer_seconds, d->n_users);
}

static void results_print(const ResultRow* rows, int n) {
    char hr1[24], hr5[24], nd5[24], mrr[24];
    metric_name(hr1, sizeof(hr1), &rows[0].test, 8);
    metric_name(hr5, sizeof(hr5), &rows[0].test, 9);
    metric_name(nd5, sizeof(nd5), &rows[0].test, 11);
    metric_name(mrr, sizeof(mrr), &rows[0].test, 13);
    logf_("\n%-18s %6s %10s %8s %8s | %8s %8s | %10s %10s %12s %10s\n", "model", "layers", "params", "train s", "infer s",
          "HR@10", "NDCG@10", hr1, hr5, nd5, mrr);
    for (int i = 0; i < n; i++) {
        const ResultRow* r = &rows[i];
        logf_("%-18s %6d %10zu %8.1f %8.2f | %8.4f %8.4f | %10.4f %10.4f %12.4f %10.4f\n", r->name, r->layers, r->params,
              r->train_seconds, r->infer_seconds, r->test.mean[2], r->test.mean[5], r->test.mean[8], r->test.mean[9],
              r->test.mean[11], r->test.mean[13]);
    }
    logf_("(test split; HR@10 and NDCG@10 rank all items, the s* columns the target among sampled negatives)\n\n");
    logf_("all metrics, test split:\n");
    metrics_print_header(stdout, rows[0].test.n_neg);
    if (log_file) metrics_print_header(log_file, rows[0].test.n_neg);
    for (int i = 0; i < n; i++) {
        metrics_print_row(stdout, rows[i].name, &rows[i].test);
        if (log_file) metrics_print_row(log_file, rows[i].name, &rows[i].test);
    }
}

static void results_write_json(const char* path, const ResultRow* rows, int n, const Config* c, const SeqData* d) {
    OutFile o;
    outfile_open(&o, path);
    fprintf(o.f, "{\n \"data\": ");
    json_write_string(o.f, c->data ? c->data : "synthetic");
    fprintf(o.f, ", \"users\": %d, \"items\": %d, \"events\": %d,\n", d->n_users, d->n_items, d->n_events);
    fprintf(o.f, " \"config\": {\"max_len\": %d, \"hidden\": %d, \"ffn\": %d, \"heads\": %d, \"kv_heads\": %d, "
            "\"batch\": %d, \"lr\": %g, \"epochs\": %d, \"blocks\": %d, \"lambda_cos\": %g, \"lambda_norm\": %g, \"lambda_ms\": %g, "
            "\"sasrec_dim\": %d, \"sasrec_blocks\": %d, \"sasrec_dropout\": %g, \"sasrec_batch\": %d, \"sasrec_lr\": %g, "
            "\"sasrec_epochs\": %d, \"seed\": %d, \"lora_rank\": %d, \"lora_alpha\": %g, \"lora_targets\": ", c->max_len,
            c->hidden, c->ffn, c->heads, c->kv_heads, c->batch, c->lr, c->epochs, c->blocks, c->lambda_cos, c->lambda_norm, c->lambda_ms, c->sas_dim,
            c->sas_blocks, c->sas_dropout, c->sas_batch, c->sas_lr, c->sas_epochs, c->seed, c->lora_rank, c->lora_alpha);
    json_write_string(o.f, c->lora_rank ? c->lora_targets : "");
    fprintf(o.f, ", \"init\": ");
    if (c->init) json_write_string(o.f, c->init);
    else fprintf(o.f, "null");
    fprintf(o.f, "},\n \"models\": {\n");
    for (int i = 0; i < n; i++) {
        const ResultRow* r = &rows[i];
        fprintf(o.f, "  \"%s\": {\"layers\": %d, \"params\": %zu, \"train_s\": %.2f, \"infer_s\": %.3f, \"epochs\": %d, "
                "\"best_epoch\": %d, \"valid_full_NDCG@10\": %.6f, ", r->name, r->layers, r->params, r->train_seconds,
                r->infer_seconds, r->epochs, r->best_epoch, r->best_valid);
        metrics_write_json(o.f, &r->test);
        fprintf(o.f, "}%s\n", i + 1 < n ? "," : "");
    }
    fprintf(o.f, " }\n}\n");
    outfile_commit(&o);
}

// a model's display name and file stem: E4SRec_8 / e4srec_8, or distilled SLMRec_4<-8 / slmrec_4_from_8
typedef struct { char name[32], stem[32]; } ModelName;
static ModelName model_name(int layers, const E4SRec* teacher) {
    ModelName n;
    if (teacher) {
        snprintf(n.name, sizeof(n.name), "SLMRec_%d<-%d", layers, teacher->cfg.L);
        snprintf(n.stem, sizeof(n.stem), "slmrec_%d_from_%d", layers, teacher->cfg.L);
    } else {
        snprintf(n.name, sizeof(n.name), "E4SRec_%d", layers);
        snprintf(n.stem, sizeof(n.stem), "e4srec_%d", layers);
    }
    return n;
}

static void log_stopped(const Config* c) {
    logf_("stopped after --stop-after %d epochs: run the same command with --resume to continue\n", c->stop_after);
}

// a one-stage command's report: the table, and <out>/<stem>.results.json once the stage is complete
static void stage_report(const Config* c, const SeqData* d, const ResultRow* row, const char* stem) {
    results_print(row, 1);
    if (row->stopped) {
        log_stopped(c);
        return;
    }
    char path[1100];
    snprintf(path, sizeof(path), "%s/%s.results.json", c->out, stem);
    results_write_json(path, row, 1, c, d);
    logf_("results: %s\n", path);
}

// ----------------------------------------------------------------------------
// stages: each trains one model, reloads its best-on-valid weights, tests it

typedef struct {
    Tokenizer tok;
    int* instr;  // (P1) with BOS
    int* resp;   // (P2)
    int P1, P2;
} Prompt;

// encodes both prompt parts in the base's vocabulary, or without a base in a BPE
// vocabulary learned on the prompt text itself
static void prompt_build(Prompt* p, const Config* c, const Llama* base) {
    size_t n1 = strlen(c->instruction), n2 = strlen(c->response);
    if (base) {
        tokenizer_copy(&p->tok, &base->tok);
    } else {
        char* corpus = (char*)mallocCheck(n1 + n2 + 2);
        snprintf(corpus, n1 + n2 + 2, "%s %s", c->instruction, c->response);
        tokenizer_train_bpe(&p->tok, corpus, strlen(corpus), c->vocab);
        free(corpus);
    }
    int cap = (int)(n1 + n2) + 8;
    p->instr = (int*)mallocCheck(cap * sizeof(int));
    p->resp = (int*)mallocCheck(cap * sizeof(int));
    p->P1 = tokenizer_encode(&p->tok, c->instruction, 1, 0, p->instr, cap);
    p->P2 = tokenizer_encode(&p->tok, c->response, 0, 0, p->resp, cap);
}

// says what prompt_build made, once the run's log is open
static void prompt_log(const Prompt* p, const Config* c, const Llama* base) {
    size_t n1 = strlen(c->instruction), n2 = strlen(c->response);
    // a base's vocabulary without byte fallback could lose characters: say so if the text does not come back
    const char* parts[2] = {c->instruction, c->response};
    const int* ids[2] = {p->instr, p->resp};
    int counts[2] = {p->P1, p->P2};
    char* back = (char*)mallocCheck(4 * (n1 + n2) + 64);
    for (int i = 0; i < 2; i++) {
        tokenizer_decode(&p->tok, ids[i], counts[i], back, 4 * (n1 + n2) + 64);
        const char* text = back + (p->tok.add_dummy_prefix && back[0] == ' ');  // the space the encoder put in front
        if (strcmp(text, parts[i]) != 0) logf_("warning: the prompt text '%s' comes back from its tokens as '%s'\n", parts[i], back);
    }
    free(back);
    if (base) logf_("prompt: %d + %d tokens in the vocabulary of %d of --init '%s'\n", p->P1, p->P2, p->tok.vocab_size, c->init);
    else logf_("prompt: %d + %d tokens (BPE vocabulary of %d learned on the prompt)\n", p->P1, p->P2, p->tok.vocab_size);
}

static void prompt_free(Prompt* p) {
    tokenizer_free(&p->tok);
    free(p->instr);
    free(p->resp);
}

// the shape of an E4SRec model of L layers: from the flags, or the base's decoder
static E4SRecConfig e4srec_config_for(const Config* c, const Llama* base, const Prompt* p, int L, int D, int I) {
    E4SRecConfig e = {.V = p->tok.vocab_size, .C = c->hidden, .F = c->ffn, .L = L, .NH = c->heads, .KVH = c->kv_heads,
                      .HS = c->hidden / c->heads, .D = D, .I = I, .P1 = p->P1, .P2 = p->P2, .S = c->max_len,
                      .rms_eps = 1e-5f, .rope_theta = 10000.0f};
    if (base) {
        e.HS = base->cfg.HS;
        e.rms_eps = base->cfg.rms_eps;
        e.rope_theta = base->cfg.rope_theta;
    }
    return e;
}

// trains m (built and initialised) with CE, or as the SLMRec student of teacher;
// leaves m at its best-on-valid weights and fills row with the test metrics
static void stage_e4srec(const Config* c, const SeqData* d, const Negatives* vneg, const Negatives* tneg, E4SRec* m,
                         const Tokenizer* tok, E4SRec* teacher, const char* name, const char* file_stem, ResultRow* row) {
    char stem[1100], best[1200];
    snprintf(stem, sizeof(stem), "%s/%s", c->out, file_stem);
    snprintf(best, sizeof(best), "%s.bin", stem);
    Rng rng;
    rng_seed(&rng, (uint64_t)c->seed + 1000 * m->cfg.L + (teacher != NULL));
    SLMRec slm;
    if (teacher) slmrec_build(&slm, m, teacher, c->blocks, c->lambda_cos, c->lambda_norm, c->lambda_ms, &rng);
    E4SRecJob job;
    e4srec_job_init(&job, m, teacher ? &slm : NULL, teacher && c->online, d, tok, max_int(c->batch, c->eval_batch));
    Optimizer opt;
    e4srec_job_optimizer(&opt, &job, config_adamw(c, steps_per_epoch(d, c->batch)));
#ifdef SLMREC_CUDA
    if (config_on_gpu(c)) e4srec_job_to_gpu(&job, &opt, c->batch, strcmp(c->precision, "bf16") == 0);
#endif
    Trainable t = e4srec_trainable(&job, name);
    logf_("%s: %d layers, %zu parameters%s%s, on the %s\n", name, m->cfg.L, e4srec_trainable_params(m),
          m->lora ? " trained (LoRA adapters, input_proj, score)" : "",
          teacher ? (c->online ? ", distilled online from the teacher" : ", distilled from the frozen teacher") : "",
          config_on_gpu(c) ? (strcmp(c->precision, "bf16") == 0 ? "GPU (bf16)" : "GPU (fp32)") : "CPU");
    RunRecord record;
    record_e4srec(&record, c, d, m, teacher);
    TrainConfig tc = config_train(c, TRAIN_E4SREC, &record);
    TrainResult tr = train(&t, &opt, d, vneg, &tc, stem, c->resume);
    E4SRecFile f;
    e4srec_load(&f, best);
    e4srec_copy_trained(m, &f.model, best);
    e4srec_file_free(&f);
#ifdef SLMREC_CUDA
    if (job.gpu) gpu_e4srec_set_params(job.gpu, m, NULL);  // the test scores come from the best weights too
#endif
    result_fill(row, &t, d, tneg, c->eval_batch, name, m->cfg.L, e4srec_trainable_params(m), &tr);
    optimizer_free(&opt);
    e4srec_job_free(&job);
    if (teacher) slmrec_free(&slm);
}

// stage 1: SASRec; returns its best item table (I, D), which E4SRec reads frozen
static float* stage_sasrec(const Config* c, const SeqData* d, const Negatives* vneg, const Negatives* tneg, ResultRow* row) {
    SASRecConfig sc = {.I = d->n_items + 1, .D = c->sas_dim, .L = c->sas_blocks, .NH = c->sas_heads, .T = c->max_len,
                       .dropout = c->sas_dropout};
    SASRec m;
    sasrec_build(&m, &sc);
    Rng rng;
    rng_seed(&rng, (uint64_t)c->seed);
    sasrec_init_random(&m, &rng);
    SASRecJob job;
    sasrec_job_init(&job, &m, d, max_int(c->sas_batch, c->eval_batch));
    Optimizer opt = {0};
    opt.cfg = adamw_defaults();
    opt.cfg.lr = opt.cfg.min_lr = c->sas_lr;  // constant-rate Adam, as the peer
    opt.cfg.beta2 = 0.98f;
    opt.cfg.clip = 0.0f;
    optimizer_add(&opt, m.params_memory, m.grads_memory, m.num_params);
    optimizer_ready(&opt);
    Trainable t = sasrec_trainable(&job, "SASRec");
    logf_("SASRec: %d blocks, D=%d, %zu parameters\n", sc.L, sc.D, m.num_params);
    char stem[1100], best[1200];
    snprintf(stem, sizeof(stem), "%s/sasrec", c->out);
    snprintf(best, sizeof(best), "%s.bin", stem);
    RunRecord record;
    record_sasrec(&record, c, d);
    TrainConfig tc = config_train(c, TRAIN_SASREC, &record);
    TrainResult tr = train(&t, &opt, d, vneg, &tc, stem, c->resume);
    SASRecFile f;
    sasrec_load(&f, best);
    if (memcmp(&f.model.cfg, &m.cfg, sizeof(SASRecConfig)) != 0) die("'%s' holds a model of other dimensions than this run's", best);
    memcpy(m.params_memory, f.model.params_memory, m.num_params * sizeof(float));
    sasrec_file_free(&f);
    result_fill(row, &t, d, tneg, c->eval_batch, "SASRec", sc.L, m.num_params, &tr);
    float* table = (float*)mallocCheck((size_t)sc.I * sc.D * sizeof(float));
    memcpy(table, m.params.item_emb, (size_t)sc.I * sc.D * sizeof(float));
    optimizer_free(&opt);
    sasrec_job_free(&job);
    sasrec_free(&m);
    return table;
}

// a DLLM2Rec student's display name and file stem: GRU4Rec-plain / gru4rec_plain,
// GRU4Rec+DLLM2Rec / gru4rec_dllm2rec, and the ablations +RD / +ED (ranking or embedding only)
static ModelName student_name(StudentKind kind, float lam, float ed) {
    ModelName n;
    const char* what = lam > 0.0f ? (ed > 0.0f ? "DLLM2Rec" : "RD") : (ed > 0.0f ? "ED" : NULL);
    char lower[16];
    snprintf(lower, sizeof(lower), "%s", what ? what : "plain");
    for (char* p = lower; *p; p++) *p = (char)tolower((unsigned char)*p);
    snprintf(n.name, sizeof(n.name), "%s%s%s", STUDENT_NAMES[kind], what ? "+" : "-", what ? what : "plain");
    snprintf(n.stem, sizeof(n.stem), "%s_%s", STUDENT_FLAG_NAMES[kind], lower);
    return n;
}

// trains one DLLM2Rec student with weights lam (ranking) and ed (embedding) against
// the teacher's signals (NULL when both are 0), reloads its best weights and tests it
static void stage_student(const Config* c, const SeqData* d, const Negatives* vneg, const Negatives* tneg, StudentKind kind,
                          float lam, float ed, const TeacherSignals* sig, ResultRow* row) {
    ModelName mn = student_name(kind, lam, ed);
    StudentConfig sc = {.kind = kind, .I = d->n_items + 1, .D = c->st_dim, .T = c->max_len, .L = c->sas_blocks,
                        .NH = c->sas_heads, .dropout = student_dropout(c, kind), .NF = c->caser_filters, .ed = ed, .C = sig ? sig->C : 0};
    if (kind == STUDENT_SASREC && sc.D % sc.NH) die("--sasrec-heads %d must divide --dim %d", sc.NH, sc.D);
    Student s;
    student_build(&s, &sc, ed > 0.0f ? sig->e_T : NULL);
    Rng rng;
    rng_seed(&rng, (uint64_t)c->seed + 31 * kind);  // plain and distilled start from the same weights
    student_init_random(&s, &rng);
    DLLM2RecConfig dc = config_dllm2rec(c);
    dc.lam = lam;
    DLLM2RecJob job;
    dllm2rec_job_init(&job, &s, d, lam > 0.0f ? sig : NULL, &dc, max_int(c->st_batch, c->eval_batch));
    Optimizer opt;
    AdamWConfig a = adamw_defaults();
    a.lr = a.min_lr = c->st_lr;  // constant-rate Adam, as the authors'
    a.clip = 0.0f;
    dllm2rec_job_optimizer(&opt, &job, a);
    Trainable t = dllm2rec_trainable(&job, mn.name);
    logf_("%s: %zu parameters, %d samples an epoch, %s%s\n", mn.name, student_num_params(&s), job.n_samples,
          dc.base == BASE_CE ? "CE" : "BCE + DROS", lam > 0.0f || ed > 0.0f ? ", distilled from the E4SRec teacher" : "");
    char stem[1100], best[1200];
    snprintf(stem, sizeof(stem), "%s/%s", c->out, mn.stem);
    snprintf(best, sizeof(best), "%s.bin", stem);
    RunRecord record;
    record_student(&record, c, d, kind, lam, ed, sig ? sig->teacher_checksum : 0);
    TrainConfig tc = config_train(c, TRAIN_STUDENT, &record);
    TrainResult tr = train(&t, &opt, d, vneg, &tc, stem, c->resume);
    StudentFile f;
    student_load(&f, best);
    if (memcmp(&f.model.cfg, &s.cfg, sizeof(StudentConfig)) != 0) die("'%s' holds a student of another configuration than this run's", best);
    memcpy(s.model_params, f.model.model_params, s.model_n * sizeof(float));
    if (s.collab_n) memcpy(s.collab_params, f.model.collab_params, s.collab_n * sizeof(float));
    student_file_free(&f);
    result_fill(row, &t, d, tneg, c->eval_batch, mn.name, kind == STUDENT_SASREC ? sc.L : 1, student_num_params(&s), &tr);
    optimizer_free(&opt);
    dllm2rec_job_free(&job);
    student_free(&s);
}

// ----------------------------------------------------------------------------
// commands

// reads the data before creating anything, so a bad file leaves no output behind
// the data and its sampled negatives: read and checked, nothing written yet
static void read_run(const Config* c, SeqData* d, Negatives* vneg, Negatives* tneg) {
    read_data(d, c);
    negatives_build(vneg, d, SPLIT_VALID);
    negatives_build(tneg, d, SPLIT_TEST);
}

static int out_lock = -1;  // the descriptor holding --out's lock while a run writes there

// called once every input has been read and checked: a refused input leaves no output
// directory or log.txt behind. Takes --out's lock (one run at a time) and appends to
// its log.txt, each run's lines after a line that says when and which process
static void open_log(const Config* c, const SeqData* d) {
    out_lock = outdir_lock(c->out);
    char path[1100];
    snprintf(path, sizeof(path), "%s/log.txt", c->out);
    log_file = fopenCheck(path, "a");
    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&now));
    fprintf(log_file, "==== %s, process %ld%s ====\n", when, (long)getpid(), c->resume ? ", --resume" : "");
    log_data(d, c);
}

static void close_run(SeqData* d, Negatives* vneg, Negatives* tneg) {
    negatives_free(vneg);
    negatives_free(tneg);
    seqdata_free(d);
    fcloseCheck(log_file);
    log_file = NULL;
    close(out_lock);  // releases the lock
    out_lock = -1;
}

// the whole pipeline: SASRec -> E4SRec_M teacher -> E4SRec_N -> SLMRec_N<-M, then
// each DLLM2Rec student (SASRec, GRU4Rec, Caser) plain and distilled from the teacher
#define PIPELINE_ROWS 10
static int pipeline(Config* c, const Llama* base) {
    config_check(c);
    // checked now, not hours later when stage 3 begins
    int M = c->teacher_layers, N = c->student_layers;
    if (M < 1 || N < 1) die("--teacher-layers and --student-layers must be at least 1");
    if (c->blocks < 1 || M % c->blocks || N % c->blocks) {
        die("--blocks %d must divide both --teacher-layers %d and --student-layers %d", c->blocks, M, N);
    }
    if (N > M && !c->init_random) die("--student-layers %d exceeds --teacher-layers %d: add --init-random", N, M);
    config_check_depth(c, base, "--teacher-layers", M);
    config_check_depth(c, base, "--student-layers", N);
    if (c->lora_rank && base == NULL) die("--lora-rank trains adapters over a pretrained decoder: add --init BASE.bin");
    if (c->lora_rank && c->init_random) die("--init-random with --lora-rank would freeze a random student decoder");
    double t0 = now_seconds();
    SeqData d;
    Negatives vneg, tneg;
    read_run(c, &d, &vneg, &tneg);
    if (c->topk > d.n_items) die("--topk %d exceeds the %d items of the data", c->topk, d.n_items);
    char teacher_path[1100];
    snprintf(teacher_path, sizeof(teacher_path), "%s/%s.bin", c->out, model_name(M, NULL).stem);
    if (c->lora_rank) config_check_lora_base("--out", teacher_path);  // the student's LoRA base with no --init
    RunRecord record;
    record_sasrec(&record, c, &d);
    resume_precheck(c, "sasrec", &record);  // the later stages' records need the models before them
    open_log(c, &d);
    ResultRow rows[PIPELINE_ROWS];
    float* table = stage_sasrec(c, &d, &vneg, &tneg, &rows[0]);
    Prompt p;
    prompt_build(&p, c, base);
    prompt_log(&p, c, base);
    E4SRec teacher, plain, student;
    Rng rng;
    rng_seed(&rng, (uint64_t)c->seed + 7);
    E4SRecConfig tc = e4srec_config_for(c, base, &p, M, c->sas_dim, d.n_items + 1);
    E4SRecConfig sc = tc;
    sc.L = N;
    e4srec_build(&teacher, &tc, table, p.instr, p.resp);
    e4srec_build(&plain, &sc, table, p.instr, p.resp);
    e4srec_build(&student, &sc, table, p.instr, p.resp);
    e4srec_start(&teacher, c, base, &rng);
    e4srec_start(&plain, c, base, &rng);
    e4srec_start_lora(&teacher, c, c->init, &rng);
    e4srec_start_lora(&plain, c, c->init, &rng);
    // each stage reads the finished one before it: a stage cut short by --stop-after ends the run here
    struct { E4SRec* model; E4SRec* teacher; } stages[3] = {{&teacher, NULL}, {&plain, NULL}, {&student, &teacher}};
    int go = !rows[0].stopped;
    for (int s = 0; s < 3 && go; s++) {
        if (stages[s].teacher) {
            if (c->online) e4srec_merge_lora(&teacher);  // it trains on, its adapters folded into its weights
            else e4srec_freeze(&teacher);
            slmrec_student_start(&student, &teacher, teacher_path, NULL, c, &rng);  // the trained teacher's first layers
        }
        ModelName mn = model_name(stages[s].model->cfg.L, stages[s].teacher);
        stage_e4srec(c, &d, &vneg, &tneg, stages[s].model, &p.tok, stages[s].teacher, mn.name, mn.stem, &rows[s + 1]);
        go = !rows[s + 1].stopped;
    }
    // DLLM2Rec: each student plain, then distilled from the E4SRec_M teacher's signals,
    // keyed by the teacher's weights as they ran (online, they trained on after its file)
    TeacherSignals sig = {0};
    uint32_t teacher_checksum = e4srec_checksum(&teacher);
    StudentKind kinds[6];
    float lams[6], eds[6];
    for (int k = 0; k < 6; k++) {  // each kind plain, then distilled
        kinds[k] = (StudentKind)(k / 2);
        lams[k] = k % 2 ? c->lam : 0.0f;
        eds[k] = k % 2 ? c->ed : 0.0f;
        record_student(&record, c, &d, kinds[k], lams[k], eds[k], teacher_checksum);
        if (go) resume_precheck(c, student_name(kinds[k], lams[k], eds[k]).stem, &record);  // before the cache is touched
    }
    if (go) {
        char sig_path[1100], why[1400];
        snprintf(sig_path, sizeof(sig_path), "%s/teacher_signals.bin", c->out);
        const char* path = c->signals ? c->signals : sig_path;
        int cached = signals_load_cached(&sig, path, &d, &teacher, teacher_checksum, c->topk, why, sizeof(why));
        signals_get(&sig, cached, why, path, &teacher, teacher_checksum, &d, c->topk);
    }
    for (int k = 0; k < 6 && go; k++) {
        stage_student(c, &d, &vneg, &tneg, kinds[k], lams[k], eds[k], &sig, &rows[4 + k]);
        go = !rows[4 + k].stopped;
    }
    signals_free(&sig);
    if (go) {
        results_print(rows, PIPELINE_ROWS);
        char path[1100];
        snprintf(path, sizeof(path), "%s/results.json", c->out);
        results_write_json(path, rows, PIPELINE_ROWS, c, &d);
        logf_("results: %s (checkpoints and log.txt beside it), %.0fs in all\n", path, now_seconds() - t0);
    } else {
        log_stopped(c);
    }
    e4srec_free(&student);
    e4srec_free(&plain);
    e4srec_free(&teacher);
    prompt_free(&p);
    free(table);
    close_run(&d, &vneg, &tneg);
    return 0;
}

static int cmd_run(int argc, char** argv) {
    Config c = config_defaults();
    c.out = "runs/run";
    ArgSpec specs[80];
    int n = flags_run(specs, &c);
    n += flags_sasrec(specs + n, &c);
    n += flags_e4srec(specs + n, &c);
    n += flags_distill(specs + n, &c);
    n += flags_dllm2rec(specs + n, &c);
    ArgSpec layers[] = {
        {"--teacher-layers", ARG_INT, &c.teacher_layers, "teacher depth M"},
        {"--student-layers", ARG_INT, &c.student_layers, "student depth N (also the plain E4SRec_N baseline)"},
    };
    memcpy(specs + n, layers, sizeof(layers));
    n += 2;
    parse_args("run", "The whole pipeline on a data file: SASRec (stage 1), the E4SRec_M teacher on SASRec's frozen\n"
               "item table (stage 2), a plain E4SRec_N and the SLMRec_N<-M student (stage 3), then the DLLM2Rec\n"
               "students SASRec, GRU4Rec and Caser, each plain and distilled from the E4SRec_M teacher; every\n"
               "model is selected on valid full NDCG@10 and reported on test. Writes <out>/results.json, log.txt\n"
               "and the checkpoints.", argc, argv, specs, n);
    if (c.data == NULL) die("run: --data FILE is required (./slmrec with no arguments runs the synthetic pipeline)");
    Llama base_memory;
    const Llama* base = config_base(&c, &base_memory, argc, argv);
    int rc = pipeline(&c, base);
    if (base) llama_free(&base_memory);
    return rc;
}

// ./slmrec alone: the pipeline on the built-in synthetic data, sized for a laptop-class CPU
static int cmd_default(void) {
    Config c = config_defaults();
    c.max_len = 20;
    c.sas_epochs = 40;
    c.sas_patience = 10;
    c.epochs = 4;
    c.patience = 3;
    c.hidden = 48;
    c.ffn = 128;
    c.warmup = 30;
    c.st_epochs = 12;
    c.st_patience = 5;
    printf("slmrec: SLMRec on the built-in synthetic data (./slmrec --help lists the commands)\n");
    return pipeline(&c, NULL);
}

static int cmd_train_sasrec(int argc, char** argv) {
    Config c = config_defaults();
    c.out = "runs/sasrec";
    ArgSpec specs[32];
    int n = flags_run(specs, &c);
    n += flags_sasrec(specs + n, &c);
    parse_args("train-sasrec", "Stage 1: SASRec with full-softmax CE on every position; writes <out>/sasrec.bin\n"
               "(best valid NDCG@10), whose item table the E4SRec models read.", argc, argv, specs, n);
    config_check(&c);
    SeqData d;
    Negatives vneg, tneg;
    read_run(&c, &d, &vneg, &tneg);
    RunRecord record;
    record_sasrec(&record, &c, &d);
    resume_precheck(&c, "sasrec", &record);
    open_log(&c, &d);
    ResultRow row;
    free(stage_sasrec(&c, &d, &vneg, &tneg, &row));
    stage_report(&c, &d, &row, "sasrec");
    close_run(&d, &vneg, &tneg);
    return 0;
}

static int cmd_train_teacher(int argc, char** argv) {
    Config c = config_defaults();
    c.out = "runs/teacher";
    const char* sasrec_path = NULL;
    int layers = c.teacher_layers;
    ArgSpec specs[48];
    int n = flags_run(specs, &c);
    n += flags_e4srec(specs + n, &c);
    ArgSpec own[] = {
        {"--sasrec", ARG_STR, &sasrec_path, "SASRec checkpoint whose item table is fed in, frozen (required)"},
        {"--layers", ARG_INT, &layers, "decoder layers (8 for the teacher, fewer for a plain E4SRec_l)"},
    };
    memcpy(specs + n, own, sizeof(own));
    n += 2;
    parse_args("train-teacher", "Stage 2: an E4SRec model from scratch on SASRec's frozen item table, CE on the next item;\n"
               "writes <out>/e4srec_<layers>.bin. With fewer --layers it is the plain E4SRec_l baseline.",
               argc, argv, specs, n);
    if (sasrec_path == NULL) die("train-teacher: --sasrec FILE is required (train one with ./slmrec train-sasrec)");
    if (layers < 1) die("train-teacher: --layers must be at least 1");
    Llama base_memory;
    const Llama* base = config_base(&c, &base_memory, argc, argv);
    config_check(&c);
    config_check_depth(&c, base, "--layers", layers);
    if (c.lora_rank && base == NULL) die("train-teacher: --lora-rank trains adapters over a pretrained decoder: add --init BASE.bin");
    SeqData d;
    Negatives vneg, tneg;
    read_run(&c, &d, &vneg, &tneg);
    SASRecFile sf;
    sasrec_load(&sf, sasrec_path);
    if (sf.model.cfg.I != d.n_items + 1) {
        die("'%s' was trained on %d items, '%s' has %d", sasrec_path, sf.model.cfg.I - 1, c.data ? c.data : "synthetic", d.n_items);
    }
    c.sas_dim = sf.model.cfg.D;  // the results record the item table's width, which the SASRec file sets
    Prompt p;
    prompt_build(&p, &c, base);
    E4SRecConfig ec = e4srec_config_for(&c, base, &p, layers, sf.model.cfg.D, sf.model.cfg.I);
    E4SRec m;
    e4srec_build(&m, &ec, sf.model.params.item_emb, p.instr, p.resp);
    Rng rng;
    rng_seed(&rng, (uint64_t)c.seed + 7);
    e4srec_start(&m, &c, base, &rng);
    e4srec_start_lora(&m, &c, c.init, &rng);
    ModelName mn = model_name(layers, NULL);
    RunRecord record;
    record_e4srec(&record, &c, &d, &m, NULL);
    resume_precheck(&c, mn.stem, &record);
    open_log(&c, &d);
    prompt_log(&p, &c, base);
    ResultRow row;
    stage_e4srec(&c, &d, &vneg, &tneg, &m, &p.tok, NULL, mn.name, mn.stem, &row);
    stage_report(&c, &d, &row, mn.stem);
    e4srec_free(&m);
    prompt_free(&p);
    sasrec_file_free(&sf);
    if (base) llama_free(&base_memory);
    close_run(&d, &vneg, &tneg);
    return 0;
}

static int cmd_distill(int argc, char** argv) {
    Config c = config_defaults();
    c.out = "runs/distill";
    const char* teacher_path = NULL;
    int layers = c.student_layers;
    ArgSpec specs[48];
    int n = flags_run(specs, &c);
    n += flags_e4srec(specs + n, &c);
    n += flags_distill(specs + n, &c);
    ArgSpec own[] = {
        {"--teacher", ARG_STR, &teacher_path, "E4SRec teacher checkpoint (required)"},
        {"--layers", ARG_INT, &layers, "student decoder layers N"},
    };
    memcpy(specs + n, own, sizeof(own));
    n += 2;
    parse_args("distill", "Stage 3: the SLMRec_N<-M student: CE + lambda_cos Dcos + lambda_norm Dnorm + lambda_ms multi-supervision CE against\n"
               "the teacher's hidden states at B evenly spaced depths; offline (frozen teacher) by default,\n"
               "--online trains both. The student shares the teacher's prompt, tokenizer and item table, and\n"
               "its model flags (--hidden etc.) are taken from the teacher file. Writes <out>/slmrec_N_from_M.bin.",
               argc, argv, specs, n);
    if (teacher_path == NULL) die("distill: --teacher FILE is required (train one with ./slmrec train-teacher)");
    Llama base_memory;
    const Llama* base = config_base(&c, &base_memory, argc, argv);
    config_check(&c);
    config_check_depth(&c, base, "--layers", layers);
    if (c.lora_rank && c.init_random) die("distill: --init-random with --lora-rank would freeze a random decoder");
    SeqData d;
    Negatives vneg, tneg;
    read_run(&c, &d, &vneg, &tneg);
    E4SRecFile tf;
    e4srec_load(&tf, teacher_path);
    E4SRec* teacher = &tf.model;
    if (c.online) e4srec_merge_lora(teacher);  // it trains with the student, its adapters folded into its weights
    else e4srec_freeze(teacher);
    if (teacher->cfg.I != d.n_items + 1) die("'%s' was trained on %d items, the data has %d", teacher_path, teacher->cfg.I - 1, d.n_items);
    if (base && !tokenizer_same(&base->tok, &tf.tok)) {
        die("--init '%s' has another vocabulary than the teacher '%s': the student reads the teacher's prompt", c.init, teacher_path);
    }
    if (c.blocks < 1 || layers % c.blocks || teacher->cfg.L % c.blocks) {
        die("distill: --blocks %d must divide both --layers %d and the teacher's %d layers", c.blocks, layers, teacher->cfg.L);
    }
    if (c.lora_rank && base == NULL && !c.init_random) {  // the student's adapters sit over the teacher file
        config_check_lora_base("--teacher", teacher_path);
        if (tf.lora_chain + 1 > LORA_MAX_CHAIN) {
            die("distill: LoRA over '%s', itself LoRA through a chain of %d files, would make a chain of %d: at most %d are supported\n"
                "  hint: distill with full fine-tuning (no --lora-rank), or with --init BASE", teacher_path, tf.lora_chain,
                tf.lora_chain + 1, LORA_MAX_CHAIN);
        }
    }
    // the student's shape is the teacher's (the results record it)
    c.max_len = teacher->cfg.S;
    c.hidden = teacher->cfg.C;
    c.ffn = teacher->cfg.F;
    c.heads = teacher->cfg.NH;
    c.kv_heads = teacher->cfg.KVH;
    c.sas_dim = teacher->cfg.D;  // the width of the item table it reads
    E4SRecConfig sc = teacher->cfg;
    sc.L = layers;
    E4SRec student;
    e4srec_build(&student, &sc, tf.item_table, teacher->instr, teacher->resp);
    Rng rng;
    rng_seed(&rng, (uint64_t)c.seed + 7);
    slmrec_student_start(&student, teacher, teacher_path, base, &c, &rng);
    ModelName mn = model_name(layers, teacher);
    RunRecord record;
    record_e4srec(&record, &c, &d, &student, teacher);
    resume_precheck(&c, mn.stem, &record);
    open_log(&c, &d);
    ResultRow row;
    stage_e4srec(&c, &d, &vneg, &tneg, &student, &tf.tok, teacher, mn.name, mn.stem, &row);
    stage_report(&c, &d, &row, mn.stem);
    e4srec_free(&student);
    e4srec_file_free(&tf);
    if (base) llama_free(&base_memory);
    close_run(&d, &vneg, &tneg);
    return 0;
}

static int cmd_dllm2rec(int argc, char** argv) {
    Config c = config_defaults();
    c.out = "runs/dllm2rec";
    const char* teacher_path = NULL;
    const char* student = NULL;
    ArgSpec specs[48];
    int n = flags_run(specs, &c);
    n += flags_dllm2rec(specs + n, &c);
    ArgSpec own[] = {
        {"--teacher", ARG_STR, &teacher_path, "E4SRec teacher checkpoint (required unless --lam 0 --ed 0)"},
        {"--student", ARG_STR, &student, "sasrec, gru4rec or caser (required)"},
        {"--time-budget", ARG_FLOAT, &c.time_budget, "stop training after this many seconds (0 = none)"},
        {"--sasrec-blocks", ARG_INT, &c.sas_blocks, "SASRec student: transformer blocks"},
        {"--sasrec-heads", ARG_INT, &c.sas_heads, "SASRec student: attention heads"},
    };
    memcpy(specs + n, own, sizeof(own));
    n += (int)(sizeof(own) / sizeof(own[0]));
    parse_args("dllm2rec", "DLLM2Rec: trains a conventional sequential recommender (SASRec read out at the last item,\n"
               "GRU4Rec or Caser) on every (history, next item) sample of the train prefixes with\n"
               "  loss = L_student + lam L_rd,  input embedding e_cf(i) + ed (W e_T(i) + b):\n"
               "importance-weighted ranking distillation against the teacher's top-K of each sample, and\n"
               "collaborative embedding distillation from the teacher's item table e_T. Both come from the\n"
               "E4SRec teacher once and are cached (--signals), keyed by the checksum of its weights.\n"
               "--lam 0 --ed 0 trains the plain student (no teacher). Writes <out>/<student>_<variant>.bin\n"
               "(plain, dllm2rec; rd or ed for one part alone) and its results JSON.", argc, argv, specs, n);
    if (student == NULL) die("dllm2rec: --student sasrec|gru4rec|caser is required");
    int kind = student_kind_parse(student);
    if (kind < 0) die("dllm2rec: --student must be sasrec, gru4rec or caser, got '%s'", student);
    int distilled = c.lam > 0.0f || c.ed > 0.0f;
    if (distilled && teacher_path == NULL) die("dllm2rec: --teacher FILE is required (or --lam 0 --ed 0 for the plain student)");
    config_check(&c);
    SeqData d;
    Negatives vneg, tneg;
    read_run(&c, &d, &vneg, &tneg);
    if (c.topk > d.n_items) die("dllm2rec: --topk %d exceeds the %d items of '%s'", c.topk, d.n_items, c.data ? c.data : "synthetic");
    TeacherSignals sig = {0};
    E4SRecFile tf;
    uint32_t teacher_checksum = 0;
    char sig_path[1100], why[1400];
    snprintf(sig_path, sizeof(sig_path), "%s/teacher_signals.bin", c.out);
    const char* signals_path = c.signals ? c.signals : sig_path;
    int cached = 0;
    if (distilled) {  // the teacher and its cached signals are read and checked before anything is written
        e4srec_load(&tf, teacher_path);
        e4srec_freeze(&tf.model);
        if (tf.model.cfg.I != d.n_items + 1) {
            die("'%s' was trained on %d items, '%s' has %d", teacher_path, tf.model.cfg.I - 1, c.data ? c.data : "synthetic", d.n_items);
        }
        teacher_checksum = e4srec_checksum(&tf.model);
        cached = signals_load_cached(&sig, signals_path, &d, &tf.model, teacher_checksum, c.topk, why, sizeof(why));
    }
    RunRecord record;
    record_student(&record, &c, &d, (StudentKind)kind, c.lam, c.ed, teacher_checksum);
    resume_precheck(&c, student_name((StudentKind)kind, c.lam, c.ed).stem, &record);
    open_log(&c, &d);
    if (distilled) {
        signals_get(&sig, cached, why, signals_path, &tf.model, teacher_checksum, &d, c.topk);
        e4srec_file_free(&tf);
    }
    ResultRow row;
    stage_student(&c, &d, &vneg, &tneg, (StudentKind)kind, c.lam, c.ed, distilled ? &sig : NULL, &row);
    stage_report(&c, &d, &row, student_name((StudentKind)kind, c.lam, c.ed).stem);
    signals_free(&sig);
    close_run(&d, &vneg, &tneg);
    return 0;
}

// any model file, loaded for scoring
typedef struct {
    int kind;
    E4SRecFile e4srec;
    SASRecFile sasrec;
    E4SRecJob e4srec_job;
    SASRecJob sasrec_job;
    StudentFile student;
    Trainable t;
} LoadedModel;

static void model_load(LoadedModel* lm, const char* path, const SeqData* d, int max_batch) {
    memset(lm, 0, sizeof(*lm));
    lm->kind = binfile_kind(path);
    if (lm->kind == KIND_E4SREC) {
        e4srec_load(&lm->e4srec, path);
        e4srec_freeze(&lm->e4srec.model);  // inference
        e4srec_job_init(&lm->e4srec_job, &lm->e4srec.model, NULL, 0, d, &lm->e4srec.tok, max_batch);
        lm->t = e4srec_trainable(&lm->e4srec_job, "model");
    } else if (lm->kind == KIND_SASREC) {
        sasrec_load(&lm->sasrec, path);
        sasrec_job_init(&lm->sasrec_job, &lm->sasrec.model, d, max_batch);
        lm->t = sasrec_trainable(&lm->sasrec_job, "model");
    } else if (lm->kind == KIND_DLLM2REC) {
        student_load(&lm->student, path);
        lm->t = student_scorer(&lm->student.model);
    } else {
        die("'%s' holds %s %s, not a recommender (sasrec, e4srec or a dllm2rec student)", path, a_or_an(bin_kind_name(lm->kind)),
            bin_kind_name(lm->kind));
    }
    if (d && lm->t.I != d->n_items + 1) die("'%s' scores %d items, the data has %d", path, lm->t.I - 1, d->n_items);
}

static void model_free(LoadedModel* lm) {
    if (lm->kind == KIND_E4SREC) { e4srec_job_free(&lm->e4srec_job); e4srec_file_free(&lm->e4srec); }
    else if (lm->kind == KIND_SASREC) { sasrec_job_free(&lm->sasrec_job); sasrec_file_free(&lm->sasrec); }
    else student_file_free(&lm->student);
}

static int cmd_eval(int argc, char** argv) {
    const char* data = NULL;
    const char* model = NULL;
    const char* split = "test";
    const char* device = "auto";
    const char* precision = "fp32";
    int eval_batch = 256;
    ArgSpec specs[] = {
        {"--data", ARG_STR, &data, "sequence file the model was trained on (required)"},
        {"--model", ARG_STR, &model, "checkpoint: sasrec.bin, e4srec_*.bin, slmrec_*.bin or a dllm2rec student's (required)"},
        {"--split", ARG_STR, &split, "valid or test"},
        {"--eval-batch", ARG_INT, &eval_batch, "users per scoring batch"},
        {"--device", ARG_STR, &device, "cpu or cuda for an E4SRec model; auto = cuda when a GPU is visible (SASRec: cpu)"},
        {"--precision", ARG_STR, &precision, "on the GPU: fp32, or bf16 activations and matmuls"},
    };
    parse_args("eval", "Scores every user's valid or test target with both protocols (full ranking and sampled\n"
               "negatives) and prints every metric.", argc, argv, specs, 6);
    if (data == NULL || model == NULL) die("eval: --data FILE and --model FILE are required");
    if (strcmp(split, "test") != 0 && strcmp(split, "valid") != 0) die("eval: --split must be valid or test, got '%s'", split);
    if (eval_batch < 1) die("eval: --eval-batch must be positive");
    config_device(&device, precision, 0);
    Split sp = strcmp(split, "test") == 0 ? SPLIT_TEST : SPLIT_VALID;
    SeqData d;
    seqdata_load(&d, data, 0);
    Negatives neg;
    negatives_build(&neg, &d, sp);
    LoadedModel lm;
    model_load(&lm, model, &d, eval_batch);
#ifdef SLMREC_CUDA
    if (lm.kind == KIND_E4SREC && strcmp(device, "cuda") == 0) e4srec_job_to_gpu(&lm.e4srec_job, NULL, 0, strcmp(precision, "bf16") == 0);
#endif
    double t0 = now_seconds();
    Metrics m = evaluate(&lm.t, &d, sp, &neg, eval_batch);
    printf("%s split of %s, %d users, %.2fs\n", split, data, d.n_users, now_seconds() - t0);
    metrics_print_header(stdout, m.n_neg);
    metrics_print_row(stdout, model, &m);
    model_free(&lm);
    negatives_free(&neg);
    seqdata_free(&d);
    return 0;
}

// parses "3 17 42" (spaces or commas) into ids; dies naming the bad token
static int parse_history(const char* text, int* out, int cap, int n_items) {
    int n = 0;
    const char* p = text;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        char* end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > n_items) die("recommend: --history item '%.*s' is not an item id in 1..%d", (int)strcspn(p, " ,"), p, n_items);
        if (n == cap) die("recommend: --history has more than %d items", cap);
        out[n++] = (int)v;
        p = end;
        if (*p && *p != ' ' && *p != ',') die("recommend: --history has a stray character '%c'", *p);
    }
    if (n == 0) die("recommend: --history is empty");
    return n;
}

// one user's line of recommend --data: "user item:score ..." from that user's score row
// one user's line "user item:score ..."; returns how many items it lists (fewer than k
// when --exclude-seen leaves fewer)
static int recommend_line(FILE* f, const SeqData* d, int u, const float* scores, int n_items, int k, int exclude_seen,
                          int* best, float* best_scores) {
    int found = top_k(scores, n_items, k, seq_items(d, u), exclude_seen ? seq_len(d, u) : 0, best, best_scores);
    fprintf(f, "%d", d->user_ids[u]);
    for (int j = 0; j < found; j++) fprintf(f, " %d:%.4f", best[j], best_scores[j]);
    fputc('\n', f);
    return found;
}

#define RECOMMEND_BATCH 256  // users scored per forward with --data

static int cmd_recommend(int argc, char** argv) {
    const char* model = NULL;
    const char* history = NULL;
    const char* data = NULL;
    const char* out = NULL;
    int k = 10, exclude_seen = 0;
    ArgSpec specs[] = {
        {"--model", ARG_STR, &model, "checkpoint (required)"},
        {"--history", ARG_STR, &history, "item ids, oldest first: \"3 17 42\""},
        {"--data", ARG_STR, &data, "sequence file: recommend for every user after their whole sequence"},
        {"--out", ARG_STR, &out, "with --data: write 'user item:score ...' lines here instead of stdout"},
        {"--k", ARG_INT, &k, "items to recommend"},
        {"--exclude-seen", ARG_BOOL, &exclude_seen, "leave out items already in the history"},
    };
    parse_args("recommend", "Top-k next items with their scores, for one history or for every user of a file.",
               argc, argv, specs, 6);
    if (model == NULL || (history == NULL) == (data == NULL)) die("recommend: --model and exactly one of --history, --data are required");
    if (out && ((data && same_file(data, out)) || same_file(model, out))) {
        die("recommend: --out '%s' is the input file '%s' itself: write the recommendations elsewhere", out, same_file(model, out) ? model : data);
    }
    if (k < 1) die("recommend: --k must be at least 1");
    SeqData d = {0};
    if (data) seqdata_load(&d, data, 0);
    LoadedModel lm;
    int batch = data ? RECOMMEND_BATCH : 1;
    model_load(&lm, model, NULL, batch);
    int I = lm.t.I, S = lm.t.max_len;
    if (data && d.n_items > I - 1) die("'%s' has item ids up to %d, the model knows %d items", data, d.n_items, I - 1);
    k = min_int(k, I - 1);
    int *hist = (int*)mallocCheck((size_t)batch * S * sizeof(int)), *best = (int*)mallocCheck(k * sizeof(int));
    float *scores = (float*)mallocCheck((size_t)batch * I * sizeof(float)), *best_scores = (float*)mallocCheck(k * sizeof(float));
    if (history) {
        int* ids = (int*)mallocCheck(4096 * sizeof(int));
        int n = parse_history(history, ids, 4096, I - 1);
        history_left_padded(hist, ids, n, S);
        lm.t.score(lm.t.model, hist, 1, scores);
        int found = top_k(scores, I - 1, k, ids, exclude_seen ? n : 0, best, best_scores);
        printf("rank  item       score\n");
        for (int j = 0; j < found; j++) printf("%4d  %6d  %10.4f\n", j + 1, best[j], best_scores[j]);
        if (found < k) fprintf(stderr, "recommend: only %d items are left once the history is excluded (--k %d)\n", found, k);
        free(ids);
    } else {
        OutFile o = {0};
        if (out) outfile_open(&o, out);
        FILE* f = out ? o.f : stdout;
        int short_lines = 0;
        for (int u0 = 0; u0 < d.n_users; u0 += batch) {
            int n = min_int(batch, d.n_users - u0);
            for (int i = 0; i < n; i++) history_left_padded(hist + (size_t)i * S, seq_items(&d, u0 + i), seq_len(&d, u0 + i), S);
            lm.t.score(lm.t.model, hist, n, scores);  // (n, I)
            for (int i = 0; i < n; i++) {
                short_lines += recommend_line(f, &d, u0 + i, scores + (size_t)i * I, I - 1, k, exclude_seen, best, best_scores) < k;
            }
        }
        if (out) outfile_commit(&o);
        if (short_lines) fprintf(stderr, "recommend: %d users have fewer than %d items left once their history is excluded: "
                                 "their lines list what there is\n", short_lines, k);
        seqdata_free(&d);
    }
    free(hist); free(best); free(scores); free(best_scores);
    model_free(&lm);
    return 0;
}

static int cmd_synth(int argc, char** argv) {
    const char* out = NULL;
    int users = SYNTH_USERS, items = SYNTH_ITEMS, mean_len = SYNTH_MEAN_LEN, seed = SYNTH_SEED;
    ArgSpec specs[] = {
        {"--out", ARG_STR, &out, "sequence file to write (required)"},
        {"--users", ARG_INT, &users, "users"},
        {"--items", ARG_INT, &items, "items"},
        {"--mean-len", ARG_INT, &mean_len, "mean sequence length"},
        {"--seed", ARG_INT, &seed, "generator seed"},
    };
    parse_args("synth", "Writes the built-in synthetic data set (data/README.md describes the generator).", argc, argv, specs, 5);
    if (out == NULL) die("synth: --out FILE is required");
    check_range("synth", "--items", items, 10, MAX_ITEM_ID);
    SeqData d;
    synth_generate(&d, users, items, mean_len, (uint64_t)seed);
    seqdata_write(&d, out);
    printf("synth: %d users, %d items, %d events -> %s\n", d.n_users, d.n_items, d.n_events, out);
    seqdata_free(&d);
    return 0;
}

static int cmd_prep(int argc, char** argv) {
    const char* in = NULL;
    const char* out = NULL;
    int header = 0;
    ArgSpec specs[] = {
        {"--in", ARG_STR, &in, "ratings CSV user,item,rating,timestamp (or MovieLens user::item::rating::timestamp)"},
        {"--out", ARG_STR, &out, "sequence file to write"},
        {"--header", ARG_BOOL, &header, "the first line names the columns: skip it"},
    };
    parse_args("prep", "Raw ratings -> sequence file: rating > 3, iterative 5-core, chronological, dense ids from 1.",
               argc, argv, specs, 3);
    if (in == NULL || out == NULL) die("prep: --in CSV and --out FILE are required");
    prep_ratings(in, out, header);
    return 0;
}
static int cmd_upgrade(int argc, char** argv) {
    const char* in = NULL;
    const char* out = NULL;
    ArgSpec specs[] = {
        {"--in", ARG_STR, &in, "a format-3 slmrec file (checkpoint, tokenizer, teacher signals)"},
        {"--out", ARG_STR, &out, "the format-4 file to write (not --in: the old file stays until you remove it)"},
    };
    parse_args("upgrade", "Format 3 -> 4: the same contents, the checksum now covering the header too.\n"
               "LoRA adapter files cannot be converted (their base's checksum changes): retrain them.", argc, argv, specs, 2);
    if (in == NULL || out == NULL) die("upgrade: --in OLD and --out NEW are required");
    if (strcmp(in, out) == 0 || same_file(in, out)) {
        die("upgrade: --in '%s' and --out '%s' are the same file: write the new file beside the old one", in, out);
    }
    binfile_upgrade(in, out);
    printf("%s -> %s (format %d)\n", in, out, BIN_VERSION);
    return 0;
}

// ----------------------------------------------------------------------------
// bench: the GPU path's throughput at the shapes of the PyTorch peer
// (peer_e4srec.py speed, method.md 11): batch 256 to train and 512 to infer,
// 20 + 50 + 4 tokens (instruction, item history, response), 12,101 items of
// width 64, a 32,000-token vocabulary; random weights (drawn on the device) and
// items. `bench --plan` prints the device memory of each config's handles from
// src/gpu_plan.h alone: it needs no GPU.

typedef struct {
    const char* name;
    int L, C, F, NH;
    int peer_lora;  // the peer trains LoRA r=8 on the MLP of a frozen decoder (and input_proj, score); slmrec: every weight
} BenchShape;

// base_T8 first: the smallest full run, the one to try first on a new GPU
static const BenchShape bench_shapes[] = {
    {"base_T8", 8, 1024, 2816, 16, 0},
    {"base_S4", 4, 1024, 2816, 16, 0},
    {"paper_T8", 8, 4096, 11008, 32, 1},
    {"paper_S4", 4, 4096, 11008, 32, 1},
};
#define BENCH_NUM_SHAPES ((int)(sizeof(bench_shapes) / sizeof(bench_shapes[0])))
#define BENCH_ITEMS 12101
#define BENCH_TRAIN_B 256
#define BENCH_INFER_B 512
#define BENCH_TOPK 20
#define BENCH_FLOPS_FORMULA "forward = 2 B T L (C QKV + C Q + 3 C F) + 4 B L T^2 Q + 2 B S D C + 2 B C D + 2 B D I " \
                            "(2 per multiply-add; attention over the full T x T); a train step = 3 x forward when every " \
                            "weight trains, 2 x forward for the peer's LoRA configs (frozen decoder: no weight gradients)"

static E4SRecConfig bench_config(const BenchShape* b) {
    E4SRecConfig c = {.V = 32000, .C = b->C, .F = b->F, .L = b->L, .NH = b->NH, .KVH = b->NH, .HS = b->C / b->NH,
                      .D = 64, .I = BENCH_ITEMS + 1, .P1 = 20, .P2 = 4, .S = 50, .rms_eps = 1e-5f, .rope_theta = 10000.0f};
    return c;
}

// ---- the memory plan

typedef struct {
    const char* what;
    GpuPlan plan;
} BenchPlanRow;

// the handles a config makes: training (B = 256, every weight) and inference (B = 512,
// forward only); for paper_S4 also distillation from paper_T8 (a forward-only teacher
// beside the training student with 3 adapters, both B = 256)
static int bench_plan_rows(BenchPlanRow* rows, const BenchShape* b, int use_bf16) {
    E4SRecConfig c = bench_config(b);
    int n = 0;
    rows[n++] = (BenchPlanRow){"train", gpu_plan(&c, 0, BENCH_TRAIN_B, use_bf16, 1)};
    rows[n++] = (BenchPlanRow){"infer", gpu_plan(&c, 0, BENCH_INFER_B, use_bf16, 0)};
    if (strcmp(b->name, "paper_S4") == 0) {
        E4SRecConfig t = bench_config(&bench_shapes[2]);
        rows[n++] = (BenchPlanRow){"distill: teacher paper_T8", gpu_plan(&t, 0, BENCH_TRAIN_B, use_bf16, 0)};
        rows[n++] = (BenchPlanRow){"distill: student", gpu_plan(&c, 3, BENCH_TRAIN_B, use_bf16, 1)};
    }
    return n;
}

static void bench_plan(const char* out) {
    const double gib = 1024.0 * 1024.0 * 1024.0;
    printf("device memory plan of each handle (src/gpu_plan.h), GiB = 2^30 bytes; train batch %d, inference batch %d\n"
           "(the CUDA context and cuBLAS's workspace come on top)\n\n", BENCH_TRAIN_B, BENCH_INFER_B);
    printf("%-9s %-5s %-26s", "config", "prec", "handle");
    for (int a = 0; a < GPU_NUM_ARENAS; a++) printf(" %12s", gpu_arena_names[a]);
    printf(" %9s\n", "total");
    char path[1100];
    snprintf(path, sizeof(path), "%s/plan.json", out);
    make_dir(out);
    OutFile o;
    outfile_open(&o, path);
    fprintf(o.f, "{\n \"unit\": \"bytes\", \"train_batch\": %d, \"infer_batch\": %d, \"rows\": [\n", BENCH_TRAIN_B, BENCH_INFER_B);
    int first = 1;
    for (int i = 0; i < BENCH_NUM_SHAPES; i++) {
        for (int bf = 0; bf < 2; bf++) {
            BenchPlanRow rows[4];
            int n = bench_plan_rows(rows, &bench_shapes[i], bf);
            for (int r = 0; r < n; r++) {
                printf("%-9s %-5s %-26s", bench_shapes[i].name, bf ? "bf16" : "fp32", rows[r].what);
                for (int a = 0; a < GPU_NUM_ARENAS; a++) printf(" %12.2f", rows[r].plan.bytes[a] / gib);
                printf(" %9.2f\n", rows[r].plan.total / gib);
                fprintf(o.f, "%s  {\"config\": \"%s\", \"precision\": \"%s\", \"handle\": \"%s\"", first ? "" : ",\n",
                        bench_shapes[i].name, bf ? "bf16" : "fp32", rows[r].what);
                for (int a = 0; a < GPU_NUM_ARENAS; a++) fprintf(o.f, ", \"%s\": %zu", gpu_arena_names[a], rows[r].plan.bytes[a]);
                fprintf(o.f, ", \"total\": %zu}", rows[r].plan.total);
                first = 0;
            }
            if (n == 4) printf("%-9s %-5s %-26s %*s %9.2f\n", "", "", "distill: both", 13 * GPU_NUM_ARENAS, "",
                               (rows[2].plan.total + rows[3].plan.total) / gib);
        }
    }
    fprintf(o.f, "\n ]\n}\n");
    outfile_commit(&o);
    printf("\nwrote %s\n", path);
}

#ifdef SLMREC_CUDA
// FLOPs of one forward pass over B samples: see BENCH_FLOPS_FORMULA (Q = NH HS, QKV = (NH + 2 KVH) HS)
static double bench_forward_flops(const E4SRecConfig* c, int B) {
    double T = e4srec_T(c), C = c->C, Q = (double)c->NH * c->HS;
    double decoder = 2.0 * B * T * c->L * (C * e4srec_QKV(c) + C * Q + 3.0 * C * c->F);
    double attention = 4.0 * B * c->L * T * T * Q;
    return decoder + attention + 2.0 * B * c->S * c->D * C + 2.0 * B * C * c->D + 2.0 * B * c->D * (double)c->I;
}

// one training step's FLOPs: every weight trains (3 x forward), or LoRA on a frozen decoder
// (2 x forward: the activations' gradients only; LoRA's r = 8 products are under 0.5% and left out)
static double bench_train_flops(const E4SRecConfig* c, int B, int lora) { return (lora ? 2.0 : 3.0) * bench_forward_flops(c, B); }

// ---- the peer's numbers (peer_e4srec.py speed's JSON), for the ratios

typedef struct {
    int found;
    double train_samples_s, infer_samples_s, peak_mem_gb;
} BenchPeer;

static BenchPeer bench_peer_row(const char* text, const char* path, const char* config) {
    BenchPeer p = {0};
    char key[64];
    snprintf(key, sizeof(key), "\"%s\"", config);
    const char* at = strstr(text, key);
    if (at == NULL) return p;
    p.found = 1;
    p.train_samples_s = json_number(at, "train_samples_per_s", path);
    p.infer_samples_s = json_number(at, "infer_samples_per_s", path);
    p.peak_mem_gb = json_number(at, "peak_mem_GB", path);
    return p;
}

// dense peaks in TFLOP/s, the denominator of MFU, by device name (NVIDIA datasheets): bf16
// tensor cores with fp32 accumulation, and plain fp32 FMA (no TF32). The first entry whose
// text the name contains wins, so specific names come before general ones.
typedef struct {
    const char* match;
    const char* model;
    double bf16, fp32;
} GpuPeak;

static const GpuPeak gpu_peaks[] = {
    {"GH200", "GH200", 989.0, 67.0},       {"H200 NVL", "H200 NVL", 835.0, 60.0}, {"H200", "H200 SXM", 989.0, 67.0},
    {"H100 NVL", "H100 NVL", 835.0, 60.0}, {"H100 PCIe", "H100 PCIe", 756.0, 51.0}, {"H100", "H100 SXM", 989.0, 67.0},
    {"A100", "A100", 312.0, 19.5},         {"L40S", "L40S", 362.0, 91.6},          {"A10", "A10", 125.0, 31.2},
};

static const GpuPeak* gpu_peak_of(const char* name) {
    for (size_t i = 0; i < sizeof(gpu_peaks) / sizeof(gpu_peaks[0]); i++) {
        if (strstr(name, gpu_peaks[i].match)) return &gpu_peaks[i];
    }
    return NULL;
}

typedef struct {
    const BenchShape* shape;
    E4SRecConfig cfg;
    size_t params;
    double train_step_s, infer_batch_s;
    double train_flops, infer_flops;  // per step / batch: this program's work
    size_t peak_bytes;                // the allocator's high-water mark (gpu_allocated_peak), the larger of the two runs
    size_t plan_bytes;                // gpu_plan's total for the larger of the two handles
    float loss;                       // the last training step's (a sanity check: finite)
} BenchRow;

// one shape: `warmup` untimed then `steps` timed training steps, the same for inference
// (forward, scores of every item, top-20); each timed span ends with a wait for the GPU
static BenchRow bench_shape(const BenchShape* b, int use_bf16, int steps, int warmup, Rng* rng) {
    BenchRow r = {.shape = b, .cfg = bench_config(b)};
    const E4SRecConfig* c = &r.cfg;
    size_t sizes[E4SREC_NUM_PARAMS];
    e4srec_param_sizes(sizes, c);
    r.params = sizes_total(sizes, E4SREC_NUM_PARAMS);
    float* table = (float*)mallocCheck((size_t)c->I * c->D * sizeof(float));  // (I, D)
    rng_fill_normal(rng, table, (size_t)c->I * c->D, 0.1f);
    int instr[20], resp[4];
    for (int i = 0; i < c->P1; i++) instr[i] = 1 + rng_int(rng, c->V - 1);
    for (int i = 0; i < c->P2; i++) resp[i] = 1 + rng_int(rng, c->V - 1);
    int* items = (int*)mallocCheck((size_t)BENCH_INFER_B * c->S * sizeof(int));  // (512, S), no pads
    int* targets = (int*)mallocCheck(BENCH_TRAIN_B * sizeof(int));              // (256)
    int* top = (int*)mallocCheck((size_t)BENCH_INFER_B * BENCH_TOPK * sizeof(int));
    for (int i = 0; i < BENCH_INFER_B * c->S; i++) items[i] = 1 + rng_int(rng, BENCH_ITEMS);
    for (int i = 0; i < BENCH_TRAIN_B; i++) targets[i] = 1 + rng_int(rng, BENCH_ITEMS);
    AdamWConfig opt = adamw_defaults();
    opt.lr = opt.min_lr = 1e-4f;  // the peer's
    uint64_t seed = rng_u32(rng);
    SLMRecLosses l;

    gpu_allocated_peak(1);
    r.plan_bytes = gpu_plan(c, 0, BENCH_TRAIN_B, use_bf16, 1).total;
    GpuE4SRec* g = gpu_e4srec_create_random(c, table, instr, resp, seed, BENCH_TRAIN_B, use_bf16, &opt);
    for (int i = 0; i < warmup; i++) gpu_e4srec_train_step(g, items, targets, BENCH_TRAIN_B);
    gpu_e4srec_losses(g, &l, NULL, NULL);  // waits
    double t0 = now_seconds();
    for (int i = 0; i < steps; i++) gpu_e4srec_train_step(g, items, targets, BENCH_TRAIN_B);
    gpu_e4srec_losses(g, &l, NULL, NULL);
    r.train_step_s = (now_seconds() - t0) / steps;
    r.loss = l.total;
    r.peak_bytes = gpu_allocated_peak(1);
    gpu_e4srec_free(g);

    size_t plan = gpu_plan(c, 0, BENCH_INFER_B, use_bf16, 0).total;
    if (plan > r.plan_bytes) r.plan_bytes = plan;
    g = gpu_e4srec_create_random(c, table, instr, resp, seed, BENCH_INFER_B, use_bf16, NULL);
    for (int i = 0; i < warmup; i++) gpu_e4srec_score(g, items, BENCH_INFER_B, NULL, BENCH_TOPK, top);
    t0 = now_seconds();
    for (int i = 0; i < steps; i++) gpu_e4srec_score(g, items, BENCH_INFER_B, NULL, BENCH_TOPK, top);  // each waits
    r.infer_batch_s = (now_seconds() - t0) / steps;
    size_t peak = gpu_allocated_peak(1);
    if (peak > r.peak_bytes) r.peak_bytes = peak;
    gpu_e4srec_free(g);

    r.train_flops = bench_train_flops(c, BENCH_TRAIN_B, 0);
    r.infer_flops = bench_forward_flops(c, BENCH_INFER_B);
    free(table); free(items); free(targets); free(top);
    return r;
}

static void bench_write_json(const char* path, const BenchRow* rows, int n, const char* gpu, const char* precision,
                             double peak, const char* peer_path, const BenchPeer* peers, int steps, int warmup) {
    OutFile o;
    outfile_open(&o, path);
    fprintf(o.f, "{\n \"device\": ");
    json_write_string(o.f, gpu);
    fprintf(o.f, ", \"precision\": \"%s\", \"timed_steps\": %d, \"warmup_steps\": %d,\n", precision, steps, warmup);
    fprintf(o.f, " \"train_batch\": %d, \"infer_batch\": %d, \"items\": %d, \"topk\": %d,\n", BENCH_TRAIN_B, BENCH_INFER_B,
            BENCH_ITEMS, BENCH_TOPK);
    fprintf(o.f, " \"flops\": \"%s\",\n \"mfu_peak_tflops\": %.1f,\n", BENCH_FLOPS_FORMULA, peak);
    fprintf(o.f, " \"memory\": \"peak_mem_GB: the most bytes slmrec's allocations held at once in the train or the "
            "inference run (1 GB = 1e9 bytes, as the peer's torch.cuda.max_memory_allocated); plan_GB: gpu_plan's total\",\n");
    fprintf(o.f, " \"peer\": ");
    json_write_string(o.f, peer_path ? peer_path : "");
    fprintf(o.f, ",\n");
    for (int i = 0; i < n; i++) {
        const BenchRow* r = &rows[i];
        const E4SRecConfig* c = &r->cfg;
        double peer_train_flops = bench_train_flops(c, BENCH_TRAIN_B, r->shape->peer_lora);
        fprintf(o.f, " \"%s\": {\"layers\": %d, \"hidden\": %d, \"ffn\": %d, \"heads\": %d, \"params\": %zu, "
                "\"trainable\": %zu, \"lora\": false, \"peer_lora\": %s, \"tokens\": %d, "
                "\"train_step_s\": %.6f, \"train_samples_per_s\": %.1f, \"train_flops\": %.4e, \"train_tflops\": %.2f, "
                "\"infer_batch_s\": %.6f, \"infer_samples_per_s\": %.1f, \"infer_flops\": %.4e, \"infer_tflops\": %.2f, "
                "\"peak_mem_GB\": %.3f, \"plan_GB\": %.3f, \"peer_train_flops\": %.4e, \"last_loss\": %.4f",
                r->shape->name, c->L, c->C, c->F, c->NH, r->params, r->params, r->shape->peer_lora ? "true" : "false",
                e4srec_T(c), r->train_step_s, BENCH_TRAIN_B / r->train_step_s, r->train_flops,
                r->train_flops / r->train_step_s / 1e12, r->infer_batch_s, BENCH_INFER_B / r->infer_batch_s, r->infer_flops,
                r->infer_flops / r->infer_batch_s / 1e12, r->peak_bytes / 1e9, r->plan_bytes / 1e9, peer_train_flops, r->loss);
        if (peak > 0) {
            fprintf(o.f, ", \"train_mfu\": %.4f, \"infer_mfu\": %.4f", r->train_flops / r->train_step_s / 1e12 / peak,
                    r->infer_flops / r->infer_batch_s / 1e12 / peak);
        }
        if (peers[i].found) {
            const BenchPeer* p = &peers[i];
            fprintf(o.f, ", \"peer_train_samples_per_s\": %.1f, \"peer_infer_samples_per_s\": %.1f, \"peer_peak_mem_GB\": %.3f, "
                    "\"train_speedup\": %.3f, \"infer_speedup\": %.3f, \"memory_ratio\": %.3f",
                    p->train_samples_s, p->infer_samples_s, p->peak_mem_gb, BENCH_TRAIN_B / r->train_step_s / p->train_samples_s,
                    BENCH_INFER_B / r->infer_batch_s / p->infer_samples_s, r->peak_bytes / 1e9 / p->peak_mem_gb);
            if (peak > 0) {
                fprintf(o.f, ", \"peer_train_mfu\": %.4f, \"peer_infer_mfu\": %.4f",
                        peer_train_flops * p->train_samples_s / BENCH_TRAIN_B / 1e12 / peak,
                        r->infer_flops * p->infer_samples_s / BENCH_INFER_B / 1e12 / peak);
            }
        }
        fprintf(o.f, "}%s\n", i + 1 < n ? "," : "");
    }
    fprintf(o.f, "}\n");
    outfile_commit(&o);
}

static void bench_gpu(const BenchShape** chosen, int n, const char* precision, double peak_flag, const char* peer_path,
                      const char* out, int steps, int warmup, int seed) {
    gpu_require("bench");
    char gpu[256], name[256];
    gpu_device_info(gpu, sizeof(gpu));
    gpu_device_name(name, sizeof(name));
    int use_bf16 = strcmp(precision, "bf16") == 0;
    const GpuPeak* known = gpu_peak_of(name);
    double peak = peak_flag > 0 ? peak_flag : known ? (use_bf16 ? known->bf16 : known->fp32) : 0.0;
    char* peer_text = peer_path ? read_file(peer_path, NULL) : NULL;
    BenchPeer peers[BENCH_NUM_SHAPES] = {{0}};
    for (int i = 0; peer_text && i < n; i++) peers[i] = bench_peer_row(peer_text, peer_path, chosen[i]->name);
    printf("bench: %s; %s, %d timed steps after %d warm-up, train batch %d, inference batch %d (+ top-%d of %d items)\n",
           gpu, precision, steps, warmup, BENCH_TRAIN_B, BENCH_INFER_B, BENCH_TOPK, BENCH_ITEMS);
    printf("FLOPs: %s\n", BENCH_FLOPS_FORMULA);
    if (peak_flag > 0) printf("MFU: achieved / %.1f TFLOP/s (--peak-tflops)\n", peak);
    else if (known) printf("MFU: achieved / %.1f TFLOP/s, the dense %s peak of an %s (table gpu_peaks, by device name)\n", peak, precision, known->model);
    else printf("MFU: not reported: '%s' is not in the table of peaks (gpu_peaks); give --peak-tflops\n", name);
    printf("memory: the most bytes slmrec's allocations held at once (as the peer's max_memory_allocated), GB = 1e9 bytes;\n"
           "plan: what src/gpu_plan.h planned for the larger handle\n\n");
    printf("%-9s %6s %6s %14s | %12s %8s %6s | %12s %8s %6s | %8s %8s  %s\n", "config", "layers", "hidden", "params",
           "train smp/s", "TFLOP/s", "MFU", "infer smp/s", "TFLOP/s", "MFU", "peak GB", "plan GB", "training");
    make_dir(out);
    char path[1100];
    snprintf(path, sizeof(path), "%s/bench.json", out);
    BenchRow rows[BENCH_NUM_SHAPES];
    Rng rng;
    rng_seed(&rng, (uint64_t)seed);
    for (int i = 0; i < n; i++) {
        BenchRow* r = &rows[i];
        *r = bench_shape(chosen[i], use_bf16, steps, warmup, &rng);
        if (!isfinite(r->loss)) die("bench: %s: the training loss became %g", chosen[i]->name, r->loss);
        double train_tf = r->train_flops / r->train_step_s / 1e12, infer_tf = r->infer_flops / r->infer_batch_s / 1e12;
        printf("%-9s %6d %6d %14zu | %12.1f %8.1f %5.1f%% | %12.1f %8.1f %5.1f%% | %8.2f %8.2f  %s\n", chosen[i]->name,
               r->cfg.L, r->cfg.C, r->params, BENCH_TRAIN_B / r->train_step_s, train_tf, peak > 0 ? 100.0 * train_tf / peak : 0.0,
               BENCH_INFER_B / r->infer_batch_s, infer_tf, peak > 0 ? 100.0 * infer_tf / peak : 0.0, r->peak_bytes / 1e9, r->plan_bytes / 1e9,
               chosen[i]->peer_lora ? "every weight (the peer: LoRA r=8)" : "every weight");
        fflush(stdout);
        // rewritten after every config: one that runs out of memory keeps the ones before it
        bench_write_json(path, rows, i + 1, gpu, precision, peak, peer_path, peers, steps, warmup);
    }
    if (peer_text) {
        char peer_gpu[128] = "an unnamed device";  // "device": "NVIDIA H100 80GB HBM3", written by the peer last
        const char* d = json_field(peer_text, "device");
        if (d && *d == '"') snprintf(peer_gpu, sizeof(peer_gpu), "%.*s", (int)strcspn(d + 1, "\""), d + 1);
        printf("\nagainst the peer (%s, measured on %s%s): slmrec / peer; MFU of each side with its own FLOPs per step\n",
               peer_path, peer_gpu, strcmp(peer_gpu, name) == 0 ? "" : " -- NOT this GPU: the ratios compare two machines");
        printf("%-9s | %10s %10s %8s | %10s %10s %8s | %8s %8s %6s\n", "config", "train", "peer", "speed-up", "infer",
               "peer", "speed-up", "peak GB", "peer GB", "ratio");
        for (int i = 0; i < n; i++) {
            const BenchRow* r = &rows[i];
            const BenchPeer* p = &peers[i];
            if (!p->found) { printf("%-9s | not in %s\n", chosen[i]->name, peer_path); continue; }
            double tr = BENCH_TRAIN_B / r->train_step_s, inf = BENCH_INFER_B / r->infer_batch_s;
            printf("%-9s | %10.1f %10.1f %7.2fx | %10.1f %10.1f %7.2fx | %8.2f %8.2f %5.2fx\n", chosen[i]->name, tr,
                   p->train_samples_s, tr / p->train_samples_s, inf, p->infer_samples_s, inf / p->infer_samples_s, r->peak_bytes / 1e9,
                   p->peak_mem_gb, r->peak_bytes / 1e9 / p->peak_mem_gb);
            if (peak > 0) {
                double peer_tf = bench_train_flops(&r->cfg, BENCH_TRAIN_B, chosen[i]->peer_lora) * p->train_samples_s / BENCH_TRAIN_B / 1e12;
                printf("%-9s   train MFU %.1f%% (slmrec, %s) vs %.1f%% (peer, %s)\n", "", 100.0 * r->train_flops / r->train_step_s / 1e12 / peak,
                       "3 x forward", 100.0 * peer_tf / peak, chosen[i]->peer_lora ? "2 x forward" : "3 x forward");
            }
        }
    }
    free(peer_text);
    printf("\nwrote %s\n", path);
}
#endif

// the CPU model name, from /proc/cpuinfo where there is one
static void cpu_model_name(char* out, size_t cap) {
    snprintf(out, cap, "unknown CPU");
    FILE* f = fopen("/proc/cpuinfo", "r");
    if (f == NULL) return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        char* colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            snprintf(out, cap, "%s", colon + 2);
            out[strcspn(out, "\n")] = 0;
            break;
        }
    }
    fclose(f);
}

static void bench_cpu(const char* data, const char* out, int steps, int seed) {
    char cpu[256], path[1100];
    cpu_model_name(cpu, sizeof(cpu));
    int threads = bench_threads();
    printf("bench: %s, %d threads, MM_MR x MM_NR = %d x %d, KC %d\n", cpu, threads, MM_MR, MM_NR, MM_KC);
    double peak = bench_fma_peak();
    printf("fp32 FMA peak (register-only loop, %d threads): %.1f GFLOP/s\n\n", threads, peak);
    printf("%-32s %6s %6s %6s | %16s %16s %16s\n", "matmul (N x C -> OC)", "N", "C", "OC", "forward", "dinp", "dweight");
    Rng rng;
    rng_seed(&rng, (uint64_t)seed);
    BenchMatmulRow mm[BENCH_NUM_MATMULS];
    for (int i = 0; i < BENCH_NUM_MATMULS; i++) {
        const BenchMatmul* b = &bench_matmuls[i];
        mm[i] = bench_matmul(b, &rng);
        printf("%-32s %6d %6d %6d |", b->name, b->N, b->C, b->OC);
        for (int w = 0; w < 3; w++) printf(" %7.1f (%5.1f%%)", mm[i].gflops[w], 100.0 * mm[i].gflops[w] / peak);
        printf("\n");
        fflush(stdout);
    }
    double naive = bench_matmul_naive(&bench_matmuls[1], &rng);
    printf("%-32s %6d %6d %6d | %7.1f (%5.1f%%): the blocked kernel is %.0fx faster\n", "  plain loop (mm_reference), 1 thread",
           bench_matmuls[1].N, bench_matmuls[1].C, bench_matmuls[1].OC, naive, 100.0 * naive / peak, mm[1].gflops[0] / naive);
    // the models at the Beauty shapes: E4SRec_8 (C=64, F=172, 4/2 heads, batch 64, 50 slots + the
    // default prompt) on the peer's batch; SASRec (D=64, 2 blocks, batch 128) on the data's users
    SeqData d;
    if (data) seqdata_load(&d, data, 0);
    else synth_generate(&d, 22363, 12101, 9, (uint64_t)seed);
    Config c = config_defaults();
    Prompt p;
    log_file = NULL;
    prompt_build(&p, &c, NULL);
    float* table = (float*)mallocCheck((size_t)(d.n_items + 1) * c.sas_dim * sizeof(float));
    rng_fill_normal(&rng, table, (size_t)(d.n_items + 1) * c.sas_dim, 0.1f);
    E4SRecConfig ec = e4srec_config_for(&c, NULL, &p, c.teacher_layers, c.sas_dim, d.n_items + 1);
    E4SRec m;
    e4srec_build(&m, &ec, table, p.instr, p.resp);
    e4srec_init_random(&m, &rng);
    Optimizer opt = {0};
    opt.cfg = config_adamw(&c, 100);
    optimizer_add(&opt, m.params_memory, m.grads_memory, m.num_params);
    optimizer_ready(&opt);
    BenchModelRow e4 = bench_e4srec(&m, &opt, c.batch, steps, &rng);
    SASRecConfig sc = {.I = d.n_items + 1, .D = c.sas_dim, .L = c.sas_blocks, .NH = c.sas_heads, .T = c.max_len, .dropout = c.sas_dropout};
    SASRec sm;
    sasrec_build(&sm, &sc);
    sasrec_init_random(&sm, &rng);
    SASRecJob sjob;
    sasrec_job_init(&sjob, &sm, &d, c.sas_batch);
    Optimizer sopt = {0};
    sopt.cfg = adamw_defaults();
    optimizer_add(&sopt, sm.params_memory, sm.grads_memory, sm.num_params);
    optimizer_ready(&sopt);
    Trainable st = sasrec_trainable(&sjob, "SASRec");
    BenchModelRow sas = bench_trainable(&st, &sopt, &d, c.sas_batch, steps, &rng);
    int* units = (int*)mallocCheck((size_t)d.n_users * sizeof(int));
    int users = training_units(&st, &d, units);
    free(units);
    printf("\nmodels on %s (%d users, %d items)\n", data ? data : "synthetic data of Beauty's size", d.n_users, d.n_items);
    printf("%-44s %14s %14s\n", "model", "train smp/s", "infer smp/s");
    printf("%-44s %14.1f %14.1f\n", "E4SRec_8 (C=64, F=172, 4/2 heads, batch 64)*", e4.train_samples_s, e4.infer_samples_s);
    printf("%-44s %14.1f %14.1f\n", "SASRec (D=64, 2 blocks, batch 128)", sas.train_samples_s, sas.infer_samples_s);
    printf("* on the peer's batch: 3..13 real items in 50 slots, %d + %d prompt tokens\n", p.P1, p.P2);
    printf("SASRec epoch: %d users / %.1f samples/s = %.1f s of training\n", users, sas.train_samples_s, users / sas.train_samples_s);
    make_dir(out);
    snprintf(path, sizeof(path), "%s/bench.json", out);
    OutFile o;
    outfile_open(&o, path);
    fprintf(o.f, "{\n \"device\": \"cpu\", \"cpu\": ");
    json_write_string(o.f, cpu);
    fprintf(o.f, ", \"threads\": %d, \"fma_peak_gflops\": %.1f,\n \"matmul\": [\n", threads, peak);
    for (int i = 0; i < BENCH_NUM_MATMULS; i++) {
        const BenchMatmul* b = &bench_matmuls[i];
        fprintf(o.f, "  {\"name\": \"%s\", \"N\": %d, \"C\": %d, \"OC\": %d, \"forward_gflops\": %.1f, \"dinp_gflops\": %.1f, "
                "\"dweight_gflops\": %.1f}%s\n", b->name, b->N, b->C, b->OC, mm[i].gflops[0], mm[i].gflops[1], mm[i].gflops[2],
                i + 1 < BENCH_NUM_MATMULS ? "," : "");
    }
    fprintf(o.f, " ],\n \"data\": ");
    json_write_string(o.f, data ? data : "synthetic, Beauty-sized");
    fprintf(o.f, ", \"users\": %d, \"items\": %d,\n \"e4srec_8\": {\"train_samples_s\": %.1f, \"infer_samples_s\": %.1f},\n"
            " \"sasrec\": {\"train_samples_s\": %.1f, \"infer_samples_s\": %.1f, \"epoch_train_s\": %.1f}\n}\n",
            d.n_users, d.n_items, e4.train_samples_s, e4.infer_samples_s, sas.train_samples_s, sas.infer_samples_s,
            users / sas.train_samples_s);
    outfile_commit(&o);
    printf("wrote %s\n", path);
    sasrec_job_free(&sjob);
    optimizer_free(&sopt);
    sasrec_free(&sm);
    optimizer_free(&opt);
    e4srec_free(&m);
    free(table);
    prompt_free(&p);
    seqdata_free(&d);
}

static int cmd_bench(int argc, char** argv) {
    const char* config = "all";
    const char* precision = "bf16";
    const char* out = "runs/bench";
    const char* device = "auto";
    const char* data = NULL;
    const char* peer = NULL;
    int steps = 8, warmup = 3, seed = 42, plan = 0;
    float peak = 0.0f;
    ArgSpec specs[] = {
        {"--device", ARG_STR, &device, "cpu (this machine's CPU path), cuda, or auto (cuda when a GPU is visible)"},
        {"--plan", ARG_BOOL, &plan, "print each config's device memory plan (fp32 and bf16) and write <out>/plan.json; no GPU needed"},
        {"--data", ARG_STR, &data, "with --device cpu: the sequence file whose users the models train on (default: synthetic, Beauty-sized)"},
        {"--config", ARG_STR, &config, "base_T8, base_S4, paper_T8, paper_S4, or all (in that order)"},
        {"--precision", ARG_STR, &precision, "bf16 (as the peer's autocast) or fp32"},
        {"--peer", ARG_STR, &peer, "the peer's JSON (peer_e4srec.py speed OUT.json) measured on this GPU: adds the ratios"},
        {"--peak-tflops", ARG_FLOAT, &peak, "the GPU's dense peak for MFU; 0 = from the table of known GPUs by device name"},
        {"--steps", ARG_INT, &steps, "timed steps (training) and batches (inference) per config"},
        {"--warmup", ARG_INT, &warmup, "untimed steps before each timing"},
        {"--out", ARG_STR, &out, "directory for bench.json (plan.json with --plan)"},
        {"--seed", ARG_INT, &seed, "seed of the random weights and items"},
    };
    parse_args("bench", "GPU throughput of E4SRec at the PyTorch peer's shapes (../shared/peers/peer_e4srec.py speed):\n"
               "train samples/s (batch 256: forward, CE over 12,101 items, backward, AdamW) and inference samples/s\n"
               "(batch 512: forward, scores of every item, top-20), 20 + 50 + 4 tokens, random weights drawn on the\n"
               "GPU. Also the achieved TFLOP/s, MFU against the GPU's dense peak (a table by device name, or\n"
               "--peak-tflops), the allocator's peak memory and the planned memory. base_*: C=1024, F=2816, 16 heads;\n"
               "paper_*: C=4096, F=11008, 32 heads; _T8 / _S4: 8 / 4 layers. The peer trains paper_* with LoRA r=8,\n"
               "slmrec every weight: each side's MFU counts its own FLOPs. With --peer, the speed-ups and memory\n"
               "ratios. Prints a table and writes <out>/bench.json.\n"
               "--plan: the device memory each config's handles will take, arena by arena (no GPU needed).\n"
               "--device cpu: this machine's fp32 FMA peak, the matmul's GFLOP/s at the models' shapes, E4SRec_8 and\n"
               "SASRec train and inference samples/s at the Beauty shapes (compare ../shared/peers/peer_cpu.py).", argc, argv, specs, 11);
    if (plan) {
        bench_plan(out);
        return 0;
    }
    config_device(&device, "fp32", 0);
    if (strcmp(device, "cpu") == 0) {
        if (steps < 1) die("bench: --steps must be positive");
        bench_cpu(data, out, steps, seed);
        return 0;
    }
    const BenchShape* chosen[BENCH_NUM_SHAPES];
    int n = 0;
    for (int i = 0; i < BENCH_NUM_SHAPES; i++) {
        if (strcmp(config, "all") == 0 || strcmp(config, bench_shapes[i].name) == 0) chosen[n++] = &bench_shapes[i];
    }
    if (n == 0) die("bench: --config must be base_T8, base_S4, paper_T8, paper_S4 or all, got '%s'", config);
    if (strcmp(precision, "fp32") != 0 && strcmp(precision, "bf16") != 0) die("bench: --precision must be bf16 or fp32, got '%s'", precision);
    if (steps < 1 || warmup < 0) die("bench: --steps must be positive and --warmup not negative");
    if (!(peak >= 0.0f)) die("bench: --peak-tflops must not be negative, got %g", peak);
#ifndef SLMREC_CUDA
    (void)chosen; (void)out; (void)seed; (void)peer;
    die("bench: this ./slmrec was built without CUDA (no nvcc at build time), and bench measures the GPU path\n"
        "  hint: rebuild where nvcc is on PATH (make prints 'CUDA: nvcc ...'); --plan and --device cpu run here");
    return 1;
#else
    bench_gpu(chosen, n, precision, peak, peer, out, steps, warmup, seed);
    return 0;
#endif
}

// ----------------------------------------------------------------------------
// main

// ----------------------------------------------------------------------------
// pretrained LLaMA models: import, generate

// the leading arguments that are not flags (a command's input files); dies unless there are n
static void take_positional(const char* cmd, const char* usage, int* argc, char*** argv, const char** out, int n) {
    for (int i = 0; i < n; i++) {
        if (*argc <= i || strncmp((*argv)[i], "--", 2) == 0) {
            if (*argc > 0 && (strcmp((*argv)[0], "--help") == 0 || strcmp((*argv)[0], "-h") == 0)) return;
            die("%s: expected %s", cmd, usage);
        }
        out[i] = (*argv)[i];
    }
    *argc -= n;
    *argv += n;
}

static void llama_describe(const Llama* m, const char* path) {
    const LlamaConfig* c = &m->cfg;
    printf("%s: %d layers, C %d, F %d, %d heads / %d kv heads of %d, vocabulary %d%s, context %d, %zu parameters%s\n",
           path, c->L, c->C, c->F, c->NH, c->KVH, c->HS, c->V, c->tied ? " (tied classifier)" : "", c->max_seq,
           m->num_params, m->has_tok ? ", with its tokenizer" : ", no tokenizer");
}

static int cmd_import_llama2c(int argc, char** argv) {
    const char* in[2] = {NULL, NULL};
    const char* out = NULL;
    const char* usage = "MODEL.bin TOKENIZER.bin --out BASE.bin";
    take_positional("import-llama2c", usage, &argc, &argv, in, 2);
    ArgSpec specs[] = {{"--out", ARG_STR, &out, "base checkpoint to write (required)"}};
    parse_args("import-llama2c MODEL.bin TOKENIZER.bin", "A llama2.c checkpoint and its tokenizer -> the project's base "
               "checkpoint (q/k rows permuted\nfrom adjacent-pair to half-split RoPE), for generate and --init.", argc, argv, specs, 1);
    if (out == NULL) die("import-llama2c: --out FILE is required (usage: import-llama2c %s)", usage);
    Llama m;
    llama_import_llama2c(&m, in[0], in[1]);
    llama_save(out, &m);
    llama_describe(&m, out);
    llama_free(&m);
    return 0;
}

static int cmd_import_hf(int argc, char** argv) {
    const char* dir[1] = {NULL};
    const char* out = NULL;
    const char* tok = NULL;
    const char* usage = "DIR --out BASE.bin [--tokenizer TOKENIZER.bin]";
    take_positional("import-hf", usage, &argc, &argv, dir, 1);
    ArgSpec specs[] = {
        {"--out", ARG_STR, &out, "base checkpoint to write (required)"},
        {"--tokenizer", ARG_STR, &tok, "its vocabulary in llama2.c's tokenizer format (needed by generate and --init)"},
    };
    parse_args("import-hf DIR", "A Hugging Face LLaMA directory (config.json, model.safetensors or shards with their index;\n"
               "F32/F16/BF16) -> the project's base checkpoint.", argc, argv, specs, 2);
    if (out == NULL) die("import-hf: --out FILE is required (usage: import-hf %s)", usage);
    Llama m;
    llama_import_hf(&m, dir[0], tok);
    llama_save(out, &m);
    llama_describe(&m, out);
    llama_free(&m);
    return 0;
}

static int cmd_generate(int argc, char** argv) {
    const char* model = NULL;
    const char* prompt = "";
    int steps = 256, seed = 42;
    float temperature = 1.0f, top_p = 0.9f;
    ArgSpec specs[] = {
        {"--model", ARG_STR, &model, "base checkpoint (import-llama2c / import-hf) (required)"},
        {"--prompt", ARG_STR, &prompt, "text to continue; empty = from BOS"},
        {"--steps", ARG_INT, &steps, "positions in all, prompt included (at most the model's context)"},
        {"--temperature", ARG_FLOAT, &temperature, "0 = greedy"},
        {"--top-p", ARG_FLOAT, &top_p, "nucleus sampling mass (1 = off)"},
        {"--seed", ARG_INT, &seed, "sampling seed"},
    };
    parse_args("generate", "Text from a pretrained language model, with a KV cache (llama2.c's `run`).", argc, argv, specs, 6);
    if (model == NULL) die("generate: --model FILE is required (make one with ./slmrec import-llama2c or import-hf)");
    if (temperature < 0.0f || top_p < 0.0f || top_p > 1.0f) die("generate: needs --temperature >= 0 and --top-p in 0..1");
    if (steps < 1) die("generate: --steps must be at least 1, got %d", steps);
    Llama m;
    llama_load(&m, model);
    if (steps > m.cfg.max_seq) {  // as llama2.c's run does
        fprintf(stderr, "generate: --steps %d exceeds the model's context of %d positions: generating %d\n", steps, m.cfg.max_seq, m.cfg.max_seq);
        steps = m.cfg.max_seq;
    }
    double t0 = now_seconds();
    int n = llama_generate(&m, prompt, steps, temperature, top_p, (uint64_t)seed, stdout);
    fprintf(stderr, "generate: %d token%s in %.2f s (%.0f tokens/s)\n", n, n == 1 ? "" : "s", now_seconds() - t0,
            n / fmax(now_seconds() - t0, 1e-9));
    llama_free(&m);
    return 0;
}

typedef struct {
    const char* name;
    int (*run)(int argc, char** argv);
    const char* help;
} Command;

static const Command commands[] = {
    {"run", cmd_run, "the whole pipeline on a data file: SASRec, teacher, E4SRec_N, SLMRec_N<-M, DLLM2Rec students"},
    {"synth", cmd_synth, "write the built-in synthetic data set"},
    {"prep", cmd_prep, "raw ratings CSV -> sequence file (rating > 3, 5-core, chronological)"},
    {"upgrade", cmd_upgrade, "convert a format-3 checkpoint, tokenizer or signals file to this build's format"},
    {"train-sasrec", cmd_train_sasrec, "stage 1: SASRec, whose item table the E4SRec models read"},
    {"train-teacher", cmd_train_teacher, "stage 2: an E4SRec model (the teacher, or a plain E4SRec_l)"},
    {"distill", cmd_distill, "stage 3: the SLMRec student of a teacher (offline, or --online)"},
    {"dllm2rec", cmd_dllm2rec, "a SASRec, GRU4Rec or Caser student, plain or distilled from an E4SRec teacher"},
    {"eval", cmd_eval, "every metric of a checkpoint on the valid or test split"},
    {"recommend", cmd_recommend, "top-k items for a history or for every user of a file"},
    {"import-llama2c", cmd_import_llama2c, "a llama2.c model and tokenizer -> a base checkpoint (for generate and --init)"},
    {"import-hf", cmd_import_hf, "a Hugging Face LLaMA directory -> a base checkpoint"},
    {"generate", cmd_generate, "text from a base checkpoint, with a KV cache"},
    {"oracle", cmd_oracle, "compare with a reference fixture: HF transformers (SLMRec) or PyTorch (DLLM2Rec)"},
    {"bench", cmd_bench, "throughput: the GPU at the peer's shapes (TFLOP/s, MFU, memory), or --device cpu (FMA peak, matmul, models)"},
};
#define NUM_COMMANDS ((int)(sizeof(commands) / sizeof(commands[0])))

static void print_commands(void) {
    printf("usage: ./slmrec <command> [flags]   (./slmrec <command> --help for its flags)\n\ncommands:\n");
    for (int i = 0; i < NUM_COMMANDS; i++) printf("  %-16s %s\n", commands[i].name, commands[i].help);
}

#ifdef TESTING
#define main slmrec_main  // the test runner has its own main and calls this one by that name
#endif
int main(int argc, char** argv) {
    if (argc < 2) return cmd_default();
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_commands();
        printf("\nwith no command: the whole pipeline on the built-in synthetic data\n");
        return 0;
    }
    for (int i = 0; i < NUM_COMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 2, argv + 2);
    }
    char echo[ECHO_CAP];
    die("unknown command '%s' (./slmrec --help lists the commands)", echo_input(argv[1], strlen(argv[1]), echo));
    return 1;
}
#undef main
