"""Which model and system role each role's engine gets: decided in ``character.engines.roles``
for every caller, and the pipeline's ``engine_factory`` builds exactly what it decides."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from character.config.schema import EngineConfig
from character.engines import roles
from character.engines.roles import resolve_role
from character.pipeline.engines import engine_factory

TRAINED = "/models/gemma"  # a model without a system role (Gemma): default_system_role False


def engine_cfg(**values):
    return OmegaConf.merge(OmegaConf.structured(EngineConfig), values)


@pytest.mark.parametrize(
    ("values", "model_path", "expected"),
    [
        ({}, None, (TRAINED, False)),  # the trained model: its own template quirk
        ({}, "/runs/dpo/merged", ("/runs/dpo/merged", False)),  # a model of its family
        ({"model": "zai-org/GLM-4.5-Air"}, None, (TRAINED, True)),  # a hosted judge: its own template
        ({"model": "judge", "supports_system_role": False}, None, (TRAINED, False)),  # set: wins
        ({"supports_system_role": True}, "/runs/dpo/merged", ("/runs/dpo/merged", True)),
    ],
)
def test_model_and_system_role_of_a_role(values, model_path, expected) -> None:
    spec = resolve_role(
        "judge", engine_cfg(**values), default_model=TRAINED, default_system_role=False, model_path=model_path
    )
    assert (spec.model_path, spec.supports_system_role) == expected


def test_the_pipeline_builds_what_roles_decides(tmp_path: Path, monkeypatch) -> None:
    built: list[tuple] = []
    monkeypatch.setattr(
        roles, "build_engine", lambda cfg, path, system_role, lora: built.append((path, system_role, lora))
    )
    (tmp_path / "prepare").mkdir()
    (tmp_path / "prepare" / "model.json").write_text(json.dumps({"path": TRAINED}))
    cfg = OmegaConf.create(
        {
            "model": {"supports_system_role": False},
            "engines": {"student": engine_cfg(), "judge": engine_cfg(model="zai-org/GLM-4.5-Air")},
        }
    )
    ctx = SimpleNamespace(
        cfg=cfg, run_dir=tmp_path, input_dirs={"prepare": tmp_path / "prepare"}, log=logging.getLogger("test")
    )
    engine_factory(ctx, "student")()
    engine_factory(ctx, "student", model_path="/runs/dpo/merged")()
    engine_factory(ctx, "judge")()
    engine_factory(ctx, "extra", engine_cfg=engine_cfg())()  # a coherence judge of stages.coherence.judges
    engine_factory(ctx, "student", lora=True)()  # requests will name adapters (introspection)
    assert built == [
        (TRAINED, False, False),
        ("/runs/dpo/merged", False, False),
        (TRAINED, True, False),
        (TRAINED, False, False),
        (TRAINED, False, True),
    ]
