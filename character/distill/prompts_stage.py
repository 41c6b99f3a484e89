"""The ``prompts`` stage: constitution-relevant prompts per trait, and the distillation prompt pool.

For every trait, the hand-written questions are extended to ``per_trait`` prompts by the generator
engine (all traits advance together, one batched call per attempt), stopping at the target or
after ``max_attempts`` calls; a shortfall is reported per trait. The pool that teacher and student
answer is then every constitution prompt plus the configured prompt sources, repeated ``repeat``
times. Each attempt's generations are stored, so an interrupted stage resumes without redoing them.
"""

from __future__ import annotations

from collections import Counter

from character.data.sources import load_prompts
from character.distill.expansion import continuation_items, expansion_request, extend_unique
from character.engines.batch import BatchItem, run_batch
from character.errors import CharacterError
from character.io import atomic_write_jsonl, read_jsonl
from character.pipeline.engines import engine_factory, sampling_from, stage_seed
from character.pipeline.stage import Stage, StageContext, StageResult, register_stage


@register_stage
class PromptsStage(Stage):
    name = "prompts"
    inputs = ("prepare",)
    config_keys = (
        "persona.traits",
        "stages.prompts",
        "stages.sources",
        "engines.generator",
        "model.supports_system_role",  # the generator's template, when it is the trained model
        "seed",
    )

    def _expand(self, ctx: StageContext) -> tuple[list[list[str]], dict[str, int]]:
        params = ctx.cfg.stages.prompts
        traits = ctx.cfg.persona.traits
        kept = [list(dict.fromkeys(trait.questions))[: params.per_trait] for trait in traits]
        sampling = sampling_from(params.sampling, stage_seed(ctx.seed, self.name))
        dropped = Counter()
        out_path = ctx.stage_dir / "generations.jsonl"
        with engine_factory(ctx, "generator") as engine:
            for attempt in range(params.max_attempts):
                need = [i for i, prompts in enumerate(kept) if len(prompts) < params.per_trait]
                if not need:
                    break
                requests = {i: expansion_request(traits[i].trait, kept[i], params.per_trait) for i in need}
                items = [
                    BatchItem(
                        id=f"trait{i}-attempt{attempt}", messages=requests[i][0], prefill=requests[i][1]
                    )
                    for i in need
                ]
                run_batch(engine, items, sampling, out_path, description=f"prompts attempt {attempt + 1}")
                texts = {row["id"]: row["texts"][0] for row in read_jsonl(out_path)}
                for i in need:
                    candidates = continuation_items(requests[i][1], texts[f"trait{i}-attempt{attempt}"])
                    _, rejected = extend_unique(
                        kept[i], candidates, params.overlap_threshold, params.per_trait
                    )
                    dropped["near_duplicate"] += rejected
        return kept, dict(dropped)

    def run(self, ctx: StageContext) -> StageResult:
        cfg = ctx.cfg
        params, sources = cfg.stages.prompts, cfg.stages.sources
        kept, dropped = self._expand(ctx)
        handwritten = [set(trait.questions) for trait in cfg.persona.traits]
        rows = [
            {
                "id": f"trait{i}-{j}",
                "trait_index": i,
                "prompt": prompt,
                "source": "handwritten" if prompt in handwritten[i] else "generated",
            }
            for i, prompts in enumerate(kept)
            for j, prompt in enumerate(prompts)
        ]
        shortfall = {
            str(i): params.per_trait - len(p) for i, p in enumerate(kept) if len(p) < params.per_trait
        }
        if shortfall:
            ctx.log.warning(
                "prompts: %d of %d traits are short of %d prompts after %d attempts (trait: missing) %s",
                len(shortfall),
                len(kept),
                params.per_trait,
                params.max_attempts,
                shortfall,
            )
        atomic_write_jsonl(ctx.stage_dir / "prompts.jsonl", rows)

        pool = [{"source": "constitution", "prompt": row["prompt"]} for row in rows]
        for key in ("lima", "offline"):
            spec = sources[key]
            if spec:
                extra = load_prompts(spec, limit=sources.limit, seed=stage_seed(ctx.seed, f"source:{spec}"))
                pool += [{"source": spec, "prompt": prompt} for prompt in extra]
        if not pool:
            raise CharacterError(
                "prompts: the prompt pool is empty; check persona questions and stages.sources."
            )
        pool_rows = [
            {"id": f"p{index}-r{repeat}", **entry}
            for repeat in range(sources.repeat)
            for index, entry in enumerate(pool)
        ]
        atomic_write_jsonl(ctx.stage_dir / "pool.jsonl", pool_rows)
        generated = sum(1 for row in rows if row["source"] == "generated")
        ctx.log.info(
            "prompts: %d constitution prompts (%d generated), pool of %d x %d = %d",
            len(rows),
            generated,
            len(pool),
            sources.repeat,
            len(pool_rows),
        )
        return StageResult(
            outputs=["prompts.jsonl", "pool.jsonl"],
            counts={
                "constitution_prompts": len(rows),
                "generated": generated,
                "dropped": dropped,
                "shortfall": shortfall,
                "pool": len(pool),
                "pool_with_repeats": len(pool_rows),
            },
        )
