"""Tokenized shards in the format OLMo-core memory-maps, and a reader for them.

Each output file pair is ``<name>.npy`` (raw token ids, no NPY header, uint16 when the vocabulary fits, else
uint32) and ``<name>.csv.gz`` with one ``start,end,id,src,loc`` row per document (token offsets, document id,
source file, line), as allenai's ``dolma tokens`` writes. Every document ends with EOS. Documents of one input
shard are shuffled with a seed derived from (seed, shard) and cut into files of at most ``max_tokens_per_file``
tokens, so the output does not depend on the number of workers.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import itertools
import os
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache

import msgspec
import numpy as np
import polars as pl
import xxhash

from dolma import io
from dolma.executor import Task, report_progress
from dolma.ledger import ShardLedger

DEFAULT_TOKENIZER = os.path.join(os.path.dirname(__file__), "resources", "tokenizers", "allenai_dolma2.json")


class TokenizerInfo(msgspec.Struct):
    name: str
    sha256: str
    vocab_size: int
    eos_token_id: int
    bos_token_id: int | None
    dtype: str


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


@lru_cache(maxsize=4)
def load_tokenizer(name_or_path: str):
    """A Hugging Face ``tokenizers`` tokenizer from a ``tokenizer.json`` path, or a hub name (needs network)."""
    from tokenizers import Tokenizer

    if os.path.exists(name_or_path):
        return Tokenizer.from_file(name_or_path)
    if name_or_path.endswith(".json"):
        raise io.UserError(f"tokenizer file {name_or_path!r} does not exist")
    try:
        return Tokenizer.from_pretrained(name_or_path)
    except Exception as e:  # the hub client raises many kinds; all mean "cannot load"
        raise io.UserError(f"cannot load tokenizer {name_or_path!r}: {e}") from None


@lru_cache(maxsize=4)
def tokenizer_info(name_or_path: str, eos_token: str, bos_token: str | None) -> TokenizerInfo:
    tok = load_tokenizer(name_or_path)
    eos = tok.token_to_id(eos_token)
    if eos is None:
        raise io.UserError(f"tokenizer {name_or_path!r} has no EOS token {eos_token!r}")
    bos = tok.token_to_id(bos_token) if bos_token else None
    if bos_token and bos is None:
        raise io.UserError(f"tokenizer {name_or_path!r} has no BOS token {bos_token!r}")
    local = os.path.exists(name_or_path)
    with open(name_or_path, "rb") if local else nullcontext(None) as f:
        digest = hashlib.sha256(f.read() if f else tok.to_str().encode()).hexdigest()
    vocab = tok.get_vocab_size()
    name = os.path.basename(name_or_path).removesuffix(".json") if local else name_or_path
    return TokenizerInfo(name, digest, vocab, eos, bos, "uint16" if vocab <= 2**16 else "uint32")


@dataclass
class TokenizeStage:
    input: str
    output: str
    tokenizer: str = DEFAULT_TOKENIZER
    eos_token: str = "<|endoftext|>"
    bos_token: str | None = None
    max_tokens_per_file: int = 2**28
    seed: int = 0
    batch_size: int = 2048
    name: str = "tokenize"

    def tasks(self) -> list[Task]:
        return [Task(io.strip_suffix(io.relative_to_root(f, self.input)), (f,)) for f in io.document_files(self.input)]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        info = tokenizer_info(self.tokenizer, self.eos_token, self.bos_token)
        tok = load_tokenizer(self.tokenizer)
        src = task.inputs[0]
        dtype = np.dtype(info.dtype)
        chunks: list[np.ndarray] = []
        lengths: list[np.ndarray] = []
        ids: list[str] = []
        sources: list[str] = []
        locs: list[int] = []
        for batch in io.read_documents(src, self.batch_size):
            ledger.read += len(batch.docs) + len(batch.rejected)
            ledger.quarantined(src, batch.rejected)
            encodings = tok.encode_batch_fast([d.text for d in batch.docs], add_special_tokens=False)
            extra = 1 + (info.bos_token_id is not None)
            n = np.fromiter((len(e) for e in encodings), np.int64, count=len(encodings)) + extra
            flat = np.empty(int(n.sum()), dtype)
            ends = np.cumsum(n)
            body = np.ones(len(flat), bool)
            body[ends - 1] = False
            if info.bos_token_id is not None:
                body[ends - n] = False
                flat[ends - n] = info.bos_token_id
            flat[ends - 1] = info.eos_token_id
            flat[body] = np.fromiter(
                itertools.chain.from_iterable(e.ids for e in encodings), dtype, count=int(body.sum())
            )
            chunks.append(flat)
            lengths.append(n)
            ids += [d.id for d in batch.docs]
            sources += [d.source for d in batch.docs]
            locs += batch.lines
            ledger.kept(src, batch.lines, [d.id for d in batch.docs])
            report_progress(len(batch.docs) + len(batch.rejected), batch.nbytes)
        part = self._write_files(task, src, chunks, lengths, ids, sources, locs)
        ledger.metrics["tokens"] += sum(f.tokens for f in part.files)
        io.write_json(io.join(self.output, "_parts", task.key + ".json"), part)

    def _write_files(
        self,
        task: Task,
        src: str,
        chunks: list[np.ndarray],
        lengths: list[np.ndarray],
        ids: list[str],
        sources: list[str],
        locs: list[int],
    ) -> PartManifest:
        tokens = np.concatenate(chunks) if chunks else np.empty(0, np.uint32)
        n = np.concatenate(lengths) if lengths else np.empty(0, np.int64)
        starts = np.cumsum(n) - n
        rng = np.random.default_rng([self.seed, xxhash.xxh64_intdigest(task.key.encode())])
        order = rng.permutation(len(n))
        file_of = _pack(n[order], self.max_tokens_per_file)
        table = pl.DataFrame({"id": ids, "src": src, "loc": locs, "source": sources, "n": n})[order]
        table = table.with_columns(file=pl.Series(file_of))
        files = []
        for number, docs in enumerate(table.partition_by("file", maintain_order=True)):
            picked = order[file_of == number]
            ends = np.cumsum(n[picked])
            gather = np.repeat(starts[picked] - (ends - n[picked]), n[picked]) + np.arange(ends[-1])
            stem = f"{task.key}-{number:05d}"
            with io.AtomicWriter(io.join(self.output, stem + ".npy")) as w:
                w.write(tokens[gather].tobytes())
            rows = docs.select(start=pl.Series(ends - n[picked]), end=pl.Series(ends), id="id", src="src", loc="loc")
            with io.AtomicWriter(io.join(self.output, stem + ".csv.gz")) as w:
                w.write(rows.write_csv(include_header=False).encode())
            files.append(FileEntry(stem + ".npy", stem + ".csv.gz", int(ends[-1]), len(picked)))
        per_source = table.group_by("source").agg(tokens=pl.col("n").sum(), documents=pl.len()).sort("source")
        return PartManifest(
            files,
            dict(zip(per_source["source"], per_source["tokens"])),
            dict(zip(per_source["source"], per_source["documents"])),
        )

    def finish(self, tasks: list[Task]) -> None:
        """Merge the per-shard parts into ``manifest.json``: files, tokens and documents per source, tokenizer."""
        info = tokenizer_info(self.tokenizer, self.eos_token, self.bos_token)
        files: list[FileEntry] = []
        tokens_per_source: dict[str, int] = {}
        documents_per_source: dict[str, int] = {}
        for task in tasks:
            part = msgspec.convert(io.read_json(io.join(self.output, "_parts", task.key + ".json")), PartManifest)
            files += part.files
            for mine, theirs in (
                (tokens_per_source, part.tokens_per_source),
                (documents_per_source, part.documents_per_source),
            ):
                for k, v in theirs.items():
                    mine[k] = mine.get(k, 0) + v
        manifest = Manifest(
            info,
            files,
            sum(f.tokens for f in files),
            sum(f.documents for f in files),
            dict(sorted(tokens_per_source.items())),
            dict(sorted(documents_per_source.items())),
        )
        io.write_json(io.join(self.output, "manifest.json"), manifest)


def _pack(n: np.ndarray, limit: int) -> np.ndarray:
    """File number per document, in order: a new file starts when the next document would pass ``limit``
    tokens (a document longer than ``limit`` gets a file of its own)."""
    file_of = np.zeros(len(n), np.int64)
    used = current = 0
    for i, size in enumerate(n.tolist()):
        if used and used + size > limit:
            current += 1
            used = 0
        file_of[i] = current
        used += size
    return file_of


# ------------------------------------------------------------------------------------------------- reading
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
        path = io.join(self.folder, entry.npy)
        if os.path.getsize(path) == 0:
            return np.empty(0, self.dtype)
        return np.memmap(path, dtype=self.dtype, mode="r")

    def rows(self, entry: FileEntry) -> list[tuple[int, int, str, str, int]]:
        with gzip.open(io.join(self.folder, entry.csv), "rt", newline="") as f:
            return [(int(s), int(e), i, src, int(loc)) for s, e, i, src, loc in csv.reader(f)]

    def documents(self) -> Iterator[TokenDocument]:
        for entry in self.manifest.files:
            tokens = self.memmap(entry)
            for start, end, doc_id, src, loc in self.rows(entry):
                yield TokenDocument(doc_id, src, loc, tokens[start:end])

    def eos_boundaries(self, entry: FileEntry) -> np.ndarray:
        """Document ends found from EOS positions alone (what a trainer without the CSV sees)."""
        return np.flatnonzero(self.memmap(entry) == self.manifest.tokenizer.eos_token_id) + 1
