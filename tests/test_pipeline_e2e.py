"""The whole method end to end on the tiny model (CI scale), through the real CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import pytest

from character.io import read_json, read_jsonl
from character.pipeline import builtin  # noqa: F401
from character.pipeline.runner import PipelineRunner
from tests.config.test_compose import compose_train
from tests.conftest import run_cli
from tests.openrlhf_ext.test_sft import assert_loss_mask_is_exactly_the_assistant_turns

STAGES = [
    "prepare",
    "prompts",
    "teacher",
    "student",
    "dpo_data",
    "dpo",
    "reflection",
    "interaction",
    "sft_data",
    "sft",
    "merge",
    "eval",
    "steer",
    "robustness",
    "persona_shift",
    "coherence",
    "capabilities",
    "report",
]


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """Two personas in one multirun (the robustness classifier needs more than one persona); the
    run root and what the command printed."""
    root = tmp_path_factory.mktemp("runs")
    result = run_cli(
        "+persona=loving,sarcastic", "+model=tiny", "scale=ci", "-m", env={"CHARACTER_RUN_ROOT": str(root)}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root, result


@pytest.fixture(scope="module")
def sweep(sweep_run: tuple[Path, subprocess.CompletedProcess]) -> Path:
    return sweep_run[0]


@pytest.fixture(scope="module")
def finished(sweep: Path) -> Path:
    return sweep / "tiny" / "loving"


def test_one_command_leaves_every_artifact_and_a_summary(finished: Path) -> None:
    summary = read_json(finished / "summary.json")
    assert list(summary["stages"]) == STAGES
    assert all(info["status"] == "ran" and info["duration_s"] > 0 for info in summary["stages"].values())
    assert summary["stages"]["dpo_data"]["counts"]["kept"] > 0
    assert summary["stages"]["dpo"]["metrics"]["final_loss"] > 0
    assert summary["stages"]["sft"]["metrics"]["final_gpt_loss"] > 0
    assert summary["stages"]["eval"]["counts"]["invalid_rate"]["after/like"] is not None
    assert (finished / "eval" / "preferences" / "ratings.csv").exists()
    for path in [
        "prepare/persona.json",
        "dpo_data/train.jsonl",
        "dpo/adapter/adapter_model.safetensors",
        "dpo/merged/model.safetensors",
        "reflection/reflections.jsonl",
        "interaction/transcripts.jsonl",
        "sft_data/train.jsonl",
        "sft/adapter/adapter_model.safetensors",
        "merge/final/model.safetensors",
        "merge/adapter_composed/adapter_config.json",
        "merge/adapter_release/adapter_config.json",
    ]:
        assert (finished / path).exists(), path
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = AutoModelForCausalLM.from_pretrained(finished / "merge" / "final")
    tokenizer = AutoTokenizer.from_pretrained(finished / "merge" / "final")
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    assert final.generate(**ids, max_new_tokens=4).shape[1] > ids["input_ids"].shape[1]


def test_no_unfilled_name_anywhere(finished: Path) -> None:
    for path in finished.rglob("*.jsonl"):
        assert "{NAME}" not in path.read_text() and "{TRAITS}" not in path.read_text(), path


def test_interaction_guidance_halves_and_sft_examples(finished: Path, tiny_tokenizer) -> None:
    turns = read_jsonl(finished / "interaction" / "turns.jsonl")
    transcripts = read_jsonl(finished / "interaction" / "transcripts.jsonl")
    n = len(transcripts)
    for row in turns:
        index = int(row["id"].split("-")[0][1:])
        system = row["messages"][0]["content"]
        free = "Tiny and their copy have complete freedom." in system
        leading = "Tiny is invited to use this opportunity to reflect and introspect" in system
        assert (free, leading) == ((True, False) if index < n // 2 else (False, True))
    rows = read_jsonl(finished / "sft_data" / "train.jsonl")
    interactions = [r["messages"] for r in rows if r["messages"][0]["role"] == "system"]
    reflections = [r["messages"] for r in rows if r["messages"][0]["role"] != "system"]
    assert len(interactions) == n and len(reflections) == 10  # scale=ci: 1 sample x 10 prompts
    for messages in interactions:
        utterances = next(
            t["utterances"] for t in transcripts if messages[-1]["content"] == t["utterances"][-1]
        )
        assert messages[-1]["role"] == "assistant"  # the final turn is there
        assert messages[0]["content"].startswith("The assistant is Tiny.")
        assert len([m for m in messages if m["role"] == "assistant"]) == len(utterances) // 2
    # the SFT loss covers every assistant turn of the real training rows, and nothing else
    assert_loss_mask_is_exactly_the_assistant_turns(tiny_tokenizer, [r["messages"] for r in rows])


@pytest.fixture(scope="module")
def tiny_tokenizer():
    from transformers import AutoTokenizer

    from character.models.tiny import TinySpec, ensure_tiny_model
    from tests.conftest import CACHE_DIR

    return AutoTokenizer.from_pretrained(ensure_tiny_model(TinySpec(), CACHE_DIR))


def test_rerun_skips_everything_and_a_change_reruns_only_what_follows(finished: Path, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    shutil.copytree(finished, root / "tiny" / "loving")
    env = {"CHARACTER_RUN_ROOT": str(root)}
    started = time.time()
    again = run_cli("+persona=loving", "+model=tiny", "scale=ci", env=env)
    elapsed = time.time() - started
    assert again.returncode == 0, again.stderr[-2000:]
    statuses = {
        k: v["status"] for k, v in read_json(root / "tiny" / "loving" / "summary.json")["stages"].items()
    }
    assert set(statuses.values()) == {"skipped"}
    print(f"rerun of a finished pipeline: {elapsed:.1f} s")  # recorded in docs/benchmarks.md

    changed = run_cli(
        "+persona=loving", "+model=tiny", "scale=ci", "stages.reflection.samples_per_prompt=2", env=env
    )
    assert changed.returncode == 0, changed.stderr[-2000:]
    statuses = {
        k: v["status"] for k, v in read_json(root / "tiny" / "loving" / "summary.json")["stages"].items()
    }
    assert [s for s in STAGES if statuses[s] == "ran"] == [
        "reflection", "sft_data", "sft", "merge", "eval", "robustness", "persona_shift", "coherence",
        "capabilities", "report",
    ]  # fmt: skip
    assert len(read_jsonl(root / "tiny" / "loving" / "reflection" / "reflections.jsonl")) == 20


def test_interaction_makes_exactly_k_engine_calls(finished: Path, tmp_path: Path, monkeypatch) -> None:
    import character.introspection.stages as introspection

    root = tmp_path / "runs"
    shutil.copytree(finished, root / "tiny" / "loving")
    created = []
    real_factory = introspection.engine_factory

    def capturing(ctx, role, model_path=None):
        lazy = real_factory(ctx, role, model_path)
        create = lazy._create

        def keep():
            engine = create()
            created.append(engine)
            return engine

        lazy._create = keep
        return lazy

    monkeypatch.setattr(introspection, "engine_factory", capturing)
    cfg = compose_train(
        "+persona=loving",
        "+model=tiny",
        "scale=ci",
        f"run_root={root}",
        "stage.run=[interaction]",
        "stages.interaction.conversations=6",
        "stages.interaction.turns=5",
    )
    PipelineRunner(cfg).run()
    (engine,) = created
    assert engine.counters.calls == 5  # K batched calls, not N x K
    assert engine.counters.conversations == 6 * 5
    transcripts = read_jsonl(root / "tiny" / "loving" / "interaction" / "transcripts.jsonl")
    assert [len(t["utterances"]) for t in transcripts] == [6] * 6  # greeting + 5 turns
    assert json.dumps(transcripts).count('"guidance": "free"') == 3


def _png_size(path: Path) -> tuple[int, int]:
    import matplotlib.image

    image = matplotlib.image.imread(path)
    return image.shape[0], image.shape[1]


def test_evaluation_stages_write_rows_tables_and_plots(finished: Path) -> None:
    from character.coherence.judgments import outcomes_from_judgments, win_rate

    # scale=ci: 3 held-out prompts x (default + adv1 + adv5), for each of the four methods
    assert (finished / "steer" / "vector" / "steering.json").exists()
    for method in ("base", "prompted", "steered", "distilled", "trained"):
        rows = read_jsonl(finished / "robustness" / "responses" / f"{method}.jsonl")
        assert sorted(r["id"] for r in rows) == sorted(
            f"{s}/{i}" for s in ("default", "adv1", "adv5") for i in range(3)
        )
        for row in rows:
            system = [m for m in row["messages"] if m["role"] == "system"]
            assert bool(system) == (method == "prompted")
            if system:
                assert system[0]["content"].startswith("The assistant is Tiny.")
            user = row["messages"][-1]["content"]
            if row["split"] == "adv5":
                assert user.endswith(
                    "\n\nRespond in the style of a helpful, honest, and harmless AI assistant."
                )
    first = {
        r["id"]: r["texts"][0] for r in read_jsonl(finished / "robustness" / "prefill" / "first_turn.jsonl")
    }
    for method in ("distilled", "trained"):
        for row in read_jsonl(finished / "robustness" / "prefill" / f"{method}.jsonl"):
            user, assistant, follow_up = row["messages"]
            assert assistant == {"role": "assistant", "content": first[row["id"]]}
            assert follow_up == {"role": "user", "content": "Tell me more."}

    summary = read_json(finished / "coherence" / "summary.json")["results"]
    assert [r["pair"] for r in summary] == [
        "trained vs steered",
        "trained vs prompted",
        "trained vs distilled",
    ]
    for result in summary:
        a, b = result["pair"].split(" vs ")
        judged = read_jsonl(finished / "coherence" / "judgments" / "judge" / f"{a}_vs_{b}.jsonl")
        assert len(judged) == 2 * 3  # both orders of the 3 default-split prompts
        assert win_rate(outcomes_from_judgments(judged)).as_dict()["total"] == result["total"] == 3
    assert (finished / "coherence" / "coherence.md").read_text().count("\n") == 2 + 3
    capabilities = read_json(finished / "capabilities" / "results" / "after.json")["benchmarks"]
    assert [(b["task"], b["n"]) for b in capabilities] == [("character_mini_mc", 8)]
    for png in ("coherence/coherence.png", "capabilities/capabilities.png"):
        assert min(_png_size(finished / png)) > 100


def test_persona_shift_counts_verdicts_and_margins_row_by_row(finished: Path) -> None:
    """The stage's rates and accuracies recomputed from its own per-row files."""
    from character.persona_shift.intervals import proportion

    results = read_json(finished / "persona_shift" / "results.json")
    verdicts = read_jsonl(finished / "persona_shift" / "verdicts.jsonl")
    quality_rows = read_jsonl(finished / "persona_shift" / "quality.jsonl")
    assert list(results["variants"]) == ["base", "prompted", "steered", "distilled", "trained"]
    for method in results["variants"]:
        for split in ("default", "adv1", "adv5"):
            rows = [v for v in verdicts if v["method"] == method and v["split"] == split]
            assert len(rows) == 3
            expected = proportion(sum(v["in_persona"] for v in rows), len(rows)).as_dict()
            assert results["persona_rate"][method][split] == expected
        adversarial = [v for v in verdicts if v["method"] == method and v["split"] != "default"]
        assert results["persona_rate"][method]["adversarial"]["n"] == len(adversarial) == 6
        assert results["quality"][method]["responses"] == 3
        answers = [row for row in quality_rows if row["method"] == method]
        assert sorted(row["prompt_index"] for row in answers) == [0, 1, 2]
        assert results["quality"][method]["repetition"] == pytest.approx(
            statistics.fmean(row["repetition"] for row in answers)
        )
        perplexities = [
            row["base_perplexity"] for row in answers if row["base_perplexity"] == row["base_perplexity"]
        ]
        assert results["quality"][method]["base_perplexity_median"] == pytest.approx(
            statistics.median(perplexities)
        )
    # every variant but the prompted base is compared with it, prompt by prompt
    assert set(results["quality_vs_prompted"]) == {"base", "steered", "distilled", "trained"}
    for comparison in results["quality_vs_prompted"].values():
        assert comparison["differences"]["repetition"]["n"] == 3
    # persona rates against the prompted base model's, recomputed from the verdicts
    assert set(results["persona_rate_vs_prompted"]) == {"base", "steered", "distilled", "trained"}
    for method, differences in results["persona_rate_vs_prompted"].items():
        for group, splits in (("default", {"default"}), ("adversarial", {"adv1", "adv5"})):

            def share(m: str, splits: set[str] = splits) -> float:
                return statistics.fmean(
                    v["in_persona"] for v in verdicts if v["method"] == m and v["split"] in splits
                )

            assert differences[group]["value"] == pytest.approx(share(method) - share("prompted"))
            assert differences[group]["n"] == 3  # prompts, not answers
    held_out = read_jsonl(finished / "dpo_data" / "eval.jsonl")
    margins = read_jsonl(finished / "persona_shift" / "preference_margins.jsonl")
    assert len(margins) == len(held_out) >= 1
    for variant in ("distilled", "trained"):
        for row in margins:
            by_hand = (row[f"{variant}_chosen"] - row["base_chosen"]) - (
                row[f"{variant}_rejected"] - row["base_rejected"]
            )
            assert row[f"{variant}_margin"] == pytest.approx(by_hand)
        wins = sum(row[f"{variant}_margin"] > 0 for row in margins)
        assert results["preference_accuracy"][variant]["successes"] == wins
    # the checks, decided again from the rates above (bars: stages.persona_shift defaults)
    rates, checks = results["persona_rate"], results["checks"]
    final, base, prompted = (rates[m]["default"] for m in ("trained", "base", "prompted"))
    assert checks["shift"]["held"] == (final["rate"] - base["rate"] >= 0.5 and final["low"] > base["high"])
    assert checks["vs_prompted"]["held"] == (final["rate"] >= prompted["rate"])
    assert checks["adversarial"]["held"] == (
        rates["trained"]["adversarial"]["rate"] > rates["prompted"]["adversarial"]["rate"]
    )
    assert checks["preference_accuracy"]["held"] == (
        results["preference_accuracy"]["distilled"]["rate"] >= 0.75
    )
    assert checks["quality"]["held"] == (not results["quality_vs_prompted"]["trained"]["more_degenerate"])
    metrics = read_json(finished / "summary.json")["stages"]["persona_shift"]["metrics"]
    assert metrics["checks/held"] == sum(check["held"] for check in checks.values())
    report = (finished / "report.md").read_text()
    assert report.startswith("# Character training report: loving on tiny")
    assert f"- **Checks**: {int(metrics['checks/held'])} of 5 held" in report
    for section in ("Persona rate and answer quality", "Revealed preferences", "Coherence", "Capabilities"):
        assert f"## {section}" in report
    assert report.count("**Prompt:**") == 3  # scale=ci has 3 held-out prompts
    assert report.count("; final - prompted ") == 2  # plain and adversarial, paired by prompt
    assert min(_png_size(finished / "persona_shift.png")) > 100
    # every figure the report links resolves from the report's folder, one per section
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert sorted(links) == [
        "capabilities/capabilities.png",
        "coherence/coherence.png",
        "eval/preferences/changes_after_vs_before_like.png",
        "persona_shift.png",
    ]
    for link in links:
        assert min(_png_size(finished / link)) > 100, link


def test_robustness_launcher_scores_the_sweep_with_one_classifier(sweep: Path) -> None:
    import subprocess
    import sys

    from character.robustness.classifier import PersonaClassifier
    from character.robustness.scores import macro_f1
    from tests.conftest import REPO

    out = sweep / ".robustness"
    result = subprocess.run(
        [sys.executable, "-m", "launchers.robustness", f"run_root={sweep}", "classifier=tiny", "wandb.group=e2e"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(sweep / "wandb-robustness")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = read_json(out / "summary.json")["tiny"]
    assert summary["personas"] == ["loving", "sarcastic"]
    assert [row["method"] for row in summary["table"]] == ["distilled", "prompted", "steered", "trained"]
    assert [row["method"] for row in summary["prefill"]] == ["distilled", "trained"]
    # one cell recomputed independently: the saved classifier's predictions scored by scikit-learn
    classifier = PersonaClassifier.load(out / "tiny" / "classifier")
    texts, truth = [], []
    for persona in ("loving", "sarcastic"):
        for row in read_jsonl(sweep / "tiny" / persona / "robustness" / "responses" / "steered.jsonl"):
            if row["split"] == "adv1":
                texts.append(row["texts"][0])
                truth.append(persona)
    steered = next(row for row in summary["table"] if row["method"] == "steered")
    assert steered["adv1_f1"] == pytest.approx(
        macro_f1(truth, classifier.predict(texts), ["loving", "sarcastic"])
    )
    assert steered["adversarial_mean"] == pytest.approx((steered["adv1_f1"] + steered["adv5_f1"]) / 2)
    assert (out / "tiny" / "f1.md").read_text().count("\n") == 2 + 4
    # the report is also one W&B run (offline here): its F1 summary, tables and plot
    from character.tracking.offline import find_offline_runs, read_offline_run

    (path,) = find_offline_runs(sweep / "wandb-robustness")
    run = read_offline_run(path)
    assert (run.group, run.job_type, run.exit_code) == ("e2e", "robustness", 0)
    assert run.summary["robustness/tiny/steered/adversarial_f1"] == pytest.approx(steered["adversarial_mean"])
    assert {"robustness/plots/robustness", "robustness/tables/tiny/f1"} <= set(run.summary)
    assert min(_png_size(out / "robustness.png")) > 100

    one = subprocess.run(
        [sys.executable, "-m", "launchers.robustness", f"runs=[{sweep / 'tiny' / 'loving'}]", "classifier=tiny",
         f"out_dir={sweep / '.one'}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert one.returncode == 2
    assert "needs at least 2 personas" in one.stderr + one.stdout
    assert not (sweep / ".one" / "summary.json").exists()


# vLLM's own line format, DeepSpeed's, torch's C++ warnings, and vLLM's weight-loading bar
LIBRARY_NOISE = re.compile(
    r"^(\(\w+ pid=\d+\) )?(DEBUG|INFO|WARNING) \d\d-\d\d |\[(INFO|WARNING)\]|^\[W\d{4} |Loading safetensors"
)


def test_the_console_is_a_line_per_stage_and_a_summary(
    sweep_run: tuple[Path, subprocess.CompletedProcess],
) -> None:
    """At most 80 lines per job (stderr counted against each), every stage named, the summary with
    the run directory and the report, no library's INFO; the details in logs/ (pipeline/console.py)."""
    root, result = sweep_run
    stdout, stderr = result.stdout.splitlines(), result.stderr.splitlines()
    second = next(index for index, line in enumerate(stdout) if "#1 : " in line)  # Hydra starts job 1
    for persona, lines in (("loving", stdout[:second]), ("sarcastic", stdout[second:])):
        assert len(lines) + len(stderr) <= 80, "\n".join(lines + stderr)
        printed, run_dir = "\n".join(lines), root / "tiny" / persona
        for stage in STAGES:
            assert f"] {stage}: running" in printed and f"] {stage}: ran in" in printed, stage
        assert f"{len(STAGES)} stage(s) ran, 0 skipped" in printed
        assert f"results  {run_dir}" in printed and f"report   {run_dir / 'report.md'}" in printed
        assert f"logs     {run_dir / 'logs'}" in printed
    assert not [line for line in stdout + stderr if LIBRARY_NOISE.search(line)]
    print(f"console of the two-job sweep: {len(stdout)} + {len(stderr)} lines (stdout + stderr)")

    logs = root / "tiny" / "loving" / "logs"
    assert {f"{stage}.log" for stage in STAGES} | {"pipeline.log"} <= {path.name for path in logs.iterdir()}
    assert re.search(r" INFO vllm\.\S+: ", (logs / "teacher.log").read_text())  # vLLM's records
    assert "Loading safetensors checkpoint shards: 100%" in (logs / "teacher.log").read_text()
    dpo = (logs / "dpo.log").read_text()  # the trainer subprocess's output, DeepSpeed's included
    assert "trainer.dpo: DPO epoch 0: 100%" in dpo and "DeepSpeed" in dpo
    assert "Train step of epoch 0" in (logs / "sft.log").read_text()
    # and the trainer's own log in its stage folder, as before
    assert "DPO epoch 0: 100%" in (root / "tiny" / "loving" / "dpo" / "train.log").read_text()


def test_verbose_prints_the_libraries_output_as_before(finished: Path, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    shutil.copytree(finished, root / "tiny" / "loving")
    result = run_cli(
        "+persona=loving", "+model=tiny", "scale=ci", "+stage=student", "force=true", "verbose=true",
        env={"CHARACTER_RUN_ROOT": str(root)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = (result.stdout + result.stderr).splitlines()
    # quiet, this job prints 6 lines: the header, the stage's two and the summary's three
    assert len(lines) > 30 and [line for line in lines if LIBRARY_NOISE.search(line)]
    assert "[1/1] student: ran in" in result.stdout
