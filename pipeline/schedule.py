"""`podcast-mtl schedule`: D consecutive daily runs with the LocalDagRunner, as logs arrive a day at a time.

The source folder holds every day; before each scheduled run the day's partition is copied into
`<root>/landing/` (the first run gets every earlier day as its backfill), and the same
`create_pipeline`, with `daily_spans` on, runs on the landing folder with one MLMD store, one
pipeline root and one serving folder across days, as a daily cron / Airflow schedule would:

* daily spans: each day partition is a TFX span (ExampleGen's date spec
  `date={YYYY}-{MM}-{DD}/*.parquet`, span = days since 1970-01-01). Each TemporalExampleGen
  execution ingests one day into its own Examples artifact, recording the span and the
  FileBasedDriver's fingerprint of the day's files (count, bytes, mtimes to the second). Before the
  run, every day of the coming window without a LIVE artifact of its current files (new, or
  re-delivered with other files) is ingested on its own (`pipeline/spans.py`, a static span
  range); days already ingested and unchanged are not read again. The DAG's own TemporalExampleGen
  ingests the newest day (latest span; a cache hit when it is unchanged).
* the window: TFX's `rolling_range` resolver function picks, from MLMD, the newest artifact of each
  of the latest `window_days` spans (a re-delivered day's new artifact, never its stale one), and
  the TemporalWindow component splits those days train / eval / test by day (`core/split.py`),
  copying their files; Transform and everything after run on the window. An unchanged window is a
  cache hit of TemporalWindow and of everything after it.
* the gate: a day whose logs break the schema, today's or an older one of the window (a backfilled
  or re-delivered day), stops its run at the ValidationGate (nothing is trained or pushed; serving
  keeps the previous model). The gate names the file and day of every problem and starts with a
  `bad days:` line; the partitions of exactly those days move to `<root>/quarantine/` and their
  artifacts are marked MARKED_FOR_DELETION in MLMD (no resolver picks them again), so the next
  day's window holds the latest days that passed. A day that cannot be ingested at all (the strict
  reader, `core/log_reader.py`, refuses its file) is quarantined the same way. A gate failure that
  names no day (e.g. a window with no positive label) quarantines nothing.
* one schedule per root: the schedule holds the root's lock (`local_runner.lock_root`) for all its
  days; a second schedule or run on the root refuses at once.

* the hyperparameters: the first day's run tunes (when the config has tuning trials); later days
  replace the Tuner by a Resolver of the latest tuned values (`reuse_hyperparameters`) instead of
  re-tuning every day.

Per day it prints the day's span, the window, the days ingested, blessed / pushed, stream AP per
source, the serving version and the seconds taken, and writes `<root>/schedule.json`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from typing import Callable, Dict, List, Optional

from core.days import day_index
from core.logs import PARTITION_PREFIX, partition_days
from core.strict_json import strict_json
from core.tasks import stream_head
from pipeline.configs import PipelineConfig
from pipeline.run_root import Node
from pipeline.run_summary import FAILED, RunSummary
from pipeline.spans import IngestFailed, ingest_window, retire_days

LANDING = "landing"
QUARANTINE = "quarantine"


def serving_version(serving: str) -> Optional[str]:
    """The newest pushed model version under the serving folder (the one a server would load)."""
    from pipeline.local_runner import latest_pushed

    latest = latest_pushed(serving)
    return os.path.basename(latest) if latest else None


def deliver(source: str, landing: str, up_to: str) -> List[str]:
    """Copies every day partition of `source` up to `up_to` that the landing folder lacks; returns them."""
    os.makedirs(landing, exist_ok=True)
    quarantine = os.path.join(os.path.dirname(landing.rstrip("/")), QUARANTINE)
    new = []
    for day in sorted(partition_days(source)):
        name = PARTITION_PREFIX + day
        if day > up_to or os.path.exists(os.path.join(landing, name)) or \
                os.path.exists(os.path.join(quarantine, name)):
            continue
        tmp = os.path.join(landing, "." + name)
        shutil.copytree(os.path.join(source, name), tmp)
        os.replace(tmp, os.path.join(landing, name))  # a partition appears whole
        new.append(day)
    return new


def quarantine(landing: str, days: List[str]) -> None:
    target = os.path.join(os.path.dirname(landing.rstrip("/")), QUARANTINE)
    os.makedirs(target, exist_ok=True)
    for day in days:
        os.replace(os.path.join(landing, PARTITION_PREFIX + day), os.path.join(target, PARTITION_PREFIX + day))


def run_schedule(config: PipelineConfig, days: int, run: Optional[Callable[[PipelineConfig], Dict]] = None,
                 out=print, warm_start: bool = False, warm_start_steps: Optional[int] = None) -> List[Dict]:
    """Runs the pipeline once per day for the newest `days` days of `config.data`.

    With `warm_start`, a day that finds a pushed model trains from its weights
    (`models/warm_start.py`) for `warm_start_steps` (default: the preset's steps)."""
    if run is None:
        from pipeline.local_runner import run_pipeline

        def run(c):
            return run_pipeline(c, quiet=True)

    source = config.data
    all_days = sorted(partition_days(source))
    if days > len(all_days):
        raise ValueError(f"schedule: --days {days} but {source} holds only {len(all_days)} day partitions")
    from pipeline.local_runner import lock_root

    os.makedirs(config.root, exist_ok=True)
    lock = lock_root(config.root)  # RootBusy when another schedule or run holds the root
    try:
        return _run_days(config, all_days[len(all_days) - days:], run, out, warm_start, warm_start_steps)
    finally:
        lock.close()


def _run_days(config: PipelineConfig, scheduled: List[str], run, out, warm_start: bool,
              warm_start_steps: Optional[int]) -> List[Dict]:
    source = config.data
    landing = os.path.join(config.root, LANDING)
    daily = config.replace(data=landing, daily_spans=True)
    tasks = config.model.tasks()
    report_path = os.path.join(config.root, "schedule.json")
    report: List[Dict] = []
    out(f"{'day':<12}{'span':>6}  {'window':<23}{'new':>4}{'read':>5}{'blessed':>9}{'pushed':>8}  "
        f"{'AP promotions':>14}{'AP ads':>9}  {'serving':<12}{'seconds':>8}")
    for today in scheduled:
        t0 = time.time()
        arrived = deliver(source, landing, today)
        today_config = daily
        if report and config.tuning.trials:  # tune on the first day only; later days reuse its best values
            today_config = daily.replace(tuning=dataclasses.replace(config.tuning, trials=0),
                                         reuse_hyperparameters=True)
        warm = warm_start and serving_version(daily.serving) is not None
        if warm:
            today_config = today_config.replace(model=daily.model.replace(
                warm_start_dir=daily.serving, train_steps=warm_start_steps or daily.model.train_steps))
        ingested, bad_day = [], None
        try:
            ingested = ingest_window(daily)
            summary = run(today_config)
        except IngestFailed as e:
            ingested, bad_day = e.ingested, e.day
            summary = RunSummary(state=FAILED, failed=True, not_pushed_reason=str(e))
        states = summary.component_states()
        if states.get(Node.EXAMPLE_GEN) == "done":
            ingested = ingested + [_newest(landing)]
        failed_at = (summary.not_pushed_reason or "") if summary.failed else ""
        stopped_at_gate = Node.GATE in failed_at
        if failed_at.startswith(f"stopped at {Node.EXAMPLE_GEN}"):
            bad_day = _newest(landing)
        quarantined = days_to_quarantine(failed_at, bad_day, sorted(partition_days(landing)))
        if quarantined:
            quarantine(landing, quarantined)
            retire_days(daily, quarantined)
        ap = {}
        for source_name, heads in summary.ap.items():
            head = stream_head(tasks, source_name)
            if heads and heads.get(head) is not None:
                ap[source_name] = round(heads[head], 4)
        window = sorted(summary.rows.get("days") or {})
        row = {"day": today, "span": day_index(today), "window": f"{window[0]}..{window[-1]}" if window else None,
               "window_days": len(window), "window_spans": [day_index(d) for d in window],
               "arrived": arrived, "ingested": ingested, "blessed": bool(summary.blessed),
               "pushed": summary.pushed_model, "ap": ap, "splits": summary.splits,
               "serving_version": serving_version(daily.serving),
               # what the candidate was gated against: the incumbent the DAG resolved, or a promotions
               # baseline trained in the run when nothing was pushed yet
               "baseline": {k: (summary.baseline or {}).get(k) for k in ("kind", "model")},
               "failed": bool(summary.failed), "stopped_at_gate": stopped_at_gate,
               "quarantined": quarantined,
               "reason": summary.not_pushed_reason,
               "cached": [c["component"] for c in summary.components if c.get("state") == "cached"],
               "warm_start": warm, "train_steps": today_config.model.train_steps,
               "tuned": Node.TUNER in states,
               "reused_hyperparameters": today_config.reuse_hyperparameters,
               "trainer_seconds": sum(c["seconds"] for c in summary.components if c["component"] == Node.TRAINER),
               "seconds": round(time.time() - t0, 1)}
        report.append(row)
        with open(report_path, "w") as f:
            json.dump(strict_json(report), f, indent=1, allow_nan=False)
        out(f"{today:<12}{row['span']:>6}  {row['window'] or '-':<23}{len(arrived):>4}{len(ingested):>5}"
            f"{str(row['blessed']):>9}{'yes' if row['pushed'] else 'no':>8}  "
            f"{ap.get('promotions', float('nan')):>14.4f}{ap.get('ads', float('nan')):>9.4f}  "
            f"{row['serving_version'] or '-':<12}{row['seconds']:>8.0f}"
            + (f"  warm start, {row['train_steps']} steps" if warm else ""))
        if row["reason"] and not row["pushed"]:
            out(f"{'':<12}not pushed: {row['reason'].splitlines()[0][:160]}")
        if quarantined:
            out(f"{'':<12}quarantined: {', '.join(quarantined)} (named by the "
                f"{'ValidationGate' if stopped_at_gate else 'TemporalExampleGen'})")
        elif failed_at:
            out(f"{'':<12}quarantined: nothing (the failure names no day)")
    return report


def days_to_quarantine(failed_at: str, bad_day: Optional[str], landed: List[str]) -> List[str]:
    """The days a failed day's run blames: the days the gate names on its `bad days:` line, or the
    one day TemporalExampleGen could not ingest; only those in the landing folder."""
    from components.validation_gate.executor import bad_days_in

    named = bad_days_in(failed_at) if "ValidationGate" in failed_at else ([bad_day] if bad_day else [])
    return [d for d in named if d in landed]


def _newest(landing: str) -> Optional[str]:
    days = sorted(partition_days(landing))
    return days[-1] if days else None
