"""Check every job of a sweep (``-m``) before Hydra creates anything for it.

Hydra's sweeper creates the sweep's folder (``hydra.sweep.dir``: ``<run_root>/.sweeps/<time>``)
and writes ``multirun.yaml`` into it before any job starts, and each job checks its own config only
once it runs: a sweep with a bad value left a new sweep folder behind per attempt (and, on SLURM,
submitted an array of jobs that all fail). ``CheckSweepFirst`` (``hydra.callbacks`` in
conf/train.yaml) composes each job's config in the submitting process, from the sweeper's
parameters and the command line exactly as Hydra's basic sweeper splits them, and runs the checks
of a single job (``validate_train_config``) on every one first. A failure is reported as a single
job's is (``error: ...``, exit status 2) and nothing is created.

It also refuses a sweep in which two jobs would share a run directory. A run directory is keyed by
model, persona and variant (``character.pipeline.run_dirs``), so jobs that differ only in other
keys (``seed=0,1,2``, a learning rate) would write the same stages: run one after another, each
would redo the stages its setting changes and lose the previous job's outputs; run side by side as
a SLURM array, they would write the same files at once.

The checks run where the sweep is submitted: environment variables that jobs read (an endpoint's
``base_url_env``) must be set there, as docs/slurm.md already asks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


def sweep_jobs(config: DictConfig) -> list[list[str]]:
    """Each job's overrides, as Hydra's basic sweeper makes them from ``hydra.sweeper.params``
    followed by the command line's overrides."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    # Unresolved: an override such as 'run_root=runs/seed${seed}' is each job's to resolve, not the
    # submitting config's.
    params = config.hydra.sweeper.get("params") or {}
    if OmegaConf.is_config(params):
        params = OmegaConf.to_container(params, resolve=False)
    arguments = [f"{key}={value}" for key, value in params.items()]
    arguments += OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    batches = BasicSweeper.split_arguments(parser.parse_overrides(arguments), None)
    return [list(job) for batch in batches for job in batch]


def shared_run_dir_problem(run_dirs: list[tuple[list[str], Path]]) -> str | None:
    """The first two jobs (overrides, run directory) that share a run directory, described with
    the overrides that tell them apart; None when every job has its own."""
    first_job: dict[Path, list[str]] = {}
    for overrides, run_dir in run_dirs:
        if run_dir not in first_job:
            first_job[run_dir] = overrides
            continue
        earlier = first_job[run_dir]
        differing = [o for o in earlier if o not in overrides] + [o for o in overrides if o not in earlier]
        return (
            f"two jobs of this sweep would write the same run directory {run_dir}: "
            f"[{' '.join(earlier)}] and [{' '.join(overrides)}] (they differ in "
            f"{' '.join(differing) or 'nothing'}). A run directory is <run_root>/<model>/<persona> "
            "(plus variants/<variant>), so jobs that differ only in other keys overwrite each other's "
            "stages. Expected one run directory per job: give each its own run root, e.g. "
            "'run_root=runs/seed${seed}' for a sweep over seeds, or a variant=<name> per setting."
        )
    return None


def check_sweep(config: DictConfig) -> None:
    """``validate_train_config`` on every job's config, then one run directory per job; the first
    failure is raised."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from character.config.validate import validate_train_config
    from character.errors import CharacterError
    from character.pipeline.run_dirs import job_run_dir

    loader = GlobalHydra.instance().config_loader()
    previous = HydraConfig.instance().cfg
    run_dirs: list[tuple[list[str], Path]] = []
    try:
        for job in sweep_jobs(config):
            job_config = loader.load_sweep_config(master_config=config, sweep_overrides=job)
            HydraConfig.instance().set_config(job_config)  # error messages name the job's sources
            validate_train_config(job_config)
            run_dirs.append((job, job_run_dir(job_config).resolve()))
    finally:
        HydraConfig.instance().cfg = previous
    problem = shared_run_dir_problem(run_dirs)
    if problem:
        raise CharacterError(problem)


class CheckSweepFirst(Callback):
    """Runs ``check_sweep`` when a multirun starts, before the sweeper creates its folder."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from character.errors import exit_on_user_error

        exit_on_user_error(lambda: check_sweep(config))
