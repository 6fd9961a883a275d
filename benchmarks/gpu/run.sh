#!/usr/bin/env bash
# The GPU path end to end on a machine with one GPU, in under 10 minutes:
#   1. the mission command (`mmhash bench --methods ujsah,cmfh --bits 16,32,64,128` on the
#      embedded set), device "auto" (the GPU);
#   2. one cell of every deep method on wiki (64 bits, seed 0), device "auto";
#   3. the same wiki cells with device "cpu" (same seeds);
#   4. benchmarks/gpu/compare.py: the devices the cells recorded (exit 1 if a GPU cell did not
#      run on the GPU), fit seconds GPU vs CPU, mAP and the share of code bits that differ.
# Each phase runs under its own time limit; a phase cut short loses only its cell in flight
# (the store keeps every finished cell) and the table shows what finished.
#
#   bash benchmarks/gpu/run.sh               # on the GPU machine
#   ALLOW_CPU=1 QUICK=1 bash benchmarks/gpu/run.sh   # dry run of the mechanics without a GPU
#
# Environment: OUT (default benchmarks/gpu/out; the store, the log and gpu-table.md go there),
# MMHASH_DATA (the wiki dataset; default ../shared/datasets), PYTHON (default .venv/bin/python
# when present, else python3), QUICK=1 (one epoch per deep fit), ALLOW_CPU=1 (go on without a
# GPU), PHASE_SECONDS="200 100 200" (the limits of phases 1-3).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-benchmarks/gpu/out}"
mkdir -p "$OUT"
export MMHASH_DATA="${MMHASH_DATA:-../shared/datasets}"
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
read -r LIMIT_MISSION LIMIT_GPU LIMIT_CPU <<< "${PHASE_SECONDS:-200 100 200}"
STORE="$OUT/gpu.sqlite"
rm -f "$STORE" "$STORE-wal" "$STORE-shm"
LOG="$OUT/run.log"
: > "$LOG"
say() { echo "$*" | tee -a "$LOG"; }

# Install. With the package index reachable, the README's first command (its bench is phase 1).
# A GPU image without network that already holds torch and the scientific stack: the two
# distributions alone, with no dependencies and no build isolation (nothing to download).
if ! "$PYTHON" -c "import mmhash, mmhash_baselines" 2>/dev/null; then
    if "$PYTHON" -m pip download -q --no-deps -d "$OUT/.probe" tabulate >/dev/null 2>&1; then
        python3 -m venv .venv && .venv/bin/pip install -q -e ".[all,dev]" -e "./baselines[deep]"
        PYTHON=.venv/bin/python
    else
        "$PYTHON" -m pip install -q --no-deps --no-build-isolation -e . -e ./baselines \
            >> "$LOG" 2>&1 || { say "install failed (see $LOG)"; exit 2; }
    fi
fi
"$PYTHON" - <<'PY' 2>&1 | tee -a "$LOG"
import torch, mmhash
print(f"mmhash {mmhash.__version__}, torch {torch.__version__}, cuda available: "
      f"{torch.cuda.is_available()}"
      + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
PY
if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    if [ "${ALLOW_CPU:-0}" != "1" ]; then say "no GPU visible to torch: stop (ALLOW_CPU=1 goes on)"; exit 2; fi
    say "no GPU: a dry run on the CPU (ALLOW_CPU=1)"
fi

DEEP="ujsah,umha,djsrh,jdsh,dgcpn,ucch,cirh,duch,agch,udcmh,dbrc,mgah,ucmfh,ccah,daeh"
QUICK_PARAMS=()
if [ "${QUICK:-0}" = "1" ]; then
    for m in ${DEEP//,/ }; do QUICK_PARAMS+=(--param "$m.n_epochs=1"); done
    QUICK_PARAMS+=(--param mgah.pretrain_epochs=1)  # at most n_epochs
    LIMIT_GPU=$((LIMIT_GPU * 3))
fi
phase() {  # phase NAME LIMIT ARGS...: one bench under a time limit, its seconds logged
    local name=$1 limit=$2 start rc
    shift 2
    start=$(date +%s)
    timeout "$limit" "$PYTHON" -m mmhash.cli bench --store "$STORE" "$@" >> "$LOG" 2>&1
    rc=$?
    say "phase $name: $(( $(date +%s) - start )) s, exit $rc$( [ $rc = 124 ] && echo ' (time limit: the table shows what finished)')"
}

phase mission "$LIMIT_MISSION" --methods ujsah,cmfh --bits 16,32,64,128 \
    $( [ "${QUICK:-0}" = "1" ] && echo --param ujsah.n_epochs=1 )
phase wiki-gpu "$LIMIT_GPU" --dataset wiki --methods "$DEEP" --bits 64 --seeds 0 \
    --param ucmfh.n_heads=2 "${QUICK_PARAMS[@]}"
CPU_PARAMS=()
for m in ${DEEP//,/ }; do CPU_PARAMS+=(--param "$m.device=cpu"); done
phase wiki-cpu "$LIMIT_CPU" --dataset wiki --methods "$DEEP" --bits 64 --seeds 0 \
    --param ucmfh.n_heads=2 "${QUICK_PARAMS[@]}" "${CPU_PARAMS[@]}"

REQUIRE=--require-gpu
[ "${ALLOW_CPU:-0}" = "1" ] && REQUIRE=""
"$PYTHON" benchmarks/gpu/compare.py "$STORE" $REQUIRE > "$OUT/gpu-table.md"
rc=$?
cat "$OUT/gpu-table.md"
say "table: $OUT/gpu-table.md (exit $rc)"
exit $rc
