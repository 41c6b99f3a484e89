"""A DPO micro-batch in passes of at most N tokens, each with its own backward.

Activations kept for the backward pass grow with the tokens of one forward; at long sequences
they are most of a step's memory (docs/benchmarks.md: at 1024 tokens, about 6 GB of the 6.6 GB
that a micro-batch of 2 pairs adds on SmolLM2). Every term of the loss is a mean over pairs
(``loss.py``), so the micro-batch's loss is the pair-weighted sum of the losses of any split of
its pairs:

    total(B) = sum_k (|B_k| / |B|) * total(B_k)

and backpropagating each part's weighted loss right after its forward gives the same gradients
while holding only one part's activations. DeepSpeed reduces gradients when a backward falls on
its accumulation boundary and counts that boundary in ``step`` calls, so every pass but the last
is marked as off the boundary (``boundary_held``); otherwise ZeRO-2 would reduce after each pass
and keep only the last pass's gradients. A part is never smaller than one pair; a pair longer
than the budget is one part. ``max_tokens = 0`` keeps the micro-batch whole.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from openrlhf_ext.loss import DpoLossTerms


def pair_tokens(batch: Sequence) -> list[int]:
    """Tokens of each pair (chosen + rejected, padding excluded) of a collated micro-batch."""
    chosen_mask, rejected_mask = batch[1], batch[3]
    return (chosen_mask.flatten(1).sum(-1) + rejected_mask.flatten(1).sum(-1)).tolist()


def plan_passes(tokens: Sequence[int], max_tokens: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, end)`` pair ranges, each within ``max_tokens`` unless one pair alone
    exceeds it; one range for the whole batch when ``max_tokens`` is 0."""
    if max_tokens <= 0 or sum(tokens) <= max_tokens:
        return [(0, len(tokens))]
    passes, start, used = [], 0, 0
    for i, count in enumerate(tokens):
        if i > start and used + count > max_tokens:
            passes.append((start, i))
            start, used = i, 0
        used += count
    passes.append((start, len(tokens)))
    return passes


def slice_batch(batch: Sequence, start: int, end: int) -> tuple:
    """Pairs ``[start, end)`` of a collated batch (its tensors and lists alike); the rows' padding
    stays, the log-prob path reads each row's length from its mask."""
    return tuple(item[start:end] for item in batch)


def split_batch(batch: Sequence, max_tokens: int) -> list[tuple]:
    """The micro-batch as its passes (one element: the batch itself when it fits)."""
    passes = plan_passes(pair_tokens(batch), max_tokens)
    if len(passes) == 1:
        return [tuple(batch)]
    return [slice_batch(batch, start, end) for start, end in passes]


def combine_terms(parts: Sequence[tuple[DpoLossTerms, int]]) -> DpoLossTerms:
    """The micro-batch's terms (detached, for logging) from its parts' terms and pair counts."""
    pairs = sum(n for _, n in parts)

    def mean(name: str) -> torch.Tensor:
        return sum(getattr(terms, name).detach() * (n / pairs) for terms, n in parts)

    return DpoLossTerms(
        total=mean("total"),
        dpo=mean("dpo"),
        nll=mean("nll"),
        kl=mean("kl"),
        chosen_reward=torch.cat([terms.chosen_reward for terms, _ in parts]),
        rejected_reward=torch.cat([terms.rejected_reward for terms, _ in parts]),
    )


@contextmanager
def boundary_held(engine: Any, hold: bool) -> Iterator[None]:
    """While ``hold``, tell a DeepSpeed engine that this backward is not on a gradient accumulation
    boundary, so the gradients stay accumulated in place for the micro-batch's next pass; then hand
    the boundary back to the engine's own micro-step count. Anything that is not a DeepSpeed engine
    (a plain module in tests) accumulates in place anyway and is left alone."""
    if not hold or not hasattr(engine, "set_gradient_accumulation_boundary"):
        yield
        return
    engine.set_gradient_accumulation_boundary(False)
    try:
        yield
    finally:
        engine.set_gradient_accumulation_boundary(None)
