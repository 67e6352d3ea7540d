"""Issue 23, case 1, end to end: an older day of the window breaks the schema (here in the first
day's backfill). The gate names that day, the schedule quarantines it and not today's good day,
and the next day's window, without it, passes the gate: the schedule recovers."""
import json
import os
import shutil

import pyarrow.parquet as pq
import pytest

from core.days import day_index
from tests.reliability.conftest import SPLIT_ARGS, cli, day_files

pytestmark = pytest.mark.slow


def test_the_older_day_that_broke_the_schema_is_quarantined_not_today(tiny_logs, tmp_path):
    data = str(tmp_path / "logs")
    shutil.copytree(tiny_logs, data)
    files = day_files(data)
    days = [os.path.basename(os.path.dirname(f))[len("date="):] for f in files]
    bad = days[3]  # inside the first scheduled day's window, not the day itself
    pq.write_table(pq.read_table(files[3]).drop(["podcast_id"]), files[3])
    root = str(tmp_path / "sched")
    # no tuning: what is tested is the gate and the window, not the search (tests/test_schedule.py tunes)
    r = cli("schedule", "--data", data, "--root", root, "--days", "2", "--window-days", "6", *SPLIT_ARGS,
            "--tune-trials", "0")
    report = json.load(open(os.path.join(root, "schedule.json")))
    d1, d2 = report
    assert d1["day"] == days[6] and d1["stopped_at_gate"] and not d1["pushed"], r.stdout + r.stderr[-3000:]
    assert f"bad days: {bad}" in d1["reason"] and f"day {bad} (" in d1["reason"], d1["reason"]
    assert d1["quarantined"] == [bad]  # the bad day, not today's (days[6]), which was good
    assert os.path.isdir(os.path.join(root, "quarantine", f"date={bad}"))
    assert os.path.isdir(os.path.join(root, "landing", f"date={days[6]}"))
    assert f"quarantined: {bad} (named by the ValidationGate)" in r.stdout
    # the next day recovers: its window skips the quarantined day and passes the gate
    assert d2["day"] == days[7] and not d2["stopped_at_gate"] and not d2["quarantined"], d2
    assert d2["window_days"] == 6 and d2["window"] == f"{days[1]}..{days[7]}"
    assert day_index(bad) not in d2["window_spans"] and day_index(days[6]) in d2["window_spans"]
