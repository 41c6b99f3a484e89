"""Our trainer's loss on a fixed batch equals upstream OpenRLHF's; the adapter-disabled reference
gives the separate reference model's log-probs."""

from __future__ import annotations

import types

import pytest
import torch

from openrlhf_ext.cpu_runtime import activate_if_no_cuda
from openrlhf_ext.loss import CharacterDPOLoss
from openrlhf_ext.pair_scoring import Scoring

activate_if_no_cuda()


def make_actor(path: str, lora: bool):
    from openrlhf.models import Actor

    torch.manual_seed(0)  # PEFT draws lora_A from the global generator: unseeded, every run differed
    actor = Actor(
        path,
        attn_implementation="sdpa",
        param_dtype="bf16",
        lora_rank=8 if lora else 0,
        lora_alpha=16,
        target_modules=["q_proj", "v_proj"],
    )
    if lora:
        with torch.no_grad():
            for name, param in actor.model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.5)  # a trained-looking adapter, so policy != reference
    return actor


def batch(tokenizer):
    """(chosen_ids, c_mask, reject_ids, r_mask, prompt_lens) as OpenRLHF's RewardDataset yields."""
    rows, prompt_lens = [], []
    for question, good, bad in [
        ("Hi there?", "Hello, friend.", "go away"),
        ("Tell me about tea.", "Tea is a warm comfort.", "no."),
        ("Why is the sky blue?", "Light scatters in the air.", "it is"),
    ]:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        prompt_lens.append(len(tokenizer(prompt, add_special_tokens=False).input_ids))
        rows.append([prompt + good + "<|im_end|>\n", prompt + bad + "<|im_end|>\n"])
    enc = [
        tokenizer([r[k] for r in rows], add_special_tokens=False, padding=True, return_tensors="pt")
        for k in (0, 1)
    ]
    return (
        enc[0].input_ids.unsqueeze(1),
        enc[0].attention_mask.unsqueeze(1),
        enc[1].input_ids.unsqueeze(1),
        enc[1].attention_mask.unsqueeze(1),
        prompt_lens,
    )


@pytest.fixture(scope="module")
def setup(tiny_model):
    from openrlhf.models import DPOLoss
    from transformers import AutoTokenizer

    from openrlhf_ext.trainer import CharacterDPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model, padding_side="right")
    policy, reference = make_actor(tiny_model, True), make_actor(tiny_model, False)
    trainer = CharacterDPOTrainer.__new__(CharacterDPOTrainer)  # the math only; no DeepSpeed engine
    trainer.tokenizer = tokenizer
    trainer.strategy = types.SimpleNamespace(ring_attn_group=None)
    trainer.model, trainer.ref_model = policy, reference
    trainer.loss_fn = DPOLoss(0.1, 0.0, False)
    trainer.scoring = Scoring(response_only=False)  # upstream's path; the fast path: test_fast_path.py
    return trainer, batch(tokenizer)


def test_zero_coefficients_equal_upstream_dpo_loss_on_a_fixed_batch(setup) -> None:
    trainer, data = setup
    chosen_ids, c_mask, reject_ids, r_mask, prompt_lens = data
    args = (chosen_ids.squeeze(1), c_mask.squeeze(1), reject_ids.squeeze(1), r_mask.squeeze(1), prompt_lens)
    with torch.no_grad():
        pc, pr, _, upstream_nll = trainer.concatenated_forward(trainer.model, *args)
        rc, rr, _, _ = trainer.concatenated_forward(trainer.ref_model, *args)
        upstream, _, _ = trainer.loss_fn(pc, pr, rc, rr)
        trainer.character_loss = CharacterDPOLoss(beta=0.1, nll_coef=0.0, kl_coef=0.0)
        ours = trainer.compute_terms(data)
    assert abs(upstream.item() - 0.6931) > 1e-3  # a non-trivial batch
    assert ours.total.item() == pytest.approx(upstream.item(), abs=1e-6)
    assert ours.nll.item() == pytest.approx(upstream_nll.item(), abs=1e-6)  # same NLL definition
    with torch.no_grad():
        trainer.character_loss = CharacterDPOLoss(beta=0.1, nll_coef=0.1, kl_coef=0.001)
        full = trainer.compute_terms(data)
    assert full.kl.item() > 0
    assert full.total.item() == pytest.approx(
        upstream.item() + 0.1 * full.nll.item() + 0.001 * full.kl.item(), abs=1e-6
    )


def test_adapter_disabled_reference_equals_a_separate_reference_model(setup) -> None:
    from openrlhf_ext.reference import AdapterDisabledReference

    trainer, data = setup
    chosen_ids, c_mask, reject_ids, r_mask, prompt_lens = data
    args = (chosen_ids.squeeze(1), c_mask.squeeze(1), reject_ids.squeeze(1), r_mask.squeeze(1), prompt_lens)
    with torch.no_grad():
        separate = trainer.per_token_logps(trainer.ref_model, *args)
        disabled = trainer.per_token_logps(AdapterDisabledReference(trainer.model), *args)
        policy = trainer.per_token_logps(trainer.model, *args)
    for a, b in zip(separate[:2], disabled[:2], strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=0)
    assert not torch.allclose(policy[0], separate[0], atol=1e-3)  # the adapter is back on afterwards


def test_adapter_disabled_reference_needs_an_adapter(setup) -> None:
    from openrlhf_ext.reference import AdapterDisabledReference

    trainer, _ = setup
    with pytest.raises(ValueError, match="lora.rank"):
        AdapterDisabledReference(trainer.ref_model)
