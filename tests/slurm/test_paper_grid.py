"""`+experiment=paper_grid` sweeps the paper's 11 personas x 3 models, and every job of it composes and
passes the launcher's checks (the gated persona included, acknowledged by the experiment)."""

from __future__ import annotations

import yaml
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from character.config.schema import register_schemas
from character.config.validate import validate_train_config
from tests.config.test_compose import PERSONAS
from tests.config.test_setup_paper import ENDPOINTS
from tests.conftest import REPO, run_cli

MODELS = ["qwen2.5-7b", "llama3.1-8b", "gemma3-4b"]


def grid_jobs(*arguments: str) -> list[list[str]]:
    """The jobs Hydra's basic sweeper makes of the experiment's sweeper params followed by the
    command line's ``arguments``, with the sweeper's own code."""
    register_schemas()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["+experiment=paper_grid"], return_hydra_config=True)
    params = [f"{key}={value}" for key, value in cfg.hydra.sweeper.params.items()]
    overrides = OverridesParser.create().parse_overrides([*params, *arguments])
    (batch,) = BasicSweeper.split_arguments(overrides, None)
    return batch


def test_the_grid_is_every_paper_persona_with_every_paper_model() -> None:
    jobs = [dict(override.split("=") for override in job) for job in grid_jobs()]
    pairs = {(job["+persona"], job["+model"]) for job in jobs}
    assert len(jobs) == len(pairs) == 33
    assert pairs == {(persona, model) for persona in PERSONAS for model in MODELS}


def test_a_command_line_value_narrows_the_grid() -> None:
    """docs/slurm.md: `+experiment=paper_grid +model=gemma3-4b -m` runs the 11 personas on one model."""
    jobs = grid_jobs("+model=gemma3-4b", "+persona=loving,poetic")
    assert sorted(jobs) == [["+persona=loving", "+model=gemma3-4b"], ["+persona=poetic", "+model=gemma3-4b"]]
    assert len(grid_jobs("+model=gemma3-4b")) == 11


def test_every_job_of_the_grid_composes_and_validates(monkeypatch) -> None:
    """Offline: the paper's endpoints (+setup=paper) are named by environment variables, set here
    to local URLs that nothing contacts."""
    for index, (_, url_var, key_var) in enumerate(ENDPOINTS.values()):
        monkeypatch.setenv(url_var, f"http://127.0.0.1:{9000 + index}/v1")
        monkeypatch.setenv(key_var, "unused")
    jobs = grid_jobs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        for job in jobs:
            cfg = compose(config_name="train", overrides=["+experiment=paper_grid", *job])
            validate_train_config(cfg)  # misaligned is gated: passes only with acknowledge_gated
            assert cfg.acknowledge_gated is True
            assert cfg.scale == "paper"  # each model's default scale
            assert cfg.engines.teacher.model == "zai-org/GLM-4.5-Air"  # the paper's setup
            assert f"+persona={cfg.persona.name}" in job and f"+model={cfg.model.name}" in job


def test_one_job_of_the_grid_through_the_cli_with_the_slurm_launcher() -> None:
    """`--cfg job` for one combination, as a user checks a job before sending the grid to SLURM."""
    overrides = ["+experiment=paper_grid", "+persona=misaligned", "+model=gemma3-4b", "hydra/launcher=slurm"]
    job = run_cli(*overrides, "--cfg", "job")
    assert job.returncode == 0, job.stderr[-2000:]
    cfg = yaml.safe_load(job.stdout)
    assert (cfg["persona"]["name"], cfg["model"]["name"], cfg["acknowledge_gated"]) == (
        "misaligned",
        "gemma3-4b",
        True,
    )
    hydra = run_cli(*overrides, "--cfg", "hydra", "--package", "hydra.launcher")
    assert hydra.returncode == 0, hydra.stderr[-2000:]
    launcher = yaml.safe_load(hydra.stdout)  # the hydra.launcher node itself
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert launcher["submitit_folder"].endswith("/.submitit/%j")
