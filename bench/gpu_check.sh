#!/usr/bin/env bash
# `make gpu-check` on the GPU machine: install the carried wheels if DALI is missing (no registry there),
# then run the DALI GPU pipeline, GPU parity and GPU throughput (bench/gpu_check.py) and BYOL-A training
# steps with the real loader (bench/train_gpu.py), each writing JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! $PY -c "import nvidia.dali, soundfile, soxr, webdataset" 2>/dev/null; then
  mkdir -p /tmp/parts
  cp .whl/c?/* /tmp/parts/ 2>/dev/null || true
  name=$(ls /tmp/parts/*.part0 | head -1); name=$(basename "${name%.part0}")
  cat /tmp/parts/"$name".part0 /tmp/parts/"$name".part1 /tmp/parts/"$name".part2 /tmp/parts/"$name".part3 > "/tmp/$name"
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      "/tmp/$name" .whl/small/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
status=0
# BYOL-A training steps first (the DALI loader vs in-memory batches, a per-phase profile), then the front end's
# GPU parity and loader throughput
$PY bench/train_gpu.py || status=$?
if [ "${GPU_CHECK_PARTS:-all}" = all ]; then $PY bench/gpu_check.py || status=$?; fi  # GPU_CHECK_PARTS=train: steps only
exit $status
