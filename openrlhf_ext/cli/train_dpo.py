"""DPO with per-token KL and NLL terms on OpenRLHF + DeepSpeed (GPU or CPU).

    deepspeed --module openrlhf_ext.cli.train_dpo <upstream flags> --model.kl_coef 0.001 ...
    torchrun --nproc_per_node 1 -m openrlhf_ext.cli.train_dpo ...

Accepts every flag of ``openrlhf.cli.train_dpo`` plus:
  --model.kl_coef FLOAT         weight of the per-token KL penalty (0 disables it)
  --model.kl_estimator NAME     squared_log_ratio (the paper's) or k3
  --model.length_normalize      mean instead of summed log-probs in the DPO term
  --ref.adapter_disabled        reference = the policy with its LoRA adapter off (no second copy)
  --logger.metrics_file PATH    append every logged step's terms (and eval_* terms) as JSON lines
  --ds.param_dtype {auto,fp32}  besides upstream's bf16/fp16: fp32, or auto = bf16 where the
                                hardware computes it fast, else fp32 (openrlhf_ext/precision.py)
The fast path is on by default (docs/openrlhf_ext.md); these flags turn its parts off:
  --logps.full_vocab            upstream's path: full-vocabulary fp32 logits on every position
  --logps.separate_prompts      chosen and rejected as two rows (the prompt computed twice)
  --logps.always_share_prompt   one row per pair in every micro-batch, also where two rows are
                                estimated cheaper (long answers after a short prompt)
  --ref.per_step                run the reference on every micro-batch instead of once up front
  --memory.release_freed_pages {pass,step,never}
                                when freed host memory goes back to the system (``host_memory.py``):
                                after every backward pass (default), once per optimizer step
                                (faster, less saved), or never (kept in the allocator, as upstream)
and tune it:
  --logps.chunk_rows INT        response positions per output-layer chunk (default 512)
  --logps.row_by_row            one forward per row, cut to its length, instead of one for the
                                micro-batch's padded rows (no padding computed; slower here)
  --logps.max_pass_tokens INT   run a micro-batch in passes of at most this many tokens, each
                                with its own backward: same gradients, less activation memory
                                (default 2048; 0 = the whole micro-batch in one pass)
  --ref.logps_file PATH         where the precomputed reference log-probs are kept
                                (default <ckpt.path>/reference_logps-{train,eval}.pt)
  --ref.logps_batch INT         pairs per forward for examples the first epoch's batches leave
                                out (drop_last) in the reference pass (default 16)

The loss defaults (beta, NLL and KL weights, estimator) are the pipeline's
(``openrlhf_ext/objective.py``), so a run by hand with no loss flags trains the same objective.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from openrlhf_ext.cpu_runtime import (
    activate_if_no_cuda,
    default_attn_implementation,
    provide_flash_attn_helpers,
)
from openrlhf_ext.host_memory import DEFAULT_RELEASE_POINT, RELEASE_POINTS
from openrlhf_ext.launch import die_with_parent
from openrlhf_ext.loss import KL_ESTIMATORS, CharacterDPOLoss
from openrlhf_ext.micro_passes import split_batch
from openrlhf_ext.objective import DEFAULT_MAX_PASS_TOKENS, DPO_OBJECTIVE
from openrlhf_ext.pair_scoring import Scoring
from openrlhf_ext.precision import allow_fp32_params, resolve_param_dtype, widen_param_dtype_choices
from openrlhf_ext.reference_logps import (
    IndexedPairs,
    ReferenceLogps,
    compute_reference_logps,
    dataset_fingerprint,
)
from openrlhf_ext.token_logps import DEFAULT_CHUNK_ROWS


def parse_args(argv: list[str] | None = None):
    from openrlhf.utils.config import hierarchize

    from openrlhf_ext.cli.upstream import upstream_parser

    parser = upstream_parser("openrlhf.cli.train_dpo")
    widen_param_dtype_choices(parser)
    parser.add_argument("--model.kl_coef", type=float, default=DPO_OBJECTIVE.kl_coef)
    parser.add_argument(
        "--model.kl_estimator", type=str, default=DPO_OBJECTIVE.kl_estimator, choices=KL_ESTIMATORS
    )
    parser.add_argument(
        "--model.length_normalize", action="store_true", default=DPO_OBJECTIVE.length_normalize
    )
    parser.add_argument("--ref.adapter_disabled", action="store_true", default=False)
    parser.add_argument("--ref.per_step", action="store_true", default=False)
    parser.add_argument("--ref.logps_file", type=str, default=None)
    parser.add_argument("--ref.logps_batch", type=int, default=16)
    parser.add_argument("--logps.full_vocab", action="store_true", default=False)
    parser.add_argument("--logps.separate_prompts", action="store_true", default=False)
    parser.add_argument("--logps.always_share_prompt", action="store_true", default=False)
    parser.add_argument("--logps.chunk_rows", type=int, default=DEFAULT_CHUNK_ROWS)
    parser.add_argument("--logps.row_by_row", action="store_true", default=False)
    parser.add_argument("--logps.max_pass_tokens", type=int, default=DEFAULT_MAX_PASS_TOKENS)
    parser.add_argument("--memory.release_freed_pages", choices=RELEASE_POINTS, default=DEFAULT_RELEASE_POINT)
    parser.add_argument("--logger.metrics_file", type=str, default=None)
    parser.set_defaults(
        **{
            "ds.attn_implementation": default_attn_implementation(),
            "model.beta": DPO_OBJECTIVE.beta,
            "model.nll_loss_coef": DPO_OBJECTIVE.nll_coef,
            "model.label_smoothing": DPO_OBJECTIVE.label_smoothing,
        }
    )
    args = hierarchize(parser.parse_args(argv))
    args.ds.param_dtype = resolve_param_dtype(args.ds.param_dtype)
    if not args.ref.model_name_or_path:
        args.ref.model_name_or_path = args.model.model_name_or_path
    if args.ref.adapter_disabled and args.ds.lora.rank <= 0:
        parser.error("--ref.adapter_disabled needs LoRA training (--ds.lora.rank > 0)")
    if args.logps.chunk_rows < 1:
        parser.error(f"--logps.chunk_rows must be >= 1, got {args.logps.chunk_rows}")
    if args.logps.max_pass_tokens < 0:
        parser.error(f"--logps.max_pass_tokens must be >= 0 (0: no limit), got {args.logps.max_pass_tokens}")
    return args


def _actor(args, path: str, ds_config, lora: bool):
    from openrlhf.models import Actor

    return Actor(
        path,
        attn_implementation=args.ds.attn_implementation,
        param_dtype=args.ds.param_dtype,
        load_in_4bit=args.ds.load_in_4bit,
        lora_rank=args.ds.lora.rank if lora else 0,
        lora_alpha=args.ds.lora.alpha,
        lora_dropout=args.ds.lora.dropout,
        target_modules=args.ds.lora.target_modules,
        ds_config=ds_config,
        packing_samples=args.ds.packing_samples,
    )


def _dataloader(args, strategy, tokenizer, datasets: str, split: str, probs, train: bool):
    from openrlhf.datasets import RewardDataset
    from openrlhf.datasets.utils import blending_datasets

    data = blending_datasets(
        datasets, probs, strategy, args.train.seed, max_count=args.data.max_samples, dataset_split=split
    )
    data = data.select(range(min(args.data.max_samples, len(data))))
    dataset = IndexedPairs(
        RewardDataset(
            data, tokenizer, args.data.max_len, strategy, input_template=args.data.input_template, is_dpo=True
        )
    )
    loader = strategy.setup_dataloader(
        dataset, args.train.micro_batch_size, True, train, dataset.collate_fn, drop_last=train
    )
    return dataset, loader


def scoring_of(args, strategy) -> Scoring:
    """The trainer's log-prob path from the flags; a shared-prompt row needs a custom attention
    mask, which flash-attention does not take, so there the rows stay separate."""
    share = not args.logps.separate_prompts
    if share and args.ds.attn_implementation not in ("sdpa", "eager"):
        strategy.print(f"prompt sharing needs sdpa or eager attention, not {args.ds.attn_implementation}")
        share = False
    return Scoring(
        response_only=not args.logps.full_vocab,
        share_prompt=share,
        share_by_cost=not args.logps.always_share_prompt,
        chunk_rows=args.logps.chunk_rows,
        attn_implementation=args.ds.attn_implementation,
        row_by_row=args.logps.row_by_row,
    )


def reference_table(args, strategy, trainer, dataset: IndexedPairs, split: str) -> ReferenceLogps:
    """The reference log-probs of ``dataset``: loaded when stored with a matching fingerprint,
    else computed in one no-grad pass and stored (docs/openrlhf_ext.md)."""
    import torch
    import torch.distributed as dist
    from tqdm import tqdm

    path = Path(args.ref.logps_file or Path(args.ckpt.path) / "reference_logps.pt")
    path = path.with_name(f"{path.stem}-{split}{path.suffix}")
    fingerprint = dataset_fingerprint(
        dataset.pairs,
        reference=args.ref.model_name_or_path,
        adapter_disabled=args.ref.adapter_disabled,
        max_len=args.data.max_len,
        share_prompt=trainer.scoring.share_prompt,
        share_by_cost=trainer.scoring.share_by_cost,
        attn=args.ds.attn_implementation,
        dtype=args.ds.param_dtype,
        row_by_row=trainer.scoring.row_by_row,
        max_pass_tokens=trainer.max_pass_tokens,
    )
    stored = ReferenceLogps.load(path, fingerprint)
    if stored is not None and len(stored) == len(dataset):
        strategy.print(f"reference log-probs ({split}): reused {path}")
        return stored
    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)

    def progress(batches):
        return tqdm(batches, desc=f"reference log-probs ({split})", disable=not strategy.is_rank_0())

    loader = trainer.train_dataloader if split == "train" else trainer.eval_dataloader
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(0, consumed_samples=0)  # the first epoch's batches, as fit will see them
    rng = torch.get_rng_state()  # iterating a loader draws a seed; training's randomness stays put
    # training scores its micro-batches in passes (micro_passes.py); scoring the same passes
    # here keeps the stored numbers bit-equal to the untrained policy's in bf16
    max_tokens = trainer.max_pass_tokens if split == "train" else 0
    passes = (part for batch in progress(loader) for part in split_batch(batch, max_tokens))
    table = compute_reference_logps(
        dataset,
        passes,
        lambda batch: trainer.score_batch(trainer.ref_model, batch),
        fingerprint,
        batch_pairs=args.ref.logps_batch,
        rank=rank,
        world_size=world,
    )
    torch.set_rng_state(rng)
    if strategy.is_rank_0():
        table.save(path)
    return table


def train(args) -> None:
    from openrlhf.utils import get_strategy, get_tokenizer

    from openrlhf_ext.reference import AdapterDisabledReference
    from openrlhf_ext.trainer import CharacterDPOTrainer

    strategy = get_strategy(args)
    strategy.setup_distributed()
    model = _actor(args, args.model.model_name_or_path, strategy.get_ds_train_config(), lora=True)
    tokenizer = get_tokenizer(args.model.model_name_or_path, model.model, "right", strategy)
    ref_model = None
    if not args.ref.adapter_disabled:
        ref_model = _actor(
            args, args.ref.model_name_or_path, strategy.get_ds_eval_config(offload=args.ref.offload), False
        )
        get_tokenizer(args.model.model_name_or_path, ref_model.model, "right", strategy)
    if args.model.gradient_checkpointing_enable:
        model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": args.model.gradient_checkpointing_reentrant}
        )
    train_dataset, train_loader = _dataloader(
        args, strategy, tokenizer, args.data.dataset, args.data.dataset_split, args.data.dataset_probs, True
    )
    eval_loader = None
    if args.eval.dataset:
        eval_dataset, eval_loader = _dataloader(
            args, strategy, tokenizer, args.eval.dataset, args.eval.split, None, False
        )
    steps_per_epoch = len(train_dataset) // args.train.batch_size
    optim_cfg = dict(
        optim=args.optim,
        muon=vars(args.muon),
        adam=vars(args.adam),
        lr_scheduler=args.lr_scheduler,
        lr_warmup_ratio=args.lr_warmup_ratio,
        min_lr_ratio=args.min_lr_ratio,
        max_norm=args.max_norm,
        scheduler_steps=math.ceil(args.train.max_epochs * steps_per_epoch),
    )
    if ref_model is None:
        model, optim, scheduler = strategy.prepare((model, optim_cfg))
        ref_model = AdapterDisabledReference(model)
    else:
        (model, optim, scheduler), ref_model = strategy.prepare((model, optim_cfg), ref_model)

    consumed_samples = 0
    if args.ckpt.load_enable and os.path.exists(args.ckpt.path):
        load_path, states = strategy.load_ckpt(model.model, args.ckpt.path)
        if load_path is not None:
            consumed_samples = states["consumed_samples"]
            strategy.print(f"resumed from {load_path}: consumed_samples={consumed_samples}")
    os.makedirs(args.ckpt.output_dir, exist_ok=True)

    loss = CharacterDPOLoss(
        beta=args.model.beta,
        nll_coef=args.model.nll_loss_coef,
        kl_coef=args.model.kl_coef,
        kl_estimator=args.model.kl_estimator,
        length_normalize=args.model.length_normalize,
        label_smoothing=args.model.label_smoothing,
        ipo=args.model.ipo_enable,
    )
    trainer = CharacterDPOTrainer(
        model=model,
        ref_model=ref_model,
        tokenizer=tokenizer,
        strategy=strategy,
        optim=optim,
        train_dataloader=train_loader,
        eval_dataloader=eval_loader,
        scheduler=scheduler,
        max_norm=args.max_norm,
        max_epochs=args.train.max_epochs,
        save_hf_ckpt=args.ckpt.save_hf,
        disable_ds_ckpt=args.ckpt.disable_ds,
        loss=loss,
        metrics_file=args.logger.metrics_file,
        scoring=scoring_of(args, strategy),
        max_pass_tokens=args.logps.max_pass_tokens,
        release_freed_pages=args.memory.release_freed_pages,
    )
    if trainer.scoring.response_only and not args.ref.per_step:
        trainer.reference_logps = reference_table(args, strategy, trainer, train_dataset, "train")
        if eval_loader is not None:
            trainer.eval_reference_logps = reference_table(args, strategy, trainer, eval_dataset, "eval")
    trainer.fit(args, consumed_samples, steps_per_epoch)
    strategy.save_model(model, tokenizer, args.ckpt.output_dir)


def main(argv: list[str] | None = None) -> None:
    die_with_parent()
    provide_flash_attn_helpers()
    activate_if_no_cuda()
    allow_fp32_params()
    train(parse_args(argv if argv is not None else sys.argv[1:]))


if __name__ == "__main__":
    main()
