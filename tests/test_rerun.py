"""Reruns redo what changed and nothing else: fingerprinted completion, --force, --dry-run, kill -9 at any
stage, and one writer per output folder."""

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, SAMPLE, read_jsonl, run_cli
from tools.compare_trees import compare

SAMPLE_PDF = ROOT / "dolma" / "sample" / "pdf"

RECIPE = """
executor: {{kind: local, workers: 2}}
stages:
  - stage: pdf
    input: {pdfs}
    output: {out}/documents/pdf
    files_per_shard: 2
    ocr: false
  - stage: import
    input: {sample}/*.jsonl.gz
    output: {out}/documents
  - stage: tag
    input: {out}/documents/*.jsonl.zst
    experiment: quality
    taggers: [{taggers}]
  - stage: dedup
    input: {out}/documents/*.jsonl.zst
    work: {out}/dedup
  - stage: mix
    name: mix
    work: {out}/mix-work
    output: {out}/mix
    target_tokens: {target}
    max_repetition: 4
    streams:
      - name: prose
        documents: ["{out}/documents/python-docs.jsonl.zst", "{out}/documents/sympy-docs.jsonl.zst"]
        attributes: [quality, dedup]
        share: 0.8
        quality: quality__fineweb_v1__line_punct_ratio
        tokens: quality__stats_v1__tokens
        exclude: ["$.attributes[?(@.dedup__minhash__duplicate[0][2] == 1)]"]
      - name: code
        documents: ["{out}/documents/go-src.jsonl.zst"]
        attributes: [quality, dedup]
        tokens: quality__stats_v1__tokens
  - stage: tokenize
    input: {out}/mix/*.jsonl.zst
    output: {out}/tokens
"""


def write_recipe(tmp: Path, out: Path, target=400_000, taggers="fineweb_v1, stats_v1") -> Path:
    path = tmp / f"recipe-{target}-{len(taggers)}.yaml"
    text = RECIPE.format(pdfs=SAMPLE_PDF, sample=SAMPLE, out=out, target=target, taggers=taggers)
    path.write_text(text)
    return path


def markers(out: Path) -> dict[str, float]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("_ledger/*/done/**/*.json")}


def test_reruns_redo_what_changed_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path, out)
    run_cli("run", str(recipe))
    first = markers(out)
    plan_before = json.loads((out / "mix-work" / "plan.json").read_text())
    tokens_before = json.loads((out / "tokens" / "manifest.json").read_text())["tokens"]

    # unchanged: every marker is reused, and the run says so
    proc = run_cli("run", str(recipe))
    assert markers(out) == first
    assert "tag: 4 unchanged (skipped)" in proc.stderr and "redone" not in proc.stderr
    assert run_cli("plan", str(recipe)).stdout.count("unchanged (skipped)") == len(
        {k.split("/_ledger/")[1].split("/")[0] for k in first}
    )

    # a new mix target: a new plan and new token files; the stages before the mix are not touched
    changed = write_recipe(tmp_path, out, target=300_000)
    dry = run_cli("run", str(changed), "--dry-run").stdout
    assert "mix-stats: 3 redone (parameters changed)" in dry and "tag: 4 unchanged" in dry
    assert markers(out) == first  # a dry run changes nothing
    run_cli("run", str(changed))
    now = markers(out)
    assert all(now[k] == v for k, v in first.items() if "/mix" not in k and "tokens" not in k)
    assert all(now[k] != v for k, v in first.items() if "/mix" in k or k.startswith("tokens"))
    plan = json.loads((out / "mix-work" / "plan.json").read_text())
    assert plan_before["target_tokens"] == 400_000 and plan["target_tokens"] == 300_000
    tokens = json.loads((out / "tokens" / "manifest.json").read_text())["tokens"]
    assert abs(tokens - 300_000) < 0.01 * 300_000 and tokens != tokens_before

    # changed tagger options: the attributes are redone, and so is everything that read them
    tagged = write_recipe(tmp_path, out, target=300_000, taggers="fineweb_v1, stats_v1, c4_v1")
    run_cli("run", str(tagged))
    again = markers(out)
    assert all(again[k] != now[k] for k in now if "/_ledger/tag/" in k or "/mix" in k or k.startswith("tokens"))
    assert all(again[k] == now[k] for k in now if "/_ledger/pdf/" in k or "/_ledger/import/" in k)
    line = read_jsonl(next((out / "attributes" / "quality").glob("go-src*")))[0]
    assert any("__c4_v1__" in k for k in line["attributes"])

    # --force redoes a stage whatever its fingerprint says
    run_cli("run", str(tagged), "--force", "import")
    forced = markers(out)
    assert all(forced[k] != again[k] for k in again if "/_ledger/import/" in k)
    assert all(forced[k] == again[k] for k in again if "/_ledger/pdf/" in k)


def test_fewer_pdfs_per_shard_leaves_no_duplicated_documents(tmp_path):
    out = tmp_path / "pdf" / "documents"
    args = ["pdf", "--input", str(SAMPLE_PDF), "--output", str(out), "--no-ocr", "--workers", "2"]
    run_cli(*args, "--files-per-shard", "3")
    assert len(list(out.glob("*.jsonl.zst"))) == 2
    proc = run_cli(*args, "--files-per-shard", "1")
    docs = [d for f in sorted(out.glob("*.jsonl.zst")) for d in read_jsonl(f)]
    assert len(docs) == len({d["id"] for d in docs}) == 3  # four PDFs, each once (the scan has no text layer)
    assert len(list(out.glob("*.jsonl.zst"))) == 4
    attributes = [a for f in sorted((out.parent / "attributes" / "pdf").glob("*.jsonl.zst")) for a in read_jsonl(f)]
    assert len(attributes) == 3
    assert "redone" in proc.stderr and "new" in proc.stderr


def wait_for(path_glob: Path, proc: subprocess.Popen, limit: float = 120) -> bool:
    started = time.monotonic()
    while time.monotonic() - started < limit and proc.poll() is None:
        if glob.glob(str(path_glob)):
            return True
        time.sleep(0.02)
    return False


def kill_when(pattern: Path, cmd: list[str], delay: float = 0.0) -> bool:
    """Start ``cmd``, SIGKILL its whole process group once ``pattern`` matches a file; whether it did."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hit = wait_for(pattern, proc)
    time.sleep(delay)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    return hit


def test_kill_during_each_stage_then_rerun_gives_the_same_bytes(tmp_path, monkeypatch):
    out = tmp_path / "out"  # every run writes here, so paths inside the files are the same
    scratch = tmp_path / "scratch"  # the runs' temporary folder: a killed worker must leave nothing in it
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    recipe = write_recipe(tmp_path, out)
    run_cli("run", str(recipe))
    reference = tmp_path / "reference"
    out.rename(reference)
    points = [  # (stage, a file that appears while it runs, how long to wait after it)
        ("pdf", "documents/pdf/_ledger/pdf/done/*.json", 0.0),
        ("dedup", "dedup/pairs/_ledger/dedup-pairs/done/*.json", 0.0),
        ("mix", "mix-work/shuffle/_ledger/mix-shuffle/done/*/*.json", 0.0),
        ("tokenize", "mix/_ledger/mix-write/done/*.json", 0.5),
    ]
    for stage, pattern, delay in points:
        assert kill_when(out / pattern, [sys.executable, "-m", "dolma", "run", str(recipe)], delay), stage
        run_cli("run", str(recipe))
        bad, _ = compare(reference, out)
        assert not [b for b in bad if "report.html" not in b], f"rerun after SIGKILL during {stage}: {bad[:5]}"
        assert not list(out.rglob("*.tmp")), "a killed run's temporary files were left behind"
        assert not list(scratch.iterdir()), f"a killed run left {list(scratch.iterdir())} in its temporary folder"
        subprocess.run(["rm", "-rf", str(out)], check=True)


def test_a_second_run_on_the_same_output_refuses_and_the_first_is_unharmed(tmp_path):
    recipe = (ROOT / "configs" / "quickstart.yaml").read_text()
    path = tmp_path / "quickstart.yaml"
    path.write_text(
        recipe.replace("dolma/sample", str(ROOT / "dolma" / "sample")).replace("out/quickstart", str(tmp_path / "a"))
    )
    run_cli("run", str(path), "--workers", "2")  # an uninterrupted run alone
    (tmp_path / "a").rename(tmp_path / "alone")
    first = subprocess.Popen(
        [sys.executable, "-m", "dolma", "run", str(path), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert wait_for(tmp_path / "a" / "tokens" / "pretrain" / "_ledger" / "lock.json", first)  # the last one it takes
    second = run_cli("run", str(path), "--workers", "2", check=False)
    assert second.returncode == 1, second.stderr
    assert "is being written by another run" in second.stderr and f"pid {first.pid}" in second.stderr
    assert "Traceback" not in second.stderr
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err.decode()[-2000:]
    bad, _ = compare(tmp_path / "alone", tmp_path / "a")
    assert not bad, bad[:5]
    assert not list((tmp_path / "a").rglob("lock.json"))
