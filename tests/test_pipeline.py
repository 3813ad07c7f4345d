"""The Python API and the stage contract: every stage kind and group runs through one entry point, and a
preset fills only what a recipe or command line leaves unset."""

import re
import subprocess
import sys

from conftest import ROOT, SAMPLE, run_cli, sample_docs, write_jsonl_gz

from dolma import run_stages
from dolma.app.recipe import load_recipe
from dolma.dedup.clusters import DedupStage
from dolma.runtime.executors import LocalExecutor
from dolma.runtime.stage import Stage, StageGroup, expand


def test_run_stages_accepts_a_group_and_runs_its_steps(tmp_path):
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", sample_docs("python-docs", 40))
    group = DedupStage(input=str(tmp_path / "documents" / "*.jsonl.gz"), work=str(tmp_path / "dedup"), bands=20, rows=5)
    assert isinstance(group, StageGroup) and all(isinstance(s, Stage) for s in expand([group]))
    results = run_stages([group], LocalExecutor(1))
    # a shard without duplicates is all stars after one large-star and one small-star round
    assert [r.name for r in results] == [
        "dedup-signatures", "dedup-pairs", "dedup-verify", "dedup-graph", "dedup-components-001",
        "dedup-components-002", "dedup-labels", "dedup-route", "dedup-clusters", "dedup-attributes",
    ]  # fmt: skip
    assert results[-1].summary.read == 40
    bands = sorted(p.name for p in (tmp_path / "dedup" / "bands").iterdir())
    assert len(bands) == 20  # the explicit bands, not the preset's 26


def test_recipe_with_explicit_bands_and_rows_runs_with_them(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "stages:\n"
        "  - {stage: dedup, input: x/documents/*.gz, work: w, bands: 20, rows: 5}\n"
        "  - {stage: dedup, name: fw, input: x/documents/*.gz, work: w2, preset: fineweb, rows: 3}\n"
    )
    _, stages = load_recipe(str(recipe))
    first, second = stages[0].params, stages[9].params
    assert (first.bands, first.rows, first.ngram, first.jaccard_threshold) == (20, 5, 5, 0.8)
    assert (second.bands, second.rows, second.jaccard_threshold) == (14, 3, None)  # the rest from fineweb


def test_command_line_dedup_uses_explicit_bands_and_rows(tmp_path):
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", sample_docs("python-docs", 20))
    out = run_cli(
        "dedup", "--documents", str(tmp_path / "documents" / "*.jsonl.gz"), "--work", str(tmp_path / "w"),
        "--bands", "20", "--rows", "5", "--workers", "1",
    ).stdout  # fmt: skip
    assert "20 bands × 5 rows" in out and "Jaccard ≥ 0.8" in out


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(from dolma import pipeline\n.*?)```", text, re.S)
    assert block, "the README has no pipeline example"
    return block.group(1)


def test_readme_pipeline_example_runs(tmp_path):
    code = readme_example().replace("dolma/sample", str(SAMPLE.parent)).replace("out/", f"{tmp_path}/out/")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("import", "tag", "dedup-signatures", "dedup-attributes"):
        assert re.search(rf"^{name}: read \d", proc.stdout, re.M), proc.stdout
    assert (tmp_path / "out" / "api" / "attributes" / "quality").is_dir()
