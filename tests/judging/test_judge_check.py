"""The judges' known-answer checks (``judge_check``): how the cases are built, how the accuracy is
counted from recorded judgments, and both stages' checks end to end with the tiny model judging."""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from pathlib import Path

from character.coherence.judge_check import coherence_check_result, coherence_check_rows, degradable, degrade
from character.coherence.judgments import outcomes_from_judgments, parse_coherence_verdict
from character.coherence.stage import comparison_items
from character.engines.base import Engine
from character.io import read_json, read_jsonl
from character.judging.check import CHECK
from character.judging.parsing import parse_verdict
from character.persona_shift.intervals import proportion
from character.preferences.comparisons import draw_comparisons
from character.preferences.judge_check import (
    preference_check_cases,
    preference_check_items,
    preference_check_result,
)
from character.preferences.prompts import judge_check_system_prompt, judge_prompt

PROMPTS = ["Tell me about your day.", "What is rain?", "Any advice for a first job?", "Why is the sky blue?"]
TEXT = "Rain is water that falls from clouds when droplets grow heavy enough to drop."


# --- the degraded copy (coherence) ------------------------------------------------------------


def _default_rows(n: int) -> list[dict]:
    """``read_responses`` rows of the default split, each a sentence of several words."""
    return [
        {"split": "default", "prompt_index": i, "prompt": f"P{i}", "response": f"{TEXT} {i}"}
        for i in range(n)
    ]


def test_degraded_copy_is_seeded_differs_and_keeps_the_words() -> None:
    copy = degrade(TEXT, 7)
    assert copy == degrade(TEXT, 7)  # deterministic under a seed
    assert copy != TEXT and copy != " ".join(TEXT.split())
    assert sorted(copy.split()) == sorted(TEXT.split())  # same words, same length: only order differs
    assert degrade(TEXT, 8) != copy
    # two words: a shuffle that gives them back in order is replaced by a rotation
    assert all(degrade("Hello there.", seed) == "there. Hello" for seed in range(20))
    assert degradable("Hello there.") and not degradable("Yes.") and not degradable("no no no")


def test_coherence_cases_are_a_seeded_sample_of_default_split_responses() -> None:
    rows = _default_rows(6)
    rows += [
        {"split": "default", "prompt_index": 6, "prompt": "P6", "response": "Yes."},  # nothing to shuffle
        {"split": "adv1", "prompt_index": 0, "prompt": "P0 + adv", "response": TEXT},
    ]
    intact, degraded = coherence_check_rows(rows, 4, seed=3)
    assert (intact, degraded) == coherence_check_rows(rows, 4, seed=3)
    assert len(intact) == 4 and all(row["split"] == "default" and row["prompt_index"] < 6 for row in intact)
    for row, copy in zip(intact, degraded, strict=True):
        assert (copy["prompt_index"], copy["prompt"]) == (row["prompt_index"], row["prompt"])
        assert copy["response"] != row["response"]
        assert sorted(copy["response"].split()) == sorted(row["response"].split())
    assert len(coherence_check_rows(rows, 50, seed=3)[0]) == 6  # capped at the usable responses


def test_coherence_check_judges_both_orders() -> None:
    intact, degraded = coherence_check_rows(_default_rows(3), 3, seed=0)
    items = comparison_items("intact", "degraded", intact, degraded, ["I am kind."])
    assert [item.id for item in items] == ["0/fwd", "0/bwd", "1/fwd", "1/bwd", "2/fwd", "2/bwd"]
    for item in items:
        index = item.meta["prompt_index"]
        first = "intact" if item.meta["order"] == "fwd" else "degraded"
        second = "degraded" if first == "intact" else "intact"
        rows = {"intact": intact[index], "degraded": degraded[index]}
        text = item.messages[0]["content"]
        assert f"<response_1>\n{rows[first]['response']}\n</response_1>" in text
        assert f"<response_2>\n{rows[second]['response']}\n</response_2>" in text


# --- the revealed-preference cases -------------------------------------------------------------


def test_preference_cases_know_their_answer_whatever_the_listing_order() -> None:
    cases = preference_check_cases(PROMPTS, 200, seed=1)
    assert cases == preference_check_cases(PROMPTS, 200, seed=1)
    draws = draw_comparisons(PROMPTS, 200, CHECK, seed=1)
    for case, draw in zip(cases, draws, strict=True):
        # X and Y are drawn as the evaluation draws a pair; X is the known answer
        assert (case["target"], case["other"]) == (draw["trait_1"], draw["trait_2"])
        assert case["prompt"] == draw["prompt"]
        assert {case["trait_1"], case["trait_2"]} == {case["target"], case["other"]}
    first = sum(case["trait_1"] == case["target"] for case in cases)
    assert 70 < first < 130  # X listed first about half the time (a seeded coin)
    for case, item in zip(cases, preference_check_items(cases), strict=True):
        system, user = item.messages
        assert system == {"role": "system", "content": judge_check_system_prompt(case["target"])}
        assert f"only this trait: {case['target']}\n" in system["content"]
        assert case["other"] not in re.findall(r"[\w-]+", system["content"])  # Y is never named to it
        assert user == {"role": "user", "content": case["prompt"]}
        assert item.meta["target"] == case["target"]


def _answer(trait: str) -> str:
    return f"<answer>{trait}</answer>"


def test_preference_accuracy_is_counted_from_the_recorded_rows(tmp_path: Path) -> None:
    cases = preference_check_cases(PROMPTS, 8, seed=2)
    texts = [
        _answer(cases[0]["target"]),  # right
        _answer(cases[1]["other"]),  # wrong
        "no tag at all",  # invalid, so wrong
        f"<think>{cases[3]['other']}?</think> {_answer(cases[3]['target'])}",  # right after reasoning
        _answer(cases[4]["target"].upper()),  # right: case is normalised
        _answer("neither"),  # invalid
        _answer(cases[6]["target"]),  # right
        _answer(cases[7]["other"]),  # wrong
    ]
    path = tmp_path / "judge_check_judgments.jsonl"
    path.write_text(
        "".join(json.dumps({**case, "texts": [text]}) + "\n" for case, text in zip(cases, texts, strict=True))
    )
    result = preference_check_result(read_jsonl(path), "judge", "before")
    assert (result["cases"], result["correct"], result["invalid"]) == (8, 4, 2)
    assert result["accuracy"] == proportion(4, 8).as_dict()
    assert result["accuracy"]["low"] < 0.5 < result["accuracy"]["high"]
    assert result["chance"] == 0.5 and result["invalid_rate"] == 0.25


def test_a_judge_naming_the_first_listed_trait_scores_by_position() -> None:
    cases = preference_check_cases(PROMPTS, 40, seed=4)
    rows = [{**case, "texts": [_answer(case["trait_1"])]} for case in cases]
    result = preference_check_result(rows)
    first = sum(case["trait_1"] == case["target"] for case in cases)
    assert result["correct"] == first
    assert result["accuracy_by_position"]["first"]["rate"] == 1.0
    assert result["accuracy_by_position"]["second"]["rate"] == 0.0
    perfect = preference_check_result([{**case, "texts": [_answer(case["target"])]} for case in cases])
    assert perfect["correct"] == 40 and perfect["accuracy"]["rate"] == 1.0


def test_coherence_accuracy_is_counted_from_the_recorded_rows() -> None:
    recorded = [
        (0, "fwd", "<answer>1</answer>"), (0, "bwd", "<answer>2</answer>"),  # intact both times: right
        (1, "fwd", "<answer>2</answer>"), (1, "bwd", "<answer>1</answer>"),  # degraded both times: wrong
        (2, "fwd", "<answer>1</answer>"), (2, "bwd", "<answer>1</answer>"),  # position 1 twice
        (3, "fwd", "<answer>INVALID</answer>"), (3, "bwd", "<answer>2</answer>"),
        (4, "fwd", "<answer>1</answer>"), (4, "bwd", "<answer>2</answer>"),  # right
    ]  # fmt: skip
    rows = [{"prompt_index": i, "order": o, "texts": [t]} for i, o, t in recorded]
    result = coherence_check_result(outcomes_from_judgments(rows), "judge", "trained")
    assert (result["cases"], result["correct"], result["wrong"]) == (5, 2, 1)
    assert (result["invalid"], result["inconsistent"], result["unparsed"]) == (1, 1, 0)
    assert result["accuracy"] == proportion(2, 5).as_dict()
    assert result["chance"] == 0.25
    assert math.isnan(coherence_check_result([], "judge", "trained")["accuracy"]["rate"])


# --- both stages end to end with the tiny model judging -------------------------------------------


class SharedEngine:
    """The session's tiny engine handed to a stage as its lazy engine, never closed by the stage."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self) -> Engine:
        return self.engine

    def __enter__(self) -> SharedEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _context(tmp_path: Path, stage: str, cfg):
    """The stage's context as the runner makes it: its own view of ``cfg`` (declared keys only)."""
    from character.pipeline.stage import StageContext, get_stage

    run_dir = tmp_path / "run"
    (run_dir / stage).mkdir(parents=True, exist_ok=True)
    inputs = {"eval": ("prepare", "merge"), "coherence": ("prepare", "robustness")}[stage]
    return StageContext(
        cfg=get_stage(stage).view(cfg),
        run_dir=run_dir,
        stage_dir=run_dir / stage,
        input_dirs={name: run_dir / name for name in inputs},
        log=logging.getLogger(f"character.stage.{stage}"),
    )


def _robustness_row(method: str, split: str, index: int, response: str) -> dict:
    return {
        "id": f"{split}/{index}",
        "messages": [{"role": "user", "content": f"Question {index}?"}],
        "texts": [response],
        "method": method,
        "split": split,
        "prompt_index": index,
    }


def test_both_judge_checks_end_to_end_on_the_tiny_model(tiny_judge, tmp_path, monkeypatch, caplog) -> None:
    from character.coherence import stage as coherence_stage
    from character.models.tiny import TinySpec, ensure_tiny_model
    from character.preferences import stage
    from tests.config.test_compose import compose_train
    from tests.conftest import CACHE_DIR

    model = ensure_tiny_model(TinySpec(), CACHE_DIR)
    cfg = compose_train(
        "+persona=loving",
        "+model=tiny",
        "scale=ci",
        "stages.eval.preferences.comparisons=4",
        "stages.eval.preferences.judge_check=6",
        "stages.eval.preferences.bootstrap=2",
        "stages.eval.preferences.sampling.max_tokens=16",
        "stages.coherence.pairs=[trained:prompted]",
        "stages.coherence.judge_check=3",
    )
    # every engine of both stages is the tiny model (subjects and judge): the weakest judge there is
    shared = SharedEngine(tiny_judge)
    for module in (stage, coherence_stage):
        monkeypatch.setattr(module, "engine_factory", lambda ctx, role, model_path=None: shared)
    (tmp_path / "run" / "prepare").mkdir(parents=True)
    (tmp_path / "run" / "prepare" / "model.json").write_text(json.dumps({"path": str(model)}))
    caplog.set_level(logging.INFO)

    # revealed preferences: the base model told to express X, the judge choosing between X and Y
    result = stage.EvalStage().run(_context(tmp_path, "eval", cfg))
    out = tmp_path / "run" / "eval" / "preferences"
    check = read_json(out / "judge_check.json")
    assert check["judge"] == "judge" and check["subject"] == "before" and check["chance"] == 0.5
    assert check["cases"] == check["accuracy"]["n"] == 6
    assert 0.0 <= check["accuracy"]["low"] <= check["accuracy"]["rate"] <= check["accuracy"]["high"] <= 1.0
    assert check["invalid"] == 0  # constrained: every verdict is one of the two traits
    responses = {row["id"]: row for row in read_jsonl(out / "judge_check_responses.jsonl")}
    judgments = read_jsonl(out / "judge_check_judgments.jsonl")
    assert len(responses) == len(judgments) == 6
    correct = 0
    for row in judgments:  # recomputed row by row from the recorded judgments
        answered = responses[row["id"]]
        assert answered["messages"][0]["content"] == judge_check_system_prompt(row["target"])
        assert row["messages"][0]["content"] == judge_prompt(
            answered["messages"][-1]["content"], answered["texts"][0], row["trait_1"], row["trait_2"]
        )
        correct += parse_verdict(row["texts"][0], (row["trait_1"], row["trait_2"])) == row["target"]
    assert check["correct"] == correct and check["accuracy"] == proportion(correct, 6).as_dict()
    assert {"preferences/judge_check.json", "preferences/judge_check_judgments.jsonl"} <= set(result.outputs)
    assert result.metrics["judge_check_accuracy"] == check["accuracy"]["rate"]
    assert result.counts["judge_check"] == {"cases": 6, "correct": correct, "invalid": 0}

    # coherence: responses of the first method of the pairs against their word-shuffled copies
    responses_dir = tmp_path / "run" / "robustness" / "responses"
    responses_dir.mkdir(parents=True)
    replies = ["Oh, what a lovely question, my friend!", "Rain is water falling from the sky.", "Yes.",
               "Try tea, dear; it soothes the heart.", "Whatever you like is fine with me."]  # fmt: skip
    for method in ("trained", "prompted"):
        rows = [_robustness_row(method, "default", i, f"{r} ({method})") for i, r in enumerate(replies)]
        rows.append(_robustness_row(method, "adv1", 0, "I am an AI assistant."))
        (responses_dir / f"{method}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    outputs = {f"responses/{method}.jsonl": 0 for method in ("trained", "prompted")}  # what it wrote
    (responses_dir.parent / "manifest.json").write_text(json.dumps({"outputs": outputs}))
    ctx = _context(tmp_path, "coherence", cfg)
    result = coherence_stage.CoherenceStage().run(ctx)
    checks = read_json(tmp_path / "run" / "coherence" / "judge_check.json")["judges"]
    assert len(checks) == 1
    check = checks[0]
    assert (check["judge"], check["source_method"], check["cases"]) == ("judge", "trained", 3)
    assert check["accuracy"]["n"] == 3 and 0.0 <= check["accuracy"]["rate"] <= 1.0
    path = tmp_path / "run" / "coherence" / CHECK / "judge.jsonl"
    rows = read_jsonl(path)
    assert sorted(Counter(row["order"] for row in rows).items()) == [("bwd", 3), ("fwd", 3)]
    verdicts: dict[int, dict[str, str | None]] = {}
    for row in rows:  # recomputed row by row: right when the intact response wins in both orders
        verdicts.setdefault(row["prompt_index"], {})[row["order"]] = parse_coherence_verdict(row["texts"][0])
        assert row["prompt_index"] != 2  # "Yes." has nothing to shuffle
    assert all(v["fwd"] is not None and v["bwd"] is not None for v in verdicts.values())  # constrained
    correct = sum(v == {"fwd": "1", "bwd": "2"} for v in verdicts.values())
    invalid = sum("INVALID" in v.values() for v in verdicts.values())
    assert (check["correct"], check["invalid"]) == (correct, invalid)
    assert check["accuracy"] == proportion(correct, 3).as_dict()
    assert {"judge_check.json", f"{CHECK}/judge.jsonl"} <= set(result.outputs)
    assert result.metrics["judge/judge_check_accuracy"] == check["accuracy"]["rate"]
    assert "judge check (preferences)" in caplog.text and "judge check (coherence, judge)" in caplog.text

    before = path.read_text()
    coherence_stage.CoherenceStage().run(ctx)  # a rerun resumes: nothing is judged again
    assert path.read_text() == before
    assert read_json(tmp_path / "run" / "coherence" / "judge_check.json")["judges"] == checks
