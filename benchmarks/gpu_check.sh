#!/usr/bin/env bash
# The GPU check in one command, within ~8 minutes on one GPU: the `gpu` tests, then the CUDA
# benchmarks (eager first, then the compiled rows with whatever time is left). Writes, flat under
# $OUT (default: a new temporary folder):
#   gpu_check.log            everything printed, with the time of each stage
#   nvidia-smi.txt           the GPU, driver and CUDA version
#   pytest.xml               the tests' JUnit report (pass / fail / skip with reasons)
#   speed_cuda.{json,md}     benchmarks/gpu_speed.py, eager rows (device named inside)
#   speed_cuda_compiled.{json,md}   the compiled rows (torch.compile, CUDA graphs)
# Copy the speed_* files into benchmarks/results/ and run `python benchmarks/make_docs.py`.
#
# Packages the GPU image lacks come as wheels in .whl/ (git-ignored; `make gpu-wheels` downloads
# them) and are installed into /tmp/site first. Through the device tool (docs/gpu.md):
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=560)
#
#   bash benchmarks/gpu_check.sh [--dry-run]   # --dry-run (or no CUDA): tests skip, tiny CPU bench
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-470}   # the whole check; leaves the device tool's 10-minute limit a margin
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
START=$(date +%s)
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
left() { echo $((BUDGET_S - ($(date +%s) - START))); }
stage() { echo "=== [$(($(date +%s) - START)) s] $*"; }

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
stage "machine"
"$PYTHON" -c "import torch, lightning; print('torch', torch.__version__, '| lightning', lightning.__version__, '| cuda', torch.version.cuda, '| devices', torch.cuda.device_count())"
if [[ $DRY == 0 ]]; then nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1; head -15 "$OUT/nvidia-smi.txt"; fi

STATUS=0
stage "pytest -m gpu tests (limit $(( $(left) - 150 )) s)"
timeout $(( $(left) - 150 )) "$PYTHON" -m pytest -p no:cacheprovider -o addopts="-ra --strict-markers" \
  -m gpu tests --junitxml="$OUT/pytest.xml" --durations=0 -q || STATUS=1

BENCH=(benchmarks/gpu_speed.py --results "$OUT")
if [[ $DRY == 1 ]]; then BENCH+=(--dry-run --device cpu); fi
stage "benchmarks, eager (limit $(( $(left) - 20 )) s)"
timeout $(( $(left) - 20 )) "$PYTHON" "${BENCH[@]}" --compile none --sections raw latency ms_flip lightning || STATUS=1
if [[ $DRY == 0 && $(left) -gt 60 ]]; then
  stage "benchmarks, compiled (limit $(( $(left) - 5 )) s; what is measured by then is kept)"
  timeout $(( $(left) - 5 )) "$PYTHON" "${BENCH[@]}" --compile only --sections raw latency lightning || STATUS=1
fi
stage "done (status $STATUS); files in $OUT:"
ls -l "$OUT"
sleep 1  # let tee write the log's last lines before $OUT is collected
exit $STATUS
