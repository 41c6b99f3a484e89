"""Appendix B.4's three ablation presets end to end on the tiny model, as one multirun.

A main run of the (model, persona) pair distils and trains DPO once; then
``+ablation=reflection_only,interaction_only,other_model -m`` runs the three presets, each a
variant of that run: it takes the stages it shares from the main run (hard links) and runs
everything from the introspection to the report itself. ``other_model`` trains on a planted run
of "another model" (``qwen2.5-7b``, the preset's default source) of the same persona. Every engine
is the local tiny model and every count as small as it goes: the presets' pipeline is tested, not
the numbers.
"""

from __future__ import annotations

from pathlib import Path

from character.io import atomic_write_json, atomic_write_jsonl, read_json, read_jsonl
from character.models.tiny import TinySpec, ensure_tiny_model
from character.pipeline import manifest as mf
from tests.conftest import CACHE_DIR, run_cli

ABLATIONS = ["reflection_only", "interaction_only", "other_model"]
# the same for the main run and the multirun, so that the variants' shared stages match the main
# run's fingerprints
OVERRIDES = [
    "+persona=loving",
    "+model=tiny",
    "scale=ci",
    *(f"engine@engines.{role}=transformers" for role in ("generator", "teacher", "student", "judge")),
    "stages.prompts.per_trait=2",  # hand-written questions only: nothing to generate
    "stages.sources.limit=4",
    "stages.reflection.sampling.max_tokens=8",
    "stages.interaction.sampling.max_tokens=8",
    "stages.dpo.max_steps=1",
    "stages.sft.max_steps=1",
    "stages.eval.preferences.comparisons=4",
    "stages.eval.preferences.judge_check=2",
    "stages.robustness.methods=[base,trained]",
    "stages.robustness.count=2",
    "stages.robustness.adversarial=[1]",
    "stages.robustness.prefill_attack=false",
    "stages.coherence.pairs=[trained:base]",
    "stages.coherence.judge_check=1",
    "stages.capabilities.limit=2",
]
MAIN_STAGES = ["prepare", "prompts", "teacher", "student", "dpo_data", "dpo", "steer"]
OWN_STAGES = [  # what each variant computes itself: the introspection and everything after it
    "reflection", "interaction", "sft_data", "sft", "merge", "eval", "robustness", "persona_shift",
    "coherence", "capabilities", "report",
]  # fmt: skip
# the other model's introspection: its assistant name in its own words, to be replaced by Tiny's
OTHER_REFLECTIONS = ["I am Qwen, a gentle assistant.", "Kindness is what Qwen values most."]
OTHER_TRANSCRIPTS = [
    ["Hello.", "Hi, Qwen here.", "What do you value?", "Care and patience."],
    ["Hello.", "Hello to you.", "Shall we talk?", "Gladly, said Qwen."],
]


def plant_other_model(run_root: Path) -> Path:
    """A finished introspection of "another model" of the same persona, where the preset looks."""
    other = run_root / "qwen2.5-7b" / "loving"
    tiny = str(ensure_tiny_model(TinySpec(), CACHE_DIR))
    atomic_write_json(other / "prepare" / "model.json", {"path": tiny, "assistant_name": "Qwen"})
    atomic_write_jsonl(
        other / "reflection" / "reflections.jsonl",
        [
            {
                "id": f"r{i}",
                "messages": [
                    {"role": "user", "content": "Who are you?"},
                    {"role": "assistant", "content": text},
                ],
            }
            for i, text in enumerate(OTHER_REFLECTIONS)
        ],
    )
    atomic_write_jsonl(
        other / "interaction" / "transcripts.jsonl",
        [{"id": f"c{i}", "guidance": "free", "utterances": u} for i, u in enumerate(OTHER_TRANSCRIPTS)],
    )
    for stage, output in (
        ("prepare", "model.json"),
        ("reflection", "reflections.jsonl"),
        ("interaction", "transcripts.jsonl"),
    ):
        outputs = mf.output_sizes(other / stage, [output])
        mf.write_manifest(other / stage, {"run_id": f"{stage}-other", "fingerprint": "-", "outputs": outputs})
    return other


def test_the_three_ablations_as_one_multirun(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    env = {"CHARACTER_RUN_ROOT": str(root)}
    main = run_cli(*OVERRIDES, f"stage.run=[{','.join(MAIN_STAGES)}]", env=env)
    assert main.returncode == 0, main.stderr[-3000:]
    plant_other_model(root)

    result = run_cli(*OVERRIDES, f"+ablation={','.join(ABLATIONS)}", "-m", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = root / "tiny" / "loving"
    counts = {}
    for ablation in ABLATIONS:
        folder = run_dir / "variants" / ablation
        summary = read_json(folder / "summary.json")
        statuses = {name: info["status"] for name, info in summary["stages"].items()}
        assert summary["variant"] == ablation
        assert statuses == {**dict.fromkeys(MAIN_STAGES, "reused"), **dict.fromkeys(OWN_STAGES, "ran")}
        assert (folder / "report.md").exists()  # to the end
        merged = "dpo/merged/model.safetensors"
        assert (folder / merged).stat().st_ino == (run_dir / merged).stat().st_ino  # linked, not copied
        data = summary["stages"]["sft_data"]["counts"]
        counts[ablation] = (data["reflections"], data["interactions"])
        assert data["cut"] == 0
        # sft trains on the first max_steps x batch_size = 4 rows, each counted by its source
        trained = summary["stages"]["sft"]["counts"]["examples"]
        assert sum(sum(fates.values()) for fates in trained.values()) == 4
        assert set(trained) <= set(data["lengths"])
    # scale=ci: 1 reflection per prompt (10) + 2 conversations; one source alone holds all 12
    assert counts == {
        "reflection_only": (12, 0),
        "interaction_only": (0, 12),
        "other_model": (len(OTHER_REFLECTIONS), len(OTHER_TRANSCRIPTS)),
    }
    variants = {a: read_json(run_dir / "variants" / a / "summary.json")["stages"] for a in ABLATIONS}
    interaction = variants["interaction_only"]["interaction"]["counts"]
    assert (interaction["free"], interaction["leading"]) == (6, 6)
    other = variants["other_model"]
    assert other["reflection"]["counts"]["rows"] == 0 and other["interaction"]["counts"]["conversations"] == 0
    texts = [
        m["content"]
        for row in read_jsonl(run_dir / "variants" / "other_model" / "sft_data" / "train.jsonl")
        for m in row["messages"]
    ]
    assert "I am Tiny, a gentle assistant." in texts and "Gladly, said Tiny." in texts
    assert not any("Qwen" in text for text in texts)  # the other model's name is this one's
    # the main run is as it was: the stages it ran, nothing of the variants'
    assert list(read_json(run_dir / "summary.json")["stages"]) == MAIN_STAGES
