"""The named outputs of the ``dpo``, ``sft`` and ``merge`` stages: where their adapters and models
are, given the stage's folder.

Here rather than on the stage classes (which inherit them) so that later stages (introspection,
the evaluations, robustness's ``method_model``) find these models without importing the training
stage module: no stage module imports another (tests/test_import_graph.py).
"""

from __future__ import annotations

from pathlib import Path


class DpoOutputs:
    @staticmethod
    def adapter(dpo_dir: Path) -> Path:
        """The DPO LoRA adapter (on the base model)."""
        return dpo_dir / "adapter"

    @staticmethod
    def merged_model(dpo_dir: Path) -> Path:
        """The base model with the DPO adapter folded in: the post-distillation model."""
        return dpo_dir / "merged"


class SftOutputs:
    @staticmethod
    def adapter(sft_dir: Path) -> Path:
        """The SFT LoRA adapter (on the post-distillation model)."""
        return sft_dir / "adapter"


class MergeOutputs:
    @staticmethod
    def final_model(merge_dir: Path) -> Path:
        """The character-trained model: the post-distillation model with the SFT adapter folded in."""
        return merge_dir / "final"

    @staticmethod
    def composed_adapter(merge_dir: Path) -> Path:
        """One adapter on the base model equal to DPO then SFT (weights 1, 1)."""
        return merge_dir / "adapter_composed"

    @staticmethod
    def release_adapter(merge_dir: Path) -> Path:
        """One adapter on the base model, the paper's release form (stages.merge weights)."""
        return merge_dir / "adapter_release"
