"""The token files' format and a reader for them, the way OLMo-core memory-maps them.

Each file pair is ``<name>.npy`` (raw token ids, no NPY header, the manifest's dtype) and ``<name>.csv.gz``
(``start,end,id,src,loc`` per document); ``manifest.json`` lists the files with the tokenizer they were made
with and the tokens and documents per source.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator

import msgspec
import numpy as np

from dolma import io
from dolma.core.tokenizer import TokenizerInfo


class FileEntry(msgspec.Struct):
    npy: str
    csv: str
    tokens: int
    documents: int


class PartManifest(msgspec.Struct):
    files: list[FileEntry]
    tokens_per_source: dict[str, int]
    documents_per_source: dict[str, int]


class Manifest(msgspec.Struct):
    tokenizer: TokenizerInfo
    files: list[FileEntry]
    tokens: int
    documents: int
    tokens_per_source: dict[str, int]
    documents_per_source: dict[str, int]


class TokenDocument(msgspec.Struct):
    id: str
    src: str
    loc: int
    tokens: np.ndarray


class TokenReader:
    """Reads a tokenized output the way OLMo-core does: ``np.memmap`` of each file with the manifest's dtype."""

    def __init__(self, folder: str):
        self.folder = folder
        self.manifest = msgspec.convert(io.read_json(io.join(folder, "manifest.json")), Manifest)
        self.dtype = np.dtype(self.manifest.tokenizer.dtype)

    def memmap(self, entry: FileEntry) -> np.ndarray:
        """The file's tokens, memory-mapped (object storage: read whole)."""
        path = io.join(self.folder, entry.npy)
        if io.is_remote(path):
            with io.open_url(path, "rb", compression="disable") as f:
                return np.frombuffer(f.read(), self.dtype)
        if os.path.getsize(path) == 0:
            return np.empty(0, self.dtype)
        return np.memmap(path, dtype=self.dtype, mode="r")

    def rows(self, entry: FileEntry) -> list[tuple[int, int, str, str, int]]:
        csv.field_size_limit(2**31 - 1)  # an id may be as long as a document line allows
        with io.open_url(io.join(self.folder, entry.csv), "rt", newline="") as f:
            return [(int(s), int(e), i, src, int(loc)) for s, e, i, src, loc in csv.reader(f)]

    def documents(self) -> Iterator[TokenDocument]:
        for entry in self.manifest.files:
            tokens = self.memmap(entry)
            for start, end, doc_id, src, loc in self.rows(entry):
                yield TokenDocument(doc_id, src, loc, tokens[start:end])

    def ends(self, entry: FileEntry) -> np.ndarray:
        """The document ends the file's CSV gives, in order (only the numbers are kept, not the rows)."""
        csv.field_size_limit(2**31 - 1)
        with io.open_url(io.join(self.folder, entry.csv), "rt", newline="") as f:
            return np.fromiter((int(row[1]) for row in csv.reader(f)), np.int64)

    def eos_boundaries(self, entry: FileEntry, chunk: int = 1 << 24) -> np.ndarray:
        """Document ends found from EOS positions alone (what a trainer without the CSV sees), read ``chunk``
        tokens at a time: a check of a multi-GB file holds one chunk, not the file's pages."""
        eos, found, at = self.manifest.tokenizer.eos_token_id, [], 0
        with io.open_url(io.join(self.folder, entry.npy), "rb", compression="disable") as f:
            while data := f.read(chunk * self.dtype.itemsize):
                tokens = np.frombuffer(data, self.dtype)
                found.append(np.flatnonzero(tokens == eos) + at + 1)
                at += len(tokens)
        return np.concatenate(found) if found else np.empty(0, np.int64)
