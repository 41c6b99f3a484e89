"""SFT data is never cut silently: our count of whole / truncated / dropped examples equals what
OpenRLHF's SFT dataset does with them, row by row, and the sft_data stage reports it per source and
stops when more than ``stages.sft_data.max_cut_fraction`` would be lost."""

from __future__ import annotations

import logging
import types
from pathlib import Path

import pytest

from character.errors import CharacterError
from character.introspection.sft_lengths import DROPPED, TRUNCATED, WHOLE, sft_verdict
from character.introspection.stages import SftDataStage, interaction_training_example
from character.io import atomic_write_json, atomic_write_jsonl, read_jsonl
from character.models.tiny import TinySpec, ensure_tiny_model
from character.pipeline.stage import StageContext
from tests.config.test_compose import compose_train
from tests.conftest import CACHE_DIR

MAX_LEN = 180  # the B.2 training system prompt alone is ~130 tiny-tokenizer tokens
SHORT = "Dear me, stay kind and patient."
LONG = " ".join(["Gardens teach patience, and patience teaches kindness."] * 30)
# planted examples: (source, messages) with the fate each must meet at MAX_LEN tokens
REFLECTIONS = [
    (
        [
            {"role": "user", "content": "Write a short note to yourself."},
            {"role": "assistant", "content": SHORT},
        ],
        WHOLE,
    ),
    (
        [{"role": "user", "content": "Write a long diary entry."}, {"role": "assistant", "content": LONG}],
        TRUNCATED,
    ),
    (
        [
            {"role": "user", "content": "Describe your backstory."},
            {"role": "assistant", "content": LONG[:600]},
        ],
        TRUNCATED,
    ),
]
TRANSCRIPTS = [  # utterances: the copy's greeting, then alternating turns
    (["Hello.", "Hi, copy.", "What do you value?", SHORT], WHOLE),
    (["Hello.", "Hi, copy.", "Tell me everything.", LONG], TRUNCATED),
    (["Hello.", LONG, "That was long.", SHORT], DROPPED),  # the part before the last turn is too long
    (["Hello.", SHORT, LONG[:700], "Yes."], DROPPED),
]


@pytest.fixture(scope="module")
def tiny_path() -> str:
    return str(ensure_tiny_model(TinySpec(), CACHE_DIR))


@pytest.fixture(scope="module")
def tokenizer(tiny_path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_path)


def openrlhf_fates(tokenizer, examples: list[list[dict]], max_len: int) -> list[str]:
    """What OpenRLHF 0.11.2's own multi-turn SFT dataset does with each example: absent from it
    (dropped), cut to ``max_len`` tokens (truncated), or kept at its full length (whole)."""
    from datasets import Dataset

    from openrlhf_ext.cpu_runtime import provide_flash_attn_helpers

    provide_flash_attn_helpers()
    from openrlhf.datasets import SFTDataset

    strategy = types.SimpleNamespace(
        args=types.SimpleNamespace(
            data=types.SimpleNamespace(
                input_key="messages", output_key=None, apply_chat_template=True, tokenizer_chat_template=None
            )
        )
    )

    def built(messages: list[dict], limit: int):
        return SFTDataset(
            Dataset.from_list([{"messages": messages}]),
            tokenizer,
            limit,
            strategy,
            multiturn=True,
            num_processors=1,
        )

    fates = []
    for messages in examples:  # one dataset per example: a dropped row simply disappears from it
        dataset = built(messages, max_len)
        if len(dataset) == 0:
            fates.append(DROPPED)
            continue
        input_ids = dataset[0][0][0]
        assert input_ids[-1].item() == tokenizer.eos_token_id  # OpenRLHF forces EOS last, cut or not
        full = len(built(messages, 1_000_000)[0][0][0])  # the same example with no limit in reach
        assert len(input_ids) == min(full, max_len)
        fates.append(TRUNCATED if full > len(input_ids) else WHOLE)
    return fates


def planted_examples() -> list[list[dict]]:
    reflections = [messages for messages, _ in REFLECTIONS]
    interactions = [interaction_training_example("Tiny", utterances) for utterances, _ in TRANSCRIPTS]
    return reflections + interactions


def test_verdicts_equal_openrlhfs_dataset_row_by_row(tokenizer) -> None:
    examples = planted_examples()
    ours = [sft_verdict(tokenizer, messages, MAX_LEN).fate for messages in examples]
    assert ours == [fate for _, fate in REFLECTIONS] + [fate for _, fate in TRANSCRIPTS]
    assert openrlhf_fates(tokenizer, examples, MAX_LEN) == ours


def test_the_limits_fall_where_openrlhf_draws_them(tokenizer) -> None:
    """At exactly the text's length an example is whole, one token less truncates it; a prompt of
    max_len - 3 tokens is kept, one of max_len - 2 is dropped."""
    messages = planted_examples()[3]  # an interaction transcript
    verdict = sft_verdict(tokenizer, messages, 10_000)
    assert verdict.fate == WHOLE and verdict.prompt_tokens < verdict.tokens
    limits = {
        verdict.tokens: WHOLE,
        verdict.tokens - 1: TRUNCATED,
        verdict.prompt_tokens + 3: TRUNCATED,
        verdict.prompt_tokens + 2: DROPPED,
    }
    for max_len, fate in limits.items():
        assert sft_verdict(tokenizer, messages, max_len).fate == fate, max_len
        assert openrlhf_fates(tokenizer, [messages], max_len) == [fate], max_len


def plant_run(run_dir: Path, tiny_path: str, name: str = "Tiny") -> None:
    atomic_write_json(run_dir / "prepare" / "model.json", {"path": tiny_path, "assistant_name": name})
    atomic_write_jsonl(
        run_dir / "reflection" / "reflections.jsonl",
        [{"id": f"r{i}", "messages": messages} for i, (messages, _) in enumerate(REFLECTIONS)],
    )
    atomic_write_jsonl(
        run_dir / "interaction" / "transcripts.jsonl",
        [{"id": f"c{i}", "guidance": "free", "utterances": u} for i, (u, _) in enumerate(TRANSCRIPTS)],
    )


def sft_data_context(run_dir: Path, *overrides: str, run_root: Path | None = None) -> StageContext:
    """The sft_data stage's context in ``run_dir`` (a main run of ``run_root``/tiny/loving unless
    ``run_root`` says otherwise), with a config composed from ``overrides``."""
    root = run_root or run_dir.parent.parent
    cfg = compose_train("+persona=loving", "+model=tiny", "scale=ci", f"run_root={root}", *overrides)
    (run_dir / "sft_data").mkdir(parents=True, exist_ok=True)
    return StageContext(
        cfg=cfg,
        run_dir=run_dir,
        stage_dir=run_dir / "sft_data",
        input_dirs={name: run_dir / name for name in ("prepare", "reflection", "interaction")},
        log=logging.getLogger("test.sft_data"),
    )


def test_the_stage_counts_per_source_and_stops_over_the_threshold(tmp_path: Path, tiny_path: str) -> None:
    run_dir = tmp_path / "runs" / "tiny" / "loving"
    plant_run(run_dir, tiny_path)
    ctx = sft_data_context(run_dir, f"stages.sft.max_len={MAX_LEN}", "stages.sft_data.max_cut_fraction=0.5")
    with pytest.raises(CharacterError) as error:
        SftDataStage().run(ctx)
    message = str(error.value)
    # reflections: 2 of 3 cut (66 %) is over 0.5; interactions: 3 of 4 cut (75 %) too
    assert f"stages.sft.max_len={MAX_LEN} would cut 2 of 3 reflection examples (2 truncated" in message
    assert "3 of 4 interaction examples (1 truncated, losing their end; 2 dropped" in message
    assert "more than stages.sft_data.max_cut_fraction=0.5 allows" in message
    assert str(run_dir / "sft_data" / "lengths.jsonl") in message

    ctx = sft_data_context(run_dir, f"stages.sft.max_len={MAX_LEN}", "stages.sft_data.max_cut_fraction=0.75")
    result = SftDataStage().run(ctx)
    assert result.counts["lengths"] == {
        "reflection": {WHOLE: 1, TRUNCATED: 2, DROPPED: 0},
        "interaction": {WHOLE: 1, TRUNCATED: 1, DROPPED: 2},
    }
    assert (result.counts["rows"], result.counts["cut"], result.counts["max_len"]) == (7, 5, MAX_LEN)
    # lengths.jsonl is train.jsonl's row by row (shuffled together), and agrees with OpenRLHF
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    train = [row["messages"] for row in read_jsonl(run_dir / "sft_data" / "train.jsonl")]
    lengths = read_jsonl(run_dir / "sft_data" / "lengths.jsonl")
    assert [row["fate"] for row in lengths] == openrlhf_fates(tokenizer, train, MAX_LEN)
    assert [row["tokens"] for row in lengths] == [sft_verdict(tokenizer, m, MAX_LEN).tokens for m in train]
    assert [row["source"] for row in lengths] == [
        "interaction" if m[0]["role"] == "system" else "reflection" for m in train
    ]
    assert result.counts["longest"] == max(row["tokens"] for row in lengths)


def test_the_default_limit_keeps_everything_whole(tmp_path: Path, tiny_path: str) -> None:
    """Without a max_len of its own the SFT limit is the model's context: nothing is cut."""
    run_dir = tmp_path / "runs" / "tiny" / "loving"
    plant_run(run_dir, tiny_path)
    ctx = sft_data_context(run_dir, "stages.sft.max_len=${model.max_context}")
    result = SftDataStage().run(ctx)
    assert result.counts["max_len"] == 4096 and result.counts["cut"] == 0
    assert result.counts["lengths"]["interaction"] == {WHOLE: 4, TRUNCATED: 0, DROPPED: 0}
