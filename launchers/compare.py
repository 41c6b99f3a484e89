"""Compare runs across personas and models: a persona x model table per metric, CSV and plots.

python -m launchers.compare runs=[runs]                                  # local run directories
python -m launchers.compare wandb_offline=[runs/wandb] wandb_group=G     # offline W&B runs
python -m launchers.compare wandb_project=me/character-training wandb_group=G   # W&B server
python -m launchers.compare runs=[runs] 'metrics=[dpo/final_loss,eval/spearman/*]'

Prints the markdown tables and writes comparison.md, comparison.csv and plots/*.png to out_dir, and
the paper's results views from the runs' recorded judgments under views/ (Elo Figures 3-4, Spearman
across models, coherence averaged over personas, the robustness report's link; views=false: none).
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from character.compare.config import register_compare_schema
from character.compare.report import Comparison, compare
from character.errors import exit_on_user_error

register_compare_schema()
log = logging.getLogger("character.compare")


@hydra.main(version_base="1.3", config_path="../conf", config_name="compare")
def main(cfg: DictConfig) -> None:
    result: Comparison = exit_on_user_error(lambda: compare(cfg))
    print(result.markdown)
    log.info("wrote %d files (comparison.md, comparison.csv, ...) to %s", len(result.files), cfg.out_dir)


if __name__ == "__main__":
    main()
