"""The quickstart recipe on a local Ray cluster and on an S3-compatible object store gives the local run's bytes.

Outputs are compared file by file: token files raw, everything else after decompression (and Parquet as rows),
with the run's root folder or bucket written as ``<root>`` and the input sample as ``<sample>``. The only other
value normalised away is wall-clock time (the pdf stage's summed ``seconds`` metric in its ledger),
the one thing no two runs can share.
"""

import gzip
import os
import re
import signal
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from conftest import ROOT, is_state_file, run_cli

from dolma.runtime.cluster import RayExecutor
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.run import run_stage
from dolma.runtime.stage import Stage, Task

SAMPLE = str(ROOT / "dolma" / "sample")
TIMING = re.compile(rb'"seconds": ?[0-9.e+-]+,?')


def recipe(root: str, sample: str, executor: str) -> str:
    text = (ROOT / "configs" / "quickstart.yaml").read_text()
    text = text.replace("dolma/sample", sample).replace("out/quickstart", root)
    return text.replace("kind: local        # all cores by default; set workers: N to limit", executor)


def normalised(name: str, data: bytes, roots: list[str]) -> bytes:
    if name.endswith(".npy"):
        return data
    if name.endswith(".zst"):
        data = zstandard.ZstdDecompressor().stream_reader(data).read()
    elif name.endswith(".gz"):
        data = gzip.decompress(data)
    elif name.endswith((".parquet", ".arrow")):
        table = pq.read_table if name.endswith(".parquet") else lambda b: pa.ipc.open_file(b).read_all()
        rows = table(pa.BufferReader(data)).to_pylist()
        cells = [{k: cleaned(v, roots) if isinstance(v, (str, bytes)) else v for k, v in r.items()} for r in rows]
        return repr(cells).encode()
    return cleaned(data, roots)


def cleaned(value: str | bytes, roots: list[str]) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    for root in roots:
        data = data.replace(root.encode(), b"<root>")
    data = data.replace(SAMPLE.encode(), b"<sample>").replace(b"s3://corpus/sample", b"<sample>")
    return TIMING.sub(b"", data)


def tree(folder, roots) -> dict[str, bytes]:
    """Every output file, normalised, but the report and the tasks' state files (their fingerprints record the
    inputs' modification times or ETags, which differ between any two runs by design)."""
    skip = ("report.html", "recipe.yaml")
    return {
        str(p.relative_to(folder)): normalised(p.name, p.read_bytes(), roots)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in skip and not is_state_file(p.relative_to(folder))
    }


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("local")
    (root / "recipe.yaml").write_text(recipe(str(root / "out"), SAMPLE, "kind: local\n  workers: 2"))
    run_cli("run", str(root / "recipe.yaml"))
    return root / "out"


def assert_same_trees(ours: dict[str, bytes], local: dict[str, bytes]) -> None:
    assert sorted(ours) == sorted(local)
    different = [name for name in local if ours[name] != local[name]]
    assert not different, different[:10]


def test_quickstart_on_a_local_ray_cluster_gives_the_local_bytes(local_run, tmp_path):
    (tmp_path / "recipe.yaml").write_text(recipe(str(tmp_path / "out"), SAMPLE, "kind: ray\n  workers: 2"))
    run_cli("run", str(tmp_path / "recipe.yaml"))
    local = tree(local_run, [str(local_run)])
    assert len(local) > 200
    assert_same_trees(tree(tmp_path / "out", [str(tmp_path / "out")]), local)


class DiesOnce(Stage):
    """A stage whose first attempt at each task kills its own worker process (a node or OOM kill)."""

    name = "dies-once"

    def __init__(self, output: str):
        self.output = output

    def tasks(self):
        return [Task(f"t{i}") for i in range(3)]

    def run(self, task, ledger: ShardLedger) -> None:
        attempt = os.path.join(self.output, task.key + ".attempted")
        if not os.path.exists(attempt):
            open(attempt, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        ledger.read += 1
        ledger.kept(task.key, [1], [task.key])


def test_ray_retries_a_task_whose_worker_died(tmp_path):
    import ray
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    try:
        summary = run_stage(DiesOnce(str(tmp_path)), RayExecutor(workers=2, max_retries=2))
    finally:
        ray.shutdown()
    assert summary.read == summary.kept == 3
    assert sorted(p.name for p in tmp_path.glob("*.attempted")) == ["t0.attempted", "t1.attempted", "t2.attempted"]


def test_quickstart_reading_and_writing_s3_gives_the_local_bytes(local_run, tmp_path):
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        secret = "not-a-real-secret-3f9a"
        env = {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="testing",
                          aws_secret_access_key=secret, region_name="us-east-1")  # fmt: skip
        s3.create_bucket(Bucket="corpus")
        for path in (ROOT / "dolma" / "sample").rglob("*"):
            if path.is_file() and path.suffix != ".md":
                s3.upload_file(str(path), "corpus", "sample/" + str(path.relative_to(ROOT / "dolma" / "sample")))
        (tmp_path / "recipe.yaml").write_text(
            recipe("s3://corpus/out", "s3://corpus/sample", "kind: local\n  workers: 2")
        )
        proc = run_cli("run", str(tmp_path / "recipe.yaml"), env=env)
        assert "report: s3://corpus/out/report.html" in proc.stdout
        assert secret not in proc.stdout + proc.stderr
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="corpus", Prefix="out/")
                for o in page.get("Contents", [])]  # fmt: skip
        down = tmp_path / "down"
        for key in keys:
            target = down / key.removeprefix("out/")
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file("corpus", key, str(target))
    finally:
        server.stop()
    for path in down.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    local = tree(local_run, [str(local_run)])
    assert_same_trees(tree(down, ["s3://corpus/out"]), local)


def relative_run(folder, executor: str):
    """The quickstart recipe with relative paths (``sample/``, ``out/``) in ``folder``, as a user writes it."""
    import shutil

    folder.mkdir(parents=True)
    shutil.copytree(SAMPLE, folder / "sample")
    text = recipe("out", "sample", executor)
    (folder / "recipe.yaml").write_text(text)
    return [sys.executable, "-m", "dolma", "run", "recipe.yaml"]


def test_quickstart_on_a_multi_node_ray_cluster_survives_losing_a_node(tmp_path):
    """A real cluster on loopback (a head without CPUs and two worker nodes, each its own raylet), the recipe
    with relative paths run from its folder: tasks run on the worker nodes, in the driver's working directory.
    One worker node is removed while dedup runs; the run says so, its tasks are retried on the other and the
    outputs are the bytes of a local run of the same recipe."""
    import subprocess
    import time

    from ray.cluster_utils import Cluster

    local = relative_run(tmp_path / "local", "kind: local\n  workers: 2")
    subprocess.run(local, cwd=tmp_path / "local", check=True, capture_output=True)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        command = relative_run(tmp_path / "ray", f"kind: ray\n  address: {cluster.address}")
        proc = subprocess.Popen(command, cwd=tmp_path / "ray", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        started, removed = time.monotonic(), False
        while proc.poll() is None and time.monotonic() - started < 400:
            if not removed and (tmp_path / "ray" / "out" / "dedup" / "bands").is_dir():  # dedup has started
                cluster.remove_node(workers[0])
                removed = True
            time.sleep(0.1)
        output = proc.communicate(timeout=60)[0].decode()
    finally:
        cluster.shutdown()
    assert removed and proc.returncode == 0, output[-3000:]
    assert "left the cluster; its running tasks are retried elsewhere" in output
    assert_same_trees(tree(tmp_path / "ray" / "out", []), tree(tmp_path / "local" / "out", []))


def test_a_node_that_cannot_see_a_local_output_folder_stops_the_run(tmp_path, monkeypatch):
    """On more than one node, a local output folder must be visible to every node: a node whose probe read
    fails (the folder is not on a shared file system) is named in the error before any task is sent."""
    import ray
    from ray.cluster_utils import Cluster

    from dolma.core.errors import UserError
    from dolma.runtime import cluster as module

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        executor = RayExecutor(cluster.address)
        executor.check_reachable(str(tmp_path / "shared"))  # loopback: every node sees the folder
        monkeypatch.setattr(module, "_read_probe", lambda path: None)  # as a node without the mount would
        with pytest.raises(UserError, match="cannot see the local folder"):
            executor.check_reachable(str(tmp_path / "elsewhere"))
        assert not list((tmp_path / "shared").iterdir())  # the probe file is removed
    finally:
        ray.shutdown()
        cluster.shutdown()
