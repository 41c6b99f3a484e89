"""OpenRLHF's DPO trainer, with the character-training loss (DPO + NLL + per-token KL).

Upstream computes the loss inside ``fit``, from per-sequence sums only; the per-token KL needs
per-token log-probs of policy and reference, so ``fit`` is replaced by a loop of our own that
keeps upstream's semantics (gradient accumulation, step accounting, ``consumed_samples`` for
resume, evaluation and checkpointing through upstream's ``save_logs_and_checkpoints``) and logs
every term of the loss separately.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from openrlhf.trainer.dpo_trainer import DPOTrainer
from openrlhf.utils.distributed_sampler import DistributedSampler
from tqdm import tqdm

from openrlhf_ext.loss import CharacterDPOLoss, DpoLossTerms
from openrlhf_ext.metrics_log import append_metrics


class CharacterDPOTrainer(DPOTrainer):
    """``DPOTrainer`` whose training step uses ``CharacterDPOLoss``."""

    def __init__(self, *args: Any, loss: CharacterDPOLoss, metrics_file: str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.character_loss = loss
        self.metrics_file = Path(metrics_file) if metrics_file else None

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

    def compute_terms(self, batch) -> DpoLossTerms:
        """The loss terms on one micro-batch (policy with grad, reference without)."""
        chosen_ids, c_mask, reject_ids, r_mask, prompt_id_lens = batch
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
                terms = self.compute_terms(batch)
                self.strategy.backward(terms.total, self.model, self.optimizer)
                self.strategy.optimizer_step(self.optimizer, self.model, self.scheduler)
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
                    append_metrics(self.metrics_file, global_step, window, self.strategy.is_rank_0())
                    client_states = {"consumed_samples": global_step * args.train.batch_size}
                    self.save_logs_and_checkpoints(args, global_step, bar, dict(window), client_states)
                    window = {}
                step += 1
        if self._wandb is not None and self.strategy.is_rank_0():
            self._wandb.finish()
        if self._tensorboard is not None and self.strategy.is_rank_0():
            self._tensorboard.close()
