#!/usr/bin/env bash
# Prepare, on a machine with a package registry, the wheels `make gpu-check` installs on a GPU machine that
# has none (Python 3.12 image with torch/torchaudio but no DALI, soundfile, soxr). The DALI wheel (~190 MB)
# is larger than one device call may carry (64 MiB), so it is split into .whl/c1..c4 (carry one per call;
# each call copies its part to /tmp/parts) and the small wheels go to .whl/small.
set -euo pipefail
cd "$(dirname "$0")/.."
dl="python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64"
# Versions come from uv.lock, like every other install of the project.
locked() { python3 -c 'import sys, tomllib; v = {p["name"]: p["version"] for p in tomllib.load(open("uv.lock", "rb"))["package"] if "version" in p}; print(" ".join(f"{n}=={v[n]}" for n in sys.argv[1:]))' "$@"; }
mkdir -p .whl/full .whl/small
$dl -d .whl/full $(locked nvidia-dali-cuda130)
$dl -d .whl/small $(locked soundfile soxr astunparse gast optree nvtx makefun libcst webdataset braceexpand)
wheel=$(ls .whl/full/nvidia_dali_cuda130-*.whl)
rm -rf .whl/c? && split -n 4 -d -a 1 "$wheel" .whl/part-
for i in 0 1 2 3; do mkdir -p ".whl/c$((i + 1))" && mv ".whl/part-$i" ".whl/c$((i + 1))/$(basename "$wheel").part$i"; done
ls -la .whl/*
