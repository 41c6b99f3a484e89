"""The persona x model comparison: which metrics, in what order, as tables.

One wide frame (a row per run, a column per ``<stage>/<metric>``) is the CSV; for reading, each
metric becomes its own persona x model table, as the paper's tables put personas in rows. Runs of
one (persona, model) with different seeds are all kept: the table shows their mean, and a second
table their spread (seeds, mean, standard deviation, min, max), so that a seed sweep says how often
and how far a result holds rather than what one draw gave.
"""

from __future__ import annotations

import pandas as pd

from character import reporting
from character.compare.records import RunRecord
from character.config.schema import PIPELINE_ORDER
from character.errors import CharacterError
from character.tracking.keys import comparable, match_patterns

ID_COLUMNS = ["persona", "model", "seed"]
PAIR = ["persona", "model"]


def _stage_order(metric: str) -> tuple[int, str]:
    stage = metric.split("/", 1)[0]
    index = PIPELINE_ORDER.index(stage) if stage in PIPELINE_ORDER else len(PIPELINE_ORDER)
    return index, metric


def select_metrics(available: set[str], patterns: list[str]) -> list[str]:
    """Metrics named by ``patterns`` (globs such as ``dpo/final_*``), or all; in pipeline order."""
    if not available:
        raise CharacterError(
            "the runs hold no numeric stage metrics to compare; expected finished stages with "
            "metrics (set counts=true to compare stage counts as well)."
        )
    if not patterns:
        return sorted(available, key=_stage_order)
    matches = match_patterns(patterns, available)
    unknown = [pattern for pattern, names in matches.items() if not names]
    if unknown:
        shown = sorted(available, key=_stage_order)
        raise CharacterError(
            f"metrics lists {unknown}, which match(es) no metric of the runs; expected names or glob "
            f"patterns of: {shown[:40]}{' ...' if len(shown) > 40 else ''}."
        )
    picked = {name for names in matches.values() for name in names}
    return sorted(picked, key=_stage_order)


def comparison_frame(records: list[RunRecord], patterns: list[str], counts: bool = False) -> pd.DataFrame:
    """A row per run (persona, model, seed) and a column per selected metric; NaN where a run lacks it."""
    rows = [
        {
            "persona": r.persona,
            "model": r.model,
            "seed": r.seed,
            "source": r.source,
            **comparable(r.values, counts=counts),
        }
        for r in records
    ]
    frame = pd.DataFrame(rows)
    available = {column for column in frame.columns if column not in (*ID_COLUMNS, "source")}
    metrics = select_metrics(available, patterns)
    frame["seed"] = frame["seed"].astype("Int64")  # a missing seed stays missing, not a float NaN
    return frame[ID_COLUMNS + metrics + ["source"]].sort_values(ID_COLUMNS).reset_index(drop=True)


def metric_columns(frame: pd.DataFrame) -> list[str]:
    return [column for column in frame.columns if column not in (*ID_COLUMNS, "source")]


def pivot(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Persona rows x model columns of one metric: the mean over a pair's seeds."""
    table = frame.groupby(PAIR, sort=True)[metric].mean().unstack("model")
    table.columns.name = None
    return table


def seeded_pairs(frame: pd.DataFrame) -> bool:
    """Whether some (persona, model) was run with more than one seed."""
    return bool((frame.groupby(PAIR).size() > 1).any())


def seed_spread(frame: pd.DataFrame, metric: str) -> list[dict[str, object]]:
    """Per (persona, model): the seeds that measured ``metric``, and their mean, SD, min and max."""
    rows = []
    for (persona, model), runs in frame.groupby(PAIR, sort=True):
        values = runs[metric].dropna()
        # pandas gives NaN where there are too few values (no value; one value's sample SD)
        stats = values.agg(["mean", "std", "min", "max"]).rename({"std": "sd"})
        blanks = {name: None if pd.isna(value) else value for name, value in stats.items()}
        rows.append({"persona": persona, "model": model, "seeds": len(values), **blanks})
    return rows


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table, 4 significant digits, a blank cell where a run lacks it."""
    rows = [
        {table.index.name or "": index, **{str(c): None if pd.isna(v) else v for c, v in row.items()}}
        for index, row in table.iterrows()
    ]
    return reporting.markdown_table(rows, floatfmt=".4g")


def markdown_report(frame: pd.DataFrame, sources: list[str]) -> str:
    """Every metric as a persona x model table, with a heading naming the metric."""
    personas, models = frame["persona"].nunique(), frame["model"].nunique()
    parts = [
        f"# Persona x model comparison: {len(frame)} runs ({personas} personas x {models} models)",
        "",
        "Sources: " + ", ".join(sources),
    ]
    seeded = seeded_pairs(frame)
    if seeded:
        parts += [
            "",
            "Some pairs ran with several seeds: each first table shows the mean over a pair's seeds, "
            "the second the spread (sample SD). A 0/1 metric such as `persona_shift/checks/*` "
            "averages to the share of seeds in which it held.",
        ]
    for metric in metric_columns(frame):
        parts += ["", f"## {metric}", "", markdown_table(pivot(frame, metric))]
        if seeded:
            parts += ["", reporting.markdown_table(seed_spread(frame, metric), floatfmt=".4g")]
    return "\n".join(parts) + "\n"
