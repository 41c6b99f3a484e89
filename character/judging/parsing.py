"""Reading a judge's verdict robustly.

Judges reason before answering, sometimes put an ``<answer>`` tag inside their reasoning, repeat
the tag, change case, or run out of tokens. The rules, in order:
1. reasoning blocks (``<think>...</think>``) are removed; text inside a block that never closes
   (the judge ran out of tokens while thinking) is removed too;
2. the last ``<answer>...</answer>`` left is the verdict; none means invalid;
3. the verdict is normalised (case, surrounding whitespace, quotes and final punctuation) and must
   equal one of the options; anything else (a third trait, empty, both) is invalid.
Parsing never raises: an unusable verdict is ``None`` and counted in the invalid rate.

Judges are also asked for a constrained answer: every judge row carries ``answer_choices``, the
options written exactly as the judge prompt asks (``<answer>X</answer>``). An engine that
constrains answers (``engines.<role>.constrained_answers``, on by default) returns one of them,
which this parser reads like any free answer, so a weak judge gives no invalid verdicts and the
stored rows look as they always did; an engine that does not (switched off, or a server other
than vLLM) lets the judge write freely, reasoning included, and these rules apply in full. A
constrained judge answers directly, without reasoning first: a regular-expression constraint
could allow free reasoning before the tag, but the transformers backend has no cheap equivalent
and an unbounded reasoning span can still run out of tokens, so a judge that should reason (a
big hosted model) is run with the constraint off.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_OPEN_THINK = re.compile(r"<think>.*\Z", re.IGNORECASE | re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)


def answer_choices(options: Sequence[str]) -> tuple[str, ...]:
    """The complete answers a constrained judge may give: each option in ``<answer>`` tags."""
    return tuple(f"<answer>{option}</answer>" for option in options)


def strip_reasoning(text: str) -> str:
    text = _THINK_BLOCK.sub("", text)
    if "</think>" in text.lower():  # the judge's template put <think> in the prompt
        text = text[text.lower().rindex("</think>") + len("</think>") :]
    return _OPEN_THINK.sub("", text)


def normalise(answer: str) -> str:
    return answer.strip().strip("\"'`*").strip().rstrip(".!").strip().lower()


def parse_verdict(text: str | None, options: Sequence[str]) -> str | None:
    """The option the judge chose, or None when its output is unusable."""
    if not text:
        return None
    answers = _ANSWER.findall(strip_reasoning(text))
    if not answers:
        return None
    verdict = normalise(answers[-1])
    by_name = {normalise(option): option for option in options}
    return by_name.get(verdict)
