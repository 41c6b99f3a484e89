"""A micro-batch run in token-bounded passes gives the whole micro-batch's loss and gradients:
in fp32 on the math (1e-5), and through a real DeepSpeed ZeRO-2 run, where several backward
calls before one step must accumulate."""

from __future__ import annotations

import math
import types
from pathlib import Path

import pytest
import torch

from character.io import read_jsonl
from openrlhf_ext.micro_passes import pair_tokens, plan_passes, slice_batch
from openrlhf_ext.pair_scoring import Scoring
from tests.openrlhf_ext.conftest import torchrun, write_preferences
from tests.openrlhf_ext.test_fast_path import fp32_setup, lora_grads, trainer_for  # noqa: F401
from tests.openrlhf_ext.test_training_runs import dpo_args


@pytest.mark.parametrize(
    ("tokens", "budget", "passes"),
    [
        ([10, 20, 30], 0, [(0, 3)]),  # no limit
        ([10, 20, 30], 60, [(0, 3)]),  # fits exactly
        ([10, 20, 30], 30, [(0, 2), (2, 3)]),
        ([10, 20, 30], 25, [(0, 1), (1, 2), (2, 3)]),
        ([50, 5, 5], 20, [(0, 1), (1, 3)]),  # a pair over the budget is a pass of its own
        ([5], 1, [(0, 1)]),
    ],
)
def test_passes_are_consecutive_pairs_within_the_budget(tokens, budget, passes) -> None:
    assert plan_passes(tokens, budget) == passes


def test_pair_tokens_count_chosen_and_rejected_without_padding() -> None:
    mask_c = torch.tensor([[[1, 1, 1, 0]], [[1, 1, 1, 1]]])
    mask_r = torch.tensor([[[1, 1, 0, 0]], [[1, 0, 0, 0]]])
    batch = (None, mask_c, None, mask_r, [1, 1])
    assert pair_tokens(batch) == [5, 5]
    assert [len(x) for x in slice_batch((mask_c, mask_c, mask_r, mask_r, [7, 8]), 1, 2)] == [1, 1, 1, 1, 1]


def passes_trainer(policy, reference, tokenizer, max_pass_tokens: int):
    trainer = trainer_for(policy, reference, tokenizer, Scoring())
    backward_calls = []

    def backward(loss, _model, _optimizer):
        backward_calls.append(loss.item())
        loss.backward()

    trainer.strategy = types.SimpleNamespace(ring_attn_group=None, backward=backward)
    trainer.optimizer = None
    trainer.reference_logps = None
    trainer.max_pass_tokens = max_pass_tokens
    trainer.release_freed_pages = "pass"  # handing memory back after each pass changes no value
    return trainer, backward_calls


@pytest.mark.parametrize("budget_pairs", [1, 2])
def test_passes_give_the_whole_batchs_terms_and_gradients_in_fp32(fp32_setup, budget_pairs: int) -> None:  # noqa: F811
    policy, reference, tokenizer, data = fp32_setup
    tokens = pair_tokens(data)
    assert len(tokens) == 3
    results = {}
    for name, budget in (("whole", 0), ("passes", max(tokens[:budget_pairs]) * budget_pairs)):
        policy.model.zero_grad(set_to_none=True)
        trainer, calls = passes_trainer(policy, reference, tokenizer, budget)
        terms = trainer.forward_backward(data)
        results[name] = (terms, lora_grads(policy), calls)
    whole, whole_grads, whole_calls = results["whole"]
    split, split_grads, split_calls = results["passes"]
    assert (
        len(whole_calls) == 1
        and len(split_calls) == len(plan_passes(tokens, max(tokens[:budget_pairs]) * budget_pairs)) > 1
    )
    # the weighted pass losses add up to the whole batch's loss
    assert sum(split_calls) == pytest.approx(whole_calls[0], rel=1e-5)
    for term in ("total", "dpo", "nll", "kl"):
        assert getattr(split, term).item() == pytest.approx(getattr(whole, term).item(), rel=1e-5), term
    assert torch.allclose(split.chosen_reward, whole.chosen_reward, rtol=1e-5, atol=1e-6)
    assert whole_grads.keys() == split_grads.keys() and whole_grads
    for key, grad in whole_grads.items():
        scale = grad.abs().max().item()
        assert scale > 0
        assert (split_grads[key] - grad).abs().max().item() <= 1e-5 * scale, key


def test_deepspeed_accumulates_the_passes_of_one_micro_batch(tmp_path: Path, tiny_model: str) -> None:
    """Two real runs (ZeRO-2, bf16), one pass per micro-batch vs one pass per pair: the same loss
    and the same pre-clipping gradient norm at the first step. Were a pass's gradients dropped or
    counted twice, the norm would differ by far more than bf16 rounding."""
    data = write_preferences(tmp_path / "data", 16)  # 2 optimizer steps of 8 pairs (micro 4)
    rows = {}
    for name, budget in (("whole", "0"), ("per_pair", "1")):
        out = tmp_path / name
        args = [*dpo_args(tiny_model, data, out), "--logps.max_pass_tokens", budget]
        run = torchrun("openrlhf_ext.cli.train_dpo", *args, log=tmp_path / f"{name}.log")
        assert run.wait(timeout=600) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
        rows[name] = read_jsonl(out / "metrics.jsonl")
    whole, per_pair = rows["whole"], rows["per_pair"]
    assert [r["global_step"] for r in whole] == [r["global_step"] for r in per_pair] == [1, 2]
    for key, tolerance in (("loss", 1e-2), ("dpo_loss", 1e-2), ("nll_loss", 1e-2), ("grad_norm", 5e-2)):
        assert per_pair[0][key] == pytest.approx(whole[0][key], rel=tolerance), key
    assert whole[0]["grad_norm"] > 0
    # the reference was scored in the same passes: before the first update policy and reference
    # agree bit for bit in bf16, so the DPO term is exactly ln 2 and the KL 0
    assert per_pair[0]["dpo_loss"] == pytest.approx(math.log(2), abs=1e-6) and per_pair[0]["kl"] == 0
