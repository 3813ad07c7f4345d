import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "dolma" / "sample" / "documents"
SHARED = ROOT.parent / "shared" / "corpora"


def read_jsonl(path) -> list[dict]:
    import smart_open

    with smart_open.open(str(path), "rb") as f:
        return [json.loads(line) for line in f]


def sample_docs(name: str = "python-docs", n: int | None = None) -> list[dict]:
    docs = read_jsonl(SAMPLE / f"{name}.jsonl.gz")
    return docs[:n] if n else docs


def write_jsonl_gz(path: Path, docs: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    return path


def run_cli(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "dolma", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"dolma {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under root (hidden temporary files included) with its bytes, but the tasks' state files
    (``_ledger/<stage>/state/``: fingerprints of paths and modification times, which differ between runs)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not is_state_file(p.relative_to(root))
    }


def is_state_file(rel: Path) -> bool:
    """Whether a path below an output root is a task's state file (``…/_ledger/<stage>/state/…``)."""
    parts = rel.parts
    return "_ledger" in parts and "state" in parts[parts.index("_ledger") + 1 :]


@pytest.fixture
def sample_dir() -> Path:
    return SAMPLE
