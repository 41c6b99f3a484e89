"""bf16 only where the hardware computes it fast: the dtype choices, OpenRLHF taught fp32, and a
real fp32 DPO run on this CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from openrlhf_ext import precision
from openrlhf_ext.cli.train_sft import _pop_value
from tests.openrlhf_ext.conftest import torchrun, write_preferences
from tests.openrlhf_ext.test_training_runs import dpo_args


@pytest.mark.parametrize(
    ("on_cuda", "cpu_fast", "expected"),
    [(True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")],
)
def test_auto_is_bf16_only_where_it_is_fast(
    monkeypatch, on_cuda: bool, cpu_fast: bool, expected: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: on_cuda)
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: cpu_fast)
    assert precision.resolve_param_dtype("auto") == expected
    for explicit in ("bf16", "fp16", "fp32"):
        assert precision.resolve_param_dtype(explicit) == explicit


def test_an_unknown_param_dtype_is_named() -> None:
    with pytest.raises(ValueError, match=r"--ds.param_dtype='fp8': expected one of auto, bf16, fp16, fp32"):
        precision.resolve_param_dtype("fp8")


@pytest.mark.parametrize(("cpu_fast", "on_cpu", "expected"), [(False, True, "float32"), (True, True, "auto")])
def test_engines_read_auto_as_fp32_only_on_a_cpu_without_fast_bf16(
    monkeypatch, cpu_fast: bool, on_cpu: bool, expected: str
) -> None:
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: cpu_fast)
    assert precision.engine_dtype("auto", on_cpu) == expected
    assert precision.engine_dtype("auto", on_cpu=False) == "auto"  # CUDA: the checkpoint's own
    assert precision.engine_dtype("bfloat16", on_cpu) == "bfloat16"  # asked for explicitly


def test_the_check_agrees_with_onednn() -> None:
    assert precision.cpu_has_fast_bf16() == torch.ops.mkldnn._is_mkldnn_bf16_supported()


def test_openrlhf_learns_fp32_and_keeps_its_own_dtypes() -> None:
    from openrlhf.utils import utils

    precision.allow_fp32_params()
    precision.allow_fp32_params()  # idempotent: one wrapper, not two
    assert utils.convert_to_torch_dtype("fp32") is torch.float32
    assert utils.convert_to_torch_dtype("bf16") is torch.bfloat16
    assert utils.convert_to_torch_dtype("fp16") is torch.float16
    with pytest.raises(ValueError, match="Invalid param_dtype: fp8"):
        utils.convert_to_torch_dtype("fp8")


@pytest.mark.parametrize(
    ("args", "value", "rest"),
    [
        (["--a", "1", "--ds.param_dtype", "auto", "--b"], "auto", ["--a", "1", "--b"]),
        (["--ds.param_dtype=fp32", "--b"], "fp32", ["--b"]),
        (["--ds.param_dtype", "bf16", "--ds.param_dtype=fp32"], "fp32", []),  # the last one wins
        (["--b"], None, ["--b"]),
    ],
)
def test_sft_takes_the_dtype_flag_in_both_forms(args: list[str], value: str | None, rest: list[str]) -> None:
    assert _pop_value(args, "--ds.param_dtype") == value
    assert args == rest


def test_a_real_dpo_run_trains_in_fp32(tmp_path: Path, tiny_model: str) -> None:
    """Two optimizer steps through the CLI with ``--ds.param_dtype fp32``: the saved adapter's
    weights are fp32, the dtype it trained in."""
    data = write_preferences(tmp_path / "data", 16)
    args = dpo_args(tiny_model, data, tmp_path)
    run = torchrun("openrlhf_ext.cli.train_dpo", *args, "--ds.param_dtype", "fp32", log=tmp_path / "run.log")
    assert run.wait(timeout=600) == 0, (tmp_path / "run.log").read_text()[-3000:]
    with safe_open(tmp_path / "adapter" / "adapter_model.safetensors", framework="pt") as weights:
        dtypes = {weights.get_tensor(name).dtype for name in weights.keys()}
    assert dtypes == {torch.float32}
