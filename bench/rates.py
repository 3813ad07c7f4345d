"""Per-core rates of the pipeline's stages, measured whole-process, for ``dolma estimate``.

``python -m bench.rates`` runs import → tag → dedup → paragraph_dedup → mix → tokenize on a base corpus from
``../shared/corpora/docs`` (real web documents), each stage as its own ``dolma run`` of a one-stage recipe with
one worker, exactly as a user runs it (interpreter start-up, ledger and completion markers included), and
records per stage: the CPU seconds of the process and its children, what it processed (input JSON bytes, or
for ``tokenize``, run over the whole base rather than the mix's 2% so that its rate is measurable, the tokens
it wrote), and the bytes it left behind, split into scratch (work folders) and
output. It does so at two sizes (a quarter of the documents, then all of them) and keeps the marginal rate: the
extra amount over the extra CPU seconds, so the interpreter's start-up and other fixed costs cancel out (they are
kept as a figure of their own). The mix takes 2% of the pool's tokens, the 6T-of-300T ratio. The rates go to
``configs/rates.json`` with the date and the machine, so every figure ``dolma estimate`` prints traces back to
this run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import yaml

from bench.harness import ContenderFailed, run_once

ROOT = Path(__file__).resolve().parents[1]
RATES = ROOT / "configs" / "rates.json"
MIX_SHARE = 6 / 300  # the mission's target / pool
SCRATCH = ("dedup", "mix-work", "attributes/paragraph_dedup/_work")  # work folders: a stage's scratch, not output


QUICKSTART_TAGGERS = ["gopher_quality_v1", "gopher_repetition_v1", "c4_v1", "fineweb_v1", "ft_lang_id_v1", "pii_v1"]


def stages(src: Path, out: Path, target_tokens: int, taggers: list[str] = QUICKSTART_TAGGERS) -> list[dict]:
    """The six stages, as recipe entries (the mix needs ``fineweb_v1`` among ``taggers``; ``stats_v1`` is added)."""
    docs = f"{out}/documents/*.jsonl.zst"
    return [
        {"stage": "import", "input": f"{src}/*.jsonl.gz", "output": f"{out}/documents", "compression": "zst"},
        {"stage": "tag", "input": docs, "experiment": "quality", "taggers": [*taggers, "stats_v1"]},
        {"stage": "dedup", "input": docs, "work": f"{out}/dedup"},
        {"stage": "paragraph_dedup", "input": docs},
        {
            "stage": "mix",
            "name": "mix",
            "work": f"{out}/mix-work",
            "output": f"{out}/mix",
            "target_tokens": target_tokens,
            "streams": [
                {
                    "name": "web",
                    "documents": [docs],
                    "attributes": ["quality", "dedup", "paragraph_dedup"],
                    "share": 1.0,
                    "quality": "quality__fineweb_v1__line_punct_ratio",
                    "tokens": "quality__stats_v1__tokens",
                    "exclude": ["$.attributes[?(@.dedup__minhash__duplicate[0][2] == 1)]"],
                    "spans": [{"attribute": "paragraph_dedup__paragraph_bloom__duplicate_paragraph"}],
                }
            ],
        },
        # the whole pool, not the mix's 2%: enough tokens for a marginal rate (a token costs the same in both)
        {"stage": "tokenize", "input": docs, "output": f"{out}/tokens"},
    ]


def sizes(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}


def left_behind(before: dict[str, int], after: dict[str, int], out: Path) -> tuple[int, int]:
    """(scratch, output) bytes of the files a stage added or rewrote under ``out``."""
    scratch = output = 0
    for path, size in after.items():
        if before.get(path) == size:
            continue
        rel = Path(path).relative_to(out).as_posix()
        if any(rel.startswith(folder + "/") for folder in SCRATCH):
            scratch += size
        else:
            output += size
    return scratch, output


def run_stage(stage: dict, folder: Path, *flags: str) -> float:
    """CPU seconds (user + system, with children) of ``dolma run`` on a recipe of this one stage."""
    recipe = folder / f"{stage.get('name', stage['stage'])}.yaml"
    recipe.write_text(yaml.safe_dump({"executor": {"kind": "local", "workers": 1}, "stages": [stage]}))
    try:
        cpu, _, _ = run_once([sys.executable, "-m", "dolma", "run", str(recipe), *flags], dict(os.environ), folder)
    except ContenderFailed as e:
        raise SystemExit(f"{stage['stage']} failed: {e}") from None
    return cpu


def write_base(files: list[Path], share: float, src: Path) -> None:
    """The first ``share`` of the documents of every file (all of them for 1.0), as files of the same names."""
    src.mkdir(parents=True)
    for f in files:
        with gzip.open(f, "rb") as lines:
            docs = lines.read().splitlines(keepends=True)
        with gzip.open(src / f.name, "wb", compresslevel=1) as out:
            out.write(b"".join(docs[: round(len(docs) * share)]))


def measure(files: list[Path], share: float, work: Path) -> dict:
    """Every stage over the first ``share`` of each file's documents: per stage its CPU seconds (the lesser of
    a first run and a forced rerun, so a hiccup of the machine does not count), the amount it processed and the
    bytes it left behind."""
    src, out = work / "src", work / "out"
    write_base(files, share, src)
    input_bytes = sum(len(gzip.decompress(f.read_bytes())) for f in src.iterdir())
    target = int(input_bytes / 4 * MIX_SHARE)  # a first guess (~4 bytes a token): the mix needs a target
    result: dict[str, dict] = {}
    for stage in stages(src, out, target):
        kind = stage["stage"]
        before = sizes(out)
        cpu = run_stage(stage, work)
        scratch, output = left_behind(before, sizes(out), out)
        cpu = min(cpu, run_stage(stage, work, "--force"))
        result[kind] = {"cpu_seconds": cpu, "scratch_bytes": scratch, "output_bytes": output}
    mix = json.loads((out / "mix-work" / "stats" / "_ledger" / "mix-stats" / "summary.json").read_text())
    tokens = json.loads((out / "tokens" / "manifest.json").read_text())["tokens"]
    for kind, stats in result.items():
        stats["amount"] = tokens if kind == "tokenize" else input_bytes
    # the kept documents' share of the input bytes over their tokens (kept: not a duplicate)
    per_token = input_bytes * mix["kept"] / mix["read"] / mix["metrics"]["tokens_kept"]
    return {"files": len(files), "input_bytes": input_bytes, "bytes_per_token": per_token, "stages": result}


def marginal(small: dict, large: dict) -> dict[str, dict]:
    """Per stage: the marginal rate (the extra amount over the extra CPU seconds from the small run to the
    large one, so start-up and other fixed costs cancel out), the fixed seconds left over, and scratch and output
    bytes per unit processed (of the large run)."""
    out = {}
    for kind, big in large["stages"].items():
        little = small["stages"][kind]
        extra = max(big["cpu_seconds"] - little["cpu_seconds"], 1e-3)
        rate = (big["amount"] - little["amount"]) / extra
        out[kind] = {
            "unit": "output token" if kind == "tokenize" else "input byte",
            "per_cpu_second": round(rate, 1),
            "fixed_cpu_seconds": round(max(little["cpu_seconds"] - little["amount"] / rate, 0.0), 2),
            "cpu_seconds": [round(little["cpu_seconds"], 2), round(big["cpu_seconds"], 2)],
            "amount": [little["amount"], big["amount"]],
            "scratch_per_unit": round(big["scratch_bytes"] / big["amount"], 4),
            "output_per_unit": round(big["output_bytes"] / big["amount"], 4),
        }
        print(
            f"  {kind:16s} {rate / (1 if kind == 'tokenize' else 1e6):10.2f} {'tokens' if kind == 'tokenize' else 'MB'}"
            f"/CPU s  fixed {out[kind]['fixed_cpu_seconds']:5.1f} s  scratch {out[kind]['scratch_per_unit']:.3f}"
            f"  output {out[kind]['output_per_unit']:.3f} per {out[kind]['unit']}"
        )
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", default=str(ROOT.parent / "shared" / "corpora"))
    parser.add_argument("--output", default=str(RATES), help=f"where to write the rates (default {RATES})")
    args = parser.parse_args()
    files = sorted((Path(args.corpora) / "docs").glob("*.jsonl.gz"))
    if len(files) < 2:
        raise SystemExit(f"need two document shards in {args.corpora}/docs")
    with tempfile.TemporaryDirectory() as tmp:
        small = measure(files[:2], 0.25, Path(tmp) / "small")
        large = measure(files[:2], 1.0, Path(tmp) / "large")
    rates = {
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
        "machine": f"{_cpu_model()}, {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "command": "python -m bench.rates",
        "base": {
            "small": f"the first quarter of the documents of {files[0].name} and {files[1].name}",
            "large": f"all of {files[0].name} and {files[1].name}",
            "input_bytes": [small["input_bytes"], large["input_bytes"]],
        },
        "bytes_per_token": round(large["bytes_per_token"], 4),
        "stages": marginal(small, large),
    }
    Path(args.output).write_text(json.dumps(rates, indent=2) + "\n")
    print(f"rates: {args.output}")


if __name__ == "__main__":
    main()
