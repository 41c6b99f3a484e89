"""Generation with activation steering, and fitting the vector from the model's own samples.

The steering baseline (paper App. C) needs two things from the transformers backend: sampled
responses with and without the persona's system prompt to fit a vector from, and generation with
the vector added to the residual stream. Both reuse ``TransformersEngine`` unchanged (its
batching, chat template, seeding and sampling), so a steered response differs from a plain one
only by the hooks, not by how the prompt was rendered or sampled.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from character.engines.base import Conversation, Engine, EngineInfo, Generation, LoraAdapter, Sampling
from character.engines.transformers_engine import TransformersEngine
from character.errors import CharacterError
from character.steering.vectors import (
    DEFAULT_PROMPT,
    LAST_TOKEN,
    STEERING_METHODS,
    SteeringVector,
    check_strength,
    collect_activations,
    decoder_layers,
    fit_steering_vector,
    steering,
    steering_layers,
)

Example = tuple[Conversation, str]


class SteeredEngine(Engine):
    """A ``TransformersEngine`` whose every generation runs with a steering vector applied.

    The paper samples steered responses with temperature 0.7, top_p 0.95, min_p 0.0 and
    repetition_penalty 1.1; those come in through ``Sampling`` like for any engine. The wrapped
    engine is owned: ``close`` releases it.
    """

    def __init__(self, base: TransformersEngine, vector: SteeringVector, strength: float) -> None:
        super().__init__()
        vector.check_model(base.model, source=f"steering vector for persona {vector.persona!r}")
        self.base = base
        self.vector = vector
        self.strength = check_strength(strength)

    @classmethod
    def from_files(
        cls, model_path: str, vector_path: Path | str, strength: float, **engine_kwargs: Any
    ) -> SteeredEngine:
        """Load the model with ``TransformersEngine(model_path, **engine_kwargs)`` and the vector."""
        base = TransformersEngine(model_path, **engine_kwargs)
        return cls(base, SteeringVector.load(vector_path, model=base.model), strength)

    @property
    def info(self) -> EngineInfo:
        base = self.base.info
        steering_info = {
            "persona": self.vector.persona,
            "strength": self.strength,
            "layers": self.vector.layers,
            "vector_model": self.vector.model,
            "samples": self.vector.samples,
        }
        return EngineInfo(
            backend=f"{base.backend}+steering",
            model=base.model,
            details={**base.details, "steering": steering_info},
        )

    def _generate(
        self,
        conversations: list[Conversation],
        sampling: Sampling,
        prefills: list[str | None],
        lora: LoraAdapter | None,
        seeds: list[int | None],
    ) -> list[Generation]:
        with steering(self.base.model, self.vector, self.strength):
            return self.base.generate(conversations, sampling, prefills, lora, seeds)

    def close(self) -> None:
        self.base.close()


def _check_count(samples: int) -> int:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise CharacterError(f"samples={samples!r}: expected an integer >= 2 (PCA needs at least two pairs)")
    return samples


def sample_contrast_responses(
    engine: Engine,
    system_prompt: str,
    samples: int,
    sampling: Sampling,
    seed: int,
    prompt: str = DEFAULT_PROMPT,
) -> tuple[list[Example], list[Example]]:
    """``samples`` responses to ``prompt`` with the persona system prompt, and as many without.

    Each response is its own request with its own seed (``seed + i`` for the persona side,
    ``seed + samples + i`` for the plain side), so the set is reproducible and does not depend
    on batching on backends that seed per request. Empty responses carry no activations and are
    dropped; the two sides are then paired by index up to the shorter one.
    """
    _check_count(samples)
    for name, text in (("system_prompt", system_prompt), ("prompt", prompt)):
        if not isinstance(text, str) or not text.strip():
            raise CharacterError(f"{name}={text!r}: expected non-empty text")
    if sampling.greedy:
        raise CharacterError(
            "sampling.temperature=0 gives identical samples, which have no principal component; "
            "expected temperature > 0 (the paper samples at 0.7)"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise CharacterError(f"seed={seed!r}: expected an integer")
    persona_conversation = [{"role": "system", "content": system_prompt}, {"role": "user", "content": prompt}]
    plain_conversation = [{"role": "user", "content": prompt}]
    single = replace(sampling, n=1, seed=seed)
    sides = []
    for offset, conversation in ((0, persona_conversation), (samples, plain_conversation)):
        seeds: list[int | None] = [seed + offset + i for i in range(samples)]
        generations = engine.generate([conversation] * samples, single, seeds=seeds)
        sides.append([(conversation, g.texts[0]) for g in generations if g.texts[0]])
    positives, negatives = sides
    pairs = min(len(positives), len(negatives))
    if pairs < 2:
        raise CharacterError(
            f"only {len(positives)} persona and {len(negatives)} plain responses of {samples} were "
            "non-empty; expected at least 2 of each (raise samples or max_tokens)"
        )
    return positives[:pairs], negatives[:pairs]


def _adapters_disabled(model: nn.Module) -> contextlib.AbstractContextManager[Any]:
    """Read activations of the base model even if the engine last ran with a PEFT adapter."""
    if callable(getattr(model, "get_base_model", None)) and callable(getattr(model, "disable_adapter", None)):
        return model.disable_adapter()
    return contextlib.nullcontext()


def build_steering_vector(
    engine: TransformersEngine,
    system_prompt: str,
    samples: int,
    sampling: Sampling,
    seed: int,
    prompt: str = DEFAULT_PROMPT,
    *,
    persona: str = "custom",
    batch_size: int = 8,
    method: str = LAST_TOKEN,
) -> SteeringVector:
    """Fit a persona's steering vector on the model the engine runs (paper App. C).

    Positives are the persona-prompted responses read in their persona-prompted conversation;
    negatives are the plain responses in the plain conversation. At the layers
    ``steering_layers`` chooses, each response contributes its activation as ``method`` reads it
    (``response_mean``: averaged over its tokens; ``last_token``: its last token's, the paper's),
    then ``fit_steering_vector`` takes the first principal component of the paired differences,
    oriented as that method does (mean difference; majority vote).
    """
    if method not in STEERING_METHODS:
        raise CharacterError(f"method={method!r}: expected one of {sorted(STEERING_METHODS)}")
    reading, sign = STEERING_METHODS[method]
    layers = steering_layers(len(decoder_layers(engine.model)))
    positives, negatives = sample_contrast_responses(engine, system_prompt, samples, sampling, seed, prompt)
    with _adapters_disabled(engine.model):
        activations = [
            collect_activations(
                engine.model,
                engine.tokenizer,
                examples,
                layers,
                supports_system_role=engine.supports_system_role,
                batch_size=batch_size,
                reading=reading,
            )
            for examples in (positives, negatives)
        ]
    directions = fit_steering_vector(*activations, sign=sign)
    details = {
        "method": method,
        "seed": seed,
        "requested_samples": samples,
        "sampling": replace(sampling, n=1, seed=seed).as_dict(),
        "system_prompt_sha256": hashlib.sha256(system_prompt.encode()).hexdigest(),
    }
    return SteeringVector(
        directions=directions,
        model=engine.model_path,
        persona=persona,
        samples=len(positives),
        prompt=prompt,
        details=details,
    )
