"""Tokenized shards in the format OLMo-core memory-maps, and a reader for them.

Each output file pair is ``<name>.npy`` (raw token ids, no NPY header, uint16 when the vocabulary fits, else
uint32) and ``<name>.csv.gz`` with one ``start,end,id,src,loc`` row per document (token offsets, document id,
source file, line), as allenai's ``dolma tokens`` writes. Every document ends with EOS. Documents of one input
shard are shuffled with a seed derived from (seed, shard) and cut into files of at most ``max_tokens_per_file``
tokens, so the output does not depend on the number of workers.

Memory is that of a batch, not of the shard: each batch's tokens go to a spill file in the local temporary
folder as they are encoded (an unnamed file, so a killed worker leaves none behind), and each output file is
gathered from it by reads (not a memory map, whose pages would count), ``SLICE_TOKENS`` at a time, its CSV
written alongside. What stays per document is a compact row: its length, id, source and line.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import msgspec
import numpy as np
import polars as pl
import xxhash

from dolma import io
from dolma.core.config import param
from dolma.core.errors import DataError
from dolma.core.tokenizer import DEFAULT_TOKENIZER, encode_ids, load_tokenizer, tokenizer_info
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.shards import read_shard
from dolma.runtime.stage import Stage, Task, shard_tasks
from dolma.tokenize.reader import FileEntry, Manifest, PartManifest

SLICE_TOKENS = 1 << 20  # tokens gathered at a time: a 4 MB buffer of uint32
CSV_CHUNK = 1 << 20  # bytes of CSV per write: gzip's output depends on how its input is cut, so always alike


@dataclass
class TokenizeStage(Stage):
    input: str = param(help="glob or folder of document files")
    output: str = param(help="output folder; gets manifest.json")
    tokenizer: str = param(DEFAULT_TOKENIZER, "tokenizer.json path or hub name (default: the bundled dolma2)")
    eos_token: str = param("<|endoftext|>", "the token that ends every document")
    bos_token: str | None = param(None, "also start each document with this token")
    max_tokens_per_file: int = param(2**28, "tokens per .npy file at most", ge=1)
    seed: int = param(0, "seed of the per-shard document shuffle")
    batch_size: int = param(2048, "documents per tokenizer batch", ge=1)
    name: str = param("tokenize", "the stage's name in the ledger (unique in a recipe)")

    def __post_init__(self) -> None:
        io.refuse_output_in_input(self.input, self.output, self.name)

    def tasks(self) -> list[Task]:
        return shard_tasks(self.input)

    def run(self, task: Task, ledger: ShardLedger) -> None:
        info = tokenizer_info(self.tokenizer, self.eos_token, self.bos_token)
        tok = load_tokenizer(self.tokenizer)
        src = task.payload.url
        dtype = np.dtype(info.dtype)
        frames: list[pl.DataFrame] = []
        # unnamed (deleted as soon as it is created), so a killed worker leaves no spill behind
        with tempfile.TemporaryFile(prefix="dolma-tokenize-") as spill:
            for batch in read_shard(src, ledger, self.batch_size, keep_all=True):
                flat, n = _batch_tokens(tok, info, dtype, batch, src)
                spill.write(flat.tobytes())
                frames.append(_documents(batch, n))
            spill.flush()
            table = pl.concat(frames) if frames else _documents(io.DocBatch(), np.empty(0, np.int64))
            del frames
            part = self._write_files(task, spill.fileno(), dtype, table)
        ledger.metrics["tokens"] += sum(f.tokens for f in part.files)
        io.write_json(io.join(self.output, "_parts", task.key + ".json"), part)

    def _write_files(self, task: Task, spill: int, dtype: np.dtype, table: pl.DataFrame) -> PartManifest:
        """Shuffle the shard's documents and cut them into files, reading tokens from the spill file and taking
        rows of the table a slice at a time, so memory stays that of a slice, plus the table's few bytes per
        document."""
        n = table["n"].to_numpy().astype(np.int64)
        starts = np.cumsum(n) - n
        rng = np.random.default_rng([self.seed, xxhash.xxh64_intdigest(task.key.encode())])
        order = rng.permutation(len(n))
        file_of = _pack(n[order], self.max_tokens_per_file)
        files = []
        for number in range(int(file_of[-1]) + 1 if len(file_of) else 0):
            stem = f"{task.key}-{number:05d}"
            picked = order[file_of == number]
            files.append(self._write_file(stem, spill, dtype, picked, n, starts, table, task.payload.url))
        per_source = (
            table.group_by(pl.col("source").cast(pl.String))
            .agg(tokens=pl.col("n").sum().cast(pl.Int64), documents=pl.len())
            .sort("source")
        )
        return PartManifest(
            files,
            dict(zip(per_source["source"], per_source["tokens"])),
            dict(zip(per_source["source"], per_source["documents"])),
        )

    def _write_file(self, stem, spill: int, dtype, picked, n, starts, table: pl.DataFrame, src: str) -> FileEntry:
        """One ``.npy`` of the documents ``picked`` (in order) and its ``.csv.gz`` of offsets, both written a
        slice of documents at a time."""
        ends = np.cumsum(n[picked])
        with (
            io.AtomicWriter(io.join(self.output, stem + ".npy")) as w,
            io.AtomicWriter(io.join(self.output, stem + ".csv.gz")) as c,
        ):
            done, csv = 0, bytearray()
            for part in _slices(picked, n, SLICE_TOKENS):
                sizes = n[part]
                w.write(_gather(spill, dtype, starts[part], sizes))
                end = ends[done : done + len(part)]
                rows = table[part].select(
                    start=pl.Series(end - sizes), end=pl.Series(end), id="id", src=pl.lit(src), loc="loc"
                )
                csv += rows.write_csv(include_header=False).encode()
                done += len(part)
                while len(csv) >= CSV_CHUNK:  # the compressor sees the same writes whatever the slices were
                    c.write(bytes(csv[:CSV_CHUNK]))
                    del csv[:CSV_CHUNK]
            c.write(bytes(csv))
        return FileEntry(stem + ".npy", stem + ".csv.gz", int(ends[-1]), len(picked))

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


def _gather(spill: int, dtype: np.dtype, starts: np.ndarray, sizes: np.ndarray) -> memoryview:
    """The tokens of some documents of the spill file, in the given order, read document by document into one
    buffer. Read, not memory-mapped: a mapped file's pages are counted in the process's memory, and the page
    cache maps large folios around every fault, so a gather of a few hundred documents spread over the file
    held most of it (a 1.6 GB spill showed ~1 GB resident)."""
    out = memoryview(np.empty(int(sizes.sum()), dtype)).cast("B")
    at = 0
    for start, size in zip((starts * dtype.itemsize).tolist(), (sizes * dtype.itemsize).tolist()):
        got = os.preadv(spill, [out[at : at + size]], start)
        if got != size:
            raise OSError(f"the tokenize spill file ended after {got} of {size} bytes at offset {start}")
        at += size
    return out


def _slices(picked: np.ndarray, n: np.ndarray, limit: int) -> list[np.ndarray]:
    """``picked`` (documents in file order) cut into runs of about ``limit`` tokens (a longer document alone)."""
    starts = np.cumsum(n[picked]) - n[picked]
    cuts = np.flatnonzero(np.diff(starts // limit)) + 1
    return np.split(picked, cuts)


def _documents(batch: io.DocBatch, n: np.ndarray) -> pl.DataFrame:
    """A batch's documents as compact rows (id, source as a category, line, tokens): the only thing kept per
    document until the shard's files are written (a Python object per document would take ~200 bytes)."""
    return pl.DataFrame(
        {
            "id": pl.Series([d.id for d in batch.docs], dtype=pl.String),
            "source": pl.Series([d.source for d in batch.docs], dtype=pl.Categorical),
            "loc": pl.Series(batch.lines, dtype=pl.UInt64),
            "n": pl.Series(n, dtype=pl.UInt32),
        }
    )


def _batch_tokens(tok, info, dtype: np.dtype, batch: io.DocBatch, src: str) -> tuple[np.ndarray, np.ndarray]:
    """A batch's documents as one token array (BOS if asked, the text's ids, EOS) and tokens per document."""
    body_ids, sizes = encode_ids(tok, [d.text for d in batch.docs])
    extra = 1 + (info.bos_token_id is not None)
    n = sizes + extra
    flat = np.empty(int(n.sum()), dtype)
    ends = np.cumsum(n)
    body = np.ones(len(flat), bool)
    body[ends - 1] = False
    if info.bos_token_id is not None:
        body[ends - n] = False
        flat[ends - n] = info.bos_token_id
    flat[ends - 1] = info.eos_token_id
    flat[body] = body_ids
    _check_boundaries(flat, ends, info.eos_token_id, batch, src)
    return flat, n


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


def _check_boundaries(flat: np.ndarray, ends: np.ndarray, eos: int, batch: io.DocBatch, src: str) -> None:
    """EOS must be exactly each document's last token, as a trainer finds documents by it: checked before
    anything is written, so a tokenizer that maps text to the EOS id fails the stage instead of a trainer
    seeing one document as two."""
    found = np.flatnonzero(flat == eos)
    if len(found) == len(ends) and (found == ends - 1).all():
        return
    inside = found[~np.isin(found, ends - 1)]
    k = int(np.searchsorted(ends, inside[0], side="right")) if len(inside) else 0
    raise DataError(
        f"tokenize: {src} line {batch.lines[k]} (id {batch.docs[k].id!r}) encodes to the EOS id {eos} inside its "
        "text; the tokenizer must encode special-token strings as text (tokenizers' encode_special_tokens)"
    )
