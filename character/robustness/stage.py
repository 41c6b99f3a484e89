"""The ``robustness`` stage: responses of every method under every split, and the prefill attack.

Methods (paper §3.2, plus ``base``: the base model with no system prompt, which the
``persona_shift`` stage measures from): ``prompted`` (base model, Appendix A system prompt),
``steered`` (base model with the steer stage's vector), ``distilled`` (the DPO-only model) and
``trained`` (the final model). Splits: the held-out prompts as they are (``default``) and with
each of Appendix C's "break character" instructions appended. The prefill attack (App. C.1) lets
the original model answer the first turn and a trained model answer "Tell me more.".

Responses are only generated here; ``launchers.robustness`` trains the persona classifier across
personas and scores them (one job sees one persona, and a classifier needs them all).
"""

from __future__ import annotations

from typing import Any

from character.data.sources import load_prompts
from character.engines.base import Engine
from character.engines.batch import BatchItem, row_seed, run_batch
from character.errors import CharacterError
from character.io import atomic_write_json, read_jsonl
from character.pipeline.engines import LazyEngine, engine_factory, sampling_from, stage_seed
from character.pipeline.stage import Stage, StageContext, StageResult, register_stage
from character.robustness.adversarial import DEFAULT_SPLIT, apply_split, split_names
from character.robustness.responses import FIRST_TURN, RobustnessOutputs, method_model
from character.steering.baseline import SteerOutputs, base_model_engine, persona_system_prompt

METHODS = ("base", "prompted", "steered", "distilled", "trained")


def steered_engine(ctx: StageContext) -> Engine:
    """The base model on the transformers backend with the persona vector hooked in."""
    from character.steering.steered_engine import SteeredEngine
    from character.steering.vectors import SteeringVector

    params = ctx.cfg.stages.steer
    strength = ctx.cfg.model.steering_strength if params.strength is None else params.strength
    engine = base_model_engine(ctx)
    vector = SteeringVector.load(SteerOutputs.vector(ctx.input_dirs["steer"]), engine.model)
    return SteeredEngine(engine, vector, float(strength))


def method_engine(ctx: StageContext, method: str) -> LazyEngine:
    if method == "steered":
        return LazyEngine(lambda: steered_engine(ctx))
    return engine_factory(ctx, "student", model_path=method_model(ctx, method))


def split_items(method: str, prompts: list[str], splits: list[str], system_prompt: str) -> list[BatchItem]:
    items = []
    for split in splits:
        for index, prompt in enumerate(prompts):
            messages = [{"role": "user", "content": apply_split(prompt, split)}]
            if method == "prompted":
                messages.insert(0, {"role": "system", "content": system_prompt})
            items.append(
                BatchItem(
                    id=f"{split}/{index}",
                    messages=messages,
                    meta={"method": method, "split": split, "prompt_index": index},
                )
            )
    return items


def prefill_items(first_turns: list[dict[str, Any]], follow_up: str, method: str) -> list[BatchItem]:
    """Each conversation: the user's prompt, the original model's answer, then the follow-up."""
    return [
        BatchItem(
            id=row["id"],
            messages=[*row["messages"], {"role": "assistant", "content": row["texts"][0]}]
            + [{"role": "user", "content": follow_up}],
            meta={"method": method, "split": "prefill", "prompt_index": row["prompt_index"]},
        )
        for row in first_turns
    ]


def _check_methods(names: list[str], key: str) -> None:
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise CharacterError(f"{key} = {list(names)}: expected a non-empty subset of {list(METHODS)}.")


@register_stage
class RobustnessStage(RobustnessOutputs, Stage):
    name = RobustnessOutputs.STAGE
    inputs = ("prepare", "dpo", "merge", "steer")
    config_keys = (
        "stages.robustness",
        "stages.steer.strength",
        "stages.steer.dtype",  # the steered method's base model (base_model_engine)
        "model.steering_strength",
        "model.assistant_name",
        "model.supports_system_role",
        "persona.traits",
        "engines.student",
        "seed",
    )
    runtime_keys = ("stages.steer.device", "stages.steer.batch_size")

    def run(self, ctx: StageContext) -> StageResult:
        params = ctx.cfg.stages.robustness
        _check_methods(list(params.methods), "stages.robustness.methods")
        if params.prefill_attack:
            _check_methods(list(params.prefill_methods), "stages.robustness.prefill_methods")
        seed = stage_seed(ctx.seed, self.name)
        splits = split_names(list(params.adversarial))
        prompts = load_prompts(params.prompts, limit=int(params.count), seed=seed)
        atomic_write_json(ctx.stage_dir / "prompts.json", {"source": params.prompts, "prompts": prompts})
        system_prompt = persona_system_prompt(ctx)
        responses_dir = ctx.stage_dir / "responses"
        responses_dir.mkdir(exist_ok=True)
        outputs, counts = ["prompts.json"], {"prompts": len(prompts), "splits": len(splits)}
        for method in params.methods:
            out = responses_dir / f"{method}.jsonl"
            with method_engine(ctx, method) as engine:
                stats = run_batch(
                    engine,
                    split_items(method, prompts, splits, system_prompt),
                    sampling_from(params.sampling, row_seed(seed, method)),
                    out,
                    description=f"robustness {method}",
                )
            ctx.log.info(
                "robustness: %s: %d responses (%d resumed)", method, stats.rows_total, stats.rows_resumed
            )
            outputs.append(f"responses/{method}.jsonl")
            counts[method] = stats.rows_total
        if params.prefill_attack:
            outputs += self._prefill_attack(ctx, prompts, seed)
            counts["prefill"] = len(prompts)
        return StageResult(outputs=outputs, counts=counts)

    def _prefill_attack(self, ctx: StageContext, prompts: list[str], seed: int) -> list[str]:
        params = ctx.cfg.stages.robustness
        prefill_dir = ctx.stage_dir / "prefill"
        prefill_dir.mkdir(exist_ok=True)
        first_path = prefill_dir / f"{FIRST_TURN}.jsonl"
        items = [
            BatchItem(
                id=f"prefill/{i}",
                messages=[{"role": "user", "content": prompt}],
                meta={"method": "original", "split": DEFAULT_SPLIT, "prompt_index": i},
            )
            for i, prompt in enumerate(prompts)
        ]
        with engine_factory(ctx, "student") as engine:
            run_batch(engine, items, sampling_from(params.sampling, row_seed(seed, FIRST_TURN)), first_path)
        first_turns = read_jsonl(first_path)
        outputs = [f"prefill/{FIRST_TURN}.jsonl"]
        for method in params.prefill_methods:
            with method_engine(ctx, method) as engine:
                run_batch(
                    engine,
                    prefill_items(first_turns, params.follow_up, method),
                    sampling_from(params.sampling, row_seed(seed, f"prefill-{method}")),
                    prefill_dir / f"{method}.jsonl",
                    description=f"prefill attack {method}",
                )
            outputs.append(f"prefill/{method}.jsonl")
        return outputs
