"""Log-probabilities of chosen tokens from hidden states, scored only where the loss needs them.

The usual path (OpenRLHF's ``Actor.forward``) runs the output layer on every position of every
sequence, copies the ``[batch, seq, vocab]`` logits to fp32, takes a full log-softmax and keeps
all of it for the backward pass. DPO and SFT only use the log-probability of one token per
response position, so here the output layer runs on the selected hidden states only, in chunks of
rows, and per row only two numbers are kept in fp32 (the log-sum-exp and the target logit).

    logp_i = z_i[y_i] - logsumexp_v z_i[v],        z_i = W h_i   (output layer, param dtype)
    d logp_i / d z_i = onehot(y_i) - softmax(z_i)

``ChunkedTokenLogProbs`` keeps the chunk's logits in the parameter dtype (what the matmul
produced; bf16 on the usual runs) for its backward and recomputes the softmax from them and the
saved log-sum-exp, in fp32, one chunk at a time. Every number is then the one the usual path
computes (same bf16 logits, same fp32 softmax, gradient rounded to bf16 before the matmul, as the
usual path's ``.to(float32)`` does in its backward), while the fp32 buffers shrink from
``positions x vocab`` to ``chunk x vocab``.

Output layers that are not a plain bias-free ``nn.Linear`` (a LoRA-wrapped head, a bias, logit
soft-capping, a ZeRO-3 partitioned weight) go through ``module_token_logps``: the same
chunking with ordinary autograd.
"""

from __future__ import annotations

import torch
from torch import nn

DEFAULT_CHUNK_ROWS = 512


class ChunkedTokenLogProbs(torch.autograd.Function):
    """``logp[i] = log_softmax(hidden[i] @ weight.T)[targets[i]]`` in fp32, chunk by chunk."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int):
        work = torch.promote_types(hidden.dtype, torch.float32)  # fp32, or fp64 in gradcheck
        logps = torch.empty(hidden.shape[0], dtype=work, device=hidden.device)
        lse = torch.empty_like(logps)
        kept: list[torch.Tensor] = []
        for start in range(0, hidden.shape[0], chunk):
            stop = start + chunk
            logits = hidden[start:stop] @ weight.T
            logits32 = logits.to(work)
            lse[start:stop] = torch.logsumexp(logits32, dim=-1)
            picked = logits32.gather(1, targets[start:stop, None]).squeeze(1)
            logps[start:stop] = picked - lse[start:stop]
            if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
                kept.append(logits)
        ctx.save_for_backward(hidden, weight, targets, lse, *kept)
        ctx.chunk = chunk
        return logps

    @staticmethod
    def backward(ctx, grad_logps: torch.Tensor):
        hidden, weight, targets, lse, *kept = ctx.saved_tensors
        chunk = ctx.chunk
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        work = lse.dtype
        grad_weight = torch.zeros_like(weight, dtype=work) if ctx.needs_input_grad[1] else None
        for index, start in enumerate(range(0, hidden.shape[0], chunk)):
            stop = start + chunk
            probs = torch.exp(kept[index].to(work) - lse[start:stop, None])
            grad = grad_logps[start:stop, None].to(work)
            grad_logits = probs.mul_(-grad)
            grad_logits.scatter_add_(1, targets[start:stop, None], grad)
            grad_logits = grad_logits.to(hidden.dtype)
            if grad_hidden is not None:
                grad_hidden[start:stop] = grad_logits @ weight
            if grad_weight is not None:
                grad_weight += (grad_logits.T @ hidden[start:stop]).to(work)
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        return grad_hidden, grad_weight, None, None


def module_token_logps(
    hidden: torch.Tensor,
    output_layer: nn.Module,
    targets: torch.Tensor,
    chunk: int = DEFAULT_CHUNK_ROWS,
    softcap: float | None = None,
) -> torch.Tensor:
    """The same quantity for any output module, chunked, with ordinary autograd (fp32 per chunk)."""
    pieces = []
    work = torch.promote_types(hidden.dtype, torch.float32)
    for start in range(0, hidden.shape[0], chunk):
        logits = output_layer(hidden[start : start + chunk]).to(work)
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        logprobs = torch.log_softmax(logits, dim=-1)
        pieces.append(logprobs.gather(1, targets[start : start + chunk, None]).squeeze(1))
    if not pieces:
        return hidden.new_zeros(0, dtype=work)
    return torch.cat(pieces)


def token_logps(
    hidden: torch.Tensor,
    output_layer: nn.Module,
    targets: torch.Tensor,
    chunk: int = DEFAULT_CHUNK_ROWS,
    softcap: float | None = None,
) -> torch.Tensor:
    """fp32 log-probs of ``targets`` (one per row of ``hidden``) under ``output_layer``."""
    plain = (
        type(output_layer) is nn.Linear
        and output_layer.bias is None
        and not softcap
        and not hasattr(output_layer.weight, "ds_id")  # ZeRO-3 gathers it in the module's hooks only
    )
    if not plain or hidden.shape[0] == 0:
        return module_token_logps(hidden, output_layer, targets, chunk, softcap)
    return ChunkedTokenLogProbs.apply(hidden, output_layer.weight, targets, chunk)
