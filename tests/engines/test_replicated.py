"""Data-parallel replicas of a real engine return what one engine returns, in order."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from character.config.schema import EngineConfig
from character.engines.base import LoraAdapter, Sampling
from character.engines.factory import build_engine, build_replica
from character.engines.replicated import ReplicatedEngine, gpu_slices, slices
from character.errors import CharacterError
from tests.engines.conftest import CONVERSATIONS, PREFILLS


def engine_config(**values) -> object:
    return OmegaConf.merge(OmegaConf.structured(EngineConfig), values)


def test_two_replicas_generate_exactly_what_one_engine_does(tiny_model: str, hf_engine) -> None:
    conversations = CONVERSATIONS + CONVERSATIONS[:1]  # 5 rows: slices of 3 and 2
    prefills = PREFILLS + [None]
    greedy = Sampling(temperature=0.0, max_tokens=12)
    single = hf_engine.generate(conversations, greedy, prefills=prefills)
    cfg = engine_config(backend="transformers", dtype="float32", data_parallel_size=2, batch_size=8)
    with build_engine(cfg, tiny_model, True) as engine:
        assert isinstance(engine, ReplicatedEngine)
        assert engine.info.details["data_parallel_size"] == 2
        replicated = engine.generate(conversations, greedy, prefills=prefills)
        assert [g.texts for g in replicated] == [g.texts for g in single]
        assert [g.completion_tokens for g in replicated] == [g.completion_tokens for g in single]
        assert engine.counters.conversations == 5
        assert engine.generate(conversations[:1], greedy)[0].texts == single[0].texts  # one busy replica
        # judges' choices travel to the replicas with the rows (constrained answers, as one engine)
        choices = [("<answer>1</answer>", "<answer>2</answer>", "<answer>INVALID</answer>")] * 5
        constrained = engine.generate(conversations, greedy, prefills=prefills, choices=choices)
        expected = hf_engine.generate(conversations, greedy, prefills=prefills, choices=choices)
        assert [g.texts for g in constrained] == [g.texts for g in expected]
        assert all(g.texts[0] in choices[0] for g in constrained)
    assert all(not p.is_alive() for p in engine._processes)


def test_a_replica_that_cannot_start_is_reported(tmp_path) -> None:
    cfg = engine_config(backend="transformers", data_parallel_size=2)
    with pytest.raises(RuntimeError, match="engine replica 0 failed"):
        ReplicatedEngine(
            OmegaConf.to_container(cfg), str(tmp_path / "no-model"), True, 2, build=build_replica
        )


def test_slices_and_gpu_assignment() -> None:
    assert slices(5, 2) == [range(0, 3), range(3, 5)]
    assert slices(1, 3) == [range(0, 1), range(1, 1), range(1, 1)]
    assert gpu_slices(4, 2, [str(i) for i in range(8)]) == ["0,1", "2,3", "4,5", "6,7"]
    assert gpu_slices(2, 1, ["3", "5"]) == ["3", "5"]
    assert gpu_slices(2, 1, []) == [None, None]
    with pytest.raises(CharacterError, match="needs 6 GPUs, but 4 are visible"):
        gpu_slices(3, 2, ["0", "1", "2", "3"])


def test_vllm_replicas_keep_each_rows_seed(tiny_model: str, vllm_engine, lora_adapter: str) -> None:
    """Sampled, not greedy: per-row seeds make the replicated output independent of the split.

    The replicas are built as the pipeline builds engines whose requests name no adapter: without
    vLLM's LoRA layers (slower on every request). They write what the LoRA-enabled fixture
    engine writes, and refuse an adapter with a message that says how to enable them."""
    conversations = CONVERSATIONS * 2
    sampling = Sampling(temperature=1.0, top_p=0.95, max_tokens=10)
    seeds = list(range(100, 100 + len(conversations)))
    single = vllm_engine.generate(conversations, sampling, seeds=seeds)
    cfg = engine_config(
        backend="vllm", dtype="float32", max_lora_rank=8, gpu_memory_utilization=0.3, data_parallel_size=2
    )
    with build_engine(cfg, tiny_model, True) as engine:
        assert engine.info.details["enable_lora"] is False and vllm_engine.info.details["enable_lora"] is True
        replicated = engine.generate(conversations, sampling, seeds=seeds)
        greedy = Sampling(temperature=0.0, max_tokens=16)
        assert [g.texts for g in engine.generate(CONVERSATIONS, greedy)] == [
            g.texts for g in vllm_engine.generate(CONVERSATIONS, greedy)
        ]
        with pytest.raises(RuntimeError, match="names the LoRA adapter 'random-lora'.*enable_lora=True"):
            engine.generate(CONVERSATIONS, greedy, lora=LoraAdapter("random-lora", lora_adapter))
    assert [g.texts for g in replicated] == [g.texts for g in single]
    assert len({g.texts[0] for g in single}) > 1  # really sampled
