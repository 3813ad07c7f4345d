"""Deduplication stages: documents (exact or MinHash LSH, in restartable steps of many tasks) and paragraphs.

``params`` (shared parameters and presets), ``minhash`` (shingles and signatures), ``components`` and
``component_steps`` (distributed connected components), ``steps`` (signatures, pairs, verification),
``clusters`` (keepers, attributes and the ``dedup`` group) and ``paragraphs`` (paragraph dedup, exact or with a
Bloom filter). Built on the core, io and runtime floors; no other stage is imported.
"""
