"""Check every job of a sweep (``-m``) before Hydra creates anything for it.

Hydra's sweeper creates the sweep's folder (``hydra.sweep.dir``: ``<run_root>/.sweeps/<time>``)
and writes ``multirun.yaml`` into it before any job starts, and each job checks its own config only
once it runs: a sweep with a bad value left a new sweep folder behind per attempt (and, on SLURM,
submitted an array of jobs that all fail). ``CheckSweepFirst`` (``hydra.callbacks`` in
conf/train.yaml) composes each job's config in the submitting process, from the sweeper's
parameters and the command line exactly as Hydra's basic sweeper splits them, and runs the checks
of a single job (``validate_train_config``) on every one first. A failure is reported as a single
job's is (``error: ...``, exit status 2) and nothing is created.

The checks run where the sweep is submitted: environment variables that jobs read (an endpoint's
``base_url_env``) must be set there, as docs/slurm.md already asks.
"""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def sweep_jobs(config: DictConfig) -> list[list[str]]:
    """Each job's overrides, as Hydra's basic sweeper makes them from ``hydra.sweeper.params``
    followed by the command line's overrides."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()]
    arguments += list(config.hydra.overrides.task)
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    batches = BasicSweeper.split_arguments(parser.parse_overrides(arguments), None)
    return [list(job) for batch in batches for job in batch]


def check_sweep(config: DictConfig) -> None:
    """``validate_train_config`` on every job's config; the first failure is raised."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from character.config.validate import validate_train_config

    loader = GlobalHydra.instance().config_loader()
    previous = HydraConfig.instance().cfg
    try:
        for job in sweep_jobs(config):
            job_config = loader.load_sweep_config(master_config=config, sweep_overrides=job)
            HydraConfig.instance().set_config(job_config)  # error messages name the job's sources
            validate_train_config(job_config)
    finally:
        HydraConfig.instance().cfg = previous


class CheckSweepFirst(Callback):
    """Runs ``check_sweep`` when a multirun starts, before the sweeper creates its folder."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from character.errors import exit_on_user_error

        exit_on_user_error(lambda: check_sweep(config))
