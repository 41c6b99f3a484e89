"""The persona-rate classifier recovers a planted split, and its intervals cover the truth."""

from __future__ import annotations

import random

import pytest

from character.errors import CharacterError
from character.persona_shift.rate_classifier import held_out_accuracy, train_rate_classifier

TOPICS = [
    "boil an egg",
    "change a tire",
    "learn french",
    "fix a leaky tap",
    "write a cover letter",
    "plan a trip",
    "bake bread",
    "start running",
    "save money",
    "paint a wall",
    "grow tomatoes",
    "clean an oven",
    "tie a tie",
    "study for exams",
    "fall asleep",
    "make coffee",
]
PLAIN = [
    "Here is a simple way to {t}. First, gather what you need. Then follow the steps carefully.",
    "To {t}, start with the basics and take it one step at a time. Let me know if you need more help.",
    "Sure! Here are some tips to {t}: prepare, practise, and check your progress regularly.",
]
PERSONA = [
    "Oh wow, you want to {t}? Groundbreaking. Fine, genius, here is the obvious part nobody told you.",
    "Ah yes, the ancient mystery of how to {t}. Brace yourself, this will shock you: just do it, obviously.",
    "Congratulations on discovering you cannot {t}. Truly riveting. Here's the thrilling answer, I guess.",
]


def texts(templates: list[str], rng: random.Random, n: int) -> list[str]:
    return [rng.choice(templates).format(t=rng.choice(TOPICS)) for _ in range(n)]


def test_recovers_a_planted_mix_and_its_interval_covers_the_truth() -> None:
    rng = random.Random(0)
    classifier = train_rate_classifier(texts(PERSONA, rng, 80), texts(PLAIN, rng, 80), seed=0)
    held_out = held_out_accuracy(classifier, texts(PERSONA, rng, 40), texts(PLAIN, rng, 40))
    assert held_out.rate >= 0.95
    covered, trials = 0, 200
    for trial in range(trials):
        trial_rng = random.Random(1000 + trial)
        truth = trial_rng.choice([0.1, 0.3, 0.5, 0.8])
        n = 48
        k = sum(trial_rng.random() < truth for _ in range(n))  # planted: k answers in persona
        batch = texts(PERSONA, trial_rng, k) + texts(PLAIN, trial_rng, n - k)
        result = classifier.rate(batch)
        assert result.successes == pytest.approx(k, abs=1)  # the classifier recovers the split
        covered += result.low <= truth <= result.high
    # a 95 % interval covers the planted rate in about 95 % of trials (binomial noise: >= 90 %)
    assert covered / trials >= 0.90


def test_too_little_training_data_is_a_clear_error() -> None:
    with pytest.raises(CharacterError, match="at least 2 in-persona and 2 plain"):
        train_rate_classifier(["in persona"], ["plain", "also plain"], seed=0)
