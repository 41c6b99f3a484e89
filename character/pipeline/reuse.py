"""A variant's stages taken from its main run: same fingerprint, same output, linked not recomputed.

An ablation changes only the stages after distillation; its prepare, prompts, teacher, student,
dpo_data and dpo stages then have the very fingerprint of the main run's (same config view, same
upstream run ids), so their outputs are exactly what the variant would compute. They are copied
into the variant's folder as hard links (no disk space; a plain copy across filesystems), with
their manifests, so the run ids and every later fingerprint match the main run's as well.
Finished outputs are never rewritten in place (a rerun moves the old folder to ``.history/``
first), so a linked file keeps its content whatever the main run does next.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from character.pipeline import manifest as mf
from character.pipeline.stage import Stage


def reusable_output(main_dir: Path, stage: Stage, fp: str) -> Path | None:
    """The main run's finished, intact output of ``stage`` if it was made with fingerprint ``fp``."""
    folder = main_dir / stage.name
    try:
        manifest = mf.read_manifest(folder)
    except ValueError:  # a torn manifest proves nothing
        return None
    if (
        manifest is None
        or manifest.get("fingerprint") != fp
        or not mf.outputs_intact(folder, manifest)
        or not stage.is_intact(folder, manifest)
    ):
        return None
    return folder


def _link_or_copy(source: str, target: str) -> str:
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not allowed: a real copy
        shutil.copy2(source, target)
    return target


def link_copy(source: Path, target: Path) -> None:
    """``source`` copied to ``target`` as hard links, built in a hidden sibling and renamed into
    place, so an interruption leaves either nothing or the whole folder."""
    staging = target.parent / f".{target.name}.reusing"
    shutil.rmtree(staging, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, staging, copy_function=_link_or_copy)
    os.rename(staging, target)
