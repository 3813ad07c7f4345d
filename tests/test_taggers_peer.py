"""Our Gopher/C4/FineWeb decisions agree with datatrove's filters rule by rule (datatrove runs in its own venv)."""

import sys

import pytest
from conftest import ROOT, sample_docs, write_jsonl_gz

sys.path.insert(0, str(ROOT))
from bench.heuristics import agreement  # noqa: E402

pytestmark = pytest.mark.peer


def test_heuristic_rules_agree_with_datatrove_on_99_percent_of_documents(tmp_path):
    docs = (
        sample_docs("python-docs", 120)
        + sample_docs("postgresql-docs", 120)
        + sample_docs("sympy-docs", 80)
        + sample_docs("go-src", 80)
    )
    path = write_jsonl_gz(tmp_path / "docs.jsonl.gz", docs)
    result = agreement(str(path), len(docs))
    assert len(result) == 31
    low = {rule: share for rule, share in result.items() if share < 0.99}
    assert not low, low
