"""The resumable batch runner every generation stage uses.

Rows are generated in chunks and appended to a JSONL file as each chunk finishes; a rerun after an
interruption skips the rows already written, so every row ends up in the file exactly once. Each
row gets its own seed derived from the base seed and its id, so (on vLLM and HTTP servers) a row's
sample is the same whether it was generated in the first run or after a resume. A sidecar
``<file>.meta.json`` records the engine, model, sampling settings and counts.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from character.engines.base import Choices, Conversation, Engine, LoraAdapter, Sampling
from character.io import JsonlAppender, atomic_write_json
from character.pipeline.console import progress


@dataclass
class BatchItem:
    """One row to generate: an id unique within the output file, the conversation, extras.

    ``choices`` (judges) are the complete answers allowed; an engine that constrains answers
    returns one of them, any other generates freely (``Engine.generate``).
    """

    id: str
    messages: Conversation
    prefill: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    choices: Choices | None = None


@dataclass
class BatchStats:
    rows_total: int
    rows_resumed: int
    rows_generated: int
    completion_tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


def row_seed(base_seed: int | None, row_id: str) -> int | None:
    """A per-row seed: stable for a given (base seed, row id), independent of batching."""
    if base_seed is None:
        return None
    digest = hashlib.sha256(f"{base_seed}:{row_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def meta_path(out_path: Path) -> Path:
    return out_path.with_name(out_path.name + ".meta.json")


def run_batch(
    engine: Engine | Callable[[], Engine],
    items: Sequence[BatchItem],
    sampling: Sampling,
    out_path: Path,
    *,
    lora: LoraAdapter | None = None,
    chunk_size: int = 256,
    description: str = "generating",
) -> BatchStats:
    """Generate every item not yet in ``out_path`` and append it there, chunk by chunk.

    ``engine`` may be a factory: it is then only called when some row is left to generate, so a
    rerun of a finished batch never loads a model.
    """
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{out_path.name}: batch item ids are not unique")
    started = time.time()
    tokens = 0
    with JsonlAppender(out_path) as out:
        todo = [item for item in items if item.id not in out.done_keys]
        resumed = len(items) - len(todo)
        if not todo and meta_path(out_path).exists():
            return BatchStats(len(items), resumed, 0, 0, 0.0)
        if not isinstance(engine, Engine):
            engine = engine()
        info = engine.info
        record: dict[str, Any] = {
            "engine": {"backend": info.backend, "model": info.model, **info.details},
            "lora": None if lora is None else {"name": lora.name, "path": lora.path},
            "sampling": sampling.as_dict(),
            "rows_total": len(items),
        }
        if any(item.choices is not None for item in items):
            # whether the answers were constrained to the rows' choices or written freely
            record["constrained_answers"] = engine.constrains_choices
        atomic_write_json(meta_path(out_path), {**record, "status": "running", "rows_resumed": resumed})
        # rows/s and the ETA from tqdm, tokens/s in the postfix (character/pipeline/console.py)
        with progress(total=len(items), initial=resumed, desc=description, unit="row") as bar:
            for start in range(0, len(todo), chunk_size):
                chunk = todo[start : start + chunk_size]
                generations = engine.generate(
                    [item.messages for item in chunk],
                    sampling,
                    prefills=[item.prefill for item in chunk],
                    lora=lora,
                    seeds=[row_seed(sampling.seed, item.id) for item in chunk],
                    choices=[item.choices for item in chunk],
                )
                for item, generation in zip(chunk, generations, strict=True):
                    out.write(
                        {
                            "id": item.id,
                            "messages": item.messages,
                            "prefill": item.prefill,
                            "texts": generation.texts,
                            "prompt_tokens": generation.prompt_tokens,
                            "completion_tokens": generation.completion_tokens,
                            **item.meta,
                        }
                    )
                    tokens += sum(generation.completion_tokens)
                # set first, drawn by the update: a bar in a file draws only long batches
                bar.set_postfix(tok_s=f"{tokens / max(time.time() - started, 1e-9):.0f}", refresh=False)
                bar.update(len(chunk))
    stats = BatchStats(len(items), resumed, len(todo), tokens, time.time() - started)
    atomic_write_json(
        meta_path(out_path),
        {
            **record,
            "status": "complete",
            "rows_resumed": resumed,
            "rows_generated": stats.rows_generated,
            "completion_tokens_this_run": tokens,
            "seconds_this_run": round(stats.seconds, 3),
            "tokens_per_s_this_run": round(stats.tokens_per_s, 2),
        },
    )
    return stats
