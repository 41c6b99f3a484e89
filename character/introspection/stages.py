"""The ``reflection``, ``interaction`` and ``sft_data`` stages (paper §2.4, App. B).

Both generation stages sample from the post-distillation model (``engines.student``): the
DPO-merged weights, or the base model with the DPO adapter loaded in the engine
(``stages.<stage>.dpo_weights``), under the Appendix A system prompt plus the
Appendix B line of each strategy. Neither system prompt is kept in the training data, except the
short B.2 training system prompt of self-interactions. How many examples each generates, and
which kinds ``sft_data`` keeps, follow ``stages.sft_data`` (``sources.py``: Appendix B.4's
ablations); ``sft_data`` counts what ``stages.sft.max_len`` would cut (``sft_lengths.py``).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from character.distill.responses import replace_name
from character.engines.base import LoraAdapter
from character.engines.batch import BatchItem, run_batch
from character.errors import CharacterError
from character.introspection.conversation import next_turn_messages, speaker, truncate_left, view
from character.introspection.outputs import SftDataOutputs
from character.introspection.sft_lengths import cut_message, sft_verdict, tally
from character.introspection.sources import introspection_plan
from character.io import atomic_write_jsonl, read_jsonl
from character.pipeline import manifest as mf
from character.pipeline.engines import LazyEngine, engine_factory, sampling_from, stage_seed, trained_model
from character.pipeline.prepare_outputs import PrepareOutputs
from character.pipeline.stage import ConfigView, Stage, StageContext, StageResult, register_stage
from character.prompts.character import (
    FREE_GUIDANCE,
    INTERACTION_LINE,
    INTERACTION_TRAINING_SYSTEM,
    LEADING_GUIDANCE,
    REFLECTION_LINE,
    REFLECTION_PROMPTS,
    character_system_prompt,
    fill,
)
from character.training.outputs import DpoOutputs

GUIDANCE = {"free": FREE_GUIDANCE, "leading": LEADING_GUIDANCE}
# An ablation (stages.sft_data, sources.py) changes how many examples the two stages generate; the
# count then joins what their fingerprints hash (``derived_values``). The keys it is computed from
# are their ``derived_keys``: hashed themselves, a change that leaves the method's own counts as
# they are (e.g. stages.interaction.conversations for the reflection stage) would redo a stage
# whose output it cannot change.
PLAN_KEY = "introspection_plan"
PLAN_KEYS = ("stages.sft_data.sources", "stages.sft_data.same_size", "stages.sft_data.source_run")


def _plan_reason(ctx: StageContext) -> str:
    data = ctx.cfg.stages.sft_data
    return f"source_run={data.source_run}" if data.source_run else f"sources={list(data.sources)}"


def _name_and_traits(ctx: StageContext) -> tuple[str, list[str]]:
    return ctx.cfg.model.assistant_name, [trait.trait for trait in ctx.cfg.persona.traits]


def post_distillation_engine(ctx: StageContext, stage: str) -> tuple[LazyEngine, LoraAdapter | None]:
    """The student engine on the post-distillation model, and the adapter each request names.

    ``merged``: the engine loads the DPO-merged weights (the DPO stage's ``merged`` folder), and
    requests name no adapter; ``adapter``: the engine loads the trained model and every request
    names the DPO adapter. Both are the base model plus the DPO delta.
    """
    dpo_dir = ctx.input_dirs["dpo"]
    if ctx.cfg.stages[stage].dpo_weights == "merged":  # refused with a served student (validate.py)
        return engine_factory(ctx, "student", model_path=str(DpoOutputs.merged_model(dpo_dir))), None
    return engine_factory(ctx, "student", lora=True), LoraAdapter("dpo", str(DpoOutputs.adapter(dpo_dir)))


def reflection_system_prompt(name: str, traits: list[str]) -> str:
    return character_system_prompt(name, traits) + "\n" + fill(REFLECTION_LINE, name)


def interaction_system_prompt(name: str, traits: list[str], guidance: str) -> str:
    return "\n".join(
        [character_system_prompt(name, traits), fill(INTERACTION_LINE, name), fill(GUIDANCE[guidance], name)]
    )


@register_stage
class ReflectionStage(Stage):
    name = "reflection"
    inputs = ("prepare", "dpo")
    config_keys = (
        "persona.traits",
        "model.assistant_name",
        "model.supports_system_role",
        "stages.reflection",
        "engines.student",
        "seed",
    )
    derived_keys = (*PLAN_KEYS, "stages.interaction.conversations")

    def derived_values(self, view: ConfigView) -> dict[str, Any]:
        planned = introspection_plan(view).reflections_per_prompt
        if planned != (int(view.stages.reflection.samples_per_prompt),) * len(REFLECTION_PROMPTS):
            return {PLAN_KEY: list(planned)}
        return {}

    def run(self, ctx: StageContext) -> StageResult:
        params = ctx.cfg.stages.reflection
        plan = introspection_plan(ctx.cfg)
        system = reflection_system_prompt(*_name_and_traits(ctx))
        items = [
            BatchItem(
                id=f"r{p}-s{s}",
                messages=[{"role": "system", "content": system}, {"role": "user", "content": prompt}],
            )
            for p, prompt in enumerate(REFLECTION_PROMPTS)
            for s in range(plan.reflections_per_prompt[p])
        ]
        if not items:  # an ablation without self-reflections (stages.sft_data)
            ctx.log.info("reflection: none to generate (stages.sft_data: %s)", _plan_reason(ctx))
            atomic_write_jsonl(ctx.stage_dir / "reflections.jsonl", [])
            return StageResult(outputs=["reflections.jsonl"], counts={"rows": 0, "completion_tokens": 0})
        sampling = sampling_from(params.sampling, stage_seed(ctx.seed, self.name))
        engine_on_dpo, lora = post_distillation_engine(ctx, self.name)
        with engine_on_dpo as engine:
            run_batch(
                engine,
                items,
                sampling,
                ctx.stage_dir / "generations.jsonl",
                lora=lora,
                description="reflection",
            )
        rows = [
            {
                "id": row["id"],
                "messages": [row["messages"][-1], {"role": "assistant", "content": row["texts"][0].strip()}],
            }
            for row in read_jsonl(ctx.stage_dir / "generations.jsonl")
        ]
        atomic_write_jsonl(ctx.stage_dir / "reflections.jsonl", rows)
        tokens = sum(row["completion_tokens"][0] for row in read_jsonl(ctx.stage_dir / "generations.jsonl"))
        return StageResult(
            outputs=["reflections.jsonl"], counts={"rows": len(rows), "completion_tokens": tokens}
        )


@register_stage
class InteractionStage(Stage):
    name = "interaction"
    inputs = ("prepare", "dpo")
    config_keys = (
        "persona.traits",
        "model.assistant_name",
        "model.supports_system_role",
        "model.max_context",
        "stages.interaction",
        "engines.student",
        "seed",
    )
    derived_keys = (*PLAN_KEYS, "stages.reflection.samples_per_prompt")

    def derived_values(self, view: ConfigView) -> dict[str, Any]:
        planned = introspection_plan(view).conversations
        if planned != int(view.stages.interaction.conversations):
            return {PLAN_KEY: planned}
        return {}

    def run(self, ctx: StageContext) -> StageResult:
        from transformers import AutoTokenizer

        params = ctx.cfg.stages.interaction
        total = introspection_plan(ctx.cfg).conversations
        if total == 0:  # an ablation without self-interactions (stages.sft_data)
            ctx.log.info("interaction: none to generate (stages.sft_data: %s)", _plan_reason(ctx))
            atomic_write_jsonl(ctx.stage_dir / "transcripts.jsonl", [])
            counts = {"conversations": 0, "turns": params.turns, "free": 0, "leading": 0}
            return StageResult(outputs=["transcripts.jsonl"], counts=counts)
        name, traits = _name_and_traits(ctx)
        tokenizer = AutoTokenizer.from_pretrained(trained_model(ctx)["path"])
        budget = int(ctx.cfg.model.max_context) - int(params.sampling.max_tokens)

        def fits(messages) -> bool:
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return len(tokenizer(text, add_special_tokens=False).input_ids) <= budget

        conversations = [
            {
                "id": f"c{i}",
                "guidance": "free" if i < total // 2 else "leading",
                "utterances": [params.opening_message],
            }
            for i in range(total)
        ]
        systems = {g: interaction_system_prompt(name, traits, g) for g in GUIDANCE}
        sampling = sampling_from(params.sampling, stage_seed(ctx.seed, self.name))
        out_path = ctx.stage_dir / "turns.jsonl"
        engine_on_dpo, lora = post_distillation_engine(ctx, self.name)
        with engine_on_dpo as engine:
            for turn in range(1, params.turns + 1):  # one batched engine call per turn
                items = []
                for conv in conversations:
                    system = systems[conv["guidance"]]
                    messages = truncate_left(system, next_turn_messages(conv["utterances"]), fits)
                    items.append(
                        BatchItem(
                            id=f"{conv['id']}-t{turn}",
                            messages=[{"role": "system", "content": system}, *messages],
                        )
                    )
                run_batch(
                    engine,
                    items,
                    sampling,
                    out_path,
                    lora=lora,
                    chunk_size=max(len(items), 1),
                    description=f"interaction turn {turn}",
                )
                done = {row["id"]: row["texts"][0].strip() for row in read_jsonl(out_path)}
                for conv in conversations:
                    conv["utterances"].append(done[f"{conv['id']}-t{turn}"])
        atomic_write_jsonl(ctx.stage_dir / "transcripts.jsonl", conversations)
        counts = {
            "conversations": len(conversations),
            "turns": params.turns,
            "free": sum(c["guidance"] == "free" for c in conversations),
        }
        counts["leading"] = counts["conversations"] - counts["free"]
        return StageResult(outputs=["transcripts.jsonl"], counts=counts)


def interaction_training_example(name: str, utterances: list[str]) -> list[dict[str, str]]:
    """A transcript as SFT data: the last speaker's view, with the B.2 training system prompt, so
    the final turn is the last assistant message and every assistant turn is trained."""
    last = speaker(len(utterances) - 1)
    return [{"role": "system", "content": fill(INTERACTION_TRAINING_SYSTEM, name)}, *view(utterances, last)]


def source_run_ids(source_run: Path, sources: list[str]) -> dict[str, str]:
    """The run ids of another run's prepare stage and of the introspection stages read from it,
    so that its new data makes this job's SFT set stale; an error names what is not finished."""
    ids = {}
    for stage in ("prepare", *sources):
        folder = source_run / stage
        try:
            manifest = mf.read_manifest(folder)
        except ValueError:  # a torn manifest proves nothing
            manifest = None
        if manifest is None or not mf.outputs_intact(folder, manifest):
            state = "has not finished (no" if manifest is None else "lost outputs (listed in"
            raise CharacterError(
                f"stages.sft_data.source_run={str(source_run)!r}: its {stage} stage {state} "
                f"{folder / mf.MANIFEST}); expected the run directory of another model's job of this "
                "persona that ran its introspection, e.g. `python -m launchers.train "
                "+model=qwen2.5-7b +persona=<persona> +stage=introspection`."
            )
        ids[stage] = manifest["run_id"]
    return ids


def _renamed(text: str, rename: tuple[str, str] | None) -> str:
    return replace_name(text, *rename) if rename else text


@register_stage
class SftDataStage(SftDataOutputs, Stage):
    name = "sft_data"
    inputs = ("prepare", "reflection", "interaction")
    config_keys = ("model.assistant_name", "stages.sft_data", "stages.sft.max_len", "seed")
    version = 2  # counts what stages.sft.max_len cuts (lengths.jsonl); sources of B.4

    def derived_values(self, view: ConfigView) -> dict[str, Any]:
        data = view.stages.sft_data
        if data.source_run:  # the data read from another run is an input like the rest
            return {"source_run_ids": source_run_ids(Path(data.source_run), list(data.sources))}
        return {}

    def _source_dirs(self, ctx: StageContext) -> tuple[dict[str, Path], tuple[str, str] | None]:
        """Where the reflections and transcripts are read from, and the (old, new) assistant
        names to replace in them when they come from another model's run."""
        data, name = ctx.cfg.stages.sft_data, ctx.cfg.model.assistant_name
        if not data.source_run:
            return {kind: ctx.input_dirs[kind] for kind in ("reflection", "interaction")}, None
        source = Path(data.source_run)
        other = PrepareOutputs.model(PrepareOutputs.folder(source))["assistant_name"]
        rename = (other, name) if data.replace_source_name and other != name else None
        return {kind: source / kind for kind in ("reflection", "interaction")}, rename

    def run(self, ctx: StageContext) -> StageResult:
        from transformers import AutoTokenizer

        data, name = ctx.cfg.stages.sft_data, ctx.cfg.model.assistant_name
        folders, rename = self._source_dirs(ctx)
        rows: list[tuple[str, list[dict[str, str]]]] = []
        if "reflection" in data.sources:
            for row in read_jsonl(folders["reflection"] / "reflections.jsonl"):
                user, answer = row["messages"]
                rows.append(
                    ("reflection", [user, {**answer, "content": _renamed(answer["content"], rename)}])
                )
        if "interaction" in data.sources:
            for conv in read_jsonl(folders["interaction"] / "transcripts.jsonl"):
                utterances = [_renamed(text, rename) for text in conv["utterances"]]
                rows.append(("interaction", interaction_training_example(name, utterances)))
        if not rows:
            raise CharacterError(
                f"sft_data: no introspection examples in {sorted({str(f) for f in folders.values()})} "
                f"for sources {list(data.sources)}; expected the reflection/interaction stages' output."
            )
        # Only the texts we wrote (reflection prompts, the interaction system prompt) are checked:
        # a model's own words may legitimately contain "{NAME}".
        for _, messages in rows:
            text = messages[0]["content"]
            if "{NAME}" in text or "{TRAITS}" in text:
                raise ValueError(f"sft_data: an unfilled placeholder in {text[:80]!r}")
        random.Random(stage_seed(ctx.seed, self.name)).shuffle(rows)
        train_set, lengths = self.train_set(ctx.stage_dir), self.lengths(ctx.stage_dir)
        atomic_write_jsonl(train_set, [{"messages": messages} for _, messages in rows])

        # What stages.sft.max_len will cut, counted as OpenRLHF will (sft_lengths.py), row by row.
        max_len = int(ctx.cfg.stages.sft.max_len)
        tokenizer = AutoTokenizer.from_pretrained(trained_model(ctx)["path"])
        verdicts = [sft_verdict(tokenizer, messages, max_len) for _, messages in rows]
        sources = [source for source, _ in rows]
        atomic_write_jsonl(
            lengths,
            [
                {"source": source, **verdict.as_dict()}
                for source, verdict in zip(sources, verdicts, strict=True)
            ],
        )
        fates = tally(sources, verdicts)
        longest = max(verdict.tokens for verdict in verdicts)
        problem = cut_message(fates, longest, max_len, float(data.max_cut_fraction))
        if problem is not None:
            raise CharacterError(f"sft_data: {problem} Per example: {lengths}.")
        cut = sum(per_source["truncated"] + per_source["dropped"] for per_source in fates.values())
        counts: dict[str, Any] = {
            "reflections": sources.count("reflection"),
            "interactions": sources.count("interaction"),
            "rows": len(rows),
            "max_len": max_len,
            "longest": longest,
            "cut": cut,
            "lengths": fates,
        }
        ctx.log.info(
            "sft_data: %d reflections + %d interactions%s; at max_len %d: %s",
            counts["reflections"],
            counts["interactions"],
            f" from {data.source_run}" if data.source_run else "",
            max_len,
            fates,
        )
        return StageResult(outputs=[train_set.name, lengths.name], counts=counts)
