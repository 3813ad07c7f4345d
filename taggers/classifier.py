"""fastText classifiers: train from labelled documents (DCLM-style quality, or domains), and tag with them.

Training text is normalised the way DCLM's fastText quality filter is fed: lower-cased, whitespace collapsed,
one document per line, with word bigrams (``wordNgrams=2``). A deterministic 10% of documents (by id hash) is
held out and scored per label (precision, recall, F1). Any fastText supervised model file works in the tagger,
including DCLM's ``openhermes``/``eli5`` quality model where a user has it. With ``percentiles_from`` (a
glob of reference documents, e.g. a sample of the pool) the tagger also writes ``<label>_percentile``: the
share of the reference's scores at or below the document's, so a filter can keep "the top 30%" (``hq_percentile
>= 0.7``) with a plain rule, the same in every shard and worker.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache

import msgspec
import numpy as np
import polars as pl
import xxhash

from dolma import io
from dolma.core.errors import UserError
from dolma.core.fasttext import load_fasttext, predict
from taggers.registry import Tagger, TagResult, TextBatch, tagger


def normalise(texts: pl.Series) -> pl.Series:
    return texts.str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()


class _Text(msgspec.Struct):
    text: str


def read_texts(url: str):
    """(line, text) of every JSON line with a string ``text`` (training data need not carry Dolma ids)."""
    decoder = msgspec.json.Decoder(_Text)
    with io.open_url(url, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                yield number, decoder.decode(line).text
            except (msgspec.DecodeError, UnicodeDecodeError):
                continue


class LabelReport(msgspec.Struct):
    label: str
    train: int
    held_out: int
    precision: float
    recall: float
    f1: float


class TrainingReport(msgspec.Struct):
    model: str
    labels: list[LabelReport]
    accuracy: float  # held out, of the saved model
    params: dict[str, float | int | str]
    accuracy_unquantised: float = 0.0  # held out, before quantisation (equal to accuracy without it)
    model_bytes: int = 0


@dataclass
class TrainParams:
    epoch: int = 20
    lr: float = 0.5
    word_ngrams: int = 2
    dim: int = 100
    bucket: int = 200_000  # hashed word n-gram rows: fastText's 2M rows of dim floats are 800 MB for any corpus
    quantize: bool = True  # product-quantise the saved model (fastText's .ftz: megabytes instead of hundreds)
    min_count: int = 1
    max_docs_per_label: int = 200_000
    held_out: float = 0.1
    balance: bool = True  # downsample every label's training documents to the rarest label's count
    seed: int = 0
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)


def train_classifier(labelled: dict[str, list[str]], model_path: str, params: TrainParams) -> TrainingReport:
    """Train a fastText classifier from ``{label: [document globs]}``; save it and a JSON report beside it."""
    import fasttext

    if len(labelled) < 2:
        raise UserError("a classifier needs documents for at least two labels")
    rows = [row for label, patterns in labelled.items() for row in _labelled_rows(label, patterns, params)]
    train = [(label, text) for label, text, held in rows if not held and text]
    if params.balance:
        rng = np.random.default_rng(params.seed)
        per_label = {label: [r for r in train if r[0] == label] for label in labelled}
        keep = min(len(v) for v in per_label.values())
        train = [v[i] for v in per_label.values() for i in sorted(rng.choice(len(v), keep, replace=False))]
    test = [(label, text) for label, text, held in rows if held and text]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        order = np.random.default_rng(params.seed).permutation(len(train))
        for i in order:
            f.write(f"__label__{train[i][0]} {train[i][1]}\n")
        train_file = f.name
    try:
        model = fasttext.train_supervised(
            input=train_file,
            epoch=params.epoch,
            lr=params.lr,
            wordNgrams=params.word_ngrams,
            dim=params.dim,
            bucket=params.bucket,
            minCount=params.min_count,
            thread=params.threads,
            seed=params.seed,
            verbose=0,
        )
        unquantised = _evaluate(model, test)
        if params.quantize:
            model.quantize(input=train_file, qnorm=True, retrain=True, cutoff=100_000, thread=params.threads)
    finally:
        os.remove(train_file)
    os.makedirs(os.path.dirname(os.path.abspath(model_path)), exist_ok=True)
    model.save_model(model_path)
    predicted, accuracy = _evaluate(model, test)
    truth = [label for label, _ in test]
    reports = [_label_report(label, train, predicted, truth) for label in labelled]
    settings = {k: v for k, v in vars(params).items() if k != "threads"}
    report = TrainingReport(
        model_path, reports, round(accuracy, 4), settings, round(unquantised[1], 4), os.path.getsize(model_path)
    )
    io.write_json(model_path + ".report.json", report)
    return report


def _evaluate(model, test: list[tuple[str, str]]) -> tuple[list[str], float]:
    """(predicted label per held-out document, accuracy)."""
    predicted = [p[0] for p in predict(model, [t for _, t in test], 1)[0]] if test else []
    truth = [label for label, _ in test]
    return predicted, sum(p == t for p, t in zip(predicted, truth)) / max(len(truth), 1)


def _labelled_rows(label: str, patterns: list[str], params: TrainParams) -> list[tuple[str, str, bool]]:
    """(label, normalised text, held out) for the documents of one label, at most ``max_docs_per_label``."""
    if not label.replace("_", "").replace("-", "").isalnum():
        raise UserError(f"label {label!r} must be letters, digits, '-' or '_'")
    texts, ids = [], []
    for pattern in patterns:
        for url in io.document_files(pattern):
            for number, text in read_texts(url):
                texts.append(text)
                ids.append(f"{url}:{number}")
                if len(texts) >= params.max_docs_per_label:
                    break
    if not texts:
        raise UserError(f"no documents for label {label!r} in {patterns}")
    held = [xxhash.xxh64_intdigest(f"{params.seed}:{i}".encode()) % 1000 < params.held_out * 1000 for i in ids]
    return [(label, t, h) for t, h in zip(normalise(pl.Series(texts[: params.max_docs_per_label])).to_list(), held)]


def _label_report(label: str, train: list, predicted: list[str], truth: list[str]) -> LabelReport:
    tp = sum(p == label and t == label for p, t in zip(predicted, truth))
    fp = sum(p == label and t != label for p, t in zip(predicted, truth))
    fn = sum(p != label and t == label for p, t in zip(predicted, truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    n_train = sum(1 for lab, _ in train if lab == label)
    return LabelReport(label, n_train, truth.count(label), round(precision, 4), round(recall, 4), round(f1, 4))


@tagger
class FastTextClassifier(Tagger):
    name = "fasttext_classifier_v1"
    description = "probability of each label of a fastText classifier (quality, domain); see `dolma train-classifier`"
    model: str = ""
    top_k: int = -1  # -1: every label
    # calibrated percentiles: each label's score as its quantile among a reference sample's scores
    percentiles_from: str = ""  # glob of reference documents (e.g. a sample of the pool); empty: none
    reference_docs: int = 10_000  # documents of the reference read (the first, in file order)

    def __post_init__(self) -> None:
        if not self.model:
            raise UserError("fasttext_classifier_v1 needs model: a fastText .bin file")
        if self.percentiles_from:
            io.document_files(self.percentiles_from)  # none matching is an error naming the pattern
        if self.reference_docs < 1:
            raise UserError("fasttext_classifier_v1: reference_docs must be at least 1")

    def tag(self, batch: TextBatch) -> TagResult:
        out: dict[str, np.ndarray] = scores(self.model, normalise(batch.texts).to_list(), self.top_k)
        if self.percentiles_from:
            reference = reference_scores(self.model, self.percentiles_from, self.reference_docs, self.top_k)
            for label, sorted_scores in reference.items():
                at = np.searchsorted(sorted_scores, out[label], side="right")
                out[label + "_percentile"] = at / len(sorted_scores)
        return out


def scores(model_path: str, texts: list[str], top_k: int = -1) -> dict[str, np.ndarray]:
    """Each label's probability for each (normalised) text."""
    model = load_fasttext(model_path)
    labels, probs = predict(model, texts, top_k)
    out = {label.removeprefix("__label__"): np.zeros(len(texts)) for label in model.get_labels()}
    for i, (row_labels, row_probs) in enumerate(zip(labels, probs)):
        for label, p in zip(row_labels, row_probs.tolist()):
            out[label][i] = min(p, 1.0)
    return out


@lru_cache(maxsize=4)
def reference_scores(model_path: str, pattern: str, limit: int, top_k: int) -> dict[str, np.ndarray]:
    """Each label's scores over the first ``limit`` documents of ``pattern``, sorted: computed once per process
    (a worker tags many batches against the same sample)."""
    texts: list[str] = []
    for url in io.document_files(pattern):
        for batch in io.read_documents(url, 4096):
            texts += [d.text for d in batch.docs][: limit - len(texts)]
            if len(texts) >= limit:
                break
        if len(texts) >= limit:
            break
    if not texts:
        raise UserError(f"fasttext_classifier_v1: the reference {pattern!r} holds no readable document")
    return {label: np.sort(s) for label, s in scores(model_path, normalise(pl.Series(texts)).to_list(), top_k).items()}
