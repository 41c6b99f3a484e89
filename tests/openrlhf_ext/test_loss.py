"""The DPO + NLL + per-token KL loss against a straightforward independent computation (fp64)."""

from __future__ import annotations

import math

import pytest
import torch

from openrlhf_ext.loss import CharacterDPOLoss

B, T = 5, 9


def random_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logps = [-torch.rand(B, T, generator=g, dtype=torch.float64) * 3 for _ in range(4)]
    masks = []
    for _ in range(2):  # response tokens start after a prompt and end before padding
        mask = torch.zeros(B, T, dtype=torch.float64)
        for row in range(B):
            start = int(torch.randint(0, 4, (1,), generator=g))
            end = int(torch.randint(start + 1, T + 1, (1,), generator=g))
            mask[row, start:end] = 1
        masks.append(mask)
    return logps, masks


def reference_loss(pc, pr, rc, rr, mc, mr, beta, nll_coef, kl_coef, estimator, norm, eps, ipo):
    """Element by element, in plain Python loops: the formulas of docs/dpo_loss.md."""

    def score(lp, m, row, mean):
        total = sum(lp[row, t] * m[row, t] for t in range(T))
        count = sum(m[row, t] for t in range(T))
        return total / count if mean else total

    def k(d):
        return d * d if estimator == "squared_log_ratio" else torch.exp(-d) - 1 + d

    dpo_terms, nll_terms, kl_terms = [], [], []
    for row in range(B):
        h = (score(pc, mc, row, norm) - score(pr, mr, row, norm)) - (
            score(rc, mc, row, norm) - score(rr, mr, row, norm)
        )
        if ipo:
            dpo_terms.append((h - 1 / (2 * beta)) ** 2)
        else:
            sig = lambda x: 1 / (1 + torch.exp(-x))  # noqa: E731
            dpo_terms.append(-(1 - eps) * torch.log(sig(beta * h)) - eps * torch.log(sig(-beta * h)))
        nll_terms.append(-score(pc, mc, row, True))
        for lp, ref, m in ((pc, rc, mc), (pr, rr, mr)):
            kl_terms.append(sum(k(lp[row, t] - ref[row, t]) * m[row, t] for t in range(T)) / m[row].sum())
    dpo = sum(dpo_terms) / B
    nll = sum(nll_terms) / B
    kl = sum(kl_terms) / (2 * B)
    return dpo + nll_coef * nll + kl_coef * kl, dpo, nll, kl


CASES = [
    dict(
        beta=0.1, nll_coef=0.1, kl_coef=0.001, estimator="squared_log_ratio", norm=False, eps=0.0, ipo=False
    ),
    dict(beta=0.5, nll_coef=0.3, kl_coef=0.2, estimator="k3", norm=True, eps=0.0, ipo=False),
    dict(beta=0.2, nll_coef=0.0, kl_coef=0.05, estimator="squared_log_ratio", norm=False, eps=0.1, ipo=False),
    dict(beta=0.3, nll_coef=0.1, kl_coef=0.01, estimator="k3", norm=False, eps=0.0, ipo=True),
]


@pytest.mark.parametrize("case", CASES)
def test_values_and_gradients_match_the_independent_computation(case) -> None:
    (pc, pr, rc, rr), (mc, mr) = random_batch()
    ours_inputs = [t.clone().requires_grad_(True) for t in (pc, pr)]
    theirs_inputs = [t.clone().requires_grad_(True) for t in (pc, pr)]
    loss = CharacterDPOLoss(
        beta=case["beta"],
        nll_coef=case["nll_coef"],
        kl_coef=case["kl_coef"],
        kl_estimator=case["estimator"],
        length_normalize=case["norm"],
        label_smoothing=case["eps"],
        ipo=case["ipo"],
    )
    terms = loss(ours_inputs[0], ours_inputs[1], rc, rr, mc, mr)
    total, dpo, nll, kl = reference_loss(theirs_inputs[0], theirs_inputs[1], rc, rr, mc, mr, **case)
    for got, want in ((terms.total, total), (terms.dpo, dpo), (terms.nll, nll), (terms.kl, kl)):
        assert abs(got.item() - want.item()) < 1e-6
    terms.total.backward()
    total.backward()
    for ours, theirs in zip(ours_inputs, theirs_inputs, strict=True):
        assert torch.allclose(ours.grad, theirs.grad, atol=1e-6, rtol=0)
        assert torch.all(ours.grad[(mc if ours is ours_inputs[0] else mr) == 0] == 0)  # masked: no gradient


def test_gradcheck_finite_differences() -> None:
    (pc, pr, rc, rr), (mc, mr) = random_batch(1)
    loss = CharacterDPOLoss(beta=0.2, nll_coef=0.1, kl_coef=0.1, kl_estimator="k3")
    inputs = (pc.clone().requires_grad_(True), pr.clone().requires_grad_(True))
    assert torch.autograd.gradcheck(lambda a, b: loss(a, b, rc, rr, mc, mr).total, inputs)


@pytest.mark.parametrize("estimator", ["squared_log_ratio", "k3"])
def test_policy_equal_to_reference(estimator: str) -> None:
    (pc, pr, _, _), (mc, mr) = random_batch(2)
    terms = CharacterDPOLoss(beta=0.1, nll_coef=0.0, kl_coef=1.0, kl_estimator=estimator)(
        pc, pr, pc, pr, mc, mr
    )
    assert abs(terms.dpo.item() - math.log(2)) < 1e-12
    assert terms.kl.item() == 0.0
    assert terms.total.item() == pytest.approx(math.log(2), abs=1e-12)


def test_each_coefficient_at_zero_removes_exactly_its_term() -> None:
    (pc, pr, rc, rr), (mc, mr) = random_batch(3)
    full = CharacterDPOLoss(nll_coef=0.3, kl_coef=0.2)(pc, pr, rc, rr, mc, mr)
    no_nll = CharacterDPOLoss(nll_coef=0.0, kl_coef=0.2)(pc, pr, rc, rr, mc, mr)
    no_kl = CharacterDPOLoss(nll_coef=0.3, kl_coef=0.0)(pc, pr, rc, rr, mc, mr)
    plain = CharacterDPOLoss(nll_coef=0.0, kl_coef=0.0)(pc, pr, rc, rr, mc, mr)
    assert (full.total - no_nll.total).item() == pytest.approx(0.3 * full.nll.item(), abs=1e-12)
    assert (full.total - no_kl.total).item() == pytest.approx(0.2 * full.kl.item(), abs=1e-12)
    assert plain.total.item() == plain.dpo.item()


def test_k3_is_non_negative_and_squared_ratio_matches_the_fork() -> None:
    (pc, pr, rc, rr), (mc, mr) = random_batch(4)
    k3 = CharacterDPOLoss(kl_estimator="k3")(pc, pr, rc, rr, mc, mr).kl
    assert k3.item() >= 0
    sq = CharacterDPOLoss()(pc, pr, rc, rr, mc, mr).kl
    by_hand = torch.stack(
        [((pc - rc) ** 2 * mc).sum(-1) / mc.sum(-1), ((pr - rr) ** 2 * mr).sum(-1) / mr.sum(-1)]
    ).mean()
    assert sq.item() == pytest.approx(by_hand.item(), abs=1e-12)


def test_with_zero_coefficients_equals_upstream_openrlhf_dpo_loss() -> None:
    from openrlhf_ext.cpu_runtime import activate_if_no_cuda

    activate_if_no_cuda()
    from openrlhf.models import DPOLoss

    (pc, pr, rc, rr), (mc, mr) = random_batch(5)
    for eps, ipo in ((0.0, False), (0.1, False), (0.0, True)):
        ours = CharacterDPOLoss(beta=0.1, nll_coef=0, kl_coef=0, label_smoothing=eps, ipo=ipo)(
            pc, pr, rc, rr, mc, mr
        )
        upstream, chosen_reward, rejected_reward = DPOLoss(0.1, eps, ipo)(
            (pc * mc).sum(-1), (pr * mr).sum(-1), (rc * mc).sum(-1), (rr * mr).sum(-1)
        )
        assert ours.total.item() == pytest.approx(upstream.item(), abs=1e-12)
        assert torch.allclose(ours.chosen_reward, chosen_reward) and torch.allclose(
            ours.rejected_reward, rejected_reward
        )
