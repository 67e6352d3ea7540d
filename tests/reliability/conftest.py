"""Small logs and corrupted copies of them for the fault matrix; shared by the whole folder."""
import glob
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from datagen.generate import generate_logs
from tests.conftest import REPO, TINY

SPLIT_ARGS = ["--test-days", "2", "--eval-days", "2", "--train-steps", "5"]


def day_files(root):
    return sorted(glob.glob(os.path.join(root, "date=*", "*.parquet")))


@pytest.fixture(scope="session")
def tiny_logs(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("rel") / "tiny")
    generate_logs(TINY, out, verbose=False)
    return out


@pytest.fixture(scope="session")
def faulty_logs(tiny_logs, tmp_path_factory):
    """Five faults in five files: rows dated 2000 and 2030 inside a train partition, an ad field on
    promotions rows, NaN labels, one day written twice, and an older day without a column (a schema
    anomaly only TFDV sees). Returns (folder, expected counts)."""
    out = str(tmp_path_factory.mktemp("rel") / "faulty")
    shutil.copytree(tiny_logs, out)
    files = day_files(out)
    expected = {}
    df = pq.read_table(files[0]).to_pandas()
    df.loc[df.index[:20], "event_time"] = 946_684_800 + 3600  # 2000-01-01
    df.loc[df.index[20:30], "event_time"] = 1_893_456_000 + 3600  # 2030-01-01
    df.to_parquet(files[0], index=False)
    expected[files[0]] = {"event_time outside the file's day partition": 30}
    df = pq.read_table(files[1]).to_pandas()
    promo = df.index[df.source == "promotions"][:5]
    df.loc[promo, "ad_format"] = "audio"
    df.to_parquet(files[1], index=False)
    expected[files[1]] = {"field 'ad_format' (only on ads) set on a promotions row": 5}
    df = pq.read_table(files[2]).to_pandas()
    df["stream"] = df["stream"].astype(float)
    df.loc[df.index[:3], "stream"] = np.nan
    df.to_parquet(files[2], index=False)
    expected[files[2]] = {"NaN in field 'stream'": 3}
    twice = os.path.join(os.path.dirname(files[3]), "impressions-again.parquet")
    shutil.copy(files[3], twice)
    dup_rows = pq.read_metadata(files[3]).num_rows
    pq.write_table(pq.read_table(files[4]).drop(["podcast_id"]), files[4])
    schema_day = os.path.basename(os.path.dirname(files[4]))[len("date="):]
    return out, {"rejected": expected, "duplicates": {files[3]: dup_rows, twice: dup_rows},
                 "schema_day": (schema_day, files[4])}


@pytest.fixture(scope="session")
def one_source_logs(tiny_logs, tmp_path_factory):
    """Promotions only, and the newest day's file empty (so the test split has 1 day of rows of 1 source)."""
    out = str(tmp_path_factory.mktemp("rel") / "one_source")
    shutil.copytree(tiny_logs, out)
    files = day_files(out)
    for path in files:
        table = pq.read_table(path)
        df = table.to_pandas()
        keep = df.source == "promotions"
        pq.write_table(table.filter(keep.to_numpy()), path)
    for path in files[-2:]:  # the whole test split: no rows at all
        table = pq.read_table(path)
        pq.write_table(table.slice(0, 0), path)
    return out


def cli(*args, **kw):
    """`podcast-mtl ARGS` in a fresh process: CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO), **kw)


def cli_background(args, log_path, module: bool = True):
    """`podcast-mtl ARGS` (or, with module=False, `python ARGS`) started in the background in its own
    process group, output to `log_path`."""
    log = open(log_path, "w")
    command = [sys.executable, "-m", "cli", *args] if module else [sys.executable, *args]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONPATH=REPO), start_new_session=True)


def kill_group(proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def wait_for(predicate, timeout, what):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
