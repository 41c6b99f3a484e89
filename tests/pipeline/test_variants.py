"""A variant of a run (an ablation) lives in the main run's folder and takes every stage whose
fingerprint equals the main run's from it, as hard links, instead of computing it again."""

from __future__ import annotations

from pathlib import Path

import pytest

from character.config.validate import validate_train_config
from character.errors import CharacterError
from character.io import read_json
from character.pipeline.run_dirs import job_run_dir
from tests.config.test_compose import compose_train
from tests.pipeline.test_runner import TOY, run, statuses


def test_a_variant_reuses_what_it_shares_and_computes_the_rest(run_root: Path) -> None:
    main = run_root / "tiny" / "loving"
    first = run(run_root, "+plugin_params.toy_rows.rows=4")
    assert set(statuses(first).values()) == {"ran"}
    main_manifests = {name: read_json(main / name / "manifest.json") for name in first["stages"]}

    # same config for every stage: everything is taken from the main run, nothing computed
    variant = run(run_root, "+plugin_params.toy_rows.rows=4", "variant=same")
    folder = main / "variants" / "same"
    assert statuses(variant) == {"prepare": "reused", "toy_rows": "reused", "toy_count": "reused"}
    assert variant["variant"] == "same"
    assert variant["stages"]["toy_rows"]["from"] == str((main / "toy_rows").resolve())
    for name, manifest in main_manifests.items():
        assert read_json(folder / name / "manifest.json")["run_id"] == manifest["run_id"]
    rows, linked = main / "toy_rows" / "rows.jsonl", folder / "toy_rows" / "rows.jsonl"
    assert rows.stat().st_ino == linked.stat().st_ino  # a hard link, not a copy
    assert (folder / "toy_rows" / "calls.log").read_text().split() == ["0", "1", "2", "3"]  # once, in main

    # a variant that changes the last stage: the first two reused, the last computed in the variant
    changed = run(
        run_root, "+plugin_params.toy_rows.rows=4", "+plugin_params.toy_count.scale=3", "variant=x3"
    )
    assert statuses(changed) == {"prepare": "reused", "toy_rows": "reused", "toy_count": "ran"}
    total = sum(i * i for i in range(4)) * 3
    assert (main / "variants" / "x3" / "toy_count" / "total.txt").read_text() == f"{float(total)}\n"
    # ... and the main run is untouched: same manifests, its own result
    for name, manifest in main_manifests.items():
        assert read_json(main / name / "manifest.json") == manifest
    assert (main / "toy_count" / "total.txt").read_text() == f"{float(total / 3)}\n"

    # rerun of the variant: its own outputs are up to date now
    again = run(run_root, "+plugin_params.toy_rows.rows=4", "+plugin_params.toy_count.scale=3", "variant=x3")
    assert set(statuses(again).values()) == {"skipped"}


def test_without_a_main_run_a_variant_computes_everything(run_root: Path) -> None:
    summary = run(run_root, "variant=alone")
    assert set(statuses(summary).values()) == {"ran"}
    assert (run_root / "tiny" / "loving" / "variants" / "alone" / "toy_count" / "manifest.json").exists()
    assert not (run_root / "tiny" / "loving" / "toy_count").exists()


def test_variant_names_are_folder_names(run_root: Path) -> None:
    cfg = compose_train("+persona=loving", "+model=tiny", f"run_root={run_root}", *TOY, "variant=a/b")
    with pytest.raises(CharacterError, match=r"variant=.a/b.*expected null or a folder name: letters"):
        validate_train_config(cfg)
    cfg = compose_train(
        "+persona=loving", "+model=tiny", f"run_root={run_root}", "+ablation=interaction_only"
    )
    assert job_run_dir(cfg) == run_root / "tiny" / "loving" / "variants" / "interaction_only"
