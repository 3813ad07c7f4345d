"""Where the benchmarks find the repository, the shared corpora and the bundled tokenizer (no toolkit import)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT.parent / "shared" / "corpora"
TOKENIZER = str(ROOT / "dolma" / "resources" / "tokenizers" / "allenai_dolma2.json")
