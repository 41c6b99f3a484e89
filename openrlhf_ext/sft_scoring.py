"""Response-only scoring for upstream's SFT trainer (the DPO trainer's ``token_logps`` path).

``openrlhf_ext.cli.train_sft`` runs OpenRLHF's own SFT script, whose training step asks the
Actor for per-token log-probs of every position and then multiplies them by the loss mask (1 on
assistant turns). The Actor never sees that mask, so it projects every position onto the whole
vocabulary in fp32. ``install`` makes the mask reach it: the micro-batch iterator the SFT trainer
uses leaves each micro-batch's loss mask in ``_PENDING``, and the Actor's forward, when it finds
one for a plain log-prob request, runs the decoder, scores only the positions whose next token is
in the loss, and returns the dense ``[batch, length - 1]`` tensor with zeros elsewhere, which the
loss multiplies by the same mask, so the loss and its gradient are unchanged (tested).

Anything else (evaluation batches, packed samples, entropy requests, multimodal inputs) takes
upstream's path untouched. This patches two names of the pinned OpenRLHF 0.11.2; the patch is
installed only by our SFT CLI, and only when ``--logps.full_vocab`` is not given.
"""

from __future__ import annotations

import threading

import torch

from openrlhf_ext.pair_scoring import causal_lm_of, decoder_hidden_states, logit_softcap
from openrlhf_ext.token_logps import DEFAULT_CHUNK_ROWS, token_logps


class _PendingMask(threading.local):
    mask: torch.Tensor | None = None

    def take(self) -> torch.Tensor | None:
        mask, self.mask = self.mask, None
        return mask


_PENDING = _PendingMask()


def masked_token_logps(
    module, input_ids: torch.Tensor, attention_mask: torch.Tensor, loss_mask: torch.Tensor, chunk: int
) -> torch.Tensor:
    """``[batch, length - 1]`` log-probs of token t+1 at every t with ``loss_mask[:, t]`` set
    (upstream's alignment: ``per_token_log_probs * loss_mask[:, :-1]``), zeros elsewhere."""
    position_ids = attention_mask.long().cumsum(-1) - 1
    position_ids.masked_fill_(attention_mask == 0, 1)
    hidden = decoder_hidden_states(module, input_ids, attention_mask, position_ids)
    scored = loss_mask[:, :-1].bool()
    rows, cols = scored.nonzero(as_tuple=True)
    model = causal_lm_of(module)
    values = token_logps(
        hidden[rows, cols],
        model.get_output_embeddings(),
        input_ids[rows, cols + 1],
        chunk,
        logit_softcap(model),
    )
    dense = values.new_zeros(input_ids.shape[0], input_ids.shape[1] - 1)
    return dense.index_put((rows, cols), values)


def install(chunk: int = DEFAULT_CHUNK_ROWS) -> None:
    """Patch upstream's SFT micro-batch iterator and ``Actor.forward`` (see the module docstring)."""
    import openrlhf.trainer.sft_trainer as sft_trainer
    from openrlhf.models import Actor

    upstream_iter = sft_trainer.iter_grad_accum_global_norm

    def iter_with_loss_masks(*args, **kwargs):
        for (inputs, attention_masks, loss_masks), info in upstream_iter(*args, **kwargs):
            _PENDING.mask = loss_masks
            yield (inputs, attention_masks, loss_masks), info
        _PENDING.mask = None

    upstream_forward = Actor.forward
    announced: list[bool] = []

    def forward(self, sequences, action_mask=None, attention_mask=None, return_output=False, **kwargs):
        loss_mask = _PENDING.take()
        plain = (
            loss_mask is not None
            and kwargs.get("return_logprobs")
            and action_mask is None
            and not kwargs.get("return_entropy")
            and not self.packing_samples
            and getattr(self, "temperature", 1.0) == 1.0
            and set(kwargs) <= {"return_logprobs", "ring_attn_group"}
            and kwargs.get("ring_attn_group") is None
        )
        if not plain:
            return upstream_forward(
                self, sequences, action_mask, attention_mask, return_output=return_output, **kwargs
            )
        if not announced:
            print("SFT: the output layer scores loss positions only (sft_scoring.py)", flush=True)
            announced.append(True)
        loss_mask = loss_mask.to(sequences.device).squeeze(1)
        logps = masked_token_logps(self.model, sequences, attention_mask, loss_mask, chunk)
        return (logps, {"aux_loss": 0.0}) if return_output else logps

    sft_trainer.iter_grad_accum_global_norm = iter_with_loss_masks
    Actor.forward = forward
