"""Engine per role from the config; secrets stay out of what is recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from character.engines.base import Sampling
from character.engines.batch import BatchItem, meta_path, run_batch
from character.engines.factory import build_engine
from character.engines.openai_engine import OpenAIEngine
from character.errors import CharacterError
from tests.config.test_compose import compose_train
from tests.engines.test_failures_and_resume import FaultInjectingServer


def test_each_role_can_use_its_own_backend() -> None:
    cfg = compose_train(
        "+persona=loving",
        "+model=gemma3-4b",
        "engine@engines.teacher=openai",
        "engines.teacher.model=zai-org/GLM-4.5-Air",
        "engines.teacher.api_key_env=TEACHER_KEY",
        "engine@engines.judge=transformers",
    )
    assert cfg.engines.teacher.backend == "openai" and cfg.engines.teacher.model == "zai-org/GLM-4.5-Air"
    assert cfg.engines.student.backend == "vllm" and cfg.engines.student.model is None
    assert cfg.engines.judge.backend == "transformers"


def test_openai_engine_needs_url_and_model() -> None:
    cfg = OmegaConf.create(
        {"backend": "openai", "base_url": None, "model": None, "supports_system_role": None}
    )
    with pytest.raises(CharacterError, match="base_url and model"):
        build_engine(cfg, "/unused", True)


def test_api_key_is_used_but_never_recorded(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TEACHER_KEY", "sk-planted-secret-123")
    cfg = compose_train(
        "+persona=loving",
        "+model=tiny",
        "engine@engines.teacher=openai",
        "engines.teacher.model=m",
        "engines.teacher.api_key_env=TEACHER_KEY",
    )
    server = FaultInjectingServer("500", ok_first=10)
    try:
        cfg.engines.teacher.base_url = server.url
        engine = build_engine(cfg.engines.teacher, "/unused", True)
        assert isinstance(engine, OpenAIEngine)
        out = tmp_path / "rows.jsonl"
        run_batch(engine, [BatchItem(id="a", messages=[{"role": "user", "content": "Hi"}])], Sampling(), out)
        for path in (out, meta_path(out)):
            assert "sk-planted-secret-123" not in path.read_text()
        assert "sk-planted-secret-123" not in OmegaConf.to_yaml(cfg)
    finally:
        server.close()
