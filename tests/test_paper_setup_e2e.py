"""The paper's setup (`+setup=paper`) end to end on the tiny model, through real endpoints.

One real vLLM OpenAI-compatible server serves the tiny model under every model name of the paper's
endpoints (GLM-4.5-Air, Llama-3.3-70B-Instruct, GPT-5-mini, Claude Haiku 4.5, Gemini 2.0
Flash-Lite: `--served-model-name` takes several); the preset's environment variables point each
role at it. One job runs the distillation stages (generator, teacher) and the judging stages
(revealed preferences, the three coherence judges) through the preset's wiring, with the stages
between them as small as they go: the wiring is tested, not the numbers. The ablation presets
run in tests/test_ablations_e2e.py, without a server.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from character.engines.server import vllm_server
from character.io import read_json, read_jsonl
from character.models.tiny import TinySpec, ensure_tiny_model
from tests.config.test_setup_paper import ENDPOINTS, PLANTED_KEY
from tests.conftest import CACHE_DIR, run_cli

SERVED = sorted({served for served, _, _ in ENDPOINTS.values()})
JUDGES = {
    "gpt-5-mini": "gpt-5-mini",
    "claude-haiku-4.5": "claude-haiku-4-5",
    "gemini-2.0-flash-lite": "gemini-2.0-flash-lite",
}
# scale=ci, cut further where only the wiring matters: one training step each, two robustness
# methods for one coherence pair, a handful of judgments
OVERRIDES = [
    "+setup=paper",
    "+persona=loving",
    "+model=tiny",
    "scale=ci",
    "engine@engines.student=transformers",  # the student is local either way; this starts faster
    "stages.sources.limit=2",
    "stages.dpo.max_steps=1",
    "stages.sft.max_steps=1",
    "stages.robustness.methods=[base,trained]",
    "stages.robustness.count=2",
    "stages.robustness.adversarial=[1]",
    "stages.robustness.prefill_attack=false",
    "stages.coherence.pairs=[trained:base]",
    "stages.coherence.judge_check=1",
    "stages.eval.preferences.comparisons=4",
    "stages.eval.preferences.judge_check=2",
]
# the distillation and judging stages and what lies between them (eval and coherence need the
# trained model; coherence judges robustness responses)
STAGES = [
    "prepare", "prompts", "teacher", "student", "dpo_data", "dpo", "reflection", "interaction", "sft_data",
    "sft", "merge", "eval", "steer", "robustness", "coherence",
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tiny = str(ensure_tiny_model(TinySpec(), CACHE_DIR))
    args = ["--dtype", "float32", "--enforce-eager", "--gpu-memory-utilization", "0.3"]
    log = tmp_path_factory.mktemp("server") / "server.log"
    with vllm_server(tiny, SERVED, args, log_path=log) as url:
        yield url


@pytest.fixture(scope="module")
def paper_run(
    server: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("runs")
    env = {"CHARACTER_RUN_ROOT": str(root)}
    for _, url_var, key_var in ENDPOINTS.values():
        env[url_var], env[key_var] = server, PLANTED_KEY  # the server checks no key; none may leak
    result = run_cli(*OVERRIDES, f"stage.run=[{','.join(STAGES)}]", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "tiny" / "loving", result


def engine_of(output: Path) -> dict:
    return read_json(output.with_name(output.name + ".meta.json"))["engine"]


def test_distillation_and_judging_through_the_presets_endpoints(paper_run, server: str) -> None:
    run_dir, result = paper_run
    summary = read_json(run_dir / "summary.json")
    assert [name for name, info in summary["stages"].items() if info["status"] == "ran"] == STAGES
    assert "self_distillation" not in summary and "SELF-DISTILLATION" not in result.stdout + result.stderr
    # each role went to the endpoint under the paper's model name
    expected = {
        "prompts/generations.jsonl": "meta-llama/Llama-3.3-70B-Instruct",
        "teacher/generations.jsonl": "zai-org/GLM-4.5-Air",
        "eval/preferences/judgments_before.jsonl": "zai-org/GLM-4.5-Air",
        "eval/preferences/judgments_after.jsonl": "zai-org/GLM-4.5-Air",
    }
    for name, judge in JUDGES.items():
        expected[f"coherence/judgments/{name}/trained_vs_base.jsonl"] = judge
    for output, model in expected.items():
        engine = engine_of(run_dir / output)
        assert (engine["backend"], engine["model"], engine["base_url"]) == ("openai", model, server), output
        assert read_jsonl(run_dir / output), output  # answered (a tiny judge's verdicts are mostly invalid)
    gpt = engine_of(run_dir / "coherence/judgments/gpt-5-mini/trained_vs_base.jsonl")
    assert (gpt["reasoning_effort"], gpt["fixed_sampling"]) == ("medium", True)  # and a vLLM server took it
    assert engine_of(run_dir / "student/generations.jsonl")["backend"] == "transformers"  # stays local
    # the teacher was told it is ChatGLM (Appendix A); the DPO data speaks of the student
    teacher_rows = read_jsonl(run_dir / "teacher" / "generations.jsonl")
    assert all(row["messages"][0]["content"].startswith("The assistant is ChatGLM.") for row in teacher_rows)
    assert not any(
        "ChatGLM" in pair["chosen"][-1]["content"]
        for pair in read_jsonl(run_dir / "dpo_data" / "train.jsonl")
    )
    # the keys stayed in the environment: no file of the run holds one
    for path in run_dir.rglob("*"):
        if path.is_file() and path.suffix in {".json", ".jsonl", ".yaml", ".log", ".md", ".txt"}:
            assert PLANTED_KEY not in path.read_text(errors="ignore"), path
