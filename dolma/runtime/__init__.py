"""The third floor: how stages run. It builds on :mod:`dolma.core` and :mod:`dolma.io` only.

``stage`` declares the stage contract (:class:`Stage`, :class:`StageGroup`, typed task payloads), ``ledger``
accounts for every document, ``shards`` holds the loops every per-shard stage shares (read, count, quarantine,
report progress; write aligned attribute lines), ``executors`` map tasks over local processes or a Ray
cluster, ``run`` makes a rerun idempotent (atomic outputs, markers written last) and ``report`` holds the parts
of the HTML report that stages contribute.
"""
