"""dolma-curator: Dolma-format pretraining-data curation with a per-document ledger.

``from dolma import pipeline`` is the Python API (:mod:`dolma.app.pipeline`); the package's floors are
``core`` → ``io`` → ``runtime`` → the stages (``ingest``, ``dedup``, ``tokenize``, and the top-level
``taggers``, ``mixers``, ``pdf_extract``) → ``app``; each imports only the floors below it.
"""

import os

from dolma.core.allocators import return_freed_memory

__all__ = ["load_recipe", "pipeline", "run_stages"]

return_freed_memory()  # before polars loads (dolma.core.allocators says why)
# a worker is one process per core, so numpy's OpenBLAS gets one thread: starting one per core at import cost
# ~0.08 CPU s in every process (numpy's import: 0.17 -> 0.09 s), and nothing here multiplies large matrices
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


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
