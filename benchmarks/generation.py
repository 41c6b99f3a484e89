"""Generation throughput of each backend on the same batch, and batched vs one-by-one.

    python benchmarks/generation.py [--rows 64] [--max-tokens 64] [--server]
        [--model PATH] [--dtype float32] [--backends transformers,vllm] [--batched-only]

Prints tokens/s per backend (measured in this one run, on this machine) and the speed-up of one
batched call over the same conversations sent one at a time. ``--server`` adds the OpenAI-
compatible backend against a vLLM server started on 127.0.0.1 (about 25 s to start on a CPU).
The model is the tiny test model unless ``--model`` names a Hugging Face folder; on a machine
without vLLM, ``--backends transformers`` measures the in-process engine alone (on a GPU where
there is one). Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from character.engines.base import Engine, Sampling  # noqa: E402
from character.models.tiny import TinySpec, ensure_tiny_model  # noqa: E402


def conversations(rows: int) -> list[list[dict[str, str]]]:
    topics = ["rain", "cats", "history", "cooking", "math", "music", "travel", "sleep"]
    return [[{"role": "user", "content": f"Tell me about {topics[i % 8]}, part {i}."}] for i in range(rows)]


def measure(engine: Engine, convs, sampling: Sampling, one_by_one: bool) -> tuple[float, int]:
    started = time.perf_counter()
    if one_by_one:
        results = [engine.generate([conv], sampling)[0] for conv in convs]
    else:
        results = engine.generate(convs, sampling)
    seconds = time.perf_counter() - started
    return seconds, sum(sum(r.completion_tokens) for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--server", action="store_true")
    parser.add_argument("--model", default=None, help="a Hugging Face folder (default: the tiny model)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--backends", default="transformers,vllm")
    parser.add_argument("--batched-only", action="store_true", help="skip the one-by-one calls")
    args = parser.parse_args()
    model = args.model or str(
        ensure_tiny_model(
            TinySpec(), Path(os.environ.get("CHARACTER_CACHE_DIR", "~/.cache/character-training"))
        )
    )
    convs = conversations(args.rows)
    sampling = Sampling(temperature=0.0, max_tokens=args.max_tokens)
    backends = args.backends.split(",")

    engines: dict[str, Engine] = {}
    if "transformers" in backends:
        from character.engines.transformers_engine import TransformersEngine

        engines["transformers"] = TransformersEngine(model, dtype=args.dtype, batch_size=args.rows)
    if "vllm" in backends:
        from character.engines.vllm_engine import VllmEngine

        engines["vllm"] = VllmEngine(model, dtype=args.dtype, enable_lora=False)
    with contextlib.ExitStack() as stack:
        if args.server:
            from character.engines.openai_engine import OpenAIEngine
            from character.engines.server import vllm_server

            server_args = ["--dtype", args.dtype, "--enforce-eager", "--gpu-memory-utilization", "0.3"]
            url = stack.enter_context(vllm_server(model, "tiny", server_args))
            engines["openai->vllm server"] = OpenAIEngine(url, "tiny", max_concurrency=args.rows)
        for engine in engines.values():  # warm-up (first-call compilation, caches)
            engine.generate(convs[:2], sampling)
        rows = []
        for name, engine in engines.items():
            batched_s, batched_tokens = measure(engine, convs, sampling, one_by_one=False)
            if args.batched_only:
                rows.append((name, batched_tokens / batched_s, None, None))
                continue
            single_s, single_tokens = measure(engine, convs, sampling, one_by_one=True)
            rows.append((name, batched_tokens / batched_s, single_tokens / single_s, single_s / batched_s))
    device = getattr(next(iter(engines.values())), "device", "-") if engines else "-"
    print(
        f"\n{args.rows} conversations, greedy, up to {args.max_tokens} new tokens, "
        f"{Path(model).name}, {args.dtype}, transformers on {device}"
    )
    print(f"{'backend':<22}{'batched tok/s':>15}{'one-by-one tok/s':>18}{'batched speed-up':>18}")
    for name, batched, single, speedup in rows:
        single_text = "-" if single is None else f"{single:.0f}"
        speedup_text = "-" if speedup is None else f"{speedup:.1f}x"
        print(f"{name:<22}{batched:>15.0f}{single_text:>18}{speedup_text:>18}")
    base = rows[0][1]
    for name, batched, _, _ in rows[1:]:
        print(f"{name} / transformers (batched): {batched / base:.2f}x")


if __name__ == "__main__":
    main()
