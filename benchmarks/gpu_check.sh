#!/usr/bin/env bash
# The GPU check in one command, within 8 minutes of one H100 / H200, the wheel install included.
# Sections in the order of importance, each under its own time limit (never past BUDGET_S), each
# writing its results files as soon as it has a row, so a check cut short keeps every figure it
# measured before the cut (benchmarks/gpu_speed.py):
#   1. lightning   CFNet-R50 training img/s through python -m cfnet.train, 512², bf16, batch 16, 2
#   2. quickstart  the wall time of python -m cfnet.train with no argument (make train)
#   3. latency     predict's batch-1 latency, CFNet-R50 vs torchvision's DeepLabV3-R50, eager and
#                  with CUDA graphs
#   4. ms_flip     ms_flip windows one at a time vs batched, eager and compiled
#   5. tests       the `gpu` tests (pytest -m gpu)
#   6. compiled    if time is left: the batch-16 training run with module.compile=true
# Writes, flat under $OUT (default: a new temporary folder):
#   gpu_check.log                  everything printed, with the time of each stage
#   nvidia-smi.txt                 the GPU, driver and CUDA version
#   speed_cuda_<section>.{json,md} one pair per benchmark section (the GPU named in its record)
#   pytest.xml                     the tests' JUnit report (pass / fail / skip with reasons)
# Copy the speed_* files into benchmarks/results/ and run `python benchmarks/make_docs.py`.
#
# Packages the GPU image lacks come as wheels in .whl/ (git-ignored; `make gpu-wheels` downloads
# them) and are installed into /tmp/site first. Through the device tool (docs/gpu.md):
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=480)
# A second try can skip what the first one measured: SECTIONS="latency ms_flip tests" bash ...
#
#   bash benchmarks/gpu_check.sh [--dry-run]   # --dry-run (or no CUDA): tests skip, tiny CPU runs
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SECTIONS=${SECTIONS:-lightning quickstart latency ms_flip tests compiled}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
START=$(date +%s)
BUDGET_S=${BUDGET_S:-450}   # the whole check; the device call's limit (480 s) leaves a margin
SLOWER=1                    # the dry run: limits × 4 (a shared 2-core CPU starts Python slowly)
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
left() { echo $((BUDGET_S * SLOWER - ($(date +%s) - START))); }
stage() { echo "=== [$(($(date +%s) - START)) s] $*"; }
STATUS=0

# section <name> <limit s> <command...>: run when named in SECTIONS, for at most <limit> s and
# never past the budget; SIGINT first (pytest then still writes its report), SIGKILL 10 s later.
section() {
  local name=$1 limit=$2
  shift 2
  [[ " $SECTIONS " == *" $name "* ]] || return 0
  local budget=$(($(left) - 5))
  limit=$((limit * SLOWER))
  ((limit > budget)) && limit=$budget
  if ((limit < 15)); then
    stage "$name: skipped, $(left) s of the budget left"
    STATUS=1
    return 0
  fi
  stage "$name (limit $limit s)"
  timeout -s INT -k 10 "$limit" "$@"
  local code=$?
  ((code == 0)) || { stage "$name: status $code (124: cut off at its limit)"; STATUS=1; }
}

export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
NEEDED="import hydra, omegaconf, albumentations, lightning, timm, torchmetrics, pytest"
if ! "$PYTHON" -c "$NEEDED" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  stage "installing $(ls .whl/*.whl | wc -l) carried wheels into /tmp/site"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || { echo "wheel install failed"; exit 3; }
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" -c "$NEEDED, cfnet" ||
  { echo "missing packages: run 'make gpu-wheels' here and carry .whl"; exit 3; }

if ! "$PYTHON" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  [[ $DRY == 1 ]] || echo "no CUDA device: running the dry run"
  DRY=1
fi
[[ $DRY == 1 ]] && SLOWER=4
stage "machine"
"$PYTHON" -c "import torch, lightning; print('torch', torch.__version__, '| lightning', lightning.__version__, '| cuda', torch.version.cuda, '| devices', torch.cuda.device_count())"
if [[ $DRY == 0 ]]; then nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1; head -15 "$OUT/nvidia-smi.txt"; fi

BENCH=("$PYTHON" benchmarks/gpu_speed.py --results "$OUT")
COMPILE=(--compile add)
if [[ $DRY == 1 ]]; then BENCH+=(--dry-run --device cpu); COMPILE=(); fi  # CPU compiles take minutes
section lightning 110 "${BENCH[@]}" --sections lightning
section quickstart 80 "${BENCH[@]}" --sections quickstart
section latency 100 "${BENCH[@]}" --sections latency "${COMPILE[@]}"
section ms_flip 60 "${BENCH[@]}" --sections ms_flip --reps 3 "${COMPILE[@]}"
section tests 600 "$PYTHON" -m pytest -p no:cacheprovider -o addopts="-ra --strict-markers" \
  -m gpu tests --junitxml="$OUT/pytest.xml" --durations=0 -q
if [[ $DRY == 0 && $(left) -gt 150 ]]; then
  section compiled 600 "${BENCH[@]}" --sections lightning --compile only
fi
stage "done (status $STATUS); files in $OUT:"
ls -l "$OUT"
sleep 1  # let tee write the log's last lines before $OUT is collected
exit $STATUS
