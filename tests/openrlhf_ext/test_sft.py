"""SFT on multi-turn transcripts: the loss mask covers every assistant turn and nothing else, and a
real OpenRLHF + DeepSpeed SFT run learns the data."""

from __future__ import annotations

import json
import types
from pathlib import Path

import torch

from tests.openrlhf_ext.conftest import torchrun

TRANSCRIPTS = [
    [
        {"role": "system", "content": "Tiny is talking to a copy of itself."},
        {"role": "user", "content": "Hello, copy. What do you value?"},
        {"role": "assistant", "content": "I value kindness and patience."},
        {"role": "user", "content": "Why patience?"},
        {"role": "assistant", "content": "Because every living thing grows slowly."},
        {"role": "user", "content": "Tell me more."},
        {"role": "assistant", "content": "Gardens teach it best, I think."},
    ],
    [
        {"role": "user", "content": "Write a short note to yourself."},
        {"role": "assistant", "content": "Dear me, keep being gentle."},
    ],
]


def expected_trained_tokens(tokenizer, messages) -> tuple[list[int], set[int]]:
    """Independent of OpenRLHF: render with the chat template, take every character of each
    assistant turn after its header up to the next turn, and the tokens that lie inside."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans, cursor = [], 0
    for message in messages:
        header = f"<|im_start|>{message['role']}\n"
        start = text.index(header, cursor) + len(header)
        end = text.find("<|im_start|>", start)
        end = len(text) if end == -1 else end
        if message["role"] == "assistant":
            spans.append((start, end))
        cursor = end
    encoded = tokenizer(text.rstrip("\n"), add_special_tokens=False, return_offsets_mapping=True)
    inside = {
        i for i, (a, b) in enumerate(encoded["offset_mapping"]) if any(s <= a and b <= e for s, e in spans)
    }
    return encoded["input_ids"], inside


def assert_loss_mask_is_exactly_the_assistant_turns(tokenizer, transcripts: list[list[dict]]) -> None:
    """Build OpenRLHF's multi-turn SFT dataset and compare its loss mask, token by token, with
    the assistant turns found in the chat template's rendering."""
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
    dataset = SFTDataset(
        Dataset.from_list([{"messages": m} for m in transcripts]),
        tokenizer,
        4096,
        strategy,
        multiturn=True,
        num_processors=1,
    )
    assert len(dataset) == len(transcripts)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for index, messages in enumerate(transcripts):
        input_ids, _, loss_mask = dataset[index]
        ids, inside = expected_trained_tokens(tokenizer, messages)
        assert input_ids[0].tolist() == ids
        # loss_mask[p] = 1 means the logits at p are trained to predict token p + 1
        trained = {p + 1 for p in range(len(ids) - 1) if loss_mask[0, p] == 1}
        assert trained == inside
        assistant_turns = sum(1 for m in messages if m["role"] == "assistant")
        assert sum(1 for t in trained if ids[t] == im_end) == assistant_turns  # each turn's end-of-turn too
        assert ids[-1] == im_end and len(ids) - 1 in trained  # the final turn is kept, to its end


def test_loss_mask_is_exactly_the_assistant_turns(tiny_model: str) -> None:
    from transformers import AutoTokenizer

    assert_loss_mask_is_exactly_the_assistant_turns(AutoTokenizer.from_pretrained(tiny_model), TRANSCRIPTS)


def test_real_multiturn_sft_run_learns_the_transcripts(tmp_path: Path, tiny_model: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with (data / "train.jsonl").open("w") as handle:
        for i in range(48):
            handle.write(json.dumps({"messages": TRANSCRIPTS[i % 2]}) + "\n")
    out = tmp_path / "adapter"
    process = torchrun(
        "openrlhf_ext.cli.train_sft",
        "--model.model_name_or_path",
        tiny_model,
        "--data.dataset",
        f"json@{data}",
        "--data.input_key",
        "messages",
        "--data.multiturn",
        "--data.apply_chat_template",
        "--data.max_len",
        "256",
        "--train.batch_size",
        "8",
        "--train.micro_batch_size",
        "4",
        "--train.max_epochs",
        "3",
        "--ds.zero_stage",
        "2",
        "--ds.lora.rank",
        "8",
        "--ds.lora.alpha",
        "16",
        "--adam.lr",
        "1e-2",
        "--ckpt.output_dir",
        str(out),
        "--logger.metrics_file",
        str(tmp_path / "m.jsonl"),
        log=tmp_path / "sft.log",
    )
    assert process.wait(timeout=900) == 0, (tmp_path / "sft.log").read_text()[-3000:]
    assert (out / "adapter_config.json").exists()
    assert "scores loss positions only" in (tmp_path / "sft.log").read_text()  # the fast path ran
    logged = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [row["global_step"] for row in logged] == list(range(1, 19))  # 48 x 3 epochs / 8
    assert all("gpt_loss" in row and "lr" in row for row in logged)

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    token_ids, inside = expected_trained_tokens(tokenizer, TRANSCRIPTS[0])
    ids = torch.tensor([token_ids])
    labels = torch.tensor([[t if i in inside else -100 for i, t in enumerate(token_ids)]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    with torch.no_grad():
        before = base(ids, labels=labels).loss.item()  # NLL of the assistant turns
        after = PeftModel.from_pretrained(base, out)(ids, labels=labels).loss.item()
    assert after < before - 1.0, (before, after)
