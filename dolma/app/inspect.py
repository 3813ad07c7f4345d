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


def ledger_rows(stages: list[Stage], id: str) -> pl.DataFrame:
    """Ledger rows of the document ``id`` in every stage (in run order); the filter is applied as each file is
    read, not to the rows of every file together."""
    frames = []
    for order, s in enumerate(stages):
        for url in ledger_files(s):
            df = scan_ledger(url).filter(pl.col("id") == id).collect().cast({**LEDGER_COLUMNS, "detail": pl.String})
            if df.height:
                frames.append(df.with_columns(stage=pl.lit(s.name), order=pl.lit(order)))
    if not frames:
        return pl.DataFrame(schema={**LEDGER_COLUMNS, "detail": pl.String, "stage": pl.String, "order": pl.Int32})
    return pl.concat(frames, how="vertical_relaxed").sort("order", "file", "line", maintain_order=True)


def document_at(url: str, line: int):
    """The document on line ``line`` (1-based) of a document file."""
    try:
        for number, doc in io.read_selected(url, {line}):
            if number == line:
                return doc
    except ValueError as e:  # the line is there but is not a document
        raise UserError(f"{url} line {line} is not a document: {e}") from None
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


def ledger_files(stage: Stage, max_files: int | None = None) -> list[str]:
    """A stage's ledger files, in order (at most ``max_files``: a bounded sample of a large run)."""
    pattern = io.join(ledger_dir(stage), "documents")
    files = io.list_files(pattern) if io.is_remote(pattern) or io.exists(pattern) else []
    return [f for f in files if f.endswith(".parquet")][:max_files]


_REASON = pl.col("reason").cast(pl.String)


def _removed(url: str) -> pl.LazyFrame:
    return scan_ledger(url).filter(pl.col("outcome").cast(pl.String) != KEPT)


def removal_counts(files: list[str]) -> list[dict[str, int]]:
    """Per ledger file, its dropped and quarantined rows per reason (counted as the file streams by)."""
    counts = []
    for url in files:
        frame = _removed(url).group_by(_REASON).len().collect(engine="streaming")
        counts.append(dict(zip(frame["reason"].to_list(), frame["len"].to_list())))
    return counts


def sample_of(files: list[str], counts: list[dict[str, int]], reasons: set[str], n: int, seed: int) -> pl.DataFrame:
    """``n`` seeded rows among the removed rows of ``files`` whose reason is one of ``reasons``, numbered across
    the files in order (``counts``: :func:`removal_counts` of them). Each file streams by once with a filter on
    the picked positions, so memory does not grow with the rows a reason removed, only with ``n``."""
    sizes = [sum(c.get(r, 0) for r in reasons) for c in counts]
    chosen = sorted(random.Random(seed).sample(range(sum(sizes)), min(n, sum(sizes))))
    frames, start = [], 0
    for url, size in zip(files, sizes):
        if local := [i - start for i in chosen if start <= i < start + size]:
            frame = _removed(url).filter(_REASON.is_in(sorted(reasons))).with_row_index("_at")
            frame = frame.filter(pl.col("_at").is_in(local)).drop("_at").collect(engine="streaming")
            frames.append(frame.cast({**LEDGER_COLUMNS, "detail": pl.String}))
        start += size
    empty = pl.DataFrame(schema={**LEDGER_COLUMNS, "detail": pl.String})
    return pl.concat(frames, how="vertical_relaxed") if frames else empty


def sample_removed(stages: list[Stage], stage: str, reason: str, n: int, seed: int) -> pl.DataFrame:
    """``n`` rows (seeded) of ``stage``'s ledger that were dropped or quarantined with a reason containing
    ``reason`` (every removal when it is empty)."""
    by_name = {s.name: s for s in stages}
    if stage not in by_name:
        raise UserError(f"no stage named {stage!r}; stages: {', '.join(by_name)}")
    files = ledger_files(by_name[stage])
    counts = removal_counts(files)
    every = sorted(set().union(*counts))
    matching = {r for r in every if reason in r}
    if not any(c.get(r) for c in counts for r in matching):
        raise UserError(f"{stage}: no document removed for {reason!r}; its reasons: {', '.join(every) or 'none'}")
    return sample_of(files, counts, matching, n, seed)


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
