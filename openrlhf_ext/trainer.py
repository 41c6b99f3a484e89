"""OpenRLHF's DPO trainer, with the character-training loss (DPO + NLL + per-token KL).

Upstream computes the loss inside ``fit``, from per-sequence sums only; the per-token KL needs
per-token log-probs of policy and reference, so ``fit`` is replaced by a loop of our own that
keeps upstream's semantics (gradient accumulation, step accounting, ``consumed_samples`` for
resume, evaluation and checkpointing through upstream's ``save_logs_and_checkpoints``) and logs
every term of the loss separately. ``evaluate`` is ours too, so the logged evaluation loss is the
objective being trained, not upstream's plain DPO loss.

How log-probs are computed is set by ``Scoring`` (docs/openrlhf_ext.md, "Fast DPO path"): by
default one row per pair with the prompt once (``pair_layout.py``), the output layer on response
positions only (``token_logps.py``), and the reference's log-probs computed once before training
(``reference_logps.py``). ``Scoring(response_only=False)`` is upstream's path, kept to compare.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
from openrlhf.trainer.dpo_trainer import DPOTrainer
from openrlhf.utils.distributed_sampler import DistributedSampler
from tqdm import tqdm

from openrlhf_ext.host_memory import RELEASE_POINTS, release_free_host_memory
from openrlhf_ext.loss import CharacterDPOLoss, DpoLossTerms
from openrlhf_ext.metrics_log import append_metrics
from openrlhf_ext.micro_passes import boundary_held, combine_terms, split_batch
from openrlhf_ext.pair_layout import LayoutCost, build_pair_rows
from openrlhf_ext.pair_scoring import PairLogps, Scoring, causal_lm_of, score_pairs
from openrlhf_ext.reference import AdapterDisabledReference
from openrlhf_ext.reference_logps import ReferenceLogps


class CharacterDPOTrainer(DPOTrainer):
    """``DPOTrainer`` whose training step uses ``CharacterDPOLoss``."""

    release_freed_pages = "never"  # set per run by the CLI (--memory.release_freed_pages)

    def __init__(
        self,
        *args: Any,
        loss: CharacterDPOLoss,
        metrics_file: str | None = None,
        scoring: Scoring | None = None,
        reference_logps: ReferenceLogps | None = None,
        eval_reference_logps: ReferenceLogps | None = None,
        max_pass_tokens: int = 0,
        release_freed_pages: str = "never",
        **kwargs: Any,
    ):
        super().__init__(*args, beta=loss.beta, **kwargs)  # beta is passed once, with the loss
        self.character_loss = loss
        self.metrics_file = Path(metrics_file) if metrics_file else None
        self.scoring = scoring or Scoring(response_only=False)
        self.reference_logps = reference_logps
        self.eval_reference_logps = eval_reference_logps
        self.max_pass_tokens = max_pass_tokens
        if release_freed_pages not in RELEASE_POINTS:
            raise ValueError(f"release_freed_pages={release_freed_pages!r}: expected one of {RELEASE_POINTS}")
        self.release_freed_pages = release_freed_pages
        self._evaluated_step: tuple[int, dict[str, float]] | None = None

    @functools.cached_property
    def layout_cost(self) -> LayoutCost | None:
        """The pair layout's cost model, built once: policy and reference share one architecture."""
        return LayoutCost.of(causal_lm_of(self.model.model).config) if self.scoring.share_by_cost else None

    def score_batch(self, model, batch) -> PairLogps:
        """Response-token log-probs of ``model`` (an Actor, or the adapter-disabled reference)
        on a collated batch, in the compact layout (``pair_scoring.py``)."""
        chosen_ids, c_mask, reject_ids, r_mask, prompt_id_lens = batch[:5]
        device = next(self.model.parameters()).device
        disable_adapter = isinstance(model, AdapterDisabledReference)
        actor = model.actor if disable_adapter else model
        rows = build_pair_rows(
            chosen_ids.squeeze(1).to(device),
            c_mask.squeeze(1).to(device),
            reject_ids.squeeze(1).to(device),
            r_mask.squeeze(1).to(device),
            prompt_id_lens,
            self.tokenizer.pad_token_id,
            share_prompt=self.scoring.share_prompt,
            cost=self.layout_cost,
        )
        return score_pairs(
            actor.model,
            rows,
            self.scoring.attn_implementation,
            self.scoring.chunk_rows,
            disable_adapter=disable_adapter,
            row_by_row=self.scoring.row_by_row,
        )

    def per_token_logps(self, model, chosen_ids, c_mask, reject_ids, r_mask, prompt_id_lens):
        """Per-token log-probs of the sampled tokens and the response-token masks, for chosen
        and rejected; position t scores token t+1, as in upstream's ``_get_batch_logps``."""
        input_ids, att_masks, prompt_lens = self.concatenated_inputs(
            chosen_ids, c_mask, reject_ids, r_mask, prompt_id_lens
        )
        log_probs = model(
            input_ids,
            attention_mask=att_masks,
            return_logprobs=True,
            ring_attn_group=self.strategy.ring_attn_group,
        )
        mask = att_masks.clone().bool()
        for row, prompt_len in zip(mask, prompt_lens, strict=True):
            row[:prompt_len] = False
        mask = mask[:, 1:].to(log_probs.dtype)
        n = chosen_ids.shape[0]
        return log_probs[:n], log_probs[n:], mask[:n], mask[n:]

    def compute_terms(self, batch, stored: ReferenceLogps | None = None) -> DpoLossTerms:
        """The loss terms on one micro-batch (policy with grad, reference without).

        ``stored`` holds precomputed reference log-probs for the batch's examples (the batch's
        sixth element is their dataset indices); without it the reference runs here."""
        if self.scoring.response_only:
            policy = self.score_batch(self.model, batch)
            if stored is not None and len(batch) > 5:
                ref_c, ref_r = stored.compact(batch[5], policy)
            else:
                with torch.no_grad():
                    reference = self.score_batch(self.ref_model, batch)
                ref_c, ref_r = reference.chosen, reference.rejected
            return self.character_loss(
                policy.chosen, policy.rejected, ref_c, ref_r, policy.chosen_mask, policy.rejected_mask
            )
        chosen_ids, c_mask, reject_ids, r_mask, prompt_id_lens = batch[:5]
        device = next(self.model.parameters()).device
        chosen_ids, c_mask = chosen_ids.squeeze(1).to(device), c_mask.squeeze(1).to(device)
        reject_ids, r_mask = reject_ids.squeeze(1).to(device), r_mask.squeeze(1).to(device)
        policy_c, policy_r, mask_c, mask_r = self.per_token_logps(
            self.model, chosen_ids, c_mask, reject_ids, r_mask, prompt_id_lens
        )
        with torch.no_grad():
            ref_c, ref_r, _, _ = self.per_token_logps(
                self.ref_model, chosen_ids, c_mask, reject_ids, r_mask, prompt_id_lens
            )
        return self.character_loss(policy_c, policy_r, ref_c, ref_r, mask_c, mask_r)

    def _release_after_pass(self) -> None:
        """After a backward pass, with ``release_freed_pages="pass"``: the activations just freed
        go back to the system instead of staying in the allocator's arenas (``host_memory.py``)."""
        if self.release_freed_pages == "pass":
            release_free_host_memory()

    def _release_after_optimizer_call(self, boundary: bool) -> None:
        """After ``optimizer_step`` (called on every micro-batch; DeepSpeed steps at the
        accumulation ``boundary``): "pass" releases every time, "step" at the boundary only."""
        if self.release_freed_pages == "pass" or (self.release_freed_pages == "step" and boundary):
            release_free_host_memory()

    def forward_backward(self, batch) -> DpoLossTerms:
        """Loss and gradients of one micro-batch, in passes of at most ``max_pass_tokens``
        tokens (``micro_passes.py``: the same gradients, one pass's activations at a time)."""
        passes = split_batch(batch, self.max_pass_tokens)
        if len(passes) == 1:
            terms = self.compute_terms(batch, self.reference_logps)
            self.strategy.backward(terms.total, self.model, self.optimizer)
            self._release_after_pass()
            return terms
        pairs = len(batch[4])
        engine = getattr(self.model, "model", self.model)  # the DeepSpeed engine inside the Actor
        parts = []
        for index, part in enumerate(passes):
            terms = self.compute_terms(part, self.reference_logps)
            with boundary_held(engine, hold=index < len(passes) - 1):
                self.strategy.backward(terms.total * (len(part[4]) / pairs), self.model, self.optimizer)
            self._release_after_pass()
            parts.append((terms, len(part[4])))
        return combine_terms(parts)

    def fit(self, args, consumed_samples: int = 0, num_update_steps_per_epoch: int | None = None) -> None:
        if num_update_steps_per_epoch is None:
            num_update_steps_per_epoch = len(self.train_dataloader)
        if num_update_steps_per_epoch <= 0:
            raise ValueError("the dataset is smaller than one global batch (train.batch_size)")
        if args.eval.steps == -1:
            args.eval.steps = num_update_steps_per_epoch
        if args.ckpt.save_steps == -1:
            args.ckpt.save_steps = float("inf")

        accumulation = self.strategy.accumulated_gradient
        step = consumed_samples // args.train.batch_size * accumulation + 1
        start_epoch = consumed_samples // args.train.batch_size // num_update_steps_per_epoch
        consumed_samples = consumed_samples % (num_update_steps_per_epoch * args.train.batch_size)
        window: dict[str, float] = {}
        for epoch in range(start_epoch, self.epochs):
            if isinstance(self.train_dataloader.sampler, DistributedSampler):
                self.train_dataloader.sampler.set_epoch(
                    epoch, consumed_samples=0 if epoch > start_epoch else consumed_samples
                )
            bar = tqdm(
                range(len(self.train_dataloader)),
                desc=f"DPO epoch {epoch}",
                disable=not self.strategy.is_rank_0(),
            )
            self.model.train()
            self.ref_model.eval()
            for batch in self.train_dataloader:
                terms = self.forward_backward(batch)
                self.strategy.optimizer_step(self.optimizer, self.model, self.scheduler)
                self._release_after_optimizer_call(boundary=step % accumulation == 0)
                logs = {
                    "loss": terms.total.item(),
                    "dpo_loss": terms.dpo.item(),
                    "nll_loss": terms.nll.item(),
                    "kl": terms.kl.item(),
                    "reward_margin": terms.margin.item(),
                    "acc": terms.accuracy.item(),
                    "chosen_reward": terms.chosen_reward.mean().item(),
                    "reject_reward": terms.rejected_reward.mean().item(),
                }
                logs = self.strategy.all_reduce(logs)
                for key, value in logs.items():
                    window[key] = window.get(key, 0.0) + value / accumulation
                bar.set_postfix(logs)
                bar.update()
                if step % accumulation == 0:
                    global_step = step // accumulation
                    window.update(
                        lr=self.scheduler.get_last_lr()[0], grad_norm=self.strategy.get_grad_norm(self.model)
                    )
                    if self.eval_dataloader is not None and global_step % args.eval.steps == 0:
                        window.update(self.evaluate(self.eval_dataloader, global_step))
                    append_metrics(self.metrics_file, global_step, window, self.strategy.is_rank_0())
                    client_states = {"consumed_samples": global_step * args.train.batch_size}
                    self.save_logs_and_checkpoints(args, global_step, bar, dict(window), client_states)
                    window = {}
                step += 1
        if self._wandb is not None and self.strategy.is_rank_0():
            self._wandb.finish()
        if self._tensorboard is not None and self.strategy.is_rank_0():
            self._tensorboard.close()

    def evaluate(self, eval_dataloader, steps: int = 0) -> dict[str, float]:
        """Our objective and its terms on the evaluation set as ``eval_*`` (example-weighted
        means over the set). ``fit`` logs them in the step's metrics row; upstream's
        ``save_logs_and_checkpoints`` asks again for the same step and gets the cached result."""
        if self._evaluated_step is not None and self._evaluated_step[0] == steps:
            return self._evaluated_step[1]
        self.model.eval()
        sums: dict[str, float] = {}
        examples = 0
        with torch.no_grad():
            for batch in eval_dataloader:
                terms = self.compute_terms(batch, self.eval_reference_logps)
                size = int(terms.chosen_reward.numel())
                values = {
                    "eval_loss": terms.total.item(),
                    "eval_dpo_loss": terms.dpo.item(),
                    "eval_nll_loss": terms.nll.item(),
                    "eval_kl": terms.kl.item(),
                    "eval_acc": terms.accuracy.item(),
                    "eval_reward_margin": terms.margin.item(),
                }
                for key, value in values.items():
                    sums[key] = sums.get(key, 0.0) + value * size
                examples += size
        self.model.train()
        if not examples:
            return {}
        logs = self.strategy.all_reduce({key: value / examples for key, value in sums.items()})
        self._evaluated_step = (steps, logs)
        return logs
