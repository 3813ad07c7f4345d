"""The ``hf_export`` stage: documents (a mix) as a dataset in the Hugging Face hub's layout.

The output folder is what ``huggingface-cli upload`` (or ``git push``) publishes and what
``datasets.load_dataset(folder)`` reads: ``data/<split>-NNNNN-of-NNNNN.parquet``, one per input document
file (id, text, source, added, created, and metadata as JSON text, since documents' metadata differ in shape),
and a ``README.md`` dataset card whose YAML header gives the licence, the config's data files and the
features and sizes of the split, built with ``datasets``' own card data. Each input file is a task; the card
is written once all are done, from the Parquet files' footers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import pyarrow.parquet as pq

from dolma import io
from dolma.core.config import param
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.shards import read_shard
from dolma.runtime.stage import Shard, Stage, Task


@dataclass
class HubExportStage(Stage):
    input: str = param(help="glob or folder of document files, e.g. a mix's output folder")
    output: str = param(help="the dataset folder: data/*.parquet and README.md")
    format: Literal["hf"] = param("hf", "the layout written: hf, the Hugging Face hub's")
    split: str = param("train", "the split the documents form")
    license: str = param("other", "the licence id the card declares (e.g. odc-by, cc-by-4.0)")
    pretty_name: str | None = param(None, "the dataset's title on its card (default: the folder name)")
    batch_size: int = param(4096, "documents per batch (bounds memory)", ge=1)
    name: str = param("hf_export", "the stage's name in the ledger (unique in a recipe)")

    def __post_init__(self) -> None:
        io.refuse_output_in_input(self.input, self.output, self.name)

    def tasks(self) -> list[Task]:
        files = io.document_files(self.input)
        return [Task(f"{self.split}-{i:05d}-of-{len(files):05d}", Shard(url, i)) for i, url in enumerate(files)]

    def task_basis(self, tasks: list[Task]) -> str:
        return "one Parquet file per input document file"

    def run(self, task: Task, ledger: ShardLedger) -> None:
        with io.DocumentWriter(self._data(task)) as out:
            for batch in read_shard(task.payload.url, ledger, self.batch_size, keep_all=True):
                out.write(batch.docs)

    def _data(self, task: Task) -> str:
        return io.join(self.output, "data", task.key + ".parquet")

    def finish(self, tasks: list[Task]) -> None:
        """Write ``README.md``: the card's YAML header (licence, configs, features, split sizes) and a body."""
        from datasets import DatasetInfo, Features, SplitDict, SplitInfo
        from datasets.info import DatasetInfosDict
        from huggingface_hub import DatasetCard, DatasetCardData

        metas = [pq.read_metadata(_local_or_buffer(self._data(t))) for t in tasks]
        if not metas:
            return
        rows = sum(m.num_rows for m in metas)
        nbytes = sum(m.row_group(g).total_byte_size for m in metas for g in range(m.num_row_groups))
        stored = sum(m.serialized_size + _compressed(m) for m in metas)
        splits = SplitDict()
        splits.add(SplitInfo(name=self.split, num_bytes=nbytes, num_examples=rows))
        features = Features.from_arrow_schema(metas[0].schema.to_arrow_schema())
        info = DatasetInfo(features=features, splits=splits, download_size=stored, dataset_size=nbytes)
        title = self.pretty_name or os.path.basename(self.output.rstrip("/"))
        data_files = [{"split": self.split, "path": f"data/{self.split}-*"}]
        card_data = DatasetCardData(
            license=self.license, pretty_name=title, configs=[{"config_name": "default", "data_files": data_files}]
        )
        DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
        body = (
            f"# {title}\n\n{rows:,} documents in {len(tasks)} Parquet files (`data/`), exported from "
            f"`{self.input}` in the Dolma format: `id`, `text`, `source`, `added`, `created`, and `metadata` "
            "as a JSON object in text (`json.loads` it).\n\n"
            "```python\nfrom datasets import load_dataset\n"
            f'ds = load_dataset("path/or/hub-id", split="{self.split}")\n```\n'
        )
        card = DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")
        with io.AtomicWriter(io.join(self.output, "README.md")) as w:
            w.write(str(card).encode())


def _compressed(meta: pq.FileMetaData) -> int:
    """The bytes of a Parquet file's column chunks, as stored."""
    groups = (meta.row_group(g) for g in range(meta.num_row_groups))
    return sum(g.column(c).total_compressed_size for g in groups for c in range(g.num_columns))


def _local_or_buffer(url: str):
    """A local path as is; an object-store file read whole (a footer read would need a seekable handle)."""
    if not io.is_remote(url):
        return url
    import pyarrow as pa

    with io.open_url(url, "rb") as f:
        return pa.BufferReader(f.read())
