"""A mix writes each document id once, warns when a stream misses its share, and says which source cannot
reach its target; a missing attribute set is an error, not a shard of quarantined documents."""

import json
import re

import yaml
from conftest import read_jsonl, run_cli, sample_docs, write_jsonl_gz

from mixers.plan import GroupPlan, Plan, misses_table, share_misses


def pool(tmp_path):
    root = tmp_path / "pool"
    docs = sample_docs("python-docs", 200)
    write_jsonl_gz(root / "documents" / "a.jsonl.gz", docs)
    write_jsonl_gz(root / "documents" / "b.jsonl.gz", docs[100:] + sample_docs("go-src", 100))  # 100 ids of a
    run_cli("tag", "--documents", str(root / "documents" / "*.gz"), "--experiment", "q", "--taggers", "stats_v1")
    return root


def recipe(tmp_path, root, target, shares=(0.5, 0.5), attributes="q", **extra):
    streams = [
        {"name": name, "documents": [str(root / "documents" / f"{name}.jsonl.gz")], "attributes": [attributes],
         "share": share, "tokens": "q__stats_v1__tokens", **extra}
        for name, share in zip(("a", "b"), shares)
    ]  # fmt: skip
    mix = {"stage": "mix", "work": str(tmp_path / "work"), "output": str(tmp_path / "mix"), "target_tokens": target,
           "max_repetition": 2, "streams": streams}  # fmt: skip
    path = tmp_path / f"mix-{target}-{attributes}-{len(extra)}.yaml"
    path.write_text(yaml.safe_dump({"stages": [mix]}))
    return path


def written_ids(tmp_path):
    return [d["id"] for f in sorted((tmp_path / "mix").glob("*.jsonl.zst")) for d in read_jsonl(f)]


def test_an_id_in_two_streams_is_written_once_by_the_first_stream(tmp_path):
    root = pool(tmp_path)
    run_cli("run", str(recipe(tmp_path, root, 60_000)))
    ids = written_ids(tmp_path)
    originals = [i for i in ids if "#" not in i]
    assert len(originals) == len(set(originals))
    ledger = tmp_path / "work" / "shuffle" / "_ledger" / "mix-shuffle" / "summary.json"
    dropped = json.loads(ledger.read_text())["dropped"]
    assert dropped.get("duplicate_id_across_streams: kept in stream a") == 100


def test_an_unreachable_target_names_the_source_and_what_it_needs(tmp_path):
    root = pool(tmp_path)
    proc = run_cli("run", str(recipe(tmp_path, root, 5_000_000, shares=(0.1, 0.9))), check=False)
    assert proc.returncode == 2 and "would need" in proc.stderr
    assert re.search(r"error: (a|b): cannot reach [\d,]+ tokens", proc.stderr), proc.stderr


def test_streams_off_their_share_by_more_than_half_a_point_are_listed():
    groups = [
        GroupPlan("a", "", [0, 1], [100], [1.0], 100, 600.0, 600.0),
        GroupPlan("b", "", [0, 1], [100], [1.0], 100, 400.0, 400.0),
    ]
    plan = Plan(1000, 1000.0, 1, 2.0, "flat", groups)
    assert share_misses(plan, {"a": 603.0, "b": 397.0}) == []  # 0.3 points: within tolerance
    misses = share_misses(plan, {"a": 540.0, "b": 460.0})
    assert [(s, round(t, 3), round(g, 3)) for s, t, g in misses] == [("a", 0.6, 0.54), ("b", 0.4, 0.46)]
    assert misses_table(misses).rows[0] == ["a", "60.00%", "54.00%", "-6.00"]


def test_a_missing_attribute_set_is_an_error_naming_it(tmp_path):
    root = pool(tmp_path)
    proc = run_cli("run", str(recipe(tmp_path, root, 60_000, attributes="qq")), check=False)
    assert proc.returncode == 2
    assert "attribute set 'qq' does not exist" in proc.stderr and "sets there: q" in proc.stderr
    proc = run_cli(
        "carve", "--documents", str(root / "documents" / "*.gz"), "--attributes", "nosuchset", "--labels", "law",
        "--output", str(tmp_path / "law"), check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "attribute set 'nosuchset' does not exist" in proc.stderr


def test_a_misspelled_key_is_an_error_naming_it_and_the_keys_there(tmp_path):
    root = pool(tmp_path)
    typo = {"spans": [{"attribute": "q__pii_v1__emial"}]}
    proc = run_cli("run", str(recipe(tmp_path, root, 60_000, **typo)), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "attribute key 'q__pii_v1__emial' is in no line of its attribute sets (q)" in proc.stderr
    assert "keys there: q__stats_v1__" in proc.stderr
    typo = {"exclude": [{"attribute": "q__stats_v1__tokns", "op": "<", "value": 10}]}
    proc = run_cli("run", str(recipe(tmp_path, root, 60_000, **typo)), check=False)
    assert proc.returncode == 2 and "'q__stats_v1__tokns'" in proc.stderr
    allowed = {"spans": [{"attribute": "q__pii_v1__email"}], "absent_keys": "allow"}  # no email anywhere
    run_cli("run", str(recipe(tmp_path, root, 60_000, **allowed)))
