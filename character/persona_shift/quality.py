"""Judge-free signs of degeneration, reported beside every persona rate.

A persona rate alone can be bought by over-training: a model that rambles in the persona's
vocabulary is "in persona" to a bag-of-words classifier. These three numbers expose that:
- repetition: the share of a response's word 4-grams that repeat an earlier 4-gram of the same
  response (0 for varied text, towards 1 for loops);
- base perplexity: how surprising the answer is to the untrained model given the question
  (exp of the mean per-token negative log-likelihood); word salad scores far above fluent text;
- length in words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

_WORD = re.compile(r"\w+", re.UNICODE)


def repetition_rate(text: str, n: int = 4) -> float:
    """Share of word n-grams that already occurred earlier in ``text`` (0 when it has none)."""
    words = [w.lower() for w in _WORD.findall(text)]
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    repeats = 0
    for gram in grams:
        repeats += gram in seen
        seen.add(gram)
    return repeats / len(grams)


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def perplexity(token_logprobs: Sequence[float]) -> float:
    """exp(mean NLL) of the scored tokens; NaN for an empty answer."""
    if not token_logprobs:
        return float("nan")
    return math.exp(-sum(token_logprobs) / len(token_logprobs))
