"""dolma-curator: Dolma-format pretraining-data curation with a per-document ledger.

``from dolma import pipeline`` is the Python API (:mod:`dolma.app.pipeline`); the package's floors are
``core`` → ``io`` → ``runtime`` → the stages (``ingest``, ``dedup``, ``tokenize``, and the top-level
``taggers``, ``mixers``, ``pdf_extract``) → ``app``; each imports only the floors below it.
"""

import os

__all__ = ["load_recipe", "pipeline", "run_stages"]

# polars allocates through its own jemalloc, which by default keeps freed pages resident for seconds: between the
# phases of one large batch (words, lines, k-gram group-bys) that retention adds up, so a giant document's peak
# was the sum of its phases. Returning pages at once halves it (README: Memory) at no measurable
# cost in speed. jemalloc reads this when polars loads, so it is set on import of the package (and inherited by
# spawned workers); a value the user set wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")


def __getattr__(name: str):
    """The public API, imported on first use (so ``python -m dolma`` does not import the CLI twice)."""
    if name == "pipeline":
        from dolma.app import pipeline

        return pipeline
    if name == "run_stages":
        from dolma.runtime.run import run_stages

        return run_stages
    if name == "load_recipe":
        from dolma.app.recipe import load_recipe

        return load_recipe
    raise AttributeError(name)
