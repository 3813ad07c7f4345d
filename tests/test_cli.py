"""The command line and recipes: help, validation errors that name the key, one-line user errors."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from conftest import ROOT, run_cli

from dolma.app.recipe import load_recipe
from dolma.core.errors import UserError


def test_help_lists_the_stages():
    out = run_cli("--help").stdout
    assert "run" in out and "import" in out
    assert "--attributes" in run_cli("import", "--help").stdout


def test_every_subcommand_help_formats():
    """Each subcommand's --help is built from its stage's parameter help: a literal '%' in one (``~3%``) must
    not make argparse's help formatting raise for the user."""
    import argparse

    from dolma.app.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"web", "pdf", "tag", "dedup", "tokenize"} <= set(subparsers.choices)
    for name, sub in subparsers.choices.items():
        assert sub.format_help(), name
    assert "~3% of main text" in " ".join(subparsers.choices["web"].format_help().split())


def test_recipe_errors_name_the_offending_key(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("stages:\n  - stage: import\n    input: x\n    output: y\n    compression: lz77\n")
    with pytest.raises(UserError, match=r"stages\[0\]\.compression: Input should be 'zst', 'gz', 'jsonl' or 'parquet'"):
        load_recipe(str(bad))
    bad.write_text("stages:\n  - stage: import\n    input: x\n    output: y\n    batch_size: many\n")
    with pytest.raises(UserError, match=r"stages\[0\]\.batch_size: Input should be a valid integer"):
        load_recipe(str(bad))
    bad.write_text("stages:\n  - stage: import\n    input: x\n    outptu: y\n")
    with pytest.raises(UserError, match=r"stages\[0\]\.outptu: unknown key; did you mean 'output'\?"):
        load_recipe(str(bad))
    bad.write_text("executor: {kind: local, workers: 0}\nstages:\n  - stage: import\n    input: x\n    output: y\n")
    with pytest.raises(UserError, match=r"recipe\.executor\.workers"):
        load_recipe(str(bad))
    bad.write_text("stages:\n  - stage: frobnicate\n")
    with pytest.raises(UserError, match=r"unknown stage kind 'frobnicate'"):
        load_recipe(str(bad))


def test_user_errors_exit_nonzero_with_one_line_and_no_traceback(tmp_path):
    proc = run_cli("import", "--input", str(tmp_path / "missing/*.gz"), "--output", str(tmp_path / "o"), check=False)
    assert proc.returncode == 2
    assert "error: no document files" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("run", str(tmp_path / "nope.yaml"), check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_quickstart_recipe_runs_on_the_bundled_sample(tmp_path):
    recipe = (ROOT / "configs" / "quickstart.yaml").read_text()
    recipe = recipe.replace("dolma/sample", str(ROOT / "dolma" / "sample")).replace("out/quickstart", str(tmp_path))
    path = tmp_path / "quickstart.yaml"
    path.write_text(recipe)
    proc = run_cli("run", str(path), "--workers", "2")
    assert "Summary" in proc.stdout
    summary = json.loads((tmp_path / "documents/_ledger/import/summary.json").read_text())
    assert summary["read"] == summary["kept"] == 1050
    pdf = json.loads((tmp_path / "documents/pdf/_ledger/pdf/summary.json").read_text())
    assert pdf["read"] == pdf["kept"] == 4 and pdf["metrics"]["pages_ocr"] == (1 if shutil.which("tesseract") else 0)
    for stage in ("pretrain", "midtrain", "long-context"):
        manifest = json.loads((tmp_path / "tokens" / stage / "manifest.json").read_text())
        assert manifest["tokens"] > 0, stage
    long_context = json.loads((tmp_path / "tokens/long-context/manifest.json").read_text())
    assert set(long_context["tokens_per_source"]) == {"pdf"}
    # with 2 workers every stage made many tasks (counted from its completion markers), but where the input is
    # one unit: the one WARC file, each mix's pool that fits one shuffle partition (partition_tokens) and the one
    # file it writes; and the mix plans, one task over bounded input: the ids step's histograms, or its rows up to
    # plan_exact_rows (the ids step itself runs as a task per hash partition)
    tasks = {d.parent.name: len(list(d.rglob("*.json"))) for d in tmp_path.rglob("_ledger/*/done")}
    mixes = ("pretrain", "midtrain", "long-context")
    single = {"web"} | {f"mix-{m}-{s}" for m in mixes for s in ("plan", "write")} | {f"tokenize-{m}" for m in mixes}
    assert {name for name, n in tasks.items() if n == 1} == single, tasks
    assert len(tasks) == 35 and tasks["dedup-components-001"] == tasks["dedup-clusters"] == 7, tasks

    report = tmp_path / "report.html"
    assert f"report: {report}" in proc.stdout
    check_report_renders(report, tmp_path)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def check_report_renders(report, tmp_path):
    """Open the report in headless Chromium: every plot must decode, and the screenshot must show them."""
    html = report.read_text()
    titles = ("Funnel", "What the rules removed", "What each stream kept", "Quality and language", "Duplicates")
    for title in (*titles, "Mix mix-pretrain", "Long-context pool"):
        assert f"<h2>{title}" in html, title
    assert "http://" not in html.replace("http://127.0.0.1", "") and "<script src" not in html  # self-contained
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (.ci/run installs it)")
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}"]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    rendered = re.search(r"plots rendered: (\d+)/(\d+)", dom)
    assert rendered and rendered.group(1) == rendered.group(2) and int(rendered.group(2)) >= 12, dom[-500:]
    samples = dom.count("<details>")  # sampled documents: present and folded away until clicked
    assert samples >= 10 and "<details open" not in dom, samples
    shot = tmp_path / "report.png"
    subprocess.run(
        [CHROMIUM, *flags, "--window-size=1100,4000", f"--screenshot={shot}", report.as_uri()],
        capture_output=True,
        timeout=120,
    )
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"))
    coloured = (pixels.max(axis=2) - pixels.min(axis=2)) > 60  # plot bars and lines, not black-on-white text
    assert coloured.mean() > 0.02, coloured.mean()


def test_every_bundled_recipe_validates(monkeypatch):
    monkeypatch.setenv("POOL", "/data/pool")
    monkeypatch.setenv("TARGET", "1000000")
    names = {}
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        _, stages = load_recipe(str(path))
        names[path.stem] = [s.name for s in stages]
    assert set(names) >= {"quickstart", "pretrain", "midtrain", "long-context", "dolma3-mix"}
    assert names["pretrain"][-1] == "tokenize" and "mix-plan" in names["long-context"]


def test_each_stage_says_how_many_tasks_it_made_and_why(tmp_path):
    """Loose HTML pages are grouped by bytes (task_mb), so a folder of pages keeps every worker busy, and the
    stage says so when it starts; a per-shard stage says one task per input file."""
    pages = tmp_path / "pages"
    pages.mkdir()
    for k in range(6):
        for f in (ROOT / "tests/fixtures/html").glob("*.html"):
            (pages / f"{k}-{f.name}").write_bytes(f.read_bytes())
    size_mb = sum(p.stat().st_size for p in pages.iterdir()) / 1e6
    out = tmp_path / "documents"
    proc = run_cli("web", "--input", str(pages), "--output", str(out), "--task-mb", f"{size_mb / 4:.4f}")
    said = re.search(r"web: (\d+) tasks, 18 loose HTML pages in (\d+) groups of about", " ".join(proc.stderr.split()))
    assert said and said[1] == said[2] and 4 <= int(said[1]) <= 5
    proc = run_cli("tag", "--documents", str(out) + "/*.jsonl.zst", "--taggers", "stats_v1")
    assert f"tag: {said[1]} tasks, one per input file" in proc.stderr
