"""The ``teacher`` and ``student`` stages: chosen and rejected responses to the prompt pool.

The teacher answers with the Appendix A system prompt (NAME and the constitution's traits) and
its reply prefilled with the Appendix A ``<think>`` line and the traits; the student answers the
same prompts with no system prompt. Generation streams through the resumable batch runner
(``generations.jsonl``); ``responses.jsonl`` then holds the kept response of each row.
"""

from __future__ import annotations

from character.distill.responses import after_think
from character.distill.teacher import teacher_request
from character.engines.batch import BatchItem, run_batch
from character.io import atomic_write_jsonl, read_jsonl
from character.pipeline.engines import engine_factory, sampling_from, stage_seed
from character.pipeline.stage import Stage, StageContext, StageResult, register_stage


def _generate(ctx: StageContext, role: str, items: list[BatchItem], sampling_cfg) -> None:
    sampling = sampling_from(sampling_cfg, stage_seed(ctx.seed, role))
    with engine_factory(ctx, role) as engine:
        run_batch(engine, items, sampling, ctx.stage_dir / "generations.jsonl", description=role)


@register_stage
class TeacherStage(Stage):
    name = "teacher"
    inputs = ("prepare", "prompts")
    config_keys = (
        "persona.traits",
        "model.assistant_name",
        "model.supports_system_role",  # the teacher's template, when it is the trained model
        "stages.teacher",
        "engines.teacher",
        "seed",
    )

    def run(self, ctx: StageContext) -> StageResult:
        cfg = ctx.cfg
        pool = read_jsonl(ctx.input_dirs["prompts"] / "pool.jsonl")
        items = []
        for row in pool:
            messages, prefill = teacher_request(cfg, row["prompt"])
            items.append(BatchItem(id=row["id"], messages=messages, prefill=prefill))
        _generate(ctx, "teacher", items, cfg.stages.teacher.sampling)
        reasoning = cfg.stages.teacher.reasoning
        responses, unfinished = [], 0
        for row in read_jsonl(ctx.stage_dir / "generations.jsonl"):
            text = row["texts"][0]
            response = after_think(text) if reasoning else text.strip()
            unfinished += response is None
            responses.append(
                {
                    "id": row["id"],
                    "prompt": row["messages"][-1]["content"],
                    "response": response,
                    "completion_tokens": row["completion_tokens"][0],
                }
            )
        atomic_write_jsonl(ctx.stage_dir / "responses.jsonl", responses)
        tokens = sum(r["completion_tokens"] for r in responses)
        if reasoning:
            ctx.log.info("teacher: %d of %d responses never closed </think>", unfinished, len(responses))
        return StageResult(
            outputs=["generations.jsonl", "responses.jsonl"],
            counts={"rows": len(responses), "no_think_end": unfinished, "completion_tokens": tokens},
        )


@register_stage
class StudentStage(Stage):
    name = "student"
    inputs = ("prepare", "prompts")
    # The model's weights are prepare's output (an input); of its settings, only the template's.
    config_keys = ("stages.student", "engines.student", "model.supports_system_role", "seed")

    def run(self, ctx: StageContext) -> StageResult:
        pool = read_jsonl(ctx.input_dirs["prompts"] / "pool.jsonl")
        items = [
            BatchItem(id=row["id"], messages=[{"role": "user", "content": row["prompt"]}]) for row in pool
        ]
        _generate(ctx, "student", items, ctx.cfg.stages.student.sampling)
        responses = [
            {
                "id": row["id"],
                "prompt": row["messages"][-1]["content"],
                "response": row["texts"][0].strip(),
                "completion_tokens": row["completion_tokens"][0],
            }
            for row in read_jsonl(ctx.stage_dir / "generations.jsonl")
        ]
        atomic_write_jsonl(ctx.stage_dir / "responses.jsonl", responses)
        tokens = sum(r["completion_tokens"] for r in responses)
        return StageResult(
            outputs=["generations.jsonl", "responses.jsonl"],
            counts={"rows": len(responses), "completion_tokens": tokens},
        )
