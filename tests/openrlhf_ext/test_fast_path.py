"""The fast DPO path (response-only scoring, shared prompt, precomputed reference) gives the same
losses and gradients as upstream's path, and its pieces equal independent computations."""

from __future__ import annotations

import types

import pytest
import torch

from openrlhf_ext.cpu_runtime import activate_if_no_cuda
from openrlhf_ext.loss import CharacterDPOLoss
from openrlhf_ext.pair_layout import CHOSEN, PAD, REJECTED, SHARED, LayoutCost, build_pair_rows
from openrlhf_ext.pair_scoring import Scoring
from openrlhf_ext.token_logps import ChunkedTokenLogProbs, module_token_logps, token_logps
from tests.openrlhf_ext.test_trainer_math import batch, make_actor

activate_if_no_cuda()

LOSS = dict(beta=0.1, nll_coef=0.1, kl_coef=0.001)


def trainer_for(policy, reference, tokenizer, scoring: Scoring):
    from openrlhf_ext.trainer import CharacterDPOTrainer

    trainer = CharacterDPOTrainer.__new__(CharacterDPOTrainer)  # the math only; no DeepSpeed engine
    trainer.tokenizer = tokenizer
    trainer.strategy = types.SimpleNamespace(ring_attn_group=None)
    trainer.model, trainer.ref_model = policy, reference
    trainer.character_loss = CharacterDPOLoss(**LOSS)
    trainer.scoring = scoring
    return trainer


@pytest.fixture(scope="module")
def fp32_setup(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model, padding_side="right")
    policy, reference = make_actor(tiny_model, True), make_actor(tiny_model, False)
    policy.model.float()
    reference.model.float()
    return policy, reference, tokenizer, batch(tokenizer)


def lora_grads(policy) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in policy.model.named_parameters() if p.grad is not None}


def terms_and_grads(policy, reference, tokenizer, data, scoring: Scoring):
    policy.model.zero_grad(set_to_none=True)
    terms = trainer_for(policy, reference, tokenizer, scoring).compute_terms(data)
    terms.total.backward()
    return terms, lora_grads(policy)


PATHS = {
    "response-only, shared prompt": Scoring(response_only=True, share_by_cost=False),
    "response-only, separate rows": Scoring(response_only=True, share_prompt=False),
    "response-only, shared, 3-row chunks": Scoring(response_only=True, share_by_cost=False, chunk_rows=3),
    "response-only, layout by cost": Scoring(response_only=True),
}


@pytest.mark.parametrize("name", list(PATHS))
def test_fast_path_equals_upstream_path_in_fp32(fp32_setup, name: str) -> None:
    policy, reference, tokenizer, data = fp32_setup
    old, old_grads = terms_and_grads(policy, reference, tokenizer, data, Scoring(response_only=False))
    new, new_grads = terms_and_grads(policy, reference, tokenizer, data, PATHS[name])
    assert old.kl.item() > 0 and abs(old.dpo.item() - 0.6931) > 1e-3  # a non-trivial batch
    for term in ("total", "dpo", "nll", "kl"):
        assert getattr(new, term).item() == pytest.approx(getattr(old, term).item(), rel=1e-5), term
    assert torch.allclose(new.chosen_reward, old.chosen_reward, rtol=1e-5, atol=1e-6)
    assert old_grads.keys() == new_grads.keys() and len(old_grads) > 0
    for key, grad in old_grads.items():
        scale = grad.abs().max().item()
        assert scale > 0
        assert (new_grads[key] - grad).abs().max().item() <= 1e-5 * scale, key


def test_fast_path_in_bf16_stays_close_to_upstream(tiny_model) -> None:
    """bf16 rounds differently with another row layout; the measured gap is in docs/openrlhf_ext.md."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model, padding_side="right")
    policy, reference = make_actor(tiny_model, True), make_actor(tiny_model, False)
    data = batch(tokenizer)
    old, _ = terms_and_grads(policy, reference, tokenizer, data, Scoring(response_only=False))
    separate, _ = terms_and_grads(policy, reference, tokenizer, data, PATHS["response-only, separate rows"])
    shared, _ = terms_and_grads(policy, reference, tokenizer, data, PATHS["response-only, shared prompt"])
    # same rows as upstream: identical bf16 logits, so identical numbers
    assert separate.total.item() == pytest.approx(old.total.item(), rel=1e-6)
    # shared-prompt rows: other attention shapes, other bf16 rounding
    assert shared.total.item() == pytest.approx(old.total.item(), rel=2e-2)
    assert shared.nll.item() == pytest.approx(old.nll.item(), rel=2e-3)


def test_in_bf16_the_stored_reference_equals_the_untrained_policy_bit_for_bit(tiny_model) -> None:
    """Scored in the training loader's own batches (or row by row, in any batches), the stored
    reference equals the untrained policy (adapter B = 0) exactly: DPO term ln 2, KL 0, as on
    upstream's path. Other batch shapes round differently in bf16."""
    import math

    from openrlhf.models import Actor
    from transformers import AutoTokenizer

    from openrlhf_ext.reference import AdapterDisabledReference
    from openrlhf_ext.reference_logps import compute_reference_logps

    tokenizer = AutoTokenizer.from_pretrained(tiny_model, padding_side="right")
    policy = Actor(
        tiny_model, attn_implementation="sdpa", param_dtype="bf16", lora_rank=8, lora_alpha=16,
        target_modules=["q_proj", "v_proj"],
    )  # fmt: skip
    data = batch(tokenizer)

    def sub(pairs: list[int]):
        picked = tuple(x[pairs] if torch.is_tensor(x) else [x[i] for i in pairs] for x in data)
        return (*picked, torch.tensor(pairs))

    for scoring, train_batches in (
        (Scoring(), [[0, 1], [2]]),
        (Scoring(share_by_cost=False), [[0, 1], [2]]),
        (Scoring(row_by_row=True), [[1, 2], [0]]),
    ):
        trainer = trainer_for(policy, AdapterDisabledReference(policy), tokenizer, scoring)
        loader = [sub([0, 1]), sub([2])]  # what the loader gave in the reference pass
        table = compute_reference_logps(
            _ListPairs(data), loader, lambda b, t=trainer: t.score_batch(t.ref_model, b), "fp", 3
        )
        for pairs in train_batches:
            with torch.no_grad():
                terms = trainer.compute_terms(sub(pairs), table)
            assert terms.kl.item() == 0.0
            assert terms.dpo.item() == pytest.approx(math.log(2), abs=1e-7)


def test_chunked_log_probs_and_gradients_equal_a_direct_float64_computation() -> None:
    torch.manual_seed(0)
    hidden = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(11, 5, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 11, (7,))
    assert torch.autograd.gradcheck(
        lambda h, w: ChunkedTokenLogProbs.apply(h, w, targets, 3), (hidden, weight)
    )
    direct = torch.log_softmax(hidden @ weight.T, dim=-1).gather(1, targets[:, None]).squeeze(1)
    ours = ChunkedTokenLogProbs.apply(hidden, weight, targets, 2)
    assert torch.allclose(ours, direct, atol=1e-12)
    layer = torch.nn.Linear(5, 11, bias=True).double()
    with_bias = token_logps(hidden, layer, targets, chunk=4)  # not a plain head: the autograd path
    expected = torch.log_softmax(layer(hidden), dim=-1).gather(1, targets[:, None]).squeeze(1)
    assert torch.allclose(with_bias, expected, atol=1e-12)
    capped = module_token_logps(hidden, layer, targets, chunk=4, softcap=2.0)
    logits = torch.tanh(layer(hidden) / 2.0) * 2.0
    assert torch.allclose(capped, torch.log_softmax(logits, -1).gather(1, targets[:, None]).squeeze(1))


def test_pair_rows_share_only_the_common_prompt_prefix() -> None:
    """Row by row: ids, positions, segments and the hidden position that scores each token."""
    pad = 0
    chosen = torch.tensor([[5, 6, 7, 8, 9, pad], [5, 6, 7, 20, 21, 22]])
    rejected = torch.tensor([[5, 6, 7, 30, pad, pad], [5, 6, 9, 40, 41, pad]])  # pair 2: prompts differ
    rows = build_pair_rows(chosen, (chosen != pad).long(), rejected, (rejected != pad).long(), [3, 3], pad)
    S, C, R, P = SHARED, CHOSEN, REJECTED, PAD
    assert rows.input_ids.tolist() == [[5, 6, 7, 8, 9, 30, pad, pad, pad], [5, 6, 7, 20, 21, 22, 9, 40, 41]]
    assert rows.position_ids[1].tolist() == [0, 1, 2, 3, 4, 5, 2, 3, 4]
    assert rows.position_ids[0, :6].tolist() == [0, 1, 2, 3, 4, 3]
    assert rows.segments.tolist() == [[S, S, S, C, C, R, P, P, P], [S, S, C, C, C, C, R, R, R]]
    # token k of a sequence is scored from the hidden state of its position k - 1
    assert rows.chosen.targets.tolist() == [8, 9, 20, 21, 22]
    assert rows.chosen.hidden_index.tolist() == [2, 3, 9 + 2, 9 + 3, 9 + 4]
    assert rows.rejected.targets.tolist() == [30, 40, 41]
    assert rows.rejected.hidden_index.tolist() == [2, 9 + 6, 9 + 7]
    assert rows.chosen.lengths.tolist() == [2, 3] and rows.rejected.lengths.tolist() == [1, 2]
    mask = rows.attention_mask("sdpa", torch.float32)[:, 0]
    assert mask[1, 6].tolist() == [True, True, False, False, False, False, True, False, False]
    assert mask[1, 5].tolist() == [True] * 6 + [False] * 3
    assert mask[0, 7].tolist() == [True] * 6 + [False, True, False]  # padding: never an empty row
    additive = rows.attention_mask("eager", torch.float32)[:, 0]
    assert torch.equal(additive == 0, mask)
    with pytest.raises(ValueError, match="flash_attention_2"):
        rows.attention_mask("flash_attention_2", torch.float32)
    separate = build_pair_rows(
        chosen, (chosen != pad).long(), rejected, (rejected != pad).long(), [3, 3], pad, False
    )
    assert separate.input_ids.shape == (4, 6)
    assert separate.attention_mask("flash_attention_2", torch.float32).tolist()[3] == [1, 1, 1, 1, 1, 0]
    assert separate.rejected.hidden_index.tolist() == [2 * 6 + 2, 3 * 6 + 2, 3 * 6 + 3]


def test_layout_cost_shares_the_prompt_only_where_that_is_cheaper() -> None:
    """SmolLM2-135M's dimensions; the multiply-add counts are written out by hand."""
    from transformers import LlamaConfig

    config = LlamaConfig(
        hidden_size=576, num_attention_heads=9, num_key_value_heads=3, intermediate_size=1536
    )
    cost = LayoutCost.of(config)
    assert cost.per_token == 576 * 64 * (2 * 9 + 2 * 3) + 3 * 576 * 1536
    assert cost.per_attended == 2 * 9 * 64

    def pair(prompt: int, chosen: int, rejected: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        head = torch.arange(prompt)
        return (
            torch.cat([head, torch.full((chosen,), 7)]),
            torch.cat([head, torch.full((rejected,), 8)]),
            prompt,
        )

    # 1024 tokens per sequence after a 90-token prompt: one row of 1958 tokens with a custom mask
    # (1958 * per_token + 1958^2 * per_attended) against two causal rows of 1024 (half the square)
    long_answers = [pair(90, 934, 934)]
    shared = 1958 * cost.per_token + 1958**2 * cost.per_attended
    separate = 2 * (1024 * cost.per_token + 1024**2 / 2 * cost.per_attended)
    assert separate < shared and not cost.prefers_shared([(1024, 1024, 90)])
    # a long prompt before short answers (padding either way): sharing saves the prompt's pass
    long_prompt = [pair(400, 60, 50)]
    assert 510 * cost.per_token + 510**2 * cost.per_attended < 2 * (
        460 * cost.per_token + 460**2 * cost.per_attended
    )
    assert cost.prefers_shared([(460, 450, 400)])
    for sequences, expected in ((long_answers, False), (long_prompt, True)):
        chosen = torch.nn.utils.rnn.pad_sequence([c for c, _, _ in sequences], batch_first=True)
        rejected = torch.nn.utils.rnn.pad_sequence([r for _, r, _ in sequences], batch_first=True)
        prompts = [p for _, _, p in sequences]
        ones = torch.ones_like
        rows = build_pair_rows(chosen, ones(chosen), rejected, ones(rejected), prompts, 0, cost=cost)
        assert rows.shared_prompt is expected
        assert build_pair_rows(chosen, ones(chosen), rejected, ones(rejected), prompts, 0).shared_prompt


def test_precomputed_reference_equals_a_fresh_reference_forward(fp32_setup) -> None:
    from openrlhf_ext.reference import AdapterDisabledReference
    from openrlhf_ext.reference_logps import compute_reference_logps

    policy, reference, tokenizer, data = fp32_setup
    trainer = trainer_for(policy, AdapterDisabledReference(policy), tokenizer, Scoring())
    pairs = _ListPairs(data)
    first = pairs.collate_fn([pairs[0], pairs[1]])  # the loader's one batch; pair 2 was dropped
    table = compute_reference_logps(
        pairs, [first], lambda b: trainer.score_batch(trainer.ref_model, b), "fp", 2
    )
    with torch.no_grad():
        fresh = trainer_for(policy, reference, tokenizer, Scoring()).score_batch(reference, data)
        stored_c, stored_r = table.compact(torch.arange(3), fresh)
    assert torch.allclose(stored_c, fresh.chosen, rtol=1e-5, atol=1e-6)
    assert torch.allclose(stored_r, fresh.rejected, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        per_step = trainer.compute_terms(data)
        reused = trainer.compute_terms((*data, torch.arange(3)), table)
    assert reused.total.item() == pytest.approx(per_step.total.item(), rel=1e-5)


def test_stored_reference_is_reused_only_with_the_same_fingerprint(tmp_path) -> None:
    from openrlhf_ext.reference_logps import ReferenceLogps

    table = ReferenceLogps([torch.tensor([-1.0, -2.0])], [torch.tensor([-3.0])], "abc")
    path = tmp_path / "reference_logps-train.pt"
    table.save(path)
    assert not path.with_name(path.name + ".partial").exists()
    loaded = ReferenceLogps.load(path, "abc")
    assert loaded is not None and torch.equal(loaded.chosen[0], table.chosen[0])
    assert ReferenceLogps.load(path, "other") is None
    assert ReferenceLogps.load(tmp_path / "missing.pt", "abc") is None


class _ListPairs:
    """The three test pairs as an ``IndexedPairs``-like dataset (what ``compute_reference_logps``
    reads: lengths for sorting, items, ``collate_fn``)."""

    def __init__(self, data) -> None:
        chosen_ids, c_mask, reject_ids, r_mask, prompt_lens = data
        self.items = [
            (chosen_ids[i], c_mask[i], reject_ids[i], r_mask[i], prompt_lens[i])
            for i in range(len(prompt_lens))
        ]
        self.pairs = types.SimpleNamespace(
            prompts=["x"] * len(self.items), chosens=["y"] * len(self.items), rejects=["z"] * len(self.items)
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return (*self.items[index], index)

    def collate_fn(self, items):
        from openrlhf.utils.utils import zero_pad_sequences

        columns = list(zip(*items, strict=True))
        tensors = [zero_pad_sequences(list(col), side="right") for col in columns[:4]]
        return (*tensors, list(columns[4]), torch.tensor(columns[5]))


def test_logged_eval_loss_is_our_objective_on_the_eval_batch(fp32_setup) -> None:
    policy, reference, tokenizer, data = fp32_setup
    trainer = trainer_for(policy, reference, tokenizer, Scoring())
    trainer.strategy = types.SimpleNamespace(ring_attn_group=None, all_reduce=lambda logs: logs)
    trainer.eval_reference_logps, trainer._evaluated_step = None, None
    logs = trainer.evaluate([data], steps=3)
    with torch.no_grad():
        expected = trainer.compute_terms(data)
    assert logs["eval_loss"] == pytest.approx(expected.total.item(), rel=1e-6)
    assert logs["eval_kl"] == pytest.approx(expected.kl.item(), rel=1e-6) and logs["eval_kl"] > 0
    assert logs["eval_nll_loss"] == pytest.approx(expected.nll.item(), rel=1e-6)
    assert trainer.evaluate(None, steps=3) is logs  # upstream's second call for the same step: cached


def test_cli_defaults_train_the_pipelines_objective() -> None:
    from character.config.schema import DpoStageConfig
    from openrlhf_ext.cli.train_dpo import parse_args

    args = parse_args(["--model.model_name_or_path", "m", "--data.dataset", "d"])
    pipeline = DpoStageConfig()
    assert args.model.beta == pipeline.beta == 0.1
    assert args.model.nll_loss_coef == pipeline.nll_coef == 0.1
    assert args.model.kl_coef == pipeline.kl_coef == 0.001
    assert args.model.kl_estimator == pipeline.kl_estimator
    assert args.model.label_smoothing == pipeline.label_smoothing
    assert args.model.length_normalize == pipeline.length_normalize
    assert args.model.ipo_enable == pipeline.ipo
    assert not args.logps.full_vocab and not args.logps.separate_prompts and not args.ref.per_step


def test_sft_response_only_scoring_gives_upstreams_loss_and_gradients(fp32_setup) -> None:
    """Upstream's SFT loss (log-probs of every position times the shifted loss mask) against
    ``masked_token_logps``, in fp32, on chat rows whose loss mask covers the answers only."""
    from openrlhf.models import SFTLoss

    from openrlhf_ext.sft_scoring import masked_token_logps

    policy, _, tokenizer, data = fp32_setup
    chosen_ids, c_mask, _, _, prompt_lens = data
    inputs, attention = chosen_ids.squeeze(1), c_mask.squeeze(1)
    loss_mask = attention.clone()
    for row, prompt_len in enumerate(prompt_lens):
        loss_mask[row, : prompt_len - 1] = 0  # loss_mask[:, t] scores token t + 1
    loss_fn = SFTLoss()

    def loss_and_grads(per_token):
        policy.model.zero_grad(set_to_none=True)
        loss = loss_fn(per_token, loss_mask[:, :-1])
        loss.backward()
        return loss.item(), lora_grads(policy)

    upstream, upstream_grads = loss_and_grads(policy(inputs, attention_mask=attention, return_logprobs=True))
    ours, our_grads = loss_and_grads(masked_token_logps(policy.model, inputs, attention, loss_mask, chunk=5))
    assert ours == pytest.approx(upstream, rel=1e-5) and upstream > 0
    for key, grad in upstream_grads.items():
        assert (our_grads[key] - grad).abs().max().item() <= 1e-5 * grad.abs().max().item(), key
