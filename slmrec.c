// slmrec.c: SLMRec (small language models for sequential recommendation) and
// DLLM2Rec in C. This file is the command-line driver: flags, commands, main.
//
// The CPU reference is the headers, read in data-flow order; each is one section
// (docs/method.md explains the method; src/layers.h, src/e4srec.h and
// src/distill.h are the heart of it):
#include "src/utils.h"       // checked libc calls, arenas, RNG, timing, atomic outputs, locked output directories, the log
#include "src/matmul.h"      // the blocked matrix product every Linear layer runs through
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
#include "src/config.h"      // a training run's configuration: defaults, checks, what the flags decide
#include "src/svg.h"         // plain-SVG charts: lines with error bars, scatter with its Pareto front, bars with intervals
#include "src/stages.h"      // each stage trains, reloads and tests one model; results; the whole pipeline
#include "src/safetensors.h" // HF safetensors reader (oracle fixtures, HF checkpoints)
#include "src/import.h"      // llama2.c and Hugging Face LLaMA models -> the base checkpoint
#include "src/oracle.h"      // the HF oracle fixture: its model, inputs, and the per-tensor comparison
#include "src/oracle_dllm2rec.h" // the PyTorch oracle fixture of DLLM2Rec: its students, inputs and comparison
#include "src/bench.h"       // bench: the CPU's FMA peak, matmul and model samples/s; the GPU at the peer's shapes; the memory plan
#include "src/study.h"       // study: the papers' experiments as a grid of cells, each an ordinary command in its own process
#include "src/study_report.h" // the study read back: tables over seeds, paired comparisons, study.md, study.json, SVG plots

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

// ----------------------------------------------------------------------------
// the training commands' flag groups (config.h holds what they set)

static int flags_run(ArgSpec* s, Config* c) {
    ArgSpec f[] = {
        {"--data", ARG_STR, &c->data, "sequence file (user item item ...); none = built-in synthetic data"},
        {"--out", ARG_STR, &c->out, "output directory: checkpoints, log.txt, the results JSON"},
        {"--seed", ARG_INT, &c->seed, "seed of every random choice"},
        {"--recipe", ARG_STR, &c->recipe, "default (every model to convergence on every target of the data), or paper\n"
         "                     (the papers' and peers' settings); a flag given beside it wins (docs/method.md 4.7)"},
        {"--max-len", ARG_INT, &c->max_len, "history length fed to the models"},
        {"--eval-batch", ARG_INT, &c->eval_batch, "users per scoring batch"},
        {"--resume", ARG_BOOL, &c->resume, "continue from <out>/<model>.last.bin where present"},
        {"--stop-after", ARG_INT, &c->stop_after, "train this many epochs per model now, then stop (resume later)"},
        {"--time-steps", ARG_INT, &c->time_steps, "instead of training, time rounds of this many steps of a fresh start (after 2\n"
         "                     untimed) over at least a second: writes <out>/<model>.step_time.json, no checkpoint,\n"
         "                     no results"},
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
        {"--sasrec-epochs", ARG_INT, &c->sas_epochs, "SASRec epochs of the schedule; past them, on at the last rate while the patience lasts (at most as many again)"},
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
        {"--epochs", ARG_INT, &c->epochs, "epochs of the learning-rate schedule; past them, on at its final rate while the patience lasts (at most as many again)"},
        {"--batch", ARG_INT, &c->batch, "samples per step"},
        {"--samples", ARG_STR, &c->samples, "an epoch: one-cut (a random cut of each user's prefix), last-cut (each whole prefix) or every-cut (every cut once)"},
        {"--position-ce", ARG_FLOAT, &c->position_ce, "weight of the next-item CE at every history item, beside the last token's (0 = off)"},
        {"--decoder-dropout", ARG_FLOAT, &c->decoder_dropout, "dropout at the decoder's input rows and after each residual branch, in training (0 = LLaMA's none)"},
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
        {"--student-epochs", ARG_INT, &c->st_epochs, "student epochs (an epoch = every training sample); past them, on while the patience lasts (at most as many again)"},
        {"--student-batch", ARG_INT, &c->st_batch, "student samples per step"},
        {"--student-lr", ARG_FLOAT, &c->st_lr, "student Adam learning rate; -1 = its own default (SASRec, GRU4Rec 3e-3; Caser 1e-3)"},
        {"--student-patience", ARG_INT, &c->st_patience, "student early stop: epochs without a better valid NDCG@10"},
    };
    memcpy(s, f, sizeof(f));
    return (int)(sizeof(f) / sizeof(f[0]));
}

// the flag groups a training command takes
enum { FLAGS_RUN = 1, FLAGS_SASREC = 2, FLAGS_E4SREC = 4, FLAGS_DISTILL = 8, FLAGS_DLLM2REC = 16 };
#define MAX_FLAGS 96

// every training command's first step: its flag groups, then its own flags (n_own of
// them), parsed from argv into c (and own's destinations); exits after --help
static void parse_training_flags(const char* cmd, const char* summary, int argc, char** argv, Config* c, int groups,
                                 const ArgSpec* own, int n_own) {
    int (*const tables[])(ArgSpec*, Config*) = {flags_run, flags_sasrec, flags_e4srec, flags_distill, flags_dllm2rec};
    ArgSpec specs[MAX_FLAGS], group[MAX_FLAGS];
    int n = 0;
    for (int g = 0; g <= 5; g++) {  // the groups, then the command's own (own may be NULL when there are none)
        int k = g < 5 ? ((groups & (1 << g)) ? tables[g](group, c) : 0) : n_own;
        if (n + k > MAX_FLAGS) die("%s: more than MAX_FLAGS %d flags", cmd, MAX_FLAGS);
        if (k) memcpy(specs + n, g < 5 ? group : own, (size_t)k * sizeof(ArgSpec));
        n += k;
    }
    for (int a = 0; a + 1 < argc; a++) {  // the recipe's values first (--help shows them), then the flags
        if (strcmp(argv[a], "--recipe") == 0) c->recipe = argv[a + 1];
    }
    config_recipe(c);
    parse_args(cmd, summary, argc, argv, specs, n);
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

// ----------------------------------------------------------------------------
// training: the whole pipeline, and each stage alone

static int cmd_run(int argc, char** argv) {
    Config c = config_defaults();
    c.out = "runs/run";
    ArgSpec layers[] = {
        {"--teacher-layers", ARG_INT, &c.teacher_layers, "teacher depth M"},
        {"--student-layers", ARG_INT, &c.student_layers, "student depth N (also the plain E4SRec_N baseline)"},
    };
    parse_training_flags("run", "The whole pipeline on a data file: SASRec (stage 1), the E4SRec_M teacher on SASRec's frozen\n"
               "item table (stage 2), a plain E4SRec_N and the SLMRec_N<-M student (stage 3), then the DLLM2Rec\n"
               "students SASRec, GRU4Rec and Caser, each plain and distilled from the E4SRec_M teacher; every\n"
               "model is selected on valid full NDCG@10 and reported on test. Writes <out>/results.json, log.txt\n"
               "and the checkpoints.", argc, argv, &c, FLAGS_RUN | FLAGS_SASREC | FLAGS_E4SREC | FLAGS_DISTILL | FLAGS_DLLM2REC,
               layers, 2);
    if (c.data == NULL) die("run: --data FILE is required (./slmrec with no arguments runs the synthetic pipeline)");
    Llama base_memory;
    const Llama* base = config_base(&c, &base_memory, argc, argv);
    int rc = pipeline(&c, base);
    if (base) llama_free(&base_memory);
    return rc;
}

// ./slmrec alone, or ./slmrec demo: the pipeline on the built-in synthetic data, sized for a laptop-class CPU
static int cmd_demo(int argc, char** argv) {
    Config c = config_defaults();
    c.max_len = 20;
    c.hidden = 48;
    c.ffn = 128;
    c.warmup = 30;
    parse_training_flags("demo", "The whole pipeline (as run) on the built-in synthetic data, at sizes a 2-core laptop trains\n"
                         "to convergence in minutes; what ./slmrec with no arguments runs.", argc, argv, &c, FLAGS_RUN, NULL, 0);
    if (c.data) die("demo: the demo runs on the built-in synthetic data; for a data file use ./slmrec run --data FILE");
    printf("slmrec: SLMRec on the built-in synthetic data (./slmrec --help lists the commands)\n");
    return pipeline(&c, NULL);
}

static int cmd_train_sasrec(int argc, char** argv) {
    Config c = config_defaults();
    c.out = "runs/sasrec";
    parse_training_flags("train-sasrec", "Stage 1: SASRec with full-softmax CE on every position; writes <out>/sasrec.bin\n"
                         "(best valid NDCG@10), whose item table the E4SRec models read.", argc, argv, &c,
                         FLAGS_RUN | FLAGS_SASREC, NULL, 0);
    config_check(&c);
    SeqData d;
    Negatives vneg, tneg;
    read_run(&c, &d, &vneg, &tneg);
    RunRecord record;
    record_sasrec(&record, &c, &d);
    resume_precheck(&c, "sasrec", &record);
    open_log(&c, &d);
    ResultRow row;
    free(stage_sasrec(&c, &d, &vneg, &tneg, &record, &row));
    stage_report(&c, &d, &row, "sasrec");
    results_free(&row, 1);
    close_run(&d, &vneg, &tneg);
    return 0;
}

static int cmd_train_teacher(int argc, char** argv) {
    Config c = config_defaults();
    c.out = "runs/teacher";
    const char* sasrec_path = NULL;
    int layers = c.teacher_layers;
    ArgSpec own[] = {
        {"--sasrec", ARG_STR, &sasrec_path, "SASRec checkpoint whose item table is fed in, frozen (required)"},
        {"--layers", ARG_INT, &layers, "decoder layers (8 for the teacher, fewer for a plain E4SRec_l)"},
    };
    parse_training_flags("train-teacher", "Stage 2: an E4SRec model from scratch on SASRec's frozen item table, CE on the next item;\n"
               "writes <out>/e4srec_<layers>.bin. With fewer --layers it is the plain E4SRec_l baseline.",
               argc, argv, &c, FLAGS_RUN | FLAGS_E4SREC, own, 2);
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
    prompt_build(&p, c.instruction, c.response, c.vocab, base);
    E4SRecConfig ec = e4srec_config_for(config_widths(&c), base, &p, layers, sf.model.cfg.D, sf.model.cfg.I);
    E4SRec m;
    e4srec_build(&m, &ec, sf.model.params.item_emb, p.instr, p.resp);
    Rng rng;
    rng_seed(&rng, (uint64_t)c.seed + 7);
    LoraSpec lora = config_lora(&c);
    e4srec_start(&m, base, c.init, &rng);
    e4srec_start_lora(&m, &lora, c.init, &rng);
    ModelName mn = model_name(layers, NULL);
    RunRecord record;
    record_e4srec(&record, &c, &d, &m, NULL);
    resume_precheck(&c, mn.stem, &record);
    open_log(&c, &d);
    prompt_log(&p, c.instruction, c.response, base, c.init);
    ResultRow row;
    stage_e4srec(&c, &d, &vneg, &tneg, &m, &p.tok, NULL, &record, mn.name, mn.stem, &row);
    stage_report(&c, &d, &row, mn.stem);
    results_free(&row, 1);
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
    ArgSpec own[] = {
        {"--teacher", ARG_STR, &teacher_path, "E4SRec teacher checkpoint (required)"},
        {"--layers", ARG_INT, &layers, "student decoder layers N"},
    };
    parse_training_flags("distill", "Stage 3: the SLMRec_N<-M student: CE + lambda_cos Dcos + lambda_norm Dnorm + lambda_ms multi-supervision CE against\n"
               "the teacher's hidden states at B evenly spaced depths; offline (frozen teacher) by default,\n"
               "--online trains both. The student shares the teacher's prompt, tokenizer and item table, and\n"
               "its model flags (--hidden etc.) are taken from the teacher file. Writes <out>/slmrec_N_from_M.bin.",
               argc, argv, &c, FLAGS_RUN | FLAGS_E4SREC | FLAGS_DISTILL, own, 2);
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
    LoraSpec lora = config_lora(&c);
    slmrec_student_start(&student, teacher, teacher_path, base, c.init, c.init_random, &lora, &rng);
    ModelName mn = model_name(layers, teacher);
    RunRecord record;
    record_e4srec(&record, &c, &d, &student, teacher);
    resume_precheck(&c, mn.stem, &record);
    open_log(&c, &d);
    ResultRow row;
    stage_e4srec(&c, &d, &vneg, &tneg, &student, &tf.tok, teacher, &record, mn.name, mn.stem, &row);
    stage_report(&c, &d, &row, mn.stem);
    results_free(&row, 1);
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
    ArgSpec own[] = {
        {"--teacher", ARG_STR, &teacher_path, "E4SRec teacher checkpoint (required unless --lam 0 --ed 0)"},
        {"--student", ARG_STR, &student, "sasrec, gru4rec or caser (required)"},
        {"--time-budget", ARG_FLOAT, &c.time_budget, "stop training after this many seconds (0 = none)"},
        {"--sasrec-blocks", ARG_INT, &c.sas_blocks, "SASRec student: transformer blocks"},
        {"--sasrec-heads", ARG_INT, &c.sas_heads, "SASRec student: attention heads"},
    };
    parse_training_flags("dllm2rec", "DLLM2Rec: trains a conventional sequential recommender (SASRec read out at the last item,\n"
               "GRU4Rec or Caser) on every (history, next item) sample of the train prefixes with\n"
               "  loss = L_student + lam L_rd,  input embedding e_cf(i) + ed (W e_T(i) + b):\n"
               "importance-weighted ranking distillation against the teacher's top-K of each sample, and\n"
               "collaborative embedding distillation from the teacher's item table e_T. Both come from the\n"
               "E4SRec teacher once and are cached (--signals), keyed by the checksum of its weights.\n"
               "--lam 0 --ed 0 trains the plain student (no teacher). Writes <out>/<student>_<variant>.bin\n"
               "(plain, dllm2rec; rd or ed for one part alone) and its results JSON.", argc, argv, &c,
               FLAGS_RUN | FLAGS_DLLM2REC, own, (int)(sizeof(own) / sizeof(own[0])));
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
    stage_student(&c, &d, &vneg, &tneg, (StudentKind)kind, c.lam, c.ed, distilled ? &sig : NULL, &record, &row);
    stage_report(&c, &d, &row, student_name((StudentKind)kind, c.lam, c.ed).stem);
    results_free(&row, 1);
    signals_free(&sig);
    close_run(&d, &vneg, &tneg);
    return 0;
}

// ----------------------------------------------------------------------------
// a trained model in use: eval, recommend

static int cmd_eval(int argc, char** argv) {
    const char* data = NULL;
    const char* model = NULL;
    const char* split = "test";
    const char* device = "auto";
    const char* precision = "fp32";
    const char* per_user = NULL;
    int eval_batch = 256;
    ArgSpec specs[] = {
        {"--data", ARG_STR, &data, "sequence file the model was trained on (required)"},
        {"--model", ARG_STR, &model, "checkpoint: sasrec.bin, e4srec_*.bin, slmrec_*.bin or a dllm2rec student's (required)"},
        {"--split", ARG_STR, &split, "valid or test"},
        {"--eval-batch", ARG_INT, &eval_batch, "users per scoring batch"},
        {"--device", ARG_STR, &device, "cpu or cuda for an E4SRec model; auto = cuda when a GPU is visible (SASRec: cpu)"},
        {"--precision", ARG_STR, &precision, "on the GPU: fp32, or bf16 activations and matmuls"},
        {"--per-user", ARG_STR, &per_user, "also write each user's full NDCG@10 to this file (for ./slmrec compare)"},
    };
    parse_args("eval", "Scores every user's valid or test target with both protocols (full ranking and sampled\n"
               "negatives) and prints every metric.", argc, argv, specs, 7);
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
    float* values = (float*)mallocCheck((size_t)d.n_users * sizeof(float));  // (n_users) full NDCG@10
    Metrics m = evaluate(&lm.t, &d, sp, &neg, eval_batch, values);
    printf("%s split of %s, %d users, %.2fs\n", split, data, d.n_users, now_seconds() - t0);
    metrics_print_header(stdout, m.n_neg);
    metrics_print_row(stdout, model, &m);
    if (per_user) {
        per_user_write(per_user, model, split, d.user_ids, values, d.n_users);
        printf("each user's full NDCG@10: %s\n", per_user);
    }
    free(values);
    model_free(&lm);
    negatives_free(&neg);
    seqdata_free(&d);
    return 0;
}

// two models on the same users: the paired bootstrap of their per-user NDCG@10 files
static int cmd_compare(int argc, char** argv) {
    const char* files[2] = {NULL, NULL};
    int resamples = BOOTSTRAP_RESAMPLES, seed = BOOTSTRAP_SEED;
    ArgSpec specs[] = {
        {"--a", ARG_STR, &files[0], "model A's per-user file: <out>/<model>.test_ndcg.tsv of a run, or eval --per-user (required)"},
        {"--b", ARG_STR, &files[1], "model B's, on the same users (required)"},
        {"--resamples", ARG_INT, &resamples, "bootstrap resamples"},
        {"--seed", ARG_INT, &seed, "seed of the resampling"},
    };
    parse_args("compare", "Is model A better than model B on the same test users? The mean difference of their full\n"
               "NDCG@10 and its 95% paired bootstrap interval over users (method.md 7.5): better or worse when\n"
               "the interval excludes 0, else a tie.", argc, argv, specs, 4);
    if (files[0] == NULL || files[1] == NULL) die("compare: --a FILE and --b FILE are required");
    if (resamples < 100 || resamples > 1000000) die("compare: --resamples must be in 100..1000000, got %d", resamples);
    PerUser p[2];
    char names[2][64];
    for (int i = 0; i < 2; i++) {
        per_user_read(&p[i], files[i]);
        const char* base = strrchr(files[i], '/') ? strrchr(files[i], '/') + 1 : files[i];
        snprintf(names[i], sizeof(names[i]), "%.*s", (int)strcspn(base, "."), base);
    }
    if (p[0].n != p[1].n) die("compare: '%s' holds %d users, '%s' %d: compare models tested on the same data", files[0], p[0].n, files[1], p[1].n);
    for (int u = 0; u < p[0].n; u++) {
        if (p[0].user_ids[u] != p[1].user_ids[u]) {
            die("compare: user %d of '%s' is user id %d, of '%s' user id %d: the files must list the same users in the same order",
                u + 1, files[0], p[0].user_ids[u], files[1], p[1].user_ids[u]);
        }
    }
    PairedDiff diff = paired_bootstrap(p[0].values, p[1].values, p[0].n, resamples, (uint64_t)seed);
    paired_diff_header(p[0].n);
    paired_diff_print(names[0], names[1], &diff);
    per_user_free(&p[0]);
    per_user_free(&p[1]);
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

// one user's line of recommend --data, "user item:score ...", from that user's score row;
// returns how many items it lists (fewer than k when --exclude-seen leaves fewer)
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

// ----------------------------------------------------------------------------
// data and files: synth, prep, upgrade

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
    const char* format = NULL;
    const char* columns = NULL;
    const char* dedupe = "none";
    int header = 0;
    PrepOptions defaults = prep_options(NULL, NULL, 0);
    float min_rating = (float)defaults.min_rating;
    int kcore = defaults.kcore;
    ArgSpec specs[] = {
        {"--in", ARG_STR, &in, "ratings file, or - for standard input (zcat F.csv.gz | ./slmrec prep --in - ...):\n"
         "                     one rating a line, fields separated by ',' (or '::', MovieLens)"},
        {"--out", ARG_STR, &out, "sequence file to write"},
        {"--format", ARG_STR, &format, "the release's layout: amazon2014 (user,item,rating,timestamp), amazon2018\n"
         "                     (item,user,rating,timestamp), amazon2023 (by its header), movielens (user::item::...),\n"
         "                     recbole (a .inter file, by its header)"},
        {"--columns", ARG_STR, &columns, "the fields in order, named user, item, rating, timestamp, '-' for one to skip\n"
         "                     (default user,item,rating,timestamp)"},
        {"--header", ARG_BOOL, &header, "the first line names the columns: skip it"},
        {"--min-rating", ARG_FLOAT, &min_rating, "keep ratings strictly above this (-1 keeps every rating)"},
        {"--dedupe", ARG_STR, &dedupe, "repeated (user, item) ratings: none keeps each, first keeps the earliest"},
        {"--kcore", ARG_INT, &kcore, "users and items need at least this many kept events (1 = no filter)"},
    };
    parse_args("prep", "Raw ratings -> sequence file: rating > 3, iterative 5-core, chronological, dense ids from 1.\n"
               "Without --format or --columns, a file whose user column holds Amazon product ids and item column\n"
               "reviewer ids (the 2018 order) is refused: name the layout.", argc, argv, specs, 8);
    if (in == NULL || out == NULL) die("prep: --in CSV and --out FILE are required");
    if (kcore < 1) die("prep: --kcore must be at least 1, got %d", kcore);
    if (strcmp(dedupe, "none") != 0 && strcmp(dedupe, "first") != 0) die("prep: --dedupe must be none or first, got '%s'", dedupe);
    PrepOptions layout = prep_options(format, columns, header);
    layout.min_rating = min_rating;
    layout.kcore = kcore;
    layout.dedupe = strcmp(dedupe, "first") == 0;
    prep_ratings(in, out, &layout);
    return 0;
}
static int cmd_stats(int argc, char** argv) {
    const char* data = NULL;
    ArgSpec specs[] = {
        {"--data", ARG_STR, &data, "sequence file (user item item ...); none = the built-in synthetic data"},
    };
    parse_args("stats", "The data-set table papers print: users, items, interactions, sequence lengths, density and\n"
               "the share of rarely seen items, to check a prepared set against a paper's table.", argc, argv, specs, 1);
    SeqData d;
    if (data) seqdata_load(&d, data, 0);
    else synth_generate(&d, SYNTH_USERS, SYNTH_ITEMS, SYNTH_MEAN_LEN, SYNTH_SEED);
    DataStats s = seqdata_stats(&d);
    printf("%-26s %s\n", "data", data ? data : "built-in synthetic");
    printf("%-26s %d\n%-26s %d\n%-26s %d\n", "users", s.users, "items", s.items, "interactions", s.events);
    printf("%-26s %.2f\n%-26s %.1f\n%-26s %d / %d\n", "sequence length, mean", s.mean_len, "sequence length, median",
           s.median_len, "sequence length, min / max", s.min_len, s.max_len);
    printf("%-26s %.4f%%\n", "density", 100.0 * s.density);
    char rare[32];
    snprintf(rare, sizeof(rare), "items with < %d events", STATS_RARE);
    printf("%-26s %.2f%%\n", rare, 100.0 * s.rare_items);
    seqdata_free(&d);
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
// checks: against the oracle fixtures, and throughput

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

// ----------------------------------------------------------------------------
// study: the papers' experiments, resumable

static int cmd_study(int argc, char** argv) {
    const char* data = NULL;
    const char* out = "runs/study";
    const char* preset = "demo";
    const char* only = NULL;
    const char* init = NULL;
    int seeds = 0, first_seed = 42, jobs = 1, resume = 0, report_only = 0;
    ArgSpec specs[] = {
        {"--data", ARG_STR, &data, "sequence file; none = the preset's synthetic set, written to <out>/data.txt"},
        {"--out", ARG_STR, &out, "the study's directory: a directory per seed and cell, study.md, study.json, the plots"},
        {"--preset", ARG_STR, &preset, "demo (a course's: minutes), paper (the papers' grid at the default shapes: hours),\n"
                                       "                     or smoke (the machinery in seconds, nothing converges)"},
        {"--only", ARG_STR, &only, "experiments, comma separated: depth, slmrec, efficiency, dllm2rec, pretrained; none = all"},
        {"--seeds", ARG_INT, &seeds, "seeds per cell; 0 = the preset's (3 on its synthetic set, 1 on a data file)"},
        {"--seed", ARG_INT, &first_seed, "the first seed; the others follow it"},
        {"--init", ARG_STR, &init, "a pretrained base checkpoint: adds the pretrained experiment (scratch, full, LoRA)"},
        {"--jobs", ARG_INT, &jobs, "cells training at once, each started when the cells it reads are done; unless\n"
                                   "                     OMP_NUM_THREADS is set, each gets cores / jobs threads"},
        {"--resume", ARG_BOOL, &resume, "go on with the study in --out: finished cells are kept, an unfinished one continues"},
        {"--report", ARG_BOOL, &report_only, "train no cell: the report of the study in --out from its cells finished so far\n"
                                             "                     (the unfinished marked; the costs timed again), also while\n"
                                             "                     another process trains it"},
    };
    parse_args("study", "The papers' experiments as one resumable grid: depth (E4SRec_l), SLMRec and its ablations, the\n"
               "efficiency table, DLLM2Rec's students and ablations, and with --init the pretrained decoder. Each\n"
               "cell is an ordinary command run in its own directory (<out>/seed_<s>/<cell>/command.txt says which);\n"
               "then <out>/study.md (tables over seeds, every comparison with its paired bootstrap interval),\n"
               "study.json and the SVG plots.", argc, argv, specs, (int)(sizeof(specs) / sizeof(specs[0])));
    Study st;
    study_setup(&st, preset, data, out, only, init, seeds, first_seed, jobs);
    if (report_only) {  // reads finished cells only: each is complete once its results file is (renamed into place)
        study_state_check(&st);
        study_plan(&st);
        study_report(&st, 0);
        return 0;
    }
    int lock = study_open(&st, data == NULL, resume);
    study_plan(&st);
    int threads = study_run(&st);
    study_report(&st, threads);
    fcloseCheck(log_file);
    log_file = NULL;
    close(lock);  // releases it
    return 0;
}

// ----------------------------------------------------------------------------
// main: the command table

typedef struct {
    const char* name;
    int (*run)(int argc, char** argv);
    const char* help;
} Command;

static const Command commands[] = {
    {"run", cmd_run, "the whole pipeline on a data file: SASRec, teacher, E4SRec_N, SLMRec_N<-M, DLLM2Rec students"},
    {"demo", cmd_demo, "the whole pipeline on the built-in synthetic data, sized for a laptop (./slmrec alone)"},
    {"synth", cmd_synth, "write the built-in synthetic data set"},
    {"prep", cmd_prep, "raw ratings CSV -> sequence file (rating > 3, 5-core, chronological)"},
    {"stats", cmd_stats, "the data-set table papers print: users, items, interactions, lengths, density"},
    {"upgrade", cmd_upgrade, "convert a format-3 checkpoint, tokenizer or signals file to this build's format"},
    {"train-sasrec", cmd_train_sasrec, "stage 1: SASRec, whose item table the E4SRec models read"},
    {"train-teacher", cmd_train_teacher, "stage 2: an E4SRec model (the teacher, or a plain E4SRec_l)"},
    {"distill", cmd_distill, "stage 3: the SLMRec student of a teacher (offline, or --online)"},
    {"dllm2rec", cmd_dllm2rec, "a SASRec, GRU4Rec or Caser student, plain or distilled from an E4SRec teacher"},
    {"eval", cmd_eval, "every metric of a checkpoint on the valid or test split"},
    {"study", cmd_study, "the papers' experiments as one resumable grid: seeds, paired intervals, study.md and SVG plots"},
    {"compare", cmd_compare, "model A against model B on the same test users: paired bootstrap interval"},
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
    if (argc < 2) return cmd_demo(0, NULL);
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
