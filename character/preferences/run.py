"""The whole revealed-preference evaluation of some subjects (``run_preference_eval``): the
``eval`` stage and ``launchers.evaluate`` both run it.

Here rather than in ``comparisons``, whose pieces the judge check (``judge_check``) reuses, so
that neither of those two modules imports the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from character.engines.batch import row_seed
from character.pipeline.engines import sampling_from
from character.preferences import judge_check
from character.preferences.comparisons import (
    Subject,
    draw_comparisons,
    generate_responses,
    judge_responses,
    outcomes_from,
    usable_prompts,
)
from character.preferences.report import report


def run_preference_eval(
    subjects: Sequence[Subject],
    subject_engine: Callable[[Subject], Any],
    judge_engine: Any,
    params: Any,
    out_dir: Path,
    seed: int,
    tokenizer,
    log,
) -> dict[str, Any]:
    """The whole evaluation for ``subjects`` (in order: e.g. before, after) into ``out_dir``.

    ``subject_engine(subject)`` and ``judge_engine`` are lazy engines (``LazyEngine``), created
    only when rows are left to generate and closed by the caller. With ``params.judge_check`` > 0,
    the first subject (the base model, before training) also answers the judge check's cases
    (``judge_check``), on the same engine, and the judge's accuracy on them is written beside the
    ratings, so a judge that cannot tell two traits apart shows.
    """
    pool = int(params.comparisons) * len(params.conditions)  # enough for every draw to differ
    prompts, too_long = usable_prompts(params.prompts, tokenizer, params.max_prompt_tokens, seed, pool)
    log.info(
        "preferences: %d prompts (%d dropped: over %d tokens)",
        len(prompts),
        too_long,
        params.max_prompt_tokens,
    )
    draws = [d for c in params.conditions for d in draw_comparisons(prompts, params.comparisons, c, seed)]
    responses = {}
    check_cases, check_subject = int(params.judge_check), subjects[0]
    check_responses: list[dict[str, Any]] = []
    check: dict[str, Any] | None = None
    for subject in subjects:
        with subject_engine(subject) as engine:
            responses[subject.name] = generate_responses(
                engine,
                subject,
                draws,
                sampling_from(params.sampling, row_seed(seed, subject.name)),
                out_dir / f"responses_{subject.name}.jsonl",
            )
            if check_cases > 0 and subject is check_subject:
                check_responses = judge_check.generate_preference_check(
                    engine,
                    subject,
                    prompts,
                    check_cases,
                    sampling_from(params.sampling, row_seed(seed, f"{judge_check.CHECK}/{subject.name}")),
                    seed,
                    out_dir,
                )
    per_subject: dict[str, dict[str, dict[str, Any]]] = {}
    with judge_engine as judge:
        for subject in subjects:
            judged = judge_responses(
                judge,
                responses[subject.name],
                sampling_from(params.judge_sampling, seed),
                out_dir / f"judgments_{subject.name}.jsonl",
            )
            per_subject[subject.name] = {}
            for condition in params.conditions:
                outcomes, valid, total = outcomes_from(judged, condition)
                per_subject[subject.name][condition] = {"outcomes": outcomes, "valid": valid, "total": total}
                log.info(
                    "preferences: %s / %s: %d of %d verdicts valid (invalid rate %.1f%%)",
                    subject.name,
                    condition,
                    valid,
                    total,
                    100 * (1 - valid / total) if total else 0,
                )
        if check_responses:
            check = judge_check.judge_preference_check(
                judge,
                check_responses,
                sampling_from(params.judge_sampling, seed),
                out_dir,
                check_subject.name,
                log,
            )
    summary = report(out_dir, per_subject, params.bootstrap, seed)
    summary["prompts"] = {"used": len(prompts), "dropped_too_long": too_long}
    if check is not None:
        summary["judge_check"] = check
        summary["outputs"] += [
            judge_check.RESULT_FILE,
            judge_check.PREFERENCE_RESPONSES,
            judge_check.PREFERENCE_JUDGMENTS,
        ]
    return summary
