"""DPO with per-token KL and NLL terms on OpenRLHF + DeepSpeed (GPU or CPU).

    deepspeed --module openrlhf_ext.cli.train_dpo <upstream flags> --model.kl_coef 0.001 ...
    torchrun --nproc_per_node 1 -m openrlhf_ext.cli.train_dpo ...

Accepts every flag of ``openrlhf.cli.train_dpo`` plus:
  --model.kl_coef FLOAT         weight of the per-token KL penalty (0 disables it)
  --model.kl_estimator NAME     squared_log_ratio (the paper's) or k3
  --model.length_normalize      mean instead of summed log-probs in the DPO term
  --ref.adapter_disabled        reference = the policy with its LoRA adapter off (no second copy)
  --logger.metrics_file PATH    append every logged step's terms as JSON lines
"""

from __future__ import annotations

import math
import os
import sys

from openrlhf_ext.cpu_runtime import (
    activate_if_no_cuda,
    default_attn_implementation,
    provide_flash_attn_helpers,
)
from openrlhf_ext.launch import die_with_parent
from openrlhf_ext.loss import KL_ESTIMATORS, CharacterDPOLoss


def parse_args(argv: list[str] | None = None):
    from openrlhf.utils.config import hierarchize

    from openrlhf_ext.cli.upstream import upstream_parser

    parser = upstream_parser("openrlhf.cli.train_dpo")
    parser.add_argument("--model.kl_coef", type=float, default=0.0)
    parser.add_argument("--model.kl_estimator", type=str, default="squared_log_ratio", choices=KL_ESTIMATORS)
    parser.add_argument("--model.length_normalize", action="store_true", default=False)
    parser.add_argument("--ref.adapter_disabled", action="store_true", default=False)
    parser.add_argument("--logger.metrics_file", type=str, default=None)
    parser.set_defaults(**{"ds.attn_implementation": default_attn_implementation()})
    args = hierarchize(parser.parse_args(argv))
    if not args.ref.model_name_or_path:
        args.ref.model_name_or_path = args.model.model_name_or_path
    if args.ref.adapter_disabled and args.ds.lora.rank <= 0:
        parser.error("--ref.adapter_disabled needs LoRA training (--ds.lora.rank > 0)")
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
    dataset = RewardDataset(
        data, tokenizer, args.data.max_len, strategy, input_template=args.data.input_template, is_dpo=True
    )
    loader = strategy.setup_dataloader(
        dataset, args.train.micro_batch_size, True, train, dataset.collate_fn, drop_last=train
    )
    return dataset, loader


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
        _, eval_loader = _dataloader(
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
        beta=args.model.beta,
        max_epochs=args.train.max_epochs,
        save_hf_ckpt=args.ckpt.save_hf,
        disable_ds_ckpt=args.ckpt.disable_ds,
        loss=loss,
        metrics_file=args.logger.metrics_file,
    )
    trainer.fit(args, consumed_samples, steps_per_epoch)
    strategy.save_model(model, tokenizer, args.ckpt.output_dir)


def main(argv: list[str] | None = None) -> None:
    die_with_parent()
    provide_flash_attn_helpers()
    activate_if_no_cuda()
    train(parse_args(argv if argv is not None else sys.argv[1:]))


if __name__ == "__main__":
    main()
