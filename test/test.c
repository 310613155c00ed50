// test.c: the CPU test runner. A unity build: slmrec.c compiled with -DTESTING
// (no main), then each test file, then main runs them all and prints
// "N passed, M failed"; the exit code is non-zero on any failure.
#include "../slmrec.c"
#include "test.h"
#include "test_layers.c"
#include "test_data.c"
#include "test_tokenizer.c"
#include "test_sasrec.c"
#include "test_students.c"
#include "test_llama.c"
#include "test_pipeline.c"
#include "test_runs.c"
#include "test_fuzz.c"
#include "test_svg.c"

// ./test/test_runner runs every suite; ./test/test_runner WORD only those whose name holds WORD
int main(int argc, char** argv) {
    struct { const char* name; void (*run)(void); } suites[] = {
        // first: it forks a child per mutant, cheapest while this process is still small
        {"hostile input: fixed-seed mutations of every parser", run_fuzz_tests},
        {"layers, models, optimizer, oracle", run_layer_tests},
        {"data, split, batches, synth, prep, evaluation", run_data_tests},
        {"tokenizer: BPE, llama2.c vocabulary, files", run_tokenizer_tests},
        {"SASRec: gradients, dropout, chunked loss, training", run_sasrec_tests},
        {"DLLM2Rec students: gradients, losses, files, oracle", run_student_tests},
        {"pretrained LLaMA: llama2.c and HF import, generation, KV cache, LoRA", run_llama_tests},
        {"pipeline: checkpoints, resume, recommend, end to end", run_pipeline_tests},
        {"runs that cannot mix: run records, teacher caches, one run per --out, flag limits", run_runs_tests},
        {"SVG charts: ticks, Pareto front, files", run_svg_tests},
    };
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        if (argc > 1 && strstr(suites[i].name, argv[1]) == NULL) continue;
        int before = tests_failed;
        double t0 = now_seconds();
        printf("[%s]\n", suites[i].name);
        suites[i].run();
        printf("  %s (%.1fs)\n", tests_failed == before ? "ok" : "FAILED", now_seconds() - t0);
    }
    if (tests_skipped) printf("%d checks skipped (see SKIP lines above)\n", tests_skipped);
    printf("%d passed, %d failed\n", tests_passed, tests_failed);
    return tests_failed == 0 ? 0 : 1;
}
