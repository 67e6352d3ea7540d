"""Impression logs on disk: day-partitioned Parquet, one row per impression.

Layout: `<root>/date=YYYY-MM-DD/impressions.parquet`, plus `<root>/manifest.json` saying how the
logs were made. Columns follow `core.fields.FIELDS`; fields that exist only on one source
are null on the other. Writers build the whole folder beside the target, then rename it into
place, so a failed write leaves nothing half-written.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from typing import Callable, Dict, Iterable, Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.days import DAY, day_name, day_of
from core.fields import FIELDS, TRUTH_FIELDS, popularity_bucket

PARTITION_PREFIX = "date="
FILE_NAME = "impressions.parquet"
FILE_PATTERN = f"{PARTITION_PREFIX}*/*.parquet"
# One day partition as a TFX span: ExampleGen's date spec, span = days since 1970-01-01 (`core.days.day_index`).
DAY_PATTERN = PARTITION_PREFIX + "{YYYY}-{MM}-{DD}/*.parquet"
DAY_SPLIT = "day"  # the one split of a day's Examples (daily spans); the window splits days into SPLITS
MANIFEST = "manifest.json"
# Written by TemporalExampleGen into its Examples artifact: rows read, kept per split and source,
# rejected per file and reason, repeated impression ids. The ValidationGate and the run summary read it.
EXAMPLE_GEN_REPORT = "example_gen_report.json"
RECENT_WINDOW_S = 7 * DAY

_ARROW = {"string": pa.string(), "int": pa.int64(), "float": pa.float64()}


def arrow_schema(with_truth: bool) -> pa.Schema:
    cols = []
    for f in FIELDS:
        t = _ARROW[f.dtype]
        cols.append(pa.field(f.name, pa.list_(t) if f.is_list else t))
    if with_truth:
        cols += [pa.field(name, pa.float64()) for name in TRUTH_FIELDS]
    return pa.schema(cols)


def add_popularity(df: pd.DataFrame) -> pd.DataFrame:
    """Adds podcast_prior_impressions, podcast_recent_streams and popularity_bucket.

    Both counts use only impressions strictly earlier in time than the row (no look-ahead):
    prior impressions of the same podcast, and streams of it in the 7 days before.
    """
    codes, _ = pd.factorize(df["podcast_id"], sort=False)
    t = df["event_time"].to_numpy(np.int64)
    big = np.int64(1) << np.int64(34)
    if t.size and (t.min() < 0 or t.max() >= big):
        raise ValueError("event_time out of range for popularity counts")
    key = codes.astype(np.int64) * big + t
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    streams = df["stream"].to_numpy(np.int64)[order]
    excl_cs = np.concatenate([[0], np.cumsum(streams)])  # streams at sorted positions < i
    group_start = np.searchsorted(sorted_key, codes.astype(np.int64) * big, "left")
    before_t = np.searchsorted(sorted_key, key, "left")  # first row of same podcast at time >= t
    window_lo = np.searchsorted(sorted_key, codes.astype(np.int64) * big + np.maximum(t - RECENT_WINDOW_S, 0), "left")
    window_lo = np.maximum(window_lo, group_start)
    out = df.copy()
    out["podcast_prior_impressions"] = (before_t - group_start).astype(np.int64)
    out["podcast_recent_streams"] = (excl_cs[before_t] - excl_cs[window_lo]).astype(np.int64)
    out["popularity_bucket"] = [popularity_bucket(int(n)) for n in out["podcast_prior_impressions"]]
    return out


def _rows_table(df: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    arrays = []
    for field in schema:
        col = df[field.name] if field.name in df else pd.Series([None] * len(df))
        arrays.append(pa.array(col.tolist() if pa.types.is_list(field.type) else col, type=field.type,
                               from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=schema)


class NotOurFolder(ValueError):
    """The output folder holds files this tool did not write; it is left untouched."""


def _entries(folder: str) -> Dict[str, int]:
    """{path relative to `folder`: bytes} of every file under it (hidden ones included)."""
    out = {}
    for base, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(base, name)
            out[os.path.relpath(path, folder)] = os.path.getsize(path)
    return out


def check_replaceable(out_dir: str, overwrite: bool = False) -> None:
    """Only a missing or empty folder, or one that holds exactly what this tool wrote there (our
    `manifest.json` and the day files it lists, with their sizes), may be replaced; anything else
    (a foreign folder, or ours with a file added, removed or changed) raises NotOurFolder unless
    `overwrite`, naming what is not ours."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"--out {out_dir}: exists and is not a folder")
    if overwrite or not os.path.isdir(out_dir) or not os.listdir(out_dir):
        return
    manifest = read_manifest(out_dir)
    if manifest is None:
        raise NotOurFolder(f"--out {out_dir}: the folder is not empty and holds no {MANIFEST} (it was not written "
                           f"by podcast-mtl); refusing to replace its {len(os.listdir(out_dir))} entries; "
                           f"pass --overwrite to replace it anyway")
    found = _entries(out_dir)
    found.pop(MANIFEST, None)
    wrote = manifest.get("files") or {os.path.join(PARTITION_PREFIX + day, FILE_NAME): None
                                      for day in manifest["rows_per_day"]}
    extra = sorted(set(found) - set(wrote))
    changed = sorted(p for p, size in wrote.items() if p in found and size is not None and found[p] != size)
    missing = sorted(set(wrote) - set(found))
    if extra or changed or missing:
        what = "; ".join(part for part in (
            f"not written by podcast-mtl: {', '.join(extra[:5])}" + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
            if extra else "",
            f"changed since: {', '.join(changed[:5])}" if changed else "",
            f"missing: {', '.join(missing[:5])}" if missing else "") if part)
        raise NotOurFolder(f"--out {out_dir}: holds more or other than the logs podcast-mtl wrote there ({what}); "
                           f"refusing to replace it; move those files, or pass --overwrite to replace it anyway")


def write_logs(df: pd.DataFrame, out_dir: str, manifest: Dict, with_truth: bool,
               overwrite: bool = False, check: Optional[Callable[[str], None]] = None) -> Dict[str, int]:
    """Writes `df` as day partitions under `out_dir`, atomically. Returns rows per day. An existing
    folder is replaced only when this tool wrote it (or `overwrite`): see `check_replaceable`.
    `check(path)` is called on each day file written, before anything is replaced (it raises to stop)."""
    check_replaceable(out_dir, overwrite)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    schema = arrow_schema(with_truth)
    tmp = tempfile.mkdtemp(prefix=".tmp-logs-", dir=parent)
    rows_per_day: Dict[str, int] = {}
    try:
        days = day_of(df["event_time"])
        df = df.assign(_day=days).sort_values(["event_time", "impression_id"], kind="stable")
        for day, part in df.groupby("_day", sort=True):
            name = day_name(day)
            folder = os.path.join(tmp, PARTITION_PREFIX + name)
            os.makedirs(folder)
            path = os.path.join(folder, FILE_NAME)
            pq.write_table(_rows_table(part, schema), path, compression="snappy")
            if check is not None:
                check(path)
            rows_per_day[name] = len(part)
        files = _entries(tmp)
        with open(os.path.join(tmp, MANIFEST), "w") as f:
            json.dump(dict(manifest, rows=int(len(df)), rows_per_day=rows_per_day, files=files), f, indent=1,
                      sort_keys=True)
        _swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return rows_per_day


def _swap_into_place(tmp: str, out_dir: str) -> None:
    if os.path.isdir(out_dir):
        old = out_dir.rstrip("/") + ".old-" + os.path.basename(tmp)
        os.rename(out_dir, old)
        os.rename(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out_dir)


def read_manifest(root: str) -> Optional[Dict]:
    path = os.path.join(root, MANIFEST)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and "rows_per_day" in manifest else None


def partition_days(root: str) -> Iterable[str]:
    """Sorted day names (YYYY-MM-DD) of the partitions under `root` (local or Beam filesystem)."""
    import tensorflow as tf  # gfile reads gs:// and other Beam filesystems

    names = []
    for entry in tf.io.gfile.listdir(root):
        entry = entry.rstrip("/")
        if entry.startswith(PARTITION_PREFIX):
            names.append(entry[len(PARTITION_PREFIX):])
    return sorted(names)


def read_logs(root: str, columns=None) -> pd.DataFrame:
    """All partitions of a log folder as one DataFrame (for reports and tests, not the pipeline)."""
    files = sorted(glob.glob(os.path.join(root, FILE_PATTERN)))
    if not files:
        raise FileNotFoundError(f"{root}: no {FILE_PATTERN} files")
    return pd.concat([pq.read_table(f, columns=columns).to_pandas() for f in files], ignore_index=True)
