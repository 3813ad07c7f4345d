"""The tokenizer every stage shares: a Hugging Face ``tokenizers`` tokenizer, loaded once per process.

The default is allenai's dolma2 tokenizer (cl100k-based, vocabulary 100,278), bundled in
``dolma/resources/tokenizers``; :func:`tokenizer_info` says what a token file was made with (name, SHA-256 of the
tokenizer file, EOS/BOS ids, the smallest dtype that holds the vocabulary).
"""

from __future__ import annotations

import hashlib
import itertools
import os
from contextlib import nullcontext
from functools import lru_cache

import msgspec
import numpy as np

from dolma.core.errors import UserError

RESOURCES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources")
DEFAULT_TOKENIZER = os.path.join(RESOURCES, "tokenizers", "allenai_dolma2.json")


class TokenizerInfo(msgspec.Struct):
    name: str
    sha256: str
    vocab_size: int
    eos_token_id: int
    bos_token_id: int | None
    dtype: str


@lru_cache(maxsize=4)
def load_tokenizer(name_or_path: str):
    """A Hugging Face ``tokenizers`` tokenizer from a ``tokenizer.json`` path, or a hub name (needs network).

    Special-token strings inside a text are encoded as the text they are (``encode_special_tokens``): a
    document that quotes ``<|endoftext|>`` must not reach a trainer as two documents."""
    from tokenizers import Tokenizer

    if os.path.exists(name_or_path):
        tok = Tokenizer.from_file(name_or_path)
    elif name_or_path.endswith(".json"):
        raise UserError(f"tokenizer file {name_or_path!r} does not exist")
    else:
        try:
            tok = Tokenizer.from_pretrained(name_or_path)
        except Exception as e:  # the hub client raises many kinds; all mean "cannot load"
            raise UserError(f"cannot load tokenizer {name_or_path!r}: {e}") from None
    tok.encode_special_tokens = True
    return tok


@lru_cache(maxsize=4)
def tokenizer_info(name_or_path: str, eos_token: str, bos_token: str | None) -> TokenizerInfo:
    tok = load_tokenizer(name_or_path)
    eos = tok.token_to_id(eos_token)
    if eos is None:
        raise UserError(f"tokenizer {name_or_path!r} has no EOS token {eos_token!r}")
    bos = tok.token_to_id(bos_token) if bos_token else None
    if bos_token and bos is None:
        raise UserError(f"tokenizer {name_or_path!r} has no BOS token {bos_token!r}")
    local = os.path.exists(name_or_path)
    with open(name_or_path, "rb") if local else nullcontext(None) as f:
        digest = hashlib.sha256(f.read() if f else tok.to_str().encode()).hexdigest()
    vocab = tok.get_vocab_size()
    name = os.path.basename(name_or_path).removesuffix(".json") if local else name_or_path
    return TokenizerInfo(name, digest, vocab, eos, bos, "uint16" if vocab <= 2**16 else "uint32")


PIECE = 100_000  # characters encoded at once: a giant document is encoded in pieces, its memory bounded
GROUP = 1_000_000  # characters of pieces per encode call: their encodings are turned into arrays and freed


def encode_ids(tok, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(every text's ids, concatenated in order as uint32; tokens per text), without special tokens.

    Tokenizers hold tens of bytes per character while encoding and an encoding keeps its strings and offsets,
    so one 100 MB document would need gigabytes: texts are encoded in pieces of ``PIECE`` characters, a group
    of about ``GROUP`` characters per call, each group's encodings reduced to ids at once. Pieces are cut just
    before a space that follows a non-space and precedes one, where regex pre-tokenizers (GPT-2's, cl100k's,
    dolma2's) always start a new pre-token, so the ids are those of the whole text."""
    ids: list[np.ndarray] = []
    counts = np.zeros(len(texts), np.int64)
    group: list[str] = []
    owners: list[int] = []
    size = 0
    for i, text in enumerate(texts):
        start = 0
        while True:
            end = _cut(text, start + PIECE)
            group.append(text[start:end])
            owners.append(i)
            size += end - start
            if size >= GROUP:
                _encode_group(tok, group, owners, ids, counts)
                group, owners, size = [], [], 0
            if end >= len(text):
                break
            start = end
    _encode_group(tok, group, owners, ids, counts)
    return (np.concatenate(ids) if ids else np.empty(0, np.uint32)), counts


def _encode_group(tok, pieces: list[str], owners: list[int], ids: list[np.ndarray], counts: np.ndarray) -> None:
    if not pieces:
        return
    encodings = tok.encode_batch_fast(pieces, add_special_tokens=False)
    sizes = np.fromiter((len(e) for e in encodings), np.int64, count=len(encodings))
    ids.append(np.fromiter(itertools.chain.from_iterable(e.ids for e in encodings), np.uint32, count=int(sizes.sum())))
    np.add.at(counts, np.array(owners, np.int64), sizes)


def token_counts(tok, texts: list[str]) -> np.ndarray:
    """Tokens per text (without special tokens), giant texts encoded in pieces (see :func:`encode_ids`)."""
    return encode_ids(tok, texts)[1]


def _cut(text: str, at: int) -> int:
    if at >= len(text):
        return len(text)
    k = text.find(" ", at)
    while k != -1 and (text[k - 1].isspace() or k + 1 >= len(text) or text[k + 1].isspace()):
        k = text.find(" ", k + 1)
    return len(text) if k == -1 else k
