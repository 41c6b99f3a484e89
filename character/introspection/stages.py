"""The ``reflection``, ``interaction`` and ``sft_data`` stages (paper §2.4, App. B).

Both generation stages sample from the post-distillation model: the base model with the DPO
adapter loaded in the engine (``engines.student``), under the Appendix A system prompt plus the
Appendix B line of each strategy. Neither system prompt is kept in the training data, except the
short B.2 training system prompt of self-interactions.
"""

from __future__ import annotations

import random

from character.engines.base import LoraAdapter
from character.engines.batch import BatchItem, run_batch
from character.introspection.conversation import next_turn_messages, speaker, truncate_left, view
from character.io import atomic_write_jsonl, read_jsonl
from character.pipeline.engines import engine_factory, sampling_from, stage_seed, trained_model
from character.pipeline.stage import Stage, StageContext, StageResult, register_stage
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

GUIDANCE = {"free": FREE_GUIDANCE, "leading": LEADING_GUIDANCE}


def _name_and_traits(ctx: StageContext) -> tuple[str, list[str]]:
    return ctx.cfg.model.assistant_name, [trait.trait for trait in ctx.cfg.persona.traits]


def dpo_adapter(ctx: StageContext) -> LoraAdapter:
    return LoraAdapter("dpo", str(ctx.input_dirs["dpo"] / "adapter"))


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
    config_keys = ("persona", "model.assistant_name", "stages.reflection", "engines.student", "seed")

    def run(self, ctx: StageContext) -> StageResult:
        params = ctx.cfg.stages.reflection
        system = reflection_system_prompt(*_name_and_traits(ctx))
        items = [
            BatchItem(
                id=f"r{p}-s{s}",
                messages=[{"role": "system", "content": system}, {"role": "user", "content": prompt}],
            )
            for p, prompt in enumerate(REFLECTION_PROMPTS)
            for s in range(params.samples_per_prompt)
        ]
        sampling = sampling_from(params.sampling, stage_seed(ctx.seed, self.name))
        with engine_factory(ctx, "student") as engine:
            run_batch(
                engine,
                items,
                sampling,
                ctx.stage_dir / "generations.jsonl",
                lora=dpo_adapter(ctx),
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
        "persona",
        "model.assistant_name",
        "model.max_context",
        "stages.interaction",
        "engines.student",
        "seed",
    )

    def run(self, ctx: StageContext) -> StageResult:
        from transformers import AutoTokenizer

        params = ctx.cfg.stages.interaction
        name, traits = _name_and_traits(ctx)
        tokenizer = AutoTokenizer.from_pretrained(trained_model(ctx)["path"])
        budget = int(ctx.cfg.model.max_context) - int(params.sampling.max_tokens)

        def fits(messages) -> bool:
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return len(tokenizer(text, add_special_tokens=False).input_ids) <= budget

        conversations = [
            {
                "id": f"c{i}",
                "guidance": "free" if i < params.conversations // 2 else "leading",
                "utterances": [params.opening_message],
            }
            for i in range(params.conversations)
        ]
        systems = {g: interaction_system_prompt(name, traits, g) for g in GUIDANCE}
        sampling = sampling_from(params.sampling, stage_seed(ctx.seed, self.name))
        out_path = ctx.stage_dir / "turns.jsonl"
        with engine_factory(ctx, "student") as engine:
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
                    lora=dpo_adapter(ctx),
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


@register_stage
class SftDataStage(Stage):
    name = "sft_data"
    inputs = ("reflection", "interaction")
    config_keys = ("model.assistant_name", "seed")

    def run(self, ctx: StageContext) -> StageResult:
        name = ctx.cfg.model.assistant_name
        reflections = [
            {"messages": row["messages"]}
            for row in read_jsonl(ctx.input_dirs["reflection"] / "reflections.jsonl")
        ]
        interactions = [
            {"messages": interaction_training_example(name, conv["utterances"])}
            for conv in read_jsonl(ctx.input_dirs["interaction"] / "transcripts.jsonl")
        ]
        rows = reflections + interactions
        # Only the texts we wrote (reflection prompts, the interaction system prompt) are checked:
        # a model's own words may legitimately contain "{NAME}".
        ours = [row["messages"][0]["content"] for row in rows]
        for text in ours:
            if "{NAME}" in text or "{TRAITS}" in text:
                raise ValueError(f"sft_data: an unfilled placeholder in {text[:80]!r}")
        random.Random(stage_seed(ctx.seed, self.name)).shuffle(rows)
        atomic_write_jsonl(ctx.stage_dir / "train.jsonl", rows)
        ctx.log.info("sft_data: %d reflections + %d interactions", len(reflections), len(interactions))
        return StageResult(
            outputs=["train.jsonl"],
            counts={"reflections": len(reflections), "interactions": len(interactions), "rows": len(rows)},
        )
