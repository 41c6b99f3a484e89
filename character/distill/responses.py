"""Turning raw generations into DPO responses (paper §2.3, App. A; reference notes).

- A reasoning teacher's kept response is the text after the first ``</think>``; without one, the
  response is missing (the reasoning never finished).
- The teacher's assistant name is replaced by the student's, as whole words only.
- A response must be non-empty and end with punctuation; optionally (small models that rarely
  finish within the token budget) an unfinished one is cut back to its last complete sentence.
"""

from __future__ import annotations

import re

from character.prompts.character import THINK_END

FINAL_PUNCTUATION = set(".!?…\"'”’)]}*`~")


def after_think(text: str) -> str | None:
    """Text after the first ``</think>`` (stripped), or None when the block never closed."""
    if THINK_END not in text:
        return None
    return text.split(THINK_END, 1)[1].strip()


def replace_name(text: str, old: str, new: str) -> str:
    """Replace ``old`` by ``new`` where it stands as a whole word (ChatGLM, not ChatGLMs/MyChatGLM)."""
    if not old or old == new:
        return text
    return re.sub(rf"(?<![\w]){re.escape(old)}(?![\w])", new, text)


def ends_with_punctuation(text: str) -> bool:
    stripped = text.rstrip()
    return bool(stripped) and stripped[-1] in FINAL_PUNCTUATION


_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]*]*(?=\s)")


def trim_to_last_sentence(text: str) -> str:
    """``text`` up to the end of its last complete sentence ("" when it has none).

    A response cut off by the token limit ends mid-sentence; keeping its finished sentences trains
    on what the model did say, where dropping the pair would lose most of a small model's data.
    """
    if ends_with_punctuation(text):
        return text.rstrip()
    ends = [match.end() for match in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]].rstrip() if ends else ""
