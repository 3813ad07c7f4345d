"""How cost grows with the corpus: the pipeline on 1×, 4× and 16× a base corpus (``python -m bench.scale``).

The base is ``../shared/corpora/docs/shard-00000`` (real web documents). Every size is made of letter-rotated
copies of it (copy k turns a→b k times over, ids made distinct; past 25 copies, see :func:`rotated`): a rotation
keeps each text's lengths, lines, punctuation and repeats but shares no shingle with another copy, so the copies
are distinct documents with the base's own duplicate rate, and every size has the same kind of text (1× is one
rotated copy, not the original).

Each stage of import → tag → dedup → paragraph dedup → mix → tokenize runs as its own ``dolma run`` with
``--workers`` workers, started by the harness's launcher (:func:`bench.harness.run_once`), whose ``wait4`` gives
the peak RSS of the run's processes (the largest of the driver and its workers, each worker running one task at
a time: the peak per task). Printed per stage and size:
seconds per GB of input JSON, peak RSS, and scratch bytes per input byte; then the checks (per-GB time at 16×
within 15% of 1×, peak memory within 20%, and the marginal per-GB time from 4× to 16× over that from 1× to 4×,
which start-up cannot flatter), and a plot. Results go to ``bench/results/scale-*.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.harness import ContenderFailed, run_once
from bench.rates import MIX_SHARE, ROOT, left_behind, sizes, stages

SIZES = (1, 4, 16)
FILES_PER_COPY = 4  # 1x is four shards, so two workers have work from the smallest size on


UNITS = (1, 3, 5, 7, 9, 11, 15, 17, 19, 21, 23, 25)  # the multipliers that permute 26 letters


def rotated(k: int) -> dict[int, int]:
    """Copy k's letter map: rotation by k for k < 26; past that, the affine map x → a·x + k (mod 26) with the
    next multiplier a, because rotation k + 26 would repeat copy k (a 1 GB shard of the docs base needs 29
    copies: repeated copies made a tenth of it exact duplicates, measuring the duplicate rate, not the size)."""
    a, b = UNITS[k // 26], k % 26
    lower, upper = "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    image = [(a * x + b) % 26 for x in range(26)]
    return str.maketrans(lower + upper, "".join(lower[i] for i in image) + "".join(upper[i] for i in image))


def write_copies(base: Path, copies: int, src: Path, limit: int | None = None) -> int:
    """``copies`` rotated copies of the base (rotations 1..copies; its first ``limit`` documents if given), each
    cut into ``FILES_PER_COPY`` files, so every size keeps every worker busy; their JSON bytes."""
    src.mkdir(parents=True)
    total = 0
    lines = gzip.decompress(base.read_bytes()).splitlines()[:limit]
    for k in range(1, copies + 1):
        table = rotated(k)
        out = []
        for line in lines:
            doc = json.loads(line)
            doc["id"], doc["text"] = f"r{k}-{doc['id']}", doc["text"].translate(table)
            out.append(json.dumps(doc))
        step = -(-len(out) // FILES_PER_COPY)
        for part in range(FILES_PER_COPY):
            data = "".join(x + "\n" for x in out[part * step : (part + 1) * step]).encode()
            total += len(data)
            (src / f"copy-{k:02d}-{part}.jsonl.gz").write_bytes(gzip.compress(data, compresslevel=1))
    return total


def run_measured(stage: dict, folder: Path, workers: int) -> tuple[float, int]:
    """(wall seconds, peak RSS in MB) of ``dolma run`` on a one-stage recipe, started by the harness's launcher:
    a process exec'd from this one would report this process's own peak (it grows with the copies written)."""
    recipe = folder / f"{stage.get('name', stage['stage'])}.yaml"
    recipe.write_text(yaml.safe_dump({"executor": {"kind": "local", "workers": workers}, "stages": [stage]}))
    try:
        _, seconds, peak = run_once([sys.executable, "-m", "dolma", "run", str(recipe)], dict(os.environ), folder)
    except ContenderFailed as e:
        raise SystemExit(f"{stage['stage']} failed: {e}") from None
    return seconds, int(peak)


def one_size(base: Path, copies: int, work: Path, workers: int, limit: int | None = None) -> dict:
    src, out = work / "src", work / "out"
    input_bytes = write_copies(base, copies, src, limit)
    result = {}
    for stage in stages(src, out, int(input_bytes / 4 * MIX_SHARE)):
        before = sizes(out)
        seconds, peak = run_measured(stage, work, workers)
        scratch, _ = left_behind(before, sizes(out), out)
        result[stage["stage"]] = {
            "seconds": seconds,
            "seconds_per_gb": seconds / (input_bytes / 1e9),
            "peak_rss_mb": peak,
            "scratch_per_input_byte": scratch / input_bytes,
        }
        print(f"  {copies:2d}x {stage['stage']:16s} {result[stage['stage']]['seconds_per_gb']:9.1f} s/GB "
              f"{peak:6d} MB  scratch {scratch / input_bytes:.3f}", flush=True)  # fmt: skip
    return {"input_bytes": input_bytes, "stages": result}


def checks(runs: dict[int, dict]) -> dict[str, dict]:
    """Per stage: per-GB time and peak memory of the largest size over the smallest (the linear-time check
    allows 15%, the flat-memory one 20%), and, with three sizes or more, the marginal per-GB time between the
    two largest sizes over that between the two smallest (start-up and other fixed costs cancel out of it)."""
    xs = sorted(runs)
    small, large = runs[xs[0]], runs[xs[-1]]
    out = {}
    for kind in small["stages"]:
        time_ratio = large["stages"][kind]["seconds_per_gb"] / small["stages"][kind]["seconds_per_gb"]
        memory_ratio = large["stages"][kind]["peak_rss_mb"] / small["stages"][kind]["peak_rss_mb"]
        out[kind] = {
            "sizes": f"{xs[-1]}x over {xs[0]}x",
            "time_ratio": round(time_ratio, 3),
            "linear_time": time_ratio <= 1.15,
            "memory_ratio": round(memory_ratio, 3),
            "flat_memory": memory_ratio <= 1.20,
        }
        if len(xs) >= 3:
            out[kind]["marginal_time_ratio"] = round(_marginal(runs, kind, xs[-2:]) / _marginal(runs, kind, xs[:2]), 3)
    return out


def _marginal(runs: dict[int, dict], kind: str, pair: list[int]) -> float:
    """Seconds per extra GB from the first size of ``pair`` to the second."""
    a, b = (runs[x] for x in pair)
    extra = (b["input_bytes"] - a["input_bytes"]) / 1e9
    return max(b["stages"][kind]["seconds"] - a["stages"][kind]["seconds"], 1e-6) / extra


def plot(runs: dict[int, dict], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6))
    per_gb, memory = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    xs = sorted(runs)
    for kind in runs[xs[0]]["stages"]:
        per_gb.plot(xs, [runs[x]["stages"][kind]["seconds_per_gb"] for x in xs], marker="o", label=kind)
        memory.plot(xs, [runs[x]["stages"][kind]["peak_rss_mb"] for x in xs], marker="o", label=kind)
    for ax, label in ((per_gb, "seconds per GB of input"), (memory, "peak RSS per process (MB)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [f"{x}×" for x in xs])
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
    per_gb.legend(fontsize=7)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.95, bottom=0.12, wspace=0.3)
    fig.savefig(path, dpi=100)


def measure(
    corpora: Path, work: Path, workers: int = 2, copies: tuple[int, ...] = SIZES, limit: int | None = None
) -> dict:
    """Every size in turn; the runs, the checks, and where the plot went."""
    base = corpora / "docs" / "shard-00000.jsonl.gz"
    runs = {n: one_size(base, n, work / f"x{n}", workers, limit) for n in copies}
    result = {"workers": workers, "base": base.name, "runs": runs, "checks": checks(runs)}
    out = ROOT / "bench" / "results" / f"scale-{time.strftime('%Y-%m-%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    plot(runs, out.with_suffix(".png"))
    for kind, c in result["checks"].items():
        marginal = f"  marginal time {c['marginal_time_ratio']:.2f}" if "marginal_time_ratio" in c else ""
        print(f"  {kind:16s} {c['sizes']}: time per GB {c['time_ratio']:.2f} "
              f"({'linear' if c['linear_time'] else 'NOT linear'}), peak memory {c['memory_ratio']:.2f} "
              f"({'flat' if c['flat_memory'] else 'NOT flat'}){marginal}")  # fmt: skip
    print(f"results: {out} and {out.with_suffix('.png')}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", default=str(ROOT.parent / "shared" / "corpora"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="copies of the base per run")
    parser.add_argument("--limit", type=int, help="documents of the base to use (default: all 6.7k), for a quick look")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure(Path(args.corpora), Path(tmp), args.workers, tuple(map(int, args.sizes.split(","))), args.limit)


if __name__ == "__main__":
    main()
