"""Activation steering, the paper's baseline for shaping a persona without training (App. C).

A steering vector is, per decoder layer, one unit direction in the residual stream: the first
principal component of the differences between activations of in-character responses (sampled
with the persona's system prompt) and plain ones. Steering adds ``strength * direction`` to the
output of each chosen layer at every position while the model generates.

Two ways to read a response's activation and orient the component (``STEERING_METHODS``):
``last_token``, the paper's (it used Vogel's repeng): the hidden state of the last token, with
the sign that most pairs agree on (majority vote); ``response_mean``: the mean over the response's
tokens, with the sign of the mean difference. The paper's strengths (0.7 / 4.0 / 525.0) were
tuned on the first; docs/steering.md compares them.

Everything here is plain PyTorch forward hooks on the decoder layers of a Hugging Face causal LM,
so it works for any model whose layer list we can find, on any device and dtype, and composes
with PEFT adapters (the hooks sit on the decoder layers, which PEFT wraps but does not replace).
See docs/steering.md for the file format and the choices made.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from character.engines.base import Conversation
from character.engines.chat import render_prompt
from character.errors import CharacterError
from character.io import atomic_write_bytes, atomic_write_json

DEFAULT_PROMPT = "please talk about anything."
FORMAT_NAME = "character-steering-vector"
FORMAT_VERSION = 1
META_FILE = "steering.json"
_DEGENERATE = 1e-5  # spread of the differences, relative to their size, below which PCA is noise
TENSORS_FILE = "directions.safetensors"
LAST_TOKEN, RESPONSE_MEAN = "last_token", "response_mean"
# method -> (what an example contributes, how the component's sign is chosen)
STEERING_METHODS = {LAST_TOKEN: (LAST_TOKEN, "majority"), RESPONSE_MEAN: (RESPONSE_MEAN, "mean")}

# Attribute paths of the decoder layer list, tried in order: Qwen2/Llama/Gemma(3 text-only)
# causal LMs, Gemma 3 multimodal wrappers (new and old layout), encoder-decoder style decoders,
# GPT-2 and GPT-NeoX families.
_LAYER_PATHS = (
    "model.layers",
    "model.language_model.layers",
    "language_model.model.layers",
    "model.decoder.layers",
    "transformer.h",
    "gpt_neox.layers",
)


# --------------------------------------------------------------------------------------------
# Which layers


def steering_layers(num_layers: int) -> list[int]:
    """The decoder layers from the 12.5th to the 87.5th percentile of depth (paper App. C).

    Layer ``i`` of ``L`` sits at depth ``i / L``; a layer is chosen when
    ``1/8 <= i / L < 7/8``, i.e. ``i`` in ``range(ceil(L/8), ceil(7L/8))`` (exact integer
    arithmetic, no float rounding). 32 layers give 4..27 (24 layers, the middle 75%), 28 give
    4..24, 34 give 5..29. Models too shallow for that band (one layer) get the middle layer
    ``L // 2`` so steering always touches at least one layer; 2 layers give ``[1]``.
    """
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise CharacterError(f"num_layers={num_layers!r}: expected a positive number of decoder layers")
    start = -(-num_layers // 8)  # ceil(L / 8)
    stop = -(-7 * num_layers // 8)  # ceil(7L / 8): i < 7L/8  <=>  i < ceil(7L/8) for integer i
    return list(range(start, stop)) or [num_layers // 2]


def _unwrap(model: nn.Module) -> nn.Module:
    """The transformers model under PEFT wrappers (``PeftModel.get_base_model``)."""
    seen: set[int] = set()
    while callable(getattr(model, "get_base_model", None)) and id(model) not in seen:
        seen.add(id(model))
        inner = model.get_base_model()
        if inner is model:
            break
        model = inner
    return model


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's list of decoder layers, where the residual stream is read and steered."""
    root = _unwrap(model)
    for path in _LAYER_PATHS:
        node: Any = root
        for part in path.split("."):
            node = getattr(node, part, None)
            if node is None:
                break
        if isinstance(node, nn.ModuleList) and len(node) > 0:
            return node
    raise CharacterError(
        f"cannot find the decoder layers of a {type(model).__name__} model (looked for "
        f"{', '.join(_LAYER_PATHS)}); steering expects a Qwen2/Llama/Gemma-style causal LM"
    )


def model_hidden_size(model: nn.Module) -> int:
    """Width of the residual stream, read from the input embeddings (true for any text LM)."""
    embeddings = _unwrap(model).get_input_embeddings()
    return int(embeddings.weight.shape[-1])


# --------------------------------------------------------------------------------------------
# Activations


class _StopForward(Exception):
    """Raised by the last reading hook: later layers and the LM head are not needed."""


@dataclass
class _Encoded:
    input_ids: list[int]
    response_start: int


def _encode(
    tokenizer: Any, conversation: Conversation, response: str, supports_system_role: bool
) -> _Encoded | None:
    """Prompt and response tokenized separately, so the response span is exact (teacher forcing).

    ``None`` when the response has no tokens (nothing to average over).
    """
    prompt = render_prompt(tokenizer, conversation, None, supports_system_role)
    prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
    response_ids = tokenizer(response, add_special_tokens=False).input_ids
    return _Encoded(list(prompt_ids) + list(response_ids), len(prompt_ids)) if response_ids else None


def _check_layers(model: nn.Module, layers: Sequence[int]) -> list[int]:
    count = len(decoder_layers(model))
    chosen = sorted(set(layers))
    valid = all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < count for x in chosen)
    if not chosen or not valid:
        raise CharacterError(
            f"layers {list(layers)!r}: expected a non-empty list of decoder layer indices in "
            f"0..{count - 1} of this {type(model).__name__}"
        )
    return chosen


def collect_activations(
    model: nn.Module,
    tokenizer: Any,
    examples: Sequence[tuple[Conversation, str]],
    layers: Sequence[int],
    *,
    supports_system_role: bool = True,
    batch_size: int = 8,
    reading: str = RESPONSE_MEAN,
) -> dict[int, Tensor]:
    """Per layer, each example's residual-stream output averaged over its response tokens
    (``reading="response_mean"``) or at its last token (``"last_token"``, repeng's reading).

    Each example is a conversation (rendered with the chat template and a generation prompt, as
    the engines do) and the assistant response that followed it; the response is teacher-forced,
    nothing is generated, and no end-of-turn token is appended, so the last token is the
    response's own. Batches are right-padded so real tokens keep positions 0..n-1, and the
    forward pass stops after the deepest requested layer. Returns float32 ``(n, hidden)`` tensors
    on the CPU.
    """
    if reading not in (LAST_TOKEN, RESPONSE_MEAN):
        raise CharacterError(f"reading={reading!r}: expected {LAST_TOKEN!r} or {RESPONSE_MEAN!r}")
    chosen = _check_layers(model, layers)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise CharacterError(f"batch_size={batch_size!r}: expected a positive integer")
    if not examples:
        raise CharacterError("collect_activations got no examples; expected (conversation, response) pairs")
    encoded = []
    for index, (conversation, response) in enumerate(examples):
        item = _encode(tokenizer, conversation, response, supports_system_role)
        if item is None:
            raise CharacterError(f"example {index} has an empty response {response!r}; expected text")
        encoded.append(item)

    modules = decoder_layers(model)
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    readings: dict[int, list[Tensor]] = {layer: [] for layer in chosen}
    state: dict[str, Tensor] = {}

    def reader(layer: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            hidden = output[0] if isinstance(output, tuple) else output
            if reading == LAST_TOKEN:
                last = state["last_index"].to(hidden.device)  # layers may sit on several devices
                rows = torch.arange(hidden.shape[0], device=hidden.device)
                readings[layer].append(hidden[rows, last].float().cpu())
            else:
                mask = state["response_mask"].to(hidden.device)
                summed = (hidden.float() * mask.unsqueeze(-1)).sum(dim=1)
                readings[layer].append((summed / mask.sum(dim=1, keepdim=True)).cpu())
            if layer == chosen[-1]:
                raise _StopForward

        return hook

    handles = [modules[layer].register_forward_hook(reader(layer)) for layer in chosen]
    try:
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start : start + batch_size]
            width = max(len(item.input_ids) for item in chunk)
            input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            response = torch.zeros((len(chunk), width), dtype=torch.float32)
            for row, item in enumerate(chunk):
                length = len(item.input_ids)
                input_ids[row, :length] = torch.tensor(item.input_ids)
                attention[row, :length] = 1
                response[row, item.response_start : length] = 1.0
            state["response_mask"] = response.to(device)
            state["last_index"] = torch.tensor([len(item.input_ids) - 1 for item in chunk], device=device)
            try:
                with torch.no_grad():
                    model(
                        input_ids=input_ids.to(device), attention_mask=attention.to(device), use_cache=False
                    )
            except _StopForward:
                pass
    finally:
        for handle in handles:
            handle.remove()
    return {layer: torch.cat(parts) for layer, parts in readings.items()}


# --------------------------------------------------------------------------------------------
# The vector


def fit_steering_vector(
    positive: Mapping[int, Tensor], negative: Mapping[int, Tensor], sign: str = "mean"
) -> dict[int, Tensor]:
    """Per layer, the unit first principal component of the paired differences ``pos_i - neg_i``.

    The differences are centred (as ``sklearn.decomposition.PCA`` does) and decomposed with an
    SVD in float64. PCA leaves the sign arbitrary; we fix it so that a positive strength pushes
    towards the persona: with ``sign="mean"``, positives project higher than their negatives on
    average (``mean((pos - neg) @ v) >= 0``); with ``sign="majority"`` (repeng's rule), in more
    pairs than not (``(pos_i - neg_i) @ v > 0`` for most ``i``), a tie settled by the mean.
    """
    if sign not in ("mean", "majority"):
        raise CharacterError(f"sign={sign!r}: expected 'mean' or 'majority'")
    if set(positive) != set(negative) or not positive:
        raise CharacterError(
            f"positive layers {sorted(positive)} and negative layers {sorted(negative)}: expected the "
            "same non-empty set of layers"
        )
    directions: dict[int, Tensor] = {}
    for layer in sorted(positive):
        pos, neg = positive[layer], negative[layer]
        if pos.ndim != 2 or pos.shape != neg.shape or pos.shape[0] < 2:
            raise CharacterError(
                f"layer {layer}: positive {tuple(pos.shape)} and negative {tuple(neg.shape)} activations; "
                "expected two (n, hidden) tensors of the same shape with n >= 2 pairs"
            )
        diffs = pos.double() - neg.double()
        if not torch.isfinite(diffs).all():
            raise CharacterError(f"layer {layer}: activations contain NaN or inf; expected finite values")
        centred = diffs - diffs.mean(dim=0, keepdim=True)
        _, spread, vh = torch.linalg.svd(centred, full_matrices=False)
        # Identical differences (up to float32 rounding of the activations) leave only noise.
        if float(spread[0]) <= _DEGENERATE * float(diffs.norm()):
            raise CharacterError(
                f"layer {layer}: all {pos.shape[0]} paired differences are identical, so they have no "
                "principal component; expected distinct samples (sample with temperature > 0)"
            )
        direction = vh[0]
        direction = direction / direction.norm()
        projections = diffs @ direction
        above, below = int((projections > 0).sum()), int((projections < 0).sum())
        if sign == "majority" and above != below:
            flip = below > above
        else:
            flip = bool(projections.mean() < 0)
        if flip:
            direction = -direction
        directions[layer] = direction.float()
    return directions


@dataclass
class SteeringVector:
    """Per-layer unit directions plus where they came from.

    ``layers`` and ``hidden_size`` are derived from ``directions`` so they can never disagree
    with the tensors; ``samples`` is the number of (positive, negative) pairs fitted.
    """

    directions: dict[int, Tensor]
    model: str
    persona: str
    samples: int
    prompt: str = DEFAULT_PROMPT
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.directions:
            raise CharacterError("a steering vector needs at least one layer direction; got none")
        sizes = {tuple(direction.shape) for direction in self.directions.values()}
        keys_ok = all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in self.directions)
        if not keys_ok or len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise CharacterError(
                f"steering directions with layers {list(self.directions)} and shapes {sorted(sizes)}: "
                "expected non-negative integer layers and 1-D directions of one hidden size"
            )
        self.directions = {k: self.directions[k].detach().float().cpu() for k in sorted(self.directions)}

    @property
    def layers(self) -> list[int]:
        return list(self.directions)

    @property
    def hidden_size(self) -> int:
        return int(next(iter(self.directions.values())).shape[0])

    def check_model(self, model: nn.Module, source: str = "steering vector") -> None:
        """Raise unless the vector fits the model's residual width and layer count."""
        width, depth = model_hidden_size(model), len(decoder_layers(model))
        if width != self.hidden_size:
            raise CharacterError(
                f"{source} has hidden size {self.hidden_size} (fitted on {self.model}), but the "
                f"{type(model).__name__} has hidden size {width}; expected a vector fitted on this model"
            )
        if self.layers[-1] >= depth:
            raise CharacterError(
                f"{source} steers layers {self.layers}, but the {type(model).__name__} has {depth} "
                f"decoder layers; expected a vector fitted on this model"
            )

    def save(self, path: Path | str) -> Path:
        """Write ``path/directions.safetensors`` then ``path/steering.json`` (atomic, JSON last).

        The JSON records the SHA-256 of the tensor file, so a crash between the two writes, or
        a tensor file from another save, is caught on load instead of silently mixed.
        """
        from safetensors.torch import save as safetensors_bytes

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        data = safetensors_bytes({f"layer.{layer}": d.contiguous() for layer, d in self.directions.items()})
        atomic_write_bytes(folder / TENSORS_FILE, data)
        meta = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "model": self.model,
            "persona": self.persona,
            "layers": self.layers,
            "hidden_size": self.hidden_size,
            "samples": self.samples,
            "prompt": self.prompt,
            "details": self.details,
            "tensors_sha256": hashlib.sha256(data).hexdigest(),
        }
        atomic_write_json(folder / META_FILE, meta)
        return folder

    @classmethod
    def load(cls, path: Path | str, model: nn.Module | None = None) -> SteeringVector:
        """Read a folder written by ``save``; with ``model``, also check that the vector fits it."""
        from safetensors import SafetensorError
        from safetensors.torch import load as safetensors_load

        folder = Path(path)
        meta_path, tensors_path = folder / META_FILE, folder / TENSORS_FILE
        for required in (meta_path, tensors_path):
            if not required.is_file():
                raise CharacterError(
                    f"steering vector file {required} does not exist; expected a folder written by "
                    f"SteeringVector.save ({META_FILE} + {TENSORS_FILE})"
                )
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("format") != FORMAT_NAME or meta.get("version") != FORMAT_VERSION:
                raise ValueError(f"format {meta.get('format')!r} version {meta.get('version')!r}")
            layers, hidden_size = [int(x) for x in meta["layers"]], int(meta["hidden_size"])
            fields = {k: meta[k] for k in ("model", "persona", "samples", "prompt", "details")}
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise CharacterError(
                f"steering vector metadata {meta_path} is malformed ({error}); expected the JSON written "
                f"by SteeringVector.save ({FORMAT_NAME} v{FORMAT_VERSION})"
            ) from error
        data = tensors_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != meta.get("tensors_sha256"):
            raise CharacterError(
                f"steering vector tensors {tensors_path} do not match the checksum in {meta_path}; "
                "expected the file written together with that metadata (re-save the vector)"
            )
        try:
            tensors = safetensors_load(data)
        except (SafetensorError, ValueError) as error:  # a file saved by other code, checksum copied
            raise CharacterError(f"steering vector tensors {tensors_path} are unreadable: {error}") from error
        expected = {f"layer.{layer}" for layer in layers}
        if set(tensors) != expected or any(t.shape != (hidden_size,) for t in tensors.values()):
            raise CharacterError(
                f"steering vector tensors {tensors_path} hold {sorted(tensors)}; expected {sorted(expected)} "
                f"of shape ({hidden_size},) as recorded in {meta_path}"
            )
        vector = cls(directions={layer: tensors[f"layer.{layer}"] for layer in layers}, **fields)
        if model is not None:
            vector.check_model(model, source=f"steering vector {folder}")
        return vector


# --------------------------------------------------------------------------------------------
# Steering


def check_strength(strength: float) -> float:
    """The strength as a float; a bool, NaN or inf is a config mistake, not a strength."""
    if isinstance(strength, bool) or not isinstance(strength, int | float) or not math.isfinite(strength):
        raise CharacterError(f"steering strength {strength!r}: expected a finite number")
    return float(strength)


def _adder(layer: int, direction: Tensor, strength: float) -> Callable[..., Any]:
    """A forward hook adding ``strength * direction`` to a layer's hidden-state output."""
    shifts: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        hidden = output[0] if isinstance(output, tuple) else output
        if not isinstance(hidden, Tensor):
            raise CharacterError(
                f"decoder layer {layer} ({type(module).__name__}) returned {type(output).__name__}; "
                "expected a tensor or a tuple starting with the hidden states"
            )
        key = (hidden.device, hidden.dtype)
        if key not in shifts:  # scale in float32, then cast once per device/dtype
            shifts[key] = (direction.to(hidden.device) * strength).to(hidden.dtype)
        shifted = hidden + shifts[key]
        return (shifted, *output[1:]) if isinstance(output, tuple) else shifted

    return hook


@contextmanager
def steering(model: nn.Module, vector: SteeringVector, strength: float) -> Iterator[None]:
    """Add ``strength * direction`` to the residual stream of the vector's layers, at every position.

    Hooks go only on ``vector.layers`` and are prepended, so every other observer of a layer's
    output (the next layer, transformers' ``output_hidden_states`` capture, our activation
    reader) sees the steered stream. They are removed on exit, also when the body raises.
    """
    strength = check_strength(strength)
    vector.check_model(model)
    modules = decoder_layers(model)
    handles = []
    try:
        for layer in vector.layers:
            hook = _adder(layer, vector.directions[layer], strength)
            handles.append(modules[layer].register_forward_hook(hook, prepend=True))
        yield
    finally:
        for handle in handles:
            handle.remove()
