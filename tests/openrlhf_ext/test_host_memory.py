"""Freed host memory goes back to the system (openrlhf_ext/host_memory.py)."""

from __future__ import annotations

import os

import torch

from openrlhf_ext.cli.train_dpo import parse_args
from openrlhf_ext.host_memory import release_free_host_memory


def resident_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_freed_tensors_stay_resident_until_released() -> None:
    # 4,000 tensors of 100 kB: below glibc's mmap threshold, so they live in the heap; the last one
    # stays alive, so the heap's top cannot shrink on free and the freed 400 MB stay resident.
    before = resident_mb()
    tensors = [torch.ones(25_000) for _ in range(4000)]
    last = tensors[-1]
    del tensors
    held = resident_mb() - before
    assert held > 300, f"glibc returned the freed heap by itself ({held:.0f} MB still resident)"
    assert release_free_host_memory()
    assert resident_mb() - before < held - 300
    assert float(last.sum()) == 25_000.0  # the live tensor is untouched


def test_the_cli_hands_memory_back_unless_told_to_keep_it(tmp_path) -> None:
    common = ["--model.model_name_or_path", str(tmp_path), "--data.dataset", str(tmp_path)]
    assert parse_args(common).memory.keep_freed_pages is False
    assert parse_args([*common, "--memory.keep_freed_pages"]).memory.keep_freed_pages is True
