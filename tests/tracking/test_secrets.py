"""Planted secrets never reach a file: run directory, sweep folder, W&B run (config, summary,
logs, the binary run file) or a trainer's command line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from character.errors import CharacterError
from character.io import read_json
from character.tracking.offline import find_offline_runs, read_offline_run
from character.tracking.redact import REDACTED
from character.training.run import run_training
from tests.conftest import run_cli
from tests.tracking.sweep import PLUGINS, STAGES, offline_env

SECRETS = {
    "OPENAI_API_KEY": "sk-test-PLANTED-openai-5f1d2c3b4a",
    "WANDB_API_KEY": "PLANTEDwandbKEY" + "q" * 25,  # 40 characters, the shape of a W&B key
    "HF_TOKEN": "hf-PLANTED-token-8e7d6c5b4a",
    "LAB_SERVICE_SECRET": "PLANTED-service-secret-3c2b1a",
}


def files_under(*roots: Path) -> list[Path]:
    return [path for root in roots for path in root.rglob("*") if path.is_file() and not path.is_symlink()]


def test_a_job_writes_no_planted_secret_anywhere(tmp_path: Path) -> None:
    env = {**offline_env(tmp_path), **SECRETS}
    result = run_cli(
        "+persona=loving",
        "+model=tiny",
        PLUGINS,
        STAGES,
        # secret-looking fields that take their values from the environment, as a user would write them
        "+plugin_params.persona_stats.api_token=${oc.env:OPENAI_API_KEY}",
        "+plugin_params.persona_stats.note=${oc.env:HF_TOKEN}",
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_root, wandb_dir = tmp_path / "runs", tmp_path / "wandb"
    run_dir = run_root / "tiny" / "loving"

    # the stage did receive the real key (it reports its length) ...
    summary = read_json(run_dir / "summary.json")
    assert summary["stages"]["persona_stats"]["metrics"]["token_length"] == len(SECRETS["OPENAI_API_KEY"])
    # ... while what was recorded says where a secret was cut out
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["plugin_params"]["persona_stats"] == {"api_token": REDACTED, "note": REDACTED}
    manifest = read_json(run_dir / "persona_stats" / "manifest.json")
    assert manifest["config"]["plugin_params.persona_stats"] == {"api_token": REDACTED, "note": REDACTED}
    (run_path,) = find_offline_runs(wandb_dir)
    run = read_offline_run(run_path)
    assert run.config["plugin_params"]["persona_stats"] == {"api_token": REDACTED, "note": REDACTED}
    assert run.group == "train"  # a single run: the Hydra job's name
    assert run.exit_code == 0

    files = files_under(run_root, wandb_dir)
    names = {path.name for path in files}
    assert {"config.yaml", "summary.json", "manifest.json", "pipeline.log", "debug.log"} <= names
    assert any(path.suffix == ".wandb" for path in files)
    for path in files:
        data = path.read_bytes()
        for name, secret in SECRETS.items():
            assert secret.encode() not in data, f"{name}'s value is in {path}"
    # nor in what the job printed
    for name, secret in SECRETS.items():
        assert secret not in result.stdout + result.stderr, f"{name}'s value was printed"


def test_a_trainer_command_line_with_a_secret_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRETS["HF_TOKEN"])
    log_path = tmp_path / "train.log"
    with pytest.raises(CharacterError, match="environment only"):
        run_training(
            "openrlhf_ext.cli.train_dpo",
            ["--data.dataset", f"https://hub.example/{SECRETS['HF_TOKEN']}/data.jsonl"],
            log_path,
            "torchrun",
            logging.getLogger("test"),
        )
    assert not log_path.exists()  # refused before anything was started or written
