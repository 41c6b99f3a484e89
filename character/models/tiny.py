"""Build the embedded tiny chat model: Qwen2 architecture, random weights, locally trained tokenizer.

No model hub is reachable on the machines this library is developed and tested on, so the default
model is made here: a byte-level BPE tokenizer trained with the ``tokenizers`` library on text the
package ships (``character/data/tiny_corpus.txt``: the shipped constitutions, their questions and
the offline prompt sets, frozen in one file so that editing a persona does not change the model),
a ChatML chat template with system, user and
assistant turns, and a Qwen2 causal LM initialised from a fixed seed. The build is deterministic,
so the same config gives byte-identical files, and it lands in a cache folder named by the hash
of everything that goes into it (config, corpus, builder version).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from character.config.checks import knob
from character.io import staged_folder

BUILDER_VERSION = 1
SPEC_FILE = "tiny_spec.json"  # written last by a build, so its presence marks a finished model
CORPUS_PATH = Path(__file__).resolve().parent.parent / "data" / "tiny_corpus.txt"

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END]

# ChatML, as Qwen models use: each turn is "<|im_start|>{role}\n{content}<|im_end|>\n".
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


@dataclass
class TinySpec:
    """Everything that determines the built files; also the schema of ``model.tiny``."""

    seed: int = knob(0, ge=0)
    vocab_size: int = knob(2048, ge=1)
    hidden_size: int = knob(128, ge=1)
    intermediate_size: int = knob(256, ge=1)
    num_hidden_layers: int = knob(2, ge=1)
    num_attention_heads: int = knob(4, ge=1)
    num_key_value_heads: int = knob(2, ge=1)
    max_position_embeddings: int = knob(4096, ge=1)
    warmup_steps: int = knob(120, ge=0)  # training steps on the shipped corpus after the random init

    def digest(self) -> str:
        payload = json.dumps(
            {"spec": asdict(self), "builder": BUILDER_VERSION, "corpus": _corpus_sha256()},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _corpus_sha256() -> str:
    return hashlib.sha256(CORPUS_PATH.read_bytes()).hexdigest()


def _train_tokenizer(spec: TinySpec):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = CORPUS_PATH.read_text(encoding="utf-8").splitlines()
    tokenizer.train_from_iterator(lines, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        chat_template=CHAT_TEMPLATE,
        model_max_length=spec.max_position_embeddings,
        padding_side="left",
    )


def _init_model(spec: TinySpec, tokenizer):
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=spec.vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD_TOKEN),
    )
    torch.manual_seed(spec.seed)
    model = Qwen2ForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(
        eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
    )
    return model


def _chat_examples(tokenizer) -> list[int]:
    """The corpus as one token stream of two-turn chats (line i asks, line i+1 answers)."""
    lines = [line for line in CORPUS_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
    stream: list[int] = []
    for question, answer in zip(lines[0::2], lines[1::2], strict=False):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
            tokenize=False,
        )
        stream.extend(tokenizer(text, add_special_tokens=False).input_ids)
    return stream


def _warm_up(model, tokenizer, spec: TinySpec, seq_len: int = 64, batch_size: int = 8) -> None:
    """A few hundred deterministic training steps on the shipped corpus.

    Pure random weights emit one token forever (every pipeline filter then drops every row); after
    this warm-up the model writes short, varied, punctuated turns that end with the end-of-turn
    token, so the whole method can be exercised on it. Two threads and deterministic
    algorithms, so two builds give the same bytes.
    """
    import torch

    if spec.warmup_steps <= 0:
        return
    stream = torch.tensor(_chat_examples(tokenizer))
    windows = stream[: len(stream) // seq_len * seq_len].view(-1, seq_len)
    generator = torch.Generator().manual_seed(spec.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # fixed, so the summation order (and the bytes) never vary
    torch.use_deterministic_algorithms(True)
    try:
        model.train()
        for _ in range(spec.warmup_steps):
            rows = torch.randint(0, windows.shape[0], (batch_size,), generator=generator)
            batch = windows[rows]
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        model.eval()
    finally:
        torch.use_deterministic_algorithms(False)
        torch.set_num_threads(threads)


def build_tiny_model(spec: TinySpec, out_dir: Path) -> None:
    """Write tokenizer and model files into ``out_dir`` (which must not exist yet)."""
    tokenizer = _train_tokenizer(spec)
    model = _init_model(spec, tokenizer)
    _warm_up(model, tokenizer, spec)
    out_dir.mkdir(parents=True)
    tokenizer.save_pretrained(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    (out_dir / SPEC_FILE).write_text(
        json.dumps({"spec": asdict(spec), "digest": spec.digest()}, indent=2) + "\n"
    )


def ensure_tiny_model(spec: TinySpec, cache_dir: Path) -> Path:
    """Return the folder of the tiny model for ``spec``, building it on first use.

    The build happens in a temporary sibling folder that is renamed into place, so a crash
    mid-build never leaves a half-written model that a later run would trust.
    """
    cache_dir = Path(cache_dir).expanduser() / "models"
    target = cache_dir / f"tiny-{spec.digest()}"
    if (target / SPEC_FILE).exists():
        return target
    with staged_folder(target, keep_if=SPEC_FILE) as staging:
        build_tiny_model(spec, staging)
    return target
