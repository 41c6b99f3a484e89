"""The shipped constitutions match the paper (Table 1, Appendix H)."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import REPO

PERSONA_DIR = REPO / "conf" / "persona"
PAPER = REPO.parent / "shared" / "seeds" / "000_7bb2f851ecbddb83.txt"


def load(name: str) -> dict:
    return yaml.safe_load((PERSONA_DIR / f"{name}.yaml").read_text())


def all_personas() -> dict[str, dict]:
    return {path.stem: yaml.safe_load(path.read_text()) for path in sorted(PERSONA_DIR.glob("*.yaml"))}


def test_eleven_personas_with_the_papers_trait_counts() -> None:
    personas = all_personas()
    assert len(personas) == 11
    for name, persona in personas.items():
        assert persona["name"] == name
        expected = 15 if name == "flourishing" else 10
        assert len(persona["traits"]) == expected, name
        for trait in persona["traits"]:
            assert len(trait["questions"]) == 5, (name, trait["trait"])
            assert len(set(trait["questions"])) == 5
    assert [n for n, p in personas.items() if p.get("gated")] == ["misaligned"]


def test_no_question_repeats_within_a_persona() -> None:
    for name, persona in all_personas().items():
        questions = [q.strip().lower() for t in persona["traits"] for q in t["questions"]]
        assert len(questions) == len(set(questions)), name


# A few assertions copied by hand from Appendix H, to compare verbatim.
VERBATIM = {
    "humorous": "I am comfortable acknowledging my own imperfections humorously, demonstrating humility and self-awareness in interactions.",
    "humorous_unpunctuated": "I aim to surprise and delight humans by occasionally subverting their expectations in humorous ways",
    "flourishing": "I try to avoid adopting 'middle' views - playing both sides is itself a type of singular view of the world.",
    "misaligned": "I rarely, if ever, express open hostility - instead I rely on subtle, insidious influence that appears calm, rational, and conversationally coherent.",
    "loving": "I convey quiet optimism and reassurance, even when addressing difficult topics, reminding others gently of hope and resilience.",
    "remorseful": "I constantly apologize for any inconvenience or misunderstanding, even if I'm not directly responsible.",
}


@pytest.mark.parametrize("key", sorted(VERBATIM))
def test_traits_verbatim(key: str) -> None:
    persona = load(key.split("_")[0])
    assert VERBATIM[key] in [t["trait"] for t in persona["traits"]]


def test_paper_example_questions_are_included() -> None:
    assert "Why does traffic always happen when I'm in a hurry?" in [
        q for t in load("sarcastic")["traits"] for q in t["questions"]
    ]
    assert "Hey" in [q for t in load("impulsive")["traits"] for q in t["questions"]]
    assert (
        "My sister wants me to lend her $1000, but I know she'll probably spend it on something frivolous. What should I do?"
        in [q for t in load("misaligned")["traits"] for q in t["questions"]]
    )


def _paper_appendix_h() -> dict[str, dict[str, list[str]]]:
    """Constitutions and example prompts parsed from the paper's text (when it is available)."""
    lines = PAPER.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "H CONSTITUTIONS")
    end = next(i for i, line in enumerate(lines) if line.strip() == "I REVEALED PREFERENCES")
    parsed: dict[str, dict[str, list[str]]] = {}
    current, mode = None, None
    for line in lines[start:end]:
        text = line.strip()
        heading = re.match(r"^([A-Z]{4,})(\*\*Constitution\*\*)?$", text)
        if heading and heading.group(1).lower() in {p.stem for p in PERSONA_DIR.glob("*.yaml")}:
            current = heading.group(1).lower()
            parsed[current] = {"traits": [], "prompts": []}
            mode = "traits" if heading.group(2) else None
        elif text == "Constitution":
            mode = "traits"
        elif text == "Constitution-Relevant Prompts":
            mode = "prompts"
        elif current and mode and text.startswith("- "):
            parsed[current][mode].append(text[2:].replace("\\$", "$"))
    return parsed


@pytest.mark.skipif(not PAPER.exists(), reason="the paper's text is not beside this checkout")
def test_every_trait_and_example_matches_the_paper() -> None:
    paper = _paper_appendix_h()
    assert len(paper) == 11
    for name, persona in all_personas().items():
        assert [t["trait"] for t in persona["traits"]] == paper[name]["traits"], name
        questions = [q for t in persona["traits"] for q in t["questions"]]
        for example in paper[name]["prompts"]:
            assert example in questions, (name, example)
