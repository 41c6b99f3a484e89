"""The one home of the character-training DPO objective's defaults.

The pipeline's ``stages.dpo`` config (character/config/schema.py) and the
``openrlhf_ext.cli.train_dpo`` command line both take their defaults from here, so running the
CLI by hand with no loss flags trains the same objective as the pipeline (paper §2.3: DPO with
beta 0.1, an NLL term on the chosen answer with weight 0.1, a per-token KL penalty with weight
0.001 in the squared log-ratio form of the paper's fork).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DpoObjective:
    beta: float = 0.1
    nll_coef: float = 0.1
    kl_coef: float = 0.001
    kl_estimator: str = "squared_log_ratio"  # or "k3"
    length_normalize: bool = False
    label_smoothing: float = 0.0
    ipo: bool = False


DPO_OBJECTIVE = DpoObjective()

# Not part of the objective but shared the same way (the CLI's --logps.max_pass_tokens and
# stages.dpo.max_pass_tokens; micro_passes.py): two 1024-token rows per pass, so a long pair runs
# alone while the demo's and the 512-token benchmark's micro-batches stay whole. On GPUs with
# memory to spare, a larger budget (or 0) batches more.
DEFAULT_MAX_PASS_TOKENS = 2048
