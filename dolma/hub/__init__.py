"""Hugging Face datasets in and out: a ``datasets`` folder or a hub-layout repository as a source, and a
mix exported as a hub dataset (Parquet shards and a dataset card)."""
