"""Ceilings: the fastest honest way to do a stage's fixed part of the work with the libraries the toolkit uses.

    python -m bench.ceilings read FILE...     decompress (ISA-L for .gz, zstd for .zst) and parse every line
    python -m bench.ceilings encode FILE...   the same, then raw ``tokenizers`` batch encode of every text

Each is run by the harness as a whole process like every other contender, so its start-up is measured (and
cancels out of the marginal rate) the same way. It prints the documents (and tokens) it saw, which the
equivalence check compares with what the stage under test reports. No ledger, no validation, no output: a
stage can only approach these figures.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import msgspec


class Doc(msgspec.Struct):
    text: str


def blocks(path: str, size: int = 1 << 24) -> Iterator[bytes]:
    """The file's decompressed bytes, cut at line ends, about ``size`` bytes at a time."""
    if path.endswith(".gz"):
        from isal import igzip

        stream = igzip.open(path, "rb")
    elif path.endswith(".zst"):
        import zstandard

        stream = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"))
    else:
        stream = open(path, "rb")
    rest = b""
    with stream:
        while chunk := stream.read(size):
            chunk = rest + chunk
            cut = chunk.rfind(b"\n") + 1
            rest = chunk[cut:]
            if cut:
                yield chunk[:cut]
    if rest:
        yield rest


def read(files: list[str]) -> None:
    decoder = msgspec.json.Decoder(Doc)
    docs = 0
    for path in files:
        for block in blocks(path):
            docs += len(decoder.decode_lines(block))
    print(f"documents {docs}")


def encode(files: list[str], batch: int = 2048) -> None:
    from tokenizers import Tokenizer

    from bench.paths import TOKENIZER

    tok = Tokenizer.from_file(TOKENIZER)
    tok.encode_special_tokens = True
    decoder = msgspec.json.Decoder(Doc)
    docs = tokens = 0
    for path in files:
        for block in blocks(path):
            texts = [d.text for d in decoder.decode_lines(block)]
            for i in range(0, len(texts), batch):
                tokens += sum(len(e) for e in tok.encode_batch_fast(texts[i : i + batch], add_special_tokens=False))
            docs += len(texts)
    print(f"documents {docs}\ntokens {tokens}")


if __name__ == "__main__":
    {"read": read, "encode": encode}[sys.argv[1]](sys.argv[2:])
