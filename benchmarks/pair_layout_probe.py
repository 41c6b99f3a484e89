"""One preference pair's forward and backward as one shared row against two plain rows.

    python benchmarks/pair_layout_probe.py [--model smollm2|PATH] [--prompt 90] [--answer 934]

Why: ``openrlhf_ext/pair_layout.py`` can put a pair in one row ``[prompt | chosen | rejected]``
(the prompt computed once, a custom 4-D mask) or in two ordinary causal rows. Which is faster
depends on the lengths: the custom mask makes attention compute the whole square of the long
row, where two rows without padding take the ``is_causal`` kernels. This prints the seconds of
each layout (whole-model gradients, bf16, sdpa, two repetitions each, in alternation) beside
``LayoutCost``'s estimate, so the estimate can be checked against a measurement on any machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dpo_peers import resolve_model  # noqa: E402  (a sibling script, not a package)

from openrlhf_ext.pair_layout import LayoutCost  # noqa: E402


def shared_inputs(prompt: int, answer: int, vocab: int) -> dict[str, torch.Tensor]:
    """One row: prompt, chosen, rejected; the rejected answer sees the prompt and itself."""
    length = prompt + 2 * answer
    segment = torch.zeros(length, dtype=torch.long)
    segment[prompt : prompt + answer] = 1
    segment[prompt + answer :] = 2
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    allowed = causal & ~((segment == 2)[:, None] & (segment == 1)[None, :])
    positions = torch.cat([torch.arange(prompt + answer), torch.arange(prompt, prompt + answer)])
    return {
        "input_ids": torch.randint(0, vocab, (1, length)),
        "attention_mask": allowed[None, None],
        "position_ids": positions[None],
    }


def separate_inputs(prompt: int, answer: int, vocab: int) -> dict[str, torch.Tensor]:
    """Two rows of equal length, no padding: the model runs them with ``is_causal``."""
    return {"input_ids": torch.randint(0, vocab, (2, prompt + answer))}


def seconds(model, inputs: dict[str, torch.Tensor]) -> float:
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    hidden = model.model(**inputs, use_cache=False).last_hidden_state
    hidden.float().pow(2).mean().backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--prompt", type=int, default=90)
    parser.add_argument("--answer", type=int, default=934)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(
        resolve_model(args.model), dtype=torch.bfloat16, attn_implementation="sdpa"
    )
    vocab = model.config.vocab_size
    layouts = {"one shared row": shared_inputs, "two plain rows": separate_inputs}
    times: dict[str, list[float]] = {name: [] for name in layouts}
    for build in layouts.values():  # warm-up: first calls pay one-off allocations
        seconds(model, build(args.prompt, min(args.answer, 16), vocab))
    for _ in range(args.repeats):
        for name, build in layouts.items():
            times[name].append(seconds(model, build(args.prompt, args.answer, vocab)))
    cost = LayoutCost.of(model.config)
    shared_width = args.prompt + 2 * args.answer
    estimate = {
        "one shared row": cost.row_cost(shared_width, causal_skip=False),
        "two plain rows": 2 * cost.row_cost(args.prompt + args.answer, causal_skip=True),
    }
    print(f"prompt {args.prompt}, answers {args.answer} tokens each, {torch.get_num_threads()} threads")
    for name in layouts:
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        print(
            f"{name:>15}: {min(times[name]):7.2f} s (runs {runs}); "
            f"estimate {estimate[name] / 1e9:.2f} G multiply-adds per layer"
        )
    measured = min(times["one shared row"]) / min(times["two plain rows"])
    estimated = estimate["one shared row"] / estimate["two plain rows"]
    print(f"shared / separate: measured {measured:.2f}, estimated {estimated:.2f}")


if __name__ == "__main__":
    main()
