"""Look at the data behind the numbers: a document with its attributes, an id's path through every stage, and
samples of what a filter removed.

Everything is read from what a run left behind: each stage's ledger (one row per document read: file, line,
id, outcome, reason, detail) and quarantine files, the document files and their sibling ``attributes/`` trees.
Nothing is recomputed, so what is shown is what the run decided.
"""

from __future__ import annotations

import gzip
import os
import random
from collections.abc import Iterator

import msgspec
import polars as pl

from dolma import io
from dolma.core.document import AttributeLine
from dolma.core.errors import UserError
from dolma.runtime.ledger import KEPT
from dolma.runtime.stage import Stage
from dolma.runtime.state import ledger_dir

LEDGER_COLUMNS = {"file": pl.String, "line": pl.Int64, "id": pl.String, "outcome": pl.String, "reason": pl.String}


def scan_ledger(url: str) -> pl.LazyFrame:
    """One ledger file, lazily: a local one is scanned, so filters are pushed into the Parquet reader."""
    return io.read_frame(url).lazy() if io.is_remote(url) else pl.scan_parquet(url)


def ledger_rows(
    stages: list[Stage],
    id: str | None = None,
    stage: str | None = None,
    max_files: int | None = None,
    removed: bool = False,
) -> pl.DataFrame:
    """Ledger rows of the stages (in run order), only those of ``id``, of the stage named ``stage`` and of the
    documents dropped or quarantined (``removed``) if given; ``max_files``: read at most that many of each
    stage's ledger files (a bounded sample of a large run). The filters are applied as each file is read, not
    to the rows of every file together."""
    frames = []
    for order, s in enumerate(stages):
        if stage is not None and s.name != stage:
            continue
        pattern = io.join(ledger_dir(s), "documents")
        files = io.list_files(pattern) if io.is_remote(pattern) or io.exists(pattern) else []
        for url in [f for f in files if f.endswith(".parquet")][:max_files]:
            frame = scan_ledger(url)  # one file at a time
            if id is not None:
                frame = frame.filter(pl.col("id") == id)
            if removed:
                frame = frame.filter(pl.col("outcome").cast(pl.String) != KEPT)
            df = frame.collect().cast({**LEDGER_COLUMNS, "detail": pl.String})
            if df.height:
                frames.append(df.with_columns(stage=pl.lit(s.name), order=pl.lit(order)))
    if not frames:
        return pl.DataFrame(schema={**LEDGER_COLUMNS, "detail": pl.String, "stage": pl.String, "order": pl.Int32})
    return pl.concat(frames, how="vertical_relaxed").sort("order", "file", "line", maintain_order=True)


def document_at(url: str, line: int):
    """The document on line ``line`` (1-based) of a document file."""
    for number, doc in io.read_selected(url, {line}):
        if number == line:
            return doc
    raise UserError(f"{url} has no document on line {line}")


def attributes_at(url: str, line: int) -> dict[str, dict[str, list]]:
    """Every attribute set's spans for line ``line`` of a document file under a ``documents/`` folder."""
    if "/documents/" not in "/" + url:
        return {}
    head = url.rpartition("documents/")[0].rstrip("/")
    root = io.join(head, "attributes") if head else "attributes"
    found: dict[str, dict[str, list]] = {}
    for name in _attribute_sets(root):
        path = io.attributes_url(url, name)
        if not io.exists(path):
            continue
        for number, attr in io.read_attributes(path):
            if number == line:
                found[name] = attr.attributes if isinstance(attr, AttributeLine) else {f"({attr.reason})": []}
                break
    return found


def _attribute_sets(root: str) -> list[str]:
    if io.is_remote(root):
        return sorted({u[len(root) + 1 :].split("/", 1)[0] for u in io.list_files(root)})
    return sorted(d for d in os.listdir(root) if not d.startswith(("_", "."))) if os.path.isdir(root) else []


def documents_at(wanted: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """The texts of many (file, line) pairs, each file read once; files that hold no documents are skipped."""
    by_file: dict[str, set[int]] = {}
    for file, line in wanted:
        if file.endswith(io.DOC_SUFFIXES) and io.exists(file):
            by_file.setdefault(file, set()).add(line)
    return {(f, n): doc.text for f, lines in by_file.items() for n, doc in io.read_selected(f, lines)}


def parse_location(where: str) -> tuple[str, int] | None:
    """``FILE:LINE`` as (file, line), or None when ``where`` is not one (an id)."""
    file, sep, line = where.rpartition(":")
    if sep and line.isdigit() and io.exists(file):
        return file, int(line)
    return None


def sample_removed(stages: list[Stage], stage: str, reason: str, n: int, seed: int) -> pl.DataFrame:
    """``n`` rows (seeded) of ``stage``'s ledger that were dropped or quarantined with a reason containing
    ``reason`` (every removal when it is empty)."""
    names = [s.name for s in stages]
    if stage not in names:
        raise UserError(f"no stage named {stage!r}; stages: {', '.join(names)}")
    rows = ledger_rows(stages, stage=stage, removed=True)
    if reason:
        rows = rows.filter(pl.col("reason").str.contains(reason, literal=True))
    if not rows.height:
        reasons = ledger_rows(stages, stage=stage, removed=True)["reason"].unique().sort()
        raise UserError(f"{stage}: no document removed for {reason!r}; its reasons: {', '.join(reasons) or 'none'}")
    picked = sorted(random.Random(seed).sample(range(rows.height), min(n, rows.height)))
    return rows[picked]


def quarantined_line(stages: list[Stage], stage: str, file: str, line: int) -> str | None:
    """The raw line a stage quarantined for (file, line), from its quarantine files."""
    s = next(x for x in stages if x.name == stage)
    folder = io.join(ledger_dir(s), "quarantine")
    if not io.exists(folder):
        return None
    for url in io.list_files(folder):
        for record in _records(url):
            if record.get("file") == file and record.get("line") == line:
                return record.get("raw", "")
    return None


def _records(url: str) -> Iterator[dict]:
    with io.open_url(url, "rb", compression="disable") as f:
        data = f.read()
    for raw in gzip.decompress(data).splitlines() if url.endswith(".gz") else data.splitlines():
        yield msgspec.json.decode(raw)


def token_places(stage: Stage, file: str, doc_id: str) -> list[str]:
    """Where a tokenize stage wrote the document ``doc_id`` read from ``file``: ``<npy> [start:end]`` per
    copy, found in the token files made from that input file only (its part manifest), so a lookup reads a
    shard's CSV indexes, never the whole output."""
    from dolma.tokenize.reader import PartManifest, TokenReader
    from dolma.tokenize.stage import TokenizeStage

    if not isinstance(stage, TokenizeStage):
        return []
    task = next((t for t in stage.tasks() if t.payload.url == file), None)
    part_url = io.join(stage.output, "_parts", f"{task.key}.json") if task else ""
    if not task or not io.exists(part_url) or not io.exists(io.join(stage.output, "manifest.json")):
        return []
    part = msgspec.convert(io.read_json(part_url), PartManifest)
    reader = TokenReader(stage.output)
    found = []
    for entry in part.files:
        found += [f"{entry.npy} [{s}:{e}]" for s, e, i, *_ in reader.rows(entry) if i == doc_id]
    return found
