"""The one place where Hydra stage configs become OpenRLHF command-line flags.

OpenRLHF renames flags between minor versions (0.11 moved to dotted names); keeping the mapping
here means a version change touches this file only.

No ``--logger.wandb.*`` flags: OpenRLHF starts W&B only when ``--logger.wandb.key`` carries the API
key on the command line, and logs all of its arguments (the key included) as the run's config.
The trainers write every step to ``--logger.metrics_file`` instead, and the pipeline logs that
file into the job's own W&B run (character/tracking, docs/tracking.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _common(
    params: Any,
    *,
    model_path: str,
    dataset: Path,
    output_dir: Path,
    ckpt_dir: Path,
    target_modules: list[str],
    seed: int,
) -> list[str]:
    argv = [
        "--model.model_name_or_path",
        str(model_path),
        "--data.dataset",
        str(dataset),  # a .jsonl file
        "--data.apply_chat_template",
        "--data.max_len",
        str(params.max_len),
        "--train.batch_size",
        str(params.batch_size),
        "--train.micro_batch_size",
        str(params.micro_batch_size),
        "--train.max_epochs",
        str(params.epochs),
        "--train.seed",
        str(seed),
        "--adam.lr",
        str(params.learning_rate),
        "--adam.betas",
        *(str(beta) for beta in params.adam_betas),
        "--lr_warmup_ratio",
        str(params.warmup_ratio),
        "--min_lr_ratio",
        str(params.min_lr_ratio),
        "--lr_scheduler",
        "cosine_with_min_lr",
        "--max_norm",
        str(params.grad_clip),
        "--ds.param_dtype",
        str(params.param_dtype),
        "--ds.zero_stage",
        str(params.zero_stage),
        "--ds.lora.rank",
        str(params.lora.rank),
        "--ds.lora.alpha",
        str(params.lora.alpha),
        "--ds.lora.dropout",
        str(params.lora.dropout),
        "--ds.lora.target_modules",
        *target_modules,
        "--ckpt.output_dir",
        str(output_dir),
        "--ckpt.path",
        str(ckpt_dir),
        "--ckpt.save_steps",
        str(params.save_steps),
        "--ckpt.load_enable",  # resume from the last checkpoint when one exists
        "--ckpt.max_num",
        "2",
    ]
    if params.max_steps:
        argv += ["--data.max_samples", str(params.max_steps * params.batch_size)]
    if not params.response_only_logps:
        argv.append("--logps.full_vocab")
    return argv


def dpo_argv(
    params: Any,
    *,
    model_path: str,
    dataset: Path,
    output_dir: Path,
    ckpt_dir: Path,
    metrics_file: Path,
    target_modules: list[str],
    seed: int,
    eval_dataset: Path | None = None,
) -> list[str]:
    """Flags of ``openrlhf_ext.cli.train_dpo`` for a ``stages.dpo`` config."""
    argv = _common(
        params,
        model_path=model_path,
        dataset=dataset,
        output_dir=output_dir,
        ckpt_dir=ckpt_dir,
        target_modules=target_modules,
        seed=seed,
    )
    argv += [
        "--data.chosen_key",
        "chosen",
        "--data.rejected_key",
        "rejected",
        "--model.beta",
        str(params.beta),
        "--model.nll_loss_coef",
        str(params.nll_coef),
        "--model.kl_coef",
        str(params.kl_coef),
        "--model.kl_estimator",
        str(params.kl_estimator),
        "--model.label_smoothing",
        str(params.label_smoothing),
        "--logger.metrics_file",
        str(metrics_file),
    ]
    if params.length_normalize:
        argv.append("--model.length_normalize")
    if params.ipo:
        argv.append("--model.ipo_enable")
    if params.reference == "adapter_disabled":
        argv.append("--ref.adapter_disabled")
    elif params.reference != "separate":
        raise ValueError(f"stages.dpo.reference={params.reference!r}; expected adapter_disabled or separate")
    if not params.shared_prompt:
        argv.append("--logps.separate_prompts")
    if not params.precomputed_reference:
        argv.append("--ref.per_step")
    argv += ["--logps.max_pass_tokens", str(params.max_pass_tokens)]
    argv += ["--memory.release_freed_pages", str(params.release_freed_pages)]
    if eval_dataset is not None:
        argv += ["--eval.dataset", str(eval_dataset), "--eval.split", "train"]
    return argv


def sft_argv(
    params: Any,
    *,
    model_path: str,
    dataset: Path,
    output_dir: Path,
    ckpt_dir: Path,
    metrics_file: Path,
    target_modules: list[str],
    seed: int,
) -> list[str]:
    """Flags of ``openrlhf_ext.cli.train_sft`` for a ``stages.sft`` config: multi-turn chats with
    every assistant turn in the loss."""
    argv = _common(
        params,
        model_path=model_path,
        dataset=dataset,
        output_dir=output_dir,
        ckpt_dir=ckpt_dir,
        target_modules=target_modules,
        seed=seed,
    )
    return argv + [
        "--data.input_key",
        "messages",
        "--data.multiturn",
        "--logger.metrics_file",
        str(metrics_file),
    ]
