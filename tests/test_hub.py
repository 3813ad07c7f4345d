"""Hugging Face datasets in and out: save_to_disk folders and hub-layout repositories as sources (field
mapping, bad rows quarantined), and a mix exported with a dataset card that ``datasets.load_dataset`` loads."""

import json
import os

import pytest
from conftest import SAMPLE, read_jsonl, run_cli, sample_docs

datasets = pytest.importorskip("datasets")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def documents(folder) -> dict[str, dict]:
    return {d["id"]: d for f in sorted(folder.rglob("*.jsonl.zst")) for d in read_jsonl(f)}


def test_a_mix_exported_for_the_hub_loads_with_datasets_and_imports_back_unchanged(tmp_path):
    run_cli("export", "--format", "hf", "--input", str(SAMPLE), "--output", str(tmp_path / "hf"), "--license", "odc-by")
    card = (tmp_path / "hf" / "README.md").read_text()
    header = card.split("---")[1]
    assert "license: odc-by" in header and "path: data/train-*" in header and "num_examples: 1050" in header
    loaded = datasets.load_dataset(str(tmp_path / "hf"), split="train")
    source = {
        d["id"]: d for name in ("python-docs", "postgresql-docs", "sympy-docs", "go-src") for d in sample_docs(name)
    }
    assert loaded.num_rows == len(source) and set(loaded.column_names) == set(next(iter(source.values())))
    row = loaded[0]
    assert row["text"] == source[row["id"]]["text"] and json.loads(row["metadata"]) == source[row["id"]]["metadata"]

    run_cli("hf-import", "--input", str(tmp_path / "hf"), "--output", str(tmp_path / "back"))
    assert documents(tmp_path / "back") == source  # every field, metadata included


def test_a_save_to_disk_dataset_with_other_column_names_becomes_documents_and_bad_rows_are_quarantined(tmp_path):
    rows = {
        "doc_id": ["a", "b", None, "a", "c"],
        "content": ["first text", "second text", "no id", "same id again", None],
        "url": ["https://x.org/1", "https://x.org/2", "u3", "u4", "u5"],
        "score": [0.5, 0.9, 0.1, 0.2, 0.3],
    }
    splits = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(rows),
            "test": datasets.Dataset.from_dict({k: v[:1] for k, v in rows.items()}),
        }
    )
    splits.save_to_disk(str(tmp_path / "saved"))
    proc = run_cli(
        "hf-import", "--input", str(tmp_path / "saved"), "--output", str(tmp_path / "docs"),
        "--fields", "id=doc_id", "text=content", "--splits", "train",
    )  # fmt: skip
    docs = documents(tmp_path / "docs")
    assert set(docs) == {"a", "b"} and docs["a"]["text"] == "first text" and docs["a"]["source"] == "saved"
    assert docs["b"]["metadata"] == {"url": "https://x.org/2", "score": 0.9}
    assert all(p.parts[-2] == "train" for p in (tmp_path / "docs").rglob("*.jsonl.zst"))
    assert "quarantined" in proc.stdout
    quarantine = [r for f in (tmp_path / "docs" / "_ledger").rglob("quarantine/**/*.jsonl*") for r in read_jsonl(f)]
    assert sorted(r["reason"] for r in quarantine) == ["duplicate_id", "invalid_schema", "invalid_schema"]

    bad = run_cli(
        "hf-import",
        "--input",
        str(tmp_path / "saved"),
        "--output",
        str(tmp_path / "x"),
        "--fields",
        "text=body",
        check=False,
    )
    assert bad.returncode != 0 and "no column ['body']" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli(
        "hf-import",
        "--input",
        str(tmp_path / "saved"),
        "--output",
        str(tmp_path / "y"),
        "--fields",
        "txt=content",
        check=False,
    )
    assert bad.returncode != 0 and "fields maps ['txt']" in bad.stderr


def test_a_hub_layout_jsonl_repository_with_configs_in_its_card_is_read_split_by_split(tmp_path):
    repo = tmp_path / "repo"
    (repo / "en").mkdir(parents=True)
    lines = [{"id": f"d{i}", "text": f"text {i}", "lang": "en"} for i in range(5)]
    (repo / "en" / "train.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines[:3]))
    (repo / "en" / "validation.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines[3:]))
    (repo / "README.md").write_text(
        "---\nconfigs:\n- config_name: en\n  data_files:\n  - split: train\n    path: en/train.jsonl\n"
        "  - split: validation\n    path: en/validation.jsonl\n---\n# a repo\n"
    )
    run_cli("hf-import", "--input", str(repo), "--output", str(tmp_path / "docs"), "--config", "en")
    docs = documents(tmp_path / "docs")
    assert set(docs) == {f"d{i}" for i in range(5)} and docs["d4"]["metadata"] == {"lang": "en"}
    written = sorted(str(p.relative_to(tmp_path / "docs")) for p in (tmp_path / "docs").rglob("*.jsonl.zst"))
    assert written == ["train/en/train.jsonl.zst", "validation/en/validation.jsonl.zst"]


def test_a_saved_dataset_on_s3_imports_and_a_mix_exports_to_s3(tmp_path):
    import boto3
    from moto.server import ThreadedMotoServer

    ds = datasets.Dataset.from_dict({"id": [f"r{i}" for i in range(50)], "text": [f"row {i}" for i in range(50)]})
    ds.save_to_disk(str(tmp_path / "saved"), num_shards=2)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        s3.create_bucket(Bucket="hub")
        for path in (tmp_path / "saved").iterdir():
            s3.upload_file(str(path), "hub", f"saved/{path.name}")
        run_cli("hf-import", "--input", "s3://hub/saved", "--output", str(tmp_path / "docs"), env=env)
        docs = documents(tmp_path / "docs")
        assert len(docs) == 50 and docs["r7"]["text"] == "row 7" and docs["r7"]["source"] == "saved"
        run_cli("export", "--input", str(tmp_path / "docs"), "--output", "s3://hub/out", env=env)
        card = s3.get_object(Bucket="hub", Key="out/README.md")["Body"].read().decode()
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="hub", Prefix="out/data/")["Contents"]}
    finally:
        server.stop()
    assert "num_examples: 50" in card and keys == {f"out/data/train-0000{i}-of-00002.parquet" for i in range(2)}
