"""The stage contract, over every built-in stage (docs/pipeline.md, "The stage contract").

- A stage sees only the keys it declares: reading any other key of the config raises, naming the
  stage and the key; every declared key reads as the config's value.
- Changing a declared key that can change a stage's output redoes exactly the stages that declare
  it and every stage after them; changing a runtime key (the schema's ``runtime=True`` fields and
  a stage's ``runtime_keys``) redoes nothing.

The second is checked key by key through ``PipelineRunner.plan`` on a run directory whose every
stage finished with the base config, so no stage runs. The expected stages are computed from the
declarations and the resolved config alone (an interpolation such as ``stages.sft.max_len:
${model.max_context}`` counts as a change of both keys), not from the fingerprints.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import pytest
from omegaconf import DictConfig, OmegaConf

from character.config.schema import PIPELINE_ORDER
from character.io import atomic_write_json
from character.pipeline import builtin  # noqa: F401
from character.pipeline import manifest as mf
from character.pipeline.runner import PipelineRunner, describe_plan
from character.pipeline.stage import (
    Stage,
    StageContext,
    StageResult,
    UndeclaredKeyError,
    get_stage,
    register_stage,
)
from character.tracking.redact import redact
from tests.config.test_compose import compose_train

BUILTIN = list(PIPELINE_ORDER)


def compose(run_root: Path, *overrides: str) -> DictConfig:
    """A paper-scale job of every built-in stage (no weights are needed: nothing runs)."""
    return compose_train(
        "+persona=loving",
        "+model=llama3.1-8b",
        f"run_root={run_root}",
        f"stage.run=[{','.join(BUILTIN)}]",
        *overrides,
    )


def _covers(group: str, key: str) -> bool:
    return key == group or key.startswith(f"{group}.")


def _leaves(value: Any, prefix: str) -> dict[str, Any]:
    """Dotted leaf -> value; lists, scalars, None and empty dicts are leaves."""
    if isinstance(value, dict) and value:
        return {k: v for name, item in value.items() for k, v in _leaves(item, f"{prefix}.{name}").items()}
    return {prefix: value}


def _get(container: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        if not isinstance(container, dict) or part not in container:
            return None
        container = container[part]
    return container


def _set(container: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        container = container[part]
    container[leaf] = value


def _changed(value: Any) -> Any:
    """Another value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.5
    if isinstance(value, str):
        return f"{value}-changed"
    if isinstance(value, list):
        return value[:-1] if value else ["changed"]
    if isinstance(value, dict):  # an empty dict, e.g. no extra coherence judges
        return {"changed": {}}
    return "changed"  # None


def finish_every_stage(cfg: DictConfig, model_dir: Path) -> Path:
    """The run directory of ``cfg`` as if every built-in stage had finished with it."""
    run_dir = PipelineRunner(cfg).run_dir
    ids: dict[str, str] = {}
    for name in BUILTIN:
        stage = get_stage(name)
        inputs = {upstream: ids[upstream] for upstream in stage.inputs}
        hashed = stage.hashed_config(cfg)
        fp = mf.fingerprint(name, stage.version, hashed, inputs)
        ids[name] = f"{fp[:12]}-planted"
        (run_dir / name).mkdir(parents=True, exist_ok=True)
        if name == "prepare":  # prepare.is_intact: the recorded weights still exist
            atomic_write_json(run_dir / name / "model.json", {"name": "llama3.1-8b", "path": str(model_dir)})
        atomic_write_json(
            run_dir / name / mf.MANIFEST,
            {
                "stage": name,
                "run_id": ids[name],
                "fingerprint": fp,
                "version": stage.version,
                "inputs": inputs,
                "config": redact(hashed),
                "outputs": {},
            },
        )
    return run_dir


def source_run(root: Path) -> Path:
    """Another model's finished introspection, for ``stages.sft_data.source_run``."""
    other = root / "other" / "loving"
    for name in ("prepare", "reflection", "interaction"):
        atomic_write_json(other / name / mf.MANIFEST, {"run_id": f"{name}-other"})
    return other


def downstream(stages: set[str]) -> set[str]:
    """``stages`` and every built-in stage that reads one of them, directly or not."""
    found = set(stages)
    for name in BUILTIN:  # pipeline order: a stage's inputs come before it
        if any(upstream in found for upstream in get_stage(name).inputs):
            found.add(name)
    return found


def declarers(leaves: set[str]) -> tuple[set[str], set[str]]:
    """(stages whose output a change of ``leaves`` can change by declaration: config_keys, not
    runtime; stages that read one only to derive a hashed value, which may or may not change)."""
    direct, derived = set(), set()
    for name in BUILTIN:
        stage = get_stage(name)
        for leaf in leaves:
            if stage.is_runtime(leaf):
                continue
            if any(_covers(key, leaf) or _covers(leaf, key) for key in stage.config_keys):
                direct.add(name)
            elif any(_covers(key, leaf) or _covers(leaf, key) for key in stage.derived_keys):
                derived.add(name)
    return direct, derived


def declared_leaves(cfg: DictConfig) -> list[str]:
    """Every leaf of the config under a key some built-in stage declares."""
    container = OmegaConf.to_container(cfg, resolve=False)
    found: dict[str, None] = {}
    for name in BUILTIN:
        for key in get_stage(name).declared_keys():
            *parents, last = key.split(".")
            group = _get(container, ".".join(parents)) if parents else container
            if isinstance(group, dict) and last in group:  # set in the config (None included)
                found.update(dict.fromkeys(_leaves(group[last], key)))
    return list(found)


def test_every_declared_key_redoes_exactly_its_stages_and_what_follows(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    base = compose(root)
    (tmp_path / "weights").mkdir()
    finish_every_stage(base, tmp_path / "weights")
    assert {p.action for p in PipelineRunner(base).plan()} == {"skip"}  # the planted run is current

    container = OmegaConf.to_container(base, resolve=False)
    resolved = _leaves(OmegaConf.to_container(base, resolve=True), "")
    special = {"stages.sft_data.source_run": str(source_run(root))}
    checked: dict[str, set[str]] = {}
    for leaf in declared_leaves(base):
        value = OmegaConf.select(base, leaf)  # resolved: an interpolation changes as its value
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        changed = copy.deepcopy(container)
        _set(changed, leaf, special.get(leaf, _changed(value)))
        cfg = OmegaConf.create(changed)
        now = _leaves(OmegaConf.to_container(cfg, resolve=True), "")
        moved = {key[1:] for key in resolved.keys() | now.keys() if resolved.get(key) != now.get(key)}
        direct, derived = declarers(moved)
        rerun = {p.name for p in PipelineRunner(cfg).plan() if p.action != "skip"}
        assert downstream(direct) <= rerun <= downstream(direct | derived), (
            leaf,
            sorted(moved),
            sorted(rerun),
        )
        if not derived:
            assert rerun == downstream(direct), leaf
        checked[leaf] = rerun

    # The check covered every stage's keys, both kinds, and could tell them apart.
    for name in BUILTIN:
        stage = get_stage(name)
        own = [leaf for leaf in checked if any(_covers(key, leaf) for key in stage.config_keys)]
        affecting = [leaf for leaf in own if not stage.is_runtime(leaf)]
        assert affecting, f"{name}: no output-affecting key was changed"
        assert all(name in checked[leaf] for leaf in affecting), name
    runtime = [leaf for leaf in checked if declarers({leaf}) == (set(), set())]
    assert "stages.steer.batch_size" in runtime and "engines.student.device" in runtime
    assert all(checked[leaf] == set() for leaf in runtime)
    assert checked["stages.dpo.batch_size"] >= {"dpo", "sft", "merge", "report"}  # training: not runtime


def test_a_stage_reads_its_declared_keys_and_nothing_else(tmp_path: Path) -> None:
    cfg = compose(tmp_path / "runs")
    every = _leaves(OmegaConf.to_container(cfg, resolve=True), "")
    for name in BUILTIN:
        stage = get_stage(name)
        view = stage.view(cfg)
        declared = stage.declared_keys()
        undeclared = 0
        for dotted, value in every.items():
            leaf = dotted[1:]
            obj: Any = view
            if any(_covers(key, leaf) for key in declared):
                for part in leaf.split("."):
                    obj = obj[part]
                got = OmegaConf.to_container(obj, resolve=True) if OmegaConf.is_config(obj) else obj
                assert got == value, (name, leaf)
                continue
            undeclared += 1
            with pytest.raises(UndeclaredKeyError) as error:
                for part in leaf.split("."):
                    obj = getattr(obj, part)
            assert error.value.stage == name and _covers(error.value.key, leaf), (name, leaf)
            assert f"stage {name!r} read the config key {error.value.key!r}" in str(error.value)
        assert undeclared > 0, name
        with pytest.raises(UndeclaredKeyError):
            view.get("wandb")  # get and `in` are reads too
        with pytest.raises(UndeclaredKeyError):
            _ = "verbose" in view
        with pytest.raises(TypeError, match="read-only"):
            view.seed = 1
    # e.g. the robustness stage's steered engine reads the steer stage's device and batch size:
    # declared as runtime keys, readable, and not hashed
    robustness = get_stage("robustness")
    assert robustness.view(cfg).stages.steer.batch_size == cfg.stages.steer.batch_size
    assert "stages.steer.batch_size" not in robustness.hashed_config(cfg)
    with pytest.raises(UndeclaredKeyError, match="'stages.steer.samples'"):
        _ = robustness.view(cfg).stages.steer.samples


class Sneaky(Stage):
    """Reads a key it does not declare (the bug the view exists to catch)."""

    name = "sneaky"
    config_keys: ClassVar[tuple[str, ...]] = ("plugin_params.sneaky.rows",)

    def run(self, ctx: StageContext) -> StageResult:
        rows = ctx.cfg.plugin_params.sneaky.rows * ctx.cfg.stages.dpo.batch_size
        (ctx.stage_dir / "rows.txt").write_text(f"{rows}\n")
        return StageResult(outputs=["rows.txt"])


def test_an_undeclared_read_fails_the_stage_on_its_first_run(run_root: Path) -> None:
    register_stage(Sneaky)
    cfg = compose_train(
        "+persona=loving",
        "+model=tiny",
        f"run_root={run_root}",
        "stage.run=[sneaky]",
        "+plugin_params.sneaky.rows=2",
    )
    with pytest.raises(UndeclaredKeyError, match="stage 'sneaky' read the config key 'stages'"):
        PipelineRunner(cfg).run()
    assert mf.read_manifest(run_root / "tiny" / "loving" / "sneaky") is None


def test_the_plan_says_what_would_run_and_why_without_touching_anything(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    (tmp_path / "weights").mkdir()
    run_dir = finish_every_stage(compose(root), tmp_path / "weights")
    before = sorted(str(p) for p in run_dir.rglob("*"))
    plan = PipelineRunner(compose(root, "stages.dpo.beta=0.2", "stages.steer.batch_size=3")).plan()
    actions = {p.name: p.action for p in plan}
    assert [name for name, action in actions.items() if action == "run"] == [
        name for name in BUILTIN if BUILTIN.index(name) >= BUILTIN.index("dpo") and name != "steer"
    ]
    reasons = {p.name: p.reason for p in plan}
    assert reasons["dpo"] == "stages.dpo.beta changed"
    assert reasons["sft"] == "reads dpo, sft_data, which this job recomputes"
    assert actions["steer"] == "skip"  # its batch size is a runtime key
    assert "dpo" in describe_plan(plan) and describe_plan(plan).endswith("6 skip, 12 run")
    assert sorted(str(p) for p in run_dir.rglob("*")) == before  # nothing written or moved

    # the same through the launcher: dry_run=true validates, plans, and runs nothing
    from launchers.train import train

    summary = train(compose(root, "stages.dpo.beta=0.2", "dry_run=true"))
    assert summary["stages"]["dpo"] == {"status": "run", "reason": "stages.dpo.beta changed"}
    assert summary["stages"]["steer"]["status"] == "skip"
    assert sorted(str(p) for p in run_dir.rglob("*")) == before
