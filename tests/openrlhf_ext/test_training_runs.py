"""Real OpenRLHF + DeepSpeed runs on the tiny model, on this CPU: DPO (ZeRO-2, LoRA) with
checkpoint resume, and multi-turn SFT."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from character.io import read_jsonl
from tests.openrlhf_ext.conftest import kill_group, torchrun, write_preferences


def dpo_args(tiny_model: str, data: Path, out: Path) -> list[str]:
    return [
        "--model.model_name_or_path",
        tiny_model,
        "--data.dataset",
        f"json@{data}",
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
        "--train.max_epochs",
        "1",
        "--ds.zero_stage",
        "2",
        "--ds.lora.rank",
        "8",
        "--ds.lora.alpha",
        "16",
        "--ds.lora.target_modules",
        "q_proj",
        "v_proj",
        "--adam.lr",
        "5e-4",
        "--model.beta",
        "0.1",
        "--model.nll_loss_coef",
        "0.1",
        "--model.kl_coef",
        "0.01",
        "--ref.adapter_disabled",
        "--ckpt.output_dir",
        str(out / "adapter"),
        "--ckpt.path",
        str(out / "ckpt"),
        "--ckpt.save_steps",
        "10",
        "--logger.metrics_file",
        str(out / "metrics.jsonl"),
    ]


def test_dpo_trains_logs_every_term_and_resumes_after_interruption(tmp_path: Path, tiny_model: str) -> None:
    data = write_preferences(tmp_path / "data", 480)  # 60 optimizer steps of 8 pairs
    args = dpo_args(tiny_model, data, tmp_path)
    metrics = tmp_path / "metrics.jsonl"
    first = torchrun("openrlhf_ext.cli.train_dpo", *args, log=tmp_path / "first.log")
    deadline = time.time() + 600
    latest = tmp_path / "ckpt" / "latest"
    # Interrupt once a checkpoint exists and training has moved past it.
    while time.time() < deadline and first.poll() is None:
        if latest.exists() and metrics.exists() and len(metrics.read_text().splitlines()) >= 22:
            kill_group(first)
            break
        time.sleep(0.02)
    first.wait()
    assert first.returncode != 0, "the run finished before it could be interrupted"
    steps_before = [row["global_step"] for row in read_jsonl(metrics)]
    checkpoint_step = int(latest.read_text().strip().removeprefix("global_step"))
    assert checkpoint_step >= 10 and max(steps_before) > checkpoint_step

    second = torchrun("openrlhf_ext.cli.train_dpo", *args, "--ckpt.load_enable", log=tmp_path / "second.log")
    assert second.wait(timeout=900) == 0, (tmp_path / "second.log").read_text()[-3000:]
    log = (tmp_path / "second.log").read_text()
    assert f"consumed_samples={checkpoint_step * 8}" in log
    # the reference log-probs were computed once, before training, and the resumed run reuses them
    assert "reference log-probs (train): reused" in log
    assert (tmp_path / "ckpt" / "reference_logps-train.pt").exists()
    rows = read_jsonl(metrics)
    resumed = [row["global_step"] for row in rows[len(steps_before) :]]
    assert resumed == list(range(checkpoint_step + 1, 61))  # continues, does not start over

    final = {row["global_step"]: row for row in rows}  # the resumed run's values win
    series = [final[step] for step in range(1, 61)]
    for key in ("loss", "dpo_loss", "nll_loss", "kl", "reward_margin", "acc", "lr", "grad_norm"):
        assert all(key in row for row in series)
    assert series[0]["dpo_loss"] == math.log(2) or abs(series[0]["dpo_loss"] - math.log(2)) < 1e-4
    first_five = sum(r["loss"] for r in series[:5]) / 5
    last_five = sum(r["loss"] for r in series[-5:]) / 5
    assert last_five < first_five - 0.05  # the loss falls
    assert series[-1]["kl"] > 0 and series[-1]["acc"] == 1.0

    adapter = tmp_path / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 8 and set(config["target_modules"]) == {"q_proj", "v_proj"}
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), adapter)  # PEFT format


def test_deepspeed_launcher_path(tmp_path: Path, tiny_model: str) -> None:
    import subprocess

    from openrlhf_ext.launch import launch_command
    from tests.conftest import REPO

    data = write_preferences(tmp_path / "data", 16)
    args = dpo_args(tiny_model, data, tmp_path)
    command = launch_command("openrlhf_ext.cli.train_dpo", args, launcher="deepspeed")
    assert command[1:5] == ["-m", "deepspeed.launcher.runner", "--num_gpus", "1"]  # one process on a CPU
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert [row["global_step"] for row in read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2]


# The flags that choose the objective; a user running the CLI by hand may leave them all out.
LOSS_FLAGS_WITH_VALUE = {
    "--model.beta",
    "--model.nll_loss_coef",
    "--model.kl_coef",
    "--model.kl_estimator",
    "--model.label_smoothing",
}
LOSS_SWITCHES = {"--model.length_normalize", "--model.ipo_enable"}


def without_loss_flags(argv: list[str]) -> list[str]:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in LOSS_FLAGS_WITH_VALUE:
            skip = True
        elif arg not in LOSS_SWITCHES:
            kept.append(arg)
    return kept


def test_the_cli_without_loss_flags_trains_the_pipelines_objective(tmp_path: Path, tiny_model: str) -> None:
    """The DPO stage's flags (``dpo_argv`` of a default ``stages.dpo``) against the same command
    with every loss flag left out: two real runs whose logged terms agree at every step. The
    second step's loss contains the KL term, so a CLI default differing from the pipeline's
    (beta, NLL or KL weight, estimator) would show."""
    from omegaconf import OmegaConf

    from character.config.schema import DpoStageConfig
    from openrlhf_ext.argv import dpo_argv

    data = write_preferences(tmp_path / "data", 16) / "train.jsonl"  # 2 steps of 8 pairs
    params = OmegaConf.merge(
        OmegaConf.structured(DpoStageConfig),
        {
            "max_len": 128,
            "batch_size": 8,
            "micro_batch_size": 4,
            "learning_rate": 5e-4,
            "warmup_ratio": 0.0,  # the first step updates, so the second has a KL to weigh
            "lora": {"rank": 8},
        },
    )
    rows = {}
    for name in ("pipeline", "by_hand"):
        out = tmp_path / name
        argv = dpo_argv(
            params,
            model_path=tiny_model,
            dataset=data,
            output_dir=out / "adapter",
            ckpt_dir=out / "ckpt",
            metrics_file=out / "metrics.jsonl",
            target_modules=["q_proj", "v_proj"],
            seed=0,
        )
        if name == "by_hand":
            argv = without_loss_flags(argv)
            assert not (LOSS_FLAGS_WITH_VALUE | LOSS_SWITCHES) & set(argv)
        run = torchrun("openrlhf_ext.cli.train_dpo", *argv, log=tmp_path / f"{name}.log")
        assert run.wait(timeout=600) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
        rows[name] = read_jsonl(out / "metrics.jsonl")
    pipeline, by_hand = rows["pipeline"], rows["by_hand"]
    assert [r["global_step"] for r in pipeline] == [r["global_step"] for r in by_hand] == [1, 2]
    assert pipeline[1]["kl"] > 0  # the KL weight enters the second step's loss
    for ours, theirs in zip(by_hand, pipeline, strict=True):
        for key in ("loss", "dpo_loss", "nll_loss", "kl"):
            assert ours[key] == theirs[key], (key, ours, theirs)
