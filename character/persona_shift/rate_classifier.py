"""The persona-rate classifier: is a response written in the persona or as the plain assistant?

It is trained on the job's own distillation data: the teacher's answers (the constitution in the
system prompt: in persona) against the student's answers to the same training prompts (no system
prompt: plain). That is exactly the contrast distillation teaches, and it needs no judge model, so
it works for a 135M model as well as for an 8B one. A TF-IDF bag of word and character n-grams with
logistic regression (scikit-learn) is light, trains in seconds on a CPU, and is hard to fool with
fluent text that carries no persona; it is applied only to responses to held-out prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from character.errors import CharacterError
from character.persona_shift.intervals import Proportion, proportion

IN_PERSONA, PLAIN = 1, 0


@dataclass
class PersonaRateClassifier:
    """A fitted scikit-learn pipeline and the sizes it was trained on."""

    pipeline: object
    n_persona: int
    n_plain: int

    def in_persona(self, texts: Sequence[str]) -> list[bool]:
        if not texts:
            return []
        return [bool(label == IN_PERSONA) for label in self.pipeline.predict(list(texts))]

    def rate(self, texts: Sequence[str]) -> Proportion:
        """The share of ``texts`` judged in persona, with its 95 % interval."""
        verdicts = self.in_persona(texts)
        return proportion(sum(verdicts), len(verdicts))


def train_rate_classifier(
    persona_texts: Sequence[str], plain_texts: Sequence[str], seed: int
) -> PersonaRateClassifier:
    """Fit on in-persona vs plain texts (balanced class weights: the sets may differ in size)."""
    persona_texts = [t for t in persona_texts if t and t.strip()]
    plain_texts = [t for t in plain_texts if t and t.strip()]
    if len(persona_texts) < 2 or len(plain_texts) < 2:
        raise CharacterError(
            f"the persona-rate classifier needs at least 2 in-persona and 2 plain training texts; got "
            f"{len(persona_texts)} and {len(plain_texts)} (check the dpo_data stage's train.jsonl)."
        )
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=1, sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True),
    )
    model = make_pipeline(
        features, LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced", random_state=seed)
    )
    texts = list(persona_texts) + list(plain_texts)
    labels = [IN_PERSONA] * len(persona_texts) + [PLAIN] * len(plain_texts)
    model.fit(texts, labels)
    return PersonaRateClassifier(model, len(persona_texts), len(plain_texts))


def held_out_accuracy(
    classifier: PersonaRateClassifier, persona_texts: Sequence[str], plain_texts: Sequence[str]
) -> Proportion:
    """How often the classifier labels held-out teacher and student answers correctly."""
    right = sum(classifier.in_persona(persona_texts)) + sum(not v for v in classifier.in_persona(plain_texts))
    return proportion(right, len(persona_texts) + len(plain_texts))
