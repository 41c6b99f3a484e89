#!/usr/bin/env bash
# DPO against its peers on a lent GPU machine (no network there; not part of CI).
#
#   bash scripts/gpu_peers.sh prepare       # here: wheels into .whl/, SmolLM2's config and
#                                           # tokenizer (no weights) into .gpu-model/
#   bash scripts/gpu_peers.sh run OUT_DIR   # there, with .whl and .gpu-model carried
#
# Why a script: that machine's image has torch, transformers, peft and accelerate but not
# OpenRLHF, DeepSpeed, TRL and their pure-Python needs, which travel as wheels (about 25 MB).
# SmolLM2's weights (a 93 MB wheel) exceed what can travel, so the model goes as its config and
# tokenizer and dpo_peers gives it random bf16 weights: the same architecture and vocabulary,
# so the same step cost. The image sets TORCH_CUDA_ARCH_LIST=9.0a, which DeepSpeed's JIT op build
# cannot parse; 9.0 builds the same FusedAdam for the H200.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  prepare)
    mkdir -p .git/info .whl .gpu-model
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
    grep -qx '/.gpu-model/' .git/info/exclude 2>/dev/null || echo '/.gpu-model/' >>.git/info/exclude
    platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      "${platforms[@]}" -d .whl openrlhf==0.11.2 trl==1.16.0 datasets==5.2.0 dill==0.4.1 \
      multiprocess==0.70.19 torchdata==0.11.0 hjson==3.1.0 pydantic==2.14.4 pydantic_core==2.50.5 \
      annotated-types==0.8.0 typing-inspection==0.4.5 transformers==5.15.0 tokenizers==0.22.2 \
      peft==0.21.2 accelerate==1.16.0 omegaconf==2.3.0
    # sdist-only packages, built into pure-Python wheels here
    .venv/bin/python -m pip wheel -q --no-deps --no-build-isolation -w .whl deepspeed==0.19.6 pylatexenc==2.10 \
      antlr4-python3-runtime==4.9.3
    model=$(.venv/bin/python -c "from character.models.gguf import GgufSource, ensure_gguf_model; \
from benchmarks.dpo_peers import cache_dir; print(ensure_gguf_model(GgufSource(), 'bfloat16', cache_dir()))")
    find "$model" -maxdepth 1 -type f ! -name '*.safetensors' -exec cp {} .gpu-model/ \;
    du -sh .whl .gpu-model
    ;;
  run)
    out=${2:?usage: gpu_peers.sh run OUT_DIR}
    mkdir -p "$out"
    export PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0 CHARACTER_CACHE_DIR=/tmp/cache
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
    python3 benchmarks/dpo_peers.py --model .gpu-model --runs 1 --configs character,upstream,trl \
      --out "$out/peers512.json" 2>&1 | tee "$out/peers512.log" | grep -v Warning | tail -14
    python3 benchmarks/dpo_peers.py --model .gpu-model --max-len 1024 --longest --pairs 32 --steps 4 \
      --runs 1 --configs character,upstream,trl --out "$out/peers1024.json" 2>&1 \
      | tee "$out/peers1024.log" | grep -v Warning | tail -14
    ;;
  *)
    echo "usage: bash scripts/gpu_peers.sh prepare | run OUT_DIR" >&2
    exit 2
    ;;
esac
