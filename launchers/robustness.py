"""Score the robustness responses of a sweep's jobs with a persona classifier per model.

    python -m launchers.robustness                        # every finished run under run_root
    python -m launchers.robustness classifier=tiny        # no model hub: a locally built encoder

Writes <out_dir>/<model>/f1.{csv,md}, prefill.{csv,md}, robustness.png and summary.json.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from character.config.schema import register_schemas
from character.config.validate import validate_robustness_config
from character.errors import exit_on_user_error
from character.robustness.report import find_runs, run_robustness_report
from character.tracking.settings import RunSettings, resolve_mode, wandb_dir
from character.tracking.wandb_run import log_report

register_schemas()
log = logging.getLogger("character.robustness")


def robustness(cfg: DictConfig) -> dict:
    validate_robustness_config(cfg)  # the checks of launchers.train, before anything is written
    run_dirs = [Path(p) for p in cfg.runs] or find_runs(Path(cfg.run_root))
    report = run_robustness_report(run_dirs, cfg.classifier, Path(cfg.out_dir), int(cfg.seed))
    log_to_wandb(cfg, report)
    return report


def log_to_wandb(cfg: DictConfig, report: dict) -> None:
    """The report as one W&B run (job_type robustness) in the sweep's project and group."""
    models = sorted(report["models"])
    values = {}
    for model, result in report["models"].items():
        values[f"robustness/{model}/classifier_heldout_f1"] = result["heldout_f1"]
        for row in result["table"]:
            values[f"robustness/{model}/{row['method']}/adversarial_f1"] = row["adversarial_mean"]
        for row in result["prefill"]:
            values[f"robustness/{model}/{row['method']}/prefill_f1"] = row["prefill_f1"]
    out_dir = Path(cfg.out_dir)
    settings = RunSettings(
        mode=resolve_mode(cfg.wandb.mode),
        project=str(cfg.wandb.project),
        entity=cfg.wandb.entity,
        group=cfg.wandb.group,
        job_type="robustness",
        name=f"robustness/{'+'.join(models)}",
        tags=[*models, "robustness", *cfg.wandb.tags],
        dir=wandb_dir(cfg.wandb, cfg.run_root),
    )
    config = OmegaConf.to_container(cfg, resolve=True)
    log_report(settings, config, values, [out_dir / name for name in report["outputs"]], out_dir)


@hydra.main(version_base="1.3", config_path="../conf", config_name="robustness")
def main(cfg: DictConfig) -> None:
    summary = exit_on_user_error(lambda: robustness(cfg))
    log.info("wrote %s to %s", ", ".join(summary["outputs"]), cfg.out_dir)


if __name__ == "__main__":
    main()
