"""dolma-curator: Dolma-format pretraining-data curation with a per-document ledger."""

from dolma.cli import run_stages
from dolma.importer import ImportStage
from dolma.recipe import load_recipe

__all__ = ["ImportStage", "load_recipe", "run_stages"]
