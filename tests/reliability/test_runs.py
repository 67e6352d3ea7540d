"""Fault matrix, pipeline level: real `podcast-mtl run`s (TFX, Beam, MLMD on SQLite) on faulty logs,
two runs on one root at once, a killed run and the run after it."""
import glob
import json
import os
import time

import pytest
import tensorflow as tf

from core.row_report import file_day
from pipeline.local_runner import RootBusy, lock_root
from pipeline.run_summary import executions_since
from tests.reliability.conftest import SPLIT_ARGS, cli, cli_background, kill_group, wait_for

pytestmark = pytest.mark.slow
LATER = {"Transform", "Trainer", "Evaluator", "Pusher"}


def _summary(root):
    with open(os.path.join(root, "summary.json")) as f:
        return json.load(f)


def _root_busy(root):
    try:
        lock_root(root).close()
        return False
    except RootBusy:
        return True


@pytest.fixture(scope="module")
def faulty_run(faulty_logs, tmp_path_factory):
    """While another process holds the root (the lock a run takes), a run on it must refuse; once
    that process is killed, the next run on the faulty logs goes ahead (a dead holder blocks nothing).
    The holder is a separate process rather than a second real run so that the overlap does not
    depend on how long the first run takes."""
    data, expected = faulty_logs
    root = str(tmp_path_factory.mktemp("relrun") / "root")
    os.makedirs(root)
    holder = cli_background(["-c", f"import time; from pipeline.local_runner import lock_root; "
                                   f"f = lock_root({root!r}); time.sleep(600)"],
                            os.path.join(root, "..", "holder.out"), module=False)
    try:
        wait_for(lambda: _root_busy(root) or holder.poll() is not None, 120, "the holder to take the root's lock")
        assert holder.poll() is None, open(os.path.join(root, "..", "holder.out")).read()[-3000:]
        t0 = time.time()
        second = cli("run", "--data", data, "--root", root, *SPLIT_ARGS)
        second_seconds = time.time() - t0
        busy_while_second = holder.poll() is None
    finally:
        kill_group(holder)
    first = cli("run", "--data", data, "--root", root, *SPLIT_ARGS)
    return {"root": root, "rc": first.returncode, "out": first.stdout, "second": second,
            "second_seconds": second_seconds, "holder_pid": holder.pid, "busy_while_second": busy_while_second,
            "expected": expected, "summary": _summary(root)}


def test_second_run_on_the_same_root_refuses_at_once(faulty_run):
    second = faulty_run["second"]
    assert faulty_run["busy_while_second"], "the holder ended before the run was tried: the test proves nothing"
    assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
    assert "another run is using this root" in second.stderr and f"pid {faulty_run['holder_pid']}" in second.stderr
    assert "Traceback" not in second.stderr
    # the refused run wrote nothing: one log file (the run after the holder died), and its summary
    assert len(glob.glob(os.path.join(faulty_run["root"], "logs", "*.log"))) == 1


def test_out_of_day_rows_wrong_source_fields_nan_and_duplicates_stop_at_the_gate(faulty_run):
    assert faulty_run["rc"] == 1, faulty_run["out"][-3000:]
    s = faulty_run["summary"]
    assert s["state"] == "failed" and s["failed"] is True and s["pushed_model"] is None
    reason = s["not_pushed_reason"]
    assert "stopped at ValidationGate" in reason
    for path, reasons in faulty_run["expected"]["rejected"].items():
        for why, n in reasons.items():
            assert f"file {path} (day {file_day(path)}): {n:,} rows: {why}" in reason, reason
    for path, n in faulty_run["expected"]["duplicates"].items():
        assert f"file {path} (day {file_day(path)}): {n:,} rows with a repeated impression_id" in reason, reason
    # the older day without a column: only TFDV sees it; the gate names that day and its file
    day, path = faulty_run["expected"]["schema_day"]
    assert f"day {day} ({path}): feature 'podcast_id'" in reason, reason
    files = list(faulty_run["expected"]["rejected"]) + list(faulty_run["expected"]["duplicates"]) + [path]
    assert reason.splitlines()[1].strip() == "bad days: " + ", ".join(sorted({file_day(f) for f in files}))
    assert "rows rejected (allowed: 0)" in faulty_run["out"]  # the user sees it on the terminal
    ran = {c["component"] for c in s["components"]}
    assert "ValidationGate" in ran and not ran & LATER
    assert not os.path.exists(os.path.join(faulty_run["root"], "pipeline", "Transform"))


def test_every_row_read_is_in_one_split_or_rejected(faulty_run):
    rows = faulty_run["summary"]["rows"]
    want_rejected = sum(n for r in faulty_run["expected"]["rejected"].values() for n in r.values())
    assert rows["rows_rejected"] == want_rejected
    assert rows["rows_kept"] + rows["rows_rejected"] == rows["rows_read"]
    assert rows["rejected"] == {why: n for r in faulty_run["expected"]["rejected"].values() for why, n in r.items()}
    examples = faulty_run["summary"]["artifacts"]["TemporalExampleGen"]["Examples"]
    written = sum(1 for f in glob.glob(os.path.join(examples, "Split-*", "*.gz"))
                  for _ in tf.data.TFRecordDataset(f, compression_type="GZIP"))
    assert written == rows["rows_kept"]
    assert sum(faulty_run["summary"]["splits"].values()) == rows["rows_kept"]


@pytest.fixture(scope="module")
def killed_then_rerun(faulty_run, one_source_logs):
    """On the same root: run 3 (one-source logs) is killed while a component is RUNNING; run 4 follows."""
    root = faulty_run["root"]
    metadata = os.path.join(root, "metadata.sqlite")
    before = {e["id"] for e in executions_since(metadata, 0)}
    third = cli_background(["run", "--data", one_source_logs, "--root", root, *SPLIT_ARGS],
                           os.path.join(root, "..", "third.out"))
    try:
        wait_for(lambda: any(e["state"] == "running" and e["id"] not in before
                             for e in executions_since(metadata, 0)) or third.poll() is not None,
                 180, "run 3 to start a component")
        assert third.poll() is None, open(os.path.join(root, "..", "third.out")).read()[-3000:]
    finally:
        kill_group(third)
    after_kill = _summary(root)
    running_after_kill = [e for e in executions_since(metadata, 0) if e["state"] == "running"]
    fourth = cli("run", "--data", one_source_logs, "--root", root, *SPLIT_ARGS)
    return {"third_pid": third.pid, "after_kill": after_kill, "running_after_kill": running_after_kill,
            "fourth": fourth, "summary": _summary(root), "metadata": metadata}


def test_killed_run_leaves_a_running_summary_not_the_previous_one(killed_then_rerun):
    s = killed_then_rerun["after_kill"]
    assert s["state"] == "running" and s["pid"] == killed_then_rerun["third_pid"], s
    assert s["blessed"] is None and s["pushed_model"] is None
    assert killed_then_rerun["running_after_kill"], "the kill left no RUNNING execution: nothing to check"


def test_next_run_reports_and_cancels_the_killed_execution(killed_then_rerun):
    fourth, s = killed_then_rerun["fourth"], killed_then_rerun["summary"]
    killed = {e["id"] for e in killed_then_rerun["running_after_kill"]}
    assert "a previous run on this root was killed" in fourth.stdout, fourth.stdout[-2000:]
    assert {e["id"] for e in s["interrupted_executions"]} == killed
    states = {e["id"]: e["state"] for e in executions_since(killed_then_rerun["metadata"], 0)}
    assert all(states[i] == "canceled" for i in killed)
    assert "running" not in states.values()


def test_one_source_and_an_empty_test_split_stop_at_the_gate(killed_then_rerun):
    fourth, s = killed_then_rerun["fourth"], killed_then_rerun["summary"]
    assert fourth.returncode == 1, fourth.stdout[-3000:] + fourth.stderr[-3000:]
    reason = s["not_pushed_reason"]
    assert "stopped at ValidationGate" in reason
    assert "split 'test' is empty" in reason
    assert "split 'train' has no 'ads' rows" in reason and "split 'eval' has no 'ads' rows" in reason
    assert not {c["component"] for c in s["components"]} & LATER
