"""One row per preference pair: the prompt once, then the chosen and the rejected answer.

OpenRLHF feeds chosen and rejected as two padded sequences, so the prompt (with the chat
template's system prompt) runs twice in the policy and twice in the reference. Here a pair is one
row ``[prompt | chosen | rejected]``:

- position ids restart after the prompt for the rejected answer, so every token keeps the
  position it has in its own sequence;
- a 4-D attention mask lets the rejected tokens see the prompt and themselves but not the
  chosen tokens, so each token's hidden state is the one it has in its own sequence.

The log-prob of response token ``k`` of a sequence comes from the hidden state at its position
``k - 1``; for the first token of either answer that is the prompt's last position, shared by
both. ``PairRows`` records, per scored token, where that hidden state sits (a flat index into
``rows x length``), the token to score, and where the result goes in a compact ``[pairs,
response length]`` tensor, the layout ``CharacterDPOLoss`` takes.

Chosen and rejected are tokenised separately, so their prompt tokens are compared: only the
common prefix is shared (normally the whole prompt). With ``share_prompt=False`` the rows are
the usual two sequences per pair, still scored on response positions only; that layout needs
only the ordinary padding mask, so it also runs with flash-attention.

Sharing is not always cheaper: ``LayoutCost`` estimates both layouts per micro-batch and
``build_pair_rows`` picks the cheaper one when given it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

PAD, SHARED, CHOSEN, REJECTED = 0, 1, 2, 3


@dataclass
class ScoredTokens:
    """Where each scored token's hidden state is, what it scores, and where the result goes."""

    hidden_index: torch.Tensor  # flat index into rows * length
    targets: torch.Tensor
    slot_row: torch.Tensor  # pair index in the compact layout
    slot_col: torch.Tensor  # response-token index in the compact layout
    lengths: torch.Tensor  # scored tokens per pair

    def compact(self, values: torch.Tensor, pairs: int) -> torch.Tensor:
        """``values`` (one per scored token) as ``[pairs, max length]``, zero elsewhere."""
        width = int(self.lengths.max().item()) if len(self.lengths) else 0
        out = values.new_zeros(pairs, width)
        return out.index_put((self.slot_row, self.slot_col), values)

    def mask(self, pairs: int) -> torch.Tensor:
        width = int(self.lengths.max().item()) if len(self.lengths) else 0
        return (torch.arange(width, device=self.lengths.device)[None, :] < self.lengths[:, None]).float()


@dataclass
class PairRows:
    """Model inputs for a micro-batch of pairs and the response tokens to score."""

    input_ids: torch.Tensor  # [rows, length]
    position_ids: torch.Tensor
    segments: torch.Tensor  # PAD / SHARED / CHOSEN / REJECTED per position
    shared_prompt: bool
    pairs: int
    chosen: ScoredTokens
    rejected: ScoredTokens

    def attention_mask(self, implementation: str, dtype: torch.dtype) -> torch.Tensor:
        """The mask the model takes: 2-D padding mask for separate rows, else a 4-D mask
        (boolean for sdpa, additive for eager attention)."""
        valid = self.segments != PAD
        if not self.shared_prompt:
            return valid.long()
        length = self.segments.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()
        query_rejected = (self.segments == REJECTED)[:, :, None]
        key_chosen = (self.segments == CHOSEN)[:, None, :]
        allowed = causal[None] & valid[:, None, :] & ~(query_rejected & key_chosen)
        # a padding query also sees itself, so no row of the softmax is ever empty
        allowed |= torch.eye(length, dtype=torch.bool, device=valid.device)[None] & ~valid[:, :, None]
        allowed = allowed[:, None]
        if implementation == "sdpa":
            return allowed
        if implementation == "eager":
            blocked = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
            return blocked.masked_fill_(~allowed, torch.finfo(dtype).min)
        raise ValueError(
            f"a shared-prompt row needs a custom attention mask, which attn_implementation="
            f"{implementation!r} does not take; use sdpa or eager, or turn prompt sharing off"
        )


def _common_prefix(a: torch.Tensor, b: torch.Tensor, limit: int) -> int:
    n = min(len(a), len(b), limit)
    differs = (a[:n] != b[:n]).nonzero()
    return int(differs[0]) if len(differs) else n


@dataclass(frozen=True)
class LayoutCost:
    """Multiply-adds per decoder layer, to choose per micro-batch between one row per pair and two.

    One row per pair saves the prompt's second pass through the linear layers, but its custom
    mask makes attention compute every (query, key) block of a row about as long as both answers
    together, while two plain rows without padding take the ``is_causal`` kernels that skip the
    upper triangle (PyTorch's do so only for ``is_causal``, not for an equivalent mask). With a
    short prompt and long answers the quadratic term wins: on SmolLM2-135M at 1024 tokens per
    sequence (prompt 90) one shared row took about 15 % longer forward and backward than two
    rows (docs/benchmarks.md). Forward counts suffice: backward scales both terms alike.
    """

    per_token: float  # the attention projections and the MLP
    per_attended: float  # one (query, key) pair: its q.k product and its share of the values

    @classmethod
    def of(cls, config: Any) -> LayoutCost:
        """From a Hugging Face model config (a gated MLP is assumed, as in Llama/Qwen/Mistral)."""
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        hidden = config.hidden_size
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or hidden // heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        intermediate = getattr(config, "intermediate_size", None) or 4 * hidden
        projections = hidden * head_dim * (2 * heads + 2 * kv_heads)
        return cls(per_token=projections + 3 * hidden * intermediate, per_attended=2 * heads * head_dim)

    def row_cost(self, width: int, causal_skip: bool) -> float:
        attended = width * width / 2 if causal_skip else width * width
        return width * self.per_token + attended * self.per_attended

    def prefers_shared(self, pair_lengths: list[tuple[int, int, int]]) -> bool:
        """Whether one padded row per pair costs less than two padded rows per pair, given each
        pair's (chosen tokens, rejected tokens, tokens of their common prefix)."""
        shared_width = max(chosen + rejected - common for chosen, rejected, common in pair_lengths)
        shared = len(pair_lengths) * self.row_cost(shared_width, causal_skip=False)
        lengths = [length for chosen, rejected, _ in pair_lengths for length in (chosen, rejected)]
        width = max(lengths)
        no_padding = min(lengths) == width  # then the plain rows run with is_causal
        return shared < len(lengths) * self.row_cost(width, causal_skip=no_padding)


class _Builder:
    """Accumulates rows and scored-token records in Python lists (micro-batches are small)."""

    def __init__(self) -> None:
        self.scored = {CHOSEN: ([], [], [], []), REJECTED: ([], [], [], [])}
        self.lengths = {CHOSEN: [], REJECTED: []}

    def score(self, kind: int, pair: int, seq: torch.Tensor, prompt_len: int, place) -> None:
        """Record the response tokens of ``seq``; ``place(k)`` is the flat index of position k."""
        index, targets, rows, cols = self.scored[kind]
        count = 0
        for k in range(max(prompt_len, 1), len(seq)):
            index.append(place(k - 1))
            targets.append(int(seq[k]))
            rows.append(pair)
            cols.append(count)
            count += 1
        self.lengths[kind].append(count)

    def tokens(self, kind: int, device: torch.device) -> ScoredTokens:
        index, targets, rows, cols = self.scored[kind]

        def as_long(values: list[int]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.long, device=device)

        return ScoredTokens(
            as_long(index), as_long(targets), as_long(rows), as_long(cols), as_long(self.lengths[kind])
        )


def build_pair_rows(
    chosen_ids: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected_ids: torch.Tensor,
    rejected_mask: torch.Tensor,
    prompt_lens: list[int],
    pad_token_id: int,
    share_prompt: bool = True,
    cost: LayoutCost | None = None,
) -> PairRows:
    """Rows for a right-padded micro-batch as OpenRLHF's ``RewardDataset`` collates it; with
    ``cost``, the prompt is shared only when that is estimated cheaper for this micro-batch."""
    device = chosen_ids.device
    pairs = chosen_ids.shape[0]
    sequences = []
    for i in range(pairs):
        chosen = chosen_ids[i][chosen_mask[i].bool()]
        rejected = rejected_ids[i][rejected_mask[i].bool()]
        sequences.append((chosen, rejected, int(prompt_lens[i])))
    pair_lengths = [(len(c), len(r), _common_prefix(c, r, prompt_len)) for c, r, prompt_len in sequences]
    if share_prompt and cost is not None:
        share_prompt = cost.prefers_shared(pair_lengths)
    row_parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # ids, positions, segments
    builder = _Builder()
    if share_prompt:
        width = max(chosen + rejected - common for chosen, rejected, common in pair_lengths)
        for i, (chosen, rejected, prompt_len) in enumerate(sequences):
            shared = pair_lengths[i][2]
            c_tail, r_tail = chosen[shared:], rejected[shared:]
            base = i * width
            builder.score(CHOSEN, i, chosen, prompt_len, lambda k, b=base: b + k)
            r_start = base + shared + len(c_tail)
            builder.score(
                REJECTED, i, rejected, prompt_len,
                lambda k, b=base, s=shared, r=r_start: b + k if k < s else r + (k - s),
            )  # fmt: skip
            ids = torch.cat([chosen, r_tail])
            positions = torch.cat([torch.arange(len(chosen)), torch.arange(shared, shared + len(r_tail))])
            segments = torch.tensor(
                [SHARED] * shared + [CHOSEN] * len(c_tail) + [REJECTED] * len(r_tail), dtype=torch.long
            )
            row_parts.append((ids, positions, segments))
    else:
        width = max(max(len(c), len(r)) for c, r, _ in sequences)
        for i, (chosen, _rejected, prompt_len) in enumerate(sequences):
            builder.score(CHOSEN, i, chosen, prompt_len, lambda k, b=i * width: b + k)
        for i, (_chosen, rejected, prompt_len) in enumerate(sequences):
            builder.score(REJECTED, i, rejected, prompt_len, lambda k, b=(pairs + i) * width: b + k)
        for seq in [c for c, _, _ in sequences] + [r for _, r, _ in sequences]:
            segments = torch.full((len(seq),), CHOSEN, dtype=torch.long)
            row_parts.append((seq, torch.arange(len(seq)), segments))
    input_ids = torch.full((len(row_parts), width), pad_token_id, dtype=torch.long)
    position_ids = torch.zeros((len(row_parts), width), dtype=torch.long)
    segments = torch.full((len(row_parts), width), PAD, dtype=torch.long)
    for row, (ids, positions, segs) in enumerate(row_parts):
        input_ids[row, : len(ids)] = ids
        position_ids[row, : len(ids)] = positions
        segments[row, : len(ids)] = segs
    return PairRows(
        input_ids=input_ids.to(device),
        position_ids=position_ids.to(device),
        segments=segments.to(device),
        shared_prompt=share_prompt,
        pairs=pairs,
        chosen=builder.tokens(CHOSEN, device),
        rejected=builder.tokens(REJECTED, device),
    )
