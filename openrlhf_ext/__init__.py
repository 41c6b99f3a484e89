"""Our extension of OpenRLHF (pinned 0.11.2): DPO with per-token KL and NLL terms, an
adapter-disabled reference, CPU runtime support, and the CLI entry points DeepSpeed launches."""
