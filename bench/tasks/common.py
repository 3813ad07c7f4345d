"""What the benchmark tasks share: their inputs cut from the shared corpora, command lines, and readers of the
outputs the equivalence checks compare (ledger summaries, attribute files, token files)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import zstandard

from bench.peers import ensure_peer, peer_env

PEER_SCRIPTS = Path(__file__).resolve().parent.parent / "peer_scripts"


def ours(*args: str) -> list[str]:
    """``dolma ARGS`` as a user runs it: the installed console script beside this interpreter."""
    script = Path(sys.executable).parent / "dolma"
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "dolma", *args]


def ceiling(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.ceilings", *args]


def allenai(*args: str) -> list[str]:
    return [str(ensure_peer("allenai-dolma") / "dolma"), *args]


def datatrove(script: str, *args: str) -> list[str]:
    return [str(ensure_peer("datatrove") / "python"), str(PEER_SCRIPTS / script), *args]


def allenai_env() -> dict[str, str]:
    """allenai's start-up settings (no nltk download) with one Rayon thread, like every contender."""
    env = peer_env()
    return {k: v for k, v in env.items() if k in ("NLTK_DATA",)} | {"RAYON_NUM_THREADS": "1"}


def lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    elif path.name.endswith(".zst"):  # every frame: the toolkit writes a file as several checked frames
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()
    return data.splitlines()


def write_lines(path: Path, rows: list[bytes]) -> int:
    """Gzip (level 6, as the corpora are) ``rows`` to ``path``; their uncompressed bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = b"".join(r + b"\n" for r in rows)
    path.write_bytes(gzip.compress(body, compresslevel=6, mtime=0))
    return len(body)


def cut(files: list[Path], share: float, folder: Path, limit: int | None = None) -> tuple[int, int]:
    """The first ``share`` (or ``limit``) of the lines of every file, under the same names in ``folder``;
    (their JSON bytes, their number)."""
    size = docs = 0
    for f in files:
        rows = lines(f)
        rows = rows[: limit or max(1, round(len(rows) * share))]
        size += write_lines(folder / f.name, rows)
        docs += len(rows)
    return size, docs


def link_documents(src: Path, out: Path) -> None:
    """``out/documents/<name>`` links to each of ``src``'s files: a tool that writes attributes beside its
    documents (``attributes/<set>/<name>``) then writes them under ``out``, and every run starts clean."""
    (out / "documents").mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        if f.is_file():
            os.symlink(f, out / "documents" / f.name)


def link_input(size, out: Path) -> None:
    """A contender's ``prepare``: link the size's input folder's files under ``out/documents``."""
    link_documents(size.inputs["dir"], out)


def summaries(out: Path) -> dict[str, int]:
    """read/kept/dropped/quarantined summed over every ledger summary under ``out``."""
    totals = {"read": 0, "kept": 0, "dropped": 0, "quarantined": 0}
    for path in out.rglob("_ledger/*/summary.json"):
        s = json.loads(path.read_text())
        for k in totals:
            value = s.get(k, 0)
            totals[k] += value if isinstance(value, int) else sum(value.values())
    return totals


def printed(out: Path) -> dict[str, int]:
    """``name value`` lines a ceiling printed."""
    rows = (line.split() for line in (out / "_stdout.txt").read_text().splitlines())
    return {r[0]: int(r[1]) for r in rows if len(r) == 2 and r[1].isdigit()}


def attributes(folder: Path) -> Iterator[dict]:
    """Every attribute row of every file under ``folder`` (gz or zst)."""
    for f in sorted(folder.rglob("*")):
        hidden = any(p.startswith(("_", ".")) for p in f.relative_to(folder).parts)
        if f.is_file() and not hidden and f.name.endswith((".gz", ".zst", ".jsonl")):
            for line in lines(f):
                if line.strip():
                    yield json.loads(line)


def token_documents(folder: Path, dtype: str = "uint32") -> dict[str, bytes]:
    """Every document's token ids in a folder of ``.npy`` + ``.csv.gz`` pairs (ours and allenai's layout)."""
    out = {}
    for meta in sorted(folder.rglob("*.csv.gz")):
        npy = Path(str(meta)[: -len(".csv.gz")] + ".npy")
        tokens = np.fromfile(npy, dtype=dtype)
        for row in csv.reader(io.StringIO(gzip.decompress(meta.read_bytes()).decode())):
            start, end, doc_id = int(row[0]), int(row[1]), row[2]
            out[doc_id] = tokens[start:end].tobytes()
    return out


class NotEquivalent(AssertionError):
    pass


def require(condition: bool, message: str) -> None:
    if not condition:
        raise NotEquivalent(message)
