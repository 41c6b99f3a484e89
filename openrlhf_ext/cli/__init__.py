"""Entry points the DeepSpeed launcher / torchrun start: ``python -m openrlhf_ext.cli.train_dpo``."""
