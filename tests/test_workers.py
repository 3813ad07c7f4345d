"""A worker killed by the OS (the out-of-memory killer's SIGKILL) never hangs a run: its task is retried in a
fresh process, and a task that kills its worker every time fails the run naming the signal, after the others."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import read_jsonl, sample_docs, write_jsonl_gz

from dolma.runtime.executors import LocalExecutor, WorkerDied


def _task(item: tuple[str, str]) -> str:
    """Sleeps a little; ``die-once`` kills its own process the first time (a marker file remembers it),
    ``die`` every time, ``raise`` raises."""
    name, folder = item
    time.sleep(0.2)
    marker = Path(folder) / name
    if name.startswith("die-once") and not marker.exists():
        marker.write_text("died")
        os.kill(os.getpid(), signal.SIGKILL)
    if name.startswith("die-always"):
        os.kill(os.getpid(), signal.SIGKILL)
    if name == "raise":
        raise ValueError("bad data in this task")
    return name


def _run(items, workers=2, retries=2):
    return sorted(LocalExecutor(workers, retries).map(_task, items, lambda d, b: None))


@pytest.mark.timeout(120)
def test_a_task_whose_worker_is_killed_once_is_retried_and_every_task_finishes(tmp_path):
    names = [f"ok-{i}" for i in range(5)] + ["die-once-a", "die-once-b"]
    assert _run([(n, str(tmp_path)) for n in names]) == sorted(names)


@pytest.mark.timeout(120)
def test_a_task_that_always_kills_its_worker_fails_with_the_signal_after_the_others_finished(tmp_path):
    names = [f"ok-{i}" for i in range(4)] + ["die-always"]
    done = []
    with pytest.raises(WorkerDied, match="die-always|#5") as e:
        for result in LocalExecutor(2, retries=1).map(_task, [(n, str(tmp_path)) for n in names], lambda d, b: None):
            done.append(result)
    assert sorted(done) == [f"ok-{i}" for i in range(4)]
    assert "SIGKILL" in str(e.value) and "out-of-memory" in str(e.value) and "2 tries" in str(e.value)


@pytest.mark.timeout(120)
def test_a_task_that_raises_still_fails_the_run_with_its_error(tmp_path):
    with pytest.raises(ValueError, match="bad data"):
        _run([("ok-1", str(tmp_path)), ("raise", str(tmp_path)), ("ok-2", str(tmp_path))])


def _pid(item) -> int:
    time.sleep(0.2)  # long enough that both workers take a task
    return os.getpid()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


@pytest.mark.timeout(120)
def test_the_workers_stay_warm_between_stages_and_stop_when_the_executor_closes():
    executor = LocalExecutor(2)
    first = set(executor.map(_pid, list(range(4)), lambda d, b: None))
    second = set(executor.map(_pid, list(range(4)), lambda d, b: None))
    assert len(first) == 2 and second == first  # the same two processes ran both stages: one spawn per run
    assert os.getpid() not in first
    executor.close()
    deadline = time.time() + 20
    while any(_alive(p) for p in first) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in first)
    assert set(executor.map(_pid, list(range(2)), lambda d, b: None)).isdisjoint(first)  # usable again: a new pool
    executor.close()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.mark.timeout(300)
def test_killing_a_tag_worker_mid_run_does_not_hang_and_every_shard_is_tagged(tmp_path):
    """The case that used to hang for ever: `dolma tag --workers 2` on 6 shards, one worker SIGKILLed."""
    docs = sample_docs("python-docs")
    src = tmp_path / "documents"
    for k in range(6):
        write_jsonl_gz(src / f"s{k}.jsonl.gz", [{**d, "id": f"{k}-{d['id']}"} for d in docs[:400]])
    out = tmp_path / "tagged"
    taggers = ["gopher_repetition_v1", "gopher_quality_v1", "c4_v1"]
    args = ["tag", "--documents", f"{src}/*.jsonl.gz", "--output", str(out), "--taggers", *taggers, "--workers", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "dolma", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    victim = None
    deadline = time.time() + 120
    while victim is None and time.time() < deadline and proc.poll() is None:
        # the pool's workers are the children that are themselves python processes running a task
        workers = [c for c in _children(proc.pid) if b"multiprocessing" in Path(f"/proc/{c}/cmdline").read_bytes()]
        markers = list((out / "_ledger").rglob("done/*.json")) if out.exists() else []
        if len(workers) >= 2 and len(markers) >= 1:
            victim = workers[0]
            os.kill(victim, signal.SIGKILL)
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=240)
    assert victim is not None, "no worker was found to kill"
    assert proc.returncode == 0, stderr.decode()[-2000:]
    markers = sorted(p.name for p in (out / "_ledger").rglob("done/*.json"))
    assert markers == [f"s{k}.json" for k in range(6)]
    for k in range(6):
        attrs = read_jsonl(out / f"s{k}.jsonl.gz")  # --output receives the attribute files
        assert [a["id"] for a in attrs] == [f"{k}-{d['id']}" for d in docs[:400]]
