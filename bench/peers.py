"""Peer tools (allenai dolma, datatrove, ai2-olmo-core) installed from PyPI into their own virtual environments.

Each lives in ``$DOLMA_PEERS_DIR`` (default ``~/.cache/dolma-curator/peers``) and is created on first use, so
benchmarks and compatibility tests run them side by side with ours without sharing an environment (allenai's
package is also called ``dolma``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PEERS = {
    # plain `pip install dolma` backtracks for many minutes; these pins resolve at once
    "allenai-dolma": [
        "dolma==1.2.1",
        "boto3==1.28.17",
        "botocore==1.31.17",
        "aiobotocore==2.5.4",
        "fsspec==2023.6.0",
        "backports.zstd",
    ],
    "datatrove": [
        "datatrove[processing]==0.10.1",
        "spacy",
        "lxml_html_clean",
        "orjson",
        "faust-cchardet",
        "python-magic",
        "warcio",
    ],
    # torch 2.13.0 is the CPU build pip finds locally; a newer or unpinned torch pulls several GB of CUDA wheels
    "olmo-core": ["torch==2.13.0", "ai2-olmo-core==3.0.0"],
}


def peers_dir() -> Path:
    return Path(os.environ.get("DOLMA_PEERS_DIR", Path.home() / ".cache" / "dolma-curator" / "peers"))


def ensure_peer(name: str) -> Path:
    """Return the peer's venv ``bin`` folder, creating the venv on first use."""
    venv = peers_dir() / name
    ready = venv / ".ready"
    if not ready.exists() or ready.read_text() != " ".join(PEERS[name]):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *PEERS[name]], check=True)
        ready.write_text(" ".join(PEERS[name]))
    return venv / "bin"


def peer_env() -> dict[str, str]:
    """allenai dolma downloads nltk's punkt at start-up; an empty local punkt folder stops that."""
    nltk = peers_dir() / "nltk_data"
    (nltk / "tokenizers" / "punkt").mkdir(parents=True, exist_ok=True)
    return {**os.environ, "NLTK_DATA": str(nltk), "RAYON_NUM_THREADS": os.environ.get("RAYON_NUM_THREADS", "2")}


def run_allenai_dolma(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    bin_dir = ensure_peer("allenai-dolma")
    proc = subprocess.run([str(bin_dir / "dolma"), *args], capture_output=True, text=True, env=peer_env(), cwd=cwd)
    if proc.returncode != 0:
        raise RuntimeError(f"allenai dolma {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc
