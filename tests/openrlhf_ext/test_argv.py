"""Hydra stage configs become flags our CLIs accept, the fast-path switches included."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from character.config.schema import DpoStageConfig, SftStageConfig
from openrlhf_ext.argv import dpo_argv, sft_argv
from openrlhf_ext.cpu_runtime import provide_flash_attn_helpers

provide_flash_attn_helpers()  # upstream's parser imports OpenRLHF, which wants flash-attn's helpers


def _dpo(**overrides) -> list[str]:
    params = OmegaConf.merge(OmegaConf.structured(DpoStageConfig), overrides)
    return dpo_argv(
        params,
        model_path="m",
        dataset=Path("d.jsonl"),
        output_dir=Path("o"),
        ckpt_dir=Path("c"),
        metrics_file=Path("x.jsonl"),
        target_modules=["q_proj"],
        seed=3,
    )


def test_fast_path_is_the_default_and_each_part_has_a_switch() -> None:
    from openrlhf_ext.cli.train_dpo import parse_args

    default = _dpo()
    assert not {"--logps.full_vocab", "--logps.separate_prompts", "--ref.per_step"} & set(default)
    legacy = _dpo(response_only_logps=False, shared_prompt=False, precomputed_reference=False)
    assert {"--logps.full_vocab", "--logps.separate_prompts", "--ref.per_step"} <= set(legacy)
    args = parse_args(legacy)
    assert args.logps.full_vocab and args.logps.separate_prompts and args.ref.per_step
    assert parse_args(default).model.kl_coef == DpoStageConfig().kl_coef
    assert parse_args(default).logps.max_pass_tokens == DpoStageConfig().max_pass_tokens
    assert parse_args(_dpo(max_pass_tokens=0)).logps.max_pass_tokens == 0
    assert parse_args(default).memory.release_freed_pages == DpoStageConfig().release_freed_pages == "pass"
    assert parse_args(_dpo(release_freed_pages="step")).memory.release_freed_pages == "step"


def test_sft_switch() -> None:
    # max_len defaults to ${model.max_context}, which a lone stage config cannot resolve
    params = OmegaConf.merge(
        OmegaConf.structured(SftStageConfig), {"response_only_logps": False, "max_len": 3072}
    )
    argv = sft_argv(
        params,
        model_path="m",
        dataset=Path("d.jsonl"),
        output_dir=Path("o"),
        ckpt_dir=Path("c"),
        metrics_file=Path("x.jsonl"),
        target_modules=["q_proj"],
        seed=3,
    )
    assert "--logps.full_vocab" in argv
