"""The command line and recipes: help, validation errors that name the key, one-line user errors."""

import json

import pytest
from conftest import ROOT, run_cli

from dolma.io import UserError
from dolma.recipe import load_recipe


def test_help_lists_the_stages():
    out = run_cli("--help").stdout
    assert "run" in out and "import" in out
    assert "--attributes" in run_cli("import", "--help").stdout


def test_recipe_errors_name_the_offending_key(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("stages:\n  - stage: import\n    input: x\n    output: y\n    compression: lz77\n")
    with pytest.raises(UserError, match=r"compression must be one of"):
        load_recipe(str(bad))
    bad.write_text("stages:\n  - stage: import\n    input: x\n    output: y\n    batch_size: many\n")
    with pytest.raises(UserError, match=r"stages\[0\]\.batch_size: Input should be a valid integer"):
        load_recipe(str(bad))
    bad.write_text("stages:\n  - stage: import\n    input: x\n    outptu: y\n")
    with pytest.raises(UserError, match=r"stages\[0\]: unknown key 'outptu'"):
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


def test_every_bundled_recipe_validates(monkeypatch):
    monkeypatch.setenv("POOL", "/data/pool")
    monkeypatch.setenv("TARGET", "1000000")
    names = {}
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        _, stages = load_recipe(str(path))
        names[path.stem] = [s.name for s in stages]
    assert set(names) >= {"quickstart", "pretrain", "midtrain", "long-context", "dolma3-mix"}
    assert names["pretrain"][-1] == "tokenize" and "mix-plan" in names["long-context"]
