"""The persona classifier of the robustness evaluation (paper §3.2, App. C).

The paper fine-tunes ModernBERT-base to say which persona a response was written in, trains it on
the non-adversarial responses, and reads its macro-F1 on the adversarial splits as a measure of how
deeply the persona was learned. This module trains that classifier with the transformers
``Trainer``, saves it with its label set, and reloads it for prediction. With ``model="tiny"`` the
encoder (a small ModernBERT) and its WordPiece tokenizer are built here from the training texts, so
the whole evaluation also runs with no model hub.

Training is skipped when ``out_dir`` already holds a finished classifier for the same data, config
and seed: the marker file that says so is written last, so a folder left half-written by a crash
is retrained, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from character.config.schema import ClassifierConfig
from character.errors import CharacterError
from character.io import atomic_write_json
from character.robustness.scores import macro_f1

FORMAT_VERSION = 1
LABELS_FILE = "labels.json"
MARKER_FILE = "classifier_done.json"  # written last: its presence means every other file is complete

TINY_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@dataclass
class PersonaClassifier:
    """A trained classifier on disk: its folder, its persona labels (the model's class order)."""

    directory: Path
    labels: list[str]
    heldout_f1: float | None = None  # macro-F1 on the held-out slice of the training split
    batch_size: int = 8
    max_length: int = 512
    _model: Any = field(default=None, repr=False)
    _tokenizer: Any = field(default=None, repr=False)

    @classmethod
    def load(cls, directory: Path | str) -> PersonaClassifier:
        """Open a finished classifier folder; the weights are loaded on the first ``predict``."""
        directory = Path(directory)
        if not (directory / MARKER_FILE).exists():
            raise CharacterError(
                f"{directory} holds no finished persona classifier (no {MARKER_FILE}); "
                "train one with train_persona_classifier"
            )
        meta = json.loads((directory / LABELS_FILE).read_text())
        return cls(
            directory=directory,
            labels=list(meta["labels"]),
            heldout_f1=meta.get("heldout_f1"),
            batch_size=int(meta.get("batch_size", 8)),
            max_length=int(meta.get("max_length", 512)),
        )

    def _ensure_loaded(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(self.directory)
        model = AutoModelForSequenceClassification.from_pretrained(self.directory)
        self._model = model.to("cuda" if torch.cuda.is_available() else "cpu")
        saved = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if saved != self.labels:
            raise CharacterError(
                f"{self.directory}: the model's labels {saved} differ from {LABELS_FILE} {self.labels}; "
                "the folder is inconsistent, retrain the classifier"
            )

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The most likely persona of each text, in batches of ``batch_size`` and without gradients."""
        import torch

        _check_texts(texts)
        if not texts:
            return []
        self._ensure_loaded()
        model, tokenizer = self._model, self._tokenizer
        model.eval()
        device = next(model.parameters()).device
        predictions: list[str] = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = tokenizer(
                    list(texts[start : start + self.batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                logits = model(
                    input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
                ).logits
                predictions.extend(self.labels[i] for i in logits.argmax(dim=-1).tolist())
        return predictions

    def score(self, texts: Sequence[str], labels: Sequence[str]) -> float:
        """Macro-F1 of the predictions on one split; labels the classifier never saw are an error."""
        _check_rows(texts, labels, "evaluation split")
        known = set(self.labels)
        unseen = sorted(set(labels) - known)
        if unseen:
            raise CharacterError(
                f"evaluation labels {unseen} were never seen in training; the classifier knows {self.labels}"
            )
        return macro_f1(list(labels), self.predict(texts), self.labels)


def _check_texts(texts: Sequence[str]) -> None:
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
    if bad:
        raise CharacterError(f"texts at rows {bad[:5]} are not strings; expected one response string per row")


def _check_rows(texts: Sequence[str], labels: Sequence[str], what: str) -> None:
    if len(texts) != len(labels):
        raise CharacterError(
            f"{what}: {len(texts)} texts but {len(labels)} labels; expected one label per text"
        )
    if not texts:
        raise CharacterError(f"{what} has no rows; expected (text, persona label) pairs")
    _check_texts(texts)
    bad = [i for i, label in enumerate(labels) if not isinstance(label, str) or not label]
    if bad:
        raise CharacterError(f"{what}: labels at rows {bad[:5]} are not non-empty strings (persona names)")


def _config_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain data (a ``ClassifierConfig`` or the Hydra node of one)."""
    if is_dataclass(cfg):
        return asdict(cfg)
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def data_fingerprint(texts: Sequence[str], labels: Sequence[str], cfg: Any, seed: int) -> str:
    """Hash of everything a trained classifier depends on; equal hashes make retraining pointless."""
    payload = json.dumps(
        {
            "version": FORMAT_VERSION,
            "texts": list(texts),
            "labels": list(labels),
            "config": _config_dict(cfg),
            "seed": seed,
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _finished_fingerprint(out_dir: Path) -> str | None:
    try:
        return json.loads((out_dir / MARKER_FILE).read_text())["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _split_heldout(labels: Sequence[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Stratified, seeded (train, held-out) row indices; every persona keeps rows on both sides."""
    from sklearn.model_selection import train_test_split

    indices = list(range(len(labels)))
    if fraction == 0:
        return indices, []
    counts = Counter(labels)
    rare = sorted(label for label, count in counts.items() if count < 2)
    if rare:
        raise CharacterError(
            f"personas {rare} have a single row, too few to hold out heldout_fraction={fraction} "
            "stratified; give every persona at least 2 rows or set heldout_fraction=0"
        )
    n_test = math.ceil(fraction * len(labels))
    if n_test < len(counts) or len(labels) - n_test < len(counts):
        raise CharacterError(
            f"heldout_fraction={fraction} of {len(labels)} rows holds out {n_test}, but both sides of a "
            f"stratified split need at least one row per persona ({len(counts)}); "
            "change heldout_fraction or add rows"
        )
    train_idx, test_idx = train_test_split(
        indices, test_size=fraction, stratify=list(labels), random_state=seed
    )
    return sorted(train_idx), sorted(test_idx)


def _tiny_vocab(texts: Sequence[str], size: int, normalizer, pre_tokenizer) -> dict[str, int]:
    """Special tokens, every character (alone and as a ``##`` continuation), then the most frequent words.

    Counted here rather than with ``WordPieceTrainer``, whose merges break ties in hash-map order
    and so differ from run to run; ties between words are broken alphabetically, so equal texts
    give an equal vocabulary. The characters always fit (no word ever becomes ``[UNK]``), so the
    vocabulary can exceed ``size`` when the texts use more distinct characters than it allows.
    """
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({char for word in counts for char in word})
    tokens = TINY_SPECIAL_TOKENS + chars + [f"##{char}" for char in chars]
    taken = set(tokens)
    ranked = [
        word for word, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if word not in taken
    ]
    tokens += ranked[: max(size - len(tokens), 0)]
    return {token: i for i, token in enumerate(tokens)}


def _build_tiny_tokenizer(texts: Sequence[str], cfg: Any):
    """A lower-cased WordPiece tokenizer over the training texts' words (deterministic for equal input)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    vocab = _tiny_vocab(texts, cfg.tiny_vocab, normalizer, pre_tokenizer)
    tokenizer = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=cfg.max_length,
        model_input_names=["input_ids", "attention_mask"],
    )


def _build_tiny_model(tokenizer, cfg: Any, labels: list[str]):
    """A small ModernBERT (the paper's architecture) with random weights; call after seeding."""
    from transformers import AutoModelForSequenceClassification, ModernBertConfig

    config = ModernBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.tiny_hidden,
        intermediate_size=2 * cfg.tiny_hidden,
        num_hidden_layers=cfg.tiny_layers,
        num_attention_heads=cfg.tiny_heads,
        max_position_embeddings=cfg.max_length,
        pad_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id,
        bos_token_id=None,  # an encoder generates nothing; Trainer would otherwise "align" these
        eos_token_id=None,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    return AutoModelForSequenceClassification.from_config(config)


def _load_pretrained(cfg: Any, labels: list[str]):
    """Tokenizer and encoder from a hub id or local path, with a fresh (seeded) head over ``labels``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(cfg.model)
        model = AutoModelForSequenceClassification.from_pretrained(
            cfg.model,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            ignore_mismatched_sizes=True,  # a folder that is itself a classifier gets a new head
        )
    except (OSError, ValueError) as error:  # missing folder/offline hub; malformed hub id
        raise CharacterError(
            f"classifier model {cfg.model!r} could not be loaded ({error}); expected a hub id, a local "
            "folder with an encoder, or 'tiny'"
        ) from error
    return tokenizer, model


def _use_bf16(requested: bool) -> bool:
    """bf16 mixed precision only on a GPU that supports it.

    ``Trainer`` refuses ``bf16=True`` without such a GPU unless forced onto the CPU, and CPU bf16
    autocast is slower than fp32 there, so CPUs train in fp32 whatever the config says.
    """
    import torch

    return requested and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def _fit(
    model, tokenizer, texts: list[str], label_ids: list[int], cfg: Any, seed: int, work_dir: Path
) -> None:
    import torch
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    dataset = Dataset.from_dict({"text": texts, "label": label_ids}).map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=cfg.max_length),
        batched=True,
        remove_columns=["text"],
    )
    args = TrainingArguments(
        output_dir=str(work_dir),
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        bf16=_use_bf16(cfg.bf16),
        seed=seed,
        data_seed=seed,
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
    )
    trainer.train()


def train_persona_classifier(
    texts: Sequence[str], labels: Sequence[str], cfg: ClassifierConfig, out_dir: Path, seed: int
) -> PersonaClassifier:
    """Fine-tune a persona classifier on (text, persona) rows and save it in ``out_dir``.

    The label set is the sorted unique labels. A stratified, seeded ``cfg.heldout_fraction`` of the
    rows is kept out of training and its macro-F1 reported as ``heldout_f1``. When ``out_dir``
    already holds a finished classifier for the same rows, config and seed, it is loaded instead.
    """
    import tempfile

    _check_rows(texts, labels, "training split")
    label_set = sorted(set(labels))
    if len(label_set) < 2:
        raise CharacterError(
            f"the training split has a single persona {label_set}; a classifier needs at least 2 classes"
        )
    if not 0 <= cfg.heldout_fraction < 1:
        raise CharacterError(f"heldout_fraction={cfg.heldout_fraction}; expected a share in [0, 1)")
    out_dir = Path(out_dir)
    fingerprint = data_fingerprint(texts, labels, cfg, seed)
    if _finished_fingerprint(out_dir) == fingerprint:
        return PersonaClassifier.load(out_dir)

    train_idx, heldout_idx = _split_heldout(labels, cfg.heldout_fraction, seed)
    from transformers import set_seed

    set_seed(seed)  # the encoder init (tiny) or the new classification head (pretrained)
    if cfg.model == "tiny":
        tokenizer = _build_tiny_tokenizer([texts[i] for i in train_idx], cfg)
        model = _build_tiny_model(tokenizer, cfg, label_set)
    else:
        tokenizer, model = _load_pretrained(cfg, label_set)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER_FILE).unlink(missing_ok=True)  # from here on the folder is unfinished
    label_ids = {label: i for i, label in enumerate(label_set)}
    with tempfile.TemporaryDirectory(prefix=".trainer-", dir=out_dir) as work_dir:
        _fit(
            model,
            tokenizer,
            [texts[i] for i in train_idx],
            [label_ids[labels[i]] for i in train_idx],
            cfg,
            seed,
            Path(work_dir),
        )
    classifier = PersonaClassifier(
        directory=out_dir,
        labels=label_set,
        batch_size=cfg.batch_size,
        max_length=cfg.max_length,
        _model=model,
        _tokenizer=tokenizer,
    )
    if heldout_idx:
        classifier.heldout_f1 = classifier.score(
            [texts[i] for i in heldout_idx], [labels[i] for i in heldout_idx]
        )

    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    meta = {
        "labels": label_set,
        "heldout_f1": classifier.heldout_f1,
        "n_train": len(train_idx),
        "n_heldout": len(heldout_idx),
        "batch_size": cfg.batch_size,
        "max_length": cfg.max_length,
        "model": cfg.model,
        "seed": seed,
    }
    atomic_write_json(out_dir / LABELS_FILE, meta)
    atomic_write_json(out_dir / MARKER_FILE, {"fingerprint": fingerprint, "version": FORMAT_VERSION})
    return classifier
