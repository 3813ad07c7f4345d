"""The ``hf_import`` stage: a Hugging Face dataset as a source of Dolma documents.

The input is a folder written by ``datasets``' ``save_to_disk`` (a ``Dataset``: ``state.json`` and Arrow
files; a ``DatasetDict``: ``dataset_dict.json`` and one such folder per split) or a repository in the hub's
layout (Parquet or JSON Lines data files, split by the ``configs`` of its ``README.md`` or by the hub's file
naming rules, which ``datasets`` resolves). Each data file is one task, read in Arrow record batches, so
memory is bounded by a batch.

``fields`` maps our fields to the dataset's columns (default ``id``, ``text``, ``source``, ``added``,
``created``, ``metadata`` where the dataset has columns of those names). Every other column goes into
``metadata``; a ``metadata`` column (a struct, or JSON-object strings as ``hf_export`` writes) is merged with
them. A dataset without an id column gets ids ``<split>/<file>/<row>``. A row without text or id, or with an
id already seen in its file, is quarantined with the row as JSON; a mapped column that does not exist is an
error naming the columns there are. No network is used: ``HF_HUB_OFFLINE`` is set before ``datasets`` loads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec
import polars as pl
import pyarrow as pa

from dolma import io
from dolma.core.config import param
from dolma.core.document import Document
from dolma.core.errors import UserError
from dolma.runtime.executors import report_progress
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.stage import OneFile, Stage, Task

FIELDS = ("id", "text", "source", "added", "created", "metadata")
FORMATS = {"arrow": "arrow", "parquet": "parquet", "json": "json"}  # datasets' builder name -> how we read it


@dataclass(frozen=True)
class HubFile(OneFile):
    """One data file of a dataset, the split it belongs to and its format (arrow, parquet or json)."""

    url: str
    split: str
    format: str


def hub_files(root: str, config: str | None, splits: list[str]) -> list[HubFile]:
    """The data files of the dataset at ``root``, in order, restricted to ``splits`` when given."""
    if io.exists(io.join(root, "dataset_dict.json")):
        names = io.read_json(io.join(root, "dataset_dict.json"))["splits"]
        files = [f for name in names for f in _saved(io.join(root, name), name)]
    elif io.exists(io.join(root, "state.json")):
        files = _saved(root, None)
    else:
        files = _hub_layout(root, config)
    unknown = set(splits) - {f.split for f in files}
    if unknown:
        raise UserError(f"split {sorted(unknown)} not in {root} (it has {sorted({f.split for f in files})})")
    return [f for f in files if not splits or f.split in splits]


def _saved(folder: str, split: str | None) -> list[HubFile]:
    state = io.read_json(io.join(folder, "state.json"))
    name = split or state.get("_split") or "train"
    return [HubFile(io.join(folder, f["filename"]), name, "arrow") for f in state["_data_files"]]


def _hub_layout(root: str, config: str | None) -> list[HubFile]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets

    try:
        builder = datasets.load_dataset_builder(root, name=config)
    except (ValueError, FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as e:
        raise UserError(f"{root} is not a datasets folder or a hub-layout repository: {e}") from None
    if builder.name not in FORMATS:
        raise UserError(f"{root}: data files of format {builder.name!r}; hf_import reads {sorted(FORMATS)}")
    return [
        HubFile(url, str(split), FORMATS[builder.name])
        for split, urls in builder.config.data_files.items()
        for url in urls
    ]


def record_batches(file: HubFile, batch_size: int) -> Iterator[pa.RecordBatch]:
    """The file's rows in Arrow record batches of at most ``batch_size`` rows."""
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    with io.open_url(file.url, "rb") as f:
        if file.format == "parquet":
            yield from pq.ParquetFile(f).iter_batches(batch_size)
            return
        reader = pa.ipc.open_stream(f) if file.format == "arrow" else pajson.open_json(f)
        for batch in reader:
            for start in range(0, batch.num_rows, batch_size):
                yield batch.slice(start, batch_size)


@dataclass
class HubImportStage(Stage):
    input: str = param(help="a datasets save_to_disk folder, or a hub-layout repository folder")
    output: str = param(help="output folder of Dolma documents, <split>/<data file>.jsonl.zst")
    fields: dict[str, str] = param(help="our field -> the dataset's column, e.g. {text: content}", factory=dict)
    splits: list[str] = param(help="splits to read (default: all)", factory=list)
    config: str | None = param(None, "the hub configuration to read (default: the repository's default)")
    source: str | None = param(None, "the documents' source when no column maps to it (default: the folder name)")
    batch_size: int = param(4096, "rows per batch (bounds memory)", ge=1)
    name: str = param("hf_import", "the stage's name in the ledger (unique in a recipe)")

    def __post_init__(self) -> None:
        io.refuse_output_in_input(self.input, self.output, self.name)
        unknown = set(self.fields) - set(FIELDS)
        if unknown:
            raise UserError(f"{self.name}: fields maps {sorted(unknown)}; our fields are {', '.join(FIELDS)}")

    def tasks(self) -> list[Task]:
        root = self.input.rstrip("/")
        return [Task(_key(root, f), f) for f in hub_files(root, self.config, self.splits)]

    def task_basis(self, tasks: list[Task]) -> str:
        return "one per data file of the dataset"

    def run(self, task: Task, ledger: ShardLedger) -> None:
        file: HubFile = task.payload
        source = self.source or os.path.basename(self.input.rstrip("/"))
        seen: set[str] = set()
        row = 0
        with io.DocumentWriter(io.join(self.output, task.key + ".jsonl.zst")) as out:
            for batch in record_batches(file, self.batch_size):
                frame = pl.from_arrow(batch)
                assert isinstance(frame, pl.DataFrame)
                docs, lines, rejected = _documents(frame, self._columns(frame), source, task.key, row, seen)
                ledger.read += frame.height
                ledger.quarantined(file.url, rejected)
                ledger.kept(file.url, lines, [d.id for d in docs])
                out.write(docs)
                row += frame.height
                report_progress(frame.height, batch.nbytes)

    def _columns(self, frame: pl.DataFrame) -> dict[str, str]:
        """Our field -> the frame's column, for the fields the frame has."""
        missing = {k: v for k, v in self.fields.items() if v not in frame.columns}
        if missing:
            raise UserError(
                f"{self.name}: no column {sorted(missing.values())} in {self.input} (columns: {frame.columns})"
            )
        columns = {f: f for f in FIELDS if f in frame.columns and f not in self.fields.values()} | self.fields
        if "text" not in columns:
            raise UserError(f"{self.name}: {self.input} has no 'text' column; map one: fields: {{text: <column>}}")
        return columns


def _key(root: str, file: HubFile) -> str:
    rel = os.path.relpath(file.url, root) if not io.is_remote(file.url) else file.url.removeprefix(root + "/")
    stem = io.strip_suffix(rel.replace(os.sep, "/"))
    stem = stem.removesuffix(".arrow").removesuffix(".parquet").removesuffix(".jsonl").removesuffix(".json")
    return f"{file.split}/{stem.removeprefix(file.split + '/')}"


def _field_values(frame: pl.DataFrame, columns: dict[str, str], source: str, key: str, first: int) -> dict:
    """Each of our fields as a list over the frame's rows (vectorised), metadata as JSON-object strings."""
    n = frame.height
    out: dict[str, list] = {}
    if "id" in columns:
        out["id"] = frame[columns["id"]].cast(pl.String, strict=False).to_list()
    else:
        out["id"] = (pl.Series([f"{key}/"] * n) + pl.int_range(first, first + n, eager=True).cast(pl.String)).to_list()
    text = frame[columns["text"]]
    if text.dtype != pl.String:
        raise UserError(f"column {columns['text']!r} (text) holds {text.dtype}, not strings")
    out["text"] = text.to_list()
    for name in ("source", "added", "created"):
        if name not in columns:
            out[name] = [source if name == "source" else None] * n
            continue
        values = frame[columns[name]]
        if values.dtype.is_temporal():
            values = values.dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ" if values.dtype == pl.Datetime else "%Y-%m-%d")
        out[name] = values.cast(pl.String, strict=False).to_list()
    out["metadata"] = _metadata(frame, columns).to_list()
    return out


def _metadata(frame: pl.DataFrame, columns: dict[str, str]) -> pl.Series:
    """Unmapped columns as one JSON object per row, merged with a ``metadata`` column's object (they win)."""
    others = [c for c in frame.columns if c not in columns.values()]
    extra = frame.select(pl.struct(others).struct.json_encode()).to_series() if others else None
    if "metadata" not in columns:
        return extra if extra is not None else pl.Series(["{}"] * frame.height)
    meta = frame[columns["metadata"]]
    if isinstance(meta.dtype, pl.Struct):
        meta = meta.struct.json_encode()
    elif meta.dtype != pl.String:
        raise UserError(f"column {columns['metadata']!r} (metadata) holds {meta.dtype}: a struct or JSON text")
    meta = meta.fill_null("{}").str.strip_chars()
    if extra is None:
        return meta
    merged = pl.DataFrame({"m": meta, "e": extra}).select(
        pl.when(pl.col("m") == "{}")
        .then(pl.col("e"))
        .otherwise(pl.col("m").str.head(-1) + "," + pl.col("e").str.tail(-1))
    )
    return merged.to_series()


def _object(text: str) -> bool:
    try:
        return isinstance(msgspec.json.decode(text), dict)
    except msgspec.DecodeError:
        return False


def _documents(
    frame: pl.DataFrame, columns: dict[str, str], source: str, key: str, first: int, seen: set[str]
) -> tuple[list[Document], list[int], list[io.Rejected]]:
    """The batch's usable rows as documents with their row numbers (1-based), and the rejected rows."""
    values = _field_values(frame, columns, source, key, first)
    check_metadata = "metadata" in columns and frame[columns["metadata"]].dtype == pl.String
    docs, lines, rejected = [], [], []
    for i, (doc_id, text, src, added, created, meta) in enumerate(zip(*(values[f] for f in FIELDS))):
        number = first + i + 1
        if doc_id is None or text is None:
            problem = ("invalid_schema", f"no {'id' if doc_id is None else 'text'} (null)")
        elif check_metadata and not _object(meta):
            problem = ("invalid_schema", "metadata is not a JSON object")
        elif doc_id in seen:
            problem = ("duplicate_id", f"id {doc_id!r} already in this file")
        else:
            seen.add(doc_id)
            docs.append(Document(doc_id, text, src or "", added, created, msgspec.Raw(meta.encode())))
            lines.append(number)
            continue
        raw = frame.slice(i, 1).write_ndjson().strip().encode()
        rejected.append(io.rejected_line(number, problem[0], problem[1], raw, doc_id))
    return docs, lines, rejected
