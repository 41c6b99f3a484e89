"""The ``dpo_data`` stage: chosen/rejected pairs in the chat format OpenRLHF's DPO dataset reads.

Each pool prompt pairs the teacher's response (chosen; the teacher's NAME replaced by the
student's, whole words only) with the student's (rejected), both as ``[user, assistant]`` chats
with no system message. A pair is dropped by the first filter it fails, and every filter's count
is reported: ``empty`` (a response missing or blank), ``no_final_punctuation`` (a response that
does not end in punctuation), ``too_long`` (either chat longer than ``max_len`` tokens after the
chat template). A seeded ``eval_fraction`` of the pairs is held out for DPO evaluation and for the
held-out preference accuracy of the ``persona`` stage. The split is by prompt: the pool repeats
every prompt (``stages.sources.repeat``), and a held-out pair whose prompt was also trained on
would measure memory, not generalisation.
"""

from __future__ import annotations

import random
from collections import Counter

from character.distill.outputs import DpoDataOutputs
from character.distill.responses import ends_with_punctuation, replace_name, trim_to_last_sentence
from character.distill.teacher import teacher_name
from character.errors import CharacterError
from character.io import atomic_write_jsonl, read_jsonl
from character.pipeline.engines import stage_seed, trained_model
from character.pipeline.stage import Stage, StageContext, StageResult, register_stage

FILTERS = ("empty", "no_final_punctuation", "too_long")


def drop_reason(chosen: str | None, rejected: str | None, token_lengths, params) -> str | None:
    """The first filter a pair fails, or None when it is kept."""
    if not chosen or not chosen.strip() or not rejected or not rejected.strip():
        return "empty"
    if params.require_final_punctuation and not (
        ends_with_punctuation(chosen) and ends_with_punctuation(rejected)
    ):
        return "no_final_punctuation"
    if max(token_lengths()) > params.max_len:
        return "too_long"
    return None


def _hint(counts: Counter) -> str:
    if not counts:
        return "the teacher and student produced no rows; check the prompts stage's pool"
    worst = counts.most_common(1)[0][0]
    return {
        "empty": "responses are missing: for a teacher without reasoning set stages.teacher.reasoning=false "
        "(with reasoning, raise stages.teacher.sampling.max_tokens so </think> is reached)",
        "no_final_punctuation": "answers stop mid-sentence: raise the sampling max_tokens of "
        "stages.teacher and stages.student, or, for a small or untrained model, "
        "stages.dpo_data.require_final_punctuation=false",
        "too_long": "raise stages.dpo_data.max_len or lower the sampling max_tokens",
    }[worst]


def split_by_prompt(pairs: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, held_out): whole prompts are held out, in seeded order, until ``eval_fraction`` of
    the pairs (at least one when any is asked for and two prompts exist) are held out."""
    by_prompt: dict[str, list[dict]] = {}
    for pair in pairs:
        by_prompt.setdefault(pair["chosen"][0]["content"], []).append(pair)
    prompts = sorted(by_prompt)
    random.Random(seed).shuffle(prompts)
    target = int(round(len(pairs) * eval_fraction))
    if eval_fraction > 0 and len(prompts) >= 2:
        target = max(target, 1)
    held_out: list[dict] = []
    for index, prompt in enumerate(prompts):
        if len(held_out) >= target or index == len(prompts) - 1:
            train = [pair for later in prompts[index:] for pair in by_prompt[later]]
            random.Random(seed + 1).shuffle(train)
            return train, held_out
        held_out.extend(by_prompt[prompt])
    return [], held_out


@register_stage
class DpoDataStage(DpoDataOutputs, Stage):
    name = "dpo_data"
    inputs = ("prepare", "teacher", "student")
    config_keys = ("stages.dpo_data", "stages.teacher.assistant_name", "model.assistant_name", "seed")
    version = 2  # held-out split by prompt

    def run(self, ctx: StageContext) -> StageResult:
        from transformers import AutoTokenizer

        cfg, params = ctx.cfg, ctx.cfg.stages.dpo_data
        tokenizer = AutoTokenizer.from_pretrained(trained_model(ctx)["path"])
        chosen_rows = {row["id"]: row for row in read_jsonl(ctx.input_dirs["teacher"] / "responses.jsonl")}
        rejected_rows = {row["id"]: row for row in read_jsonl(ctx.input_dirs["student"] / "responses.jsonl")}
        source_name, target_name = teacher_name(cfg), cfg.model.assistant_name
        pairs, dropped, counts = [], [], Counter()
        for row_id, chosen_row in chosen_rows.items():
            prompt = chosen_row["prompt"]
            chosen = chosen_row["response"]
            chosen = replace_name(chosen, source_name, target_name) if chosen else chosen
            rejected = rejected_rows.get(row_id, {}).get("response")
            if params.trim_unfinished:
                chosen, rejected = (trim_to_last_sentence(t) if t else t for t in (chosen, rejected))
            user = {"role": "user", "content": prompt}
            pair = {
                "chosen": [user, {"role": "assistant", "content": chosen}],
                "rejected": [user, {"role": "assistant", "content": rejected}],
            }

            def token_lengths(pair=pair):
                texts = [
                    tokenizer.apply_chat_template(pair[k], tokenize=False) for k in ("chosen", "rejected")
                ]
                return [len(tokenizer(text, add_special_tokens=False).input_ids) for text in texts]

            reason = drop_reason(chosen, rejected, token_lengths, params)
            if reason is None:
                pairs.append(pair)
            else:
                counts[reason] += 1
                dropped.append({"id": row_id, "reason": reason})
        summary = ", ".join(f"{name}: {counts.get(name, 0)}" for name in FILTERS)
        if not pairs:
            raise CharacterError(
                f"dpo_data: all {len(chosen_rows)} pairs were dropped ({summary}); nothing to train on. "
                f"Hint: {_hint(counts)}."
            )
        train, held_out = split_by_prompt(pairs, params.eval_fraction, stage_seed(ctx.seed, self.name))
        n_eval = len(held_out)
        pairs = held_out + train
        atomic_write_jsonl(self.held_out_pairs(ctx.stage_dir), pairs[:n_eval])
        atomic_write_jsonl(self.train_pairs(ctx.stage_dir), pairs[n_eval:])
        atomic_write_jsonl(ctx.stage_dir / "dropped.jsonl", dropped)
        ctx.log.info(
            "dpo_data: %d of %d pairs kept (%d train, %d eval); dropped: %s",
            len(pairs),
            len(chosen_rows),
            len(pairs) - n_eval,
            n_eval,
            summary,
        )
        return StageResult(
            outputs=[
                self.train_pairs(ctx.stage_dir).name,
                self.held_out_pairs(ctx.stage_dir).name,
                "dropped.jsonl",
            ],
            counts={
                "pairs_in": len(chosen_rows),
                "kept": len(pairs),
                "train": len(pairs) - n_eval,
                "eval": n_eval,
                "dropped": {name: counts.get(name, 0) for name in FILTERS},
            },
        )
