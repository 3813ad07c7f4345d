"""The tokenizer every stage shares: a Hugging Face ``tokenizers`` tokenizer, loaded once per process.

The default is allenai's dolma2 tokenizer (cl100k-based, vocabulary 100,278), bundled in
``dolma/resources/tokenizers``; :func:`tokenizer_info` says what a token file was made with (name, SHA-256 of the
tokenizer file, EOS/BOS ids, the smallest dtype that holds the vocabulary).
"""

from __future__ import annotations

import hashlib
import os
from contextlib import nullcontext
from functools import lru_cache

import msgspec

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
    """A Hugging Face ``tokenizers`` tokenizer from a ``tokenizer.json`` path, or a hub name (needs network)."""
    from tokenizers import Tokenizer

    if os.path.exists(name_or_path):
        return Tokenizer.from_file(name_or_path)
    if name_or_path.endswith(".json"):
        raise UserError(f"tokenizer file {name_or_path!r} does not exist")
    try:
        return Tokenizer.from_pretrained(name_or_path)
    except Exception as e:  # the hub client raises many kinds; all mean "cannot load"
        raise UserError(f"cannot load tokenizer {name_or_path!r}: {e}") from None


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
