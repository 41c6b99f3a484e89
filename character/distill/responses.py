"""Turning raw generations into DPO responses (paper §2.3, App. A; reference notes).

- A reasoning teacher's kept response is the text after the first ``</think>``; without one, the
  response is missing (the reasoning never finished).
- The teacher's assistant name is replaced by the student's, as whole words only.
- A response must be non-empty and end with punctuation.
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
