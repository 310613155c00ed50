// test_gpu.cu: the CUDA path against the CPU reference (make test-gpu). A unity
// build around kernels.cu, whose launchers are static:
//   1. every *_cuda launcher against its CPU twin (src/layers.h, src/optim.h) at
//      three shapes: odd (T=7, C=12, 3 heads over 1 kv head), middle, and large
//      (C=1024, F=2816, T=74, items in 3 chunks), in fp32 and in bf16 (the E4SRec
//      layers; the item head, distillation and AdamW are fp32);
//      Attention also at head size 128 with T = 74 (grouped-query heads) and with the
//      backward's query rows split into tiles;
//   2. whole training steps through the C API of src/gpu.h: 10 AdamW steps of an
//      E4SRec teacher (CE) and of an SLMRec student, same init and batches as the
//      CPU path, fp32; bf16 tracking fp32; bf16 gradients of a teacher and a student
//      against the fp32 GPU gradients of the same step; all of these again with the
//      every-position CE (position_ce 0.5: its loss, and the history items' rows and
//      targets against the CPU's, on histories with inner pads and empty ones);
//      scoring and top-k (also over three item chunks and more rows than the handle
//      holds; bf16 scoring); resuming moments; bf16 weights refreshed by set_params;
//      the memory plan against what a handle allocates (with and without the
//      every-position CE), and a plan larger than the GPU refused;
//   3. the HF oracle fixture (method.md 10.1, read from ../shared) through the GPU model.
// Tolerances, per element, |gpu - cpu| <= atol + rtol |cpu|:
//   fp32: 1e-5 + 1e-4 |cpu|, as the CPU against HF.
//   bf16 layers: 1e-2 + 1.6e-2 |cpu|: the CPU twin reads the same bf16-rounded inputs,
//     so what differs is the rounding of the bf16 output (2^-9 relative) and of a bf16
//     gradient accumulated into (one more): 4 bf16 ulps covers both with margin.
//   bf16 whole models (gradients, scores): relative L2 error against fp32, see BF16_MODEL_REL_L2.
// Ends "N passed, M failed" and exits non-zero on a failure; with no GPU it says SKIP.
#include "../kernels.cu"
#include "../src/oracle.h"  // the fixture loader the CPU oracle command uses
#include "test.h"            // CHECK, check_close
#include <algorithm>
#include <vector>

typedef std::vector<float> Host;

struct Tol { float atol, rtol; };
template <typename X> static Tol tol();
template <> Tol tol<float>() { return {1e-5f, 1e-4f}; }
template <> Tol tol<bf16>() { return {1e-2f, 1.6e-2f}; }
template <typename X> static const char* prec() { return sizeof(X) == 4 ? "fp32" : "bf16"; }

static Host randn(Rng* rng, size_t n, float std) {
    Host h(n);
    rng_fill_normal(rng, h.data(), n, std);
    return h;
}

static float to_host_float(float x) { return x; }
static float to_host_float(bf16 x) { return __bfloat162float(x); }
static void from_host_float(float* p, float v) { *p = v; }
static void from_host_float(bf16* p, float v) { *p = __float2bfloat16(v); }

// h as the GPU's X sees it: bf16 inputs are rounded, so the CPU twin reads the same numbers
template <typename X> static Host rounded(const Host& h) {
    Host r(h.size());
    for (size_t i = 0; i < h.size(); i++) { X x; from_host_float(&x, h[i]); r[i] = to_host_float(x); }
    return r;
}

// the device buffers of one test, freed together
struct Device {
    std::vector<void*> ptrs;
    template <typename X> X* put(const Host& h) {
        std::vector<X> x(h.size());
        for (size_t i = 0; i < h.size(); i++) from_host_float(&x[i], h[i]);
        X* d = alloc<X>(h.size());
        cudaCheck(cudaMemcpy(d, x.data(), h.size() * sizeof(X), cudaMemcpyHostToDevice));
        return d;
    }
    int* put_ints(const std::vector<int>& h) {
        int* d = alloc<int>(h.size());
        cudaCheck(cudaMemcpy(d, h.data(), h.size() * sizeof(int), cudaMemcpyHostToDevice));
        return d;
    }
    template <typename X> X* alloc(size_t n) {
        void* d = NULL;
        cudaCheck(cudaMalloc(&d, (n ? n : 1) * sizeof(X)));
        cudaCheck(cudaMemset(d, 0, (n ? n : 1) * sizeof(X)));
        ptrs.push_back(d);
        return (X*)d;
    }
    ~Device() { for (void* p : ptrs) cudaCheck(cudaFree(p)); }
};

template <typename X> static Host get(const X* d, size_t n) {
    std::vector<X> x(n);
    cudaCheck(cudaMemcpy(x.data(), d, n * sizeof(X), cudaMemcpyDeviceToHost));
    Host h(n);
    for (size_t i = 0; i < n; i++) h[i] = to_host_float(x[i]);
    return h;
}

static void close_to(const char* what, const char* shape, const char* p, const Host& got, const Host& ref, Tol t) {
    char name[256];
    snprintf(name, sizeof(name), "%s [%s, %s]", what, shape, p);
    check_close(name, got.data(), ref.data(), ref.size(), t.atol, t.rtol);
}

// ----------------------------------------------------------------------------
// 1. layers

// upstream gradients in the backward tests: small, as real ones are. A sum over K terms of
// size s carries a rounding error near sqrt(K) s 2^-24 on each device, and the fixed 1e-5
// is meant for gradients: with s = 1 and K = 2816 (the large dinp) that error alone would
// exceed 1e-5 wherever the sum happens to land near 0.
#define GRAD_STD 0.1f

struct Shape {
    const char* name;
    int B, T, C, NH, KVH, F, D, I;
};

static const Shape shapes[] = {
    {"odd: B=2 T=7 C=12 NH=3 KVH=1", 2, 7, 12, 3, 1, 20, 6, 23},
    {"middle: B=3 T=33 C=64 NH=4 KVH=2", 3, 33, 64, 4, 2, 172, 16, 301},
    {"large: B=8 T=74 C=1024 NH=16 F=2816 I=40001", 8, 74, 1024, 16, 16, 2816, 64, 40001},
};

// keys: sample b has its first b positions padded (sample 1: a query with no key at all)
static std::vector<int> make_keymask(int B, int T) {
    std::vector<int> m((size_t)B * T, 1);
    for (int b = 0; b < B; b++) for (int t = 0; t < b && t < T; t++) m[(size_t)b * T + t] = 0;
    return m;
}

template <typename X>
static void test_embedding(const Shape& s, Rng* rng) {
    int N = s.B * s.T, rows = 50;
    Device dev;
    std::vector<int> ids(N);
    for (int n = 0; n < N; n++) ids[n] = rng_int(rng, rows / 5);  // repeats
    Host table = randn(rng, (size_t)rows * s.C, 1.0f), out(N * (size_t)s.C);
    int* d_ids = dev.put_ints(ids);
    X* d_out = dev.alloc<X>(out.size());
    embedding_forward_cuda(d_out, d_ids, dev.put<float>(table), N, s.C);
    embedding_forward(out.data(), ids.data(), table.data(), N, s.C);
    close_to("embedding_forward", s.name, prec<X>(), get(d_out, out.size()), rounded<X>(out), tol<X>());
    if (sizeof(X) != 4) return;  // the backward is fp32 only (prompt rows, summed over the batch first)
    Host dtable = randn(rng, table.size(), 1.0f), dout = randn(rng, out.size(), 1.0f);
    float* d_dtable = dev.put<float>(dtable);
    embedding_backward_cuda(d_dtable, dev.put<float>(dout), d_ids, N, s.C);
    embedding_backward(dtable.data(), dout.data(), ids.data(), N, s.C);
    close_to("embedding_backward", s.name, "fp32", get(d_dtable, dtable.size()), dtable, tol<float>());
}

template <typename X>
static void test_matmul(const Shape& s, Rng* rng) {
    int N = s.B * s.T, C = s.C, OC = s.F;  // the gate/up shape; the odd case has OC % 32 != 0
    Device dev;
    Host inp = rounded<X>(randn(rng, (size_t)N * C, 1.0f)), w = rounded<X>(randn(rng, (size_t)OC * C, 1.0f / sqrtf(C)));
    Host bias = randn(rng, OC, 0.1f), out((size_t)N * OC);
    X *d_inp = dev.put<X>(inp), *d_w = dev.put<X>(w), *d_out = dev.alloc<X>(out.size());
    for (int with_bias = 0; with_bias <= 1; with_bias++) {
        matmul_forward_cuda(d_out, d_inp, d_w, with_bias ? dev.put<float>(bias) : (const float*)NULL, N, C, OC);
        matmul_forward(out.data(), inp.data(), w.data(), with_bias ? bias.data() : NULL, N, C, OC);
        close_to(with_bias ? "matmul_forward, bias" : "matmul_forward", s.name, prec<X>(), get(d_out, out.size()), rounded<X>(out), tol<X>());
    }
    Host dout = rounded<X>(randn(rng, out.size(), GRAD_STD)), dinp = rounded<X>(randn(rng, inp.size(), 1.0f));
    Host dw = randn(rng, w.size(), 1.0f), db = randn(rng, OC, 1.0f);
    X *d_dout = dev.put<X>(dout), *d_dinp = dev.put<X>(dinp);
    float *d_dw = dev.put<float>(dw), *d_db = dev.put<float>(db);
    matmul_backward_cuda(d_dinp, d_dw, d_db, d_dout, d_inp, d_w, N, C, OC);
    matmul_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(), N, C, OC);
    close_to("matmul_backward dinp +=", s.name, prec<X>(), get(d_dinp, dinp.size()), rounded<X>(dinp), tol<X>());
    close_to("matmul_backward dweight +=", s.name, prec<X>(), get(d_dw, dw.size()), dw, tol<float>());
    close_to("matmul_backward dbias +=", s.name, prec<X>(), get(d_db, db.size()), db, tol<float>());
    // accumulate = false overwrites dinp
    Host fresh(inp.size(), 0.0f);
    matmul_backward_cuda(d_dinp, (float*)NULL, (float*)NULL, d_dout, d_inp, d_w, N, C, OC, false);
    matmul_backward(fresh.data(), NULL, NULL, dout.data(), inp.data(), w.data(), N, C, OC);
    close_to("matmul_backward dinp =", s.name, prec<X>(), get(d_dinp, fresh.size()), rounded<X>(fresh), tol<X>());
}

// as the model uses it: the fp32 residual stream in, the activation type X out; the
// backward adds into the fp32 residual gradient from an X upstream gradient
template <typename X>
static void test_rmsnorm(const Shape& s, Rng* rng) {
    int N = s.B * s.T, C = s.C;
    Device dev;
    Host inp = randn(rng, (size_t)N * C, 1.0f), w = randn(rng, C, 1.0f), out(inp.size()), rstd(N);
    float *d_inp = dev.put<float>(inp), *d_w = dev.put<float>(w), *d_rstd = dev.alloc<float>(N);
    X* d_out = dev.alloc<X>(out.size());
    rmsnorm_forward_cuda(d_out, d_rstd, d_inp, d_w, N, C, 1e-5f);
    rmsnorm_forward(out.data(), rstd.data(), inp.data(), w.data(), N, C, 1e-5f);
    close_to("rmsnorm_forward", s.name, prec<X>(), get(d_out, out.size()), rounded<X>(out), tol<X>());
    close_to("rmsnorm_forward rstd", s.name, prec<X>(), get(d_rstd, N), rstd, tol<float>());
    Host dout = rounded<X>(randn(rng, inp.size(), GRAD_STD)), dinp = randn(rng, inp.size(), 1.0f), dw = randn(rng, C, 1.0f);
    float *d_dinp = dev.put<float>(dinp), *d_dw = dev.put<float>(dw);
    rmsnorm_backward_cuda(d_dinp, d_dw, dev.put<X>(dout), d_inp, d_w, dev.put<float>(rstd), N, C);
    rmsnorm_backward(dinp.data(), dw.data(), dout.data(), inp.data(), w.data(), rstd.data(), N, C);
    close_to("rmsnorm_backward dinp += (fp32)", s.name, prec<X>(), get(d_dinp, dinp.size()), dinp, tol<float>());
    close_to("rmsnorm_backward dweight +=", s.name, prec<X>(), get(d_dw, C), dw, tol<float>());
}

template <typename X>
static void test_rope(const Shape& s, Rng* rng) {
    int N = s.B * s.T, HS = s.C / s.NH, QKV = (s.NH + 2 * s.KVH) * HS;
    Device dev;
    Host x = rounded<X>(randn(rng, (size_t)N * QKV, 1.0f));
    X* d_x = dev.put<X>(x);
    std::vector<int> pos(N);  // the CPU twin takes each row's position; the padded GPU layout is n % T
    for (int n = 0; n < N; n++) pos[n] = n % s.T;
    RopeTable table;
    rope_table_build(&table, s.T, HS, 10000.0f);
    Host angles(table.cos, table.cos + (size_t)s.T * table.half);  // (2, T, HS/2) as the model uploads it
    angles.insert(angles.end(), table.sin, table.sin + (size_t)s.T * table.half);
    float* d_rope = dev.put<float>(angles);
    rope_forward_cuda(d_x, d_rope, N, s.T, QKV, s.NH + s.KVH, HS);
    rope_forward(x.data(), N, pos.data(), QKV, s.NH + s.KVH, &table);
    close_to("rope_forward", s.name, prec<X>(), get(d_x, x.size()), rounded<X>(x), tol<X>());
    x = get(d_x, x.size());
    rope_backward_cuda(d_x, d_rope, N, s.T, QKV, s.NH + s.KVH, HS);
    rope_backward(x.data(), N, pos.data(), QKV, s.NH + s.KVH, &table);
    close_to("rope_backward", s.name, prec<X>(), get(d_x, x.size()), rounded<X>(x), tol<X>());
    rope_table_free(&table);
}

// attention at (B, T, NH over KVH heads of size HS); max_tile > 0 splits the backward's
// query rows into tiles of that many (the last one shorter), as a long history would
template <typename X>
static void test_attention_at(const char* shape, int B, int T, int NH, int KVH, int HS, int max_tile, Rng* rng) {
    int QKV = (NH + 2 * KVH) * HS;
    char name[160];
    snprintf(name, sizeof(name), "%s%s", shape, max_tile ? ", query tiles" : "");
    Device dev;
    std::vector<int> keymask = make_keymask(B, T);
    Host qkv = rounded<X>(randn(rng, (size_t)B * T * QKV, 1.0f)), out((size_t)B * T * NH * HS), att((size_t)B * NH * T * T);
    X *d_qkv = dev.put<X>(qkv), *d_out = dev.alloc<X>(out.size());
    float* d_lse = dev.alloc<float>((size_t)B * NH * T);
    int* d_mask = dev.put_ints(keymask);
    attention_forward_cuda(d_out, d_lse, d_qkv, d_mask, B, T, NH, KVH, HS);
    attention_forward(out.data(), att.data(), qkv.data(), keymask.data(), B, T, NH, KVH, HS);
    close_to("attention_forward", name, prec<X>(), get(d_out, out.size()), rounded<X>(out), tol<X>());
    Host dout = rounded<X>(randn(rng, out.size(), GRAD_STD)), dqkv = rounded<X>(randn(rng, qkv.size(), 1.0f));
    X *d_dout = dev.put<X>(dout), *d_dqkv = dev.put<X>(dqkv);
    attention_backward_cuda(d_dqkv, d_dout, d_qkv, d_lse, d_mask, B, T, NH, KVH, HS, true, max_tile);
    attention_backward(dqkv.data(), dout.data(), qkv.data(), att.data(), B, T, NH, KVH, HS);
    close_to("attention_backward dqkv +=", name, prec<X>(), get(d_dqkv, dqkv.size()), rounded<X>(dqkv), tol<X>());
    Host fresh(qkv.size(), 0.0f);
    attention_backward_cuda(d_dqkv, d_dout, d_qkv, d_lse, d_mask, B, T, NH, KVH, HS, false, max_tile);
    attention_backward(fresh.data(), dout.data(), qkv.data(), att.data(), B, T, NH, KVH, HS);
    close_to("attention_backward dqkv =", name, prec<X>(), get(d_dqkv, fresh.size()), rounded<X>(fresh), tol<X>());
}

template <typename X>
static void test_attention(const Shape& s, Rng* rng) {
    test_attention_at<X>(s.name, s.B, s.T, s.NH, s.KVH, s.C / s.NH, 0, rng);
}

template <typename X>
static void test_swiglu_residual(const Shape& s, Rng* rng) {
    int N = s.B * s.T, F = s.F;
    Device dev;
    Host gateup = rounded<X>(randn(rng, (size_t)N * 2 * F, 2.0f)), out((size_t)N * F);
    X *d_gateup = dev.put<X>(gateup), *d_out = dev.alloc<X>(out.size());
    swiglu_forward_cuda(d_out, d_gateup, N, F);
    swiglu_forward(out.data(), gateup.data(), N, F);
    close_to("swiglu_forward", s.name, prec<X>(), get(d_out, out.size()), rounded<X>(out), tol<X>());
    Host dout = rounded<X>(randn(rng, out.size(), 1.0f)), dgateup = rounded<X>(randn(rng, gateup.size(), 1.0f));
    X *d_dout = dev.put<X>(dout), *d_dgateup = dev.put<X>(dgateup);
    swiglu_backward_cuda(d_dgateup, d_dout, d_gateup, N, F);
    swiglu_backward(dgateup.data(), dout.data(), gateup.data(), N, F);
    close_to("swiglu_backward +=", s.name, prec<X>(), get(d_dgateup, dgateup.size()), rounded<X>(dgateup), tol<X>());
    Host fresh(gateup.size(), 0.0f);
    swiglu_backward_cuda(d_dgateup, d_dout, d_gateup, N, F, false);
    swiglu_backward(fresh.data(), dout.data(), gateup.data(), N, F);
    close_to("swiglu_backward =", s.name, prec<X>(), get(d_dgateup, fresh.size()), rounded<X>(fresh), tol<X>());
    size_t n = (size_t)N * s.C;  // the fp32 residual stream plus a branch output in X
    Host a = randn(rng, n, 1.0f), b = rounded<X>(randn(rng, n, 1.0f)), sum(n);
    float* d_sum = dev.alloc<float>(n);
    residual_forward_cuda(d_sum, dev.put<float>(a), dev.put<X>(b), n);
    residual_forward(sum.data(), a.data(), b.data(), n);
    close_to("residual_forward (fp32 stream)", s.name, prec<X>(), get(d_sum, n), sum, tol<float>());
}

// the item head is fp32 on both paths: cross-entropy over I items (chunked on the GPU)
static void test_crossentropy_items(const Shape& s, Rng* rng) {
    int B = s.B, D = s.D, I = s.I;
    Device dev;
    Host user = randn(rng, (size_t)B * D, 1.0f), table = randn(rng, (size_t)I * D, 0.5f);
    std::vector<int> targets(B);
    for (int b = 0; b < B; b++) targets[b] = b == 0 ? 0 : 1 + rng_int(rng, I - 1);  // row 0: no target
    targets[B - 1] = I - 1;  // the last chunk's last item
    Host logits((size_t)B * I), probs(logits.size()), losses(B);
    matmul_forward(logits.data(), user.data(), table.data(), NULL, B, D, I);
    crossentropy_forward(losses.data(), probs.data(), logits.data(), targets.data(), B, I);
    float *d_user = dev.put<float>(user), *d_table = dev.put<float>(table), *d_losses = dev.alloc<float>(B);
    float* d_stats = dev.alloc<float>((size_t)B * 3);
    int* d_targets = dev.put_ints(targets);
    crossentropy_items_forward_cuda(d_losses, d_stats, d_user, d_table, d_targets, B, D, I);
    close_to("crossentropy_items_forward", s.name, "fp32", get(d_losses, B), losses, tol<float>());
    float dloss = 0.7f / B;
    Host dlosses(B, dloss), dlogits(logits.size(), 0.0f), duser = randn(rng, user.size(), 1.0f);
    float* d_duser = dev.put<float>(duser);
    crossentropy_backward(dlogits.data(), dlosses.data(), probs.data(), targets.data(), B, I);
    matmul_backward(duser.data(), NULL, NULL, dlogits.data(), user.data(), table.data(), B, D, I);
    crossentropy_items_backward_cuda(d_duser, dloss, d_stats, d_user, d_table, d_targets, B, D, I);
    close_to("crossentropy_items_backward duser +=", s.name, "fp32", get(d_duser, duser.size()), duser, tol<float>());
}

static void test_kd(const Shape& s, Rng* rng) {
    int B = s.B, C = s.C;
    Device dev;
    Host a = randn(rng, (size_t)B * C, 1.0f), b = randn(rng, (size_t)B * C, 1.0f);
    for (int i = 0; i < C; i++) b[i] = a[i];  // row 0: equal states, the L2 subgradient 0
    for (int i = 0; i < C; i++) a[(size_t)(B - 1) * C + i] = 0.0f;  // last row: an all-zero student state (clamped cosine)
    float *d_a = dev.put<float>(a), *d_b = dev.put<float>(b), *d_out = dev.alloc<float>(2), *d_rows = dev.alloc<float>(B);
    kd_cosine_forward_cuda(d_out, d_rows, d_a, d_b, B, C);
    kd_l2_forward_cuda(d_out + 1, d_rows, d_a, d_b, B, C);
    Host ref = {kd_cosine_forward(a.data(), b.data(), B, C), kd_l2_forward(a.data(), b.data(), B, C)};
    close_to("kd_cosine_forward, kd_l2_forward", s.name, "fp32", get(d_out, 2), ref, tol<float>());
    Host da = randn(rng, a.size(), 1.0f);
    float* d_da = dev.put<float>(da);
    kd_cosine_backward_cuda(d_da, 1.3f, d_a, d_b, B, C);
    kd_l2_backward_cuda(d_da, 0.4f, d_a, d_b, B, C);
    kd_cosine_backward(da.data(), 1.3f, a.data(), b.data(), B, C);
    kd_l2_backward(da.data(), 0.4f, a.data(), b.data(), B, C);
    close_to("kd_cosine_backward + kd_l2_backward +=", s.name, "fp32", get(d_da, da.size()), da, tol<float>());
}

static void test_adamw(size_t n, float grad_std, Rng* rng) {
    char name[64];
    snprintf(name, sizeof(name), "n=%zu, grad std %g", n, grad_std);
    Device dev;
    Host p = randn(rng, n, 1.0f), g = randn(rng, n, grad_std), m = randn(rng, n, 0.01f), v = randn(rng, n, 0.01f);
    for (size_t i = 0; i < n; i++) v[i] = fabsf(v[i]);
    AdamWConfig c = adamw_defaults();
    c.weight_decay = 0.01f;
    c.clip = 1.0f;
    float *d_p = dev.put<float>(p), *d_g = dev.put<float>(g), *d_m = dev.put<float>(m), *d_v = dev.put<float>(v);
    float* d_norm = dev.alloc<float>(2);
    bf16* d_shadow = dev.alloc<bf16>(n);
    grad_clip_cuda(d_norm, d_g, n, c.clip);
    adamw_update_cuda(d_p, d_g, d_m, d_v, n, &c, 3e-4f, 5, d_norm + 1, d_shadow);
    double sumsq = grad_sumsq(g.data(), n);
    adamw_update(p.data(), g.data(), m.data(), v.data(), n, &c, 3e-4f, 5, clip_scale(sumsq, c.clip));
    Host norm = {(float)sqrt(sumsq)};
    close_to("grad_clip norm", name, "fp32", get(d_norm, 1), norm, tol<float>());
    close_to("adamw_update params", name, "fp32", get(d_p, n), p, tol<float>());
    close_to("adamw_update m", name, "fp32", get(d_m, n), m, tol<float>());
    close_to("adamw_update v", name, "fp32", get(d_v, n), v, tol<float>());
    close_to("adamw_update bf16 shadow", name, "bf16", get(d_shadow, n), rounded<bf16>(get(d_p, n)), {0.0f, 0.0f});
}

template <typename X>
static void test_layers_at(const Shape& s, Rng* rng) {
    test_embedding<X>(s, rng);
    test_matmul<X>(s, rng);
    test_rmsnorm<X>(s, rng);
    test_rope<X>(s, rng);
    test_attention<X>(s, rng);
    test_swiglu_residual<X>(s, rng);
}

// ----------------------------------------------------------------------------
// 2. whole steps through the C API

static E4SRecConfig small_config(int L) {
    E4SRecConfig c;
    memset(&c, 0, sizeof(c));
    c.V = 40; c.C = 32; c.F = 56; c.L = L; c.NH = 4; c.KVH = 2; c.HS = 8; c.D = 12; c.I = 97;
    c.P1 = 5; c.P2 = 3; c.S = 10; c.rms_eps = 1e-5f; c.rope_theta = 10000.0f;
    return c;
}

struct Batch {
    std::vector<int> items, targets;  // (B, S) left-padded histories, (B)
};

static Batch make_batch(Rng* rng, int B, int S, int I) {
    Batch b;
    b.items.assign((size_t)B * S, 0);
    b.targets.resize(B);
    for (int r = 0; r < B; r++) {
        int len = 1 + rng_int(rng, S);
        for (int i = S - len; i < S; i++) b.items[(size_t)r * S + i] = 1 + rng_int(rng, I - 1);
        b.targets[r] = 1 + rng_int(rng, I - 1);
    }
    return b;
}

// harder histories for the every-position CE, whose targets skip pads: in every row a pad
// between two real items where there is room, and with empty_first row 0 all pads (its
// sample supervises no history item, only its last token)
static void punch_holes(Batch* b, Rng* rng, int S, int empty_first) {
    for (size_t r = 0; r < b->targets.size(); r++) {
        int* h = b->items.data() + r * S;
        int s = 1 + rng_int(rng, S - 2);  // 1..S-2: a slot with one after it
        if (h[s - 1] > 0) h[s] = 0;       // a real item before it, so one after it too (left-padded)
    }
    if (empty_first) for (int s = 0; s < S; s++) b->items[s] = 0;
}

// the GPU's list of the every-position CE's items (upload_batch) is the CPU's after the
// same batch (e4srec_pack, e4srec_position_ce_forward): as many, each at its padded row
// b T + its position, with the same target
static int same_position_items(const GpuE4SRec* g, const E4SRec* m) {
    if (g->R_it != m->R_it) return 0;
    std::vector<int> rows(g->R_it + 1), targets(g->R_it + 1);
    cudaCheck(cudaMemcpy(rows.data(), g->item_rows, (size_t)g->R_it * sizeof(int), cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(targets.data(), g->pos_targets, (size_t)g->R_it * sizeof(int), cudaMemcpyDeviceToHost));
    int T = e4srec_T(&m->cfg), ok = 1;
    for (int i = 0, b = 0; i < m->R_it; i++) {
        while (m->item_rows[i] >= m->row_start[b + 1]) b++;
        ok &= rows[i] == b * T + m->pos[m->item_rows[i]] && targets[i] == m->pos_targets[i];
    }
    return ok;
}

struct TestModel {  // a CPU E4SRec with its item table and prompt
    Host table;
    std::vector<int> instr, resp;
    E4SRec m;
};

static void test_model_build(TestModel* t, const E4SRecConfig& c, Rng* rng, const Host* table) {
    t->table = table ? *table : randn(rng, (size_t)c.I * c.D, 0.5f);
    t->instr.resize(c.P1);
    t->resp.resize(c.P2);
    for (int& x : t->instr) x = rng_int(rng, c.V);
    for (int& x : t->resp) x = rng_int(rng, c.V);
    e4srec_build(&t->m, &c, t->table.data(), t->instr.data(), t->resp.data());
    e4srec_init_random(&t->m, rng);
}

static AdamWConfig test_adamw_config(void) {
    AdamWConfig a = adamw_defaults();
    a.lr = 2e-3f; a.min_lr = 2e-4f; a.warmup = 3; a.total_steps = 10; a.weight_decay = 0.01f; a.clip = 1.0f;
    return a;
}

// after 10 AdamW steps the parameters agree more loosely than one step's results:
// AdamW divides by sqrt(v), so a gradient's rounding difference becomes a relative
// difference of its update, and ten updates add up (1e-4 + 1e-3 |ref|)
static const Tol after_steps = {1e-4f, 1e-3f};

// position_ce > 0: the model's loss also has the every-position CE (e4srec_set_position_ce),
// on histories with pads between items and, every other step, an empty one. dropout > 0:
// decoder dropout (e4srec_set_dropout), each step's seed given to both paths, which then
// draw the same masks (method.md 4.8)
static void test_teacher_steps(Rng* rng, int use_bf16, float position_ce, float dropout) {
    const char* p = use_bf16 ? "bf16 vs CPU fp32" : "fp32";
    char shape[96];
    snprintf(shape, sizeof(shape), "E4SRec_4 C=32%s%s", position_ce > 0.0f ? ", position CE 0.5" : "", dropout > 0.0f ? ", dropout 0.3" : "");
    TestModel t;
    test_model_build(&t, small_config(4), rng, NULL);
    e4srec_set_position_ce(&t.m, position_ce);
    e4srec_set_dropout(&t.m, dropout);
    const E4SRecConfig& c = t.m.cfg;
    int B = 6, same_items = 1;
    AdamWConfig ac = test_adamw_config();
    GpuE4SRec* g = gpu_e4srec_create(&t.m, B, use_bf16, &ac);
    Optimizer o;
    memset(&o, 0, sizeof(o));
    o.cfg = ac;
    optimizer_add(&o, t.m.params_memory, t.m.grads_memory, t.m.num_params);
    optimizer_ready(&o);
    // bf16 tracks fp32 loosely: activations and weights rounded to 8 bits of mantissa at every layer
    Tol lt = use_bf16 ? Tol{2e-2f, 2e-2f} : tol<float>();
    for (int step = 0; step < 10; step++) {
        Batch b = make_batch(rng, B, c.S, c.I);
        if (position_ce > 0.0f) punch_holes(&b, rng, c.S, step % 2);
        t.m.dropout_seed = 1000 + step;
        if (dropout > 0.0f) gpu_e4srec_set_dropout_seed(g, t.m.dropout_seed);
        float ref = e4srec_forward(&t.m, b.items.data(), b.targets.data(), B);
        e4srec_zero_grad(&t.m);
        e4srec_ce_backward(&t.m, 1.0f);
        e4srec_backward(&t.m);
        optimizer_step(&o);
        gpu_e4srec_train_step(g, b.items.data(), b.targets.data(), B);
        SLMRecLosses l;
        float norm = 0.0f;
        gpu_e4srec_losses(g, &l, &norm, NULL);
        char name[96];
        snprintf(name, sizeof(name), "teacher step %d loss%s%s", step + 1, position_ce > 0.0f ? ", position CE" : "",
                 use_bf16 ? "" : ", grad norm");
        Host got = {l.ce, l.total}, want = {ref, ref};
        if (position_ce > 0.0f) {
            got.push_back(get(g->scalars + SCALAR_POS_CE, 1)[0]);
            want.push_back(t.m.pos_ce);
            same_items &= same_position_items(g, &t.m);
        }
        if (!use_bf16) { got.push_back(norm); want.push_back(o.last_grad_norm); }  // bf16 gradients: their norm is not compared
        close_to(name, shape, p, got, want, lt);
    }
    if (position_ce > 0.0f) {
        CHECK(same_items, "teacher, position CE (%s): the GPU's history items, their rows and targets are the CPU's in each of 10 batches", p);
    }
    if (!use_bf16) {
        Host cpu(t.m.params_memory, t.m.params_memory + t.m.num_params);
        gpu_e4srec_get_params(g, &t.m, NULL);
        Host gpu(t.m.params_memory, t.m.params_memory + t.m.num_params);
        close_to("teacher parameters after 10 AdamW steps", shape, p, gpu, cpu, after_steps);
    }
    gpu_e4srec_free(g);
    optimizer_free(&o);
    e4srec_free(&t.m);
}

// an E4SRec_4 teacher and its SLMRec_2 student (the teacher's first layers, prompt and
// item table; two distillation blocks, the default loss weights)
static void build_slmrec_pair(TestModel* te, TestModel* st, SLMRec* slm, Rng* rng) {
    test_model_build(te, small_config(4), rng, NULL);
    test_model_build(st, small_config(2), rng, &te->table);
    e4srec_copy_first_layers(&st->m, &te->m);
    memcpy(st->m.instr, te->m.instr, te->m.cfg.P1 * sizeof(int));
    memcpy(st->m.resp, te->m.resp, te->m.cfg.P2 * sizeof(int));
    slmrec_build(slm, &st->m, &te->m, 2, 1.0f, 0.1f, 1.0f, rng);
}

// position_ce > 0: the student's own loss also has the every-position CE (its ce term, as on the CPU);
// dropout > 0: the student drops (the same masks on both paths), its frozen teacher does not
static void test_student_steps(Rng* rng, float position_ce, float dropout) {
    char shape[96];
    snprintf(shape, sizeof(shape), "SLMRec_2<-4 C=32%s%s", position_ce > 0.0f ? ", position CE 0.5" : "", dropout > 0.0f ? ", dropout 0.3" : "");
    TestModel te, st;
    SLMRec slm;
    build_slmrec_pair(&te, &st, &slm, rng);
    e4srec_set_position_ce(&st.m, position_ce);
    e4srec_set_dropout(&te.m, dropout);  // as the pipeline's teacher keeps its own: frozen, it must not drop
    e4srec_set_dropout(&st.m, dropout);
    int B = 5, same_items = 1;
    AdamWConfig ac = test_adamw_config();
    GpuE4SRec* gt = gpu_e4srec_create(&te.m, B, 0, NULL);
    GpuE4SRec* gs = gpu_slmrec_create(&slm, gt, B, 0, &ac);
    Optimizer o;
    memset(&o, 0, sizeof(o));
    o.cfg = ac;
    optimizer_add(&o, st.m.params_memory, st.m.grads_memory, st.m.num_params);
    optimizer_add(&o, slm.adapters, slm.dadapters, slm.num_adapter_params);
    optimizer_ready(&o);
    const E4SRecConfig& c = st.m.cfg;
    for (int step = 0; step < 10; step++) {
        Batch b = make_batch(rng, B, c.S, c.I);
        if (position_ce > 0.0f) punch_holes(&b, rng, c.S, step % 2);
        st.m.dropout_seed = 2000 + step;
        if (dropout > 0.0f) gpu_e4srec_set_dropout_seed(gs, st.m.dropout_seed);
        SLMRecLosses ref = slmrec_forward(&slm, b.items.data(), b.targets.data(), B);
        slmrec_backward(&slm);
        optimizer_step(&o);
        gpu_e4srec_train_step(gs, b.items.data(), b.targets.data(), B);
        SLMRecLosses l;
        float norm = 0.0f;
        gpu_e4srec_losses(gs, &l, &norm, NULL);
        char name[112];
        snprintf(name, sizeof(name), "student step %d: ce dcos dnorm lms total, grad norm%s", step + 1,
                 position_ce > 0.0f ? ", position CE" : "");
        Host got = {l.ce, l.dcos, l.dnorm, l.lms, l.total, norm}, want = {ref.ce, ref.dcos, ref.dnorm, ref.lms, ref.total, o.last_grad_norm};
        if (position_ce > 0.0f) {
            got.push_back(get(gs->scalars + SCALAR_POS_CE, 1)[0]);
            want.push_back(st.m.pos_ce);
            same_items &= same_position_items(gs, &st.m);
        }
        close_to(name, shape, "fp32", got, want, tol<float>());
    }
    if (position_ce > 0.0f) {
        CHECK(same_items, "student, position CE: the GPU's history items, their rows and targets are the CPU's in each of 10 batches");
    }
    Host cpu(st.m.params_memory, st.m.params_memory + st.m.num_params);
    Host cpu_ad(slm.adapters, slm.adapters + slm.num_adapter_params);
    gpu_e4srec_get_params(gs, &st.m, &slm);
    close_to("student parameters after 10 AdamW steps", shape, "fp32",
             Host(st.m.params_memory, st.m.params_memory + st.m.num_params), cpu, after_steps);
    close_to("student adapters after 10 AdamW steps", shape, "fp32",
             Host(slm.adapters, slm.adapters + slm.num_adapter_params), cpu_ad, after_steps);
    gpu_e4srec_free(gs);
    gpu_e4srec_free(gt);
    optimizer_free(&o);
    slmrec_free(&slm);
    e4srec_free(&st.m);
    e4srec_free(&te.m);
}

// the GPU's top-k of each row equals a sort of its own scores (higher first, ties to the lower id, pad 0 out)
static void check_top_k(const char* what, const Host& scores, const std::vector<int>& top, int B, int I, int k) {
    int ok = 1;
    for (int r = 0; r < B; r++) {
        std::vector<int> ids;
        for (int i = 1; i < I; i++) ids.push_back(i);
        const float* z = scores.data() + (size_t)r * I;
        std::stable_sort(ids.begin(), ids.end(), [z](int a, int bb) { return z[a] > z[bb]; });
        for (int j = 0; j < k; j++) ok &= top[(size_t)r * k + j] == ids[j];
    }
    CHECK(ok, "%s: the top-%d ids match a sort of the scores (higher first, ties to the lower id)", what, k);
}

// scores of every item and the top-k against e4srec_forward's logits

// a prompt without a response part (P2 = 0): a sample's last slot is its last history
// item, or with an empty history the instruction's last token (e4srec_last_row); scores
// and one step's gradients against the CPU, with row 0's history empty

// 3 steps, moments and parameters out, a fresh handle from them, 3 more steps on
// each: bit-identical parameters (what --resume on the GPU relies on)
static void test_resume_moments(Rng* rng) {
    TestModel t;
    test_model_build(&t, small_config(2), rng, NULL);
    const E4SRecConfig& c = t.m.cfg;
    int B = 4;
    AdamWConfig ac = test_adamw_config();
    std::vector<Batch> batches;
    for (int i = 0; i < 6; i++) batches.push_back(make_batch(rng, B, c.S, c.I));
    GpuE4SRec* a = gpu_e4srec_create(&t.m, B, 0, &ac);
    for (int i = 0; i < 3; i++) gpu_e4srec_train_step(a, batches[i].items.data(), batches[i].targets.data(), B);
    Host m(t.m.num_params), v(t.m.num_params);
    int step = 0;
    gpu_e4srec_get_moments(a, m.data(), v.data(), &step);
    gpu_e4srec_get_params(a, &t.m, NULL);
    GpuE4SRec* b = gpu_e4srec_create(&t.m, B, 0, &ac);
    gpu_e4srec_set_moments(b, m.data(), v.data(), step);
    for (int i = 3; i < 6; i++) {
        gpu_e4srec_train_step(a, batches[i].items.data(), batches[i].targets.data(), B);
        gpu_e4srec_train_step(b, batches[i].items.data(), batches[i].targets.data(), B);
    }
    gpu_e4srec_get_params(a, &t.m, NULL);
    Host pa(t.m.params_memory, t.m.params_memory + t.m.num_params);
    gpu_e4srec_get_params(b, &t.m, NULL);
    CHECK(step == 3 && memcmp(pa.data(), t.m.params_memory, pa.size() * sizeof(float)) == 0,
          "a handle rebuilt from parameters + moments + step continues bit-identically (step %d)", step);
    gpu_e4srec_free(a);
    gpu_e4srec_free(b);
    e4srec_free(&t.m);
}

// the trainer reads losses every few steps: a handle read once after 5 steps reports the
// mean of the totals that an identical handle read after each step, and counts the steps
static void test_loss_window(Rng* rng) {
    TestModel t;
    test_model_build(&t, small_config(2), rng, NULL);
    const E4SRecConfig& c = t.m.cfg;
    int B = 4, unread = 0;
    AdamWConfig ac = test_adamw_config();
    GpuE4SRec* every = gpu_e4srec_create(&t.m, B, 0, &ac);
    GpuE4SRec* once = gpu_e4srec_create(&t.m, B, 0, &ac);
    double sum = 0.0;
    for (int i = 0; i < 5; i++) {
        Batch b = make_batch(rng, B, c.S, c.I);
        gpu_e4srec_train_step(every, b.items.data(), b.targets.data(), B);
        unread = gpu_e4srec_train_step(once, b.items.data(), b.targets.data(), B);
        SLMRecLosses l;
        gpu_e4srec_losses(every, &l, NULL, NULL);
        sum += l.total;
    }
    float mean = 0.0f;
    gpu_e4srec_losses(once, NULL, NULL, &mean);
    CHECK(unread == 5, "gpu_e4srec_train_step counts the steps not read yet: %d after 5", unread);
    close_to("mean total loss of 5 steps read at once", "E4SRec_2 C=32", "fp32", Host{mean}, Host{(float)(sum / 5)}, tol<float>());
    gpu_e4srec_free(every);
    gpu_e4srec_free(once);
    e4srec_free(&t.m);
}

// ---- bf16 whole models against fp32

// bf16 keeps 8 significant bits (a rounding is up to 2^-9 = 0.2% relative). A gradient
// here passes some 20 rounded tensors (activations going up, operands coming down) in
// these 2-4 layer models; independent roundings add in quadrature to about 1% in the
// relative L2 error of a whole tensor. 5% leaves room for the unlucky tensor and still
// fails a wrong gradient, whose relative error is of order 1.
#define BF16_MODEL_REL_L2 5e-2

// ||got - ref|| / ||ref|| over n values
static double rel_l2(const float* got, const float* ref, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) { double d = (double)got[i] - ref[i]; num += d * d; den += (double)ref[i] * ref[i]; }
    return sqrt(num / (den > 1e-30 ? den : 1e-30));
}

static void check_rel_l2(const char* name, const float* got, const float* ref, size_t n) {
    double e = rel_l2(got, ref, n);
    CHECK(e <= BF16_MODEL_REL_L2, "%s: relative L2 error %.3e (limit %.0e)", name, e, BF16_MODEL_REL_L2);
}
// scores B rows of b with a GPU scorer of `rows` rows at a time, against the CPU forward's
// logits (fp32: elementwise; bf16: relative L2), and checks the GPU's top k of them
static void check_scores(TestModel* t, const Batch& b, int B, int rows, int bf16, int k, const char* what, const char* shape) {
    const E4SRecConfig& c = t->m.cfg;
    GpuE4SRec* g = gpu_e4srec_create(&t->m, rows, bf16, NULL);
    Host scores((size_t)B * c.I);
    std::vector<int> top((size_t)B * k);
    gpu_e4srec_score(g, b.items.data(), B, scores.data(), k, top.data());
    e4srec_forward(&t->m, b.items.data(), NULL, B);
    if (bf16) check_rel_l2(what, scores.data(), t->m.acts.logits, scores.size());
    else close_to(what, shape, "fp32", scores, Host(t->m.acts.logits, t->m.acts.logits + scores.size()), tol<float>());
    check_top_k(what, scores, top, B, c.I, k);
    gpu_e4srec_free(g);
}
// fp32 or bf16 scores of one batch
static void test_score(Rng* rng, int bf16) {
    TestModel t;
    test_model_build(&t, small_config(3), rng, NULL);
    Batch b = make_batch(rng, 7, t.m.cfg.S, t.m.cfg.I);
    check_scores(&t, b, 7, 7, bf16, 20, bf16 ? "bf16 gpu_e4srec_score vs the CPU's fp32 logits" : "gpu_e4srec_score", "E4SRec_3 C=32");
    e4srec_free(&t.m);
}
static void test_score_chunks(Rng* rng) {
    E4SRecConfig c = small_config(2);
    c.I = 40001;
    TestModel t;
    test_model_build(&t, c, rng, NULL);
    for (int i = 1; i <= 200; i++) {  // items i, i + 16384, i + 32768 score alike
        for (int rep = 1; rep <= 2; rep++) memcpy(&t.table[(size_t)(i + rep * GPU_ITEM_CHUNK) * c.D], &t.table[(size_t)i * c.D], c.D * sizeof(float));
    }
    Batch b = make_batch(rng, 9, c.S, c.I);
    check_scores(&t, b, 9, 4, 0, 100, "gpu_e4srec_score, 3 item chunks, 9 rows by 4", "E4SRec_2 I=40001");
    e4srec_free(&t.m);
}
// no response prompt and an empty history: the last slot is the instruction's last token
static void test_no_response(Rng* rng) {
    E4SRecConfig c = small_config(3);
    c.P2 = 0;
    TestModel t;
    test_model_build(&t, c, rng, NULL);
    int B = 5;
    Batch b = make_batch(rng, B, c.S, c.I);
    for (int s = 0; s < c.S; s++) b.items[s] = 0;
    const char* shape = "E4SRec_3 C=32, no response prompt, an empty history";
    check_scores(&t, b, B, B, 0, 10, "gpu_e4srec_score", shape);
    AdamWConfig ac = test_adamw_config();
    GpuE4SRec* g = gpu_e4srec_create(&t.m, B, 0, &ac);
    gradients_cuda(g, b.items.data(), b.targets.data(), B);
    e4srec_forward(&t.m, b.items.data(), b.targets.data(), B);
    e4srec_zero_grad(&t.m);
    e4srec_ce_backward(&t.m, 1.0f);
    e4srec_backward(&t.m);
    close_to("one step's gradients", shape, "fp32", get(g->grads_memory, t.m.num_params),
             Host(t.m.grads_memory, t.m.grads_memory + t.m.num_params), after_steps);  // sums in another order: loose, but a wrong row is far off
    gpu_e4srec_free(g);
    e4srec_free(&t.m);
}

// one step's gradients (no update) of a bf16 handle against an fp32 handle of the same model,
// parameter tensor by parameter tensor (and the adapters): a teacher with CE, and a student
// with the whole SLMRec loss against its frozen teacher
// (position_ce > 0: both trained models with the every-position CE, on histories with pads between items)
// dropout > 0: teacher and student drop (the frozen teacher's handles never do), with one
// seed on every handle, so the bf16 backward through the masks is compared too
static void test_bf16_gradients(Rng* rng, float position_ce, float dropout) {
    char pce[64];
    snprintf(pce, sizeof(pce), "%s%s", position_ce > 0.0f ? ", position CE 0.5" : "", dropout > 0.0f ? ", dropout 0.3" : "");
    TestModel te, st;
    SLMRec slm;
    build_slmrec_pair(&te, &st, &slm, rng);
    e4srec_set_position_ce(&te.m, position_ce);  // the frozen teacher's forward-only handles leave it out
    e4srec_set_position_ce(&st.m, position_ce);
    e4srec_set_dropout(&te.m, dropout);
    e4srec_set_dropout(&st.m, dropout);
    int B = 6;
    AdamWConfig ac = test_adamw_config();
    Batch b = make_batch(rng, B, te.m.cfg.S, te.m.cfg.I);
    if (position_ce > 0.0f) punch_holes(&b, rng, te.m.cfg.S, 0);
    GpuE4SRec *teacher[2], *frozen[2], *student[2];  // [fp32, bf16]
    for (int h = 0; h < 2; h++) {
        teacher[h] = gpu_e4srec_create(&te.m, B, h, &ac);
        frozen[h] = gpu_e4srec_create(&te.m, B, h, NULL);
        student[h] = gpu_slmrec_create(&slm, frozen[h], B, h, &ac);
        gpu_e4srec_set_dropout_seed(teacher[h], 77);
        gpu_e4srec_set_dropout_seed(student[h], 78);
        gradients_cuda(teacher[h], b.items.data(), b.targets.data(), B);
        gradients_cuda(student[h], b.items.data(), b.targets.data(), B);
    }
    const char* names[] = {
#define PARAM_NAME(name, size) #name,
        E4SREC_PARAMS(PARAM_NAME)
#undef PARAM_NAME
    };
    GpuE4SRec* pairs[2][2] = {{teacher[0], teacher[1]}, {student[0], student[1]}};
    for (int which = 0; which < 2; which++) {
        GpuE4SRec *f = pairs[which][0], *h = pairs[which][1];
        Host g32 = get(f->grads_memory, f->num_total), g16 = get(h->grads_memory, h->num_total);
        size_t off = 0;
        char name[160];
        for (int i = 0; i < E4SREC_NUM_PARAMS; i++) {
            snprintf(name, sizeof(name), "bf16 vs fp32 GPU gradient of %s, %s%s", names[i], which ? "SLMRec_2<-4 student" : "E4SRec_4 teacher", pce);
            check_rel_l2(name, g16.data() + off, g32.data() + off, f->param_sizes[i]);
            off += f->param_sizes[i];
        }
        if (which) {
            snprintf(name, sizeof(name), "bf16 vs fp32 GPU gradient of the adapters, SLMRec_2<-4 student%s", pce);
            check_rel_l2(name, g16.data() + off, g32.data() + off, f->num_total - off);
        }
        Host s32 = get(f->scalars, NUM_SCALARS), s16 = get(h->scalars, NUM_SCALARS);
        snprintf(name, sizeof(name), "%s%s", which ? "bf16 student loss total" : "bf16 teacher loss", pce);
        close_to(name, "small", "bf16 vs fp32", Host{s16[SCALAR_TOTAL], s16[SCALAR_POS_CE]}, Host{s32[SCALAR_TOTAL], s32[SCALAR_POS_CE]},
                 {1e-2f, 1e-2f});
    }
    for (int h = 0; h < 2; h++) { gpu_e4srec_free(student[h]); gpu_e4srec_free(frozen[h]); gpu_e4srec_free(teacher[h]); }
    slmrec_free(&slm);
    e4srec_free(&st.m);
    e4srec_free(&te.m);
}

// 40,001 items (three chunks of GPU_ITEM_CHUNK, the top-k merged across them) with rows
// copied across the chunks (equal scores: ties broken by id across chunks), and 9 rows
// through a handle of 4 (three calls inside gpu_e4srec_score)

// bf16 scoring: its scores against the CPU's fp32 logits, its top-k against its own scores

// set_params (resume, reloading the best weights) must refresh the bf16 copy the matmuls
// read: a bf16 handle made from model A and given B's weights scores as one made from B
static void test_bf16_refresh(Rng* rng) {
    TestModel a, b;
    test_model_build(&a, small_config(2), rng, NULL);
    test_model_build(&b, small_config(2), rng, &a.table);
    memcpy(b.m.instr, a.m.instr, a.m.cfg.P1 * sizeof(int));
    memcpy(b.m.resp, a.m.resp, a.m.cfg.P2 * sizeof(int));
    const E4SRecConfig& c = a.m.cfg;
    int B = 5;
    Batch batch = make_batch(rng, B, c.S, c.I);
    AdamWConfig ac = test_adamw_config();
    GpuE4SRec* ga = gpu_e4srec_create(&a.m, B, 1, &ac);
    gpu_e4srec_train_step(ga, batch.items.data(), batch.targets.data(), B);  // the shadow moves with A's update
    gpu_e4srec_set_params(ga, &b.m, NULL);
    GpuE4SRec* gb = gpu_e4srec_create(&b.m, B, 1, &ac);  // a training handle too: the same layout, so bitwise comparable
    Host sa((size_t)B * c.I), sb(sa.size());
    gpu_e4srec_score(ga, batch.items.data(), B, sa.data(), 0, NULL);
    gpu_e4srec_score(gb, batch.items.data(), B, sb.data(), 0, NULL);
    CHECK(memcmp(sa.data(), sb.data(), sa.size() * sizeof(float)) == 0,
          "a bf16 handle given other weights by gpu_e4srec_set_params scores bit-identically to one built from them");
    gpu_e4srec_free(ga);
    gpu_e4srec_free(gb);
    e4srec_free(&a.m);
    e4srec_free(&b.m);
}

// ---- memory

// what a handle allocates is what gpu_plan said, arena by arena (scratch is shared and
// grows on use: left out), also for a model with the every-position CE; a forward-only
// handle, which reuses one layer's buffers, makes the same last-token states of every
// depth and user vectors as a training handle
static void test_plan(Rng* rng) {
    TestModel t;
    test_model_build(&t, small_config(3), rng, NULL);
    const E4SRecConfig& c = t.m.cfg;
    int B = 5;
    AdamWConfig ac = test_adamw_config();
    Batch b = make_batch(rng, B, c.S, c.I);
    for (int bf = 0; bf < 4; bf++) {  // fp32, bf16, then both with the every-position CE
        int pce = bf >= 2;
        e4srec_set_position_ce(&t.m, pce ? 0.5f : 0.0f);
        GpuE4SRec* h[2];
        for (int train = 0; train < 2; train++) {
            size_t before = device_bytes_now;
            h[train] = gpu_e4srec_create(&t.m, B, bf % 2, train ? &ac : NULL);
            GpuPlan p = gpu_plan(&c, 0, B, bf % 2, train, pce);
            CHECK(device_bytes_now - before == p.total - p.bytes[GPU_ARENA_SCRATCH],
                  "%s %s handle%s: allocated %zu bytes, planned %zu (without scratch)", bf % 2 ? "bf16" : "fp32",
                  train ? "training" : "forward-only", pce ? " (position CE)" : "", device_bytes_now - before,
                  p.total - p.bytes[GPU_ARENA_SCRATCH]);
            upload_batch(h[train], b.items.data(), NULL, B);
            if (bf % 2) e4srec_forward_cuda<bf16>(h[train], B);
            else e4srec_forward_cuda<float>(h[train], B);
        }
        size_t n_last = (size_t)(c.L + 1) * B * c.C, n_user = (size_t)B * c.D;
        Host last[2], user[2];
        for (int train = 0; train < 2; train++) {
            last[train] = get(bf % 2 ? h[train]->acts_h.last : h[train]->acts_f.last, n_last);
            user[train] = get(bf % 2 ? h[train]->acts_h.user : h[train]->acts_f.user, n_user);
        }
        // (within the layers' tolerance, not bitwise: the two handles' tensors sit at other alignments,
        // which cuBLAS may answer with other kernels; a reused slot read too late would be off by O(1))
        Tol t = bf % 2 ? tol<bf16>() : tol<float>();
        const char *shape = pce ? "E4SRec_3 C=32, position CE 0.5" : "E4SRec_3 C=32", *p = bf % 2 ? "bf16" : "fp32";
        close_to("forward-only vs training handle: last-token states of every depth", shape, p, last[0], last[1], t);
        close_to("forward-only vs training handle: user vectors", shape, p, user[0], user[1], t);
        gpu_e4srec_free(h[0]);
        gpu_e4srec_free(h[1]);
    }
    e4srec_free(&t.m);
}

// run in a fresh process (test_gpu --refuse-plan): a handle whose plan is twice the GPU's
// memory must be refused, naming the sizes, before it allocates anything
static void refuse_plan_child(void) {
    Rng rng;
    rng_seed(&rng, 7);
    TestModel t;
    test_model_build(&t, small_config(2), &rng, NULL);
    size_t free_bytes = 0, total_bytes = 0;
    cudaCheck(cudaMemGetInfo(&free_bytes, &total_bytes));
    size_t per_row = gpu_plan(&t.m.cfg, 0, 1, 0, 0, 0).bytes[GPU_ARENA_ACTS];  // a forward-only handle's activations per row
    gpu_e4srec_create(&t.m, (int)(2 * total_bytes / per_row), 0, NULL);
}

static void test_refuse_plan(const char* self) {
    char path[] = "/tmp/slmrec_test_gpu_stderr_XXXXXX";
    int fd = mkstemp(path);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {  // exec at once: the parent's CUDA context does not survive a fork
        dup2(fd, 2);
        execl("/proc/self/exe", self, "--refuse-plan", (char*)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    char* msg = read_file(path, NULL);
    unlink(path);
    close(fd);
    int refused = WIFEXITED(status) && WEXITSTATUS(status) != 0;
    CHECK(refused && strstr(msg, "GiB of device memory") && strstr(msg, "free"),
          "a handle planned at twice the GPU's memory is refused with the sizes: exit %d, %s",
          WIFEXITED(status) ? WEXITSTATUS(status) : -1, msg);
    free(msg);
}

// ----------------------------------------------------------------------------
// 3. the oracle fixture through the GPU model (fp32): losses, hidden states, gradients

static void oracle_check_gpu_model(OracleReport* r, const Safetensors* st, GpuE4SRec* g, E4SRec* host, const char* who) {
    const E4SRecConfig* c = &g->cfg;
    size_t BTC = (size_t)g->B * e4srec_T(c) * c->C;
    char name[256];
    for (int k = 0; k <= c->L; k++) {
        snprintf(name, sizeof(name), "out.%s.hidden.%d", who, k);
        Host h = get(k < c->L ? g->acts_f.residual + k * BTC : g->acts_f.lnf, BTC);
        oracle_check(r, st, name, h.data(), BTC);
    }
    float* logits = (float*)scratch(SCRATCH_LOGITS, (size_t)g->B * c->I * sizeof(float));  // (B, I)
    gemm(logits, g->acts_f.user, g->item_table, g->B, c->I, c->D, false, true, false);
    snprintf(name, sizeof(name), "out.%s.logits", who);
    oracle_check(r, st, name, get(logits, (size_t)g->B * c->I).data(), (size_t)g->B * c->I);
    Host grads = get(g->grads_memory, g->num_params);
    memcpy(host->grads_memory, grads.data(), g->num_params * sizeof(float));
    oracle_check_grads(r, st, host, who);
}

// the fixture: $SLMREC_ORACLE_FIXTURE, else ../shared/fixtures/ (the device machine may keep it elsewhere)
static void test_oracle_gpu(void) {
    const char* path = getenv("SLMREC_ORACLE_FIXTURE");
    if (path == NULL) path = "../shared/fixtures/slmrec_oracle.safetensors";
    if (access(path, R_OK) != 0) {
        char why[1100];
        snprintf(why, sizeof(why), "'%s' not found (set SLMREC_ORACLE_FIXTURE to its path)", path);
        skip("oracle fixture on the GPU", why);
        return;
    }
    OracleFixture f;
    oracle_fixture_open(&f, path);
    OracleReport r = {0, 0, 0.0f, 0};
    E4SRec teacher, student;
    oracle_load_model(&teacher, &f.st, "teacher", &f.teacher_cfg, f.table, f.instr, f.resp);
    oracle_load_model(&student, &f.st, "student", &f.student_cfg, f.table, f.instr, f.resp);
    SLMRec slm;
    slmrec_build(&slm, &student, &teacher, f.blocks, f.lambda_cos, f.lambda_norm, f.lambda_ms, NULL);
    oracle_load_adapters(&slm, &f);
    AdamWConfig ac = adamw_defaults();
    // the teacher with CE: forward and backward only (no optimizer step), as the fixture
    GpuE4SRec* gt = gpu_e4srec_create(&teacher, f.B, 0, &ac);
    gradients_cuda(gt, f.items, f.targets, f.B);
    Host s = get(gt->scalars, NUM_SCALARS);
    oracle_check(&r, &f.st, "out.teacher.loss", &s[SCALAR_CE], 1);
    oracle_check_gpu_model(&r, &f.st, gt, &teacher, "teacher");
    // the student against a forward-only teacher handle
    GpuE4SRec* gf = gpu_e4srec_create(&teacher, f.B, 0, NULL);
    GpuE4SRec* gs = gpu_slmrec_create(&slm, gf, f.B, 0, &ac);
    gradients_cuda(gs, f.items, f.targets, f.B);
    s = get(gs->scalars, NUM_SCALARS);
    SLMRecLosses loss = {s[SCALAR_CE], s[SCALAR_DCOS], s[SCALAR_DNORM], s[SCALAR_LMS], s[SCALAR_TOTAL]};
    oracle_check_student_losses(&r, &f.st, &loss);
    oracle_check_gpu_model(&r, &f.st, gs, &student, "student");
    Host dad = get(gs->dadapters, slm.num_adapter_params);
    oracle_check_adapter_grads(&r, &f.st, dad.data(), f.blocks, f.cfg.D, f.cfg.C);
    CHECK(r.n_failed == 0 && r.n_tensors >= 80, "oracle on the GPU: %d of %d tensors outside 1e-5 + 1e-4 |ref| (max rel %.3e)",
          r.n_failed, r.n_tensors, r.max_rel);
    gpu_e4srec_free(gs);
    gpu_e4srec_free(gf);
    gpu_e4srec_free(gt);
    slmrec_free(&slm);
    e4srec_free(&student);
    e4srec_free(&teacher);
    oracle_fixture_free(&f);
}

// ----------------------------------------------------------------------------

int main(int argc, char** argv) {
    if (argc == 2 && strcmp(argv[1], "--refuse-plan") == 0) {  // the child of test_refuse_plan
        refuse_plan_child();
        return 0;  // not refused: the parent's check fails
    }
    // passing without running is allowed only where no CUDA device (or no driver) exists
    // at all; any other CUDA error fails, with the versions that explain most of them
    int n_devices = 0, driver = 0, runtime = 0;
    cudaError_t e = cudaGetDeviceCount(&n_devices);
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    if (e == cudaErrorNoDevice || (e == cudaSuccess && n_devices == 0) || driver == 0) {
        printf("SKIP: no CUDA device exists here (%s; driver %d, runtime %d): the GPU tests did not run\n",
               e == cudaSuccess ? "no device" : cudaGetErrorName(e), driver, runtime);
        printf("0 passed, 0 failed, 1 skipped\n");
        return 0;
    }
    if (e != cudaSuccess) {
        printf("FAIL: CUDA cannot use the device: %s (%s); driver version %d, runtime version %d\n",
               cudaGetErrorName(e), cudaGetErrorString(e), driver, runtime);
        printf("0 passed, 1 failed, 0 skipped\n");
        return 1;
    }
    char info[256];
    gpu_device_info(info, sizeof(info));
    printf("GPU: %s\n", info);
    gpu_init();
    Rng rng;
    rng_seed(&rng, 1234);
    for (const Shape& s : shapes) {
        double t0 = now_seconds();
        int before = tests_failed;
        test_layers_at<float>(s, &rng);
        test_layers_at<bf16>(s, &rng);
        test_crossentropy_items(s, &rng);
        test_kd(s, &rng);
        printf("[layers, %s] %s (%.1fs)\n", s.name, tests_failed == before ? "ok" : "FAILED", now_seconds() - t0);
    }
    int before = tests_failed;
    const char* hs128 = "B=3 T=74 NH=8 KVH=2 HS=128";  // LLaMA-7B's head size at E4SRec's 74 tokens
    test_attention_at<float>(hs128, 3, 74, 8, 2, 128, 0, &rng);
    test_attention_at<bf16>(hs128, 3, 74, 8, 2, 128, 0, &rng);
    test_attention_at<float>(hs128, 3, 74, 8, 2, 128, 20, &rng);  // tiles of 20, 20, 20, 14 query rows
    test_attention_at<bf16>(hs128, 3, 74, 8, 2, 128, 20, &rng);
    test_attention_at<float>(shapes[1].name, 3, 33, 4, 2, 16, 8, &rng);
    printf("[attention at head size 128, query tiles] %s\n", tests_failed == before ? "ok" : "FAILED");
    test_adamw(1001, 0.01f, &rng);        // under the clip
    test_adamw(3000017, 1.0f, &rng);      // clipped, many blocks
    before = tests_failed;
    test_teacher_steps(&rng, 0, 0.0f, 0.0f);
    test_teacher_steps(&rng, 1, 0.0f, 0.0f);
    test_student_steps(&rng, 0.0f, 0.0f);
    test_bf16_gradients(&rng, 0.0f, 0.0f);
    test_score(&rng, 0);
    test_no_response(&rng);
    test_score_chunks(&rng);
    test_score(&rng, 1);
    test_resume_moments(&rng);
    test_loss_window(&rng);
    test_bf16_refresh(&rng);
    printf("[training steps, bf16 gradients, scoring, resume] %s\n", tests_failed == before ? "ok" : "FAILED");
    before = tests_failed;
    test_teacher_steps(&rng, 0, 0.5f, 0.0f);
    test_teacher_steps(&rng, 1, 0.5f, 0.0f);
    test_student_steps(&rng, 0.5f, 0.0f);
    test_bf16_gradients(&rng, 0.5f, 0.0f);
    printf("[training steps with the every-position CE] %s\n", tests_failed == before ? "ok" : "FAILED");
    before = tests_failed;
    test_teacher_steps(&rng, 0, 0.5f, 0.3f);
    test_teacher_steps(&rng, 1, 0.5f, 0.3f);
    test_student_steps(&rng, 0.5f, 0.3f);
    test_bf16_gradients(&rng, 0.5f, 0.3f);
    printf("[training steps with decoder dropout, the CPU's masks] %s\n", tests_failed == before ? "ok" : "FAILED");
    before = tests_failed;
    test_plan(&rng);
    test_refuse_plan(argv[0]);
    printf("[memory plan] %s\n", tests_failed == before ? "ok" : "FAILED");
    before = tests_failed;
    test_oracle_gpu();
    printf("[oracle fixture on the GPU] %s\n", tests_failed == before ? "ok" : "FAILED");
    printf("%d passed, %d failed, %d skipped\n", tests_passed, tests_failed, tests_skipped);
    return tests_failed == 0 && tests_passed > 0 ? 0 : 1;
}
