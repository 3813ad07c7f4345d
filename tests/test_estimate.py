"""`dolma estimate`: a recipe's cost on a described pool, traced back to the rates file it reads."""

import json

from conftest import ROOT, run_cli

from bench.rates import left_behind, marginal
from mixers.offline import read_description

POOL = ROOT / "configs" / "mix" / "dolma3-300T-to-6T.yaml"
RECIPES = [str(ROOT / "configs" / "curate-pool.yaml"), str(ROOT / "configs" / "pretrain.yaml")]


def rate(unit: str, per_second: float, fixed: float = 0.0) -> dict:
    return {
        "unit": unit, "per_cpu_second": per_second, "fixed_cpu_seconds": fixed, "cpu_seconds": [1.0, 2.0],
        "amount": [1.0, 2.0], "scratch_per_unit": 0.5, "output_per_unit": 0.25,
    }  # fmt: skip


def write_rates(path, stages: dict) -> str:
    rates = {"measured": "2026-01-01T00:00Z", "machine": "test", "command": "python -m bench.rates", "base": {}}
    path.write_text(json.dumps({**rates, "bytes_per_token": 4.0, "stages": stages}))
    return str(path)


def test_estimate_prints_cpu_hours_and_wall_time_from_the_rates_and_the_pool(tmp_path):
    """Every figure is the pool's amount over the measured rate, plus the fixed seconds once per task; a stage
    kind the rates file lacks is shown as not measured and left out of the totals, never counted as free."""
    rates = write_rates(
        tmp_path / "rates.json",
        {"tag": rate("input byte", 1e6, fixed=3600.0), "tokenize": rate("output token", 1e5)},
    )
    proc = run_cli("estimate", *RECIPES, "--pool", str(POOL), "--cores", "1000", "--rates", rates)
    desc = read_description(str(POOL))
    pool_bytes = 4.0 * sum(g.total_tokens() for g in desc.groups)
    tag_hours = pool_bytes / 1e6 / 3600 + -(-pool_bytes // 1e9)  # one fixed hour per 1 GB task
    tokenize_hours = desc.target_tokens / 1e5 / 3600
    row = {line.split("│")[1].strip(): line.split("│") for line in proc.stdout.splitlines() if line.count("│") > 6}
    assert row["tag"][3].strip() == f"{tag_hours:,.0f}" and row["tokenize"][3].strip() == f"{tokenize_hours:,.0f}"
    assert row["total"][3].strip() == f"{tag_hours + tokenize_hours:,.0f}"
    assert "not measured" in row["dedup"][2] and "not measured, so not in the totals: import, dedup" in proc.stdout
    assert "tag dominates" in proc.stdout and "2026-01-01" in proc.stdout


def test_estimate_names_a_bad_rates_file_and_an_unknown_stage_kind(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"measured": "x"}))
    proc = run_cli("estimate", *RECIPES, "--pool", str(POOL), "--rates", str(bad), check=False)
    assert proc.returncode != 0 and "bad.json" in proc.stderr and "Traceback" not in proc.stderr
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages:\n  - stage: tagg\n    input: x/documents/*.gz\n")
    rates = write_rates(tmp_path / "rates.json", {"tag": rate("input byte", 1e6)})
    proc = run_cli("estimate", str(recipe), "--pool", str(POOL), "--rates", rates, check=False)
    assert proc.returncode != 0 and "'tagg'" in proc.stderr


def test_the_shipped_rates_file_covers_the_mission_pipeline():
    """configs/rates.json, written by `python -m bench.rates`, prices every stage of the mission's recipes."""
    proc = run_cli("estimate", *RECIPES, "--pool", str(POOL), "--cores", "10000")
    assert "not measured" not in proc.stdout and "dominates" in proc.stdout


def test_rate_measurement_helpers():
    """Marginal rates cancel the fixed start-up; scratch is what the work folders got."""
    small = {"stages": {"tag": {"cpu_seconds": 12.0, "amount": 10e6, "scratch_bytes": 0, "output_bytes": 1e6}}}
    large = {"stages": {"tag": {"cpu_seconds": 22.0, "amount": 30e6, "scratch_bytes": 6e6, "output_bytes": 3e6}}}
    tag = marginal(small, large)["tag"]
    assert tag["per_cpu_second"] == 2e6 and tag["fixed_cpu_seconds"] == 7.0 and tag["scratch_per_unit"] == 0.2
    out = ROOT / "o"
    before = {str(out / "documents" / "a"): 5}
    after = {**before, str(out / "dedup" / "x"): 7, str(out / "attributes" / "dedup" / "a"): 3}
    assert left_behind(before, after, out) == (7, 3)
