#!/usr/bin/env bash
# Download, here, the wheels that benchmarks/gpu_check.sh installs on the GPU machine: the packages
# cfnet needs that its image lacks (it has torch, lightning, timm, torchmetrics, Python 3.12 and
# no network). Pinned to the versions the CPU tests run with. Writes .whl/ (git-ignored).
#   bash benchmarks/gpu_wheels.sh        # or: make gpu-wheels
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DEST=.whl
mkdir -p "$DEST"
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64 manylinux_2_24_x86_64 manylinux_2_34_x86_64; do
  PLATFORMS+=(--platform "$p")
done
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d "$DEST" \
  hydra-core==1.3.8 omegaconf==2.3.1 albumentations==2.0.8 albucore==0.0.24 \
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
  typing-extensions==4.16.0 simsimd==6.5.16 stringzilla==5.3.2 \
  pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 pygments==2.21.0  # the image may lack pytest
# antlr4-python3-runtime (omegaconf's parser) is published as a source archive only: build its
# pure-Python wheel (py3-none-any) here.
"$PYTHON" -m pip wheel -q --no-deps -w "$DEST" antlr4-python3-runtime==4.9.3
ls -1 "$DEST"
du -sh "$DEST"
