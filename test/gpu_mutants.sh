#!/bin/sh
# gpu_mutants.sh: can `make test-gpu` fail? Each mutant below breaks one thing in a
# copy of the checkout (one sed edit of kernels.cu), builds test/test_gpu there and
# runs it; the mutant is caught when the suite fails. Exits 0 only when every mutant
# was caught. Run by `make test-gpu-mutants` (about a minute per mutant on an H100:
# each rebuilds kernels.cu). Where no CUDA device exists the suite says SKIP and
# this script says so too, and exits 0 without having shown anything.
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
caught=0 missed=0 skipped=0
tab=$(printf '\t')
IFS='
'
for line in $MUTANTS; do
    name=${line%%"$tab"*}
    expr=${line#*"$tab"}
    rm -rf "$work/tree" && mkdir -p "$work/tree"
    (cd "$root" && cp -r Makefile cuda.mk slmrec.c kernels.cu src test "$work/tree/") || exit 1
    rm -f "$work/tree/test/test_gpu" "$work/tree/kernels.o"
    sed "$expr" "$root/kernels.cu" > "$work/tree/kernels.cu"
    if cmp -s "$root/kernels.cu" "$work/tree/kernels.cu"; then
        echo "MUTANT NOT APPLIED: $name (its sed expression no longer matches kernels.cu)"
        missed=$((missed + 1))
        continue
    fi
    if ! make -s -C "$work/tree" test/test_gpu > "$work/build.log" 2>&1; then
        echo "MUTANT DID NOT BUILD: $name"; cat "$work/build.log"
        missed=$((missed + 1))
        continue
    fi
    (cd "$root" && "$work/tree/test/test_gpu") > "$work/run.log" 2>&1
    rc=$?
    if grep -q '^SKIP: no CUDA device' "$work/run.log"; then
        echo "skipped: $name (no CUDA device here: the suite did not run)"
        skipped=$((skipped + 1))
    elif [ $rc -ne 0 ]; then
        echo "caught: $name ($(grep -c 'FAIL' "$work/run.log") failing checks; $(tail -n 1 "$work/run.log"))"
        caught=$((caught + 1))
    else
        echo "MISSED: $name (the suite passed: $(tail -n 1 "$work/run.log"))"
        missed=$((missed + 1))
    fi
done
echo "$caught caught, $missed missed, $skipped skipped"
[ $missed -eq 0 ]
