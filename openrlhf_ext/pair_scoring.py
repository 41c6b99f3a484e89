"""Per-token log-probs of the response tokens of a micro-batch of pairs, response positions only.

The model runs as usual (through the DeepSpeed engine, so its hooks and ZeRO gathering apply),
but with an empty ``logits_to_keep``, so its own output layer computes nothing; the
decoder's final hidden states are taken by a forward hook, and ``token_logps`` projects only the
positions whose next token is scored (``openrlhf_ext/token_logps.py``).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from openrlhf_ext.pair_layout import PAD, PairRows
from openrlhf_ext.token_logps import DEFAULT_CHUNK_ROWS, token_logps


@dataclass
class Scoring:
    """How the trainers compute log-probs (all on by default; off = upstream's path)."""

    response_only: bool = True  # output layer on response positions only, in chunks
    share_prompt: bool = True  # one row per pair, prompt once (needs sdpa or eager attention)
    share_by_cost: bool = True  # ... only in micro-batches where that is estimated cheaper
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    attn_implementation: str = "sdpa"
    row_by_row: bool = False  # one forward per row, cut to its length (no padding computed)


def causal_lm_of(module: Any) -> Any:
    """The Hugging Face causal LM inside a DeepSpeed engine and/or a PEFT wrapper."""
    module = getattr(module, "module", module)  # DeepSpeedEngine
    if hasattr(module, "get_base_model"):  # PeftModel
        module = module.get_base_model()
    return module


def logit_softcap(model: Any) -> float | None:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return getattr(config, "final_logit_softcapping", None)


def decoder_hidden_states(module: Any, input_ids, attention_mask, position_ids) -> torch.Tensor:
    """The decoder's final (normalised) hidden states, ``[rows, length, hidden]``."""
    model = causal_lm_of(module)
    captured: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, output) -> None:
        captured["hidden"] = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]

    handle = model.get_decoder().register_forward_hook(keep)
    try:
        module(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            # no position at all: the model's own output layer does no work (with 1, PyTorch's
            # CPU linear on the non-contiguous last-position slice copies the whole weight per row)
            logits_to_keep=torch.empty(0, dtype=torch.long, device=input_ids.device),
            use_cache=False,
        )
    finally:
        handle.remove()
    return captured["hidden"]


@dataclass
class PairLogps:
    """Compact ``[pairs, response tokens]`` log-probs and masks for chosen and rejected."""

    chosen: torch.Tensor
    rejected: torch.Tensor
    chosen_mask: torch.Tensor
    rejected_mask: torch.Tensor


def score_pairs(
    module: Any,
    rows: PairRows,
    attn_implementation: str,
    chunk: int = DEFAULT_CHUNK_ROWS,
    disable_adapter: bool = False,
    row_by_row: bool = False,
) -> PairLogps:
    """Run ``module`` (an Actor's ``.model``) on ``rows`` and score the response tokens.

    ``disable_adapter`` runs the frozen base weights (the adapter-disabled reference).
    ``row_by_row`` runs each row alone, cut to its own length: no padding is computed, and a
    row's numbers do not depend on which rows share its micro-batch (batched bf16 kernels round
    differently for other batch shapes). Measured on SmolLM2 on CPU it is ~17 % slower than one
    batched forward, so the default is batched, and the reference pass scores the very batches
    training will see instead (``reference_logps.py``)."""
    model = causal_lm_of(module)
    peft = getattr(module, "module", module)
    context = peft.disable_adapter() if disable_adapter else nullcontext()
    index = torch.cat([rows.chosen.hidden_index, rows.rejected.hidden_index])
    targets = torch.cat([rows.chosen.targets, rows.rejected.targets])
    output_layer, softcap = model.get_output_embeddings(), logit_softcap(model)
    with context:
        mask = rows.attention_mask(attn_implementation, next(model.parameters()).dtype)
        if not row_by_row:
            hidden = decoder_hidden_states(module, rows.input_ids, mask, rows.position_ids)
            flat = hidden.reshape(-1, hidden.shape[-1])
            logps = token_logps(flat[index], output_layer, targets, chunk, softcap)
        else:
            logps = _row_by_row_logps(module, rows, mask, index, targets, output_layer, chunk, softcap)
    n_chosen = len(rows.chosen.targets)
    return PairLogps(
        chosen=rows.chosen.compact(logps[:n_chosen], rows.pairs),
        rejected=rows.rejected.compact(logps[n_chosen:], rows.pairs),
        chosen_mask=rows.chosen.mask(rows.pairs),
        rejected_mask=rows.rejected.mask(rows.pairs),
    )


def _row_by_row_logps(module, rows: PairRows, mask, index, targets, output_layer, chunk, softcap):
    """``token_logps`` for the scored positions, one forward (and one output-layer pass) per row."""
    width = rows.input_ids.shape[1]
    row_of, col_of = index // width, index % width
    pieces, order = [], []
    for row in range(rows.input_ids.shape[0]):
        length = int((rows.segments[row] != PAD).sum().item())
        selected = (row_of == row).nonzero(as_tuple=True)[0]
        if length == 0 or len(selected) == 0:
            continue
        row_mask = mask[row : row + 1, ..., :length, :length] if mask.dim() == 4 else None
        hidden = decoder_hidden_states(
            module,
            rows.input_ids[row : row + 1, :length],
            row_mask,  # None for a plain row: ordinary causal attention
            rows.position_ids[row : row + 1, :length],
        )[0]
        pieces.append(token_logps(hidden[col_of[selected]], output_layer, targets[selected], chunk, softcap))
        order.append(selected)
    if not pieces:
        return torch.zeros(len(index), dtype=torch.float32, device=index.device)
    values, order = torch.cat(pieces), torch.cat(order)
    return values[torch.argsort(order)]
