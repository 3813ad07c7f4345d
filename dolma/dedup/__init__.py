"""Deduplication stages: documents (exact or MinHash LSH, in five restartable steps) and paragraphs.

``params`` (shared parameters and presets), ``minhash`` (shingles and signatures), ``components`` (connected
components), ``steps`` (signatures, pairs, verification), ``clusters`` (keepers, attributes and the
``dedup`` group) and ``paragraphs`` (paragraph dedup with a Bloom filter). Built on the core, io and runtime
floors; no other stage is imported.
"""
