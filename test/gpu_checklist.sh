#!/bin/sh
# gpu_checklist.sh: the GPU checklist of docs/gpu.md in one call of a lent GPU machine.
#
#   sh test/gpu_checklist.sh [STAGES]     STAGES: comma separated, default build,test,bench,mutants
#
# The stages' limits add up to more than one device call may run (600 s): call it twice,
# `build,test,bench` and then `mutants`, each with timeout_s 600.
#
# Before the call, here: `sh test/gpu_checklist.sh --carry` copies what the device needs
# from ../shared (the oracle fixture, the PyTorch peer) into gpu_carry/, which git ignores
# and the device tool takes with `carry: ["gpu_carry"]`. Each stage writes its whole output
# to $OUT/<stage>.txt ($OUT is the device tool's folder; runs/gpu_checklist elsewhere) and
# prints its last lines, and runs under a time limit, so that one stage that hangs leaves
# the others' results. Stages:
#   build    make clean && make (the CUDA path included), the GPU seen by nvidia-smi
#   test     SLMREC_CUDA_SYNC=1 make test-gpu (every kernel against its CPU twin, the oracle)
#   bench    ./slmrec bench --config all, beside the PyTorch peer's speed run when python3
#            has torch and transformers here (then bench --peer gives the ratios)
#   mutants  make test-gpu-mutants (can the suite fail?)
set -u
carry=gpu_carry
if [ "${1:-}" = "--carry" ]; then
    mkdir -p "$carry" && cp ../shared/fixtures/slmrec_oracle.safetensors ../shared/peers/peer_e4srec.py ../shared/peers/common.py "$carry/" &&
        echo "copied into $carry/: $(ls "$carry" | tr '\n' ' ')"
    exit $?
fi
stages=${1:-build,test,bench,mutants}
out=${OUT:-runs/gpu_checklist}
mkdir -p "$out" && out=$(cd "$out" && pwd)
failed=0
# stage NAME SECONDS COMMAND...: runs it under the limit into $out/NAME.txt, its tail printed
stage() {
    name=$1 limit=$2
    shift 2
    case ",$stages," in *",$name,"*) ;; *) return 0 ;; esac
    t0=$(date +%s)
    timeout "$limit" sh -c "$*" > "$out/$name.txt" 2>&1
    rc=$?
    echo "== $name: rc $rc in $(( $(date +%s) - t0 )) s (limit $limit s; all of it in $out/$name.txt)"
    tail -n 15 "$out/$name.txt"
    [ $rc -eq 0 ] || failed=1
}
fixture=$carry/slmrec_oracle.safetensors
[ -f "$fixture" ] || fixture=../shared/fixtures/slmrec_oracle.safetensors
stage build 240 "nvidia-smi -L; make clean && make && make test/test_gpu"
stage test 240 "SLMREC_CUDA_SYNC=1 SLMREC_ORACLE_FIXTURE=$fixture make test-gpu"
# the peer first (its JSON then gives bench its ratios); without torch and transformers, bench alone
stage bench 360 "if python3 -c 'import torch, transformers' 2>/dev/null; then (cd $carry && timeout 180 python3 peer_e4srec.py speed $out/peer_speed.json);
    else echo 'the PyTorch peer cannot run here (python3 lacks torch or transformers): bench without ratios'; fi;
    if [ -f $out/peer_speed.json ]; then ./slmrec bench --device cuda --config all --peer $out/peer_speed.json --out $out/bench;
    else ./slmrec bench --device cuda --config all --out $out/bench; fi"
stage mutants 420 "make test-gpu-mutants"
exit $failed
