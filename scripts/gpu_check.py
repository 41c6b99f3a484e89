"""A short check of the GPU path, for a machine with one CUDA device (not part of CI).

    python scripts/gpu_check.py OUT_DIR

1. builds the tiny model, and compares greedy generations of the transformers engine on CUDA with
   the same engine on CPU;
2. reports whether vLLM and flash-attn can be imported;
3. runs openrlhf_ext's DPO (ZeRO-2, LoRA, adapter-disabled reference, NLL + per-token KL) on CUDA
   through torchrun for 25 steps, with flash-attention if it is installed and sdpa otherwise,
   and prints the first and last logged losses.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(out: Path) -> None:
    import torch

    from character.engines.base import Sampling
    from character.engines.transformers_engine import TransformersEngine
    from character.models.tiny import TinySpec, ensure_tiny_model

    report: dict = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    report["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    model = str(ensure_tiny_model(TinySpec(), out / "cache"))
    conversations = [
        [{"role": "user", "content": f"Tell me about {topic}."}] for topic in ("tea", "rain", "cats")
    ]
    greedy = Sampling(temperature=0.0, max_tokens=24)
    on_gpu = [
        g.texts[0]
        for g in TransformersEngine(model, dtype="float32", device="cuda").generate(conversations, greedy)
    ]
    on_cpu = [
        g.texts[0]
        for g in TransformersEngine(model, dtype="float32", device="cpu").generate(conversations, greedy)
    ]
    report["transformers_engine_cuda_equals_cpu"] = on_gpu == on_cpu
    report["transformers_engine_cuda_texts"] = on_gpu
    for name in ("vllm", "flash_attn"):
        try:
            __import__(name)
            report[f"{name}_importable"] = True
        except Exception as error:  # noqa: BLE001 (any import failure is the finding)
            report[f"{name}_importable"] = f"{type(error).__name__}: {error}"[:200]

    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    with (data / "train.jsonl").open("w") as handle:
        for i in range(200):
            question = {"role": "user", "content": f"Tell me something about topic {i}."}
            handle.write(
                json.dumps(
                    {
                        "chosen": [
                            question,
                            {"role": "assistant", "content": "I love it, and I hope your day is kind."},
                        ],
                        "rejected": [question, {"role": "assistant", "content": "whatever no"}],
                    }
                )
                + "\n"
            )
    attn = "flash_attention_2" if report["flash_attn_importable"] is True else "sdpa"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "1",
        "-m",
        "openrlhf_ext.cli.train_dpo",
        "--model.model_name_or_path",
        model,
        "--data.dataset",
        str(data / "train.jsonl"),
        "--data.chosen_key",
        "chosen",
        "--data.rejected_key",
        "rejected",
        "--data.apply_chat_template",
        "--data.max_len",
        "128",
        "--train.batch_size",
        "8",
        "--train.micro_batch_size",
        "4",
        "--ds.zero_stage",
        "2",
        "--ds.param_dtype",
        "bf16",
        "--ds.attn_implementation",
        attn,
        "--ds.lora.rank",
        "8",
        "--ds.lora.alpha",
        "16",
        "--adam.lr",
        "5e-4",
        "--model.nll_loss_coef",
        "0.1",
        "--model.kl_coef",
        "0.01",
        "--ref.adapter_disabled",
        "--ckpt.output_dir",
        str(out / "adapter"),
        "--logger.metrics_file",
        str(out / "metrics.jsonl"),
    ]
    started = time.time()
    result = subprocess.run(command, capture_output=True, text=True)
    (out / "dpo.log").write_text(result.stdout + result.stderr)
    report["dpo_attn_implementation"] = attn
    report["dpo_returncode"] = result.returncode
    report["dpo_seconds"] = round(time.time() - started, 1)
    if (out / "metrics.jsonl").exists():
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        report["dpo_steps"] = len(rows)
        report["dpo_first"] = {k: rows[0][k] for k in ("loss", "dpo_loss", "nll_loss", "kl")}
        report["dpo_last"] = {k: rows[-1][k] for k in ("loss", "dpo_loss", "nll_loss", "kl", "acc")}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
