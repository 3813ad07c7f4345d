"""dolma-curator: Dolma-format pretraining-data curation with a per-document ledger."""

__all__ = ["ImportStage", "load_recipe", "run_stages"]


def __getattr__(name: str):
    """The public API, imported on first use (so ``python -m dolma.cli`` does not import the CLI twice)."""
    if name == "run_stages":
        from dolma.cli import run_stages

        return run_stages
    if name == "ImportStage":
        from dolma.importer import ImportStage

        return ImportStage
    if name == "load_recipe":
        from dolma.recipe import load_recipe

        return load_recipe
    raise AttributeError(name)
