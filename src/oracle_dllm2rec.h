// oracle_dllm2rec.h: the PyTorch oracle fixture of DLLM2Rec (nn.GRU, nn.Conv2d
// and autograd in float64 from float32 inputs): a GRU4Rec and a Caser student with
// the collaborative embedding distillation, one batch of left-padded histories,
// the teacher's top-K and scores, and every number PyTorch computed from them:
// logits, features, the importance weights, every loss term, and the gradient of
// both objectives (CE + lam rd; the authors' BCE + DROS + lam (rd + DROS)) with
// respect to every parameter. Compared per element within 1e-5 + 1e-4 |ref|.
#pragma once
#include "dllm2rec.h"
#include "oracle.h"
#include "student.h"

// the fixture's name of a student's i-th tensor (params or grads) and where it lives
// here; returns 0 past the last one
static int student_oracle_tensor(Student* s, int grads, int i, char* name, size_t cap, float** ptr, size_t* numel) {
    const StudentConfig* c = &s->cfg;
    size_t D = c->D, DC = (size_t)c->D * c->C;
    if (s->collab_n && i < 2) {  // the embedding distillation's map first
        float* base = grads ? s->collab_grads : s->collab_params;
        snprintf(name, cap, i == 0 ? "ed_w" : "ed_b");
        *ptr = i == 0 ? base : base + DC;
        *numel = i == 0 ? DC : D;
        return 1;
    }
    i -= s->collab_n ? 2 : 0;
    if (c->kind == STUDENT_GRU4REC) {
        GRU4RecParams* p = grads ? &s->gru4rec.grads : &s->gru4rec.params;
        const char* names[GRU4REC_NUM_PARAMS] = {"item_emb", "gru.weight_ih_l0", "gru.weight_hh_l0", "gru.bias_ih_l0",
                                                 "gru.bias_hh_l0", "out_w", "out_b"};
        float* ptrs[GRU4REC_NUM_PARAMS] = {p->item_emb, p->w_ih, p->w_hh, p->b_ih, p->b_hh, p->out_w, p->out_b};
        if (i >= GRU4REC_NUM_PARAMS) return 0;
        snprintf(name, cap, "%s", names[i]);
        *ptr = ptrs[i];
        *numel = s->gru4rec.param_sizes[i];
        return 1;
    }
    if (c->kind == STUDENT_CASER) {
        CaserParams* p = grads ? &s->caser.grads : &s->caser.params;
        const CaserConfig* cc = &s->caser.cfg;
        if (i < 2 * CASER_HEIGHTS) {  // hconv2.weight, hconv2.bias, hconv3.weight, ...
            int k = i / 2, h = caser_height(k);
            snprintf(name, cap, "hconv%d.%s", h, i % 2 ? "bias" : "weight");
            *ptr = i % 2 ? p->conv_b + (size_t)k * cc->NF : p->conv_w + caser_w_offset(cc, k);
            *numel = i % 2 ? (size_t)cc->NF : (size_t)cc->NF * h * cc->D;
            return 1;
        }
        i -= 2 * CASER_HEIGHTS;
        const char* names[5] = {"item_emb", "vconv.weight", "vconv.bias", "out_w", "out_b"};
        float* ptrs[5] = {p->item_emb, p->vert_w, p->vert_b, p->out_w, p->out_b};
        size_t sizes[5] = {s->caser.param_sizes[0], s->caser.param_sizes[3], 1, s->caser.param_sizes[5], s->caser.param_sizes[6]};
        if (i >= 5) return 0;
        snprintf(name, cap, "%s", names[i]);
        *ptr = ptrs[i];
        *numel = sizes[i];
        return 1;
    }
    return 0;
}

// one student of the fixture ("gru4rec" or "caser") through both objectives
static void dllm2rec_oracle_student(OracleReport* r, const Safetensors* st, const char* meta, const char* json_path,
                                    StudentKind kind) {
    const char* who = STUDENT_FLAG_NAMES[kind];
    char name[256], full[300];
    const StTensor* items_t = st_shape(st, "items", 2);
    const StTensor* et_t = st_shape(st, "e_T", 2);
    const StTensor* cand_t = st_shape(st, "cand", 2);
    snprintf(name, sizeof(name), "%s.param.item_emb", who);
    const StTensor* emb_t = st_shape(st, name, 2);
    int B = (int)items_t->shape[0], T = (int)items_t->shape[1], I = (int)et_t->shape[0], C = (int)et_t->shape[1];
    int K = (int)cand_t->shape[1], D = (int)emb_t->shape[1];
    StudentConfig sc = {.kind = kind, .I = I, .D = D, .T = T, .L = 1, .NH = 1, .dropout = 0.0f,
                        .NF = json_int(meta, "NF", json_path, 1, MAX_REC_WIDTH), .ed = (float)json_number(meta, "ed", json_path), .C = C};
    check_range(json_path, "ed", sc.ed, 0, 1e6);
    check_range(st->path, "the candidates per sample (cand's second dimension)", K, 1, I - 1);
    float* e_T = (float*)mallocCheck((size_t)I * C * sizeof(float));
    st_read_f32(st, "e_T", e_T, (size_t)I * C);
    Student s;
    student_build(&s, &sc, e_T);
    float* ptr;
    size_t numel;
    for (int i = 0; student_oracle_tensor(&s, 0, i, name, sizeof(name), &ptr, &numel); i++) {
        snprintf(full, sizeof(full), "%s.param.%s", who, name);
        st_read_f32(st, full, ptr, numel);
    }
    int *items = (int*)mallocCheck((size_t)B * T * sizeof(int)), *target = (int*)mallocCheck(B * sizeof(int));
    int *neg = (int*)mallocCheck(B * sizeof(int)), *cand = (int*)mallocCheck((size_t)B * K * sizeof(int));
    float* cand_score = (float*)mallocCheck((size_t)B * K * sizeof(float));
    float* propensity = (float*)mallocCheck(I * sizeof(float));
    float* dlogits = (float*)mallocCheck((size_t)B * I * sizeof(float));
    st_read_ids(st, "items", items, (size_t)B * T, 0, I - 1);
    st_read_ids(st, "target", target, B, 1, I - 1);
    st_read_ids(st, "neg", neg, B, 1, I - 1);
    st_read_ids(st, "cand", cand, (size_t)B * K, 1, I - 1);
    st_read_f32(st, "cand_scores", cand_score, (size_t)B * K);
    st_read_f32(st, "propensity", propensity, I);
    DLLM2RecConfig cfg = dllm2rec_defaults();
    cfg.K = K;
    cfg.lam = (float)json_number(meta, "lam", json_path);
    cfg.gamma_pos = (float)json_number(meta, "gamma_position", json_path);
    cfg.gamma_conf = (float)json_number(meta, "gamma_confidence", json_path);
    cfg.gamma_cons = (float)json_number(meta, "gamma_consistency", json_path);
    cfg.dros_alpha = (float)json_number(meta, "dros_alpha", json_path);
    cfg.dros_beta = (float)json_number(meta, "dros_beta", json_path);
    DLLM2RecBatch bt = {B, I, target, neg, cand, cand_score, propensity};
    DLLM2RecLoss loss = {0};
    loss.all_terms = 1;
    const char* objectives[2] = {"total_ce", "total_authors"};
    for (int obj = 0; obj < 2; obj++) {
        cfg.base = obj == 0 ? BASE_CE : BASE_BCE_DROS;
        cfg.rd_neg = obj == 0 ? RD_NEG_PAPER : RD_NEG_AUTHORS;
        student_forward(&s, items, B, NULL);
        DLLM2RecLosses l = dllm2rec_loss_forward(&loss, s.logits, &bt, &cfg);
        dllm2rec_loss_backward(dlogits, s.logits, &bt, &loss, &cfg);
        student_zero_grad(&s);
        student_backward(&s, dlogits);
        if (obj == 0) {  // the forward side once: logits, features, weights, every term
            snprintf(full, sizeof(full), "%s.logits", who);
            oracle_check(r, st, full, s.logits, (size_t)B * I);
            snprintf(full, sizeof(full), "%s.features", who);
            if (kind == STUDENT_GRU4REC) oracle_check(r, st, full, s.gru4rec.acts.h, (size_t)B * D);
            else oracle_check(r, st, full, s.caser.acts.z, (size_t)B * caser_Z(&s.caser.cfg));
            float* topk = (float*)mallocCheck((size_t)B * K * sizeof(float));
            for (int i = 0; i < B * K; i++) topk[i] = (float)loss.student_topk[i];
            snprintf(full, sizeof(full), "%s.student_topk", who);
            oracle_check(r, st, full, topk, (size_t)B * K);
            free(topk);
            const char* wnames[4] = {"w_pos", "w_conf", "w_cons", "w"};
            const float* ws[4] = {loss.w_pos, loss.w_conf, loss.w_cons, loss.w};
            for (int i = 0; i < 4; i++) {
                snprintf(full, sizeof(full), "%s.%s", who, wnames[i]);
                oracle_check(r, st, full, ws[i], (size_t)B * K);
            }
            const char* lnames[6] = {"ce", "bce", "dros", "rd", "rd_authors", "rd_dros"};
            float lv[6] = {l.ce, l.bce, l.dros, l.rd, l.rd_authors, l.rd_dros};
            for (int i = 0; i < 6; i++) {
                snprintf(full, sizeof(full), "%s.loss.%s", who, lnames[i]);
                oracle_check(r, st, full, &lv[i], 1);
            }
        }
        snprintf(full, sizeof(full), "%s.loss.%s", who, objectives[obj]);
        oracle_check(r, st, full, &l.total, 1);
        for (int i = 0; student_oracle_tensor(&s, 1, i, name, sizeof(name), &ptr, &numel); i++) {
            snprintf(full, sizeof(full), "%s.grad_%s.%s", who, objectives[obj], name);
            oracle_check(r, st, full, ptr, numel);
        }
    }
    dllm2rec_loss_free(&loss);
    student_free(&s);
    free(e_T); free(items); free(target); free(neg); free(cand); free(cand_score); free(propensity); free(dlogits);
}

// is this the DLLM2Rec fixture (rather than the HF E4SRec / SLMRec one)?
static int oracle_is_dllm2rec(const Safetensors* st) { return st_find(st, "gru4rec.logits") != NULL; }

static OracleReport dllm2rec_oracle_run(const Safetensors* st, const char* meta, const char* json_path, int print) {
    OracleReport r = {0, 0, 0.0f, print};
    if (print) printf("%-60s %11s %11s\n", "tensor", "max abs", "max rel");
    dllm2rec_oracle_student(&r, st, meta, json_path, STUDENT_GRU4REC);
    dllm2rec_oracle_student(&r, st, meta, json_path, STUDENT_CASER);
    return r;
}

// either fixture: the HF one of E4SRec / SLMRec (oracle.h), or the PyTorch one of DLLM2Rec
static OracleReport oracle_run_any(const char* path, int print) {
    const char* outer = input_begin(path);
    Safetensors st;
    st_open(&st, path);
    OracleReport r;
    if (!oracle_is_dllm2rec(&st)) {
        st_close(&st);
        r = oracle_run(path, print);
    } else {
        char json_path[1024];
        char* meta = oracle_read_sidecar(path, json_path, sizeof(json_path));
        r = dllm2rec_oracle_run(&st, meta, json_path, print);
        free(meta);
        st_close(&st);
    }
    input_end(outer);
    return r;
}
