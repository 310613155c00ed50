// gpu.h: the C side of the CUDA path. An E4SRec (teacher, plain E4SRec_l, or a
// forward-only model for scoring) or an SLMRec student lives on the GPU behind
// an opaque handle; every function here is defined in kernels.cu's extern "C"
// block. slmrec.c includes this only in a CUDA build (-DSLMREC_CUDA); kernels.cu
// includes it too, so both compilers see the same declarations.
//
// The handles are created from the CPU structs (E4SRec, SLMRec, AdamWConfig),
// which C and C++ both lay out from the same headers; gpu_check_layout() makes
// sure they agree before the first handle is made.
#pragma once
#include <stddef.h>
#include "distill.h"  // E4SRec, SLMRec, SLMRecLosses (and e4srec.h, layers.h, utils.h)
#include "optim.h"    // AdamWConfig
#include "gpu_plan.h" // the arenas of a handle, planned from its configuration

#ifdef __cplusplus
extern "C" {
#endif

typedef struct GpuE4SRec GpuE4SRec;

// ---- the device

// 1 when a CUDA GPU is usable (never exits)
int gpu_available(void);
// like gpu_available; info gets the device's name, memory, compute capability, driver
// and runtime versions, or why there is none (the CUDA error)
int gpu_device_info(char* info, size_t cap);
// the device's name alone (as cudaDeviceProp.name, e.g. "NVIDIA H100 80GB HBM3"); 0 when none
int gpu_device_name(char* name, size_t cap);
// waits for all queued work (timing)
void gpu_synchronize(void);
// device memory in use (total - free, so the CUDA context and cuBLAS workspace count) and the total, bytes
void gpu_memory(size_t* used, size_t* total);
// the most bytes slmrec's own allocations held at once (as torch.cuda.max_memory_allocated);
// reset = 1 restarts the count from what is allocated now
size_t gpu_allocated_peak(int reset);
// gpu_layout_key() as kernels.cu was compiled (C++)
size_t gpu_layout_key_cuda(void);

// ---- models

// an E4SRec on the GPU: copies m's config, parameters, item table and prompt ids.
// opt NULL = forward only (scoring, or a frozen teacher: one layer's activations at a
// time); else gradients and AdamW moments (zero, step 0) too, and m->position_ce
// (e4srec_set_position_ce) weighs the every-position CE of its training steps and
// m->dropout (e4srec_set_dropout) drops in them.
// use_bf16: bf16 activations and matmuls, fp32 master weights and residual stream.
// Dies, naming the plan (gpu_plan), when the GPU has less free memory than the handle needs.
GpuE4SRec* gpu_e4srec_create(const E4SRec* m, int max_B, int use_bf16, const AdamWConfig* opt);
// the same with random weights drawn on the device from seed (bench: no host copy of the weights)
GpuE4SRec* gpu_e4srec_create_random(const E4SRecConfig* c, const float* item_table, const int* instr, const int* resp,
                                    uint64_t seed, int max_B, int use_bf16, const AdamWConfig* opt);
// an SLMRec student: s->student's parameters (and its position_ce) plus s->adapters,
// trained against `teacher`, a forward-only handle of s->teacher made for at least max_B rows
GpuE4SRec* gpu_slmrec_create(const SLMRec* s, GpuE4SRec* teacher, int max_B, int use_bf16, const AdamWConfig* opt);
// the seed of the next training step's dropout masks (a handle made from a model with
// dropout > 0, e4srec_set_dropout): the masks the CPU draws from the same seed (method.md 4.8)
void gpu_e4srec_set_dropout_seed(GpuE4SRec* g, uint64_t seed);
// one optimizer step on items (B, S), targets (B): forward, loss (CE, or the SLMRec
// loss of a student), backward, global-norm clip, AdamW. Returns once queued, with the
// number of steps (this one included) whose losses gpu_e4srec_losses has not read yet.
int gpu_e4srec_train_step(GpuE4SRec* g, const int* items, const int* targets, int B);
// waits for the last step: its loss terms (a plain model: ce and total; ce is the model's own
// loss, as e4srec_forward returns it: with position_ce, the last-token CE plus position_ce times
// the every-position CE), the gradient norm before clipping, and the mean total loss of the
// steps since the previous call; each NULL to skip
void gpu_e4srec_losses(GpuE4SRec* g, SLMRecLosses* last, float* grad_norm, float* mean_total);
// forward and item scores for items (B, S), max_B rows at a time: scores (B, I) and/or
// top_ids (B, k), the k best items (pad 0 excluded, ties to the lower id; k <= GPU_TOPK_MAX),
// each on the host or NULL; waits
void gpu_e4srec_score(GpuE4SRec* g, const int* items, int B, float* scores, int k, int* top_ids);
// parameters device -> m (and s's adapters when s is given); waits
void gpu_e4srec_get_params(const GpuE4SRec* g, E4SRec* m, SLMRec* s);
// parameters m (and s's adapters) -> device, e.g. after reloading the best weights
void gpu_e4srec_set_params(GpuE4SRec* g, const E4SRec* m, const SLMRec* s);
// the AdamW state: moments m, v (the model's parameters then the adapters, as the
// CPU Optimizer orders them) and the steps taken, so --resume stays exact; get waits
void gpu_e4srec_get_moments(const GpuE4SRec* g, float* m, float* v, int* step);
void gpu_e4srec_set_moments(GpuE4SRec* g, const float* m, const float* v, int step);
// frees the handle (not its teacher)
void gpu_e4srec_free(GpuE4SRec* g);

#ifdef __cplusplus
}
#endif

// every size and offset of the shared structs that kernels.cu reads, folded into one
// number; C (slmrec.c) and C++ (kernels.cu) each compute it from the same headers
static size_t gpu_layout_key(void) {
    size_t parts[] = {sizeof(E4SRecConfig), sizeof(E4SRec), offsetof(E4SRec, param_sizes), offsetof(E4SRec, num_params),
                      offsetof(E4SRec, params_memory), offsetof(E4SRec, item_table), offsetof(E4SRec, instr),
                      offsetof(E4SRec, resp), offsetof(E4SRec, position_ce), offsetof(E4SRec, dropout), sizeof(SLMRec), offsetof(SLMRec, student),
                      offsetof(SLMRec, teacher), offsetof(SLMRec, blocks), offsetof(SLMRec, lambda_cos), offsetof(SLMRec, adapters),
                      sizeof(AdamWConfig), sizeof(SLMRecLosses)};
    size_t key = 0;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) key = key * 1000003u + parts[i];
    return key;
}

// one line: "<what>: weights fp32 1.23 GiB, ..., total 4.56 GiB" (arenas of 0 bytes left out)
static void gpu_plan_format(char* out, size_t cap, const char* what, const GpuPlan* p) {
    const double gib = 1024.0 * 1024.0 * 1024.0;
    size_t len = (size_t)snprintf(out, cap, "%s:", what);
    for (int i = 0; i < GPU_NUM_ARENAS && len < cap; i++) {
        if (p->bytes[i]) len += (size_t)snprintf(out + len, cap - len, " %s %.3f GiB,", gpu_arena_names[i], p->bytes[i] / gib);
    }
    if (len < cap) snprintf(out + len, cap - len, " total %.3f GiB", p->total / gib);
}

// dies with one clear message unless a GPU is usable and C and C++ agree on the struct layouts
static void gpu_require(const char* who) {
    char info[256];
    if (!gpu_device_info(info, sizeof(info))) {
        die("%s: no CUDA GPU is visible (%s)\n  hint: check nvidia-smi and the driver; training and eval also run with --device cpu", who, info);
    }
    if (gpu_layout_key() != gpu_layout_key_cuda()) {
        die("%s: slmrec.c and kernels.cu disagree on the layout of E4SRec/SLMRec/AdamWConfig\n"
            "  hint: rebuild both with the same headers (make clean && make)", who);
    }
}
