"""The benchmark harness times whole processes, derives marginal rates and per-round ratios, and writes a
generated part of BENCHMARKS.md that a rerun replaces rather than appends to."""

import sys

import pytest

from bench.harness import Contender, ContenderFailed, Size, Target, Task, figures, judge, measure, ratios
from bench.report import BEGIN, END, Outcome, write_benchmarks, write_csv

# a contender whose CPU time grows with the amount: a busy loop of N * scale iterations in a fresh interpreter (the
# fast one's large input adds ~0.25 CPU s, well above the harness's noise floor)
LOOP = "import sys\nn = int(sys.argv[1]) * {scale}\nwhile n: n -= 1\nopen(sys.argv[2] + '/done', 'w').write('ok')"


def looping(name: str, role: str, scale: int) -> Contender:
    code = LOOP.format(scale=scale)
    return Contender(name, role, lambda size, out: [sys.executable, "-c", code, str(int(size.amount)), str(out)])


def task(check=lambda outs: {"outputs": len(outs)}) -> Task:
    sizes = (Size("small", 2), Size("large", 10))
    fast, slow = looping("fast", "ours", 500_000), looping("slow", "peer", 1_500_000)
    return Task("loop", "units", sizes, [fast, slow], check, [Target("fast", "slow", 2.0), Target("fast", "slow", 9.0)])


def test_measure_times_whole_processes_and_ratios_follow_the_work(tmp_path):
    t = task()
    runs = measure(t, 3, tmp_path, log=lambda line: None)
    assert len(runs) == 3 * 2 * 2  # rounds x contenders x sizes
    assert all(r.cpu_s > 0 and r.peak_rss_mb > 0 for r in runs)
    assert (tmp_path / "fast" / "large" / "done").exists()  # each run wrote into its own fresh folder
    # round order alternates: the second round starts with the other contender
    assert [r.contender for r in runs[:2]] == ["fast", "fast"] and runs[4].contender == "slow"
    figs = {c.name: figures(runs, c.name) for c in t.contenders}
    assert not figs["fast"].noisy() and not figs["slow"].noisy()
    marginal = ratios(figs["fast"], figs["slow"], "marginal")
    assert 2.0 < marginal.median < 4.5  # three times less work per unit, whatever the interpreter's start-up
    assert marginal.low <= marginal.median <= marginal.high
    assert judge(t.targets[0], figs)[1] is True and judge(t.targets[1], figs)[1] is False
    assert all(f > 0 for f in figs["fast"].fixed)  # the interpreter's start-up, left over from the slope


def test_a_failing_contender_stops_the_task_with_its_error(tmp_path):
    bad = Contender("bad", "ours", lambda size, out: [sys.executable, "-c", "raise SystemExit('no input here')"])
    t = Task("bad", "units", (Size("small", 1), Size("large", 2)), [bad], lambda outs: {})
    with pytest.raises(ContenderFailed, match="no input here"):
        measure(t, 1, tmp_path, log=lambda line: None)


def test_benchmarks_file_keeps_its_hand_written_parts_and_replaces_the_generated_one(tmp_path):
    t = task()
    runs = measure(t, 2, tmp_path / "runs", log=lambda line: None)
    outcome = Outcome(t, runs, {"outputs": 2}, 1.0)
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\nintro\n\n" + BEGIN + "\nstale row\n" + END + "\n\n## Quality\n\nkept\n")
    write_benchmarks([outcome], ["Run now."], md, "BENCHMARKS.csv")
    text = md.read_text()
    assert "stale row" not in text and "intro" in text and "## Quality\n\nkept" in text
    assert text.count(BEGIN) == 1 and "| fast / slow |" in text and "**Target** fast ≥ 9.0× slow" in text
    write_csv([outcome], tmp_path / "runs.csv")
    rows = (tmp_path / "runs.csv").read_text().splitlines()
    assert rows[0].startswith("task,contender,role,size,round") and len(rows) == 1 + len(runs)
