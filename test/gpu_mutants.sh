#!/bin/sh
# gpu_mutants.sh: can `make test-gpu` fail? Each mutant below breaks one thing in a
# copy of the checkout (one sed edit of kernels.cu), builds test/test_gpu there and
# runs it; the mutant is caught when the suite fails. Exits 0 only when every mutant
# was caught. Run by `make test-gpu-mutants`. The mutants build side by side (one
# nvcc per core) and each suite stops at its first failure (SLMREC_TEST_FAIL_FAST),
# so the whole run costs about two builds and a few partial suites. Where no CUDA
# device exists the suite says SKIP and this script says so too, and exits 0
# without having shown anything.
#
# Each line: a name, a tab, a sed expression applied to kernels.cu (it must change it).
set -u
MUTANTS='rope backward turns forward	s/s = sign \* rope\[/s = rope[/
attention dK forgets earlier heads and tiles	s/dks\[idx\] += dk;/dks[idx] = dk;/
top-k forgets earlier item chunks	s/old_val\[j\] = first ? -INFINITY : top_val/old_val[j] = -INFINITY; (void)top_val/
AdamW leaves the bf16 shadow stale	s/if (shadow) shadow\[i\] = __float2bfloat16(p);/(void)shadow;/
set_params leaves the bf16 shadow stale	s/if (g->params_bf16) to_bf16_cuda(g->params_bf16, g->params_memory, g->num_total);/(void)0;/
distillation gradient not injected below the top	s/(a.dresidual, a.dlast + (size_t)l \* B \* C, g, 1)/(a.dresidual, a.dlast + (size_t)l * B * C, g, 0)/
an empty history without a response prompt scores a pad	s/P2 > 0 || items\[(size_t)b \* S + S - 1\] != 0 ?/P2 >= 0 ?/
every-position CE gradient not added into the final norm	s/store(d, to_float(\*d) + drows\[idx\]);/(void)d; (void)drows;/
dropout gradient skips the mask of the input rows	s/if (g->dropping) dropout_rows_cuda(g, a.dresidual, a.dresidual, E4SREC_SITE_INPUT);/(void)0;/
dropout draws each sample its own instruction mask	s/t < P1 ? -1 : b, t)/b, t)/
bf16 branch gradient ignores the dropout mask	s/if (g->dropping) dropout_rows_cuda(g, buf, dresidual, site);/if (0) dropout_rows_cuda(g, buf, dresidual, site);/'

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/slmrec_mutants_XXXXXX)
trap 'rm -rf "$work"' EXIT
jobs=$(nproc 2>/dev/null || echo 2)
tab=$(printf '\t')
IFS='
'
# 1. each mutant's tree, built side by side, at most $jobs at a time
i=0
for line in $MUTANTS; do
    i=$((i + 1))
    expr=${line#*"$tab"}
    tree="$work/m$i"
    mkdir -p "$tree"
    (cd "$root" && cp -r Makefile cuda.mk slmrec.c kernels.cu src test "$tree/") || exit 1
    rm -f "$tree/test/test_gpu" "$tree/kernels.o"
    sed "$expr" "$root/kernels.cu" > "$tree/kernels.cu"
    if cmp -s "$root/kernels.cu" "$tree/kernels.cu"; then
        echo "not applied" > "$tree/status"
        continue
    fi
    (make -s -C "$tree" test/test_gpu > "$tree/build.log" 2>&1 && echo built > "$tree/status" || echo "did not build" > "$tree/status") &
    [ $((i % jobs)) -eq 0 ] && wait
done
wait
# 2. each mutant's suite, one at a time (one GPU), stopped at its first failure
caught=0 missed=0 skipped=0 i=0
for line in $MUTANTS; do
    i=$((i + 1))
    name=${line%%"$tab"*}
    tree="$work/m$i"
    case $(cat "$tree/status") in
    "not applied")
        echo "MUTANT NOT APPLIED: $name (its sed expression no longer matches kernels.cu)"
        missed=$((missed + 1)); continue ;;
    "did not build")
        echo "MUTANT DID NOT BUILD: $name"; cat "$tree/build.log"
        missed=$((missed + 1)); continue ;;
    esac
    (cd "$root" && SLMREC_TEST_FAIL_FAST=1 "$tree/test/test_gpu") > "$tree/run.log" 2>&1
    rc=$?
    if grep -q '^SKIP: no CUDA device' "$tree/run.log"; then
        echo "skipped: $name (no CUDA device here: the suite did not run)"
        skipped=$((skipped + 1))
    elif [ $rc -ne 0 ]; then
        echo "caught: $name ($(grep -m 1 'FAIL' "$tree/run.log"))"
        caught=$((caught + 1))
    else
        echo "MISSED: $name (the suite passed: $(tail -n 1 "$tree/run.log"))"
        missed=$((missed + 1))
    fi
done
echo "$caught caught, $missed missed, $skipped skipped"
[ $missed -eq 0 ]
