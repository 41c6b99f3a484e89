"""Training stages (DPO, SFT) on openrlhf_ext, and adapter merging."""
