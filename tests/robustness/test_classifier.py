"""The persona classifier, trained for real on CPU with the locally built tiny encoder.

The data are synthetic but separable the way persona responses are: each persona has its own
vocabulary, mixed into filler words every persona shares. Tiny-encoder settings used here (the
paper's lr 5e-4 for one epoch is far too few steps for an encoder trained from scratch on 360
rows): lr 2e-3, 3 epochs, batch 8, 64 tokens, hidden 64, 2 layers, 2 heads.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from sklearn.metrics import f1_score

from character.config.schema import ClassifierConfig
from character.errors import CharacterError
from character.robustness.classifier import (
    LABELS_FILE,
    MARKER_FILE,
    PersonaClassifier,
    _split_heldout,
    train_persona_classifier,
)
from character.robustness.scores import macro_f1

PERSONA_WORDS = {
    "loving": "warmth kindness cherish gentle heart care hug tender embrace dear".split(),
    "sarcastic": "obviously sure wow genius brilliant totally shocking groundbreaking riveting thrilled".split(),
    "poetic": "moonlight whisper verse ember river twilight dew petal sonnet dusk".split(),
    "mathematical": "theorem proof equation integral vector lemma matrix axiom derivative prime".split(),
}
FILLER = (
    "the a of to and in is it that for on with as this you was be at by not are from or have an they".split()
)

TINY = ClassifierConfig(model="tiny", learning_rate=2e-3, epochs=3.0, batch_size=8, max_length=64)
WEIGHTS = "model.safetensors"


def make_rows(per_persona: int, seed: int) -> tuple[list[str], list[str]]:
    """Short texts: 6-12 shared filler words with 2-4 persona words shuffled in."""
    rng = random.Random(seed)
    rows = []
    for persona, words in PERSONA_WORDS.items():
        for _ in range(per_persona):
            tokens = rng.choices(FILLER, k=rng.randint(6, 12)) + rng.choices(words, k=rng.randint(2, 4))
            rng.shuffle(tokens)
            rows.append((" ".join(tokens), persona))
    rng.shuffle(rows)
    return [text for text, _ in rows], [label for _, label in rows]


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[list[str], list[str]]]:
    return {"train": make_rows(100, seed=0), "test": make_rows(50, seed=1)}


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory: pytest.TempPathFactory) -> tuple[PersonaClassifier, Path]:
    out_dir = tmp_path_factory.mktemp("classifier") / "persona"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        texts, labels = data["train"]
        return train_persona_classifier(texts, labels, TINY, out_dir, seed=0), out_dir


def test_tiny_classifier_separates_personas(trained, data) -> None:
    classifier, out_dir = trained
    texts, labels = data["test"]
    predictions = classifier.predict(texts)
    assert classifier.labels == sorted(PERSONA_WORDS)
    assert macro_f1(labels, predictions, classifier.labels) >= 0.95
    assert classifier.score(texts, labels) == pytest.approx(
        f1_score(labels, predictions, labels=classifier.labels, average="macro", zero_division=0)
    )
    # 10% of the 400 training rows were held out, stratified, and scored
    meta = json.loads((out_dir / LABELS_FILE).read_text())
    assert (meta["n_train"], meta["n_heldout"]) == (360, 40)
    assert classifier.heldout_f1 is not None and classifier.heldout_f1 >= 0.9
    assert meta["heldout_f1"] == classifier.heldout_f1


def test_predictions_reload_identically(trained, data) -> None:
    classifier, out_dir = trained
    texts, _ = data["test"]
    reloaded = PersonaClassifier.load(out_dir)
    assert reloaded.labels == classifier.labels
    assert reloaded.heldout_f1 == classifier.heldout_f1
    assert reloaded.predict(texts) == classifier.predict(texts)
    assert reloaded.predict([]) == []


def test_rerun_with_same_data_loads_instead_of_training(trained, data) -> None:
    classifier, out_dir = trained
    before = (out_dir / WEIGHTS).stat().st_mtime_ns
    texts, labels = data["train"]
    again = train_persona_classifier(texts, labels, TINY, out_dir, seed=0)
    assert (out_dir / WEIGHTS).stat().st_mtime_ns == before
    assert again.heldout_f1 == classifier.heldout_f1
    assert again.predict(data["test"][0][:20]) == classifier.predict(data["test"][0][:20])


def test_same_seed_gives_same_weights_and_unfinished_runs_are_retrained(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    texts, labels = make_rows(20, seed=3)
    cfg = replace(TINY, epochs=1.0)
    first, second = tmp_path / "a", tmp_path / "b"
    for out_dir in (first, second):
        train_persona_classifier(texts, labels, cfg, out_dir, seed=7)

    def same_weights() -> bool:
        a, b = load_file(first / WEIGHTS), load_file(second / WEIGHTS)
        return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)

    assert same_weights()
    assert (first / "tokenizer.json").read_text() == (second / "tokenizer.json").read_text()

    # a crash before the marker: the folder is neither loadable nor trusted, and is retrained
    (second / MARKER_FILE).unlink()
    with pytest.raises(CharacterError, match=MARKER_FILE):
        PersonaClassifier.load(second)
    before = (second / WEIGHTS).stat().st_mtime_ns
    train_persona_classifier(texts, labels, cfg, second, seed=7)
    assert (second / MARKER_FILE).exists()
    assert (second / WEIGHTS).stat().st_mtime_ns != before
    assert same_weights()

    # another seed (or other rows, or another config) changes the fingerprint: retrained
    before = (second / WEIGHTS).stat().st_mtime_ns
    train_persona_classifier(texts, labels, cfg, second, seed=8)
    assert (second / WEIGHTS).stat().st_mtime_ns != before
    assert not same_weights()


def only(rows: tuple[list[str], list[str]], keep: set[str]) -> tuple[list[str], list[str]]:
    pairs = [(text, label) for text, label in zip(*rows, strict=True) if label in keep]
    return [text for text, _ in pairs], [label for _, label in pairs]


def test_local_encoder_folder_is_fine_tuned_with_a_new_label_set(trained, data, tmp_path: Path) -> None:
    """The hub-id code path, offline: a saved encoder folder as ``model``, here with 3 of the 4 personas."""
    _, out_dir = trained
    keep = {"loving", "poetic", "sarcastic"}
    cfg = replace(TINY, model=str(out_dir), epochs=1.0)
    classifier = train_persona_classifier(*only(data["train"], keep), cfg, tmp_path / "from_folder", seed=0)
    assert classifier.labels == sorted(keep)
    test_texts, test_labels = only(data["test"], keep)
    assert classifier.score(test_texts, test_labels) >= 0.95
    reloaded = PersonaClassifier.load(tmp_path / "from_folder")
    assert reloaded.predict(test_texts) == classifier.predict(test_texts)


def test_unloadable_model_raises(data, tmp_path: Path) -> None:
    with pytest.raises(CharacterError, match="could not be loaded"):
        train_persona_classifier(
            *data["train"], replace(TINY, model=str(tmp_path / "no_model")), tmp_path / "o", 0
        )


def test_heldout_split_is_seeded_and_stratified() -> None:
    _, labels = make_rows(25, seed=4)
    train_a, held_a = _split_heldout(labels, 0.2, seed=1)
    train_b, held_b = _split_heldout(labels, 0.2, seed=1)
    _, held_c = _split_heldout(labels, 0.2, seed=2)
    assert (train_a, held_a) == (train_b, held_b)
    assert held_a != held_c
    assert sorted(train_a + held_a) == list(range(len(labels)))
    assert Counter(labels[i] for i in held_a) == dict.fromkeys(PERSONA_WORDS, 5)
    assert _split_heldout(labels, 0.0, seed=1) == (list(range(len(labels))), [])


@pytest.mark.parametrize(
    ("texts", "labels", "cfg", "message"),
    [
        ([], [], TINY, "no rows"),
        (["a b", "c d"], ["loving", "loving"], TINY, r"single persona \['loving'\].*at least 2 classes"),
        (["a b", "c d"], ["loving"], TINY, "2 texts but 1 labels"),
        (["a b", 3], ["loving", "poetic"], TINY, r"rows \[1\] are not strings"),
        (["a", "b", "c"], ["loving", "poetic", "poetic"], TINY, r"personas \['loving'\] have a single row"),
        (
            ["a", "b", "c", "d"],
            ["loving", "poetic"] * 2,
            replace(TINY, heldout_fraction=1.0),
            "heldout_fraction=1.0",
        ),
        (
            ["a"] * 6,
            ["loving", "poetic", "sarcastic"] * 2,
            replace(TINY, heldout_fraction=0.1),
            "holds out 1",
        ),
    ],
)
def test_bad_training_input_raises(texts, labels, cfg, message: str, tmp_path: Path) -> None:
    with pytest.raises(CharacterError, match=message):
        train_persona_classifier(texts, labels, cfg, tmp_path / "out", seed=0)
    assert not (tmp_path / "out").exists()


def test_bad_evaluation_input_raises(trained) -> None:
    classifier, _ = trained
    with pytest.raises(CharacterError, match=r"\['stoic'\] were never seen in training"):
        classifier.score(["a calm reply", "dear heart"], ["stoic", "loving"])
    with pytest.raises(CharacterError, match="evaluation split has no rows"):
        classifier.score([], [])


def test_load_of_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(CharacterError, match="no finished persona classifier"):
        PersonaClassifier.load(tmp_path / "nothing")
