"""Score the robustness responses of a sweep's jobs with a persona classifier per model.

    python -m launchers.robustness                        # every finished run under run_root
    python -m launchers.robustness classifier=tiny        # no model hub: a locally built encoder

Writes <out_dir>/<model>/f1.{csv,md}, prefill.{csv,md}, robustness.png and summary.json.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from character.config.schema import register_schemas
from character.errors import exit_on_user_error
from character.evaluation.robustness_report import find_runs, run_robustness_report

register_schemas()
log = logging.getLogger("character.robustness")


def robustness(cfg: DictConfig) -> dict:
    run_dirs = [Path(p) for p in cfg.runs] or find_runs(Path(cfg.run_root))
    return run_robustness_report(run_dirs, cfg.classifier, Path(cfg.out_dir), int(cfg.seed))


@hydra.main(version_base="1.3", config_path="../conf", config_name="robustness")
def main(cfg: DictConfig) -> None:
    summary = exit_on_user_error(lambda: robustness(cfg))
    log.info("wrote %s to %s", ", ".join(summary["outputs"]), cfg.out_dir)


if __name__ == "__main__":
    main()
