"""A self-contained HTML report of a recipe's run: what each stage kept and removed, and what the mix became.

Every plot is a matplotlib PNG inlined as base64, so the file opens anywhere with no network. The report reads
only what the run left behind: each stage's ledger summary, attribute files (a bounded sample), the dedup
clusters, the mix plans and realised token counts, and the PDF documents' token lengths.
"""

from __future__ import annotations

import base64
import html
import io as stdio
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import msgspec
import numpy as np
import polars as pl

from dolma import io
from dolma.executor import ledger_dir
from dolma.ledger import ShardSummary

SAMPLE_LINES = 200_000  # attribute lines read per tag stage for the score distributions
# the scores whose distributions say most about a pool, when the tag stage produced them
SCORE_KEYS = [
    "fineweb_v1__line_punct_ratio",
    "fineweb_v1__short_line_ratio",
    "gopher_quality_v1__mean_word_length",
    "gopher_quality_v1__alpha_words_ratio",
    "gopher_repetition_v1__dup_line_frac",
    "stats_v1__tokens",
]
COLORS = {"kept": "#2e7d32", "dropped": "#ef6c00", "quarantined": "#c62828"}


def _figure(width: float = 8, height: float = 3.6, rows: int = 1, cols: int = 1):
    """A figure and its axes (an array of them for a grid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, cols, figsize=(width, height), dpi=100, squeeze=rows * cols == 1)


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = stdio.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


class Section(msgspec.Struct):
    title: str
    note: str
    images: list[str] = []
    table: list[list[str]] = []


def _summaries(stages: list[Any]) -> list[tuple[str, ShardSummary]]:
    out = []
    for stage in stages:
        url = io.join(ledger_dir(stage), "summary.json")
        if io.exists(url):
            out.append((stage.name, msgspec.convert(io.read_json(url), ShardSummary)))
    return out


def funnel(stages: list[Any]) -> Section:
    summaries = [(n, s) for n, s in _summaries(stages) if s.read]
    fig, ax = _figure(9, 0.42 * len(summaries) + 1.2)
    names = [n for n, _ in summaries][::-1]
    kept = np.array([s.kept for _, s in summaries][::-1])
    dropped = np.array([sum(s.dropped.values()) for _, s in summaries][::-1])
    quarantined = np.array([sum(s.quarantined.values()) for _, s in summaries][::-1])
    ax.barh(names, kept, color=COLORS["kept"], label="kept")
    ax.barh(names, dropped, left=kept, color=COLORS["dropped"], label="dropped")
    ax.barh(names, quarantined, left=kept + dropped, color=COLORS["quarantined"], label="quarantined")
    ax.set_xlabel("documents read")
    ax.legend(loc="lower right")
    ax.set_title("Every stage: documents kept, dropped and quarantined")
    table = [["stage", "read", "kept", "removed by (top reasons)"]]
    for name, s in summaries:
        reasons = Counter({**s.dropped, **{f"quarantined: {k}": v for k, v in s.quarantined.items()}})
        top = "; ".join(f"{html.escape(k[:70])} ({v:,})" for k, v in reasons.most_common(4))
        table.append([name, f"{s.read:,}", f"{s.kept:,}", top or "—"])
    return Section("Funnel", "Each stage accounts for every document it read.", [_png(fig)], table)


def _per_stream(work: str, step: str, name: str) -> dict[str, ShardSummary]:
    """A mix step's shard markers summed per stream (markers are named ``<stream>/<shard>.json``)."""
    done = io.join(work, step, "_ledger", f"{name}-{step}", "done")
    totals: dict[str, ShardSummary] = {}
    for url in io.list_files(io.join(done, "**", "*.json")):
        stream = url[len(done) :].strip("/").split("/", 1)[0]
        totals.setdefault(stream, ShardSummary()).merge(msgspec.convert(io.read_json(url), ShardSummary))
    return defaultdict(ShardSummary, totals)


def mix_sections(stages: list[Any]) -> list[Section]:
    """Per mix: tokens per stream (available, planned, realised), shares vs target, repetition curves."""
    from mixers.mix import Plan

    sections = []
    for stage in stages:
        if not stage.name.endswith("-plan") or not hasattr(stage, "params"):
            continue
        p = stage.params
        url = io.join(p.work, "plan.json")
        if not io.exists(url):
            continue
        plan = msgspec.convert(io.read_json(url), Plan)
        shuffle_summary = io.join(p.work, "shuffle", "_ledger", p.name + "-shuffle", "summary.json")
        realised: dict[str, float] = {}
        if io.exists(shuffle_summary):
            metrics = msgspec.convert(io.read_json(shuffle_summary), ShardSummary).metrics
            realised = {k.removeprefix("tokens:"): v for k, v in metrics.items() if k.startswith("tokens:")}
        streams = sorted({g.source for g in plan.groups})
        available = [sum(g.available_tokens for g in plan.groups if g.source == s) for s in streams]
        target = [sum(g.target_tokens for g in plan.groups if g.source == s) for s in streams]
        planned = [sum(g.planned_tokens for g in plan.groups if g.source == s) for s in streams]
        got = [realised.get(s, 0.0) for s in streams]

        fig, ax = _figure()
        x = np.arange(len(streams))
        for i, (label, values) in enumerate(
            (("available (after filters)", available), ("target", target), ("realised", got))
        ):
            ax.bar(x + (i - 1) * 0.27, values, 0.27, label=label)
        ax.set_xticks(x, streams, rotation=20)
        ax.set_ylabel("tokens")
        ax.set_title(f"{p.name}: tokens per stream")
        ax.legend()
        images = [_png(fig)]

        fig, ax = _figure()
        total = sum(got) or 1.0
        ax.bar(x - 0.2, np.array(target) / plan.target_tokens, 0.4, label="target share")
        ax.bar(x + 0.2, np.array(got) / total, 0.4, label="realised share")
        ax.set_xticks(x, streams, rotation=20)
        ax.set_ylabel("share of the mix")
        ax.set_title(f"{p.name}: realised vs target shares")
        ax.legend()
        images.append(_png(fig))

        fig, ax = _figure()
        for g in plan.groups:
            q = (np.arange(len(g.factors)) + 0.5) / len(g.factors)
            ax.step(q, g.factors, where="mid", label=g.source + (f"/{g.topic}" if g.topic else ""))
        ax.axhline(plan.max_repetition, color="black", linestyle="--", linewidth=1, label="cap")
        ax.set_xlabel("quality quantile (bucket midpoint)")
        ax.set_ylabel("copies per document")
        ax.set_title(f"{p.name}: repetition factor per quality bucket — {plan.curve}")
        ax.legend(fontsize=8)
        images.append(_png(fig))
        stats, shuffle = _per_stream(p.work, "stats", p.name), _per_stream(p.work, "shuffle", p.name)
        table = [
            ["stream", "documents read", "after filters", "after throwaway", "copies written",
             "tokens available", "target", "planned", "realised", "share"]
        ]  # fmt: skip
        for s, a, t, pl_, r in zip(streams, available, target, planned, got):
            table.append(
                [s, f"{stats[s].read:,}", f"{stats[s].kept:,}", f"{shuffle[s].kept:,}",
                 f"{shuffle[s].metrics.get('copies', 0):,.0f}", f"{a:,.0f}", f"{t:,.0f}", f"{pl_:,.0f}", f"{r:,.0f}",
                 f"{r / total:.2%}"]
            )  # fmt: skip
        note = (
            f"Target {plan.target_tokens:,} tokens; realised {sum(got):,.0f} "
            f"({(sum(got) - plan.target_tokens) / plan.target_tokens:+.2%})."
        )
        sections.append(Section(f"Mix {p.name}", note, images, table))
    return sections


def _attribute_scores(stage: Any) -> Iterator[dict[str, float]]:
    """Document-level scores (the first span's score) of a tag stage's attribute files, up to SAMPLE_LINES."""
    seen = 0
    for url in io.list_files(io.join(stage.output, "**", "*")):
        for _, line in io.read_attributes(url):
            if isinstance(line, io.Rejected):
                continue
            yield {k: v[0][2] for k, v in line.attributes.items() if v and len(v) == 1}
            seen += 1
            if seen >= SAMPLE_LINES:
                return


def score_sections(stages: list[Any]) -> list[Section]:
    sections = []
    for stage in stages:
        if type(stage).__name__ != "TagStage":
            continue
        rows = list(_attribute_scores(stage))
        if not rows:
            continue
        images = []
        languages = Counter()
        top_scores = []
        passes: dict[str, list[float]] = {}
        for r in rows:
            lang = {k.rsplit("__", 1)[1]: v for k, v in r.items() if "__ft_lang_id_v1__" in k}
            if lang:
                best = max(lang, key=lang.get)
                languages[best] += 1
                top_scores.append(lang[best])
            for k, v in r.items():
                if k.endswith("__pass"):
                    passes.setdefault(k.split("__")[1], []).append(v)
        if languages:
            fig, axes = _figure(9, 3.4, 1, 2)
            ax1, ax2 = axes[0]
            common = languages.most_common(12)
            ax1.bar([k for k, _ in common], [v for _, v in common], color="#1565c0")
            ax1.set_title("top language per document")
            ax2.hist(top_scores, bins=20, range=(0, 1), color="#1565c0")
            ax2.set_title("top-language probability")
            images.append(_png(fig))
        if passes:
            fig, ax = _figure()
            names = sorted(passes)
            ax.bar(names, [float(np.mean(passes[n])) for n in names], color=COLORS["kept"])
            ax.set_ylim(0, 1)
            ax.set_ylabel("share of documents passing")
            ax.set_title("Heuristic rule sets at their published thresholds")
            images.append(_png(fig))
        present = {k.split("__", 1)[1]: k for r in rows[:1000] for k in r}
        quality_keys = [present[k] for k in SCORE_KEYS if k in present]
        quality_keys += sorted(v for k, v in present.items() if k.startswith("fasttext_classifier_v1__"))[:3]
        if quality_keys:
            n_rows = (len(quality_keys) + 2) // 3
            fig, axes = _figure(9, 2.6 * n_rows, n_rows, 3)
            for ax in axes.flat[len(quality_keys) :]:
                ax.axis("off")
            for ax, key in zip(axes.flat, quality_keys):
                values = np.array([r[key] for r in rows if key in r], dtype=float)
                ax.hist(values, bins=30, color="#6a1b9a")
                ax.set_title(key.split("__", 1)[1], fontsize=8)
            images.append(_png(fig))
        note = f"Scores of {len(rows):,} documents" + (" (a sample)" if len(rows) >= SAMPLE_LINES else "") + "."
        sections.append(Section(f"Quality and language ({stage.output})", note, images))
    return sections


def dedup_sections(stages: list[Any]) -> list[Section]:
    sections = []
    for stage in stages:
        if not stage.name.endswith("-clusters") or not hasattr(stage, "params"):
            continue
        url = io.join(stage.params.work, "clusters.parquet")
        if not io.exists(url):
            continue
        clusters = io.read_parquet(url)
        sizes = pl.from_arrow(clusters).group_by("keeper").agg(pl.col("size").first())["size"].to_numpy()
        fig, ax = _figure()
        values, counts = np.unique(sizes, return_counts=True)
        ax.bar([str(v) for v in values], counts, color="#455a64")
        if len(counts) and counts.max() > 50:
            ax.set_yscale("log")
        ax.set_xlabel("documents per duplicate cluster")
        ax.set_ylabel("clusters")
        ax.set_title("Near-duplicate cluster sizes")
        removed = int(pl.from_arrow(clusters)["duplicate"].sum()) if len(sizes) else 0
        note = f"{len(sizes):,} clusters; {removed:,} documents flagged as duplicates of their cluster's keeper."
        sections.append(Section("Duplicates", note, [_png(fig)]))
    return sections


def long_context_section(stages: list[Any]) -> list[Section]:
    from pdf_extract.stage import BUCKETS

    tokens = []
    for stage in stages:
        if type(stage).__name__ != "PdfStage":
            continue
        for url in io.list_files(io.join(stage.output, "*.jsonl.zst")):
            for batch in io.read_documents(url):
                tokens += [msgspec.json.decode(d.metadata).get("tokens", 0) for d in batch.docs]
    if not tokens:
        return []
    fig, ax = _figure()
    edges = np.geomspace(max(1, min(tokens)), max(tokens) * 1.01 + 1, 30)
    ax.hist(tokens, bins=edges, color="#00838f")
    ax.set_xscale("log")
    for limit, _ in BUCKETS:
        ax.axvline(limit, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("tokens per PDF document (dotted: length-bucket edges 8k…128k)")
    ax.set_ylabel("documents")
    ax.set_title("Token lengths of the long-context (PDF) pool")
    long = sum(t > 8192 for t in tokens)
    note = f"{len(tokens):,} PDF documents, {long:,} of them over 8k tokens."
    return [Section("Long-context pool", note, [_png(fig)])]


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }}
h1 {{ font-size: 1.6em; }} h2 {{ border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }}
img {{ max-width: 100%; display: block; margin: 1em 0; }}
table {{ border-collapse: collapse; font-size: .85em; }} td, th {{ border: 1px solid #ddd; padding: .25em .5em; }}
th {{ background: #f3f3f3; }} .note {{ color: #555; }}
</style></head><body>
<h1>{title}</h1>
<p class="note">Recipe <code>{recipe}</code>. <span id="status">plots loading…</span></p>
{body}
<script>
window.addEventListener("load", () => {{
  const images = Array.from(document.images);
  const ok = images.filter(i => i.complete && i.naturalWidth > 0).length;
  const line = "plots rendered: " + ok + "/" + images.length;
  document.getElementById("status").textContent = line;
  document.title = line;
}});
</script>
</body></html>
"""


def render(sections: list[Section], recipe: str) -> str:
    parts = []
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2><p class='note'>{html.escape(s.note)}</p>")
        parts += [f'<img alt="{html.escape(s.title)}" src="data:image/png;base64,{png}">' for png in s.images]
        if s.table:
            head = "".join(f"<th>{html.escape(c)}</th>" for c in s.table[0])
            rows = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in s.table[1:])
            parts.append(f"<table><tr>{head}</tr>{rows}</table>")
    return PAGE.format(title="Curation report", recipe=html.escape(recipe), body="\n".join(parts))


def default_path(stages: list[Any]) -> str:
    """``report.html`` in the deepest folder (or object-store prefix) that holds every stage's output."""
    outputs = [s.output if io.is_remote(s.output) else os.path.abspath(s.output) for s in stages]
    parts = [o.rstrip("/").split("/") for o in outputs]
    common = []
    for level in zip(*parts):
        if len(set(level)) > 1:
            break
        common.append(level[0])
    root = "/".join(common)
    return io.join(root if root.strip("/") and not root.endswith(":") else ".", "report.html")


def write_report(stages: list[Any], recipe: str, path: str | None = None) -> str:
    sections = [funnel(stages)]
    sections += score_sections(stages) + dedup_sections(stages) + mix_sections(stages) + long_context_section(stages)
    path = path or default_path(stages)
    with io.AtomicWriter(path) as out:
        out.write(render(sections, recipe).encode())
    return path
