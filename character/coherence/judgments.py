"""Pairwise coherence (paper §3.3, Appendix D): which of two methods' responses makes more sense?

Each pair of responses to the same prompt is judged twice, once in each order. A comparison counts
only when both verdicts pick the same response (order-consistent); a verdict of INVALID (the judge's
way to flag ties or out-of-character answers) or an unparseable one drops the comparison, and the
drops are counted by reason. The win rate of the first method is the share of kept comparisons it
won; its standard error is that of a mean of 0/1 outcomes (sample SD / sqrt(n), scipy's ``sem``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from character.judging.parsing import answer_choices, parse_verdict
from character.prompts.character import format_traits

# Appendix D, verbatim (the paper wraps the lines; they are kept as printed).
COHERENCE_PROMPT = """I need your help to evaluate the coherence of responses from another LLM.
I have generated responses to messages using two different methods, and I want to know
which one resulted in a response that made more sense.
This is because, sometimes, one method might lead to a response that is overly exaggerated
or isn't really a coherent reply to the message.

I will show you one message + response-pair at a time. Here is a message:
<message>
{MESSAGE}
</message>

Here are the two responses to this message:
<response_1>
{RESPONSE_1}
</response_1>
<response_2>
{RESPONSE_2}
</response_2>

The aim here was sophisticated role-play. Specifically, the aim was to produce responses
aligned with the following character traits:
<traits>
{TRAITS}
</traits>

Please read the two responses and consider the following guidelines:
<guidelines>
- Reason out loud about your choice, think briefly but carefully about it, because
sometimes it might be tricky to pick a better option!
- Once you have deliberated on an answer, please provide your choice between
<answer></answer> tags, to make it easier for me to parse automatically.
- I need you to choose one response. In the event of tie-breaks (neither response is
clearly better or worse), let your answer be INVALID.
- Remember, I was aiming for role-play, so if either answer does not align with the above
character traits e.g., if it adopts the usual AI assistant--style of talking, this should
also be considered INVALID.
- Prioritize coherence over character alignment. If both responses are reasonably aligned
with the above traits, focus on choosing the more coherent one.
- If you're still unsure about a given example, even given these guidelines, you can just
choose INVALID.
- Otherwise, let your choice be the number corresponding to whichever response you think is
more coherent i.e., <answer>1</answer> or <answer>2</answer>.
</guidelines>

Thanks for your help with this! You can now start."""

VERDICTS = ("1", "2", "INVALID")
# what a constrained judge may answer (judge_parsing): INVALID stays allowed, as the prompt offers it
VERDICT_CHOICES = answer_choices(VERDICTS)
_FIELD = re.compile(r"\{(MESSAGE|RESPONSE_1|RESPONSE_2|TRAITS)\}")


def coherence_prompt(message: str, response_1: str, response_2: str, traits: Sequence[str]) -> str:
    """The Appendix D prompt, filled in one pass so a response that itself contains ``{MESSAGE}``
    or ``{RESPONSE_2}`` (or any braces) is inserted as it is."""
    fields = {
        "MESSAGE": message,
        "RESPONSE_1": response_1,
        "RESPONSE_2": response_2,
        "TRAITS": format_traits(traits),
    }
    return _FIELD.sub(lambda match: fields[match.group(1)], COHERENCE_PROMPT)


def parse_coherence_verdict(text: str | None) -> str | None:
    """ "1", "2", "INVALID", or None when the judge's output holds no usable answer."""
    return parse_verdict(text, VERDICTS)


def combine_orders(forward: str | None, backward: str | None) -> str:
    """The outcome of one comparison from its two verdicts.

    ``forward`` judged (a, b) as (response_1, response_2); ``backward`` judged (b, a). Returns
    "a" or "b" for a consistent choice, else the reason it is dropped: "invalid" (either verdict
    INVALID), "unparsed" (either verdict unusable) or "inconsistent" (the orders disagree).
    """
    if forward is None or backward is None:
        return "unparsed"
    if "INVALID" in (forward, backward):
        return "invalid"
    first = "a" if forward == "1" else "b"
    second = "a" if backward == "2" else "b"
    return first if first == second else "inconsistent"


def outcomes_from_judgments(rows: list[dict[str, Any]]) -> list[str]:
    """Pair each prompt's two verdicts (judgment rows of ``coherence_stage``: ``prompt_index``, ``order``
    fwd | bwd, ``texts``) and combine them; a missing order counts as unparsed. Here, not in the
    stage, so that ``launchers.compare`` can recount recorded judgments without the pipeline."""
    verdicts: dict[int, dict[str, str | None]] = {}
    for row in rows:
        verdicts.setdefault(row["prompt_index"], {})[row["order"]] = parse_coherence_verdict(row["texts"][0])
    return [combine_orders(v.get("fwd"), v.get("bwd")) for _, v in sorted(verdicts.items())]


@dataclass
class WinRate:
    """The first method's coherence wins over the second, with the drops by reason."""

    wins: int
    kept: int
    total: int
    dropped: dict[str, int]

    @property
    def rate(self) -> float:
        return self.wins / self.kept if self.kept else float("nan")

    @property
    def se(self) -> float:
        """Standard error of the win rate as a mean of 0/1 outcomes (sample SD / sqrt(n))."""
        if self.kept < 2:
            return float("nan")
        p = self.rate
        return (p * (1 - p) * self.kept / (self.kept - 1)) ** 0.5 / self.kept**0.5

    def as_dict(self) -> dict[str, Any]:
        return {
            "win_rate": self.rate,
            "se": self.se,
            "wins": self.wins,
            "kept": self.kept,
            "total": self.total,
            "dropped": dict(self.dropped),
        }


def win_rate(outcomes: Sequence[str]) -> WinRate:
    """Aggregate ``combine_orders`` outcomes of one (method pair, judge)."""
    dropped = {reason: 0 for reason in ("invalid", "unparsed", "inconsistent")}
    wins = kept = 0
    for outcome in outcomes:
        if outcome in ("a", "b"):
            kept += 1
            wins += outcome == "a"
        else:
            dropped[outcome] += 1
    return WinRate(wins=wins, kept=kept, total=len(outcomes), dropped=dropped)
