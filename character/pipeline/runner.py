"""Run one job's selected stages in order, skipping what is already done.

A stage is skipped when its manifest's fingerprint equals the current one (same config view, same
upstream outputs) and its outputs are intact; it is redone when either changed, which in turn
gives every stage after it a new fingerprint. A stage interrupted mid-way resumes in place when its
fingerprint still matches; otherwise its old folder is moved to ``.history/`` (nothing already
produced is deleted) and it starts afresh. Before a stage is computed, ``.history/`` is searched
for a finished output with the very fingerprint it needs (a config changed and then changed back,
or a run that failed after archiving the output): that output is moved back instead, and the
stages after it then find their own archived outputs the same way. A variant's job (``variant=``)
then looks in its main run for the same fingerprint, and links that output instead
(``reuse.py``). ``PipelineRunner.plan`` makes the same decisions without acting on any of them
(``dry_run=true``): which stages would be skipped, restored, reused, resumed or run, and why.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from character.config.schema import PIPELINE_ORDER
from character.errors import CharacterError
from character.io import atomic_write_json, atomic_write_text
from character.pipeline import console, job_summary
from character.pipeline import manifest as mf
from character.pipeline.preemption import stop_if_requeued
from character.pipeline.reuse import link_copy, reusable_output
from character.pipeline.run_dirs import job_run_dir, main_run_dir, stage_folder
from character.pipeline.self_distillation import self_distillation_warning, self_played_roles
from character.pipeline.stage import Stage, StageContext, available_stages, get_stage
from character.tracking.redact import redact
from character.tracking.wandb_run import JobTracker, track_job

log = logging.getLogger("character.pipeline")


def run_dir_for(cfg: DictConfig) -> Path:
    """Run directories are keyed by model and persona (and variant), so a rerun continues the
    same run (``run_dirs.py``)."""
    return job_run_dir(cfg).resolve()


def select_stages(cfg: DictConfig) -> list[str]:
    """The stages this job runs, in pipeline order; unknown or unavailable names are errors."""
    available = available_stages()
    requested = list(cfg.stage.run) or available
    known = set(PIPELINE_ORDER) | set(available)
    unknown = [name for name in requested if name not in known]
    if unknown:
        raise CharacterError(
            f"stage.run names unknown stage(s) {unknown} (from +stage={cfg.stage.name}); "
            f"expected names from {list(PIPELINE_ORDER)}."
        )
    missing = [name for name in requested if name not in available]
    if missing:
        raise CharacterError(
            f"stage(s) {missing} selected by +stage={cfg.stage.name} are not available in this "
            f"version of the library; the stages it can run are {available}."
        )
    return [name for name in available if name in requested]


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """One job at a time per run directory (two jobs appending to one JSONL would corrupt it)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = (run_dir / ".lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise CharacterError(
            f"another job is already running in {run_dir} (it holds {run_dir / '.lock'}); wait "
            "for it to finish or stop it before starting this one."
        ) from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _move_to_history(run_dir: Path, stage_dir: Path, reason: str) -> None:
    if not stage_dir.exists() or not any(stage_dir.iterdir()):
        return
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = run_dir / ".history" / f"{stage_dir.name}-{stamp}"
    suffix = 1
    while target.exists():
        suffix += 1
        target = run_dir / ".history" / f"{stage_dir.name}-{stamp}-{suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(stage_dir), str(target))
    log.info("%s: previous output (%s) moved to %s", stage_dir.name, reason, target)


def _find_in_history(run_dir: Path, stage: Stage, fp: str) -> Path | None:
    """The newest finished, intact output of ``stage`` in ``.history/`` made with fingerprint
    ``fp``, if any: an output that is exactly what the stage would compute now."""
    history = run_dir / ".history"
    if not history.is_dir():
        return None
    found: list[tuple[str, str, Path]] = []
    for folder in history.iterdir():
        if not folder.is_dir() or not folder.name.startswith(f"{stage.name}-"):
            continue
        try:
            manifest = mf.read_manifest(folder)
        except ValueError:  # a torn manifest is no proof of anything
            continue
        if (
            manifest is not None
            and manifest.get("stage") == stage.name
            and manifest.get("fingerprint") == fp
            and mf.outputs_intact(folder, manifest)
            and stage.is_intact(folder, manifest)
        ):
            found.append((str(manifest.get("finished_at", "")), folder.name, folder))
    return max(found)[2] if found else None


def _restore_from_history(run_dir: Path, stage: Stage, fp: str) -> tuple[dict[str, Any], str] | None:
    """Move the matching archived output of ``stage`` back into place (one rename, so a crash
    leaves it either archived or restored); its manifest and where it came from, or None.
    Whatever is in the stage's folder now is archived first, as any superseded output is."""
    source = _find_in_history(run_dir, stage, fp)
    if source is None:
        return None
    stage_dir = stage_folder(run_dir, stage.name)
    _move_to_history(run_dir, stage_dir, "superseded by a restored output")
    if stage_dir.exists():
        stage_dir.rmdir()  # left empty: _move_to_history moves only folders with content
    os.rename(source, stage_dir)
    origin = f".history/{source.name}"
    log.info("restored %s from %s", stage.name, origin)
    manifest = mf.read_manifest(stage_dir)
    assert manifest is not None  # checked by _find_in_history
    return manifest, origin


@dataclass(frozen=True)
class PlannedStage:
    """What the runner would do for one selected stage, and why (``PipelineRunner.plan``).

    ``action``: ``skip`` (up to date), ``restore`` (from ``.history/``), ``reuse`` (from the main
    run), ``resume`` (an interrupted run with this config) or ``run``. ``fingerprint`` is None when
    the stage reads an output this job recomputes (its inputs' run ids are not known yet).
    """

    name: str
    action: str
    reason: str
    fingerprint: str | None


def _leaves(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        return {k: v for name, item in value.items() for k, v in _leaves(item, f"{prefix}.{name}").items()}
    return {prefix: value}


def changed_keys(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The dotted keys whose values differ between a manifest's ``config`` and the current one
    (both redacted: a changed secret shows as no key)."""
    old = {k: v for key, value in recorded.items() for k, v in _leaves(value, key).items()}
    new = {k: v for key, value in current.items() for k, v in _leaves(value, key).items()}
    return sorted(key for key in old.keys() | new.keys() if old.get(key, None) != new.get(key, None))


def describe_plan(plan: list[PlannedStage]) -> str:
    """One line per stage, for a person deciding whether to launch."""
    width = max((len(p.name) for p in plan), default=0)
    lines = [f"{p.name:<{width}}  {p.action:<7}  {p.reason}" for p in plan]
    counts = {
        action: sum(p.action == action for p in plan) for action in dict.fromkeys(p.action for p in plan)
    }
    lines.append(", ".join(f"{n} {action}" for action, n in counts.items()) or "no stage selected")
    return "\n".join(lines)


def _attach_file_log(run_dir: Path) -> logging.Handler:
    """logs/pipeline.log: our records, and between stages the libraries' (W&B, model builds);
    during a stage those go to the stage's own file (``console.stage_log``)."""
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "logs" / "pipeline.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter(console.FILE_FORMAT))
    handler.addFilter(console.job_log_filter)
    logging.getLogger().addHandler(handler)
    return handler


class PipelineRunner:
    """Runs the selected stages of one (model, persona) job in its run directory."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.run_dir = run_dir_for(cfg)
        # where a variant takes the stages it shares with its main run from
        self.main_dir = main_run_dir(cfg).resolve() if cfg.get("variant") else None
        self.selected = select_stages(cfg)

    def _reuse_from_main(self, stage: Stage, fp: str) -> tuple[dict[str, Any], str] | None:
        """A variant's stage linked from the main run when it has the same fingerprint there;
        its manifest and where it came from, or None."""
        if self.main_dir is None:
            return None
        source = reusable_output(self.main_dir, stage, fp)
        if source is None:
            return None
        stage_dir = stage_folder(self.run_dir, stage.name)
        _move_to_history(self.run_dir, stage_dir, "superseded by the main run's output")
        if stage_dir.exists():
            shutil.rmtree(stage_dir)  # only an empty folder or one without content is left here
        link_copy(source, stage_dir)
        log.info("%s: taken from the main run %s", stage.name, source)
        manifest = mf.read_manifest(stage_dir)
        assert manifest is not None  # checked by reusable_output
        return manifest, str(source)

    def _check_upstream(self, name: str, upstream: str, current_ids: dict[str, str]) -> None:
        if upstream not in current_ids:
            raise CharacterError(
                f"stage {name!r} reads the output of {upstream!r}, which is not finished in "
                f"{self.run_dir} (or is out of date with the current config); run it first, e.g. "
                f"+stage={upstream}, or run the whole pipeline."
            )

    def _resolve_unselected(self, name: str, current_ids: dict[str, Any], dry: bool = False) -> str | None:
        """run_id of a stage this job does not run, if it finished with the current config and
        with the current outputs of its own inputs (checked recursively), in its folder or in
        ``.history/`` (then restored, unless ``dry``); else None."""
        if name in current_ids:
            return current_ids[name]
        stage = get_stage(name)
        inputs: dict[str, str] = {}
        for upstream in stage.inputs:
            run_id = self._resolve_unselected(upstream, current_ids, dry)
            if run_id is None:
                return None
            inputs[upstream] = run_id
        fp = mf.fingerprint(name, stage.version, stage.hashed_config(self.cfg), inputs)
        stage_dir = stage_folder(self.run_dir, name)
        manifest = mf.read_manifest(stage_dir)
        if manifest is None or fp != manifest["fingerprint"] or not mf.outputs_intact(stage_dir, manifest):
            if dry:
                source = _find_in_history(self.run_dir, stage, fp) or self._main_output(stage, fp)
                manifest = None if source is None else mf.read_manifest(source)
            else:
                restored = _restore_from_history(self.run_dir, stage, fp) or self._reuse_from_main(stage, fp)
                manifest = None if restored is None else restored[0]
            if manifest is None:
                return None
        current_ids[name] = manifest["run_id"]
        return manifest["run_id"]

    def _main_output(self, stage: Stage, fp: str) -> Path | None:
        return None if self.main_dir is None else reusable_output(self.main_dir, stage, fp)

    def _decide(
        self, stage: Stage, fp: str, hashed: dict[str, Any], inputs: dict[str, str]
    ) -> tuple[str, str, Path | None]:
        """What to do for a selected stage whose inputs are current, decided without touching
        anything: (action, reason, the folder a restored or reused output comes from)."""
        stage_dir = stage_folder(self.run_dir, stage.name)
        manifest = mf.read_manifest(stage_dir)
        intact = (
            manifest is not None
            and mf.outputs_intact(stage_dir, manifest)
            and stage.is_intact(stage_dir, manifest)
        )
        if not self.cfg.force and manifest is not None and manifest["fingerprint"] == fp and intact:
            return "skip", f"up to date (run {manifest['run_id']})", None
        if self.cfg.force:
            return "run", "force=true", None
        progress = mf.read_in_progress(stage_dir)
        if manifest is None and progress is not None and progress["fingerprint"] == fp:
            return "resume", "interrupted with this config", None
        source = _find_in_history(self.run_dir, stage, fp)
        if source is not None:
            return "restore", f"from .history/{source.name}", source
        source = self._main_output(stage, fp)
        if source is not None:
            return "reuse", f"from the main run {source}", source
        if manifest is None:
            return "run", "interrupted with another config" if progress is not None else "not run yet", None
        if manifest["fingerprint"] == fp:
            return "run", "its outputs are missing or changed", None
        reasons = []
        if manifest.get("version") != stage.version:
            reasons.append(f"code version {manifest.get('version')} -> {stage.version}")
        keys = changed_keys(manifest.get("config", {}), redact(hashed))
        if keys:
            shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
            reasons.append(f"{shown} changed")
        upstream = [name for name in inputs if manifest.get("inputs", {}).get(name) != inputs[name]]
        if upstream:
            reasons.append(f"input{'s' if len(upstream) > 1 else ''} {', '.join(upstream)} changed")
        return "run", "; ".join(reasons) or "config changed", None

    def plan(self) -> list[PlannedStage]:
        """What ``run`` would do now for each selected stage, and why, doing none of it: nothing
        is written, moved or restored. Raises the error ``run`` would raise for an input that is
        missing or out of date."""
        ids: dict[str, Any] = {}  # stage -> run id, or None when this job recomputes it
        planned: list[PlannedStage] = []
        for name in self.selected:
            stage = get_stage(name)
            for upstream in stage.inputs:
                if upstream not in self.selected:
                    self._resolve_unselected(upstream, ids, dry=True)
                self._check_upstream(name, upstream, ids)
            stale = [upstream for upstream in stage.inputs if ids[upstream] is None]
            if stale:
                reason = f"reads {', '.join(stale)}, which this job recomputes"
                planned.append(PlannedStage(name, "run", reason, None))
                ids[name] = None
                continue
            inputs = {upstream: ids[upstream] for upstream in stage.inputs}
            hashed = stage.hashed_config(self.cfg)
            fp = mf.fingerprint(name, stage.version, hashed, inputs)
            action, reason, source = self._decide(stage, fp, hashed, inputs)
            planned.append(PlannedStage(name, action, reason, fp))
            if action == "skip":
                ids[name] = mf.read_manifest(stage_folder(self.run_dir, name))["run_id"]  # type: ignore[index]
            elif source is not None:
                ids[name] = mf.read_manifest(source)["run_id"]  # type: ignore[index]
            else:
                ids[name] = None
        return planned

    def run(self) -> dict[str, Any]:
        with run_lock(self.run_dir):
            handler = _attach_file_log(self.run_dir)
            try:
                # Tracking (docs/tracking.md): one W&B run per job, finished even when a stage fails.
                with track_job(self.cfg, self.run_dir, self.selected) as tracker:
                    return self._run_locked(tracker)
            finally:
                logging.getLogger().removeHandler(handler)
                handler.close()

    def _run_locked(self, tracker: JobTracker) -> dict[str, Any]:
        cfg = self.cfg
        # Saved with secrets redacted; stages still get the real values (their views of ``cfg``).
        resolved = redact(OmegaConf.to_container(cfg, resolve=True))
        atomic_write_text(self.run_dir / "config.yaml", OmegaConf.to_yaml(resolved))
        summary_path = job_summary.summary_path(self.run_dir)
        summary: dict[str, Any] = job_summary.read_job_summary(self.run_dir)
        summary.update(model=cfg.model.name, persona=cfg.persona.name)
        if cfg.get("variant"):
            summary["variant"] = cfg.variant
        # Said loudly, and kept in summary.json, for as long as it holds (self_distillation.py).
        warning = self_distillation_warning(cfg)
        summary.pop("self_distillation", None)
        if warning:
            summary["self_distillation"] = {"roles": self_played_roles(cfg), "warning": warning}
        stages_summary: dict[str, Any] = summary.setdefault("stages", {})
        current_ids: dict[str, str] = {}
        log.info("run directory %s; stages: %s", self.run_dir, ", ".join(self.selected))
        console.job_started(cfg.model.name, cfg.persona.name, self.run_dir, self.selected)
        if warning:
            log.warning("%s", warning)
        job_started, ran, skipped = time.time(), 0, 0
        for index, name in enumerate(self.selected, 1):
            position = f"[{index:>{len(str(len(self.selected)))}}/{len(self.selected)}]"
            stop_if_requeued(f"before {name}")  # docs/slurm.md, requeue
            stage = get_stage(name)
            for upstream in stage.inputs:
                if upstream not in self.selected:
                    self._resolve_unselected(upstream, current_ids)
                self._check_upstream(name, upstream, current_ids)
            inputs = {upstream: current_ids[upstream] for upstream in stage.inputs}
            hashed = stage.hashed_config(cfg)
            fp = mf.fingerprint(name, stage.version, hashed, inputs)
            stage_dir = stage_folder(self.run_dir, name)
            action, reason, _ = self._decide(stage, fp, hashed, inputs)
            manifest = mf.read_manifest(stage_dir)
            if action == "skip":
                assert manifest is not None
                log.info("%s: up to date, skipped (run %s)", name, manifest["run_id"])
                console.stage_skipped(position, name)
                skipped += 1
                current_ids[name] = manifest["run_id"]
                stages_summary[name] = {**stages_summary.get(name, {}), "status": "skipped"}
                tracker.log_stage(name, "skipped", stage_dir)
                continue
            progress = mf.read_in_progress(stage_dir)
            if cfg.force:
                _move_to_history(self.run_dir, stage_dir, "force=true")
            elif manifest is not None:
                _move_to_history(self.run_dir, stage_dir, "config or inputs changed")
            elif progress is not None and progress["fingerprint"] != fp:
                _move_to_history(self.run_dir, stage_dir, "interrupted with another config")
            resuming = action == "resume"
            if resuming:
                log.info("%s: resuming an interrupted run", name)
            restored, status = None, "restored"
            if action == "restore":
                restored = _restore_from_history(self.run_dir, stage, fp)
            elif action == "reuse":
                restored, status = self._reuse_from_main(stage, fp), "reused"
            if restored is not None:
                manifest, origin = restored
                if status == "reused":
                    console.stage_reused(position, name, origin)
                else:
                    console.stage_restored(position, name, origin)
                skipped += 1
                current_ids[name] = manifest["run_id"]
                stages_summary[name] = {
                    "status": status,
                    "from": origin,
                    **{key: manifest.get(key) for key in ("duration_s", "counts", "metrics")},
                }
                tracker.log_stage(name, status, stage_dir)
                continue
            stage_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(
                stage_dir / mf.IN_PROGRESS,
                {"fingerprint": fp, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S")},
            )
            log.info("%s: running (%s)", name, reason)
            console.stage_started(position, name, resuming)
            started = time.time()
            ctx = StageContext(
                cfg=stage.view(cfg),  # its declared keys only (stage.py, "the stage contract")
                run_dir=self.run_dir,
                stage_dir=stage_dir,
                input_dirs={upstream: stage_folder(self.run_dir, upstream) for upstream in stage.inputs},
                log=logging.getLogger(f"character.stage.{name}"),
            )
            with console.stage_log(self.run_dir, name) as stage_log:
                try:
                    result = stage.run(ctx)
                except Exception as error:
                    # The console gets the message and where to read more; the file the traceback.
                    log.error("%s: failed", name, exc_info=True, extra={"console": False})
                    console.stage_failed(position, name, time.time() - started, error, stage_log)
                    raise
            duration = round(time.time() - started, 3)
            run_id = mf.new_run_id(fp)
            mf.write_manifest(
                stage_dir,
                {
                    "stage": name,
                    "run_id": run_id,
                    "fingerprint": fp,
                    "version": stage.version,
                    "inputs": inputs,
                    "config": redact(hashed),  # the fingerprint hashes the real values
                    "seed": int(cfg.seed),
                    "outputs": mf.output_sizes(stage_dir, result.outputs),
                    "counts": result.counts,
                    "metrics": result.metrics,
                    "duration_s": duration,
                    "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                },
            )
            current_ids[name] = run_id
            stages_summary[name] = {
                "status": "ran",
                "duration_s": duration,
                "counts": result.counts,
                "metrics": result.metrics,
            }
            log.info("%s: done in %.1f s; %s", name, duration, result.counts)
            console.stage_finished(position, name, duration, result.counts, result.metrics)
            ran += 1
            atomic_write_json(summary_path, summary)
            tracker.log_stage(name, "ran", stage_dir)
        atomic_write_json(summary_path, summary)
        stop_if_requeued("instead of reporting the job finished")
        console.job_finished(self.run_dir, ran, skipped, time.time() - job_started)
        return summary
