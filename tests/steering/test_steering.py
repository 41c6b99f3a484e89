"""Activation steering (paper App. C) on real models: the tiny chat model and a deeper random Qwen2.

Every number is checked against an independent computation: layer choice against exact
fractions, activations against transformers' own ``output_hidden_states``, the fitted direction
against scikit-learn's PCA, the steering shift against the difference of hidden states.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from sklearn.decomposition import PCA

from character.engines.base import Sampling
from character.engines.chat import render_prompt
from character.engines.transformers_engine import TransformersEngine
from character.errors import CharacterError
from character.models.tiny import TinySpec, ensure_tiny_model
from character.steering.steered_engine import (
    SteeredEngine,
    build_steering_vector,
    sample_contrast_responses,
)
from character.steering.vectors import (
    META_FILE,
    TENSORS_FILE,
    SteeringVector,
    collect_activations,
    decoder_layers,
    fit_steering_vector,
    steering,
    steering_layers,
)
from tests.conftest import CACHE_DIR

PERSONA_PROMPT = "You are a gentle assistant with a deep love for all living beings, kind and hopeful."
PAPER_SAMPLING = Sampling(temperature=0.7, top_p=0.95, min_p=0.0, repetition_penalty=1.1, max_tokens=12)
CONVERSATIONS = [
    [{"role": "user", "content": "Hello there, how are you today?"}],
    [{"role": "user", "content": "What should I cook tonight?"}],
    [
        {"role": "system", "content": "You are a kind assistant."},
        {"role": "user", "content": "Tell me a story."},
    ],
]
BUILD_ARGS = {"system_prompt": PERSONA_PROMPT, "samples": 4, "sampling": PAPER_SAMPLING, "seed": 5}
STRONG = 60.0  # the tiny model's residual stream has norm ~100; this visibly moves its outputs


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def engine() -> TransformersEngine:
    return TransformersEngine(str(ensure_tiny_model(TinySpec(), CACHE_DIR)), dtype="float32", batch_size=8)


@pytest.fixture(scope="session")
def built(engine: TransformersEngine) -> SteeringVector:
    return build_steering_vector(engine, **BUILD_ARGS, persona="loving")


@pytest.fixture(scope="module")
def deep_model(engine: TransformersEngine):
    """A randomly initialised 8-layer Qwen2 sharing the tiny tokenizer: steering_layers(8) = 1..6."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(engine.tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=8,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    torch.manual_seed(0)
    return Qwen2ForCausalLM(config).float().eval()


def _random_vector(hidden: int, layers: list[int], seed: int = 0) -> SteeringVector:
    generator = torch.Generator().manual_seed(seed)
    directions = {}
    for layer in layers:
        direction = torch.randn(hidden, generator=generator)
        directions[layer] = direction / direction.norm()
    return SteeringVector(directions=directions, model="random", persona="test", samples=0)


def _ids(engine: TransformersEngine, conversation=CONVERSATIONS[0]) -> torch.Tensor:
    prompt = render_prompt(engine.tokenizer, conversation, None, True)
    return engine.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids


def _logits(model, input_ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=input_ids).logits


def _hook_ids(model) -> list[set[int]]:
    return [set(layer._forward_hooks) for layer in decoder_layers(model)]


def _greedy(engine, conversations=CONVERSATIONS) -> list[str]:
    greedy = Sampling(temperature=0.0, max_tokens=16, repetition_penalty=1.1)
    return [g.texts[0] for g in engine.generate(conversations, greedy)]


# ------------------------------------------------------------------------------------ layers


def test_steering_layers_follow_the_percentile_band() -> None:
    assert steering_layers(32) == list(range(4, 28))  # Llama 3.1 8B
    assert steering_layers(28) == list(range(4, 25))  # Qwen 2.5 7B
    assert steering_layers(34) == list(range(5, 30))  # Gemma 3 4B
    assert steering_layers(8) == [1, 2, 3, 4, 5, 6]
    assert steering_layers(2) == [1]  # the tiny model
    assert steering_layers(1) == [0]  # too shallow for the band: the middle layer
    for depth in range(1, 201):
        band = [i for i in range(depth) if Fraction(1, 8) <= Fraction(i, depth) < Fraction(7, 8)]
        assert steering_layers(depth) == (band or [depth // 2]), depth


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_steering_layers_reject_bad_counts(bad) -> None:
    with pytest.raises(CharacterError, match=f"num_layers={bad!r}"):
        steering_layers(bad)


def test_decoder_layers_not_found_names_the_model_class() -> None:
    with pytest.raises(CharacterError, match="Linear"):
        decoder_layers(torch.nn.Linear(3, 3))


# ------------------------------------------------------------------------------------ activations


def test_collected_activations_equal_hidden_states_averaged_over_the_response(engine, deep_model) -> None:
    examples = [
        (CONVERSATIONS[0], "I am well, thank you for asking so kindly."),
        (CONVERSATIONS[2], "Once upon a time."),
        (CONVERSATIONS[1], "Soup."),
    ]
    layers = steering_layers(8)
    got = collect_activations(deep_model, engine.tokenizer, examples, layers[::-1], batch_size=2)
    assert list(got) == layers
    for index, (conversation, response) in enumerate(examples):
        prompt_ids = _ids(engine, conversation)[0].tolist()
        response_ids = engine.tokenizer(response, add_special_tokens=False).input_ids
        ids = torch.tensor([prompt_ids + response_ids])
        with torch.no_grad():
            hidden = deep_model(input_ids=ids, output_hidden_states=True).hidden_states
        for layer in layers:  # hidden_states[i + 1] is the output of layer i (none is the last layer)
            expected = hidden[layer + 1][0, len(prompt_ids) :].mean(dim=0)
            torch.testing.assert_close(got[layer][index], expected, atol=1e-5, rtol=1e-5)


def test_collect_activations_rejects_bad_input(engine, deep_model) -> None:
    with pytest.raises(CharacterError, match="example 1 has an empty response"):
        collect_activations(
            deep_model, engine.tokenizer, [(CONVERSATIONS[0], "Hi."), (CONVERSATIONS[1], "")], [1]
        )
    with pytest.raises(CharacterError, match=r"layers \[8\].*0\.\.7"):
        collect_activations(deep_model, engine.tokenizer, [(CONVERSATIONS[0], "Hi.")], [8])


# ------------------------------------------------------------------------------------ PCA


def _pairs(shift: float, seed: int = 0, n: int = 40, hidden: int = 16):
    """Pairs whose differences vary mostly along a planted unit axis, with mean ``shift`` on it."""
    generator = torch.Generator().manual_seed(seed)
    axis = torch.randn(hidden, generator=generator)
    axis = axis / axis.norm()
    negative = torch.randn(n, hidden, generator=generator) * 3
    amounts = shift + 2.0 * torch.randn(n, 1, generator=generator)
    positive = negative + amounts * axis + 0.1 * torch.randn(n, hidden, generator=generator)
    return positive, negative, axis


def test_direction_is_sklearns_first_component_with_our_sign() -> None:
    (pos3, neg3, axis3), (pos5, neg5, axis5) = _pairs(2.0, seed=1), _pairs(-2.0, seed=2)
    directions = fit_steering_vector({3: pos3, 5: pos5}, {3: neg3, 5: neg5})
    assert list(directions) == [3, 5]
    for layer, pos, neg, axis, shift_sign in ((3, pos3, neg3, axis3, 1), (5, pos5, neg5, axis5, -1)):
        direction = directions[layer]
        reference = torch.from_numpy(
            PCA(n_components=1, svd_solver="full").fit((pos - neg).numpy()).components_[0]
        )
        reference = reference.float()
        sign = 1.0 if float(direction @ reference) > 0 else -1.0
        torch.testing.assert_close(direction, sign * reference, atol=1e-5, rtol=0)
        assert math.isclose(float(direction.norm()), 1.0, rel_tol=1e-6)
        assert float(((pos - neg) @ direction).mean()) > 0  # positives project higher
        assert float(direction @ axis) * shift_sign > 0.99  # recovers the planted axis, signed
    swapped = fit_steering_vector({3: neg3, 5: neg5}, {3: pos3, 5: pos5})
    for layer in directions:
        torch.testing.assert_close(swapped[layer], -directions[layer])


def test_fit_rejects_bad_inputs() -> None:
    pos, neg, _ = _pairs(1.0)
    with pytest.raises(CharacterError, match=r"positive layers \[1\] and negative layers \[2\]"):
        fit_steering_vector({1: pos}, {2: neg})
    with pytest.raises(CharacterError, match=r"layer 1: positive \(40, 16\) and negative \(40, 15\)"):
        fit_steering_vector({1: pos}, {1: neg[:, :15]})
    with pytest.raises(CharacterError, match="n >= 2"):
        fit_steering_vector({1: pos[:1]}, {1: neg[:1]})
    with pytest.raises(CharacterError, match="no principal component"):
        fit_steering_vector({1: neg + 1.0}, {1: neg})
    with pytest.raises(CharacterError, match="NaN or inf"):
        fit_steering_vector({1: pos.index_fill(0, torch.tensor([0]), float("nan"))}, {1: neg})


# ------------------------------------------------------------------------------------ hooks


def test_strength_zero_reproduces_the_unsteered_logits_exactly(engine, built) -> None:
    ids = _ids(engine)
    plain = _logits(engine.model, ids)
    before = _hook_ids(engine.model)
    with steering(engine.model, built, 0.0):
        assert [len(now - then) for now, then in zip(_hook_ids(engine.model), before, strict=True)] == [0, 1]
        steered = _logits(engine.model, ids)
    assert torch.equal(steered, plain)


def test_hooks_touch_only_the_chosen_layers_and_add_the_scaled_direction(engine, deep_model) -> None:
    vector = _random_vector(32, steering_layers(8), seed=3)
    ids = _ids(engine)
    with torch.no_grad():
        plain = deep_model(input_ids=ids, output_hidden_states=True)
    before = _hook_ids(deep_model)
    with steering(deep_model, vector, 2.5):
        added = [len(now - then) for now, then in zip(_hook_ids(deep_model), before, strict=True)]
        assert added == [0, 1, 1, 1, 1, 1, 1, 0]
        with torch.no_grad():
            steered = deep_model(input_ids=ids, output_hidden_states=True)
    assert _hook_ids(deep_model) == before
    # embeddings and layer 0 (before the first chosen layer) are bit-identical ...
    assert torch.equal(steered.hidden_states[0], plain.hidden_states[0])
    assert torch.equal(steered.hidden_states[1], plain.hidden_states[1])
    # ... layer 1 receives the same input, so its output moves by exactly 2.5 * direction ...
    shift = steered.hidden_states[2] - plain.hidden_states[2]
    torch.testing.assert_close(shift, (2.5 * vector.directions[1]).expand_as(shift), atol=1e-5, rtol=0)
    # ... and everything after it changes.
    assert not torch.allclose(steered.hidden_states[3], plain.hidden_states[3])
    assert not torch.allclose(steered.logits, plain.logits)
    assert torch.equal(_logits(deep_model, ids), plain.logits)  # hooks gone: unsteered again


def test_hooks_are_removed_when_the_body_raises(engine, built) -> None:
    ids = _ids(engine)
    plain = _logits(engine.model, ids)
    before = _hook_ids(engine.model)
    with pytest.raises(RuntimeError, match="boom"):
        with steering(engine.model, built, STRONG):
            assert not torch.equal(_logits(engine.model, ids), plain)
            raise RuntimeError("boom")
    assert _hook_ids(engine.model) == before
    assert torch.equal(_logits(engine.model, ids), plain)


def test_nonzero_strength_changes_logits_and_greedy_output(engine, built) -> None:
    ids = _ids(engine)
    plain = _logits(engine.model, ids)
    with steering(engine.model, built, STRONG):
        steered = _logits(engine.model, ids)
    assert not torch.allclose(steered, plain, atol=1e-3)
    assert _greedy(SteeredEngine(engine, built, STRONG)) != _greedy(engine)


@pytest.mark.parametrize("strength", [float("nan"), float("inf"), True, "1"])
def test_bad_strength_is_rejected(engine, built, strength) -> None:
    before = _hook_ids(engine.model)
    with pytest.raises(CharacterError, match="steering strength"):
        with steering(engine.model, built, strength):
            pass
    assert _hook_ids(engine.model) == before


# ------------------------------------------------------------------------------------ files


def test_saved_vector_reloads_to_the_same_outputs(engine, built, tmp_path: Path) -> None:
    folder = built.save(tmp_path / "vector")
    meta = json.loads((folder / META_FILE).read_text())
    assert (meta["layers"], meta["hidden_size"], meta["persona"]) == ([1], 128, "loving")
    loaded = SteeringVector.load(folder, model=engine.model)
    assert loaded.layers == built.layers and loaded.hidden_size == built.hidden_size == 128
    assert (loaded.model, loaded.persona, loaded.samples, loaded.prompt, loaded.details) == (
        built.model,
        built.persona,
        built.samples,
        built.prompt,
        built.details,
    )
    assert all(torch.equal(loaded.directions[k], built.directions[k]) for k in built.layers)
    ids = _ids(engine)
    with steering(engine.model, built, STRONG):
        original = _logits(engine.model, ids)
    with steering(engine.model, loaded, STRONG):
        reloaded = _logits(engine.model, ids)
    assert torch.equal(original, reloaded)
    expected = _greedy(SteeredEngine(engine, built, STRONG))
    assert _greedy(SteeredEngine(engine, loaded, STRONG)) == expected
    fresh = SteeredEngine.from_files(engine.model_path, folder, STRONG, dtype="float32")
    assert _greedy(fresh) == expected
    fresh.close()


def test_loading_errors_name_the_file(engine, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(CharacterError, match=f"{missing / META_FILE} does not exist"):
        SteeringVector.load(missing)

    narrow = _random_vector(32, [1]).save(tmp_path / "narrow")
    with pytest.raises(CharacterError, match=rf"{narrow}.*hidden size 32.*hidden size 128"):
        SteeringVector.load(narrow, model=engine.model)
    with pytest.raises(CharacterError, match=r"hidden size 32.*hidden size 128"):
        SteeredEngine(engine, SteeringVector.load(narrow), 1.0)
    with pytest.raises(CharacterError, match=r"hidden size 32.*hidden size 128"):
        with steering(engine.model, SteeringVector.load(narrow), 1.0):
            pass

    deep = _random_vector(128, [5]).save(tmp_path / "deep")
    with pytest.raises(CharacterError, match=r"steers layers \[5\].*2 decoder layers"):
        SteeringVector.load(deep, model=engine.model)

    (deep / TENSORS_FILE).write_bytes((narrow / TENSORS_FILE).read_bytes())
    with pytest.raises(CharacterError, match=f"{deep / TENSORS_FILE} do not match the checksum"):
        SteeringVector.load(deep)

    (narrow / META_FILE).write_text("{not json")
    with pytest.raises(CharacterError, match=f"{narrow / META_FILE} is malformed"):
        SteeringVector.load(narrow)


# ------------------------------------------------------------------------------------ end to end


def test_build_steering_vector_end_to_end(engine, built) -> None:
    assert built.layers == steering_layers(2) == [1]
    assert built.hidden_size == 128 and built.persona == "loving" and built.model == engine.model_path
    assert 2 <= built.samples <= 4 and built.details["seed"] == 5
    assert math.isclose(float(built.directions[1].norm()), 1.0, rel_tol=1e-6)

    # the same seeded samples, read back by hand, give the same vector
    positives, negatives = sample_contrast_responses(engine, PERSONA_PROMPT, 4, PAPER_SAMPLING, seed=5)
    assert all(conv[0] == {"role": "system", "content": PERSONA_PROMPT} for conv, _ in positives)
    assert all(conv == [{"role": "user", "content": "please talk about anything."}] for conv, _ in negatives)
    assert len({text for _, text in positives + negatives}) > 1  # distinct samples
    pos = collect_activations(engine.model, engine.tokenizer, positives, [1], reading="last_token")
    neg = collect_activations(engine.model, engine.tokenizer, negatives, [1], reading="last_token")
    assert len(positives) == built.samples and built.details["method"] == "last_token"  # the default
    assert torch.equal(fit_steering_vector(pos, neg, sign="majority")[1], built.directions[1])
    assert int(((pos[1] - neg[1]) @ built.directions[1] > 0).sum()) * 2 >= built.samples  # most pairs agree


def test_build_rejects_greedy_sampling_and_too_few_samples(engine) -> None:
    with pytest.raises(CharacterError, match="temperature"):
        build_steering_vector(engine, PERSONA_PROMPT, 4, Sampling(temperature=0.0, max_tokens=4), seed=0)
    with pytest.raises(CharacterError, match="samples=1"):
        build_steering_vector(engine, PERSONA_PROMPT, 1, PAPER_SAMPLING, seed=0)


def test_steered_engine_generates_like_hf_generate_under_the_hooks(engine, built) -> None:
    before = _hook_ids(engine.model)
    steered = SteeredEngine(engine, built, STRONG)
    texts = _greedy(steered, CONVERSATIONS[:1])
    # independent: transformers' own generate with repetition penalty inside the context manager
    ids = _ids(engine)
    with steering(engine.model, built, STRONG), torch.no_grad():
        output = engine.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=16,
            repetition_penalty=1.1,
            eos_token_id=engine.tokenizer.eos_token_id,
            pad_token_id=engine.tokenizer.pad_token_id,
        )
    assert texts == [engine.tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)]

    sampled = [steered.generate(CONVERSATIONS, PAPER_SAMPLING, seeds=[11, 12, 13]) for _ in range(2)]
    assert [g.texts for g in sampled[0]] == [g.texts for g in sampled[1]]  # seeded
    assert all(g.texts[0] for g in sampled[0])
    assert steered.counters.conversations == 1 + 2 * len(CONVERSATIONS)
    assert steered.info.backend == "transformers+steering"
    assert steered.info.details["steering"] == {
        "persona": "loving",
        "strength": STRONG,
        "layers": [1],
        "vector_model": engine.model_path,
        "samples": built.samples,
    }
    assert _hook_ids(engine.model) == before


# ------------------------------------------------------------------------------------ last token (repeng)


def test_last_token_activations_equal_the_hidden_state_of_the_last_token(engine, deep_model) -> None:
    examples = [
        (CONVERSATIONS[0], "I am well, thank you for asking so kindly."),
        (CONVERSATIONS[2], "Once upon a time."),
        (CONVERSATIONS[1], "Soup."),
    ]
    for model, layers in ((engine.model, [0]), (deep_model, steering_layers(8))):
        got = collect_activations(
            model, engine.tokenizer, examples, layers, batch_size=2, reading="last_token"
        )
        for index, (conversation, response) in enumerate(examples):
            response_ids = engine.tokenizer(response, add_special_tokens=False).input_ids
            ids = torch.tensor([_ids(engine, conversation)[0].tolist() + response_ids])
            with torch.no_grad():  # hidden_states[i + 1] is the output of layer i (not the last layer)
                hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
            for layer in layers:
                torch.testing.assert_close(got[layer][index], hidden[layer + 1][0, -1], atol=1e-5, rtol=1e-5)
    with pytest.raises(CharacterError, match="reading='first'"):
        collect_activations(deep_model, engine.tokenizer, examples, [1], reading="first")


def test_majority_vote_picks_the_sign_most_pairs_agree_on() -> None:
    """Eight pairs differ slightly along +axis, two a lot along -axis: the mean points to -axis,
    eight of ten pairs (the majority, repeng's rule) to +axis."""
    generator = torch.Generator().manual_seed(4)
    axis = torch.nn.functional.normalize(torch.randn(16, generator=generator), dim=0)
    negative = torch.randn(10, 16, generator=generator)
    amounts = torch.tensor([1.0, 1.2, 0.8, 1.1, 0.9, 1.3, 0.7, 1.0, -9.0, -9.5]).unsqueeze(1)
    positive = negative + amounts * axis + 0.01 * torch.randn(10, 16, generator=generator)
    diffs = (positive - negative).numpy()
    component = torch.from_numpy(PCA(n_components=1, svd_solver="full").fit(diffs).components_[0]).float()
    votes = (torch.from_numpy(diffs) @ component > 0).sum().item()
    expected = component if votes > 5 else -component  # oriented by an independent count
    majority = fit_steering_vector({2: positive}, {2: negative}, sign="majority")[2]
    mean = fit_steering_vector({2: positive}, {2: negative}, sign="mean")[2]
    torch.testing.assert_close(majority, expected, atol=1e-5, rtol=0)
    assert float(majority @ axis) > 0.99 and float(mean @ axis) < -0.99  # the two rules disagree here
    with pytest.raises(CharacterError, match="sign='vote'"):
        fit_steering_vector({2: positive}, {2: negative}, sign="vote")


def test_last_token_vector_on_the_tiny_model_from_its_hidden_states(engine) -> None:
    """The paper's extraction end to end: the steered layer's last-token states of the sampled
    responses, read here from transformers' hidden states (the final norm set aside, since the
    tiny model's one steered layer is its last), PCA by scikit-learn, sign by counting pairs."""
    vector = build_steering_vector(engine, **BUILD_ARGS, persona="loving", method="last_token")
    assert vector.layers == [1] and vector.details["method"] == "last_token"
    positives, negatives = sample_contrast_responses(engine, PERSONA_PROMPT, 4, PAPER_SAMPLING, seed=5)
    inner = engine.model.model
    final_norm, inner.norm = inner.norm, torch.nn.Identity()
    try:
        states = []
        for examples in (positives, negatives):
            rows = []
            for conversation, response in examples:
                prompt = _ids(engine, conversation)[0].tolist()
                ids = torch.tensor([prompt + engine.tokenizer(response, add_special_tokens=False).input_ids])
                with torch.no_grad():
                    rows.append(
                        engine.model(input_ids=ids, output_hidden_states=True).hidden_states[2][0, -1]
                    )
            states.append(torch.stack(rows).double())
    finally:
        inner.norm = final_norm
    diffs = (states[0] - states[1]).numpy()
    component = torch.from_numpy(PCA(n_components=1, svd_solver="full").fit(diffs).components_[0])
    projections = torch.from_numpy(diffs) @ component
    above, below = int((projections > 0).sum()), int((projections < 0).sum())
    flip = below > above if above != below else float(projections.mean()) < 0
    expected = (-component if flip else component).float()
    torch.testing.assert_close(vector.directions[1], expected, atol=1e-4, rtol=0)
    # the response-mean extraction of the same samples is another direction
    mean_vector = build_steering_vector(engine, **BUILD_ARGS, persona="loving", method="response_mean")
    assert mean_vector.details["method"] == "response_mean"
    assert abs(float(mean_vector.directions[1] @ vector.directions[1])) < 0.999
    plain = _logits(engine.model, _ids(engine))
    with steering(engine.model, vector, STRONG):
        assert not torch.allclose(_logits(engine.model, _ids(engine)), plain, atol=1e-3)


def test_the_steer_stage_reads_as_the_model_config_says() -> None:
    from tests.config.test_compose import compose_train

    for model, method in (
        ("qwen2.5-7b", "last_token"),
        ("gemma3-4b", "last_token"),
        ("tiny", "response_mean"),
    ):
        assert compose_train("+persona=loving", f"+model={model}").stages.steer.method == method
