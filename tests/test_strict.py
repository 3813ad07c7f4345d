# ruff: noqa: E501
"""Typos and bad values are errors before any work starts: each names the key (and the nearest valid one),
exits with code 2 (bad usage) and prints no traceback."""

import pytest
from conftest import SAMPLE, run_cli

STREAM = """
  - stage: mix
    work: {tmp}/w
    output: {tmp}/mix
    target_tokens: {target}
    streams:
      - name: prose
        documents: ["{tmp}/documents/*.jsonl.zst"]
        attributes: [quality]
        tokens: quality__stats_v1__tokens
        {extra}
"""


def stages(text: str) -> str:
    return "stages:" + text


BROKEN = [  # (recipe body, expected exit code, a text the one-line error must contain)
    (stages(STREAM.format(tmp="T", target=100, extra="exlude: [x]")), "streams[0].exlude: unknown key; did you mean 'exclude'?"),
    (stages(STREAM.format(tmp="T", target=100, extra="qualty: q__x__y")), "streams[0].qualty: unknown key; did you mean 'quality'?"),
    (stages(STREAM.format(tmp="T", target=100, extra="spans: [{attribute: q__pii_v1__email, replace: X}]")),
     "streams[0].spans[0].replace: unknown key; did you mean 'replacement'?"),
    (stages(STREAM.format(tmp="T", target=100, extra="exclude: [{atribute: q__a__b, op: '<', value: 1}]")),
     "unknown key; did you mean 'attribute'?"),
    (stages(STREAM.format(tmp="T", target=0, extra="")), "target_tokens: Input should be greater than 0 (got 0)"),
    (stages(STREAM.format(tmp="T", target=-5, extra="")), "target_tokens: Input should be greater than 0"),
    (stages(STREAM.format(tmp="T", target=100, extra="")).replace("target_tokens: 100", "target_tokens: 100\n    partition_tokens: 0"),
     "partition_tokens: Input should be greater than or equal to 1"),
    (stages(STREAM.format(tmp="T", target=100, extra="")).replace("target_tokens: 100", "target_tokens: 100\n    quantiles: 0"),
     "quantiles: Input should be greater than or equal to 1"),
    (stages(STREAM.format(tmp="T", target=100, extra="misaligned: skip")), "misaligned: Input should be 'error' or 'quarantine'"),
    (stages("\n  - {stage: dedupe, input: x/documents/*.gz, work: w}"), "unknown stage kind 'dedupe'"),
    (stages("\n  - {stage: dedup, input: x/documents/*.gz, work: w, bands: 0}"), "dedup bands must be at least 1"),
    (stages("\n  - {stage: dedup, input: x/documents/*.gz, work: w, bnds: 20}"), "stages[0].bnds: unknown key; did you mean 'bands'?"),
    (stages("\n  - {stage: dedup, input: x/documents/*.gz, work: w, preset: dolma4}"), "preset: Input should be 'dolma3' or 'fineweb'"),
    (stages("\n  - {stage: tag, input: x/documents/*.gz, taggers: [c4_v1], batch_size: 0}"), "batch_size: Input should be greater than or equal to 1"),
    (stages("\n  - {stage: tag, input: x/documents/*.gz, taggers: [c4_v1], batch_size: many}"), "batch_size: Input should be a valid integer"),
    (stages("\n  - {stage: import, input: '${NO_SUCH_VARIABLE_X}/*.gz', output: o}"), "NO_SUCH_VARIABLE_X is not set"),
    (stages("\n  - {stage: import, input: 'd/**/*.gz', output: d/clean}"), "output 'd/clean' is inside its input"),
    (stages("\n  - {stage: import, input: 'd/*.gz', output: d}"), "output 'd' is inside its input"),
    (stages("\n  - {stage: import, input: 'd/*.gz', output: o}") + "\nexecuter: {kind: local}", "recipe.executer: unknown key; did you mean 'executor'?"),
    ("stages: !!python/object/apply:os.system ['echo hi']", "is not valid YAML"),
    ("x: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(f"x{i}: &{'b' * (i + 1)} [{', '.join(['*' + 'b' * i if i else '*a'] * 10)}]\n" for i in range(7)) + "stages: []",
     "expands to over 1,000,000 values"),
    ("stages: " + "[" * 5000 + "]" * 5000, "nests too deeply to be a recipe"),
]  # fmt: skip


@pytest.mark.parametrize("body,needle", BROKEN)
def test_broken_recipes_are_one_line_errors_naming_the_key(tmp_path, body, needle):
    path = tmp_path / "recipe.yaml"
    path.write_text(body.replace("{tmp}", str(tmp_path)))
    proc = run_cli("run", str(path), check=False)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_default_of_an_unset_variable_is_used(tmp_path, monkeypatch):
    path = tmp_path / "recipe.yaml"
    path.write_text(
        f"stages:\n  - {{stage: import, input: '${{SAMPLE_DIR:-{SAMPLE}}}/*.jsonl.gz', output: {tmp_path}/o}}\n"
    )
    monkeypatch.delenv("SAMPLE_DIR", raising=False)
    assert "unchanged" not in run_cli("plan", str(path)).stdout  # it validates and plans


CLI = [
    (["dedup", "--documents", "x/documents/*.gz", "--work", "w", "--bands", "0"], "dedup bands must be at least 1"),
    (["import", "--input", "nowhere/*.gz", "--output", "o"], "no document files"),
    (["tokenize", "--input", "t/**/*.zst", "--output", "t/tokens"], "is inside its input"),
    (["stats", "/nonexistent/tokens"], "has no manifest.json"),
    (["run", "nope.yaml"], "does not exist"),
]


@pytest.mark.parametrize("args,needle", CLI)
def test_bad_command_lines_are_one_line_errors(args, needle):
    proc = run_cli(*args, check=False)
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
