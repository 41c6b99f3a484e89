"""DPO step cost of the extra loss terms and of the adapter-disabled reference, side by side.

    python benchmarks/dpo.py [--hidden 1024 --layers 8 --steps 5]

Three configurations run on the same model and batches, each in a fresh process (so peak memory
is its own): plain DPO (nll_coef = kl_coef = 0), DPO + NLL + per-token KL, and DPO + NLL + KL
with a separate reference model instead of the adapter-disabled one. The step is our trainer's
(``CharacterDPOTrainer.compute_terms`` on OpenRLHF Actors, backward, AdamW on the LoRA weights)
without the DeepSpeed engine around it. Memory is the peak RSS growth after imports, i.e. what the
models, activations and optimizer take. Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CONFIGS = {
    "plain DPO (adapter-disabled ref)": {"nll": 0.0, "kl": 0.0, "reference": "adapter_disabled"},
    "DPO+NLL+KL (adapter-disabled ref)": {"nll": 0.1, "kl": 0.001, "reference": "adapter_disabled"},
    "DPO+NLL+KL (separate ref model)": {"nll": 0.1, "kl": 0.001, "reference": "separate"},
}


def build_model(folder: Path, hidden: int, layers: int) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from character.models.tiny import TinySpec, ensure_tiny_model

    tokenizer_dir = ensure_tiny_model(TinySpec(), Path(tempfile.gettempdir()) / "character-bench-cache")
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=2048,
        hidden_size=hidden,
        intermediate_size=hidden * 3,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        num_key_value_heads=hidden // 64,
        tie_word_embeddings=True,
    )
    Qwen2ForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)


def worker(model: str, config: dict, steps: int, batch: int, length: int) -> dict:
    import resource
    import types

    import torch

    from openrlhf_ext.cpu_runtime import activate_if_no_cuda

    activate_if_no_cuda()
    from openrlhf.models import Actor
    from transformers import AutoTokenizer

    from openrlhf_ext.loss import CharacterDPOLoss
    from openrlhf_ext.reference import AdapterDisabledReference
    from openrlhf_ext.trainer import CharacterDPOTrainer

    torch.set_num_threads(2)
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    policy = Actor(
        model,
        attn_implementation="sdpa",
        param_dtype="bf16",
        lora_rank=16,
        lora_alpha=32,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )
    if config["reference"] == "separate":
        reference = Actor(model, attn_implementation="sdpa", param_dtype="bf16")
        reference.eval()
    else:
        reference = AdapterDisabledReference(policy)
    trainer = CharacterDPOTrainer.__new__(CharacterDPOTrainer)
    trainer.tokenizer = AutoTokenizer.from_pretrained(model)
    trainer.strategy = types.SimpleNamespace(ring_attn_group=None)
    trainer.model, trainer.ref_model = policy, reference
    trainer.character_loss = CharacterDPOLoss(beta=0.1, nll_coef=config["nll"], kl_coef=config["kl"])
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-4)
    generator = torch.Generator().manual_seed(0)

    def batch_data():
        ids = [torch.randint(3, 2000, (batch, 1, length), generator=generator) for _ in range(2)]
        masks = [torch.ones(batch, 1, length, dtype=torch.long) for _ in range(2)]
        return ids[0], masks[0], ids[1], masks[1], [length // 4] * batch

    times = []
    for step in range(steps + 2):
        data = batch_data()
        started = time.perf_counter()
        terms = trainer.compute_terms(data)
        terms.total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= 2:
            times.append(time.perf_counter() - started)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"step_s": statistics.median(times), "memory_mb": (peak_kb - baseline_kb) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        model, name = args.worker.split("::")
        print(json.dumps(worker(model, CONFIGS[name], args.steps, args.batch, args.length)))
        return
    with tempfile.TemporaryDirectory() as folder:
        build_model(Path(folder), args.hidden, args.layers)
        results = {}
        for name in CONFIGS:
            output = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    f"{folder}::{name}",
                    "--steps",
                    str(args.steps),
                    "--batch",
                    str(args.batch),
                    "--length",
                    str(args.length),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            results[name] = json.loads(output.strip().splitlines()[-1])
    names = list(CONFIGS)
    print(
        f"\nmodel: hidden {args.hidden}, {args.layers} layers (bf16), LoRA r16 on all linear layers; "
        f"batch {args.batch} pairs x {args.length} tokens; median of {args.steps} steps"
    )
    print(f"{'configuration':<36}{'step (s)':>10}{'memory (MB)':>14}")
    for name in names:
        print(f"{name:<36}{results[name]['step_s']:>10.3f}{results[name]['memory_mb']:>14.0f}")
    plain, full, separate = (results[n] for n in names)
    print(
        f"DPO+NLL+KL / plain DPO:            time {full['step_s'] / plain['step_s']:.3f}x (target <= 1.05), "
        f"memory {full['memory_mb'] / plain['memory_mb']:.3f}x (target <= 1.02)"
    )
    print(
        f"adapter-disabled / separate ref:   memory {full['memory_mb'] / separate['memory_mb']:.3f}x "
        f"(target <= 0.6), time {full['step_s'] / separate['step_s']:.3f}x"
    )


if __name__ == "__main__":
    main()
