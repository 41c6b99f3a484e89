"""The character-training DPO loss: DPO + nll_coef * NLL(chosen) + kl_coef * per-token KL.

All inputs are per-token log-probabilities of the sampled tokens, shape (batch, tokens), with a
mask that is 1 on response tokens and 0 on prompt and padding. With ``s`` a per-sequence score,

    s(x)    = sum_t mask_t * logp_t          (or the mean over response tokens, length-normalised)
    h       = [s_pi(c) - s_pi(r)] - [s_ref(c) - s_ref(r)]
    dpo     = mean_batch[ -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h) ]   (sigmoid)
            = mean_batch[ (h - 1 / (2 beta))^2 ]                                      (IPO)
    nll     = mean_batch[ -(1 / |c|) sum_t mask_t * logp_pi_t(c) ]
    d_t     = logp_pi_t - logp_ref_t      on the sampled tokens of chosen and rejected
    kl      = mean over the 2*batch sequences of [ (1 / |y|) sum_t mask_t * k(d_t) ]
              k(d) = d^2                  ("squared_log_ratio", the paper's fork)
              k(d) = exp(-d) - 1 + d      ("k3", non-negative, unbiased for KL(pi || ref))
    total   = dpo + nll_coef * nll + kl_coef * kl

Rewards are beta * (s_pi - s_ref) for chosen and rejected (detached), as in OpenRLHF's DPOLoss.
The KL reuses log-probabilities the DPO term already needs, so it costs no extra forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

KL_ESTIMATORS = ("squared_log_ratio", "k3")


@dataclass
class DpoLossTerms:
    """Every term of the loss, for the backward pass (``total``) and for logging."""

    total: torch.Tensor
    dpo: torch.Tensor
    nll: torch.Tensor
    kl: torch.Tensor
    chosen_reward: torch.Tensor
    rejected_reward: torch.Tensor

    @property
    def margin(self) -> torch.Tensor:
        return (self.chosen_reward - self.rejected_reward).mean()

    @property
    def accuracy(self) -> torch.Tensor:
        return (self.chosen_reward > self.rejected_reward).float().mean()


def sequence_scores(logps: torch.Tensor, mask: torch.Tensor, length_normalize: bool) -> torch.Tensor:
    """Summed (or mean) log-probability of the response tokens of each sequence."""
    total = (logps * mask).sum(-1)
    return total / mask.sum(-1).clamp(min=1) if length_normalize else total


def per_token_kl(
    policy_logps: torch.Tensor, reference_logps: torch.Tensor, mask: torch.Tensor, estimator: str
) -> torch.Tensor:
    """Per sequence, the mean over response tokens of the chosen KL estimator."""
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"kl_estimator={estimator!r}; expected one of {KL_ESTIMATORS}")
    delta = policy_logps - reference_logps
    values = delta.pow(2) if estimator == "squared_log_ratio" else torch.exp(-delta) - 1 + delta
    return (values * mask).sum(-1) / mask.sum(-1).clamp(min=1)


class CharacterDPOLoss:
    """DPO (sigmoid, label smoothing, or IPO) plus NLL on chosen plus per-token KL to the reference."""

    def __init__(
        self,
        beta: float = 0.1,
        nll_coef: float = 0.1,
        kl_coef: float = 0.001,
        kl_estimator: str = "squared_log_ratio",
        length_normalize: bool = False,
        label_smoothing: float = 0.0,
        ipo: bool = False,
    ) -> None:
        if kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"kl_estimator={kl_estimator!r}; expected one of {KL_ESTIMATORS}")
        self.beta = beta
        self.nll_coef = nll_coef
        self.kl_coef = kl_coef
        self.kl_estimator = kl_estimator
        self.length_normalize = length_normalize
        self.label_smoothing = label_smoothing
        self.ipo = ipo

    def __call__(
        self,
        policy_chosen: torch.Tensor,
        policy_rejected: torch.Tensor,
        reference_chosen: torch.Tensor,
        reference_rejected: torch.Tensor,
        chosen_mask: torch.Tensor,
        rejected_mask: torch.Tensor,
    ) -> DpoLossTerms:
        chosen_mask, rejected_mask = (
            chosen_mask.to(policy_chosen.dtype),
            rejected_mask.to(policy_chosen.dtype),
        )
        norm = self.length_normalize
        pi_c = sequence_scores(policy_chosen, chosen_mask, norm)
        pi_r = sequence_scores(policy_rejected, rejected_mask, norm)
        ref_c = sequence_scores(reference_chosen, chosen_mask, norm)
        ref_r = sequence_scores(reference_rejected, rejected_mask, norm)
        h = (pi_c - pi_r) - (ref_c - ref_r)
        if self.ipo:
            dpo = (h - 1 / (2 * self.beta)).pow(2).mean()
        else:
            eps = self.label_smoothing
            dpo = (-(1 - eps) * F.logsigmoid(self.beta * h) - eps * F.logsigmoid(-self.beta * h)).mean()
        nll = -sequence_scores(policy_chosen, chosen_mask, length_normalize=True).mean()
        kl = torch.cat(
            [
                per_token_kl(policy_chosen, reference_chosen, chosen_mask, self.kl_estimator),
                per_token_kl(policy_rejected, reference_rejected, rejected_mask, self.kl_estimator),
            ]
        ).mean()
        total = dpo
        if self.nll_coef:
            total = total + self.nll_coef * nll
        if self.kl_coef:
            total = total + self.kl_coef * kl
        return DpoLossTerms(
            total=total,
            dpo=dpo,
            nll=nll,
            kl=kl,
            chosen_reward=(self.beta * (pi_c - ref_c)).detach(),
            rejected_reward=(self.beta * (pi_r - ref_r)).detach(),
        )
