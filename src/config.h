// config.h: the configuration of a training run: one struct that the training
// commands' flags write into (slmrec.c holds the flag tables and their --help),
// its defaults, the checks every value passes before any work, and what the rest
// of the program reads from it: the device, the DLLM2Rec objective, LoRA, the
// decoder's widths, AdamW and the training loop's settings.
#pragma once
#include "dllm2rec.h"  // DLLM2RecConfig
#include "student.h"   // StudentKind, the file limits (and checkpoint.h, e4srec.h, lora.h, optim.h)
#include "train.h"     // TrainConfig
#ifdef SLMREC_CUDA
#include "gpu.h"       // gpu_device_info, gpu_require
#endif

typedef struct {
    // data and run
    const char* data;          // sequence file; NULL = the built-in synthetic data
    const char* out;           // output directory
    const char* recipe;        // "default" or "paper": config_recipe
    int seed, max_len, eval_batch, resume, stop_after;
    int time_steps;  // --time-steps: time rounds of this many training steps of a fresh start instead of training (0 = train)
    // SASRec (stage 1)
    int sas_dim, sas_blocks, sas_heads, sas_epochs, sas_batch, sas_patience;
    float sas_dropout, sas_lr;
    // E4SRec teacher, plain E4SRec_l, SLMRec student (stages 2 and 3)
    int hidden, ffn, heads, kv_heads, teacher_layers, student_layers;
    int epochs, batch, patience, warmup, vocab;
    const char* samples;       // an E4SRec epoch: "one-cut" per user (the peer's), "last-cut" per user, or "every-cut" (method.md 2.4)
    float position_ce;         // weight of the CE at every history item (method.md 4.6); 0 = the last token only
    float decoder_dropout;     // dropout in the E4SRec decoder while it trains (method.md 4.8); 0 = none, the papers'
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
    DLLM2RecConfig dllm = dllm2rec_defaults();  // the DLLM2Rec objective's defaults are written there once
    Config c = {
        .data = NULL, .out = "runs/synth", .recipe = "default", .seed = 42, .max_len = 50, .eval_batch = 256, .resume = 0, .stop_after = 0, .time_steps = 0,
        .sas_dim = 64, .sas_blocks = 2, .sas_heads = 1, .sas_epochs = 400, .sas_batch = 128, .sas_patience = 20,
        .sas_dropout = 0.3f, .sas_lr = 3e-3f,
        .hidden = 64, .ffn = 172, .heads = 4, .kv_heads = 2, .teacher_layers = 8, .student_layers = 4,
        .epochs = 20, .batch = 64, .patience = 3, .warmup = 100, .vocab = 320, .samples = "every-cut", .position_ce = 1.0f,
        .decoder_dropout = 0.2f,
        .lr = 1e-3f, .min_lr = 1e-4f, .weight_decay = 0.0f, .clip = 1.0f, .time_budget = 0.0f,
        .instruction = DEFAULT_INSTRUCTION, .response = DEFAULT_RESPONSE,
        .init = NULL, .lora_rank = 0, .lora_alpha = 16.0f, .lora_targets = "q,k,v,o,gate,up,down",
        .blocks = 4, .online = 0, .init_random = 0, .lambda_cos = 1.0f, .lambda_norm = 0.1f, .lambda_ms = 1.0f,
        .st_dim = 64, .st_epochs = 100, .st_batch = 256, .st_patience = 10, .caser_filters = 16, .topk = dllm.K,
        .st_lr = -1.0f, .st_dropout = -1.0f, .lam = dllm.lam, .ed = 0.3f, .dros_alpha = dllm.dros_alpha, .dros_beta = dllm.dros_beta,
        .gammas = "0.3,0.5,0.1", .base_loss = "ce", .rd_neg = "paper", .signals = NULL,
        .device = "auto", .precision = "fp32",
    };
    return c;
}

// --recipe (method.md 4.7): "default" is config_defaults' values, this project's, which
// train every model until its valid NDCG@10 stops improving, on every target the data
// holds; "paper" puts back the papers' and the PyTorch peers' settings, the ones the
// oracle fixtures and peers/ were made with. Flags given beside --recipe are parsed
// after it, so they win.
static void config_recipe(Config* c) {
    if (strcmp(c->recipe, "paper") == 0) {
        c->samples = "one-cut";   // one random cut of each user's history an epoch,
        c->epochs = 30;           // so more and shorter epochs
        c->patience = 5;
        c->position_ce = 0.0f;    // the last token's CE only
        c->decoder_dropout = 0.0f; // LLaMA's decoder has none
        c->sas_lr = 1e-3f;
        c->sas_dropout = 0.5f;
        c->st_lr = 1e-3f;         // every DLLM2Rec student, as the authors'
    } else if (strcmp(c->recipe, "default") != 0) {
        die("--recipe must be default or paper, got '%s'", c->recipe);
    }
}

// "auto" -> "cpu" or "cuda", saying which and why; dies on a device this binary or machine cannot give
// cpu_only: why the run's E4SRec training cannot go to the GPU (NULL: it can)
static void config_device(const char** device, const char* precision, const char* cpu_only) {
    if (strcmp(precision, "fp32") != 0 && strcmp(precision, "bf16") != 0) die("--precision must be fp32 or bf16, got '%s'", precision);
    if (strcmp(*device, "auto") == 0) {
        char why[300] = "this ./slmrec was built without CUDA (no nvcc at build time)";
        int gpu = 0;
#ifdef SLMREC_CUDA
        char info[256];
        gpu = gpu_device_info(info, sizeof(info));
        snprintf(why, sizeof(why), gpu ? "a CUDA GPU is visible: %s" : "no usable CUDA GPU (%s)", info);
#endif
        if (gpu && cpu_only) snprintf(why, sizeof(why), "%s", cpu_only);
        *device = gpu && !cpu_only ? "cuda" : "cpu";
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
    if (strcmp(c->samples, "one-cut") != 0 && strcmp(c->samples, "last-cut") != 0 && strcmp(c->samples, "every-cut") != 0) {
        die("--samples must be one-cut, last-cut or every-cut, got '%s'", c->samples);
    }
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
        {"--student-patience", (float)c->st_patience}, {"--stop-after", (float)c->stop_after}, {"--time-steps", (float)c->time_steps},
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
    if (c->st_dim < 1 || c->st_epochs < 1 || c->st_batch < 1 || c->caser_filters < 1 || !(c->st_lr > 0.0f || c->st_lr == -1.0f)) {
        die("--dim, --student-epochs, --student-batch, --caser-filters and --student-lr (or -1) must be positive");
    }
    if (!(c->st_dropout == -1.0f || (c->st_dropout >= 0.0f && c->st_dropout < 1.0f))) die("--dropout must be in [0, 1), or -1");
    if (c->lam < 0.0f) die("--lam must not be negative");
    if (c->time_steps && c->resume) die("--time-steps times the steps of a fresh start: it takes no --resume");
    check_range("flag", "--ed", c->ed, 0.0, STUDENT_MAX_ED);
    check_range("flag", "--position-ce", c->position_ce, 0.0, 1e3);  // what a student file may hold
    if (c->topk < 1) die("--topk must be at least 1, got %d", c->topk);
    if (c->lora_rank < 0 || c->lora_rank > LORA_MAX_RANK) die("--lora-rank must be in 0..%d, got %d", LORA_MAX_RANK, c->lora_rank);
    check_range("flag", "--lora-alpha", c->lora_alpha, LORA_MIN_ALPHA, LORA_MAX_ALPHA);  // what a LoRA file may hold
    if (c->lora_rank && c->init) config_check_lora_base("--init", c->init);
    lora_parse_targets(c->lora_targets);
    config_dllm2rec(c);  // checks --gammas, --base-loss, --rd-neg
    if (!(c->decoder_dropout >= 0.0f && c->decoder_dropout < 1.0f)) die("--decoder-dropout must be in [0, 1), got %g", c->decoder_dropout);
    config_device(&c->device, c->precision, c->online ? "--online distillation runs on the CPU only" : NULL);
}

// the base's depth bounds every model that starts from its first layers
static void config_check_depth(const Config* c, const Llama* base, const char* flag, int layers) {
    if (base && layers > base->cfg.L) {
        die("%s %d exceeds the %d layers of --init '%s': a model takes the base's first layers", flag, layers, base->cfg.L, c->init);
    }
}

// the LoRA the flags ask for (rank 0: none)
static LoraSpec config_lora(const Config* c) {
    LoraSpec l = {c->lora_rank, c->lora_alpha, lora_parse_targets(c->lora_targets)};
    return l;
}

// the decoder widths and history length the flags ask for (e4srec_config_for fills the rest)
static E4SRecConfig config_widths(const Config* c) {
    E4SRecConfig e = {.C = c->hidden, .F = c->ffn, .NH = c->heads, .KVH = c->kv_heads, .S = c->max_len};
    return e;
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
    TrainConfig t = {c->epochs, c->batch, c->patience, c->time_budget, c->stop_after, c->time_steps, c->eval_batch, (uint64_t)c->seed, record};
    if (what == TRAIN_SASREC) { t.epochs = c->sas_epochs; t.batch = c->sas_batch; t.patience = c->sas_patience; t.time_budget = 0.0f; }
    if (what == TRAIN_STUDENT) { t.epochs = c->st_epochs; t.batch = c->st_batch; t.patience = c->st_patience; }
    return t;
}
