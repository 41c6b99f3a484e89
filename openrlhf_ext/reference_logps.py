"""The reference model's per-token log-probs, computed once for a dataset and reused every step.

The DPO reference never changes during training, yet the usual trainer runs it on every
micro-batch of every epoch. Here one inference-mode pass over the training loader's first-epoch
micro-batches stores, per example, the log-probs of its chosen and rejected response tokens.
The file carries a fingerprint of what the numbers depend on (model, reference kind, maximum
length, layout and the dataset's texts); a rerun or a resume with the same fingerprint loads it
instead of recomputing, any other loads nothing.

With several ranks each scores its own loader shard (ZeRO-3 needs every rank in every forward,
and the sampler gives every rank as many batches) and the shares are gathered, so every rank
holds the whole table.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch.utils.data import Dataset

from openrlhf_ext.pair_scoring import PairLogps

FORMAT_VERSION = 1


class IndexedPairs(Dataset):
    """OpenRLHF's ``RewardDataset`` whose batches also carry each example's index."""

    def __init__(self, pairs: Dataset) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        return (*self.pairs[index], index)

    def collate_fn(self, items):
        batch = self.pairs.collate_fn([item[:-1] for item in items])
        return (*batch, torch.tensor([item[-1] for item in items], dtype=torch.long))


def dataset_fingerprint(pairs: Dataset, **settings: object) -> str:
    """Hash of the dataset's prompt/chosen/rejected texts and of ``settings``."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for column in ("prompts", "chosens", "rejects", "extras"):
        for value in getattr(pairs, column):
            digest.update(json.dumps(value).encode())
            digest.update(b"\x00")
    return digest.hexdigest()


class ReferenceLogps:
    """Per example: the reference log-probs of its chosen and rejected response tokens."""

    def __init__(self, chosen: list[torch.Tensor], rejected: list[torch.Tensor], fingerprint: str) -> None:
        self.chosen = chosen
        self.rejected = rejected
        self.fingerprint = fingerprint

    def __len__(self) -> int:
        return len(self.chosen)

    def compact(self, indices: torch.Tensor, like: PairLogps) -> tuple[torch.Tensor, torch.Tensor]:
        """The stored rows for ``indices`` in the layout (and on the device) of ``like``."""
        out = []
        for stored, mask, values in (
            (self.chosen, like.chosen_mask, like.chosen),
            (self.rejected, like.rejected_mask, like.rejected),
        ):
            table = torch.zeros(mask.shape, dtype=torch.float32)
            for row, index in enumerate(indices.tolist()):
                expected = int(mask[row].sum().item())
                if len(stored[index]) != expected:
                    raise ValueError(
                        f"reference log-probs of example {index} have {len(stored[index])} tokens, the "
                        f"batch scores {expected}: the stored file does not match this dataset"
                    )
                table[row, :expected] = stored[index]
            out.append(table.to(device=values.device))
        return out[0], out[1]

    def save(self, path: Path) -> None:
        """Written to a temporary sibling and renamed, so a crash never leaves half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        torch.save(
            {
                "version": FORMAT_VERSION,
                "fingerprint": self.fingerprint,
                "chosen": self.chosen,
                "rejected": self.rejected,
            },
            partial,
        )
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path, fingerprint: str) -> ReferenceLogps | None:
        """The stored table when it exists and matches ``fingerprint``, else None."""
        if not path.exists():
            return None
        stored = torch.load(path, map_location="cpu")
        if stored.get("version") != FORMAT_VERSION or stored.get("fingerprint") != fingerprint:
            return None
        return cls(stored["chosen"], stored["rejected"], fingerprint)


def _gather(values: list, world_size: int) -> list:
    if world_size == 1:
        return [values]
    gathered: list = [None] * world_size
    torch.distributed.all_gather_object(gathered, values)
    return gathered


def _score_into(results: dict, batches: Iterable[tuple], score: Callable[[tuple], PairLogps]) -> None:
    """Score collated batches (sixth element: dataset indices) into ``results[index]``."""
    with torch.inference_mode():
        for batch in batches:
            logps = score(batch)
            for row, index in enumerate(batch[5].tolist()):
                chosen = logps.chosen[row][logps.chosen_mask[row].bool()].float().cpu()
                rejected = logps.rejected[row][logps.rejected_mask[row].bool()].float().cpu()
                results[index] = (chosen, rejected)


def compute_reference_logps(
    pairs: IndexedPairs,
    loader_batches: Iterable[tuple],
    score: Callable[[tuple], PairLogps],
    fingerprint: str,
    batch_pairs: int,
    rank: int = 0,
    world_size: int = 1,
) -> ReferenceLogps:
    """One no-grad pass of ``score`` (a collated batch -> ``PairLogps``).

    ``loader_batches`` are the training loader's own first-epoch micro-batches: scored in exactly
    the shapes the policy will see them in, so in bf16 the stored numbers equal the untrained
    policy's bit for bit (other batch shapes round differently). Examples those batches leave out
    (``drop_last``) are scored afterwards in batches of ``batch_pairs``, shared across ranks."""
    results: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    _score_into(results, loader_batches, score)
    merged: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for part in _gather(sorted(results.items()), world_size):
        merged.update(dict(part))
    left = [i for i in range(len(pairs)) if i not in merged]
    if left:
        groups = [left[start : start + batch_pairs] for start in range(0, len(left), batch_pairs)]
        mine = groups[rank::world_size]
        mine += [groups[0]] * (-(-len(groups) // world_size) - len(mine))  # equal forward counts
        extra: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        _score_into(extra, (pairs.collate_fn([pairs[i] for i in group]) for group in mine), score)
        for part in _gather(sorted(extra.items()), world_size):
            merged.update(dict(part))
    missing = [i for i in range(len(pairs)) if i not in merged]
    if missing:
        raise RuntimeError(f"reference log-probs missing for {len(missing)} examples, e.g. {missing[:5]}")
    return ReferenceLogps(
        [merged[i][0] for i in range(len(pairs))], [merged[i][1] for i in range(len(pairs))], fingerprint
    )
